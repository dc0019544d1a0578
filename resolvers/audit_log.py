"""The audit log in GraphQL: patients see who accessed their data (innsyn i logg), compliance officers
query the whole log and review emergency accesses, policy admins read the denial report."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import strawberry

from gateway import resources as K
from gateway.errors import BadUserInput
from gateway.store import ListArgs, Row, parse_global_id
from resolvers.access import EmergencyGrant
from resolvers.common import (
    NODE_TYPES,
    AfterArg,
    Connection,
    FirstArg,
    Info,
    global_id,
    to_one,
    top_list,
)
from resolvers.types import TYPES

if TYPE_CHECKING:  # the types are built at import from the declarations; to the type checker they are Any
    Organization: TypeAlias = Any
    Practitioner: TypeAlias = Any
else:
    Organization = TYPES["Organization"]
    Practitioner = TYPES["Practitioner"]

MAX_SPAN = timedelta(days=366)


@strawberry.enum(description="What the policy decided.")
class Decision(Enum):
    ALLOW = "ALLOW"
    DENY = "DENY"


@strawberry.type(
    description="One audit record (FHIR AuditEvent-like): who accessed which of a patient's data, "
    "when, from which unit and app, why, and what the policy decided."
)
class AuditEvent:
    recorded_at: datetime = strawberry.field(description="When.")
    actor_kind: str = strawberry.field(description="personnel, citizen or service.")
    actor_hpr_number: str | None = strawberry.field(description="The actor's HPR number, for health personnel.")
    client_id: str = strawberry.field(description="The app the access came through.")
    resource_kind: str = strawberry.field(description="What kind of data.")
    resource_count: int = strawberry.field(description="How many items of it.")
    action: str = strawberry.field(description="read, search, create, ...")
    purpose_of_use: str | None = strawberry.field(description="The stated purpose (HL7 PurposeOfUse).")
    self_attested: bool = strawberry.field(description="The care relation was stated by the user.")
    emergency: bool = strawberry.field(description="An emergency access (akuttilgang): highlighted for the patient.")
    decision: Decision = strawberry.field(description="Allowed or denied.")
    reason: str | None = strawberry.field(description="The policy's reason code.")
    policy_version: str = strawberry.field(description="The policy version that decided.")
    actor_id: strawberry.Private[str]
    unit_ids: strawberry.Private[list[uuid.UUID]]
    patient_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> AuditEvent:
        return cls(
            recorded_at=row["recorded_at"],
            actor_kind=row["actor_kind"],
            actor_hpr_number=row["actor_hpr_number"],
            client_id=row["client_id"],
            resource_kind=row["resource_kind"],
            resource_count=len(row["resource_ids"]),
            action=row["action"],
            purpose_of_use=row["purpose_of_use"],
            self_attested=row["self_attested"],
            emergency=row["emergency"],
            decision=Decision(row["decision"]),
            reason=row["reason"],
            policy_version=row["policy_version"],
            actor_id=row["actor_id"],
            unit_ids=list(row["actor_unit_ids"]),
            patient_id=row["patient_id"],
        )

    @strawberry.field(description="The person who accessed the data, when it was health personnel.")
    async def actor(self, info: Info) -> Practitioner | None:
        if self.actor_kind != "personnel":
            return None
        return await to_one(info, K.PRACTITIONER, uuid.UUID(self.actor_id))

    @strawberry.field(description="The units the actor worked in.")
    async def units(self, info: Info) -> list[Organization | None]:
        return [await to_one(info, K.ORGANIZATION, unit) for unit in self.unit_ids]

    @strawberry.field(description="The patient's global id, if the access concerned a patient.")
    def patient_id_global(self) -> strawberry.ID | None:
        return None if self.patient_id is None else strawberry.ID(str(global_id(K.PATIENT, self.patient_id)))


NODE_TYPES[K.AUDIT_EVENT.type_name] = AuditEvent


@strawberry.input(description="Which part of the log. A bounded time range is required (at most a year).")
class AccessLogFilter:
    recorded_from: datetime = strawberry.field(description="From (inclusive).")
    recorded_to: datetime = strawberry.field(description="To (exclusive).")
    patient_id: strawberry.ID | None = strawberry.field(default=None, description="Only this patient.")
    actor_id: strawberry.ID | None = strawberry.field(default=None, description="Only this practitioner.")
    unit_id: strawberry.ID | None = strawberry.field(default=None, description="Only accesses from this unit.")
    client_id: str | None = strawberry.field(default=None, description="Only this app.")
    emergency: bool | None = strawberry.field(default=None, description="Only emergency accesses (true).")
    decision: Decision | None = strawberry.field(default=None, description="Only allowed or denied accesses.")


def _time_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise BadUserInput("give times with a time zone (e.g. 2026-11-01T00:00:00Z)", argument="filter")
    if end <= start:
        raise BadUserInput("the time range is inverted: recordedTo must come after recordedFrom", argument="filter")
    if end - start > MAX_SPAN:
        raise BadUserInput("the time range may span at most a year", argument="filter")


async def access_log(
    info: Info,
    first: FirstArg,
    filter: Annotated[AccessLogFilter, strawberry.argument(description="The time range, and optional narrowing.")],
    after: AfterArg = None,
) -> Connection[AuditEvent]:
    """Who accessed patient data, newest first: your own data (and a young child's) as a patient; everything as
    a compliance officer. Reading the log is itself audited."""
    _time_range(filter.recorded_from, filter.recorded_to)
    filters: list[tuple[str, object]] = [("recorded_from", filter.recorded_from), ("recorded_to", filter.recorded_to)]
    if filter.actor_id is not None:
        filters.append(("actor_id", parse_global_id(str(filter.actor_id), K.PRACTITIONER)[1]))
    if filter.unit_id is not None:
        filters.append(("unit_id", parse_global_id(str(filter.unit_id), K.ORGANIZATION)[1]))
    if filter.client_id is not None:
        filters.append(("client_id", filter.client_id))
    if filter.emergency is not None:
        filters.append(("emergency", filter.emergency))
    if filter.decision is not None:
        filters.append(("decision", filter.decision.value))
    if filter.patient_id is not None:
        filters.append(("patient_id", parse_global_id(str(filter.patient_id), K.PATIENT)[1]))
    return await top_list(info, K.AUDIT_EVENT, ListArgs(first=first, after=after, filters=tuple(filters)))


@strawberry.type(
    description="Denials in a period, counted by app, vendor, kind of data and reason: where the rules "
    "block use that may be legitimate (information blocking)."
)
class DenialCount:
    client_id: str = strawberry.field(description="The app.")
    vendor_org_number: str | None = strawberry.field(description="The app's vendor, when registered.")
    resource_kind: str = strawberry.field(description="The kind of data.")
    reason: str | None = strawberry.field(description="The reason code.")
    denials: int = strawberry.field(description="How many denials.")


async def denial_report(
    info: Info,
    recorded_from: Annotated[datetime, strawberry.argument(description="From (inclusive).")],
    recorded_to: Annotated[datetime, strawberry.argument(description="To (exclusive).")],
) -> list[DenialCount]:
    """Denials by app, vendor, kind and reason over a period, most frequent first (policy admins, compliance)."""
    _time_range(recorded_from, recorded_to)
    rows = await info.context.store.denial_report(recorded_from, recorded_to)
    return [
        DenialCount(
            client_id=r["client_id"],
            vendor_org_number=r["vendor_org_number"],
            resource_kind=r["resource_kind"],
            reason=r["reason"],
            denials=r["denials"],
        )
        for r in rows
    ]


@strawberry.type(description="Review of emergency accesses (compliance).")
class ReviewMutations:
    @strawberry.mutation(description="Mark an emergency access reviewed, with the review's conclusion.")
    async def review_emergency_access(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The grant's global id.")],
        conclusion: Annotated[str, strawberry.argument(description="What the review concluded.")],
    ) -> EmergencyGrant:
        _, raw = parse_global_id(str(id), K.EMERGENCY_GRANT)
        return EmergencyGrant.from_row(await info.context.writes.review_emergency_access(raw, conclusion))


@strawberry.type(description="One output of a rule that matched: where it came from and what it said.")
class RuleOutput:
    source: str = strawberry.field(description="The rule (`resource.<kind>.vdefault[/scope]#<rule>`).")
    value: str = strawberry.field(description="What it output (a reason code).")


@strawberry.type(
    description="Why a person may or may not take an action on a resource, as the gateway decides it (the same "
    "answer `akson policy explain` gives): the person signed in for treatment through an app with every user/ scope."
)
class DecisionExplanation:
    decision: Decision = strawberry.field(description="Allowed or denied.")
    reason: str = strawberry.field(description="The reason code the gateway reports and audits.")
    matched_rule: str = strawberry.field(description="The policy that decided; empty for the default deny.")
    matched_scope: str = strawberry.field(description="The policy scope that decided; empty for the national one.")
    decided_in_scope: str = strawberry.field(
        description="The municipal scope the resource was decided in; empty for the national baseline."
    )
    derived_roles: list[str] = strawberry.field(description="Roles the person held for this resource.")
    person_roles: list[str] = strawberry.field(description="The person's roles.")
    outputs: list[RuleOutput] = strawberry.field(description="Every output of the rules that matched.")
    policy_version: str = strawberry.field(description="The policy version in force.")


async def explain_decision(
    info: Info,
    person_id: Annotated[strawberry.ID, strawberry.argument(description="The person's global id (a Practitioner).")],
    resource_id: Annotated[strawberry.ID, strawberry.argument(description="The resource's global id.")],
    action: Annotated[str, strawberry.argument(description="read, search, read_text, create, update, ...")],
) -> DecisionExplanation:
    """Explain one decision (policy admins and compliance officers; audited)."""
    if not action.replace("_", "").isalpha() or not 1 <= len(action) <= 40 or not action.islower():
        raise BadUserInput("action must be a policy action such as read, search or update", argument="action")
    _, person = parse_global_id(str(person_id), K.PRACTITIONER)
    kind, rid = parse_global_id(str(resource_id))
    found = await info.context.explainer.explain(person, kind, rid, action)
    return DecisionExplanation(
        decision=Decision.ALLOW if found.allowed else Decision.DENY,
        reason=found.reason,
        matched_rule=found.matched_policy,
        matched_scope=found.matched_scope,
        decided_in_scope=found.scope,
        derived_roles=found.derived_roles,
        person_roles=sorted(found.principal.roles),
        outputs=[RuleOutput(source=src, value=val) for src, val in found.outputs],
        policy_version=found.policy_version,
    )
