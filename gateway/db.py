"""PostgreSQL: the connection pool, database creation and the migrations runner.

Migrations are numbered plain-SQL files in `gateway/migrations/`, applied in order, each in its own
transaction and recorded with a checksum in `schema_migration`. Re-running is a no-op; a failing file
rolls back completely; an applied file that was edited afterwards stops start-up, because the database
no longer matches the code. A session advisory lock serializes gateways that start at the same time.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x414B534F4E  # "AKSON"
# The role the gateway's pool works as (migration 0008): it may only add to the audit log.
GATEWAY_ROLE = "akson_gateway"


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file shipped with the package."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """A migration could not be applied, or an applied one was changed after the fact."""


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in `gateway/migrations`, in version order."""
    found: list[Migration] = []
    for entry in resources.files("gateway.migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number: {versions}")
    return found


# Months ahead whose audit partitions exist after every migration (and so every `akson serve`); rows past
# them land in the default partition, which archiving leaves alone.
AUDIT_MONTHS_AHEAD = 3


async def ensure_audit_partitions(conn: asyncpg.Connection) -> None:
    """Create this month's audit partition and the next ones, where the schema has partitions."""
    if await conn.fetchval("SELECT to_regprocedure('audit_ensure_partitions(date, integer)') IS NOT NULL"):
        await conn.execute("SELECT audit_ensure_partitions(current_date, $1)", AUDIT_MONTHS_AHEAD)


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Bring the schema up to date so the code and the tables agree; returns what was applied."""
    migrations = bundled_migrations() if migrations is None else migrations
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migration (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migration")}
        for migration in migrations:
            previous = done.get(migration.version)
            if previous is not None:
                if previous["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it was "
                        "applied; add a new migration instead of editing an applied one"
                    )
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migration (version, name, checksum) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed and was rolled back: {exc}"
                ) from exc
            applied_now.append(f"{migration.version:04d}_{migration.name}")
        await ensure_audit_partitions(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (query parameters such as host are kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when the server does not have it yet."""
    name = urlsplit(url).path.lstrip("/") or "postgres"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"database name {name!r} must be a plain identifier")
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


MAX_CACHED_STATEMENT_BYTES = 128 * 1024


async def _keep_connection(conn: asyncpg.Connection) -> None:
    return None


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, statement_timeout_ms: int = 30_000
) -> asyncpg.Pool:
    """The gateway's connection pool; statements run with a timeout (a request's deadline) so a stuck
    query fails cleanly in PostgreSQL too.

    The gateway keeps no session state on pooled connections (no advisory locks, LISTEN, cursors or
    SET), so the default reset round trip on every release is skipped. A whole-selection read is one
    statement of 10 to 30 KB; asyncpg prepares and caches only statements up to 15 KB by default, and
    parsing and planning such a read again on every request cost about a tenth of its time. JIT is off:
    PostgreSQL compiled the policy filter of a 100-row list for 440 ms to run it for 44 (bench/PROFILE.md).
    """
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        reset=_keep_connection,
        max_cacheable_statement_size=MAX_CACHED_STATEMENT_BYTES,
        server_settings={
            "application_name": "akson-gateway",
            "timezone": "UTC",
            "role": GATEWAY_ROLE,
            "statement_timeout": str(statement_timeout_ms),
            "jit": "off",
        },
    )
    assert pool is not None
    return pool


class Reads(Protocol):
    """What the store reads with: the pool itself, or one app's share of it."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...


class AppShare:
    """One third-party app's share of the process's connections for its reads: all but one of them, so
    that however long its statements run, another app's reads always find a connection."""

    def __init__(self, pool: asyncpg.Pool, share: asyncio.Semaphore) -> None:
        self._pool = pool
        self._share = share

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """`Pool.fetch` within the app's share."""
        async with self._share:
            return list(await self._pool.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """`Pool.fetchrow` within the app's share."""
        async with self._share:
            row: asyncpg.Record | None = await self._pool.fetchrow(query, *args)
            return row


class AppShares:
    """The shares of every third-party app that read through this process."""

    def __init__(self, pool: asyncpg.Pool, connections: int) -> None:
        self._pool = pool
        self._connections = max(1, connections - 1)
        self._shares: dict[str, AppShare] = {}

    def of(self, client_id: str) -> AppShare:
        """The app's share (made on its first request)."""
        share = self._shares.get(client_id)
        if share is None:
            share = self._shares[client_id] = AppShare(self._pool, asyncio.Semaphore(self._connections))
        return share
