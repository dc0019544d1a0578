"""Every resource kind, declared once: table, fields as the API shows them, filters, policy attributes
and what a write may set (the vocabulary is gateway/declare.py).

The store reads and filters rows from these declarations, Cerbos decides on the attributes they
declare, resolvers/types.py builds the GraphQL types and inputs from them, and gateway/json_sql.py the
whole-selection JSON. The database columns behind them are made by the migrations; a test checks that
every declared column exists.
"""

from __future__ import annotations

from gateway.declare import (
    Choice,
    Coded,
    Count,
    Day,
    EnumType,
    Field,
    Filter,
    Flag,
    History,
    Instant,
    Many,
    Measured,
    Named,
    Ref,
    ResourceKind,
    Span,
    Text,
    Transition,
)
from gateway.fhir_map import (
    AKSON_CODES,
    HPR_NUMBER,
    ORGANIZATION_NUMBER,
    AddressText,
    As,
    Attachment,
    CodingOf,
    Concept,
    Contact,
    Described,
    Extension,
    FhirMap,
    Identifier,
    PeriodStatus,
    PersonIdentifier,
    Results,
    Within,
)
from gateway.plan_sql import Column, SetOf
from gateway.policy_attributes import ACTIVE_RESTRICTION, patient_data
from gateway.sql import sql

LOINC = "http://loinc.org"
ICPC2 = "urn:oid:2.16.578.1.12.4.1.1.7170"
ICD10 = "urn:oid:2.16.578.1.12.4.1.1.7110"
ATC = "http://www.whocc.no/atc"
ALLERGENS = "urn:akson:codes:allergen"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
V3_ACT_CODE = f"{TERMINOLOGY}/v3-ActCode"
V2_0074 = f"{TERMINOLOGY}/v2-0074"
OBSERVATION_CATEGORY_SYSTEM = f"{TERMINOLOGY}/observation-category"
CONDITION_CLINICAL_SYSTEM = f"{TERMINOLOGY}/condition-clinical"
CONDITION_VERIFICATION_SYSTEM = f"{TERMINOLOGY}/condition-ver-status"
CONDITION_CATEGORY_SYSTEM = f"{TERMINOLOGY}/condition-category"
ALLERGY_CLINICAL_SYSTEM = f"{TERMINOLOGY}/allergyintolerance-clinical"
ALLERGY_VERIFICATION_SYSTEM = f"{TERMINOLOGY}/allergyintolerance-verification"
CONSENT_SCOPE_SYSTEM = f"{TERMINOLOGY}/consentscope"
BLOCKED_ACTOR = {"coding": [{"system": f"{TERMINOLOGY}/v3-ParticipationType", "code": "IRCP"}], "text": "blocked"}


def _dated(column: str) -> tuple[tuple[str, str], ...]:
    return ((column, "timestamptz"), ("id", "uuid"))


def _range(column: str, stem: str, start: str, end: str) -> tuple[Filter, Filter]:
    return (
        Filter(f"{stem}_from", column, "ge", "timestamptz", start),
        Filter(f"{stem}_to", column, "lt", "timestamptz", end),
    )


def _versioned(*, patient_data: bool = True) -> tuple[Field, ...]:
    """The fields every kind has: its version, when it was made, whether it was entered in error (patient
    data), and its history."""
    kept: tuple[Field, ...] = (
        Count(name="version", column="version", description="The version: 1 when created, one more with every change."),
        Instant(name="last_updated", column="last_updated", description="When the current version was made."),
    )
    if patient_data:
        kept += (
            Instant(
                name="entered_in_error_at",
                column="entered_in_error_at",
                nullable=True,
                description="When it was marked entered in error; null otherwise. Such a resource is kept, shown "
                "by id and in history, and left out of lists unless they ask for it.",
            ),
            Text(
                name="entered_in_error_reason",
                column="entered_in_error_reason",
                nullable=True,
                description="Why it was marked entered in error.",
            ),
        )
    return (
        *kept,
        History(
            name="history",
            description="Every version of this resource, the current one first: what it was, who made it, when "
            "and through which app.",
        ),
    )


INCLUDE_ENTERED_IN_ERROR = Filter(
    "include_entered_in_error",
    "entered_in_error_at",
    "include",
    "boolean",
    "Also resources marked entered in error (left out unless true).",
)


def _status(enum: EnumType) -> Filter:
    return Filter("status", "status", "eq", "text", "Only this status.", enum)


def _patient(description: str = "The patient.") -> Ref:
    return Ref(
        name="patient",
        target="Patient",
        column="patient_id",
        description=description,
        create="optional",
        input_description="The patient's global id (or give patientNationalIdentityNumber).",
    )


# ---- enums -------------------------------------------------------------------------------------------

UNIT_TYPE = EnumType(
    "UnitType",
    "The kind of municipal health service a unit provides.",
    (
        "legevakt",
        "fastlegekontor",
        "hjemmetjeneste",
        "sykehjem",
        "helsestasjon",
        "laboratorium",
        "radiologi",
        "sykehusavdeling",
        "nav",
        "barnevern",
    ),
)
ROLE_CODE = EnumType(
    "PractitionerRoleCode",
    "What a practitioner does in a unit.",
    (
        "doctor",
        "nurse",
        "health_secretary",
        "physiotherapist",
        "public_health_nurse",
        "care_worker",
        "social_worker",
        "nav_advisor",
        "child_welfare_worker",
    ),
)
GENDER = EnumType("AdministrativeGender", "FHIR AdministrativeGender.", ("male", "female", "other", "unknown"))
ENCOUNTER_STATUS = EnumType(
    "EncounterStatus",
    "Where an encounter stands (FHIR EncounterStatus).",
    ("planned", "in-progress", "finished", "cancelled"),
)
ENCOUNTER_CLASS = EnumType(
    "EncounterClass", "The setting of an encounter (FHIR v3 ActEncounterCode).", ("AMB", "HH", "EMER", "VR", "IMP")
)
OBSERVATION_CATEGORY = EnumType(
    "ObservationCategory", "Kind of observation (FHIR observation-category).", ("vital-signs", "laboratory")
)
OBSERVATION_STATUS = EnumType(
    "ObservationStatus",
    "Status of an observation result (FHIR ObservationStatus).",
    ("preliminary", "final", "amended", "cancelled"),
)
REPORT_CATEGORY = EnumType("DiagnosticReportCategory", "Kind of diagnostic report.", ("laboratory", "radiology"))
REPORT_STATUS = EnumType(
    "DiagnosticReportStatus",
    "Status of a diagnostic report (FHIR DiagnosticReportStatus).",
    ("registered", "partial", "preliminary", "final", "amended", "cancelled"),
)
CONDITION_CATEGORY = EnumType(
    "ConditionCategory",
    "Where a condition is recorded (FHIR condition-category).",
    ("problem-list-item", "encounter-diagnosis"),
)
CONDITION_CLINICAL = EnumType(
    "ConditionClinicalStatus",
    "Clinical status of a condition (FHIR condition-clinical).",
    ("active", "recurrence", "relapse", "inactive", "remission", "resolved"),
)
CONDITION_VERIFICATION = EnumType(
    "ConditionVerificationStatus",
    "Verification status of a condition (FHIR condition-ver-status).",
    ("unconfirmed", "provisional", "differential", "confirmed", "refuted"),
)
MEDICATION_STATUS = EnumType(
    "MedicationStatementStatus",
    "Status of a medication statement (FHIR MedicationStatementStatus).",
    ("active", "completed", "entered-in-error", "intended", "stopped", "on-hold"),
)
ALLERGY_CATEGORY = EnumType(
    "AllergyCategory",
    "Kind of allergen (FHIR allergy-intolerance-category).",
    ("food", "medication", "environment", "biologic"),
)
ALLERGY_CRITICALITY = EnumType(
    "AllergyCriticality",
    "How dangerous a reaction could be (FHIR allergy-intolerance-criticality).",
    ("low", "high", "unable-to-assess"),
)
ALLERGY_CLINICAL = EnumType(
    "AllergyClinicalStatus",
    "Clinical status of an allergy (FHIR allergyintolerance-clinical).",
    ("active", "inactive", "resolved"),
)
NOTE_STATUS = EnumType(
    "ClinicalNoteStatus",
    "A clinical note's state: drafts can be edited by their author, signed notes never.",
    ("draft", "signed", "entered-in-error"),
)
CARE_PLAN_STATUS = EnumType(
    "CarePlanStatus",
    "Status of a care plan (FHIR RequestStatus).",
    ("draft", "active", "on-hold", "revoked", "completed"),
)
APPOINTMENT_STATUS = EnumType(
    "AppointmentStatus",
    "Status of an appointment (FHIR AppointmentStatus).",
    ("proposed", "booked", "arrived", "fulfilled", "cancelled", "noshow"),
)
RESTRICTION_SCOPE = EnumType(
    "RestrictionScope",
    "What a restriction (sperring) blocks; GUARDIANS is a child (12 to 17) restricting their parents.",
    ("item", "category", "episode", "person", "unit", "guardians"),
)

# ---- the directory -----------------------------------------------------------------------------------

MUNICIPALITY = ResourceKind(
    name="municipality",
    type_name="Municipality",
    table="municipality",
    alias="mu",
    description="A municipality (kommune): its units, the policy scope of its local rules, and, once merged into "
    "another, the one it became part of.",
    fields=(
        Text(name="name", column="name", description="The municipality's name."),
        Text(name="number", column="number", description="The municipality number (kommunenummer)."),
        Text(
            name="policy_scope",
            column="policy_scope",
            nullable=True,
            description="The policy scope of its local rules; null when the national baseline alone applies.",
        ),
        Ref(
            name="merged_into",
            target="Municipality",
            column="merged_into_id",
            description="The municipality it was merged into; null while it stands on its own.",
        ),
        Instant(name="merged_at", column="merged_at", nullable=True, description="When it was merged; null if not."),
        Many(
            name="units",
            target="Organization",
            parent_column="municipality_id",
            description="Its units, by name.",
            filtered=False,
        ),
    ),
    order=(("name", "text"), ("id", "uuid")),
    attributes={},
    patient_column=None,
    newest_first=False,
)

ORGANIZATION = ResourceKind(
    name="organization",
    type_name="Organization",
    fhir=FhirMap(
        "Organization",
        (
            ("name", As("name")),
            ("org_number", Identifier("identifier[+]", ORGANIZATION_NUMBER)),
            ("unit_type", Concept("type[]", f"{AKSON_CODES}:unit-type")),
            ("parent", As("partOf")),
        ),
    ),
    table="organization",
    alias="o",
    description="A unit of the services (FHIR Organization): municipal health and care services, the "
    "hospital departments, laboratories and radiology they cooperate with, Nav offices and child welfare.",
    fields=(
        Text(name="name", column="name", description="The unit's name.", create="required", patch=True),
        Text(
            name="org_number",
            column="org_number",
            description="Organization number in the Central Coordinating Register.",
            create="required",
            pattern=("[0-9]{9}", "nine digits"),
        ),
        Choice(
            name="unit_type",
            column="unit_type",
            enum=UNIT_TYPE,
            description="The service the unit provides.",
            create="required",
            patch=True,
        ),
        Ref(
            name="municipality",
            target="Municipality",
            column="municipality_id",
            description="The municipality the unit belongs to; null for a health trust's unit (hospital "
            "departments, laboratories, radiology). A unit changes municipality only by a merger or a transfer.",
            create="optional",
        ),
        Ref(
            name="parent",
            target="Organization",
            column="parent_id",
            description="The organization this unit belongs to (a hospital's department, a service under the "
            "municipality's health administration); null for one that belongs to none.",
            create="optional",
            patch=True,
        ),
        Many(
            name="children",
            target="Organization",
            parent_column="parent_id",
            description="The units that belong to this one, by name.",
            filtered=False,
        ),
        Many(
            name="staff",
            target="PractitionerRole",
            parent_column="organization_id",
            description="The roles people hold in this unit: who works here, as what, and when.",
            filtered=False,
            default_first=50,
        ),
        *_versioned(patient_data=False),
    ),
    order=(("name", "text"), ("id", "uuid")),
    attributes={"municipality_id": Column(sql("coalesce(o.municipality_id::text, '')"), "text")},
    patient_column=None,
    writable=True,
    newest_first=False,
    filters=(
        Filter("unit_type", "unit_type", "eq", "text", "Only units of this type.", UNIT_TYPE),
        Filter("municipality_id", "municipality_id", "eq", "uuid", exposed=False),
    ),
    filter_description="Narrows a list of units.",
)

PRACTITIONER = ResourceKind(
    name="practitioner",
    type_name="Practitioner",
    fhir=FhirMap(
        "Practitioner",
        (
            ("name", As("name[]")),
            ("hpr_number", Identifier("identifier[+]", HPR_NUMBER)),
            ("health_personnel", Extension(name="health-personnel")),
        ),
        why="Roles are PractitionerRole resources of their own, which point here.",
    ),
    table="practitioner",
    alias="pr",
    description="A person working in the services (FHIR Practitioner): health personnel, and others with a "
    "work-related need (social workers, Nav advisors, child welfare workers), flagged as such.",
    fields=(
        Named(
            name="name",
            family="family_name",
            given="given_name",
            description="The practitioner's name.",
            create="required",
            patch=True,
        ),
        Text(
            name="national_identity_number",
            column="national_id",
            description="Norwegian national identity number, what their sign-in (HelseID) names them by: shown only "
            "to those who keep the directory.",
            create="required",
            pattern=("[0-9]{11}", "11 digits"),
            permission="read_national_id",
        ),
        Text(
            name="hpr_number",
            column="hpr_number",
            nullable=True,
            description="Number in the Health Personnel Register (HPR); null for non-health personnel.",
            create="optional",
            patch=True,
            pattern=("[0-9]{7,9}", "7 to 9 digits"),
        ),
        Flag(
            name="health_personnel",
            column="health_personnel",
            description="Whether the person is health personnel (helsepersonell); false for others with a "
            "work-related need, who have no HPR number.",
            create="optional",
            patch=True,
            default=True,
        ),
        Many(
            name="roles",
            target="PractitionerRole",
            parent_column="practitioner_id",
            description="The practitioner's roles in units, latest first.",
            filtered=False,
            ordered=False,
            default_first=20,
        ),
        *_versioned(patient_data=False),
    ),
    order=(("family_name", "text"), ("given_name", "text"), ("id", "uuid")),
    attributes={
        "municipality_ids": SetOf(
            sql(
                "SELECT ro.municipality_id::text FROM practitioner_role r JOIN organization ro ",
                "ON ro.id = r.organization_id WHERE r.practitioner_id = pr.id AND ro.municipality_id IS NOT NULL",
            ),
            "text",
        )
    },
    patient_column=None,
    newest_first=False,
    writable=True,
    filters=(
        Filter("hpr_number", "hpr_number", "eq", "text", "Only the practitioner with this HPR number."),
        Filter("name", "family_name", "prefix", "text", "Only practitioners whose family name starts with this."),
    ),
    filter_description="Narrows a list of practitioners.",
)

PRACTITIONER_ROLE = ResourceKind(
    name="practitioner_role",
    type_name="PractitionerRole",
    fhir=FhirMap(
        "PractitionerRole",
        (
            ("role", Concept("code[]", f"{AKSON_CODES}:practitioner-role")),
            ("period", As("period")),
            ("practitioner", As("practitioner")),
            ("organization", As("organization")),
        ),
    ),
    table="practitioner_role",
    alias="rl",
    description="A practitioner's role in a unit for a period (FHIR PractitionerRole).",
    fields=(
        Choice(
            name="role",
            column="role",
            enum=ROLE_CODE,
            description="What the practitioner does in the unit.",
            create="required",
        ),
        Span(
            name="period",
            start="period_start",
            end="period_end",
            dates=True,
            description="When the role applies: a role is ended by setting its end, never deleted.",
            create="required",
            patch=True,
        ),
        Ref(
            name="practitioner",
            target="Practitioner",
            column="practitioner_id",
            description="The practitioner in this role.",
            create="required",
        ),
        Ref(
            name="organization",
            target="Organization",
            column="organization_id",
            description="The unit the role is in.",
            create="required",
        ),
        *_versioned(patient_data=False),
    ),
    order=(("period_start", "date"), ("id", "uuid")),
    attributes={
        "organization_id": Column(sql("rl.organization_id"), "uuid"),
        "practitioner_id": Column(sql("rl.practitioner_id"), "uuid"),
        "municipality_id": Column(
            sql(
                "(SELECT coalesce(ro.municipality_id::text, '') FROM organization ro ",
                "WHERE ro.id = rl.organization_id)",
            ),
            "text",
        ),
    },
    patient_column=None,
    writable=True,
)

# ---- the journal -------------------------------------------------------------------------------------

PATIENT = ResourceKind(
    name="patient",
    type_name="Patient",
    fhir=FhirMap(
        "Patient",
        (
            ("national_identity_number", PersonIdentifier("identifier[+]")),
            ("name", As("name[]")),
            ("gender", As("gender")),
            ("birth_date", As("birthDate")),
            ("phone", Contact("telecom[+]", "phone")),
            ("email", Contact("telecom[+]", "email")),
            ("address", AddressText("address[]")),
            ("managing_organization", As("managingOrganization")),
        ),
        entered_in_error=("active", False),
        why="The journal's lists are searches of their own kinds by `patient`.",
    ),
    table="patient",
    alias="p",
    description="A person receiving care in the municipality (FHIR Patient), with their journal. Every list "
    "holds only what policy lets you read; a hidden item and a missing one look the same.",
    fields=(
        Text(
            name="national_identity_number",
            column="national_id",
            description="Norwegian national identity number (fødselsnummer; synthetic in the demo journal).",
            create="required",
        ),
        Named(
            name="name",
            family="family_name",
            given="given_name",
            description="The patient's official name.",
            create="required",
        ),
        Choice(name="gender", column="gender", enum=GENDER, description="Administrative gender.", create="required"),
        Day(name="birth_date", column="birth_date", description="Date of birth.", create="required"),
        Text(
            name="phone",
            column="phone",
            nullable=True,
            max_length=20,
            pattern=(r"\+?[0-9 ]{5,20}", "a phone number (digits and spaces, an optional leading +)"),
            description="Phone number to reach the patient (contact details).",
            create="optional",
            patch=True,
        ),
        Text(
            name="email",
            column="email",
            nullable=True,
            max_length=200,
            pattern=(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address"),
            description="E-mail address to reach the patient (contact details).",
            create="optional",
            patch=True,
        ),
        Text(
            name="address",
            column="address",
            nullable=True,
            max_length=300,
            description="Postal address, as one line (contact details).",
            create="optional",
            patch=True,
        ),
        Ref(
            name="managing_organization",
            target="Organization",
            column="owning_unit_id",
            description="The unit responsible for the patient's record (the GP office).",
            create="optional",
            input_description="The unit registering the patient, which manages the record; yours when left out.",
        ),
        Many(
            name="care_relations",
            target="CareRelation",
            parent_column="patient_id",
            description="The patient's care relations with units and practitioners, newest first.",
        ),
        Many(
            name="encounters", target="Encounter", parent_column="patient_id", description="Encounters, newest first."
        ),
        Many(
            name="observations",
            target="Observation",
            parent_column="patient_id",
            description="Observations (vital signs and lab results), newest first.",
        ),
        Many(
            name="diagnostic_reports",
            target="DiagnosticReport",
            parent_column="patient_id",
            description="Lab and radiology reports, newest first.",
        ),
        Many(
            name="conditions",
            target="Condition",
            parent_column="patient_id",
            description="Problems and diagnoses, most recently recorded first.",
        ),
        Many(
            name="medication_statements",
            target="MedicationStatement",
            parent_column="patient_id",
            description="Medicines taken now or before, most recently recorded first.",
        ),
        Many(
            name="allergy_intolerances",
            target="AllergyIntolerance",
            parent_column="patient_id",
            description="Allergies and intolerances (critical information), most recent first.",
        ),
        Many(
            name="clinical_notes",
            target="ClinicalNote",
            parent_column="patient_id",
            description="Clinical notes, newest first.",
        ),
        Many(name="care_plans", target="CarePlan", parent_column="patient_id", description="Care plans, newest first."),
        Many(
            name="appointments",
            target="Appointment",
            parent_column="patient_id",
            description="Appointments, latest start first.",
        ),
        Many(
            name="restrictions",
            target="Restriction",
            parent_column="patient_id",
            description="The patient's restrictions (sperring), newest first.",
        ),
        *_versioned(),
    ),
    extra_columns=("municipality_id",),
    order=(("family_name", "text"), ("given_name", "text"), ("id", "uuid")),
    **patient_data("p", "id"),
    filters=(
        Filter(
            "national_identity_number",
            "national_id",
            "eq",
            "text",
            "Only the patient with this national identity number (a search: no match and a patient you may not "
            "read look the same).",
            identifies=True,
        ),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of patients.",
    patient_column="id",
    newest_first=False,
    writable=True,
)

CARE_RELATION = ResourceKind(
    name="care_relation",
    type_name="CareRelation",
    fhir=FhirMap(
        "EpisodeOfCare",
        (
            ("purpose", Described("type[]")),
            ("period", As("period")),
            ("period", PeriodStatus("status", before="planned", during="active", after="finished")),
            ("patient", As("patient")),
            ("organization", As("managingOrganization")),
            ("practitioner", As("careManager")),
        ),
        entered_in_error=("status", "entered-in-error"),
        why="EpisodeOfCare: a unit's responsibility for a patient over a period, for a purpose, with a care "
        "manager; the basis of work-related need. A CareTeam lists people who act together, which a care "
        "relation does not.",
    ),
    table="care_relation",
    alias="cre",
    description="A treatment relationship between a patient and a unit or practitioner: the basis "
    "of personnel's work-related need to read the patient's journal.",
    fields=(
        Text(
            name="purpose",
            column="purpose",
            description="Why the relation exists (e.g. fastlege, hjemmesykepleie).",
            create="required",
            patch=True,
        ),
        Span(
            name="period",
            start="period_start",
            end="period_end",
            description="When the relation is in force.",
            create="required",
            patch=True,
        ),
        _patient(),
        Ref(
            name="organization",
            target="Organization",
            column="organization_id",
            description="The unit caring for the patient.",
            create="required",
        ),
        Ref(
            name="practitioner",
            target="Practitioner",
            column="practitioner_id",
            description="The practitioner personally responsible, if any (e.g. the GP).",
            create="optional",
            patch=True,
        ),
        *_versioned(),
    ),
    order=_dated("period_start"),
    **patient_data("cre"),
    filters=(INCLUDE_ENTERED_IN_ERROR,),
    filter_description="Narrows a list of care relations.",
    writable=True,
)

ENCOUNTER = ResourceKind(
    name="encounter",
    type_name="Encounter",
    fhir=FhirMap(
        "Encounter",
        (
            ("status", As("status")),
            ("class_code", CodingOf("class", V3_ACT_CODE)),
            ("period", As("period")),
            ("patient", As("subject")),
            ("service_provider", As("serviceProvider")),
            ("participant", As("participant[].individual")),
        ),
        entered_in_error=("status", "entered-in-error"),
    ),
    table="encounter",
    alias="e",
    description="A contact between a patient and a unit: a visit, a home visit, an emergency (FHIR Encounter).",
    fields=(
        Choice(
            name="status",
            column="status",
            enum=ENCOUNTER_STATUS,
            description="Where the encounter stands.",
            create="optional",
            patch=True,
            default="in-progress",
        ),
        Choice(
            name="class_code",
            graphql_name="class",
            column="class_code",
            enum=ENCOUNTER_CLASS,
            description="The setting.",
            create="required",
            patch=True,
        ),
        Span(
            name="period",
            start="period_start",
            end="period_end",
            description="When it took place.",
            create="required",
            patch=True,
        ),
        _patient(),
        Ref(
            name="service_provider",
            target="Organization",
            column="owning_unit_id",
            description="The unit that provided the encounter.",
        ),
        Ref(
            name="participant",
            target="Practitioner",
            column="practitioner_id",
            description="The practitioner who met the patient.",
            create="optional",
            patch=True,
            writer=True,
            input_description="The practitioner who met the patient; yourself when left out.",
        ),
        Many(
            name="observations",
            target="Observation",
            parent_column="encounter_id",
            description="Observations made during the encounter, newest first.",
        ),
        Many(
            name="notes",
            target="ClinicalNote",
            parent_column="encounter_id",
            description="Clinical notes written for the encounter, newest first.",
        ),
        Many(
            name="diagnostic_reports",
            target="DiagnosticReport",
            parent_column="encounter_id",
            description="Diagnostic reports ordered in the encounter, newest first.",
        ),
        *_versioned(),
    ),
    order=_dated("period_start"),
    **patient_data("e", episode_column="id"),
    filters=(
        *_range("period_start", "period", "Started at or after.", "Started before."),
        _status(ENCOUNTER_STATUS),
        Filter("class_code", "class_code", "eq", "text", "Only this setting.", ENCOUNTER_CLASS),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of encounters. Ranges include the start and exclude the end.",
    writable=True,
)

OBSERVATION = ResourceKind(
    name="observation",
    type_name="Observation",
    fhir=FhirMap(
        "Observation",
        (
            ("status", As("status")),
            ("category", Concept("category[]", OBSERVATION_CATEGORY_SYSTEM)),
            ("code", As("code")),
            ("value_quantity", As("valueQuantity")),
            ("effective_date_time", As("effectiveDateTime")),
            ("patient_reported", Extension(name="patient-reported")),
            ("patient", As("subject")),
            ("encounter", As("encounter")),
        ),
        entered_in_error=("status", "entered-in-error"),
        why="A result's report is found from the report (DiagnosticReport.result).",
    ),
    table="observation",
    alias="ob",
    description="A measurement or lab result (FHIR Observation): vital signs and laboratory values.",
    fields=(
        Choice(
            name="status",
            column="status",
            enum=OBSERVATION_STATUS,
            description="Status of the result.",
            create="optional",
            patch=True,
            default="final",
        ),
        Choice(
            name="category",
            column="category",
            enum=OBSERVATION_CATEGORY,
            description="Vital signs or laboratory.",
            create="optional",
            input_description="Vital signs or laboratory; follows from the code when left out.",
        ),
        Coded(
            name="code",
            description="What was observed (LOINC).",
            systems=(LOINC,),
            concepts=("vital-sign", "lab"),
            create="required",
        ),
        Measured(
            name="value_quantity",
            value_column="value_quantity",
            unit_column="value_unit",
            description="The measured value.",
            create="optional",
            patch=True,
        ),
        Instant(
            name="effective_date_time",
            column="effective_at",
            description="When it was observed.",
            create="required",
            patch=True,
        ),
        Flag(
            name="patient_reported",
            column="patient_reported",
            description="A home measurement the patient (or a parent) reported, not one made by personnel.",
        ),
        _patient(),
        Ref(
            name="encounter",
            target="Encounter",
            column="encounter_id",
            description="The encounter the observation was made in.",
            create="optional",
        ),
        Ref(
            name="diagnostic_report",
            target="DiagnosticReport",
            column="diagnostic_report_id",
            description="The diagnostic report the result belongs to, if any.",
        ),
        *_versioned(),
    ),
    order=_dated("effective_at"),
    **patient_data("ob", category_column="category", episode_column="encounter_id"),
    filters=(
        *_range("effective_at", "effective", "Taken at or after.", "Taken before."),
        Filter("code", "code", "eq", "text", "Only this code (e.g. LOINC 8480-6)."),
        Filter("category", "category", "eq", "text", "Only this category.", OBSERVATION_CATEGORY),
        _status(OBSERVATION_STATUS),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of observations. Ranges include the start and exclude the end.",
    writable=True,
    category_from_concept={"vital-sign": "vital-signs", "lab": "laboratory"},
)

DIAGNOSTIC_REPORT = ResourceKind(
    name="diagnostic_report",
    type_name="DiagnosticReport",
    fhir=FhirMap(
        "DiagnosticReport",
        (
            ("status", As("status")),
            ("category", Concept("category[]", V2_0074, {"laboratory": "LAB", "radiology": "RAD"})),
            ("code", As("code")),
            ("effective_date_time", As("effectiveDateTime")),
            ("issued", As("issued")),
            ("conclusion", As("conclusion")),
            ("patient", As("subject")),
            ("encounter", As("encounter")),
            ("performer", As("performer[+]")),
            ("performing_organization", As("performer[+]")),
            ("requester", Extension(name="requester")),
            ("requesting_organization", Extension(name="requesting-organization")),
            ("results", Results("result[+]")),
        ),
        entered_in_error=("status", "entered-in-error"),
        why="R4 names who asked for a report only through a ServiceRequest, which the journal does not keep: "
        "the requester and requesting unit are extensions.",
    ),
    table="diagnostic_report",
    alias="dr",
    description="The result of a lab panel or an imaging study, with its observations (FHIR DiagnosticReport).",
    fields=(
        Choice(
            name="status",
            column="status",
            enum=REPORT_STATUS,
            description="Status of the report.",
            create="optional",
            patch=True,
            default="final",
        ),
        Choice(
            name="category",
            column="category",
            enum=REPORT_CATEGORY,
            description="Laboratory or radiology.",
            create="optional",
            input_description="Laboratory or radiology; follows from the code when left out.",
        ),
        Coded(
            name="code",
            description="What was examined (LOINC).",
            systems=(LOINC,),
            concepts=("lab-panel", "radiology", "lab"),
            create="required",
        ),
        Instant(
            name="effective_date_time",
            column="effective_at",
            description="When the specimen or images were taken.",
            create="required",
            patch=True,
        ),
        Instant(
            name="issued",
            column="issued_at",
            description="When the report was released.",
            create="optional",
            patch=True,
            input_description="When the report was released; now when left out.",
        ),
        Text(
            name="conclusion",
            column="conclusion",
            nullable=True,
            description="The clinical conclusion, if any.",
            create="optional",
            patch=True,
            max_length=10_000,
        ),
        _patient(),
        Ref(
            name="encounter",
            target="Encounter",
            column="encounter_id",
            description="The encounter the report was ordered in.",
            create="optional",
        ),
        Ref(
            name="performer",
            target="Practitioner",
            column="performer_id",
            description="Who produced the report.",
            create="optional",
            patch=True,
        ),
        Ref(
            name="performing_organization",
            target="Organization",
            column="performer_organization_id",
            description="The laboratory or radiology unit that produced the report, when it was delivered by one.",
        ),
        Ref(
            name="requester",
            target="Practitioner",
            column="requester_practitioner_id",
            description="The practitioner who asked for the examination, if named.",
            create="optional",
        ),
        Ref(
            name="requesting_organization",
            target="Organization",
            column="requester_unit_id",
            description="The unit that asked for the examination; the report is filed in its journal.",
            create="optional",
        ),
        Many(
            name="results",
            target="Observation",
            parent_column="diagnostic_report_id",
            description="The report's individual results.",
            filtered=False,
            create="optional",
            input_type_name="DiagnosticReportResultInput",
            input_description="The report's results, created with it in one transaction.",
        ),
        *_versioned(),
    ),
    order=_dated("effective_at"),
    **patient_data("dr", category_column="category", episode_column="encounter_id"),
    filters=(
        *_range("effective_at", "effective", "Taken at or after.", "Taken before."),
        Filter("code", "code", "eq", "text", "Only this code (LOINC)."),
        Filter("category", "category", "eq", "text", "Lab or radiology.", REPORT_CATEGORY),
        _status(REPORT_STATUS),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of diagnostic reports.",
    writable=True,
    stamped=("issued_at",),
    category_from_concept={"lab-panel": "laboratory", "lab": "laboratory", "radiology": "radiology"},
)

CONDITION = ResourceKind(
    name="condition",
    type_name="Condition",
    fhir=FhirMap(
        "Condition",
        (
            ("clinical_status", Concept("clinicalStatus", CONDITION_CLINICAL_SYSTEM)),
            ("verification_status", Concept("verificationStatus", CONDITION_VERIFICATION_SYSTEM)),
            ("category", Concept("category[]", CONDITION_CATEGORY_SYSTEM)),
            ("code", As("code")),
            ("onset_date", As("onsetDateTime")),
            ("abatement_date", As("abatementDateTime")),
            ("recorded_date", As("recordedDate")),
            ("patient", As("subject")),
            ("encounter", As("encounter")),
            ("recorder", As("recorder")),
        ),
        entered_in_error=(
            "verificationStatus",
            {"coding": [{"system": CONDITION_VERIFICATION_SYSTEM, "code": "entered-in-error"}]},
        ),
    ),
    table="condition",
    alias="cn",
    description="A problem or diagnosis (FHIR Condition), coded in ICPC-2 or ICD-10.",
    fields=(
        Choice(
            name="clinical_status",
            column="clinical_status",
            enum=CONDITION_CLINICAL,
            description="Whether it is active.",
            create="optional",
            patch=True,
            default="active",
        ),
        Choice(
            name="verification_status",
            column="verification_status",
            enum=CONDITION_VERIFICATION,
            description="How certain it is.",
            create="optional",
            patch=True,
            default="confirmed",
        ),
        Choice(
            name="category",
            column="category",
            enum=CONDITION_CATEGORY,
            description="Problem list item or encounter diagnosis.",
            create="optional",
            patch=True,
            default="problem-list-item",
        ),
        Coded(
            name="code",
            description="The diagnosis.",
            systems=(ICPC2, ICD10),
            concepts=("diagnosis",),
            create="required",
        ),
        Day(
            name="onset_date",
            column="onset_date",
            nullable=True,
            description="When it began.",
            create="optional",
            patch=True,
        ),
        Day(
            name="abatement_date",
            column="abatement_date",
            nullable=True,
            description="When it resolved.",
            create="optional",
            patch=True,
        ),
        Instant(name="recorded_date", column="recorded_at", description="When it was recorded."),
        _patient(),
        Ref(
            name="encounter",
            target="Encounter",
            column="encounter_id",
            description="The encounter where it was diagnosed, if any.",
            create="optional",
        ),
        Ref(name="recorder", target="Practitioner", column="recorder_id", description="Who recorded it.", writer=True),
        *_versioned(),
    ),
    order=_dated("recorded_at"),
    **patient_data("cn", category_column="category", episode_column="encounter_id"),
    filters=(
        *_range("recorded_at", "recorded", "Recorded at or after.", "Recorded before."),
        Filter("code", "code", "eq", "text", "Only this code (ICPC-2 or ICD-10)."),
        Filter("category", "category", "eq", "text", "Problem list or diagnosis.", CONDITION_CATEGORY),
        Filter("clinical_status", "clinical_status", "eq", "text", "Only this status.", CONDITION_CLINICAL),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of conditions.",
    writable=True,
    stamped=("recorded_at",),
    sensitive_codes=True,
)

MEDICATION_STATEMENT = ResourceKind(
    name="medication_statement",
    type_name="MedicationStatement",
    fhir=FhirMap(
        "MedicationStatement",
        (
            ("status", As("status")),
            ("medication", As("medicationCodeableConcept")),
            ("dosage", As("dosage[].text")),
            ("effective_period", As("effectivePeriod")),
            ("date_asserted", As("dateAsserted")),
            ("patient", As("subject")),
            ("information_source", As("informationSource")),
        ),
        entered_in_error=("status", "entered-in-error"),
    ),
    table="medication_statement",
    alias="ms",
    description="A medicine the patient takes or took (FHIR MedicationStatement), coded in ATC.",
    fields=(
        Choice(
            name="status",
            column="status",
            enum=MEDICATION_STATUS,
            description="Whether it is taken now.",
            create="optional",
            patch=True,
            default="active",
        ),
        Coded(
            name="medication",
            description="The medicine (ATC).",
            systems=(ATC,),
            concepts=("medication",),
            create="required",
        ),
        Text(name="dosage", column="dosage", description="How it is taken, as written.", create="required", patch=True),
        Span(
            name="effective_period",
            start="effective_start",
            end="effective_end",
            dates=True,
            description="When it is or was taken.",
            create="required",
            patch=True,
        ),
        Instant(name="date_asserted", column="date_asserted", description="When this was recorded."),
        _patient(),
        Ref(
            name="information_source",
            target="Practitioner",
            column="information_source_id",
            description="Who recorded it.",
            writer=True,
        ),
        *_versioned(),
    ),
    order=_dated("date_asserted"),
    **patient_data("ms"),
    filters=(
        *_range("date_asserted", "date_asserted", "Asserted at or after.", "Asserted before."),
        Filter("code", "code", "eq", "text", "Only this ATC code."),
        _status(MEDICATION_STATUS),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of medication statements.",
    writable=True,
    stamped=("date_asserted",),
)

ALLERGY_INTOLERANCE = ResourceKind(
    name="allergy_intolerance",
    type_name="AllergyIntolerance",
    fhir=FhirMap(
        "AllergyIntolerance",
        (
            ("clinical_status", Concept("clinicalStatus", ALLERGY_CLINICAL_SYSTEM)),
            ("category", As("category[]")),
            ("criticality", As("criticality")),
            ("code", As("code")),
            ("reaction", As("note[].text")),
            ("recorded_date", As("recordedDate")),
            ("patient", As("patient")),
        ),
        entered_in_error=(
            "verificationStatus",
            {"coding": [{"system": ALLERGY_VERIFICATION_SYSTEM, "code": "entered-in-error"}]},
        ),
        why="The reaction is free text; R4's reaction element requires a coded manifestation, so it is a note.",
    ),
    table="allergy_intolerance",
    alias="al",
    description="An allergy or intolerance: critical information (FHIR AllergyIntolerance).",
    fields=(
        Choice(
            name="clinical_status",
            column="clinical_status",
            enum=ALLERGY_CLINICAL,
            description="Whether it is active.",
            create="optional",
            patch=True,
            default="active",
        ),
        Choice(
            name="category",
            column="category",
            enum=ALLERGY_CATEGORY,
            description="Kind of allergen.",
            create="required",
            patch=True,
        ),
        Choice(
            name="criticality",
            column="criticality",
            enum=ALLERGY_CRITICALITY,
            description="How dangerous a reaction could be.",
            create="optional",
            patch=True,
            default="unable-to-assess",
        ),
        Coded(
            name="code",
            description="The allergen.",
            systems=(ATC, ALLERGENS),
            concepts=("allergen-medication", "allergen-food", "allergen-environment", "allergen-biologic"),
            create="required",
        ),
        Text(
            name="reaction",
            column="reaction",
            nullable=True,
            description="The reaction seen, as written.",
            create="optional",
            patch=True,
        ),
        Instant(name="recorded_date", column="recorded_at", description="When it was recorded."),
        _patient(),
        *_versioned(),
    ),
    extra_columns=("recorder_id",),
    order=_dated("recorded_at"),
    **patient_data("al", category_column="category"),
    filters=(
        Filter("category", "category", "eq", "text", "Only this kind of allergen.", ALLERGY_CATEGORY),
        Filter("clinical_status", "clinical_status", "eq", "text", "Only this status.", ALLERGY_CLINICAL),
        Filter("criticality", "criticality", "eq", "text", "Only this criticality.", ALLERGY_CRITICALITY),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of allergies and intolerances.",
    writable=True,
    stamped=("recorded_at",),
    writer_columns=("recorder_id",),
)

CLINICAL_NOTE = ResourceKind(
    name="clinical_note",
    type_name="ClinicalNote",
    fhir=FhirMap(
        "DocumentReference",
        (
            ("status", As("docStatus", {"draft": "preliminary", "signed": "final"})),
            ("title", As("description")),
            ("title", As("content[].attachment.title")),
            ("created", As("date")),
            ("signed_at", Extension(name="signed-at")),
            ("patient", As("subject")),
            ("encounter", As("context.encounter[]")),
            ("author", As("author[]")),
            ("text", Attachment("content[].attachment")),
            ("replaces", Within("relatesTo[+]", "target", (("code", "replaces"),))),
        ),
        fixed=(("status", "current"), ("content[].attachment.contentType", "text/plain; charset=utf-8")),
        entered_in_error=("status", "entered-in-error"),
        why="DocumentReference: a note is a document with an author, a status of its own (draft or signed) and "
        "corrections that replace earlier versions (relatesTo).",
    ),
    table="clinical_note",
    alias="nt",
    description="A clinical note (journalnotat): a draft its author may edit, or a signed, immutable "
    "note; corrections are new versions that point back.",
    fields=(
        Choice(name="status", column="status", enum=NOTE_STATUS, description="Draft, signed or entered in error."),
        Text(name="title", column="title", description="The note's heading."),
        Instant(name="created", column="created_at", description="When it was written."),
        Instant(
            name="signed_at", column="signed_at", nullable=True, description="When it was signed; null for a draft."
        ),
        _patient(),
        Ref(
            name="encounter",
            target="Encounter",
            column="encounter_id",
            description="The encounter the note belongs to.",
        ),
        Ref(name="author", target="Practitioner", column="author_id", description="Who wrote the note."),
        Text(
            name="text",
            column="text",
            nullable=True,
            permission="read_text",
            description="The note itself. Reading it is a separate permission (`read_text`): a role may see that "
            "a note exists without reading it, and then gets null with a FORBIDDEN error here.",
        ),
        Ref(
            name="replaces",
            target="ClinicalNote",
            column="replaces_id",
            description="The earlier version this note corrects, if any.",
        ),
        *_versioned(),
    ),
    order=_dated("created_at"),
    **patient_data(
        "nt",
        episode_column="encounter_id",
        more={"author_id": Column(sql("nt.author_id"), "uuid"), "status": Column(sql("nt.status"), "text")},
    ),
    phantom={"status": "signed"},
    filters=(
        *_range("created_at", "created", "Written at or after.", "Written before."),
        Filter("status", "status", "eq", "text", "Drafts or signed notes.", NOTE_STATUS),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of clinical notes.",
)

CARE_PLAN = ResourceKind(
    name="care_plan",
    type_name="CarePlan",
    fhir=FhirMap(
        "CarePlan",
        (
            ("status", As("status")),
            ("intent", As("intent")),
            ("title", As("title")),
            ("description", As("description")),
            ("period", As("period")),
            ("created", As("created")),
            ("patient", As("subject")),
            ("author", As("author")),
        ),
        entered_in_error=("status", "entered-in-error"),
    ),
    table="care_plan",
    alias="cp",
    description="A plan for the patient's care, e.g. a home-care plan (FHIR CarePlan).",
    fields=(
        Choice(
            name="status",
            column="status",
            enum=CARE_PLAN_STATUS,
            description="Whether the plan is in force.",
            create="optional",
            patch=True,
            default="active",
        ),
        Text(name="intent", column="intent", description="FHIR intent; always `plan` here."),
        Text(
            name="title", column="title", description="The plan's title.", create="required", patch=True, max_length=200
        ),
        Text(
            name="description",
            column="description",
            description="What the plan says.",
            create="required",
            patch=True,
            max_length=20_000,
        ),
        Span(
            name="period",
            start="period_start",
            end="period_end",
            dates=True,
            description="When the plan applies.",
            create="required",
            patch=True,
        ),
        Instant(name="created", column="created_at", description="When the plan was written."),
        _patient(),
        Ref(name="author", target="Practitioner", column="author_id", description="Who wrote the plan.", writer=True),
        *_versioned(),
    ),
    order=_dated("created_at"),
    **patient_data("cp"),
    filters=(_status(CARE_PLAN_STATUS), INCLUDE_ENTERED_IN_ERROR),
    filter_description="Narrows a list of care plans.",
    writable=True,
    stamped=("created_at",),
)

APPOINTMENT = ResourceKind(
    name="appointment",
    type_name="Appointment",
    fhir=FhirMap(
        "Appointment",
        (
            ("status", As("status")),
            ("service_type", Described("serviceType[]")),
            ("description", As("description")),
            ("start", As("start")),
            ("end", As("end")),
            ("patient", Within("participant[+]", "actor", (("status", "accepted"),))),
            ("organization", Within("participant[+]", "actor", (("status", "accepted"),))),
            ("practitioner", Within("participant[+]", "actor", (("status", "accepted"),))),
        ),
        entered_in_error=("status", "entered-in-error"),
    ),
    table="appointment",
    alias="ap",
    description="A booked visit (FHIR Appointment).",
    fields=(
        Choice(
            name="status",
            column="status",
            enum=APPOINTMENT_STATUS,
            description="Where the appointment stands.",
            create="optional",
            patch=True,
            default="booked",
        ),
        Text(
            name="service_type",
            column="service_type",
            description="What the appointment is for.",
            create="required",
            patch=True,
            max_length=200,
        ),
        Text(
            name="description",
            column="description",
            description="Details shown to the patient.",
            create="required",
            patch=True,
        ),
        Instant(name="start", column="start_at", description="When it starts.", create="required", patch=True),
        Instant(name="end", column="end_at", description="When it ends.", create="required", patch=True),
        _patient(),
        Ref(
            name="organization",
            target="Organization",
            column="owning_unit_id",
            description="The unit the appointment is with.",
        ),
        Ref(
            name="practitioner",
            target="Practitioner",
            column="practitioner_id",
            description="The practitioner the appointment is with, if any.",
            create="optional",
            patch=True,
        ),
        *_versioned(),
    ),
    order=_dated("start_at"),
    **patient_data("ap"),
    filters=(
        *_range("start_at", "start", "Starting at or after.", "Starting before."),
        _status(APPOINTMENT_STATUS),
        Filter(
            "organization_id",
            "owning_unit_id",
            "eq",
            "uuid",
            "Only appointments with this unit (its global id).",
            target="Organization",
        ),
        INCLUDE_ENTERED_IN_ERROR,
    ),
    filter_description="Narrows a list of appointments.",
    writable=True,
    ordered_columns=(("start_at", "end_at"),),
    transitions=(
        Transition(
            "cancel",
            "status",
            "cancelled",
            ("proposed", "booked"),
            "Cancel an appointment that is proposed or booked: the patient (or a parent) may cancel their own, "
            "staff those of patients they care for.",
        ),
    ),
)

RESTRICTION = ResourceKind(
    name="restriction",
    type_name="Restriction",
    fhir=FhirMap(
        "Consent",
        (
            ("scope", Concept("category[+]", f"{AKSON_CODES}:restriction-scope")),
            ("target_kind", Extension(name="restriction-target-kind")),
            ("target_category", Extension(name="restriction-target-category")),
            ("reason", Extension(name="restriction-reason")),
            ("period", As("provision.period")),
            ("period", PeriodStatus("status", before="proposed", during="active", after="inactive")),
            ("created", As("dateTime")),
            ("patient", As("patient")),
            ("target_practitioner", Within("provision.actor[+]", "reference", (("role", BLOCKED_ACTOR),))),
            ("target_organization", Within("provision.actor[+]", "reference", (("role", BLOCKED_ACTOR),))),
        ),
        fixed=(
            ("scope", {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]}),
            ("category[+]", {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}),
            ("policyRule", {"coding": [{"system": V3_ACT_CODE, "code": "OPTOUT"}]}),
            ("provision.type", "deny"),
        ),
        entered_in_error=("status", "entered-in-error"),
        why="Consent: a sperring is the patient's privacy directive denying access (provision type deny) to "
        "people, units, categories or items for a period.",
    ),
    table="restriction",
    alias="rs",
    description="A patient's block (sperring) on part of their journal against people or units.",
    fields=(
        Choice(
            name="scope",
            column="scope",
            enum=RESTRICTION_SCOPE,
            description="What is blocked: an item, a category, an episode, a person or a unit.",
        ),
        Text(
            name="target_kind",
            column="target_kind",
            nullable=True,
            description="For an item or episode block: the kind of resource.",
        ),
        Text(
            name="target_category",
            column="target_category",
            nullable=True,
            description="For a category block: the data category.",
        ),
        Text(name="reason", column="reason", description="The patient's stated reason."),
        Span(name="period", start="period_start", end="period_end", description="When the block is in force."),
        Instant(name="created", column="created_at", description="When it was made."),
        _patient(),
        Ref(
            name="target_practitioner",
            target="Practitioner",
            column="target_practitioner_id",
            description="For a person block: the practitioner blocked.",
        ),
        Ref(
            name="target_organization",
            target="Organization",
            column="target_unit_id",
            description="For a unit block: the unit blocked.",
        ),
        *_versioned(),
    ),
    extra_columns=("owning_unit_id", "target_id"),
    order=_dated("created_at"),
    **patient_data("rs"),
    filters=(INCLUDE_ENTERED_IN_ERROR,),
    filter_description="Narrows a list of restrictions.",
)

EMERGENCY_GRANT = ResourceKind(
    name="emergency_grant",
    type_name="EmergencyGrant",
    table="emergency_grant",
    alias="eg2",
    description="Emergency access to a patient's record without a care relation: time-limited, "
    "flagged in the audit log, reviewed afterwards and shown to the patient.",
    fields=(
        Text(name="reason", column="reason", description="The reason the practitioner stated."),
        Flag(
            name="life_or_health_at_risk",
            column="life_or_health_at_risk",
            description="A life-or-health emergency: only then does the grant pierce the patient's restrictions.",
        ),
        Instant(name="granted_at", column="granted_at", description="When access was opened."),
        Instant(name="expires_at", column="expires_at", description="When it closes by itself."),
        Instant(
            name="reviewed_at",
            column="reviewed_at",
            nullable=True,
            description="When it was reviewed; null while pending.",
        ),
        Text(
            name="review_conclusion",
            column="review_conclusion",
            nullable=True,
            description="What the review concluded.",
        ),
        Ref(name="patient", target="Patient", column="patient_id", description="The patient whose record was opened."),
        Ref(
            name="practitioner",
            target="Practitioner",
            column="practitioner_id",
            description="The practitioner who opened it.",
        ),
        *_versioned(patient_data=False),
    ),
    extra_columns=("reviewed_by",),
    order=(("granted_at", "timestamptz"), ("id", "uuid")),
    attributes={
        "patient_id": Column(sql("eg2.patient_id"), "uuid"),
        "practitioner_id": Column(sql("eg2.practitioner_id"), "uuid"),
        "reviewed": Column(sql("(eg2.reviewed_at IS NOT NULL)"), "boolean"),
    },
    filters=(Filter("reviewed", "reviewed_at", "set", "boolean", "Only reviewed (true) or pending (false)."),),
    filter_description="Narrows a list of emergency grants.",
)

# ---- the platform: apps and the audit log (not nodes) ------------------------------------------------

APP = ResourceKind(
    name="app",
    type_name="App",
    table="app",
    alias="a",
    id_column="client_id",
    extra_columns=(
        "name",
        "vendor_org_number",
        "kind",
        "redirect_uris",
        "jwks_uri",
        "requested_scopes",
        "status",
        "status_reason",
        "registered_by",
        "registered_at",
        "decided_by",
        "decided_at",
        "acting_unit_id",
        "requests_per_minute",
        "max_cost_per_request",
        "cost_per_minute",
    ),
    order=(("registered_at", "timestamptz"), ("client_id", "text")),
    attributes={
        "client_id": Column(sql("a.client_id"), "text"),
        "status": Column(sql("a.status"), "text"),
        "kind": Column(sql("a.kind"), "text"),
        "registered_by": Column(sql("a.registered_by"), "text"),
    },
    patient_column=None,
    node=False,
)

WEBHOOK_ENDPOINT = ResourceKind(
    name="webhook_endpoint",
    type_name="WebhookEndpoint",
    table="webhook_endpoint",
    alias="we",
    extra_columns=(
        "client_id",
        "url",
        "description",
        "kinds",
        "patient_id",
        "unit_id",
        "status",
        "status_reason",
        "created_at",
        "created_by",
        "version",
        "updated_at",
        "previous_secret_expires_at",
    ),
    order=(("created_at", "timestamptz"), ("id", "uuid")),
    attributes={"client_id": Column(sql("we.client_id"), "text")},
    patient_column=None,
    node=False,
)

WEBHOOK_DELIVERY = ResourceKind(
    name="webhook_delivery",
    type_name="WebhookDelivery",
    table="webhook_delivery",
    alias="wd",
    extra_columns=(
        "endpoint_id",
        "seq",
        "resource_kind",
        "resource_id",
        "action",
        "version",
        "committed_at",
        "status",
        "status_reason",
        "attempts",
        "next_attempt_at",
        "first_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_latency_ms",
        "delivered_at",
    ),
    order=(("created_at", "timestamptz"), ("id", "uuid")),
    attributes={
        "client_id": Column(sql("(SELECT w.client_id FROM webhook_endpoint w WHERE w.id = wd.endpoint_id)"), "text")
    },
    patient_column=None,
    filters=(
        Filter("endpoint_id", "endpoint_id", "eq", "uuid", target="WebhookEndpoint"),
        Filter("status", "status", "eq", "text"),
    ),
    node=False,
)

AUDIT_EVENT = ResourceKind(
    name="audit_event",
    type_name="AuditEvent",
    table="audit_event",
    alias="ae",
    extra_columns=(
        "recorded_at",
        "actor_kind",
        "actor_id",
        "actor_hpr_number",
        "actor_unit_ids",
        "client_id",
        "resource_kind",
        "resource_ids",
        "action",
        "purpose_of_use",
        "self_attested",
        "emergency",
        "decision",
        "reason",
        "policy_version",
        "trace_id",
    ),
    order=(("recorded_at", "timestamptz"), ("id", "bigint")),
    attributes={
        "patient_id": Column(sql("coalesce(ae.patient_id::text, '')"), "text"),
        "patient_age": Column(
            sql(
                "coalesce((SELECT date_part('year', age(pt.birth_date))::integer FROM patient pt "
                "WHERE pt.id = ae.patient_id), 0)"
            ),
            "integer",
        ),
        "blocked_for_guardians": Column(
            sql(
                "EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = ae.patient_id AND ",
                ACTIVE_RESTRICTION,
                " AND rx.scope = 'guardians' AND rx.target_category IS NULL)",
            ),
            "boolean",
        ),
    },
    patient_column="patient_id",
    filters=(
        Filter("recorded_from", "recorded_at", "ge", "timestamptz"),
        Filter("recorded_to", "recorded_at", "lt", "timestamptz"),
        Filter("client_id", "client_id", "eq", "text"),
        Filter("actor_id", "actor_id", "eq", "text"),
        Filter("decision", "decision", "eq", "text"),
        Filter("emergency", "emergency", "eq", "boolean"),
        Filter("resource_kind", "resource_kind", "eq", "text"),
        Filter("patient_id", "patient_id", "eq", "uuid"),
        Filter("unit_id", "actor_unit_ids", "has", "uuid"),
    ),
    node=False,
)

KINDS: dict[str, ResourceKind] = {
    k.type_name: k
    for k in (
        MUNICIPALITY,
        ORGANIZATION,
        PRACTITIONER,
        PRACTITIONER_ROLE,
        PATIENT,
        CARE_RELATION,
        ENCOUNTER,
        OBSERVATION,
        DIAGNOSTIC_REPORT,
        CONDITION,
        MEDICATION_STATEMENT,
        ALLERGY_INTOLERANCE,
        CLINICAL_NOTE,
        CARE_PLAN,
        APPOINTMENT,
        RESTRICTION,
        EMERGENCY_GRANT,
        AUDIT_EVENT,
    )
}
