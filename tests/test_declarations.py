"""The declarations of the kinds agree with the database the migrations make: every declared column exists,
and every column a write sets has the type the write path sends."""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.db import migrate
from gateway.resources import KINDS
from gateway.write_path import column_types
from tests.conftest import run

# information_schema names the types the write path casts to
TYPE_NAMES = {
    "text": "text",
    "uuid": "uuid",
    "timestamptz": "timestamp with time zone",
    "date": "date",
    "boolean": "boolean",
    "integer": "integer",
    "numeric": "numeric",
}


def test_every_declared_column_exists_with_the_type_writes_use(make_database: Any) -> None:
    url = make_database()

    async def tables() -> dict[str, dict[str, str]]:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            rows = await conn.fetch(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public'"
            )
        finally:
            await conn.close()
        found: dict[str, dict[str, str]] = {}
        for r in rows:
            found.setdefault(r["table_name"], {})[r["column_name"]] = r["data_type"]
        return found

    schema = run(tables())
    missing, mistyped, checked = [], [], 0
    for kind in KINDS.values():
        columns = schema[kind.table]
        missing += [f"{kind.table}.{c}" for c in kind.columns if c not in columns]
        if not kind.writable:
            continue
        for column, pg_type in column_types(kind).items():
            if column in columns:
                checked += 1
                if columns[column] != TYPE_NAMES[pg_type]:
                    mistyped.append(f"{kind.table}.{column}: {columns[column]} written as {pg_type}")
    assert missing == [] and mistyped == []
    assert checked > 100
