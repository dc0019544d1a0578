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
    OrderArg,
    SortOrder,
    by_global_id,
    children,
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

    care_relations = children(
        K.CARE_RELATION,
        "patient_id",
        CareRelation,
        "The patient's care relations with units and practitioners, newest first.",
    )
    encounters = children(K.ENCOUNTER, "patient_id", Encounter, "Encounters, newest first.", EncounterFilterArg)
    observations = children(
        K.OBSERVATION,
        "patient_id",
        Observation,
        "Observations (vital signs and lab results), newest first.",
        ObservationFilterArg,
    )
    diagnostic_reports = children(
        K.DIAGNOSTIC_REPORT,
        "patient_id",
        DiagnosticReport,
        "Lab and radiology reports, newest first.",
        DiagnosticReportFilterArg,
    )
    conditions = children(
        K.CONDITION,
        "patient_id",
        Condition,
        "Problems and diagnoses, most recently recorded first.",
        ConditionFilterArg,
    )
    medication_statements = children(
        K.MEDICATION_STATEMENT,
        "patient_id",
        MedicationStatement,
        "Medicines taken now or before, most recently recorded first.",
        MedicationStatementFilterArg,
    )
    allergy_intolerances = children(
        K.ALLERGY_INTOLERANCE,
        "patient_id",
        AllergyIntolerance,
        "Allergies and intolerances (critical information), most recent first.",
        AllergyIntoleranceFilterArg,
    )
    clinical_notes = children(
        K.CLINICAL_NOTE, "patient_id", ClinicalNote, "Clinical notes, newest first.", ClinicalNoteFilterArg
    )
    care_plans = children(K.CARE_PLAN, "patient_id", CarePlan, "Care plans, newest first.", CarePlanFilterArg)
    appointments = children(
        K.APPOINTMENT, "patient_id", Appointment, "Appointments, latest start first.", AppointmentFilterArg
    )
    restrictions = children(
        K.RESTRICTION, "patient_id", Restriction, "The patient's restrictions (sperring), newest first."
    )


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
