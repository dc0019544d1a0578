"""Access-rule writes in GraphQL: emergency access (akuttilgang) and restrictions (sperring)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import strawberry

from gateway import resources as K
from gateway.declare import ResourceKind
from gateway.store import parse_global_id
from resolvers.common import AfterArg, Connection, FirstArg, Info, top_list
from resolvers.common import list_args as _list_args
from resolvers.types import ENUMS, TYPES, filter_of

if TYPE_CHECKING:  # the types are built at import from the declarations; to the type checker they are Any
    EmergencyGrant: TypeAlias = Any
    ClinicalNote: TypeAlias = Any
    Restriction: TypeAlias = Any
    RestrictionScope: TypeAlias = Any
    EmergencyGrantFilterArg: TypeAlias = Any
else:
    EmergencyGrant = TYPES["EmergencyGrant"]
    ClinicalNote = TYPES["ClinicalNote"]
    Restriction = TYPES["Restriction"]
    RestrictionScope = ENUMS["RestrictionScope"]
    EmergencyGrantFilterArg = Annotated[
        filter_of(K.EMERGENCY_GRANT) | None, strawberry.argument(description="Only grants matching this.")
    ]


async def emergency_grants(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: EmergencyGrantFilterArg = None,
) -> Connection[EmergencyGrant]:
    """Emergency grants you may see, newest first: on your own record, your own, or all for reviewers."""
    return await top_list(info, K.EMERGENCY_GRANT, _list_args(first, after, filter))


@strawberry.input(
    description="A patient's block on part of their journal. Give the target the scope needs: "
    "person -> practitionerId, unit -> organizationId, category -> category, item or episode -> "
    "targetId; guardians (a child aged 12 to 17) may narrow by category."
)
class RestrictionInput:
    patient_id: strawberry.ID = strawberry.field(description="The patient's global id.")
    scope: RestrictionScope = strawberry.field(description="What is blocked.")
    reason: str = strawberry.field(description="The patient's reason, kept with the restriction.")
    practitioner_id: strawberry.ID | None = strawberry.field(default=None, description="Practitioner blocked.")
    organization_id: strawberry.ID | None = strawberry.field(default=None, description="Unit blocked.")
    category: str | None = strawberry.field(default=None, description="Data category blocked (e.g. clinical-note).")
    target_id: strawberry.ID | None = strawberry.field(default=None, description="Item or encounter blocked.")
    until: datetime | None = strawberry.field(default=None, description="When the block ends by itself.")


def _raw(value: strawberry.ID | None, expected: ResourceKind | None = None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    kind, raw = parse_global_id(str(value), expected)
    return kind.type_name, raw


@strawberry.type(description="Changes to the access rules' own records. Authorized by policy and audited.")
class AccessMutations:
    @strawberry.mutation(
        description="Open a patient's record in an emergency, stating why. The grant lasts 4 hours, "
        "is flagged in the audit log, listed for review and shown to the patient."
    )
    async def request_emergency_access(
        self,
        info: Info,
        patient_id: Annotated[strawberry.ID, strawberry.argument(description="The patient's global id.")],
        reason: Annotated[str, strawberry.argument(description="Why access is needed now (10-1000 characters).")],
        life_or_health_at_risk: Annotated[
            bool,
            strawberry.argument(
                description="True only when life or health is at risk: then the patient's restrictions are pierced too."
            ),
        ],
    ) -> EmergencyGrant:
        _, raw = _raw(patient_id, K.PATIENT)
        assert raw is not None
        row = await info.context.writes.request_emergency_access(raw, reason, life_or_health_at_risk)
        return EmergencyGrant.from_row(row)

    @strawberry.mutation(
        description="Create a restriction (sperring) for a patient: theirs to make, or staff's on "
        "their behalf. It denies access from the next request on."
    )
    async def create_restriction(
        self, info: Info, input: Annotated[RestrictionInput, strawberry.argument(description="The restriction.")]
    ) -> Restriction:
        _, patient = _raw(input.patient_id, K.PATIENT)
        _, practitioner = _raw(input.practitioner_id, K.PRACTITIONER)
        _, organization = _raw(input.organization_id, K.ORGANIZATION)
        target_kind, target = _raw(input.target_id)
        assert patient is not None
        row = await info.context.writes.create_restriction(
            patient,
            input.scope.value,
            input.reason,
            practitioner_id=practitioner,
            organization_id=organization,
            category=input.category,
            target_kind=target_kind,
            target_id=target,
            until=input.until,
        )
        return Restriction.from_row(row)

    @strawberry.mutation(description="Lift a restriction now; the record of it stays.")
    async def lift_restriction(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The restriction's global id.")],
        reason: Annotated[str, strawberry.argument(description="Why it is lifted.")],
    ) -> Restriction:
        _, raw = _raw(id, K.RESTRICTION)
        assert raw is not None
        return Restriction.from_row(await info.context.writes.lift_restriction(raw, reason))


NoteIdArg = Annotated[strawberry.ID, strawberry.argument(description="The note's global id.")]


@strawberry.type(
    description="Clinical notes (rule 7): only the author edits or signs a draft; a signed note never "
    "changes, and corrections are new versions pointing back to it."
)
class NoteMutations:
    @strawberry.mutation(description="Write a draft note for a patient you care for (and one of their encounters).")
    async def create_note(
        self,
        info: Info,
        patient_id: Annotated[strawberry.ID, strawberry.argument(description="The patient's global id.")],
        title: Annotated[str, strawberry.argument(description="The note's heading.")],
        text: Annotated[str, strawberry.argument(description="The note itself.")],
        encounter_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="The encounter's global id, if any.")
        ] = None,
    ) -> ClinicalNote:
        _, patient = _raw(patient_id, K.PATIENT)
        _, encounter = _raw(encounter_id, K.ENCOUNTER)
        assert patient is not None
        return ClinicalNote.from_row(await info.context.writes.create_note(patient, encounter, title, text))

    @strawberry.mutation(description="Edit your own draft.")
    async def update_note(
        self,
        info: Info,
        id: NoteIdArg,
        title: Annotated[str | None, strawberry.argument(description="A new heading.")] = None,
        text: Annotated[str | None, strawberry.argument(description="A new text.")] = None,
    ) -> ClinicalNote:
        _, raw = _raw(id, K.CLINICAL_NOTE)
        assert raw is not None
        return ClinicalNote.from_row(await info.context.writes.update_note(raw, title, text))

    @strawberry.mutation(description="Sign your own draft; it can never change afterwards.")
    async def sign_note(self, info: Info, id: NoteIdArg) -> ClinicalNote:
        _, raw = _raw(id, K.CLINICAL_NOTE)
        assert raw is not None
        return ClinicalNote.from_row(await info.context.writes.sign_note(raw))

    @strawberry.mutation(description="Correct a signed note: a new draft version that points back to it.")
    async def correct_note(
        self,
        info: Info,
        id: NoteIdArg,
        title: Annotated[str, strawberry.argument(description="The corrected heading.")],
        text: Annotated[str, strawberry.argument(description="The corrected text.")],
    ) -> ClinicalNote:
        _, raw = _raw(id, K.CLINICAL_NOTE)
        assert raw is not None
        return ClinicalNote.from_row(await info.context.writes.correct_note(raw, title, text))
