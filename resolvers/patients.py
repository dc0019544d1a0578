"""The read roots of the journal: patients, observations across patients, units, and any node by id."""

from __future__ import annotations

from typing import Annotated

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
from resolvers.types import FILTER_HELP, TYPES, filter_of

Patient = TYPES["Patient"]
Observation = TYPES["Observation"]
Organization = TYPES["Organization"]
ObservationFilterArg = Annotated[filter_of(K.OBSERVATION) | None, strawberry.argument(description=FILTER_HELP)]
PatientFilterArg = Annotated[filter_of(K.PATIENT) | None, strawberry.argument(description=FILTER_HELP)]
OrganizationFilterArg = Annotated[
    filter_of(K.ORGANIZATION) | None, strawberry.argument(description="Only units matching this.")
]


async def patient(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The patient's global id.")]
) -> Patient | None:  # type: ignore[valid-type]
    """One patient by global id."""
    return await by_global_id(info, str(id), K.PATIENT)


async def patients(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: PatientFilterArg = None,  # type: ignore[valid-type]
) -> Connection[Patient]:  # type: ignore[valid-type]
    """The patients you may read, by name."""
    return await top_list(info, K.PATIENT, list_args(first, after, filter))  # type: ignore[no-any-return]


async def observations(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: ObservationFilterArg = None,  # type: ignore[valid-type]
    order: OrderArg = SortOrder.NEWEST_FIRST,
) -> Connection[Observation]:  # type: ignore[valid-type]
    """Observations across every patient you may read, newest first."""
    return await top_list(info, K.OBSERVATION, list_args(first, after, filter, order))  # type: ignore[no-any-return]


async def node(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="A global id of any kind.")]
) -> relay.Node | None:
    """Any resource by its global id."""
    return await by_global_id(info, str(id))  # type: ignore[no-any-return]


async def organizations(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: OrganizationFilterArg = None,  # type: ignore[valid-type]
) -> Connection[Organization]:  # type: ignore[valid-type]
    """The municipality's units, by name."""
    return await top_list(info, K.ORGANIZATION, list_args(first, after, filter))  # type: ignore[no-any-return]
