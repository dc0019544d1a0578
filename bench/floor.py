"""The raw-SQL floor of the benchmark: the same rows as Q1-Q3, fetched in one statement each with asyncpg,
the JSON built by PostgreSQL and passed through untouched; no GraphQL, no authorization, no audit.

A bare ASGI app under the same server as the gateway (uvicorn with uvloop and httptools, the same worker
count) so the two are measured through the same HTTP and load generator. POST /q1 {"patient_id"},
/q2 {"unit_id"}, /q3 {"unit_id", "code"}. Run: `DATABASE_URL=... python bench/floor.py --port P --workers W`.
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
# The statements as text: their parameters are positional, given per request.
SQL = {path: statement.render()[0] for path, statement in STATEMENTS.items()}
ARGUMENTS = {"/q1": ("patient_id",), "/q2": ("unit_id",), "/q3": ("unit_id", "code")}
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
