"""Clinical journal data of a patient: care relations, encounters, observations, reports, conditions,
medications, allergies, notes, care plans, appointments and restrictions (FHIR R4 names)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from gateway import resources as K
from gateway.store import Row
from resolvers.common import (
    Coding,
    DatePeriod,
    Info,
    Period,
    Quantity,
    children,
    coding,
    node_type,
    to_one,
)
from resolvers.directory import Organization, Practitioner

if TYPE_CHECKING:
    from resolvers.patients import Patient

PatientRef = Annotated["Patient", strawberry.lazy("resolvers.patients")]


class _LazyJournalType:
    """`Lazy["Observation"]`: a type of this module named before it is defined."""

    def __getitem__(self, name: str) -> object:
        return Annotated[name, strawberry.lazy("resolvers.journal")]


Lazy = _LazyJournalType()


@strawberry.enum(description="Where an encounter stands (FHIR EncounterStatus).")
class EncounterStatus(Enum):
    PLANNED = "planned"
    IN_PROGRESS = "in-progress"
    FINISHED = "finished"
    CANCELLED = "cancelled"


@strawberry.enum(description="The setting of an encounter (FHIR v3 ActEncounterCode).")
class EncounterClass(Enum):
    AMB = "AMB"
    HH = "HH"
    EMER = "EMER"
    VR = "VR"
    IMP = "IMP"


@strawberry.enum(description="Kind of observation (FHIR observation-category).")
class ObservationCategory(Enum):
    VITAL_SIGNS = "vital-signs"
    LABORATORY = "laboratory"


@strawberry.enum(description="Status of an observation result (FHIR ObservationStatus).")
class ObservationStatus(Enum):
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CANCELLED = "cancelled"


@strawberry.enum(description="Kind of diagnostic report.")
class DiagnosticReportCategory(Enum):
    LABORATORY = "laboratory"
    RADIOLOGY = "radiology"


@strawberry.enum(description="Status of a diagnostic report (FHIR DiagnosticReportStatus).")
class DiagnosticReportStatus(Enum):
    REGISTERED = "registered"
    PARTIAL = "partial"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"
    CANCELLED = "cancelled"


@strawberry.enum(description="Where a condition is recorded (FHIR condition-category).")
class ConditionCategory(Enum):
    PROBLEM_LIST_ITEM = "problem-list-item"
    ENCOUNTER_DIAGNOSIS = "encounter-diagnosis"


@strawberry.enum(description="Clinical status of a condition (FHIR condition-clinical).")
class ConditionClinicalStatus(Enum):
    ACTIVE = "active"
    RECURRENCE = "recurrence"
    RELAPSE = "relapse"
    INACTIVE = "inactive"
    REMISSION = "remission"
    RESOLVED = "resolved"


@strawberry.enum(description="Verification status of a condition (FHIR condition-ver-status).")
class ConditionVerificationStatus(Enum):
    UNCONFIRMED = "unconfirmed"
    PROVISIONAL = "provisional"
    DIFFERENTIAL = "differential"
    CONFIRMED = "confirmed"
    REFUTED = "refuted"


@strawberry.enum(description="Status of a medication statement (FHIR MedicationStatementStatus).")
class MedicationStatementStatus(Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"
    INTENDED = "intended"
    STOPPED = "stopped"
    ON_HOLD = "on-hold"


@strawberry.enum(description="Kind of allergen (FHIR allergy-intolerance-category).")
class AllergyCategory(Enum):
    FOOD = "food"
    MEDICATION = "medication"
    ENVIRONMENT = "environment"
    BIOLOGIC = "biologic"


@strawberry.enum(description="How dangerous a reaction could be (FHIR allergy-intolerance-criticality).")
class AllergyCriticality(Enum):
    LOW = "low"
    HIGH = "high"
    UNABLE_TO_ASSESS = "unable-to-assess"


@strawberry.enum(description="Clinical status of an allergy (FHIR allergyintolerance-clinical).")
class AllergyClinicalStatus(Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    RESOLVED = "resolved"


@strawberry.enum(description="A clinical note's state: drafts can be edited by their author, signed notes never.")
class ClinicalNoteStatus(Enum):
    DRAFT = "draft"
    SIGNED = "signed"
    ENTERED_IN_ERROR = "entered-in-error"


@strawberry.enum(description="Status of a care plan (FHIR RequestStatus).")
class CarePlanStatus(Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    REVOKED = "revoked"
    COMPLETED = "completed"


@strawberry.enum(description="Status of an appointment (FHIR AppointmentStatus).")
class AppointmentStatus(Enum):
    PROPOSED = "proposed"
    BOOKED = "booked"
    ARRIVED = "arrived"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    NOSHOW = "noshow"


@strawberry.enum(
    description="What a restriction (sperring) blocks; GUARDIANS is a child (12 to 17) restricting their parents."
)
class RestrictionScope(Enum):
    ITEM = "item"
    CATEGORY = "category"
    EPISODE = "episode"
    PERSON = "person"
    UNIT = "unit"
    GUARDIANS = "guardians"


@strawberry.input(description="Narrows a list of encounters. Ranges include the start and exclude the end.")
class EncounterFilter:
    period_from: datetime | None = strawberry.field(default=None, description="Started at or after.")
    period_to: datetime | None = strawberry.field(default=None, description="Started before.")
    status: EncounterStatus | None = strawberry.field(default=None, description="Only this status.")
    class_code: EncounterClass | None = strawberry.field(default=None, description="Only this setting.")


@strawberry.input(description="Narrows a list of observations. Ranges include the start and exclude the end.")
class ObservationFilter:
    effective_from: datetime | None = strawberry.field(default=None, description="Taken at or after.")
    effective_to: datetime | None = strawberry.field(default=None, description="Taken before.")
    code: str | None = strawberry.field(default=None, description="Only this code (e.g. LOINC 8480-6).")
    category: ObservationCategory | None = strawberry.field(default=None, description="Only this category.")
    status: ObservationStatus | None = strawberry.field(default=None, description="Only this status.")


@strawberry.input(description="Narrows a list of diagnostic reports.")
class DiagnosticReportFilter:
    effective_from: datetime | None = strawberry.field(default=None, description="Taken at or after.")
    effective_to: datetime | None = strawberry.field(default=None, description="Taken before.")
    code: str | None = strawberry.field(default=None, description="Only this code (LOINC).")
    category: DiagnosticReportCategory | None = strawberry.field(default=None, description="Lab or radiology.")
    status: DiagnosticReportStatus | None = strawberry.field(default=None, description="Only this status.")


@strawberry.input(description="Narrows a list of conditions.")
class ConditionFilter:
    recorded_from: datetime | None = strawberry.field(default=None, description="Recorded at or after.")
    recorded_to: datetime | None = strawberry.field(default=None, description="Recorded before.")
    code: str | None = strawberry.field(default=None, description="Only this code (ICPC-2 or ICD-10).")
    category: ConditionCategory | None = strawberry.field(default=None, description="Problem list or diagnosis.")
    clinical_status: ConditionClinicalStatus | None = strawberry.field(default=None, description="Only this status.")


@strawberry.input(description="Narrows a list of medication statements.")
class MedicationStatementFilter:
    date_asserted_from: datetime | None = strawberry.field(default=None, description="Asserted at or after.")
    date_asserted_to: datetime | None = strawberry.field(default=None, description="Asserted before.")
    code: str | None = strawberry.field(default=None, description="Only this ATC code.")
    status: MedicationStatementStatus | None = strawberry.field(default=None, description="Only this status.")


@strawberry.input(description="Narrows a list of allergies and intolerances.")
class AllergyIntoleranceFilter:
    category: AllergyCategory | None = strawberry.field(default=None, description="Only this kind of allergen.")
    clinical_status: AllergyClinicalStatus | None = strawberry.field(default=None, description="Only this status.")
    criticality: AllergyCriticality | None = strawberry.field(default=None, description="Only this criticality.")


@strawberry.input(description="Narrows a list of clinical notes.")
class ClinicalNoteFilter:
    created_from: datetime | None = strawberry.field(default=None, description="Written at or after.")
    created_to: datetime | None = strawberry.field(default=None, description="Written before.")
    status: ClinicalNoteStatus | None = strawberry.field(default=None, description="Drafts or signed notes.")


@strawberry.input(description="Narrows a list of care plans.")
class CarePlanFilter:
    status: CarePlanStatus | None = strawberry.field(default=None, description="Only this status.")


@strawberry.input(description="Narrows a list of appointments.")
class AppointmentFilter:
    start_from: datetime | None = strawberry.field(default=None, description="Starting at or after.")
    start_to: datetime | None = strawberry.field(default=None, description="Starting before.")
    status: AppointmentStatus | None = strawberry.field(default=None, description="Only this status.")


FILTER_HELP = "Only items matching every criterion given."
EncounterFilterArg = Annotated[EncounterFilter | None, strawberry.argument(description=FILTER_HELP)]
ObservationFilterArg = Annotated[ObservationFilter | None, strawberry.argument(description=FILTER_HELP)]
DiagnosticReportFilterArg = Annotated[DiagnosticReportFilter | None, strawberry.argument(description=FILTER_HELP)]
ConditionFilterArg = Annotated[ConditionFilter | None, strawberry.argument(description=FILTER_HELP)]
MedicationStatementFilterArg = Annotated[MedicationStatementFilter | None, strawberry.argument(description=FILTER_HELP)]
AllergyIntoleranceFilterArg = Annotated[AllergyIntoleranceFilter | None, strawberry.argument(description=FILTER_HELP)]
ClinicalNoteFilterArg = Annotated[ClinicalNoteFilter | None, strawberry.argument(description=FILTER_HELP)]
CarePlanFilterArg = Annotated[CarePlanFilter | None, strawberry.argument(description=FILTER_HELP)]
AppointmentFilterArg = Annotated[AppointmentFilter | None, strawberry.argument(description=FILTER_HELP)]


@node_type(K.CARE_RELATION)
@strawberry.type(
    description="A treatment relationship between a patient and a unit or practitioner: the basis "
    "of personnel's work-related need to read the patient's journal."
)
class CareRelation(relay.Node):
    id: relay.NodeID[str]
    purpose: str = strawberry.field(description="Why the relation exists (e.g. fastlege, hjemmesykepleie).")
    period: Period = strawberry.field(description="When the relation is in force.")
    patient_id: strawberry.Private[uuid.UUID]
    organization_id: strawberry.Private[uuid.UUID]
    practitioner_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> CareRelation:
        return cls(
            id=str(row["id"]),
            purpose=row["purpose"],
            period=Period(start=row["period_start"], end=row["period_end"]),
            patient_id=row["patient_id"],
            organization_id=row["organization_id"],
            practitioner_id=row["practitioner_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The unit caring for the patient.")
    async def organization(self, info: Info) -> Organization | None:
        return await to_one(info, K.ORGANIZATION, self.organization_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The practitioner personally responsible, if any (e.g. the GP).")
    async def practitioner(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.practitioner_id)  # type: ignore[no-any-return]


@node_type(K.ENCOUNTER)
@strawberry.type(
    description="A contact between a patient and a unit: a visit, a home visit, an emergency (FHIR Encounter)."
)
class Encounter(relay.Node):
    id: relay.NodeID[str]
    status: EncounterStatus = strawberry.field(description="Where the encounter stands.")
    class_code: EncounterClass = strawberry.field(name="class", description="The setting.")
    period: Period = strawberry.field(description="When it took place.")
    db_id: strawberry.Private[uuid.UUID]
    patient_id: strawberry.Private[uuid.UUID]
    owning_unit_id: strawberry.Private[uuid.UUID]
    practitioner_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> Encounter:
        return cls(
            id=str(row["id"]),
            status=EncounterStatus(row["status"]),
            class_code=EncounterClass(row["class_code"]),
            period=Period(start=row["period_start"], end=row["period_end"]),
            db_id=row["id"],
            patient_id=row["patient_id"],
            owning_unit_id=row["owning_unit_id"],
            practitioner_id=row["practitioner_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The unit that provided the encounter.")
    async def service_provider(self, info: Info) -> Organization | None:
        return await to_one(info, K.ORGANIZATION, self.owning_unit_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The practitioner who met the patient.")
    async def participant(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.practitioner_id)  # type: ignore[no-any-return]

    observations = children(
        K.OBSERVATION,
        "encounter_id",
        Lazy["Observation"],
        "Observations made during the encounter, newest first.",
        ObservationFilterArg,
    )
    notes = children(
        K.CLINICAL_NOTE,
        "encounter_id",
        Lazy["ClinicalNote"],
        "Clinical notes written for the encounter, newest first.",
        ClinicalNoteFilterArg,
    )
    diagnostic_reports = children(
        K.DIAGNOSTIC_REPORT,
        "encounter_id",
        Lazy["DiagnosticReport"],
        "Diagnostic reports ordered in the encounter, newest first.",
        DiagnosticReportFilterArg,
    )


@node_type(K.OBSERVATION)
@strawberry.type(description="A measurement or lab result (FHIR Observation): vital signs and laboratory values.")
class Observation(relay.Node):
    id: relay.NodeID[str]
    status: ObservationStatus = strawberry.field(description="Status of the result.")
    category: ObservationCategory = strawberry.field(description="Vital signs or laboratory.")
    code: Coding = strawberry.field(description="What was observed (LOINC).")
    value_quantity: Quantity | None = strawberry.field(description="The measured value.")
    effective_date_time: datetime = strawberry.field(description="When it was observed.")
    patient_id: strawberry.Private[uuid.UUID]
    encounter_id: strawberry.Private[uuid.UUID | None]
    report_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> Observation:
        value = row["value_quantity"]
        return cls(
            id=str(row["id"]),
            status=ObservationStatus(row["status"]),
            category=ObservationCategory(row["category"]),
            code=coding(row),
            value_quantity=None if value is None else Quantity(value=float(value), unit=row["value_unit"]),
            effective_date_time=row["effective_at"],
            patient_id=row["patient_id"],
            encounter_id=row["encounter_id"],
            report_id=row["diagnostic_report_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The encounter the observation was made in.")
    async def encounter(self, info: Info) -> Encounter | None:
        return await to_one(info, K.ENCOUNTER, self.encounter_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The diagnostic report the result belongs to, if any.")
    async def diagnostic_report(self, info: Info) -> DiagnosticReport | None:
        return await to_one(info, K.DIAGNOSTIC_REPORT, self.report_id)  # type: ignore[no-any-return]


@node_type(K.DIAGNOSTIC_REPORT)
@strawberry.type(
    description="The result of a lab panel or an imaging study, with its observations (FHIR DiagnosticReport)."
)
class DiagnosticReport(relay.Node):
    id: relay.NodeID[str]
    status: DiagnosticReportStatus = strawberry.field(description="Status of the report.")
    category: DiagnosticReportCategory = strawberry.field(description="Laboratory or radiology.")
    code: Coding = strawberry.field(description="What was examined (LOINC).")
    effective_date_time: datetime = strawberry.field(description="When the specimen or images were taken.")
    issued: datetime = strawberry.field(description="When the report was released.")
    conclusion: str | None = strawberry.field(description="The clinical conclusion, if any.")
    db_id: strawberry.Private[uuid.UUID]
    patient_id: strawberry.Private[uuid.UUID]
    encounter_id: strawberry.Private[uuid.UUID | None]
    performer_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> DiagnosticReport:
        return cls(
            id=str(row["id"]),
            status=DiagnosticReportStatus(row["status"]),
            category=DiagnosticReportCategory(row["category"]),
            code=coding(row),
            effective_date_time=row["effective_at"],
            issued=row["issued_at"],
            conclusion=row["conclusion"],
            db_id=row["id"],
            patient_id=row["patient_id"],
            encounter_id=row["encounter_id"],
            performer_id=row["performer_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The encounter the report was ordered in.")
    async def encounter(self, info: Info) -> Encounter | None:
        return await to_one(info, K.ENCOUNTER, self.encounter_id)  # type: ignore[no-any-return]

    @strawberry.field(description="Who produced the report.")
    async def performer(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.performer_id)  # type: ignore[no-any-return]

    results = children(K.OBSERVATION, "diagnostic_report_id", Lazy["Observation"], "The report's individual results.")


@node_type(K.CONDITION)
@strawberry.type(description="A problem or diagnosis (FHIR Condition), coded in ICPC-2 or ICD-10.")
class Condition(relay.Node):
    id: relay.NodeID[str]
    clinical_status: ConditionClinicalStatus = strawberry.field(description="Whether it is active.")
    verification_status: ConditionVerificationStatus = strawberry.field(description="How certain it is.")
    category: ConditionCategory = strawberry.field(description="Problem list item or encounter diagnosis.")
    code: Coding = strawberry.field(description="The diagnosis.")
    onset_date: date | None = strawberry.field(description="When it began.")
    abatement_date: date | None = strawberry.field(description="When it resolved.")
    recorded_date: datetime = strawberry.field(description="When it was recorded.")
    patient_id: strawberry.Private[uuid.UUID]
    encounter_id: strawberry.Private[uuid.UUID | None]
    recorder_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> Condition:
        return cls(
            id=str(row["id"]),
            clinical_status=ConditionClinicalStatus(row["clinical_status"]),
            verification_status=ConditionVerificationStatus(row["verification_status"]),
            category=ConditionCategory(row["category"]),
            code=coding(row),
            onset_date=row["onset_date"],
            abatement_date=row["abatement_date"],
            recorded_date=row["recorded_at"],
            patient_id=row["patient_id"],
            encounter_id=row["encounter_id"],
            recorder_id=row["recorder_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The encounter where it was diagnosed, if any.")
    async def encounter(self, info: Info) -> Encounter | None:
        return await to_one(info, K.ENCOUNTER, self.encounter_id)  # type: ignore[no-any-return]

    @strawberry.field(description="Who recorded it.")
    async def recorder(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.recorder_id)  # type: ignore[no-any-return]


@node_type(K.MEDICATION_STATEMENT)
@strawberry.type(description="A medicine the patient takes or took (FHIR MedicationStatement), coded in ATC.")
class MedicationStatement(relay.Node):
    id: relay.NodeID[str]
    status: MedicationStatementStatus = strawberry.field(description="Whether it is taken now.")
    medication: Coding = strawberry.field(description="The medicine (ATC).")
    dosage: str = strawberry.field(description="How it is taken, as written.")
    effective_period: DatePeriod = strawberry.field(description="When it is or was taken.")
    date_asserted: datetime = strawberry.field(description="When this was recorded.")
    patient_id: strawberry.Private[uuid.UUID]
    source_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> MedicationStatement:
        return cls(
            id=str(row["id"]),
            status=MedicationStatementStatus(row["status"]),
            medication=coding(row),
            dosage=row["dosage"],
            effective_period=DatePeriod(start=row["effective_start"], end=row["effective_end"]),
            date_asserted=row["date_asserted"],
            patient_id=row["patient_id"],
            source_id=row["information_source_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="Who recorded it.")
    async def information_source(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.source_id)  # type: ignore[no-any-return]


@node_type(K.ALLERGY_INTOLERANCE)
@strawberry.type(description="An allergy or intolerance: critical information (FHIR AllergyIntolerance).")
class AllergyIntolerance(relay.Node):
    id: relay.NodeID[str]
    clinical_status: AllergyClinicalStatus = strawberry.field(description="Whether it is active.")
    category: AllergyCategory = strawberry.field(description="Kind of allergen.")
    criticality: AllergyCriticality = strawberry.field(description="How dangerous a reaction could be.")
    code: Coding = strawberry.field(description="The allergen.")
    reaction: str | None = strawberry.field(description="The reaction seen, as written.")
    recorded_date: datetime = strawberry.field(description="When it was recorded.")
    patient_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row) -> AllergyIntolerance:
        return cls(
            id=str(row["id"]),
            clinical_status=AllergyClinicalStatus(row["clinical_status"]),
            category=AllergyCategory(row["category"]),
            criticality=AllergyCriticality(row["criticality"]),
            code=coding(row),
            reaction=row["reaction"],
            recorded_date=row["recorded_at"],
            patient_id=row["patient_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]


@node_type(K.CLINICAL_NOTE)
@strawberry.type(
    description="A clinical note (journalnotat): a draft its author may edit, or a signed, immutable "
    "note; corrections are new versions that point back."
)
class ClinicalNote(relay.Node):
    id: relay.NodeID[str]
    status: ClinicalNoteStatus = strawberry.field(description="Draft, signed or entered in error.")
    title: str = strawberry.field(description="The note's heading.")
    created: datetime = strawberry.field(description="When it was written.")
    signed_at: datetime | None = strawberry.field(description="When it was signed; null for a draft.")
    patient_id: strawberry.Private[uuid.UUID]
    encounter_id: strawberry.Private[uuid.UUID | None]
    author_id: strawberry.Private[uuid.UUID]
    replaces_id: strawberry.Private[uuid.UUID | None]
    body: strawberry.Private[str]

    @classmethod
    def from_row(cls, row: Row) -> ClinicalNote:
        return cls(
            id=str(row["id"]),
            status=ClinicalNoteStatus(row["status"]),
            title=row["title"],
            body=row["text"],
            created=row["created_at"],
            signed_at=row["signed_at"],
            patient_id=row["patient_id"],
            encounter_id=row["encounter_id"],
            author_id=row["author_id"],
            replaces_id=row["replaces_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The encounter the note belongs to.")
    async def encounter(self, info: Info) -> Encounter | None:
        return await to_one(info, K.ENCOUNTER, self.encounter_id)  # type: ignore[no-any-return]

    @strawberry.field(description="Who wrote the note.")
    async def author(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.author_id)  # type: ignore[no-any-return]

    @strawberry.field(
        description="The note itself. Reading it is a separate permission (`read_text`): a role may see that "
        "a note exists without reading it, and then gets null with a FORBIDDEN error here."
    )
    async def text(self, info: Info) -> str | None:
        await info.context.loaders.permission(K.CLINICAL_NOTE, "read_text").load(str(self.id))
        return self.body

    @strawberry.field(description="The earlier version this note corrects, if any.")
    async def replaces(self, info: Info) -> ClinicalNote | None:
        return await to_one(info, K.CLINICAL_NOTE, self.replaces_id)  # type: ignore[no-any-return]


@node_type(K.CARE_PLAN)
@strawberry.type(description="A plan for the patient's care, e.g. a home-care plan (FHIR CarePlan).")
class CarePlan(relay.Node):
    id: relay.NodeID[str]
    status: CarePlanStatus = strawberry.field(description="Whether the plan is in force.")
    intent: str = strawberry.field(description="FHIR intent; always `plan` here.")
    title: str = strawberry.field(description="The plan's title.")
    description: str = strawberry.field(description="What the plan says.")
    period: DatePeriod = strawberry.field(description="When the plan applies.")
    created: datetime = strawberry.field(description="When the plan was written.")
    patient_id: strawberry.Private[uuid.UUID]
    author_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> CarePlan:
        return cls(
            id=str(row["id"]),
            status=CarePlanStatus(row["status"]),
            intent=row["intent"],
            title=row["title"],
            description=row["description"],
            period=DatePeriod(start=row["period_start"], end=row["period_end"]),
            created=row["created_at"],
            patient_id=row["patient_id"],
            author_id=row["author_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="Who wrote the plan.")
    async def author(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.author_id)  # type: ignore[no-any-return]


@node_type(K.APPOINTMENT)
@strawberry.type(description="A booked visit (FHIR Appointment).")
class Appointment(relay.Node):
    id: relay.NodeID[str]
    status: AppointmentStatus = strawberry.field(description="Where the appointment stands.")
    service_type: str = strawberry.field(description="What the appointment is for.")
    description: str = strawberry.field(description="Details shown to the patient.")
    start: datetime = strawberry.field(description="When it starts.")
    end: datetime = strawberry.field(description="When it ends.")
    patient_id: strawberry.Private[uuid.UUID]
    owning_unit_id: strawberry.Private[uuid.UUID]
    practitioner_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> Appointment:
        return cls(
            id=str(row["id"]),
            status=AppointmentStatus(row["status"]),
            service_type=row["service_type"],
            description=row["description"],
            start=row["start_at"],
            end=row["end_at"],
            patient_id=row["patient_id"],
            owning_unit_id=row["owning_unit_id"],
            practitioner_id=row["practitioner_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The unit the appointment is with.")
    async def organization(self, info: Info) -> Organization | None:
        return await to_one(info, K.ORGANIZATION, self.owning_unit_id)  # type: ignore[no-any-return]

    @strawberry.field(description="The practitioner the appointment is with, if any.")
    async def practitioner(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.practitioner_id)  # type: ignore[no-any-return]


@node_type(K.RESTRICTION)
@strawberry.type(description="A patient's block (sperring) on part of their journal against people or units.")
class Restriction(relay.Node):
    id: relay.NodeID[str]
    scope: RestrictionScope = strawberry.field(
        description="What is blocked: an item, a category, an episode, a person or a unit."
    )
    target_kind: str | None = strawberry.field(description="For an item or episode block: the kind of resource.")
    target_category: str | None = strawberry.field(description="For a category block: the data category.")
    reason: str = strawberry.field(description="The patient's stated reason.")
    period: Period = strawberry.field(description="When the block is in force.")
    created: datetime = strawberry.field(description="When it was made.")
    patient_id: strawberry.Private[uuid.UUID]
    target_practitioner_id: strawberry.Private[uuid.UUID | None]
    target_unit_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: Row) -> Restriction:
        return cls(
            id=str(row["id"]),
            scope=RestrictionScope(row["scope"]),
            target_kind=row["target_kind"],
            target_category=row["target_category"],
            reason=row["reason"],
            period=Period(start=row["period_start"], end=row["period_end"]),
            created=row["created_at"],
            patient_id=row["patient_id"],
            target_practitioner_id=row["target_practitioner_id"],
            target_unit_id=row["target_unit_id"],
        )

    @strawberry.field(description="The patient.")
    async def patient(self, info: Info) -> PatientRef | None:
        return await to_one(info, K.PATIENT, self.patient_id)  # type: ignore[no-any-return]

    @strawberry.field(description="For a person block: the practitioner blocked.")
    async def target_practitioner(self, info: Info) -> Practitioner | None:
        return await to_one(info, K.PRACTITIONER, self.target_practitioner_id)  # type: ignore[no-any-return]

    @strawberry.field(description="For a unit block: the unit blocked.")
    async def target_organization(self, info: Info) -> Organization | None:
        return await to_one(info, K.ORGANIZATION, self.target_unit_id)  # type: ignore[no-any-return]
