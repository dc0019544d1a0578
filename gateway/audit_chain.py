"""The audit chain's integrity over time: verification from the last signed checkpoint, and archives of
whole months that verification of what remains continues from.

Every audit row carries the hash of the row before it (migrations 0008 and 0015). Walking a country's log
from the first row on every check does not scale, so each successful `akson audit verify` records a
checkpoint, the last row it verified and that row's hash, signed with the audit key (ES256, a file the
database cannot reach). The next run checks that row still has that hash and walks only what follows;
`--full` walks everything. `akson audit archive` moves months (partitions) that are over to gzipped
NDJSON files whose every line holds a row's digest fields, its link and its hash, so a file can be
checked without the database; the signed archive record says where the chain continues.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from gateway.sql import ident, sql

GENESIS = "0" * 64
_ALGORITHM = "ES256"
_FIELDS = (
    "id",
    "recorded_at",
    "request_id",
    "trace_id",
    "actor_kind",
    "actor_id",
    "actor_hpr_number",
    "actor_unit_ids",
    "client_id",
    "patient_id",
    "resource_kind",
    "resource_ids",
    "action",
    "purpose_of_use",
    "self_attested",
    "emergency",
    "decision",
    "reason",
    "policy_version",
)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the audit chain: rows checked, the first broken row (None when intact),
    what is wrong with it, and the row verification continued after (0: from the first row)."""

    checked: int
    broken_at: int | None
    problem: str | None
    continued_after: int = 0


class AuditSeal:
    """Signs and checks what `akson audit` records about the chain (checkpoints, archives)."""

    def __init__(self, key: ECKey) -> None:
        self._key = key

    def sign(self, fields: dict[str, Any]) -> str:
        """A compact JWS over the fields."""
        header = {"alg": _ALGORITHM, "kid": self._key.kid or self._key.thumbprint()}
        return jws.serialize_compact(header, orjson.dumps(fields, option=orjson.OPT_SORT_KEYS), self._key)

    def signed(self, signature: str, fields: dict[str, Any]) -> bool:
        """Whether `signature` is this key's signature over exactly these fields."""
        try:
            payload = jws.deserialize_compact(signature, self._key, algorithms=[_ALGORITHM]).payload
        except (JoseError, ValueError):
            return False
        return payload == orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _checkpoint_fields(last_id: int, last_hash: str) -> dict[str, Any]:
    return {"checkpoint": {"last_id": last_id, "last_hash": last_hash}}


def _archive_fields(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    names = ("partition_name", "first_id", "last_id", "first_prev_hash", "last_hash", "row_count", "file_sha256")
    return {"archive": {name: row[name] for name in names}}


def row_digest(prev_hash: str, fields: list[str]) -> str:
    """A row's hash from the hash before it and its digest fields, as `audit_row_digest` computes it."""
    return hashlib.sha256("|".join([prev_hash, *fields]).encode()).hexdigest()


async def _continue_from(conn: asyncpg.Connection, seal: AuditSeal, full: bool) -> tuple[int, str] | ChainReport:
    """Where verification starts: after the last archive, or (unless `full`) after the newest checkpoint
    whose signature holds; a report instead when what was recorded no longer matches."""
    after_id, expected = 0, GENESIS
    for archive in await conn.fetch("SELECT * FROM audit_archive ORDER BY last_id"):
        if not seal.signed(archive["signature"], _archive_fields(archive)):
            return ChainReport(0, archive["last_id"], "the archive record is not signed by the audit key (altered?)")
        if archive["first_prev_hash"] != expected:
            return ChainReport(0, archive["first_id"], "the archive does not link to the rows before it")
        after_id, expected = archive["last_id"], archive["last_hash"]
    if full:
        return after_id, expected
    checkpoints = await conn.fetch(
        "SELECT last_id, last_hash, signature FROM audit_checkpoint WHERE last_id > $1 ORDER BY last_id DESC LIMIT 10",
        after_id,
    )
    for checkpoint in checkpoints:
        if not seal.signed(checkpoint["signature"], _checkpoint_fields(checkpoint["last_id"], checkpoint["last_hash"])):
            continue
        now = await conn.fetchval("SELECT row_hash FROM audit_event WHERE id = $1", checkpoint["last_id"])
        if now != checkpoint["last_hash"]:
            return ChainReport(
                0, checkpoint["last_id"], "differs from the row the last verification signed (altered or removed since)"
            )
        return checkpoint["last_id"], checkpoint["last_hash"]
    return after_id, expected


async def verify_chain(conn: asyncpg.Connection, seal: AuditSeal, *, full: bool = False) -> ChainReport:
    """Recompute every row's digest and link in id order from where verification may continue; report
    the first row where the chain breaks (an altered row, a removed row, a row inserted out of band) or a
    truncated tail. An intact chain gets a new signed checkpoint at its last row."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        start = await _continue_from(conn, seal, full)
        if isinstance(start, ChainReport):
            return start
        after_id, expected = start
        checked, last_id = 0, after_id
        async for row in conn.cursor(
            "SELECT id, prev_hash, row_hash, audit_row_digest(prev_hash, a) AS recomputed "
            "FROM audit_event a WHERE id > $1 ORDER BY id",
            after_id,
        ):
            checked += 1
            if row["prev_hash"] != expected:
                return ChainReport(
                    checked,
                    row["id"],
                    "does not link to the row before it (a row was removed or inserted out of band)",
                    after_id,
                )
            if row["recomputed"] != row["row_hash"]:
                return ChainReport(
                    checked, row["id"], "its content does not match its hash (the row was altered)", after_id
                )
            expected, last_id = row["row_hash"], row["id"]
        head = await conn.fetchrow("SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1")
    if head is not None and head["last_hash"] != expected:
        return ChainReport(
            checked, int(head["last_id"]), "the newest rows are missing (the log was truncated)", after_id
        )
    if last_id > after_id:
        await conn.execute(
            "INSERT INTO audit_checkpoint (last_id, last_hash, signature) VALUES ($1, $2, $3)",
            last_id,
            expected,
            seal.sign(_checkpoint_fields(last_id, expected)),
        )
    return ChainReport(checked, None, None, after_id)


@dataclass(frozen=True)
class Archived:
    """One month moved to a file."""

    partition: str
    rows: int
    path: Path


def _month_of(partition: str) -> date | None:
    """The first day of a month partition's month (`audit_event_y2026m11`), None for any other."""
    prefix = "audit_event_y"
    if not partition.startswith(prefix) or len(partition) != len(prefix) + 7 or partition[-3] != "m":
        return None
    return date(int(partition[-7:-3]), int(partition[-2:]), 1)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def archive_before(conn: asyncpg.Connection, seal: AuditSeal, before: date, directory: Path) -> list[Archived]:
    """Move every month that ends on or before `before` to `directory`, oldest first, each in one
    transaction with its signed archive record; refuses unless the chain verifies first."""
    report = await verify_chain(conn, seal)
    if report.broken_at is not None:
        raise ValueError(f"the audit chain is broken at row {report.broken_at} ({report.problem}); nothing archived")
    names = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_event'::regclass"
    )
    months = sorted((month, r["relname"]) for r in names if (month := _month_of(r["relname"])) is not None)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    done: list[Archived] = []
    for month, partition in months:
        if _next_month(month) > before:
            break
        done.append(await _archive_month(conn, seal, partition, directory))
    return done


async def _archive_month(conn: asyncpg.Connection, seal: AuditSeal, partition: str, directory: Path) -> Archived:
    path = directory / f"{partition}.ndjson.gz"
    async with conn.transaction():
        await conn.execute("LOCK TABLE audit_event IN SHARE ROW EXCLUSIVE MODE")
        previous = await conn.fetchval("SELECT last_hash FROM audit_archive ORDER BY last_id DESC LIMIT 1")
        table = ident(partition)
        rows = await conn.fetch(
            sql(
                "SELECT id, prev_hash, row_hash, audit_row_fields(a) AS fields FROM ", table, " a ORDER BY id"
            ).render()[0]
        )
        if rows:
            later = await conn.fetchval(
                "SELECT count(*) FROM audit_event WHERE id < $1 AND tableoid <> $2::regclass", rows[-1]["id"], partition
            )
            if rows[0]["prev_hash"] != (previous or GENESIS) or later:
                raise ValueError(
                    f"{partition} is not the oldest stretch of the chain left; archive earlier months first"
                )
            digest = _write(path, rows)
            record = {
                "partition_name": partition,
                "first_id": rows[0]["id"],
                "last_id": rows[-1]["id"],
                "first_prev_hash": rows[0]["prev_hash"],
                "last_hash": rows[-1]["row_hash"],
                "row_count": len(rows),
                "file_sha256": digest,
            }
            await conn.execute(
                "INSERT INTO audit_archive (partition_name, first_id, last_id, first_prev_hash, last_hash, row_count, "
                "file_sha256, file_name, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                *record.values(),
                path.name,
                seal.sign(_archive_fields(record)),
            )
        await conn.execute(sql("ALTER TABLE audit_event DETACH PARTITION ", table).render()[0])
        await conn.execute(sql("DROP TABLE ", table).render()[0])
    return Archived(partition, len(rows), path)


def _write(path: Path, rows: list[asyncpg.Record]) -> str:
    """Write the rows as gzipped NDJSON (written whole, then renamed into place); the file's SHA-256."""
    draft = path.with_name(f".{path.name}.partial")
    with gzip.open(draft, "wb") as out:
        for row in rows:
            line = {
                "prev_hash": row["prev_hash"],
                "row_hash": row["row_hash"],
                **dict(zip(_FIELDS, row["fields"], strict=True)),
            }
            out.write(orjson.dumps(line) + b"\n")
    os.replace(draft, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_file_problem(record: asyncpg.Record | dict[str, Any], path: Path) -> str | None:
    """What is wrong with an archive file, checked against its record: its hash, each line's digest and link."""
    if not path.exists():
        return f"{path} is missing"
    if hashlib.sha256(path.read_bytes()).hexdigest() != record["file_sha256"]:
        return f"{path} is not the file that was archived (its SHA-256 differs)"
    expected, count = record["first_prev_hash"], 0
    with gzip.open(path, "rb") as lines:
        for raw in lines:
            line = orjson.loads(raw)
            count += 1
            if line["prev_hash"] != expected or row_digest(expected, [line[f] for f in _FIELDS]) != line["row_hash"]:
                return f"row {line['id']} does not match its hash or link"
            expected = line["row_hash"]
    if expected != record["last_hash"] or count != record["row_count"]:
        return "the file does not end where its record says"
    return None


async def verify_archives(conn: asyncpg.Connection, seal: AuditSeal, directory: Path) -> list[str]:
    """Check every archived month's file against its signed record, without the rows it held: the file's
    hash, and every line's digest and link. Returns the problems found (empty when all hold)."""
    problems = []
    for record in await conn.fetch("SELECT * FROM audit_archive ORDER BY last_id"):
        if not seal.signed(record["signature"], _archive_fields(record)):
            problem: str | None = "the archive record is not signed by the audit key"
        else:
            problem = await asyncio.to_thread(archive_file_problem, record, directory / record["file_name"])
        if problem:
            problems.append(f"{record['partition_name']}: {problem}")
    return problems
