"""Migrations: applied in order, once, each in one transaction; a failure leaves nothing behind."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from gateway.db import Migration, MigrationError, bundled_migrations, migrate
from tests.conftest import run


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def with_conn(url: str, body: Any) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(url)
        try:
            return await body(conn)
        finally:
            await conn.close()

    return run(go())


def test_bundled_migrations_apply_once_and_rerunning_is_a_no_op(make_database: Any) -> None:
    url = make_database()

    async def body(conn: asyncpg.Connection) -> tuple[list[str], list[str], set[str], int]:
        first = await migrate(conn)
        second = await migrate(conn)
        count = await conn.fetchval("SELECT count(*) FROM schema_migration")
        return first, second, await tables(conn), count

    first, second, present, count = with_conn(url, body)
    assert first == [f"{m.version:04d}_{m.name}" for m in bundled_migrations()]
    assert second == []
    assert {"patient", "care_relation", "audit_event", "observation"} <= present
    assert count == len(bundled_migrations())


def test_a_failing_migration_leaves_the_database_unchanged(make_database: Any) -> None:
    url = make_database()
    good = Migration(1, "first", "CREATE TABLE kept (id int);")
    bad = Migration(2, "broken", "CREATE TABLE half_done (id int); INSERT INTO kept VALUES (1); SELECT 1/0;")

    async def body(conn: asyncpg.Connection) -> tuple[str, set[str], list[int], int]:
        with pytest.raises(MigrationError) as failure:
            await migrate(conn, [good, bad])
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migration")]
        rows = await conn.fetchval("SELECT count(*) FROM kept")
        return str(failure.value), await tables(conn), versions, rows

    message, present, versions, rows = with_conn(url, body)
    assert "0002_broken" in message and "rolled back" in message
    assert "half_done" not in present and "kept" in present
    assert versions == [1]
    assert rows == 0


def test_an_applied_migration_that_was_edited_stops_start_up(make_database: Any) -> None:
    url = make_database()

    async def body(conn: asyncpg.Connection) -> str:
        await migrate(conn, [Migration(1, "first", "CREATE TABLE t (id int);")])
        with pytest.raises(MigrationError) as failure:
            await migrate(conn, [Migration(1, "first", "CREATE TABLE t (id bigint);")])
        return str(failure.value)

    assert "changed after it was applied" in with_conn(url, body)
