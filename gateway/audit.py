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
from opentelemetry import trace

from gateway.auth import Principal

_INSERT = """
INSERT INTO audit_event (request_id, trace_id, actor_kind, actor_id, actor_hpr_number, actor_unit_ids,
                         client_id, purpose_of_use, self_attested, emergency, policy_version,
                         patient_id, resource_kind, resource_ids, action, decision, reason)
SELECT r.request_id, r.trace_id, r.actor_kind, r.actor_id, r.actor_hpr_number,
       string_to_array(r.actor_unit_ids, ',')::uuid[], r.client_id, r.purpose_of_use, r.self_attested, r.emergency,
       r.policy_version, r.patient_id, r.resource_kind, string_to_array(r.resource_ids, ','), r.action, r.decision,
       r.reason
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::boolean[], $10::boolean[], $11::text[], $12::uuid[], $13::text[], $14::text[], $15::text[],
              $16::text[], $17::text[]) WITH ORDINALITY
       AS r(request_id, trace_id, actor_kind, actor_id, actor_hpr_number, actor_unit_ids, client_id, purpose_of_use,
            self_attested, emergency, policy_version, patient_id, resource_kind, resource_ids, action, decision, reason,
            ordinal)
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
        head = (
            self.request_id,
            trace_id,
            p.kind,
            p.id,
            p.hpr_number,
            ",".join(p.unit_ids),
            p.client_id,
            p.purpose_of_use,
            p.self_attested,
        )
        await writer.write(
            [
                (
                    *head,
                    r.emergency,
                    self.policy_version,
                    r.patient_id,
                    r.resource_kind,
                    ",".join(r.resource_ids),
                    r.action,
                    "ALLOW" if r.allowed else "DENY",
                    r.reason,
                )
                for r in pending
            ]
        )
        return len(pending)


AuditRow = tuple[Any, ...]


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
                    await self._pool.execute(_INSERT, *(list(column) for column in zip(*rows, strict=True)))
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
