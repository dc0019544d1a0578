"""A seeded journal in a database of its own for one benchmark run, dropped when the run ends: on the server
`DATABASE_URL` names, or in an embedded PostgreSQL under the benchmark's work folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg

from gateway.components import start_embedded_postgres
from gateway.db import migrate, with_database
from gateway.seed import seed


@contextlib.contextmanager
def scratch_journal(work: Path, patients: int, prefix: str) -> Iterator[str]:
    """The URL of a fresh database seeded with `patients` synthetic patients."""
    server = os.environ.get("DATABASE_URL")
    stop: Callable[[], None] | None = None
    if not server:
        server, stop = start_embedded_postgres(work / "pgdata")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def prepare() -> None:
        await admin(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server, name))
        try:
            await migrate(conn)
            await seed(conn, patients=patients)
        finally:
            await conn.close()

    try:
        asyncio.run(prepare())
        yield with_database(server, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if stop:
            stop()
