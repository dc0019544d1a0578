"""The national access rules through the API (DESIGN.md rules 1 to 5), each shown changing an answer.

Tests that change shared state (restrictions, grants, birth dates, withholdings) undo it in `finally`.
"""

from __future__ import annotations

from gateway.personas import CHILD_PATIENT_ID, CITIZEN_PATIENT_ID, FJORDVIK_GP_OFFICE, PERSONAS
from tests.conftest import CITIZEN, Gateway, gid, restricted_from

PATIENT = "query($id: ID!) { patient(id: $id) { id } }"
ENCOUNTERS = "query($id: ID!) { patient(id: $id) { encounters(first: 100) { totalCount } } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
RESTRICT = """mutation($input: RestrictionInput!) { createRestriction(input: $input) { id scope reason } }"""
LIFT = """mutation($id: ID!) { liftRestriction(id: $id, reason: "patient changed their mind") { id } }"""
CHILD = gid("Patient", CHILD_PATIENT_ID)


def encounter_count(gateway: Gateway, persona: str, patient: str = CITIZEN) -> int:
    result = gateway.query(ENCOUNTERS, persona, {"id": patient})
    return int(result["data"]["patient"]["encounters"]["totalCount"]) if result["data"]["patient"] else -1


NOTES = """query($id: ID!) { patient(id: $id) { encounters(first: 5) { totalCount }
  appointments(first: 5) { totalCount } clinicalNotes(first: 1) { totalCount edges { node { id title text } } } } }"""


def test_a_health_secretary_sees_appointments_and_that_notes_exist_but_not_clinical_data(gateway: Gateway) -> None:
    # The national baseline, shown with a health secretary of Nordby (no local rules there).
    row = gateway.fetch(
        "SELECT pr.national_id, cr.patient_id FROM practitioner pr "
        "JOIN practitioner_role r ON r.practitioner_id = pr.id AND r.role = 'health_secretary' "
        "JOIN organization o ON o.id = r.organization_id JOIN municipality m ON m.id = o.municipality_id "
        "JOIN care_relation cr ON cr.organization_id = o.id AND cr.period_end IS NULL "
        "JOIN clinical_note n ON n.patient_id = cr.patient_id AND n.owning_unit_id = o.id "
        "WHERE m.policy_scope = 'nordby' "
        "AND EXISTS (SELECT 1 FROM appointment a WHERE a.patient_id = cr.patient_id) "
        "AND NOT EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = cr.patient_id AND rx.lifted_at IS NULL "
        "AND rx.period_start <= now() AND (rx.period_end IS NULL OR rx.period_end > now())) "
        "ORDER BY cr.patient_id, pr.national_id LIMIT 1"
    )[0]
    [appointments] = gateway.fetch("SELECT count(*) AS n FROM appointment WHERE patient_id = $1", row["patient_id"])
    token = gateway.token("health-secretary", **{"helseid://claims/identity/pid": row["national_id"]})
    secretary = gateway.post(NOTES, token=token, variables={"id": gid("Patient", row["patient_id"])}).json()
    patient = secretary["data"]["patient"]
    assert patient["encounters"]["totalCount"] == 0
    # every appointment of the (unrestricted) patient: appointments are administrative data
    assert patient["appointments"]["totalCount"] == appointments["n"] > 0
    [note] = patient["clinicalNotes"]["edges"]
    assert note["node"]["title"] and note["node"]["text"] is None
    [error] = secretary["errors"]
    assert error["extensions"]["reason"] == "ROLE_CATEGORY" and error["path"][-1] == "text"


def test_in_fjordvik_a_local_rule_hides_even_that_notes_exist_from_health_secretaries(gateway: Gateway) -> None:
    row = gateway.fetch(
        "SELECT n.id, n.patient_id FROM clinical_note n JOIN care_relation cr ON cr.patient_id = n.patient_id "
        "AND cr.organization_id = $1 AND cr.period_end IS NULL WHERE n.owning_unit_id = $1 LIMIT 1",
        FJORDVIK_GP_OFFICE,
    )[0]
    secretary = gateway.query(NOTES, "health-secretary", {"id": gid("Patient", row["patient_id"])})
    assert secretary["data"]["patient"]["clinicalNotes"] == {"totalCount": 0, "edges": []}
    direct = gateway.query(NODE, "health-secretary", {"id": gid("ClinicalNote", row["id"])})
    assert direct["errors"][0]["extensions"]["reason"] == "LOCAL_RULE"
    doctor = gateway.query(NOTES, "gp", {"id": gid("Patient", row["patient_id"])})
    assert "errors" not in doctor and doctor["data"]["patient"]["clinicalNotes"]["edges"][0]["node"]["text"]


def test_a_purpose_of_use_outside_care_is_refused(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse", purpose_of_use="HOPERAT")
    result = gateway.post(PATIENT, token=token, variables={"id": CITIZEN}).json()
    assert result["errors"][0]["extensions"]["reason"] == "PURPOSE_OF_USE"


def test_sperring_against_a_practitioner_wins_until_it_is_lifted(gateway: Gateway) -> None:
    before = encounter_count(gateway, "homecare-nurse")
    assert before > 0
    with restricted_from(gateway, "homecare-nurse", "I know her privately"):
        blocked = gateway.query(PATIENT, "homecare-nurse", {"id": CITIZEN})
        assert blocked["errors"][0]["extensions"]["reason"] == "PATIENT_RESTRICTION"
        listed = gateway.query("{ patients(first: 100) { edges { node { id } } } }", "homecare-nurse")
        assert CITIZEN not in {e["node"]["id"] for e in listed["data"]["patients"]["edges"]}
        assert encounter_count(gateway, "gp") > 0, "the block is against one practitioner only"
    assert encounter_count(gateway, "homecare-nurse") == before


def test_restrictions_are_the_patients_to_make_or_staff_on_their_behalf(gateway: Gateway) -> None:
    stranger = gateway.query(
        RESTRICT,
        "nurse-other-municipality",
        {"input": {"patientId": CITIZEN, "scope": "CATEGORY", "category": "clinical-note", "reason": "on behalf"}},
    )
    assert stranger["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    incomplete = gateway.query(
        RESTRICT, "citizen", {"input": {"patientId": CITIZEN, "scope": "PERSON", "reason": "no one in particular"}}
    )
    assert incomplete["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "practitionerId" in incomplete["errors"][0]["message"]


def test_emergency_access_opens_the_record_flagged_and_visible_to_the_patient(gateway: Gateway) -> None:
    assert encounter_count(gateway, "nurse-other-municipality") == -1
    request = """mutation($id: ID!) { requestEmergencyAccess(patientId: $id,
      reason: "Found unconscious in Nordby, needs medication list", lifeOrHealthAtRisk: false) {
      id expiresAt practitioner { hprNumber } } }"""
    grant = gateway.query(request, "nurse-other-municipality", {"id": CITIZEN})["data"]["requestEmergencyAccess"]
    try:
        assert grant["practitioner"]["hprNumber"] == PERSONAS["nurse-other-municipality"].hpr_number
        opened = gateway.query(PATIENT, "nurse-other-municipality", {"id": CITIZEN})
        assert opened["data"]["patient"]["id"] == CITIZEN
        assert encounter_count(gateway, "nurse-other-municipality") == encounter_count(gateway, "gp")
        flagged = gateway.fetch(
            "SELECT reason, emergency FROM audit_event WHERE actor_hpr_number = $1 AND patient_id = $2 "
            "AND action = 'read' ORDER BY id DESC LIMIT 1",
            PERSONAS["nurse-other-municipality"].hpr_number,
            CITIZEN_PATIENT_ID,
        )[0]
        assert (flagged["reason"], flagged["emergency"]) == ("EMERGENCY_GRANT", True)
        seen = gateway.query("{ emergencyGrants(first: 10) { edges { node { id reason } } } }", "citizen")
        assert grant["id"] in [e["node"]["id"] for e in seen["data"]["emergencyGrants"]["edges"]]
        pending = gateway.query(
            "{ emergencyGrants(first: 100, filter: {reviewed: false}) { edges { node { id } } } }", "policy-admin"
        )
        assert grant["id"] in [e["node"]["id"] for e in pending["data"]["emergencyGrants"]["edges"]]
    finally:
        gateway.fetch(
            "UPDATE emergency_grant SET expires_at = now() WHERE practitioner_id = $1",
            PERSONAS["nurse-other-municipality"].entity_id,
        )
    assert encounter_count(gateway, "nurse-other-municipality") == -1


def test_only_a_life_or_health_emergency_pierces_sperring(gateway: Gateway) -> None:
    nordby = PERSONAS["nurse-other-municipality"]
    made = gateway.query(
        RESTRICT,
        "citizen",
        {
            "input": {
                "patientId": CITIZEN,
                "scope": "PERSON",
                "reason": "not her",
                "practitionerId": gid("Practitioner", nordby.entity_id),
            }
        },
    )
    restriction = made["data"]["createRestriction"]["id"]
    request = """mutation($id: ID!, $life: Boolean!) { requestEmergencyAccess(patientId: $id,
      reason: "Acute chest pain, allergies unknown", lifeOrHealthAtRisk: $life) { id } }"""
    try:
        gateway.query(request, "nurse-other-municipality", {"id": CITIZEN, "life": False})
        refused = gateway.query(PATIENT, "nurse-other-municipality", {"id": CITIZEN})
        assert refused["errors"][0]["extensions"]["reason"] == "PATIENT_RESTRICTION"
        gateway.query(request, "nurse-other-municipality", {"id": CITIZEN, "life": True})
        assert gateway.query(PATIENT, "nurse-other-municipality", {"id": CITIZEN})["data"]["patient"]["id"] == CITIZEN
    finally:
        gateway.fetch("UPDATE emergency_grant SET expires_at = now() WHERE practitioner_id = $1", nordby.entity_id)
        gateway.query(LIFT, "citizen", {"id": restriction})


def test_an_item_withheld_under_the_harm_exception_is_hidden_from_the_patient_only(gateway: Gateway) -> None:
    row = gateway.fetch("SELECT id FROM observation WHERE patient_id = $1 LIMIT 1", CITIZEN_PATIENT_ID)[0]
    gateway.fetch(
        "UPDATE observation SET withheld_from_patient = true, withheld_by = $2, withheld_reason = $3 WHERE id = $1",
        row["id"],
        PERSONAS["gp"].entity_id,
        "would cause serious harm now",
    )
    try:
        hidden = gateway.query(NODE, "citizen", {"id": gid("Observation", row["id"])})
        assert hidden["errors"][0]["extensions"]["reason"] == "WITHHELD_FROM_PATIENT"
        own = gateway.query("{ observations(first: 100) { edges { node { id } } } }", "citizen")
        assert gid("Observation", row["id"]) not in [e["node"]["id"] for e in own["data"]["observations"]["edges"]]
        assert gateway.query(NODE, "homecare-nurse", {"id": gid("Observation", row["id"])})["data"]["node"]
    finally:
        gateway.fetch(
            "UPDATE observation SET withheld_from_patient = false, withheld_by = NULL, "
            "withheld_reason = NULL WHERE id = $1",
            row["id"],
        )


def test_parents_read_a_child_by_age_and_the_childs_restrictions(gateway: Gateway) -> None:
    original = gateway.fetch("SELECT birth_date FROM patient WHERE id = $1", CHILD_PATIENT_ID)[0]["birth_date"]

    def age(years: int) -> None:
        gateway.fetch(
            "UPDATE patient SET birth_date = (current_date - make_interval(years => $2))::date - 1 WHERE id = $1",
            CHILD_PATIENT_ID,
            years,
        )

    restriction = None
    try:
        assert gateway.query(PATIENT, "parent", {"id": CHILD})["data"]["patient"]["id"] == CHILD
        age(14)
        assert gateway.query(PATIENT, "parent", {"id": CHILD})["data"]["patient"]["id"] == CHILD
        made = gateway.query(
            RESTRICT, "gp", {"input": {"patientId": CHILD, "scope": "GUARDIANS", "reason": "Emma asked for privacy"}}
        )
        restriction = made["data"]["createRestriction"]["id"]
        assert gateway.query(PATIENT, "parent", {"id": CHILD})["data"]["patient"] is None
        gateway.query(LIFT, "gp", {"id": restriction})
        restriction = None
        age(17)
        assert gateway.query(PATIENT, "parent", {"id": CHILD})["data"]["patient"] is None
    finally:
        if restriction:
            gateway.query(LIFT, "gp", {"id": restriction})
        gateway.fetch("UPDATE patient SET birth_date = $2 WHERE id = $1", CHILD_PATIENT_ID, original)


def test_a_young_child_cannot_restrict_their_parents(gateway: Gateway) -> None:
    result = gateway.query(RESTRICT, "gp", {"input": {"patientId": CHILD, "scope": "GUARDIANS", "reason": "x"}})
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "12 to 17" in result["errors"][0]["message"]
