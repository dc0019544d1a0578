"""The read roots of the journal: patients, observations across patients, municipalities, units, people, and
any node by id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import strawberry
from strawberry import relay

from gateway import resources as K
from resolvers.common import (
    AfterArg,
    Connection,
    FirstArg,
    Info,
    OrderArg,
    SortOrder,
    by_global_id,
    list_args,
    top_list,
)
from resolvers.types import FILTER_HELP, TYPES, filter_of, root_list

if TYPE_CHECKING:  # the types are built at import from the declarations; to the type checker they are Any
    Patient: TypeAlias = Any
    Observation: TypeAlias = Any
    Organization: TypeAlias = Any
    ObservationFilterArg: TypeAlias = Any
    PatientFilterArg: TypeAlias = Any
    OrganizationFilterArg: TypeAlias = Any
    Practitioner: TypeAlias = Any
    PractitionerFilterArg: TypeAlias = Any
    Municipality: TypeAlias = Any
else:
    Patient = TYPES["Patient"]
    Observation = TYPES["Observation"]
    Organization = TYPES["Organization"]
    ObservationFilterArg = Annotated[filter_of(K.OBSERVATION) | None, strawberry.argument(description=FILTER_HELP)]
    PatientFilterArg = Annotated[filter_of(K.PATIENT) | None, strawberry.argument(description=FILTER_HELP)]
    OrganizationFilterArg = Annotated[
        filter_of(K.ORGANIZATION) | None, strawberry.argument(description="Only units matching this.")
    ]
    Municipality = TYPES["Municipality"]
    Practitioner = TYPES["Practitioner"]
    PractitionerFilterArg = Annotated[
        filter_of(K.PRACTITIONER) | None, strawberry.argument(description="Only practitioners matching this.")
    ]


def _journal_lists() -> Any:
    """Lists across patients of the kinds that have no root of their own above: what a visit planner, a
    result viewer or an integration lists for all the patients it may read."""
    namespace: dict[str, Any] = {"__module__": __name__}
    for kind, what in [
        (K.CARE_RELATION, "Care relations"),
        (K.ENCOUNTER, "Encounters"),
        (K.DIAGNOSTIC_REPORT, "Lab and radiology reports"),
        (K.CONDITION, "Problems and diagnoses"),
        (K.MEDICATION_STATEMENT, "Medication statements"),
        (K.ALLERGY_INTOLERANCE, "Allergies and intolerances"),
        (K.CLINICAL_NOTE, "Clinical notes"),
        (K.CARE_PLAN, "Care plans"),
        (K.APPOINTMENT, "Appointments"),
        (K.RESTRICTION, "Restrictions (sperring)"),
    ]:
        name = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind.type_name).lstrip("_") + "s"
        namespace[name] = root_list(
            kind,
            f"{what} across every patient you may read, newest first, filtered like the patient's own list. "
            "Rows policy hides never appear in pages, counts or cursors.",
        )
    return strawberry.type(type("JournalLists", (), namespace), description="Lists across patients.")


JournalLists = _journal_lists()


async def patient(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The patient's global id.")]
) -> Patient | None:
    """One patient by global id."""
    return await by_global_id(info, str(id), K.PATIENT)


async def patients(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: PatientFilterArg = None,
) -> Connection[Patient]:
    """The patients you may read, by name."""
    return await top_list(info, K.PATIENT, list_args(first, after, filter))


async def observations(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: ObservationFilterArg = None,
    order: OrderArg = SortOrder.NEWEST_FIRST,
) -> Connection[Observation]:
    """Observations across every patient you may read, newest first."""
    return await top_list(info, K.OBSERVATION, list_args(first, after, filter, order))


async def node(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global id of any kind.")]
) -> relay.Node | None:
    """Any resource by its global id."""
    found: relay.Node | None = await by_global_id(info, str(id))
    return found


async def organizations(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: OrganizationFilterArg = None,
) -> Connection[Organization]:
    """The municipality's units, by name."""
    return await top_list(info, K.ORGANIZATION, list_args(first, after, filter))


async def practitioners(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: PractitionerFilterArg = None,
) -> Connection[Practitioner]:
    """The people working in the services, by name."""
    return await top_list(info, K.PRACTITIONER, list_args(first, after, filter))


async def municipalities(info: Info, first: FirstArg, after: AfterArg = None) -> Connection[Municipality]:
    """The municipalities, by name, merged ones too (they name what was made under them)."""
    return await top_list(info, K.MUNICIPALITY, list_args(first, after))
