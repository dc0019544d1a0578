"""The policy attributes of patient data, as SQL: what Cerbos decides on, read from the journal.

The same expressions fill a resource's attributes for CheckResources and filter lists through the
translated query plans (gateway/plan_sql.py), so a check and a plan can never disagree. A care relation
counts while its period includes now; restrictions and emergency grants likewise.
"""

from __future__ import annotations

from typing import TypedDict

from gateway.plan_sql import ArrayOf, Attribute, Column, Holders, SetOf
from gateway.sql import Sql, ident, join, sql

ACTIVE_CARE_RELATION = sql("cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now())")
ACTIVE_RESTRICTION = sql(
    "rx.period_start <= now() AND (rx.period_end IS NULL OR rx.period_end > now()) AND rx.lifted_at IS NULL"
)
ACTIVE_GRANT = sql("eg.granted_at <= now() AND eg.expires_at > now()")

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


def care_held(patient: Sql, by: str) -> Holders:
    """Active care relations asked by unit or practitioner (`by`): the patients they are with. A relation
    with no practitioner holds no value (a NULL in the row's set would make `= ANY` unknown, not false)."""
    active = sql(ident("cr", by), " IS NOT NULL AND ", ACTIVE_CARE_RELATION)
    return Holders(patient, sql("care_relation cr"), sql("cr.patient_id"), ident("cr", by), active)


def grants_held(patient: Sql, active: Sql) -> Holders:
    """Emergency grants asked by practitioner: the patients a practitioner holds an `active` grant for."""
    return Holders(patient, sql("emergency_grant eg"), sql("eg.patient_id"), sql("eg.practitioner_id"), active)


def patient_data_attributes(
    alias: str,
    patient_column: str = "patient_id",
    category_column: str = "data_category",
    episode_column: str | None = None,
    context: str | None = None,
) -> dict[str, Attribute]:
    """The attributes every patient-data kind carries: whose data, who recorded it, which unit owns it, its data
    category, its FHIR category (the data category where FHIR has none; what `?category=` scopes
    narrow on), who has an active care relation with the patient, the patient's age, the patient's
    restrictions (sperring) that reach this row, emergency grants, and the harm exception.

    With `context`, the alias of the row's patient context (a row of PATIENT_CONTEXT_COLUMNS), what
    depends on the patient alone is read from that row, and restrictions are looked up only for
    patients who have any: a nested read then asks once per patient, not once per row."""
    patient = ident(alias, patient_column)
    own = ident(alias, "id")
    data_category = ident(alias, "data_category")
    applies = sql("(rx.target_category IS NULL OR rx.target_category = ", data_category, ")")
    episode = (
        sql(" OR (rx.scope = 'episode' AND rx.target_id = ", ident(alias, episode_column), ")")
        if episode_column
        else sql()
    )
    withheld = sql("FALSE") if patient_column == "id" else ident(alias, "withheld_from_patient")
    restricted = sql(ident(context, "restricted"), " AND ") if context else sql()
    of_patient = sql(restricted, "rx.patient_id = ", patient, " AND ", ACTIVE_RESTRICTION)
    attributes: dict[str, Attribute] = {
        "patient_age": Column(
            sql("(SELECT date_part('year', age(pt.birth_date))::integer FROM patient pt WHERE pt.id = ", patient, ")"),
            "integer",
        ),
        "withheld_from_patient": Column(withheld, "boolean"),
        "blocked": Column(
            sql(
                "EXISTS (SELECT 1 FROM restriction rx WHERE ",
                of_patient,
                " AND ((rx.scope = 'item' AND rx.target_id = ",
                own,
                ") OR (rx.scope = 'category' AND rx.target_category = ",
                data_category,
                ")",
                episode,
                "))",
            ),
            "boolean",
        ),
        "blocked_for_guardians": Column(
            sql(
                "EXISTS (SELECT 1 FROM restriction rx WHERE ",
                of_patient,
                " AND rx.scope = 'guardians' AND ",
                applies,
                ")",
            ),
            "boolean",
        ),
        "blocked_practitioner_ids": SetOf(
            sql(
                "SELECT rx.target_practitioner_id FROM restriction rx WHERE ",
                of_patient,
                " AND rx.scope = 'person' AND ",
                applies,
            ),
            "uuid",
        ),
        "blocked_unit_ids": SetOf(
            sql(
                "SELECT rx.target_unit_id FROM restriction rx WHERE ",
                of_patient,
                " AND rx.scope = 'unit' AND ",
                applies,
            ),
            "uuid",
        ),
        "emergency_practitioner_ids": SetOf.held(grants_held(patient, ACTIVE_GRANT), "uuid"),
        "life_threat_practitioner_ids": SetOf.held(
            grants_held(patient, sql(ACTIVE_GRANT, " AND eg.life_or_health_at_risk")), "uuid"
        ),
        "patient_id": Column(patient, "uuid"),
        "created_by": Column(sql("coalesce(", ident(alias, "created_by"), ", '')"), "text"),
        "owning_unit_id": Column(ident(alias, "owning_unit_id"), "uuid"),
        "data_category": Column(data_category, "text"),
        "category": Column(ident(alias, category_column), "text"),
        "care_unit_ids": SetOf.held(care_held(patient, "organization_id"), "uuid"),
        "care_practitioner_ids": SetOf.held(care_held(patient, "practitioner_id"), "uuid"),
    }
    if context:
        for name in PATIENT_LEVEL:
            held, shown = attributes[name], ident(context, name)
            attributes[name] = ArrayOf(shown, held.pg_type) if isinstance(held, SetOf) else Column(shown, held.pg_type)
    return attributes


def _patient_context_columns() -> Sql:
    of_patient = patient_data_attributes("px", "id")
    columns = [sql("px.id")]
    for name in PATIENT_LEVEL:
        held = of_patient[name]
        label = ident(name)
        columns.append(
            sql("ARRAY(", held.sql, ") AS ", label) if isinstance(held, SetOf) else sql(held.sql, " AS ", label)
        )
    columns.append(
        sql(
            "EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = px.id AND ",
            ACTIVE_RESTRICTION,
            ") AS restricted",
        )
    )
    return join(columns)


PATIENT_CONTEXT_COLUMNS = _patient_context_columns()


class PatientDataAttributes(TypedDict):
    """The policy attributes of a patient-data kind, as keyword arguments of ResourceKind."""

    attributes: dict[str, Attribute]
    context_attributes: dict[str, Attribute]


def patient_data(
    alias: str,
    patient_column: str = "patient_id",
    category_column: str = "data_category",
    episode_column: str | None = None,
    more: dict[str, Attribute] | None = None,
) -> PatientDataAttributes:
    """A patient-data kind's `attributes` and `context_attributes` (the same, read through the
    patient context PATIENT_CONTEXT), as keyword arguments of ResourceKind."""
    shape = (alias, patient_column, category_column, episode_column)
    return {
        "attributes": {**patient_data_attributes(*shape), **(more or {})},
        "context_attributes": {**patient_data_attributes(*shape, context=PATIENT_CONTEXT), **(more or {})},
    }
