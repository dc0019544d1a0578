"""Audit: what patient data was asked for, for whom, why, and what the policy said.

Records are collected while a request executes and written in one INSERT before its response leaves
the gateway. If the INSERT fails, the caller must not return the data: no audit, no data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg
from opentelemetry import trace

from gateway.auth import Principal

_INSERT = """
INSERT INTO audit_event (request_id, trace_id, actor_kind, actor_id, actor_hpr_number, actor_unit_ids,
                         client_id, purpose_of_use, self_attested, emergency, policy_version,
                         patient_id, resource_kind, resource_ids, action, decision, reason)
SELECT $1, $2, $3, $4, $5, $6::uuid[], $7, $8, $9, r.emergency, $10,
       r.patient_id, r.resource_kind, string_to_array(r.resource_ids, ','), r.action, r.decision, r.reason
  FROM unnest($11::uuid[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::boolean[])
       AS r(patient_id, resource_kind, resource_ids, action, decision, reason, emergency)
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

    async def flush(self, pool: asyncpg.Pool) -> int:
        """Write every pending record in one statement; raises if the database refuses."""
        if not self.records:
            return 0
        pending = _grouped(self.records)
        self.records = []
        context = trace.get_current_span().get_span_context()
        trace_id = f"{context.trace_id:032x}" if context.is_valid else None
        p = self.principal
        await pool.execute(
            _INSERT,
            self.request_id,
            trace_id,
            p.kind,
            p.id,
            p.hpr_number,
            list(p.unit_ids),
            p.client_id,
            p.purpose_of_use,
            p.self_attested,
            self.policy_version,
            [r.patient_id for r in pending],
            [r.resource_kind for r in pending],
            [",".join(r.resource_ids) for r in pending],
            [r.action for r in pending],
            ["ALLOW" if r.allowed else "DENY" for r in pending],
            [r.reason for r in pending],
            [r.emergency for r in pending],
        )
        return len(pending)


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
