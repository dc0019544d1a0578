"""Inputs for writing each kind of the journal through the API, shared by the write tests: what a create
takes for a patient, and a change an update makes."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.personas import CITIZEN_PATIENT_ID, FJORDVIK_GP_OFFICE, FJORDVIK_HOMECARE
from tests.conftest import Gateway, gid


def unit_patient(gateway: Gateway, *, last: bool = False) -> uuid.UUID:
    """An adult Fjordvik patient of both home care and the GP office (not the demo citizen, whose journal other
    tests count), without restrictions or emergency grants: a patient write tests may write for. Two test
    modules take the first and the last, so that they do not write for the same patient."""
    found = gateway.fetch(
        "SELECT p.id FROM patient p WHERE p.id <> $1 AND p.birth_date < current_date - 30 * 365 "
        "AND EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id AND c.organization_id = $2 "
        "  AND c.period_end IS NULL) "
        "AND EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id AND c.organization_id = $3 "
        "  AND c.period_end IS NULL) "
        "AND NOT EXISTS (SELECT 1 FROM restriction r WHERE r.patient_id = p.id) "
        "AND NOT EXISTS (SELECT 1 FROM emergency_grant g WHERE g.patient_id = p.id) "
        "ORDER BY p.id",
        CITIZEN_PATIENT_ID,
        FJORDVIK_HOMECARE,
        FJORDVIK_GP_OFFICE,
    )
    patient: uuid.UUID = found[-1 if last else 0]["id"]
    return patient


def heart_rate(patient_gid: str, value: float = 71, when: str = "2026-12-02T08:00:00Z") -> dict[str, Any]:
    return {
        "patientId": patient_gid,
        "code": {"system": "http://loinc.org", "code": "8867-4"},
        "valueQuantity": {"value": value},
        "effectiveDateTime": when,
    }


# type name -> (table, what a create adds to {"patientId": ...}, a change an update makes)
KIND_INPUTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "Encounter": (
        "encounter",
        {"class": "HH", "period": {"start": "2026-12-02T09:00:00Z"}},
        {"status": "FINISHED", "period": {"start": "2026-12-02T09:00:00Z", "end": "2026-12-02T09:40:00Z"}},
    ),
    "Observation": (
        "observation",
        {k: v for k, v in heart_rate("").items() if k != "patientId"},
        {"valueQuantity": {"value": 73}},
    ),
    "Condition": (
        "condition",
        {"code": {"system": "urn:oid:2.16.578.1.12.4.1.1.7170", "code": "K86"}, "onsetDate": "2026-10-01"},
        {"clinicalStatus": "RESOLVED", "abatementDate": "2026-11-30"},
    ),
    "MedicationStatement": (
        "medication_statement",
        {
            "medication": {"system": "http://www.whocc.no/atc", "code": "C09AA05"},
            "dosage": "5 mg morgen",
            "effectivePeriod": {"start": "2026-12-01"},
        },
        {"status": "STOPPED", "effectivePeriod": {"start": "2026-12-01", "end": "2026-12-02"}},
    ),
    "AllergyIntolerance": (
        "allergy_intolerance",
        {"category": "MEDICATION", "code": {"system": "http://www.whocc.no/atc", "code": "J01C"}},
        {"criticality": "HIGH", "reaction": "Urtikaria"},
    ),
    "CarePlan": (
        "care_plan",
        {"title": "Oppfølging BT", "description": "Blodtrykk hver uke", "period": {"start": "2026-12-01"}},
        {"status": "COMPLETED"},
    ),
    "Appointment": (
        "appointment",
        {
            "serviceType": "Kontroll",
            "description": "Blodtrykkskontroll",
            "start": "2027-01-05T09:00:00Z",
            "end": "2027-01-05T09:20:00Z",
        },
        {"start": "2027-01-06T09:00:00Z", "end": "2027-01-06T09:20:00Z"},
    ),
    "DiagnosticReport": (
        "diagnostic_report",
        {
            "code": {"system": "http://loinc.org", "code": "36643-5"},
            "effectiveDateTime": "2026-12-01T12:00:00Z",
            "conclusion": "Ingen fortetninger",
            "requestingOrganizationId": gid("Organization", FJORDVIK_GP_OFFICE),
        },
        {"conclusion": "Ingen fortetninger. Normalt hjerte."},
    ),
    "CareRelation": (
        "care_relation",
        {
            "organizationId": gid("Organization", FJORDVIK_HOMECARE),
            "purpose": "hjemmesykepleie etter sykehusopphold",
            "period": {"start": "2026-12-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
        },
        {"purpose": "hjemmesykepleie, forlenget"},
    ),
}


def create_mutation(type_name: str) -> str:
    return f"mutation($input: {type_name}Input!) {{ create{type_name}(input: $input) {{ id version }} }}"


def update_mutation(type_name: str) -> str:
    return (
        f"mutation($id: ID!, $v: Int!, $input: {type_name}Patch!) "
        f"{{ update{type_name}(id: $id, expectedVersion: $v, input: $input) {{ id version }} }}"
    )


ENTERED_IN_ERROR = 'mutation($id: ID!) { enteredInError(id: $id, reason: "registered by mistake") { id } }'
CANCEL = "mutation($id: ID!) { cancelAppointment(id: $id) { id status } }"
