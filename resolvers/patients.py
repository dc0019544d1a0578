"""Patients: `patient(id)` and the `patients` connection."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from gateway.context import Context
from gateway.store import PatientRecord

Info = strawberry.Info[Context, None]


@strawberry.enum(description="FHIR AdministrativeGender.")
class AdministrativeGender(Enum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


@strawberry.type(description="A person's name (FHIR HumanName).")
class HumanName:
    family: str = strawberry.field(description="Family name (surname).")
    given: list[str] = strawberry.field(description="Given names, in order.")

    @strawberry.field(description="The full name as it is usually written.")
    def text(self) -> str:
        return " ".join([*self.given, self.family])


@strawberry.type(description="A person receiving care in the municipality (FHIR Patient), demographics only.")
class Patient:
    id: strawberry.ID = strawberry.field(description="Stable id of the patient in the journal.")
    national_identity_number: str = strawberry.field(
        description="Norwegian national identity number (fødselsnummer; synthetic in the demo journal)."
    )
    name: HumanName = strawberry.field(description="The patient's official name.")
    gender: AdministrativeGender = strawberry.field(description="Administrative gender.")
    birth_date: date = strawberry.field(description="Date of birth.")

    @classmethod
    def from_record(cls, record: PatientRecord) -> Patient:
        return cls(
            id=strawberry.ID(str(record.id)),
            national_identity_number=record.national_id,
            name=HumanName(family=record.family_name, given=record.given_name.split()),
            gender=AdministrativeGender(record.gender),
            birth_date=record.birth_date,
        )


@strawberry.type(description="A patient in a list, with the cursor to continue after it.")
class PatientEdge:
    cursor: str = strawberry.field(description="Opaque cursor: pass as `after` to continue after this patient.")
    node: Patient


@strawberry.type(description="A page of the patients you may read, ordered by family name, given name and id.")
class PatientConnection:
    edges: list[PatientEdge]
    page_info: relay.PageInfo

    @strawberry.field(description="How many patients you may read in all. Counted only when asked for.")
    async def total_count(self, info: Info) -> int:
        return await info.context.store.patient_count()


async def patient(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The patient's id.")]
) -> Patient | None:
    """One patient by id: null with a FORBIDDEN error (and its reason) when policy does not allow it."""
    record = await info.context.loaders.patient.load(str(id))
    return Patient.from_record(record)


async def patients(
    info: Info,
    first: Annotated[int, strawberry.argument(description="Page size, 1 to 100.")],
    after: Annotated[
        str | None, strawberry.argument(description="Cursor of the last patient of the previous page.")
    ] = None,
) -> PatientConnection:
    """The patients you may read, a page at a time (keyset cursors)."""
    page = await info.context.store.patient_page(first, after)
    edges = [PatientEdge(cursor=cursor, node=Patient.from_record(record)) for cursor, record in page.items]
    return PatientConnection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
