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
from gateway.sql import ident, join, sql, value

# The rows travel as one JSON document: encoding seventeen parameter arrays element by element was the
# larger part of the gateway's own audit cost (py-spy, bench/PROFILE.md).
_COLUMNS = (
    ("request_id", sql("uuid")),
    ("trace_id", sql("text")),
    ("actor_kind", sql("text")),
    ("actor_id", sql("text")),
    ("actor_hpr_number", sql("text")),
    ("actor_unit_ids", sql("uuid[]")),
    ("client_id", sql("text")),
    ("purpose_of_use", sql("text")),
    ("self_attested", sql("boolean")),
    ("emergency", sql("boolean")),
    ("policy_version", sql("text")),
    ("patient_id", sql("uuid")),
    ("resource_kind", sql("text")),
    ("resource_ids", sql("text[]")),
    ("action", sql("text")),
    ("decision", sql("text")),
    ("reason", sql("text")),
)
_NAMES = join(ident(name) for name, _ in _COLUMNS)
_TYPED = join(sql(ident(name), " ", pg_type) for name, pg_type in _COLUMNS)

AuditRow = dict[str, Any]


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

    def abandoned(self, reason: str) -> None:
        """Record that the request was stopped before its answer (deadline, client gone), and why."""
        self.record(AuditRecord(None, "request", (str(self.request_id),), "execute", False, reason))

    def mark(self) -> int:
        """How many records are pending, for `rewind`."""
        return len(self.records)

    def rewind(self, mark: int) -> None:
        """Drop the records made since `mark`: what they record was read but is not answered."""
        del self.records[mark:]

    async def flush(self, writer: AuditWriter) -> int:
        """Write every pending record; returns once they are committed, raises if they could not be."""
        if not self.records:
            return 0
        pending = _grouped(self.records)
        self.records = []
        await writer.write(self.rows(pending))
        return len(pending)

    def rows(self, records: list[AuditRecord]) -> list[AuditRow]:
        """The audit rows of `records`: who asked, through which app, why, and the policy version."""
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
        return [
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
            for r in records
        ]


async def insert_rows(conn: asyncpg.Connection | asyncpg.Pool, rows: list[AuditRow]) -> None:
    """Insert audit rows in one statement (inside the caller's transaction, when it has one), in order."""
    text, values = sql(
        "INSERT INTO audit_event (",
        _NAMES,
        ") SELECT ",
        _NAMES,
        " FROM ROWS FROM (json_to_recordset(",
        value(orjson.dumps(rows).decode(), "json"),
        ") AS (",
        _TYPED,
        ")) WITH ORDINALITY AS r(",
        _NAMES,
        # The chain lock is taken before any row is formed, so every row's time (its month's partition) is
        # read under the lock: time order is chain order (migration 0015).
        ", ordinal) WHERE audit_chain_lock() ORDER BY r.ordinal",
    ).render()
    await conn.execute(text, *values)


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
                    await insert_rows(self._pool, rows)
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
