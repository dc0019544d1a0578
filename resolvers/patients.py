"""Patients: the Patient type with its whole journal as nested lists, and the patient queries."""

from __future__ import annotations

import uuid
from datetime import date
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from gateway import resources as K
from gateway.store import Row
from resolvers.common import (
    AfterArg,
    Connection,
    FirstArg,
    HumanName,
    Info,
    SortOrder,
    by_global_id,
    child_list,
    list_args,
    node_type,
    to_one,
    top_list,
)
from resolvers.directory import Organization, OrganizationFilter
from resolvers.journal import (
    AllergyIntolerance,
    AllergyIntoleranceFilterArg,
    Appointment,
    AppointmentFilterArg,
    CarePlan,
    CarePlanFilterArg,
    CareRelation,
    ClinicalNote,
    ClinicalNoteFilterArg,
    Condition,
    ConditionFilterArg,
    DiagnosticReport,
    DiagnosticReportFilterArg,
    Encounter,
    EncounterFilterArg,
    MedicationStatement,
    MedicationStatementFilterArg,
    Observation,
    ObservationFilterArg,
    OrderArg,
    Restriction,
)


@strawberry.enum(description="FHIR AdministrativeGender.")
class AdministrativeGender(Enum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


@node_type(K.PATIENT)
@strawberry.type(
    description="A person receiving care in the municipality (FHIR Patient), with their journal. Every list "
    "holds only what policy lets you read; a hidden item and a missing one look the same."
)
class Patient(relay.Node):
    id: relay.NodeID[str]
    national_identity_number: str = strawberry.field(
        description="Norwegian national identity number (fødselsnummer; synthetic in the demo journal)."
    )
    name: HumanName = strawberry.field(description="The patient's official name.")
    gender: AdministrativeGender = strawberry.field(description="Administrative gender.")
    birth_date: date = strawberry.field(description="Date of birth.")
    db_id: strawberry.Private[uuid.UUID]
    owning_unit_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row) -> Patient:
        return cls(
            id=str(row["id"]),
            national_identity_number=row["national_id"],
            name=HumanName(family=row["family_name"], given=row["given_name"].split()),
            gender=AdministrativeGender(row["gender"]),
            birth_date=row["birth_date"],
            db_id=row["id"],
            owning_unit_id=row["owning_unit_id"],
        )

    @strawberry.field(description="The unit responsible for the patient's record (the GP office).")
    async def managing_organization(self, info: Info) -> Organization | None:
        return await to_one(info, K.ORGANIZATION, self.owning_unit_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The patient's care relations with units and practitioners, newest first.")
    async def care_relations(
        self, info: Info, first: FirstArg, after: AfterArg = None, order: OrderArg = SortOrder.NEWEST_FIRST
    ) -> Connection[CareRelation]:
        return await child_list(info, K.CARE_RELATION, "patient_id", self.db_id, list_args(first, after, None, order))  # type: ignore[no-any-return]

    @strawberry.field(description="Encounters, newest first.")
    async def encounters(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: EncounterFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[Encounter]:
        return await child_list(info, K.ENCOUNTER, "patient_id", self.db_id, list_args(first, after, filter, order))  # type: ignore[no-any-return]

    @strawberry.field(description="Observations (vital signs and lab results), newest first.")
    async def observations(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: ObservationFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[Observation]:
        return await child_list(info, K.OBSERVATION, "patient_id", self.db_id, list_args(first, after, filter, order))  # type: ignore[no-any-return]

    @strawberry.field(description="Lab and radiology reports, newest first.")
    async def diagnostic_reports(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: DiagnosticReportFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[DiagnosticReport]:
        return await child_list(
            info, K.DIAGNOSTIC_REPORT, "patient_id", self.db_id, list_args(first, after, filter, order)
        )  # type: ignore[no-any-return]

    @strawberry.field(description="Problems and diagnoses, most recently recorded first.")
    async def conditions(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: ConditionFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[Condition]:
        return await child_list(info, K.CONDITION, "patient_id", self.db_id, list_args(first, after, filter, order))  # type: ignore[no-any-return]

    @strawberry.field(description="Medicines taken now or before, most recently recorded first.")
    async def medication_statements(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: MedicationStatementFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[MedicationStatement]:
        return await child_list(
            info, K.MEDICATION_STATEMENT, "patient_id", self.db_id, list_args(first, after, filter, order)
        )  # type: ignore[no-any-return]

    @strawberry.field(description="Allergies and intolerances (critical information), most recent first.")
    async def allergy_intolerances(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: AllergyIntoleranceFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[AllergyIntolerance]:
        return await child_list(
            info, K.ALLERGY_INTOLERANCE, "patient_id", self.db_id, list_args(first, after, filter, order)
        )  # type: ignore[no-any-return]

    @strawberry.field(description="Clinical notes, newest first.")
    async def clinical_notes(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: ClinicalNoteFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[ClinicalNote]:
        return await child_list(info, K.CLINICAL_NOTE, "patient_id", self.db_id, list_args(first, after, filter, order))  # type: ignore[no-any-return]

    @strawberry.field(description="Care plans, newest first.")
    async def care_plans(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: CarePlanFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[CarePlan]:
        return await child_list(info, K.CARE_PLAN, "patient_id", self.db_id, list_args(first, after, filter, order))  # type: ignore[no-any-return]

    @strawberry.field(description="Appointments, latest start first.")
    async def appointments(
        self,
        info: Info,
        first: FirstArg,
        after: AfterArg = None,
        filter: AppointmentFilterArg = None,
        order: OrderArg = SortOrder.NEWEST_FIRST,
    ) -> Connection[Appointment]:
        return await child_list(info, K.APPOINTMENT, "patient_id", self.db_id, list_args(first, after, filter, order))  # type: ignore[no-any-return]

    @strawberry.field(description="The patient's restrictions (sperring), newest first.")
    async def restrictions(
        self, info: Info, first: FirstArg, after: AfterArg = None, order: OrderArg = SortOrder.NEWEST_FIRST
    ) -> Connection[Restriction]:
        return await child_list(info, K.RESTRICTION, "patient_id", self.db_id, list_args(first, after, None, order))  # type: ignore[no-any-return]


async def patient(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The patient's global id.")]
) -> Patient | None:
    """One patient by global id."""
    return await by_global_id(info, str(id), K.PATIENT)  # type: ignore[no-any-return]


async def patients(info: Info, first: FirstArg, after: AfterArg = None) -> Connection[Patient]:
    """The patients you may read, by name."""
    return await top_list(info, K.PATIENT, list_args(first, after))  # type: ignore[no-any-return]


async def observations(
    info: Info,
    first: FirstArg,
    after: AfterArg = None,
    filter: ObservationFilterArg = None,
    order: OrderArg = SortOrder.NEWEST_FIRST,
) -> Connection[Observation]:
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
    filter: Annotated[OrganizationFilter | None, strawberry.argument(description="Only units matching this.")] = None,
) -> Connection[Organization]:
    """The municipality's units, by name."""
    return await top_list(info, K.ORGANIZATION, list_args(first, after, filter))  # type: ignore[no-any-return]
