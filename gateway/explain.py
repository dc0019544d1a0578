"""Explaining one decision: the answer `akson policy explain`, the `explainDecision` query and the console give.

The person is looked up as the gateway looks them up when they sign in (for treatment, through an app with
every `user/` scope), the resource is loaded with its policy attributes and municipal scope by the gateway's
own SQL, and the gateway's own authorizer asks the PDP with metadata (`Authorizer.explain`): the decision,
the reason the gateway would report, the matched policy and scope, the rules' outputs and the policy version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.audit import AuditRecord, AuditTrail
from gateway.auth import Principal, principal_of_claims
from gateway.authz import Authorizer
from gateway.claims import ClaimNames
from gateway.declare import ResourceKind
from gateway.errors import Forbidden, NotFound
from gateway.personas import DEMO_APP_CLIENT_ID, PERSONNEL_SCOPES
from gateway.resources import AUDIT_EVENT
from gateway.store import attributes_of, fetch, rows_by_id


@dataclass(frozen=True)
class Answer:
    """One decision explained."""

    principal: Principal
    kind: ResourceKind
    resource_id: str
    action: str
    attributes: dict[str, Any]
    allowed: bool
    reason: str
    matched_policy: str
    matched_scope: str
    scope: str
    derived_roles: list[str]
    outputs: list[tuple[str, str]]
    policy_version: str


def personnel_claims(names: ClaimNames, national_id: str) -> dict[str, Any]:
    """The claims of a person signing in to a user-facing app with every `user/` scope, for treatment."""
    return {
        names.client_id: DEMO_APP_CLIENT_ID,
        names.scope: PERSONNEL_SCOPES,
        names.personnel_pid: national_id,
        names.purpose_of_use: "TREAT",
    }


async def practitioner_principal(pool: asyncpg.Pool | asyncpg.Connection, names: ClaimNames, pid: str) -> Principal:
    """A practitioner of the journal (by id) as the gateway would see them signed in for treatment."""
    national_id = await pool.fetchval("SELECT national_id FROM practitioner WHERE id::text = $1", pid)
    if national_id is None:
        raise NotFound("no practitioner with this id is in the journal")
    return await principal_of_claims(pool, names, personnel_claims(names, national_id))


async def explain(
    pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, kind: ResourceKind, rid: str, action: str
) -> Answer:
    """Why `principal` may or may not `action` the resource, as the gateway decides it."""
    rows = await fetch(pool, rows_by_id(kind, [rid]))
    if not rows:
        raise NotFound(f"no {kind.type_name} with this id is in the journal")
    [row] = rows
    attributes = attributes_of(kind, row)
    found = await authorizer.explain(
        principal, kind, action, rid, attributes, row["_scope"] if kind.scope_sql else None
    )
    return Answer(
        principal=principal,
        kind=kind,
        resource_id=rid,
        action=action,
        attributes=attributes,
        allowed=found.decision.allowed,
        reason=found.decision.reason,
        matched_policy=found.matched_policy,
        matched_scope=found.matched_scope,
        scope=found.scope,
        derived_roles=found.derived_roles,
        outputs=found.outputs,
        policy_version=authorizer.policy_version,
    )


class Explainer:
    """Per-request door for `explainDecision`: policy admins and compliance officers (`explain` on the audit
    log), audited as a look at the resource's patient."""

    def __init__(
        self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, audit: AuditTrail, names: ClaimNames
    ) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit
        self._names = names

    async def explain(self, person_id: str, kind: ResourceKind, rid: str, action: str) -> Answer:
        """Why the person may or may not `action` the resource, if the caller may ask."""
        [decision] = await self._authorizer.check(
            self._principal,
            AUDIT_EVENT,
            "explain",
            [("explain", {"patient_id": "", "patient_age": 0, "blocked_for_guardians": False})],
        )
        patient = None
        if decision.allowed and kind.patient_column is not None:
            rows = await fetch(self._pool, rows_by_id(kind, [rid], for_policy=False))
            patient = str(rows[0][kind.patient_column]) if rows else None
        self._audit.record(AuditRecord(patient, kind.name, (rid,), "explain", decision.allowed, decision.reason))
        if not decision.allowed:
            raise Forbidden(
                "explaining decisions is for policy admins and compliance officers",
                reason=decision.reason,
                policyVersion=self._authorizer.policy_version,
            )
        principal = await practitioner_principal(self._pool, self._names, person_id)
        return await explain(self._pool, self._authorizer, principal, kind, rid, action)
