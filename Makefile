# Two commands for a fresh machine (Python 3.11+ and Node/npm): `make run` and `make test`.
# Each installs what it needs into the project: .venv/ (Python) and node_modules/ (the Cerbos PDP).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test deps schema lint policy-test bench-seed clean

run: deps
	$(BIN)/akson serve --demo

test: deps
	$(BIN)/ruff check gateway resolvers tests bench examples
	$(MAKE) --no-print-directory policy-test
	$(BIN)/pytest -q

deps: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

policy-test: $(NODE_STAMP)
	node_modules/.bin/cerbos compile policies

schema: $(PY_STAMP)
	$(BIN)/akson schema > schema.graphql

bench-seed: deps
	$(BIN)/python bench/seed_time.py

clean:
	rm -rf $(VENV) node_modules .data
