"""The raw-SQL floor of the benchmark: the same rows as the reads, fetched in one statement each with asyncpg,
the JSON built by PostgreSQL and passed through untouched; no GraphQL, no authorization, no audit on reads.
The write (W1) inserts the observation and one audit row for it in one statement, through the audit
chain's lock as the gateway's audit rows go.

A bare ASGI app under the same server as the gateway (uvicorn with uvloop and httptools, the same worker
count) so the two are measured through the same HTTP and load generator. POST /q1 {"patient_id"},
/q2 {"unit_id"}, /q3 {"unit_id", "code"}, /c1 {"patient_id"}, /l1 {"unit_id"},
/w1 {"patient_id", "unit_id", "effective_at"}. Run: `DATABASE_URL=... python bench/floor.py --port P --workers W`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import uvicorn

from gateway.cli import SERVER
from gateway.sql import Sql, sql


def _active_at_unit(patient: Sql) -> Sql:
    return sql(
        "EXISTS (SELECT 1 FROM care_relation cr WHERE cr.patient_id = ",
        patient,
        " AND cr.organization_id = $1::uuid AND cr.period_start <= now() AND (cr.period_end IS NULL "
        "OR cr.period_end > now()))",
    )


PATIENT = sql(
    "'id', p.id, 'nationalId', p.national_id, 'familyName', p.family_name, 'givenName', p.given_name, "
    "'birthDate', p.birth_date, 'gender', p.gender"
)
OBSERVATION = sql(
    "'id', ob.id, 'code', ob.code, 'display', ob.code_display, 'value', ob.value_quantity, "
    "'unit', ob.value_unit, 'effectiveAt', ob.effective_at"
)
STATEMENTS = {
    "/q1": sql("SELECT json_build_object(", PATIENT, ")::text FROM patient p WHERE p.id = $1::uuid"),
    "/q2": sql(
        "SELECT coalesce(json_agg(json_build_object(",
        PATIENT,
        ", 'encounters', e.list) ORDER BY p.family_name, p.given_name, p.id), '[]')::text "
        "FROM (SELECT * FROM patient p WHERE ",
        _active_at_unit(sql("p.id")),
        " ORDER BY p.family_name, p.given_name, p.id LIMIT 50) p "
        "CROSS JOIN LATERAL ("
        "SELECT coalesce(json_agg(json_build_object('id', e.id, 'class', e.class_code, 'status', e.status, "
        "'periodStart', e.period_start, 'periodEnd', e.period_end, 'observations', o.list) "
        "ORDER BY e.period_start DESC, e.id DESC), '[]') AS list "
        "FROM (SELECT * FROM encounter e WHERE e.patient_id = p.id ORDER BY e.period_start DESC, e.id DESC LIMIT 5) e "
        "CROSS JOIN LATERAL ("
        "SELECT coalesce(json_agg(json_build_object(",
        OBSERVATION,
        ") ORDER BY ob.effective_at DESC, ob.id DESC), '[]') AS list "
        "FROM (SELECT * FROM observation ob WHERE ob.encounter_id = e.id "
        "ORDER BY ob.effective_at DESC, ob.id DESC LIMIT 10) ob) o) e",
    ),
    "/q3": sql(
        "SELECT coalesce(json_agg(json_build_object(",
        OBSERVATION,
        ", 'patientId', ob.patient_id) ORDER BY ob.effective_at DESC, ob.id DESC), '[]')::text "
        "FROM (SELECT * FROM observation ob WHERE ob.code = $2 AND ",
        _active_at_unit(sql("ob.patient_id")),
        " ORDER BY ob.effective_at DESC, ob.id DESC LIMIT 100) ob",
    ),
}

def _newest(table: str, alias: str, column: str, limit: int, fields: str) -> Sql:
    """A patient's newest rows of one table as a JSON array (the chart's lists), over the outer `p`."""
    return sql(
        "(SELECT coalesce(json_agg(json_build_object(",
        sql(fields),
        ") ORDER BY ",
        sql(f"{alias}.{column} DESC, {alias}.id DESC"),
        "), '[]') FROM (SELECT * FROM ",
        sql(f"{table} {alias} WHERE {alias}.patient_id = p.id AND {alias}.entered_in_error_at IS NULL "),
        sql(f"ORDER BY {alias}.{column} DESC, {alias}.id DESC LIMIT {limit}) {alias})"),
    )


ENCOUNTERS = sql(
    "(SELECT coalesce(json_agg(json_build_object('id', e.id, 'class', e.class_code, 'status', e.status, "
    "'periodStart', e.period_start, 'periodEnd', e.period_end, 'observations', "
    "(SELECT coalesce(json_agg(json_build_object(",
    OBSERVATION,
    ") ORDER BY ob.effective_at DESC, ob.id DESC), '[]') FROM (SELECT * FROM observation ob "
    "WHERE ob.encounter_id = e.id ORDER BY ob.effective_at DESC, ob.id DESC LIMIT 10) ob)) "
    "ORDER BY e.period_start DESC, e.id DESC), '[]') "
    "FROM (SELECT * FROM encounter e WHERE e.patient_id = p.id ORDER BY e.period_start DESC, e.id DESC LIMIT 5) e)",
)
STATEMENTS |= {
    "/c1": sql(
        "SELECT json_build_object(",
        PATIENT,
        ", 'encounters', ",
        ENCOUNTERS,
        ", 'conditions', ",
        _newest(
            "condition", "c", "recorded_at", 10,
            "'id', c.id, 'clinicalStatus', c.clinical_status, 'code', c.code, 'display', c.code_display, "
            "'recordedAt', c.recorded_at",
        ),
        ", 'medicationStatements', ",
        _newest(
            "medication_statement", "m", "date_asserted", 10,
            "'id', m.id, 'status', m.status, 'code', m.code, 'display', m.code_display, 'dosage', m.dosage, "
            "'dateAsserted', m.date_asserted",
        ),
        ", 'allergyIntolerances', ",
        _newest(
            "allergy_intolerance", "a", "recorded_at", 10,
            "'id', a.id, 'criticality', a.criticality, 'code', a.code, 'display', a.code_display, "
            "'recordedAt', a.recorded_at",
        ),
        ", 'carePlans', ",
        _newest(
            "care_plan", "cp", "created_at", 5, "'id', cp.id, 'status', cp.status, 'title', cp.title, "
            "'createdAt', cp.created_at"
        ),
        ")::text FROM patient p WHERE p.id = $1::uuid",
    ),
    "/l1": sql(
        "SELECT coalesce(json_agg(json_build_object('id', m.id, 'status', m.status, 'code', m.code, "
        "'display', m.code_display, 'dosage', m.dosage, 'start', m.effective_start, 'end', m.effective_end, "
        "'dateAsserted', m.date_asserted) ORDER BY m.date_asserted DESC, m.id DESC), '[]')::text "
        "FROM (SELECT * FROM medication_statement m WHERE m.entered_in_error_at IS NULL AND ",
        _active_at_unit(sql("m.patient_id")),
        " ORDER BY m.date_asserted DESC, m.id DESC LIMIT 100) m",
    ),
    "/w1": sql(
        "WITH o AS (INSERT INTO observation (id, patient_id, owning_unit_id, category, status, code_system, code, "
        "code_display, value_quantity, value_unit, effective_at) VALUES (gen_random_uuid(), $1::uuid, $2::uuid, "
        "'vital-signs', 'final', 'http://loinc.org', '8480-6', 'Systolic blood pressure', 120, 'mm[Hg]', "
        "$3::text::timestamptz) "
        "RETURNING id, patient_id) "
        "INSERT INTO audit_event (request_id, actor_kind, actor_id, client_id, patient_id, resource_kind, "
        "resource_ids, action, decision, reason, policy_version) "
        "SELECT gen_random_uuid(), 'personnel', 'floor', 'floor', o.patient_id, 'observation', ARRAY[o.id::text], "
        "'create', 'ALLOW', 'FLOOR', 'floor' FROM o WHERE audit_chain_lock() "
        "RETURNING json_build_object('id', resource_ids[1])::text",
    ),
}
# The statements as text: their parameters are positional, given per request.
SQL = {path: statement.render()[0] for path, statement in STATEMENTS.items()}
ARGUMENTS = {
    "/q1": ("patient_id",),
    "/q2": ("unit_id",),
    "/q3": ("unit_id", "code"),
    "/c1": ("patient_id",),
    "/l1": ("unit_id",),
    "/w1": ("patient_id", "unit_id", "effective_at"),
}
HEADERS = [(b"content-type", b"application/json"), (b"x-akson-sql-statements", b"1")]


Step = Callable[[], Awaitable[None]]


async def lifespan(receive: Any, send: Any, start: Step, stop: Step) -> None:
    """Answer the ASGI lifespan protocol, running `start` at startup and `stop` at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def request_body(receive: Any) -> bytes:
    """The whole body of an HTTP request."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


def server_arguments(description: str) -> argparse.Namespace:
    """--port and --workers, as `akson serve` takes them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    return parser.parse_args()


class Floor:
    """The ASGI app: one pool per worker, one statement per request."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.start, self.stop)
            return
        body = await request_body(receive)
        sql = SQL.get(scope["path"])
        if sql is None or self.pool is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        params = orjson.loads(body)
        answer = await self.pool.fetchval(sql, *(params[name] for name in ARGUMENTS[scope["path"]]))
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": (answer or "null").encode()})


app = Floor()


def main() -> None:
    """Serve the floor like `akson serve` serves the gateway."""
    args = server_arguments(__doc__.splitlines()[0])
    uvicorn.run("bench.floor:app", host="127.0.0.1", port=args.port, workers=args.workers, **SERVER)


if __name__ == "__main__":
    main()
