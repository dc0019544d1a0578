"""Resource kinds as policy, SQL and the API see them: table, columns, sort key, filters, and each
policy attribute's SQL.

One declaration serves every direction: the store selects the attribute expressions to fill resource
attributes for CheckResources, the plan translator filters on the same expressions for lists, and the
keyset pagination and filters are built from the same column list. A care relation counts while its
period includes now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.plan_sql import ArrayOf, Attribute, Column, SetOf

ACTIVE_CARE_RELATION = "cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now())"
ACTIVE_RESTRICTION = (
    "rx.period_start <= now() AND (rx.period_end IS NULL OR rx.period_end > now()) AND rx.lifted_at IS NULL"
)
ACTIVE_GRANT = "eg.granted_at <= now() AND eg.expires_at > now()"

FilterOp = Literal["eq", "ge", "lt", "set", "has"]


@dataclass(frozen=True)
class Filter:
    """A filter an API argument maps to: `column op value`."""

    column: str
    op: FilterOp
    pg_type: str


@dataclass(frozen=True)
class ResourceKind:
    """A kind of journal resource: its Cerbos name, GraphQL type, table and policy attributes.

    `order` is the keyset: sort columns with their types, the id last. `newest_first` says which way
    the default order runs. `patient_column` is None for directory kinds, which are not patient data.
    """

    name: str
    type_name: str
    table: str
    alias: str
    columns: tuple[str, ...]
    order: tuple[tuple[str, str], ...]
    attributes: dict[str, Attribute]
    patient_column: str | None = "patient_id"
    newest_first: bool = True
    filters: dict[str, Filter] = field(default_factory=dict)
    phantom: dict[str, object] = field(default_factory=dict)
    context_attributes: dict[str, Attribute] = field(default_factory=dict)

    @property
    def scope_sql(self) -> str | None:
        """SQL for the policy scope of a row: the scope of the municipality owning it (patient data only)."""
        if "owning_unit_id" not in self.attributes:
            return None
        return (
            "(SELECT m.policy_scope FROM organization o JOIN municipality m ON m.id = o.municipality_id "
            f"WHERE o.id = {self.alias}.owning_unit_id)"
        )

    @property
    def is_patient_data(self) -> bool:
        return self.patient_column is not None

    def select_list(self) -> str:
        """The columns of a row, qualified by the alias."""
        return ", ".join(f"{self.alias}.{c}" for c in self.columns)

    def attribute_select(self) -> str:
        """SELECT-list entries that load every policy attribute, named `attr_<name>`."""
        parts = []
        for name, attribute in self.attributes.items():
            if isinstance(attribute, SetOf):
                parts.append(f"ARRAY({attribute.sql})::text[] AS attr_{name}")
            elif attribute.pg_type in {"boolean", "integer"}:
                parts.append(f"{attribute.sql} AS attr_{name}")
            else:
                parts.append(f"{attribute.sql}::text AS attr_{name}")
        return ", ".join(parts)


def patient_data_attributes(
    alias: str,
    patient_column: str = "patient_id",
    category_column: str = "data_category",
    episode_column: str | None = None,
    context: str | None = None,
) -> dict[str, Attribute]:
    """The attributes every patient-data kind carries: whose data, which unit owns it, its data
    category, its FHIR category (the data category where FHIR has none; what `?category=` scopes
    narrow on), who has an active care relation with the patient, the patient's age, the patient's
    restrictions (sperring) that reach this row, emergency grants, and the harm exception.

    With `context`, the alias of the row's patient context (a row of PATIENT_CONTEXT_COLUMNS), what
    depends on the patient alone is read from that row, and restrictions are looked up only for
    patients who have any: a nested read then asks once per patient, not once per row."""
    patient = f"{alias}.{patient_column}"
    applies = f"(rx.target_category IS NULL OR rx.target_category = {alias}.data_category)"
    episode = f" OR (rx.scope = 'episode' AND rx.target_id = {alias}.{episode_column})" if episode_column else ""
    withheld = "FALSE" if patient_column == "id" else f"{alias}.withheld_from_patient"
    restricted = f"{context}.restricted AND " if context else ""
    attributes: dict[str, Attribute] = {
        "patient_age": Column(
            f"(SELECT date_part('year', age(pt.birth_date))::integer FROM patient pt WHERE pt.id = {patient})",
            "integer",
        ),
        "withheld_from_patient": Column(withheld, "boolean"),
        "blocked": Column(
            f"EXISTS (SELECT 1 FROM restriction rx WHERE {restricted}rx.patient_id = {patient} AND "
            f"{ACTIVE_RESTRICTION} AND ((rx.scope = 'item' AND rx.target_id = {alias}.id) "
            f"OR (rx.scope = 'category' AND rx.target_category = {alias}.data_category){episode}))",
            "boolean",
        ),
        "blocked_for_guardians": Column(
            f"EXISTS (SELECT 1 FROM restriction rx WHERE {restricted}rx.patient_id = {patient} "
            f"AND {ACTIVE_RESTRICTION} AND rx.scope = 'guardians' AND {applies})",
            "boolean",
        ),
        "blocked_practitioner_ids": SetOf(
            f"SELECT rx.target_practitioner_id FROM restriction rx WHERE {restricted}rx.patient_id = {patient} "
            f"AND {ACTIVE_RESTRICTION} AND rx.scope = 'person' AND {applies}",
            "uuid",
        ),
        "blocked_unit_ids": SetOf(
            f"SELECT rx.target_unit_id FROM restriction rx WHERE {restricted}rx.patient_id = {patient} "
            f"AND {ACTIVE_RESTRICTION} AND rx.scope = 'unit' AND {applies}",
            "uuid",
        ),
        "emergency_practitioner_ids": SetOf(
            f"SELECT eg.practitioner_id FROM emergency_grant eg WHERE eg.patient_id = {patient} AND {ACTIVE_GRANT}",
            "uuid",
        ),
        "life_threat_practitioner_ids": SetOf(
            f"SELECT eg.practitioner_id FROM emergency_grant eg WHERE eg.patient_id = {patient} AND {ACTIVE_GRANT} "
            "AND eg.life_or_health_at_risk",
            "uuid",
        ),
        "patient_id": Column(patient, "uuid"),
        "owning_unit_id": Column(f"{alias}.owning_unit_id", "uuid"),
        "data_category": Column(f"{alias}.data_category", "text"),
        "category": Column(f"{alias}.{category_column}", "text"),
        "care_unit_ids": SetOf(
            f"SELECT cr.organization_id FROM care_relation cr "
            f"WHERE cr.patient_id = {patient} AND {ACTIVE_CARE_RELATION}",
            "uuid",
        ),
        "care_practitioner_ids": SetOf(
            f"SELECT cr.practitioner_id FROM care_relation cr WHERE cr.patient_id = {patient} "
            f"AND cr.practitioner_id IS NOT NULL AND {ACTIVE_CARE_RELATION}",
            "uuid",
        ),
    }
    if context:
        for name in PATIENT_LEVEL:
            value, shown = attributes[name], f"{context}.{name}"
            attributes[name] = (ArrayOf if isinstance(value, SetOf) else Column)(shown, value.pg_type)
    return attributes


# The patient-data attributes that depend on the patient alone, and the row that holds them for the
# patient `px` (FROM patient px), with whether the patient has any active restriction at all.
PATIENT_LEVEL = (
    "patient_age",
    "care_unit_ids",
    "care_practitioner_ids",
    "emergency_practitioner_ids",
    "life_threat_practitioner_ids",
)
PATIENT_CONTEXT = "_pc"


def _patient_context_columns() -> str:
    of_patient = patient_data_attributes("px", "id")
    columns = ["px.id"]
    for name in PATIENT_LEVEL:
        value = of_patient[name]
        columns.append(f"ARRAY({value.sql}) AS {name}" if isinstance(value, SetOf) else f"{value.sql} AS {name}")
    active = f"EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = px.id AND {ACTIVE_RESTRICTION})"
    columns.append(f"{active} AS restricted")
    return ", ".join(columns)


PATIENT_CONTEXT_COLUMNS = _patient_context_columns()


def patient_data(
    alias: str,
    patient_column: str = "patient_id",
    category_column: str = "data_category",
    episode_column: str | None = None,
    more: dict[str, Attribute] | None = None,
) -> dict[str, dict[str, Attribute]]:
    """A patient-data kind's `attributes` and `context_attributes` (the same, read through the
    patient context PATIENT_CONTEXT), as keyword arguments of ResourceKind."""
    shape = (alias, patient_column, category_column, episode_column)
    return {
        "attributes": {**patient_data_attributes(*shape), **(more or {})},
        "context_attributes": {**patient_data_attributes(*shape, context=PATIENT_CONTEXT), **(more or {})},
    }


def _dated(column: str) -> tuple[tuple[str, str], ...]:
    return ((column, "timestamptz"), ("id", "uuid"))


def _range(column: str, pg_type: str = "timestamptz") -> dict[str, Filter]:
    stem = column.removesuffix("_at").removesuffix("_start")
    return {f"{stem}_from": Filter(column, "ge", pg_type), f"{stem}_to": Filter(column, "lt", pg_type)}


ORGANIZATION = ResourceKind(
    name="organization",
    type_name="Organization",
    table="organization",
    alias="o",
    columns=("id", "municipality_id", "org_number", "name", "unit_type"),
    order=(("name", "text"), ("id", "uuid")),
    attributes={"municipality_id": Column("o.municipality_id", "uuid")},
    patient_column=None,
    newest_first=False,
    filters={
        "unit_type": Filter("unit_type", "eq", "text"),
        "municipality_id": Filter("municipality_id", "eq", "uuid"),
    },
)

PRACTITIONER = ResourceKind(
    name="practitioner",
    type_name="Practitioner",
    table="practitioner",
    alias="pr",
    columns=("id", "hpr_number", "family_name", "given_name"),
    order=(("family_name", "text"), ("given_name", "text"), ("id", "uuid")),
    attributes={},
    patient_column=None,
    newest_first=False,
)

PRACTITIONER_ROLE = ResourceKind(
    name="practitioner_role",
    type_name="PractitionerRole",
    table="practitioner_role",
    alias="rl",
    columns=("id", "practitioner_id", "organization_id", "role", "period_start", "period_end"),
    order=(("period_start", "date"), ("id", "uuid")),
    attributes={"organization_id": Column("rl.organization_id", "uuid")},
    patient_column=None,
)

PATIENT = ResourceKind(
    name="patient",
    type_name="Patient",
    table="patient",
    alias="p",
    columns=(
        "id",
        "national_id",
        "family_name",
        "given_name",
        "birth_date",
        "gender",
        "municipality_id",
        "owning_unit_id",
    ),
    order=(("family_name", "text"), ("given_name", "text"), ("id", "uuid")),
    **patient_data("p", "id"),
    patient_column="id",
    newest_first=False,
)

CARE_RELATION = ResourceKind(
    name="care_relation",
    type_name="CareRelation",
    table="care_relation",
    alias="cre",
    columns=("id", "patient_id", "organization_id", "practitioner_id", "purpose", "period_start", "period_end"),
    order=_dated("period_start"),
    **patient_data("cre"),
)

ENCOUNTER = ResourceKind(
    name="encounter",
    type_name="Encounter",
    table="encounter",
    alias="e",
    columns=(
        "id",
        "patient_id",
        "owning_unit_id",
        "practitioner_id",
        "class_code",
        "status",
        "period_start",
        "period_end",
    ),
    order=_dated("period_start"),
    **patient_data("e", episode_column="id"),
    filters={
        **_range("period_start"),
        "status": Filter("status", "eq", "text"),
        "class_code": Filter("class_code", "eq", "text"),
    },
)

OBSERVATION = ResourceKind(
    name="observation",
    type_name="Observation",
    table="observation",
    alias="ob",
    columns=(
        "id",
        "patient_id",
        "encounter_id",
        "diagnostic_report_id",
        "owning_unit_id",
        "category",
        "status",
        "code_system",
        "code",
        "code_display",
        "value_quantity",
        "value_unit",
        "effective_at",
    ),
    order=_dated("effective_at"),
    **patient_data("ob", category_column="category", episode_column="encounter_id"),
    filters={
        **_range("effective_at"),
        "code": Filter("code", "eq", "text"),
        "category": Filter("category", "eq", "text"),
        "status": Filter("status", "eq", "text"),
    },
)

DIAGNOSTIC_REPORT = ResourceKind(
    name="diagnostic_report",
    type_name="DiagnosticReport",
    table="diagnostic_report",
    alias="dr",
    columns=(
        "id",
        "patient_id",
        "encounter_id",
        "owning_unit_id",
        "category",
        "status",
        "code_system",
        "code",
        "code_display",
        "effective_at",
        "issued_at",
        "performer_id",
        "conclusion",
    ),
    order=_dated("effective_at"),
    **patient_data("dr", category_column="category", episode_column="encounter_id"),
    filters={
        **_range("effective_at"),
        "code": Filter("code", "eq", "text"),
        "category": Filter("category", "eq", "text"),
        "status": Filter("status", "eq", "text"),
    },
)

CONDITION = ResourceKind(
    name="condition",
    type_name="Condition",
    table="condition",
    alias="cn",
    columns=(
        "id",
        "patient_id",
        "encounter_id",
        "owning_unit_id",
        "data_category",
        "category",
        "clinical_status",
        "verification_status",
        "code_system",
        "code",
        "code_display",
        "onset_date",
        "abatement_date",
        "recorded_at",
        "recorder_id",
    ),
    order=_dated("recorded_at"),
    **patient_data("cn", category_column="category", episode_column="encounter_id"),
    filters={
        **_range("recorded_at"),
        "code": Filter("code", "eq", "text"),
        "category": Filter("category", "eq", "text"),
        "clinical_status": Filter("clinical_status", "eq", "text"),
    },
)

MEDICATION_STATEMENT = ResourceKind(
    name="medication_statement",
    type_name="MedicationStatement",
    table="medication_statement",
    alias="ms",
    columns=(
        "id",
        "patient_id",
        "owning_unit_id",
        "status",
        "code_system",
        "code",
        "code_display",
        "dosage",
        "effective_start",
        "effective_end",
        "date_asserted",
        "information_source_id",
    ),
    order=_dated("date_asserted"),
    **patient_data("ms"),
    filters={**_range("date_asserted"), "code": Filter("code", "eq", "text"), "status": Filter("status", "eq", "text")},
)

ALLERGY_INTOLERANCE = ResourceKind(
    name="allergy_intolerance",
    type_name="AllergyIntolerance",
    table="allergy_intolerance",
    alias="al",
    columns=(
        "id",
        "patient_id",
        "owning_unit_id",
        "clinical_status",
        "category",
        "criticality",
        "code_system",
        "code",
        "code_display",
        "reaction",
        "recorded_at",
        "recorder_id",
    ),
    order=_dated("recorded_at"),
    **patient_data("al", category_column="category"),
    filters={
        "category": Filter("category", "eq", "text"),
        "clinical_status": Filter("clinical_status", "eq", "text"),
        "criticality": Filter("criticality", "eq", "text"),
    },
)

CLINICAL_NOTE = ResourceKind(
    name="clinical_note",
    type_name="ClinicalNote",
    table="clinical_note",
    alias="nt",
    columns=(
        "id",
        "patient_id",
        "encounter_id",
        "owning_unit_id",
        "status",
        "author_id",
        "title",
        "text",
        "created_at",
        "signed_at",
        "replaces_id",
    ),
    order=_dated("created_at"),
    **patient_data(
        "nt",
        episode_column="encounter_id",
        more={"author_id": Column("nt.author_id", "uuid"), "status": Column("nt.status", "text")},
    ),
    phantom={"status": "signed"},
    filters={**_range("created_at"), "status": Filter("status", "eq", "text")},
)

CARE_PLAN = ResourceKind(
    name="care_plan",
    type_name="CarePlan",
    table="care_plan",
    alias="cp",
    columns=(
        "id",
        "patient_id",
        "owning_unit_id",
        "status",
        "intent",
        "title",
        "description",
        "period_start",
        "period_end",
        "author_id",
        "created_at",
    ),
    order=_dated("created_at"),
    **patient_data("cp"),
    filters={"status": Filter("status", "eq", "text")},
)

APPOINTMENT = ResourceKind(
    name="appointment",
    type_name="Appointment",
    table="appointment",
    alias="ap",
    columns=(
        "id",
        "patient_id",
        "owning_unit_id",
        "practitioner_id",
        "status",
        "service_type",
        "description",
        "start_at",
        "end_at",
    ),
    order=_dated("start_at"),
    **patient_data("ap"),
    filters={**_range("start_at"), "status": Filter("status", "eq", "text")},
)

RESTRICTION = ResourceKind(
    name="restriction",
    type_name="Restriction",
    table="restriction",
    alias="rs",
    columns=(
        "id",
        "patient_id",
        "owning_unit_id",
        "scope",
        "target_kind",
        "target_id",
        "target_category",
        "target_practitioner_id",
        "target_unit_id",
        "reason",
        "period_start",
        "period_end",
        "created_at",
    ),
    order=_dated("created_at"),
    **patient_data("rs"),
)

KINDS: dict[str, ResourceKind] = {
    k.type_name: k
    for k in (
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
    )
}

APP = ResourceKind(
    name="app",
    type_name="App",
    table="app",
    alias="a",
    columns=(
        "client_id",
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
    ),
    order=(("registered_at", "timestamptz"), ("client_id", "text")),
    attributes={
        "client_id": Column("a.client_id", "text"),
        "status": Column("a.status", "text"),
        "kind": Column("a.kind", "text"),
        "registered_by": Column("a.registered_by", "text"),
    },
    patient_column=None,
)

EMERGENCY_GRANT = ResourceKind(
    name="emergency_grant",
    type_name="EmergencyGrant",
    table="emergency_grant",
    alias="eg2",
    columns=(
        "id",
        "patient_id",
        "practitioner_id",
        "reason",
        "life_or_health_at_risk",
        "granted_at",
        "expires_at",
        "reviewed_at",
        "reviewed_by",
        "review_conclusion",
    ),
    order=(("granted_at", "timestamptz"), ("id", "uuid")),
    attributes={
        "patient_id": Column("eg2.patient_id", "uuid"),
        "practitioner_id": Column("eg2.practitioner_id", "uuid"),
        "reviewed": Column("(eg2.reviewed_at IS NOT NULL)", "boolean"),
    },
    filters={"reviewed": Filter("reviewed_at", "set", "boolean")},
)

KINDS[EMERGENCY_GRANT.type_name] = EMERGENCY_GRANT

AUDIT_EVENT = ResourceKind(
    name="audit_event",
    type_name="AuditEvent",
    table="audit_event",
    alias="ae",
    columns=(
        "id",
        "recorded_at",
        "actor_kind",
        "actor_id",
        "actor_hpr_number",
        "actor_unit_ids",
        "client_id",
        "patient_id",
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
        "patient_id": Column("coalesce(ae.patient_id::text, '')", "text"),
        "patient_age": Column(
            "coalesce((SELECT date_part('year', age(pt.birth_date))::integer FROM patient pt "
            "WHERE pt.id = ae.patient_id), 0)",
            "integer",
        ),
        "blocked_for_guardians": Column(
            f"EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = ae.patient_id AND {ACTIVE_RESTRICTION} "
            "AND rx.scope = 'guardians' AND rx.target_category IS NULL)",
            "boolean",
        ),
    },
    patient_column="patient_id",
    filters={
        "recorded_from": Filter("recorded_at", "ge", "timestamptz"),
        "recorded_to": Filter("recorded_at", "lt", "timestamptz"),
        "client_id": Filter("client_id", "eq", "text"),
        "actor_id": Filter("actor_id", "eq", "text"),
        "decision": Filter("decision", "eq", "text"),
        "emergency": Filter("emergency", "eq", "boolean"),
        "resource_kind": Filter("resource_kind", "eq", "text"),
        "patient_id": Filter("patient_id", "eq", "uuid"),
        "unit_id": Filter("actor_unit_ids", "has", "uuid"),
    },
)
KINDS[AUDIT_EVENT.type_name] = AUDIT_EVENT
