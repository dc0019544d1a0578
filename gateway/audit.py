"""Audit: what patient data was asked for, for whom, why, and what the policy said.

Records are collected while a request executes and written before its response leaves the gateway.
If they cannot be written, the caller must not return the data: no audit, no data.

The audit chain (migration 0008) makes every insert take one lock, so inserts from concurrent requests
queue behind each other. The AuditWriter therefore commits the records of every request that finished
while the previous write was under way in one INSERT (group commit); each request still waits until its
own records are committed.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from opentelemetry import trace

from gateway.auth import Principal

# The rows travel as one JSON document: encoding seventeen parameter arrays element by element was the
# larger part of the gateway's own audit cost (py-spy, bench/PROFILE.md).
_COLUMNS = (
    ("request_id", "uuid"),
    ("trace_id", "text"),
    ("actor_kind", "text"),
    ("actor_id", "text"),
    ("actor_hpr_number", "text"),
    ("actor_unit_ids", "uuid[]"),
    ("client_id", "text"),
    ("purpose_of_use", "text"),
    ("self_attested", "boolean"),
    ("emergency", "boolean"),
    ("policy_version", "text"),
    ("patient_id", "uuid"),
    ("resource_kind", "text"),
    ("resource_ids", "text[]"),
    ("action", "text"),
    ("decision", "text"),
    ("reason", "text"),
)
_NAMES = ", ".join(name for name, _ in _COLUMNS)
_INSERT = f"""
INSERT INTO audit_event ({_NAMES})
SELECT {_NAMES}
  FROM ROWS FROM (json_to_recordset($1::json) AS ({", ".join(f"{name} {kind}" for name, kind in _COLUMNS)}))
       WITH ORDINALITY AS r({_NAMES}, ordinal)
 ORDER BY r.ordinal
"""


@dataclass(frozen=True)
class AuditRecord:
    """One decision about one patient's resources of one kind."""

    patient_id: str | None
    resource_kind: str
    resource_ids: tuple[str, ...]
    action: str
    allowed: bool
    reason: str
    emergency: bool = False


def _grouped(records: list[AuditRecord]) -> list[AuditRecord]:
    """One record per patient, kind, action and outcome, with all their resource ids: a page of 2,500
    observations of 50 patients is 50 rows, not 2,500."""
    groups: dict[tuple[str | None, str, str, bool, str, bool], list[str]] = {}
    for r in records:
        key = (r.patient_id, r.resource_kind, r.action, r.allowed, r.reason, r.emergency)
        groups.setdefault(key, []).extend(r.resource_ids)
    return [
        AuditRecord(p, k, tuple(dict.fromkeys(ids)), a, allowed, reason, emergency)
        for (p, k, a, allowed, reason, emergency), ids in groups.items()
    ]


@dataclass
class AuditTrail:
    """The audit records of one request, and the request's identity in the log."""

    principal: Principal
    policy_version: str
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    records: list[AuditRecord] = field(default_factory=list)

    def record(self, record: AuditRecord) -> None:
        """Remember a decision; it is written by `flush` before the response."""
        self.records.append(record)

    async def flush(self, writer: AuditWriter) -> int:
        """Write every pending record; returns once they are committed, raises if they could not be."""
        if not self.records:
            return 0
        pending = _grouped(self.records)
        self.records = []
        context = trace.get_current_span().get_span_context()
        trace_id = f"{context.trace_id:032x}" if context.is_valid else None
        p = self.principal
        head = {
            "request_id": self.request_id,
            "trace_id": trace_id,
            "actor_kind": p.kind,
            "actor_id": p.id,
            "actor_hpr_number": p.hpr_number,
            "actor_unit_ids": list(p.unit_ids),
            "client_id": p.client_id,
            "purpose_of_use": p.purpose_of_use,
            "self_attested": p.self_attested,
            "policy_version": self.policy_version,
        }
        await writer.write(
            [
                {
                    **head,
                    "emergency": r.emergency,
                    "patient_id": r.patient_id,
                    "resource_kind": r.resource_kind,
                    "resource_ids": r.resource_ids,
                    "action": r.action,
                    "decision": "ALLOW" if r.allowed else "DENY",
                    "reason": r.reason,
                }
                for r in pending
            ]
        )
        return len(pending)


AuditRow = dict[str, Any]


class AuditWriter:
    """The process's one writer of audit rows: requests hand over their rows and wait for the commit.

    While one INSERT is under way, the rows of requests finishing meanwhile gather for the next one, so
    under load many requests share an INSERT and a commit, and the chain lock is taken once for them
    all. A failed INSERT fails every request in it: none of them returns data."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiting: list[tuple[list[AuditRow], asyncio.Future[None]]] = []
        self._writing = False
        self._task: asyncio.Task[None] | None = None

    async def write(self, rows: list[AuditRow]) -> None:
        """Returns when `rows` are committed; raises what the database raised otherwise."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, done))
        if not self._writing:
            self._writing = True
            self._task = asyncio.get_running_loop().create_task(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                rows = [row for rows, _ in batch for row in rows]
                try:
                    await self._pool.execute(_INSERT, orjson.dumps(rows).decode())
                except BaseException as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writing = False


GENESIS = "0" * 64


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the audit chain."""

    checked: int
    broken_at: int | None
    problem: str | None


async def verify_chain(conn: asyncpg.Connection) -> ChainReport:
    """Recompute every row's digest and link in id order; report the first row where the chain breaks
    (an altered row, a removed row, a row inserted out of band) or a truncated tail."""
    checked = 0
    expected_prev = GENESIS
    last_hash = GENESIS
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(
            "SELECT id, prev_hash, row_hash, audit_row_digest(prev_hash, a) AS recomputed "
            "FROM audit_event a ORDER BY id"
        ):
            checked += 1
            if row["prev_hash"] != expected_prev:
                return ChainReport(
                    checked, row["id"], "does not link to the row before it (a row was removed or inserted out of band)"
                )
            if row["recomputed"] != row["row_hash"]:
                return ChainReport(checked, row["id"], "its content does not match its hash (the row was altered)")
            expected_prev = last_hash = row["row_hash"]
        head = await conn.fetchrow("SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1")
    if head is not None and head["last_hash"] != last_hash:
        return ChainReport(checked, int(head["last_id"]), "the newest rows are missing (the log was truncated)")
    return ChainReport(checked, None, None)
