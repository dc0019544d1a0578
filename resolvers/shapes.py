"""How each journal type's plain fields are made from its row, for whole-selection reads in SQL.

The GraphQL types in this package build their values from rows in Python (`from_row`); this table says
the same in terms PostgreSQL can build as JSON (gateway/json_sql.py). A field missing here (a reference,
a field with its own permission such as a note's text, a count) makes the query take the resolver path.
tests/test_whole_reads.py checks that both paths give the same answer for every field listed.
"""

from __future__ import annotations

from gateway.json_sql import Column, EnumColumn, FloatColumn, GlobalId, Joined, Shape, Value, Words

CODING = Value({"system": Column("code_system"), "code": Column("code"), "display": Column("code_display")})


def _period(start: str, end: str) -> Value:
    return Value({"start": Column(start), "end": Column(end)})


SHAPES: dict[str, dict[str, Shape]] = {
    "Patient": {
        "id": GlobalId(),
        "nationalIdentityNumber": Column("national_id"),
        "name": Value(
            {
                "family": Column("family_name"),
                "given": Words("given_name"),
                "text": Joined(("given_name", "family_name")),
            }
        ),
        "gender": EnumColumn("gender"),
        "birthDate": Column("birth_date"),
    },
    "CareRelation": {
        "id": GlobalId(),
        "purpose": Column("purpose"),
        "period": _period("period_start", "period_end"),
    },
    "Encounter": {
        "id": GlobalId(),
        "status": EnumColumn("status"),
        "class": EnumColumn("class_code"),
        "period": _period("period_start", "period_end"),
    },
    "Observation": {
        "id": GlobalId(),
        "status": EnumColumn("status"),
        "category": EnumColumn("category"),
        "code": CODING,
        "valueQuantity": Value(
            {"value": FloatColumn("value_quantity"), "unit": Column("value_unit")}, null_unless="value_quantity"
        ),
        "effectiveDateTime": Column("effective_at"),
    },
    "DiagnosticReport": {
        "id": GlobalId(),
        "status": EnumColumn("status"),
        "category": EnumColumn("category"),
        "code": CODING,
        "effectiveDateTime": Column("effective_at"),
        "issued": Column("issued_at"),
        "conclusion": Column("conclusion"),
    },
    "Condition": {
        "id": GlobalId(),
        "clinicalStatus": EnumColumn("clinical_status"),
        "verificationStatus": EnumColumn("verification_status"),
        "category": EnumColumn("category"),
        "code": CODING,
        "onsetDate": Column("onset_date"),
        "abatementDate": Column("abatement_date"),
        "recordedDate": Column("recorded_at"),
    },
    "MedicationStatement": {
        "id": GlobalId(),
        "status": EnumColumn("status"),
        "medication": CODING,
        "dosage": Column("dosage"),
        "effectivePeriod": _period("effective_start", "effective_end"),
        "dateAsserted": Column("date_asserted"),
    },
    "AllergyIntolerance": {
        "id": GlobalId(),
        "clinicalStatus": EnumColumn("clinical_status"),
        "category": EnumColumn("category"),
        "criticality": EnumColumn("criticality"),
        "code": CODING,
        "reaction": Column("reaction"),
        "recordedDate": Column("recorded_at"),
    },
}
