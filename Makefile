# Two commands for a fresh machine (Python 3.11+ and Node/npm): `make run` and `make test`.
# Each installs what it needs into the project: .venv/ (Python) and node_modules/ (the Cerbos PDP).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM_STAMP := $(VENV)/.chromium

.PHONY: run test deps schema lint policy-test console-screenshots bench bench-scale bench-export bench-seed bench-audit bench-events bench-console soak clean

run: deps
	$(BIN)/akson serve --demo

# The suite runs against an embedded PostgreSQL; when a server answers on 127.0.0.1:5432 (or
# TEST_DATABASE_URL names one), it runs a second time against that server. What does not depend on which server
# holds the journal runs in the first run only: the HTTP edge (the hostile-input suite, 10,000 requests), pages in
# a browser, tokens and policies (the issuer, policy diff and reload), and what starts a database of its own
# (the lifecycle and the drills).
LOCAL_PG ?= postgresql://postgres@127.0.0.1:5432/postgres
FIRST_RUN_ONLY := tests/test_hostile_suite.py tests/test_console.py tests/test_console_oidc.py \
	tests/test_browser_graphiql.py tests/test_policy_diff.py tests/test_policy_reload.py tests/test_issuer.py \
	tests/test_authorization_code.py tests/test_lifecycle.py tests/test_drills.py

test: deps $(CHROMIUM_STAMP)
	$(BIN)/ruff check gateway resolvers tests bench examples
	$(BIN)/mypy gateway resolvers tests bench examples
	$(MAKE) --no-print-directory policy-test
	env -u DATABASE_URL $(BIN)/pytest -q
	@url="$${TEST_DATABASE_URL:-$(LOCAL_PG)}"; \
	if $(BIN)/python -c "import asyncio, asyncpg, sys; asyncio.run(asyncpg.connect(sys.argv[1], timeout=3))" "$$url" 2>/dev/null; then \
		echo "== again against $$url"; DATABASE_URL="$$url" $(BIN)/pytest -q $(addprefix --deselect ,$(FIRST_RUN_ONLY)); \
	else echo "== no PostgreSQL server at $$url: embedded run only"; fi

deps: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The browser tests drive Debian's Chromium with Playwright (Playwright's own browser download is not used).
$(CHROMIUM_STAMP): $(PY_STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "the browser tests need Chromium: install Debian's chromium package (apt-get install chromium)"; \
	    exit 1; fi; }
	touch $@

# package.json pins cerbos to an exact version, which pins its platform binary. No lock file: npm's
# lock for this package cannot list the other platforms' optional binaries, and `npm ci` then refuses.
$(NODE_STAMP): package.json
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	test -x "$$(ls node_modules/@cerbos/cerbos-*/cerbos-* | head -1)"
	touch $@

# Screenshots of the console's pages for the README (docs/console/*.png).
console-screenshots: deps $(CHROMIUM_STAMP)
	$(BIN)/python examples/console_screenshots.py docs/console

policy-test: deps
	$(BIN)/akson policy test

schema: $(PY_STAMP)
	$(BIN)/akson schema > schema.graphql

# The side-by-side benchmark (gateway, gateway without audit, PostGraphile 5, raw-SQL floor); writes bench/RESULTS.md.
bench: deps
	$(BIN)/python bench/run.py

# Q2 and Q3 at 10,000,000 observations against 1,000,000 (seeds the larger journal once; prints the time).
bench-scale: deps
	$(BIN)/python bench/scale.py

# A municipality's FHIR Bulk Data export (10,000 patients, 1,000,000 observations): time and peak memory.
bench-export: deps
	$(BIN)/python bench/bulk_export.py

bench-seed: deps
	$(BIN)/python bench/seed_time.py

bench-audit: deps
	$(BIN)/python -m bench.audit_overhead

# Each console page beside the GraphQL request it asks, as the persona it is for (sequential, medians).
bench-console: deps
	$(BIN)/python -m bench.console

# Live delivery: commit-to-subscriber latency with 1,000 subscriptions (beside 10) and webhook throughput.
bench-events: deps
	$(BIN)/python -m bench.events

# Soak: 30 minutes of mixed reads and writes at concurrency 64, memory every minute, then the audit chain verified.
soak: deps
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) node_modules .data
