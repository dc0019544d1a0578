"""Writes about patients themselves: citizens report home measurements and cancel their appointments,
units register new residents and newborns and keep contact details up to date, and anyone with a work
-related need finds a patient by national identity number (a search like any other)."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.personas import CHILD_PATIENT_ID, CITIZEN_PATIENT_ID, FJORDVIK_GP_OFFICE, PERSONAS
from tests.conftest import CITIZEN, Gateway, gid, raw_id
from tests.test_write_matrix import unused_number

MEASURE = """mutation($input: ObservationInput!) { createObservation(input: $input) {
  id patientReported category valueQuantity { value unit } } }"""
CHILD = gid("Patient", CHILD_PATIENT_ID)


def home_measurement(patient: str, loinc: str = "8867-4", value: float = 72) -> dict[str, Any]:
    return {
        "patientId": patient,
        "code": {"system": "http://loinc.org", "code": loinc},
        "valueQuantity": {"value": value},
        "effectiveDateTime": "2026-12-03T07:00:00Z",
    }


def test_a_citizen_reports_a_home_measurement_shown_as_patient_reported_everywhere(gateway: Gateway) -> None:
    made = gateway.query(MEASURE, "citizen", {"input": home_measurement(CITIZEN)})
    assert "errors" not in made, made
    reported = made["data"]["createObservation"]
    assert reported["patientReported"] is True and reported["category"] == "VITAL_SIGNS"
    assert reported["valueQuantity"] == {"value": 72.0, "unit": "/min"}
    listed = """query($id: ID!) { patient(id: $id) { observations(first: 100,
      filter: {effectiveFrom: "2026-12-03T06:59:00Z", effectiveTo: "2026-12-03T07:01:00Z"}) {
      edges { node { id patientReported } } } } }"""
    whole = gateway.query(listed, "homecare-nurse", {"id": CITIZEN})["data"]["patient"]["observations"]["edges"]
    assert {"id": reported["id"], "patientReported": True} in [e["node"] for e in whole]
    forced = listed.replace("patient(id: $id)", "patient(id: $id) @include(if: true)")
    resolved = gateway.query(forced, "homecare-nurse", {"id": CITIZEN})["data"]["patient"]["observations"]["edges"]
    assert {"id": reported["id"], "patientReported": True} in [e["node"] for e in resolved]


def test_a_citizen_may_not_report_lab_results_or_for_another_patient(gateway: Gateway) -> None:
    lab = gateway.query(MEASURE, "citizen", {"input": home_measurement(CITIZEN, "2345-7", 5.2)})
    assert lab["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = gateway.fetch("SELECT id FROM patient WHERE id <> $1 ORDER BY id LIMIT 1", CITIZEN_PATIENT_ID)[0]["id"]
    foreign = gateway.query(MEASURE, "citizen", {"input": home_measurement(gid("Patient", other))})
    assert foreign["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_parent_reports_a_measurement_for_their_young_child(gateway: Gateway) -> None:
    made = gateway.query(MEASURE, "parent", {"input": home_measurement(CHILD, "8310-5", 38.4)})
    assert "errors" not in made, made
    assert made["data"]["createObservation"]["patientReported"] is True
    assert made["data"]["createObservation"]["valueQuantity"]["unit"] == "Cel"


CANCEL = "mutation($id: ID!) { cancelAppointment(id: $id) { id status version } }"


def test_a_citizen_cancels_their_own_booked_appointment_and_may_not_change_it_otherwise(gateway: Gateway) -> None:
    booked = gateway.query(
        "mutation($input: AppointmentInput!) { createAppointment(input: $input) { id status } }",
        "gp",
        {
            "input": {
                "patientId": CITIZEN,
                "serviceType": "Kontroll",
                "description": "Årskontroll",
                "start": "2027-02-01T09:00:00Z",
                "end": "2027-02-01T09:20:00Z",
            }
        },
    )["data"]["createAppointment"]
    assert booked["status"] == "BOOKED"
    moved = gateway.query(
        'mutation($id: ID!) { updateAppointment(id: $id, expectedVersion: 1, input: {description: "x"}) { id } }',
        "citizen",
        {"id": booked["id"]},
    )
    assert moved["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    cancelled = gateway.query(CANCEL, "citizen", {"id": booked["id"]})["data"]["cancelAppointment"]
    assert cancelled["status"] == "CANCELLED" and cancelled["version"] == 2
    again = gateway.query(CANCEL, "citizen", {"id": booked["id"]})
    assert again["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    other = gateway.fetch(
        "SELECT id FROM appointment WHERE patient_id <> $1 AND status = 'booked' ORDER BY id LIMIT 1",
        CITIZEN_PATIENT_ID,
    )[0]["id"]
    foreign = gateway.query(CANCEL, "citizen", {"id": gid("Appointment", other)})
    assert foreign["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    [row] = gateway.fetch("SELECT status FROM appointment WHERE id = $1", other)
    assert row["status"] == "booked"


REGISTER = """mutation($input: PatientInput!) { createPatient(input: $input) { id nationalIdentityNumber
  name { text } managingOrganization { id } careRelations(first: 5) { edges { node { purpose } } } } }"""


def newborn(number: str) -> dict[str, Any]:
    return {
        "nationalIdentityNumber": number,
        "name": {"family": "Nordmann", "given": ["Nora", "Elise"]},
        "gender": "FEMALE",
        "birthDate": "2026-11-28",
        "phone": "+47 912 34 567",
    }


def test_a_unit_registers_a_newborn_who_then_has_a_care_relation_with_it(gateway: Gateway) -> None:
    number = unused_number(gateway)
    made = gateway.query(REGISTER, "health-secretary", {"input": newborn(number)})
    assert "errors" not in made, made
    patient = made["data"]["createPatient"]
    assert patient["nationalIdentityNumber"] == number and patient["name"]["text"] == "Nora Elise Nordmann"
    assert patient["managingOrganization"] == {"id": gid("Organization", FJORDVIK_GP_OFFICE)}
    assert [e["node"]["purpose"] for e in patient["careRelations"]["edges"]] == ["fastlege"]
    audited = gateway.fetch(
        "SELECT resource_kind, action, decision FROM audit_event WHERE patient_id = $1 AND action = 'create' "
        "ORDER BY resource_kind",
        uuid.UUID(raw_id(patient["id"])),
    )
    assert [(r["resource_kind"], r["decision"]) for r in audited] == [("care_relation", "ALLOW"), ("patient", "ALLOW")]
    twice = gateway.query(REGISTER, "gp", {"input": newborn(number)})
    assert twice["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    miswritten = gateway.query(REGISTER, "gp", {"input": newborn(number[:10] + str((int(number[10]) + 1) % 10))})
    assert miswritten["errors"][0]["extensions"]["argument"] == "input.nationalIdentityNumber"
    nurse = gateway.query(REGISTER, "homecare-nurse", {"input": newborn(unused_number(gateway))})
    assert nurse["errors"][0]["extensions"]["reason"] == "ROLE_CATEGORY"


def test_a_health_secretary_keeps_contact_details_up_to_date_but_writes_no_clinical_data(gateway: Gateway) -> None:
    version = gateway.query("query($id: ID!) { patient(id: $id) { version } }", "gp", {"id": CITIZEN})
    current = version["data"]["patient"]["version"]
    updated = gateway.query(
        """mutation($id: ID!, $v: Int!) { updatePatient(id: $id, expectedVersion: $v,
           input: {phone: "+47 400 00 000", address: "Fjordveien 1, 9901 Fjordvik"}) { phone address version } }""",
        "health-secretary",
        {"id": CITIZEN, "v": current},
    )
    assert "errors" not in updated, updated
    assert updated["data"]["updatePatient"]["phone"] == "+47 400 00 000"
    assert updated["data"]["updatePatient"]["version"] == current + 1
    bad = gateway.query(
        'mutation($id: ID!, $v: Int!) { updatePatient(id: $id, expectedVersion: $v, input: {email: "nope"}) { id } }',
        "health-secretary",
        {"id": CITIZEN, "v": current + 1},
    )
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert bad["errors"][0]["extensions"]["argument"] == "input.email"
    plan = gateway.query(
        "mutation($input: CarePlanInput!) { createCarePlan(input: $input) { id } }",
        "health-secretary",
        {"input": {"patientId": CITIZEN, "title": "x", "description": "y", "period": {"start": "2026-12-02"}}},
    )
    assert plan["errors"][0]["extensions"]["reason"] == "ROLE_CATEGORY"


FIND = """query($n: String!) { patients(first: 5, filter: {nationalIdentityNumber: $n}) {
  totalCount edges { node { id name { text } } } } }"""


def test_a_patient_is_found_by_national_identity_number_and_no_match_looks_like_a_hidden_one(
    gateway: Gateway,
) -> None:
    number = gateway.fetch("SELECT national_id FROM patient WHERE id = $1", CITIZEN_PATIENT_ID)[0]["national_id"]
    found = gateway.query(FIND, "gp", {"n": number})["data"]["patients"]
    assert found["totalCount"] == 1 and found["edges"][0]["node"]["id"] == CITIZEN
    hidden = gateway.query(FIND, "nurse-other-municipality", {"n": number})
    missing = gateway.query(FIND, "nurse-other-municipality", {"n": "03128012345"})
    assert hidden == missing == {"data": {"patients": {"totalCount": 0, "edges": []}}}
    searches = gateway.fetch(
        "SELECT patient_id, resource_ids, decision FROM audit_event WHERE resource_kind = 'patient' "
        "AND action = 'search' AND actor_id = $1 ORDER BY id DESC LIMIT 2",
        str(PERSONAS["nurse-other-municipality"].entity_id),
    )
    assert [(r["patient_id"], list(r["resource_ids"]), r["decision"]) for r in searches] == [
        (None, [], "ALLOW"),
        (None, [], "ALLOW"),
    ], "a search that finds nothing is audited too"
