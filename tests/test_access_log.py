"""Innsyn i logg and compliance: patients read who accessed their data; compliance officers query the
log and review emergency accesses; policy admins see where the rules deny; all of it audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.personas import PERSONAS
from tests.conftest import CITIZEN, Gateway, gid

LOG = """query($f: AccessLogFilter!) { accessLog(first: 100, filter: $f) { totalCount edges { node {
  recordedAt actorKind actorHprNumber clientId resourceKind action purposeOfUse emergency decision reason
  actor { name { text } } units { name } patientIdGlobal } } } }"""


def window(**extra: object) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "recordedFrom": (now - timedelta(hours=1)).isoformat(),
        "recordedTo": (now + timedelta(minutes=5)).isoformat(),
        **extra,
    }


def test_a_patient_sees_who_read_their_journal_from_which_unit_and_app_and_why(gateway: Gateway) -> None:
    gateway.query("query($id: ID!) { patient(id: $id) { id } }", "homecare-nurse", {"id": CITIZEN})
    log = gateway.query(LOG, "citizen", {"f": window()})["data"]["accessLog"]
    nurse = PERSONAS["homecare-nurse"]
    entries = [e["node"] for e in log["edges"]]
    assert {e["patientIdGlobal"] for e in entries} == {CITIZEN}, "only the citizen's own log"
    mine = [e for e in entries if e["actorHprNumber"] == nurse.hpr_number and e["resourceKind"] == "patient"]
    assert mine, entries[:3]
    entry = mine[0]
    assert entry["actor"]["name"]["text"] == "Ingrid Fjellstad"
    assert entry["units"] == [{"name": "Fjordvik hjemmetjeneste"}]
    assert (entry["clientId"], entry["purposeOfUse"], entry["decision"]) == ("akson-demo-app", "TREAT", "ALLOW")


def test_an_emergency_access_is_highlighted_in_the_patients_log_and_reviewed_by_compliance(gateway: Gateway) -> None:
    nordby = PERSONAS["nurse-other-municipality"]
    request = """mutation($id: ID!) { requestEmergencyAccess(patientId: $id, reason: "Unconscious, need allergies",
      lifeOrHealthAtRisk: false) { id } }"""
    grant = gateway.query(request, "nurse-other-municipality", {"id": CITIZEN})["data"]["requestEmergencyAccess"]
    try:
        gateway.query(
            "query($id: ID!) { patient(id: $id) { allergyIntolerances(first: 5) { totalCount } } }",
            "nurse-other-municipality",
            {"id": CITIZEN},
        )
        flagged = gateway.query(LOG, "citizen", {"f": window(emergency=True)})["data"]["accessLog"]["edges"]
        assert flagged and all(e["node"]["emergency"] for e in flagged)
        assert nordby.hpr_number in {e["node"]["actorHprNumber"] for e in flagged}
        review = """mutation($id: ID!) { reviewEmergencyAccess(id: $id, conclusion: "Justified: patient unconscious")
          { reviewedAt reviewConclusion } }"""
        assert (
            gateway.query(review, "homecare-nurse", {"id": grant["id"]})["errors"][0]["extensions"]["code"]
            == "FORBIDDEN"
        )
        done = gateway.query(review, "compliance-officer", {"id": grant["id"]})["data"]["reviewEmergencyAccess"]
        assert done["reviewedAt"] and done["reviewConclusion"].startswith("Justified")
        again = gateway.query(review, "compliance-officer", {"id": grant["id"]})
        assert again["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    finally:
        gateway.fetch("UPDATE emergency_grant SET expires_at = now() WHERE practitioner_id = $1", nordby.entity_id)


def test_compliance_officers_query_the_whole_log_by_person_app_and_patient(gateway: Gateway) -> None:
    gateway.query("query($id: ID!) { patient(id: $id) { id } }", "gp", {"id": CITIZEN})
    gp = PERSONAS["gp"]
    by_person = gateway.query(LOG, "compliance-officer", {"f": window(actorId=gid("Practitioner", gp.entity_id))})
    entries = [e["node"] for e in by_person["data"]["accessLog"]["edges"]]
    assert entries and {e["actorHprNumber"] for e in entries} == {gp.hpr_number}
    by_patient = gateway.query(LOG, "compliance-officer", {"f": window(patientId=CITIZEN, clientId="akson-demo-app")})
    assert {e["node"]["patientIdGlobal"] for e in by_patient["data"]["accessLog"]["edges"]} == {CITIZEN}
    nordby_unit = gid("Organization", PERSONAS["nurse-other-municipality"].unit_id)
    gateway.query("query($id: ID!) { patient(id: $id) { id } }", "nurse-other-municipality", {"id": CITIZEN})
    by_unit = gateway.query(LOG, "compliance-officer", {"f": window(unitId=nordby_unit)})["data"]["accessLog"]
    assert by_unit["edges"] and all(e["node"]["units"] == [{"name": "Nordby hjemmetjeneste"}] for e in by_unit["edges"])
    assert gateway.query(LOG, "homecare-nurse", {"f": window()})["data"]["accessLog"]["totalCount"] == 0
    audited = gateway.fetch(
        "SELECT count(*) AS n FROM audit_event WHERE resource_kind = 'audit_event' AND actor_id = $1",
        str(PERSONAS["compliance-officer"].entity_id),
    )[0]["n"]
    assert audited > 0, "reading the log is itself audited"


def test_time_ranges_must_be_bounded_and_in_order(gateway: Gateway) -> None:
    now = datetime.now(UTC)
    inverted = {"recordedFrom": now.isoformat(), "recordedTo": (now - timedelta(days=1)).isoformat()}
    too_long = {"recordedFrom": (now - timedelta(days=800)).isoformat(), "recordedTo": now.isoformat()}
    for f, fragment in [(inverted, "inverted"), (too_long, "at most a year")]:
        result = gateway.query(LOG, "citizen", {"f": f})
        assert (
            result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and fragment in result["errors"][0]["message"]
        )
    unbounded = gateway.query(LOG, "citizen", {"f": {"recordedFrom": now.isoformat()}})
    assert unbounded["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_the_denial_report_shows_where_rules_block_by_app_and_reason(gateway: Gateway) -> None:
    gateway.query("query($id: ID!) { patient(id: $id) { id } }", "nurse-other-municipality", {"id": CITIZEN})
    now = datetime.now(UTC)
    query = """query($a: DateTime!, $b: DateTime!) { denialReport(recordedFrom: $a, recordedTo: $b) {
      clientId vendorOrgNumber resourceKind reason denials } }"""
    variables = {"a": (now - timedelta(hours=1)).isoformat(), "b": (now + timedelta(minutes=5)).isoformat()}
    report = gateway.query(query, "policy-admin", variables)["data"]["denialReport"]
    row = next(
        r
        for r in report
        if r["clientId"] == "akson-demo-app" and r["reason"] == "NO_CARE_RELATION" and r["resourceKind"] == "patient"
    )
    assert row["denials"] >= 1 and row["vendorOrgNumber"] == "999999999"
    refused = gateway.query(query, "citizen", variables)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
