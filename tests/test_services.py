"""Services without a user: a laboratory delivers results to the unit that asked for them and reads back only
what it delivered; a municipal integration acting for a unit reaches that unit's patients as its care
relations allow, never more."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.personas import (
    CITIZEN_PATIENT_ID,
    FJORDVIK_GP_OFFICE,
    FJORDVIK_HOMECARE,
    HOSPITAL_LABORATORY,
    LAB_SERVICE_CLIENT_ID,
    PERSONAS,
)
from tests.conftest import CITIZEN, Gateway, gid, raw_id

DELIVER = """mutation($input: DiagnosticReportInput!, $k: String) {
  createDiagnosticReport(input: $input, idempotencyKey: $k) {
    id category status conclusion results(first: 10) { totalCount edges { node { id code { code }
      valueQuantity { value unit } } } } } }"""
READ_REPORT = """query($id: ID!) { node(id: $id) { ... on DiagnosticReport { conclusion
  requester { id } requestingOrganization { id } performingOrganization { id }
  results(first: 10) { totalCount edges { node { valueQuantity { value } } } } } } }"""


def national_id(gateway: Gateway, patient: uuid.UUID | None) -> str:
    return str(gateway.fetch("SELECT national_id FROM patient WHERE id = $1", patient)[0]["national_id"])


def blood_count(number: str, **requester: str) -> dict[str, Any]:
    return {
        "patientNationalIdentityNumber": number,
        **requester,
        "code": {"system": "http://loinc.org", "code": "58410-2"},
        "effectiveDateTime": "2026-12-02T07:45:00Z",
        "conclusion": "Normal blodstatus",
        "results": [
            {"code": {"system": "http://loinc.org", "code": "718-7"}, "valueQuantity": {"value": 13.9}},
            {"code": {"system": "http://loinc.org", "code": "6690-2"}, "valueQuantity": {"value": 6.1}},
        ],
    }


def test_the_lab_delivers_a_panel_the_gp_reads_and_another_municipalitys_nurse_cannot(gateway: Gateway) -> None:
    requester = {"requesterId": gid("Practitioner", PERSONAS["gp"].entity_id)}
    delivered = gateway.query(
        DELIVER, "lab-service", {"input": blood_count(national_id(gateway, CITIZEN_PATIENT_ID), **requester)}
    )
    assert "errors" not in delivered, delivered
    report = delivered["data"]["createDiagnosticReport"]
    assert report["category"] == "LABORATORY" and report["status"] == "FINAL"
    assert report["results"]["totalCount"] == 2
    assert {e["node"]["valueQuantity"]["unit"] for e in report["results"]["edges"]} == {"g/dL", "10*3/uL"}
    [row] = gateway.fetch(
        "SELECT owning_unit_id, requester_unit_id, requester_practitioner_id, performer_organization_id, created_by "
        "FROM diagnostic_report WHERE id = $1",
        uuid.UUID(raw_id(report["id"])),
    )
    assert row["owning_unit_id"] == row["requester_unit_id"] == FJORDVIK_GP_OFFICE
    assert row["requester_practitioner_id"] == PERSONAS["gp"].entity_id
    assert row["performer_organization_id"] == HOSPITAL_LABORATORY
    assert row["created_by"] == f"service:{LAB_SERVICE_CLIENT_ID}"
    seen = gateway.query(READ_REPORT, "gp", {"id": report["id"]})
    assert "errors" not in seen, seen
    assert seen["data"]["node"]["conclusion"] == "Normal blodstatus"
    assert seen["data"]["node"]["requester"] == {"id": gid("Practitioner", PERSONAS["gp"].entity_id)}
    assert seen["data"]["node"]["requestingOrganization"] == {"id": gid("Organization", FJORDVIK_GP_OFFICE)}
    assert seen["data"]["node"]["performingOrganization"] == {"id": gid("Organization", HOSPITAL_LABORATORY)}
    assert seen["data"]["node"]["results"]["totalCount"] == 2
    other = gateway.query(READ_REPORT, "nurse-other-municipality", {"id": report["id"]})
    assert other["data"]["node"] is None
    assert other["errors"][0]["extensions"]["reason"] == "NO_CARE_RELATION"
    audited = gateway.fetch(
        "SELECT resource_kind, count(*) AS n FROM audit_event WHERE action = 'create' AND client_id = $1 "
        "AND resource_ids && $2::text[] GROUP BY 1 ORDER BY 1",
        LAB_SERVICE_CLIENT_ID,
        [raw_id(report["id"]), *(raw_id(e["node"]["id"]) for e in report["results"]["edges"])],
    )
    assert [(r["resource_kind"], r["n"]) for r in audited] == [("diagnostic_report", 1), ("observation", 2)]


def test_the_lab_reads_back_only_what_it_delivered(gateway: Gateway) -> None:
    requester = {"requestingOrganizationId": gid("Organization", FJORDVIK_HOMECARE)}
    delivered = gateway.query(
        DELIVER, "lab-service", {"input": blood_count(national_id(gateway, CITIZEN_PATIENT_ID), **requester)}
    )
    mine = delivered["data"]["createDiagnosticReport"]["id"]
    assert gateway.query(READ_REPORT, "lab-service", {"id": mine})["data"]["node"]["conclusion"]
    seeded = gateway.fetch(
        "SELECT id FROM diagnostic_report WHERE patient_id = $1 AND created_by IS NULL LIMIT 1", CITIZEN_PATIENT_ID
    )[0]["id"]
    theirs = gateway.query(READ_REPORT, "lab-service", {"id": gid("DiagnosticReport", seeded)})
    assert theirs["data"]["node"] is None
    assert theirs["errors"][0]["extensions"]["reason"] == "NOT_DELIVERED_BY_YOU"
    listed = gateway.query("{ diagnosticReports(first: 100) { totalCount edges { node { id } } } }", "lab-service")[
        "data"
    ]["diagnosticReports"]
    delivered_by_lab = gateway.fetch(
        "SELECT count(*) AS n FROM diagnostic_report WHERE created_by = $1 AND entered_in_error_at IS NULL",
        f"service:{LAB_SERVICE_CLIENT_ID}",
    )[0]["n"]
    assert listed["totalCount"] == delivered_by_lab >= 1
    assert mine in {e["node"]["id"] for e in listed["edges"]}


def test_the_lab_cannot_deliver_to_a_unit_that_does_not_care_for_the_patient(gateway: Gateway) -> None:
    nordby = gid("Organization", PERSONAS["nurse-other-municipality"].unit_id)
    before = int(gateway.fetch("SELECT count(*) AS n FROM diagnostic_report")[0]["n"])
    refused = gateway.query(
        DELIVER,
        "lab-service",
        {"input": blood_count(national_id(gateway, CITIZEN_PATIENT_ID), requestingOrganizationId=nordby)},
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert refused["errors"][0]["extensions"]["reason"] == "NO_CARE_RELATION"
    unknown = gateway.query(
        DELIVER,
        "lab-service",
        {"input": blood_count("03128012345", requestingOrganizationId=gid("Organization", FJORDVIK_GP_OFFICE))},
    )
    assert unknown["errors"][0]["extensions"]["code"] == "FORBIDDEN", "no such patient looks like a hidden one"
    assert int(gateway.fetch("SELECT count(*) AS n FROM diagnostic_report")[0]["n"]) == before


def test_a_delivery_must_say_who_asked_for_it(gateway: Gateway) -> None:
    result = gateway.query(DELIVER, "lab-service", {"input": blood_count(national_id(gateway, CITIZEN_PATIENT_ID))})
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert result["errors"][0]["extensions"]["argument"] == "input.requestingOrganizationId"


def unit_patients(gateway: Gateway, unit: uuid.UUID | None) -> set[str]:
    """The oracle: patients with an active care relation to the unit."""
    rows = gateway.fetch(
        "SELECT DISTINCT p.id FROM patient p JOIN care_relation cr ON cr.patient_id = p.id "
        "WHERE cr.organization_id = $1 AND cr.period_start <= now() "
        "AND (cr.period_end IS NULL OR cr.period_end > now()) "
        "AND p.entered_in_error_at IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = p.id AND rx.scope = 'unit' "
        "  AND rx.target_unit_id = $1 AND rx.lifted_at IS NULL AND rx.period_start <= now() "
        "  AND (rx.period_end IS NULL OR rx.period_end > now()))",
        unit,
    )
    return {gid("Patient", r["id"]) for r in rows}


def test_an_integration_acting_for_a_unit_sees_exactly_the_units_patients(gateway: Gateway) -> None:
    listed = gateway.query("{ patients(first: 100) { totalCount edges { node { id } } } }", "homecare-integration")[
        "data"
    ]["patients"]
    expected = unit_patients(gateway, FJORDVIK_HOMECARE)
    assert listed["totalCount"] == len(expected) > 0
    assert {e["node"]["id"] for e in listed["edges"]} <= expected
    outsider = gateway.fetch(
        "SELECT p.id FROM patient p WHERE NOT EXISTS (SELECT 1 FROM care_relation cr WHERE cr.patient_id = p.id "
        "AND cr.organization_id = $1) ORDER BY p.id LIMIT 1",
        FJORDVIK_HOMECARE,
    )[0]["id"]
    hidden = gateway.query(
        "query($id: ID!) { patient(id: $id) { id } }", "homecare-integration", {"id": gid("Patient", outsider)}
    )
    assert hidden["data"]["patient"] is None and hidden["errors"][0]["extensions"]["reason"] == "NO_CARE_RELATION"
    notes = gateway.query(
        "query($id: ID!) { patient(id: $id) { clinicalNotes(first: 1) { totalCount } } }",
        "homecare-integration",
        {"id": CITIZEN},
    )
    assert notes["data"]["patient"]["clinicalNotes"]["totalCount"] == 0, "its scopes and category rule keep notes out"


def test_an_integration_books_for_the_units_patients_only_and_sperring_stops_it(gateway: Gateway) -> None:
    book = """mutation($input: AppointmentInput!) { createAppointment(input: $input) { id status } }"""

    def visit(patient: str) -> dict[str, Any]:
        return {
            "patientId": patient,
            "serviceType": "Hjemmebesøk",
            "description": "Sårstell",
            "start": "2027-01-10T10:00:00Z",
            "end": "2027-01-10T10:30:00Z",
        }

    booked = gateway.query(book, "homecare-integration", {"input": visit(CITIZEN)})
    assert "errors" not in booked, booked
    [row] = gateway.fetch(
        "SELECT owning_unit_id, created_by FROM appointment WHERE id = $1",
        uuid.UUID(raw_id(booked["data"]["createAppointment"]["id"])),
    )
    assert row["owning_unit_id"] == FJORDVIK_HOMECARE and row["created_by"].startswith("service:")
    outsider = gateway.fetch(
        "SELECT p.id FROM patient p WHERE NOT EXISTS (SELECT 1 FROM care_relation cr WHERE cr.patient_id = p.id "
        "AND cr.organization_id = $1) ORDER BY p.id LIMIT 1",
        FJORDVIK_HOMECARE,
    )[0]["id"]
    refused = gateway.query(book, "homecare-integration", {"input": visit(gid("Patient", outsider))})
    assert refused["errors"][0]["extensions"]["reason"] == "NO_CARE_RELATION"
    made = gateway.query(
        "mutation($input: RestrictionInput!) { createRestriction(input: $input) { id } }",
        "citizen",
        {
            "input": {
                "patientId": CITIZEN,
                "scope": "UNIT",
                "reason": "ikke hjemmetjenesten",
                "organizationId": gid("Organization", FJORDVIK_HOMECARE),
            }
        },
    )
    restriction = made["data"]["createRestriction"]["id"]
    try:
        blocked = gateway.query(book, "homecare-integration", {"input": visit(CITIZEN)})
        assert blocked["errors"][0]["extensions"]["reason"] == "PATIENT_RESTRICTION"
        read = gateway.query("query($id: ID!) { patient(id: $id) { id } }", "homecare-integration", {"id": CITIZEN})
        assert read["errors"][0]["extensions"]["reason"] == "PATIENT_RESTRICTION"
    finally:
        gateway.query(
            'mutation($id: ID!) { liftRestriction(id: $id, reason: "test over") { id } }',
            "citizen",
            {"id": restriction},
        )


def test_approving_a_backend_service_names_the_unit_it_acts_for(gateway: Gateway) -> None:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    client_id = f"integration-{uuid.uuid4().hex[:8]}"
    registered = gateway.query(
        "mutation($input: RegisterAppInput!) { registerApp(input: $input) { clientId } }",
        "vendor-app",
        {
            "input": {
                "clientId": client_id,
                "name": "Nordby integration",
                "vendorOrgNumber": "912345678",
                "kind": "BACKEND_SERVICE",
                "scopes": ["system/Patient.rs"],
                "jwks": {"keys": [key.as_dict(private=False)]},
            }
        },
    )
    assert "errors" not in registered, registered
    approve = """mutation($id: String!, $unit: ID) { approveApp(clientId: $id, reason: "databehandleravtale",
      actingUnitId: $unit) { status actingUnit { id name } } }"""
    unit = gid("Organization", PERSONAS["nurse-other-municipality"].unit_id)
    approved = gateway.query(approve, "policy-admin", {"id": client_id, "unit": unit})
    assert "errors" not in approved, approved
    assert approved["data"]["approveApp"]["status"] == "APPROVED"
    [row] = gateway.fetch("SELECT acting_unit_id FROM app WHERE client_id = $1", client_id)
    assert row["acting_unit_id"] == PERSONAS["nurse-other-municipality"].unit_id
