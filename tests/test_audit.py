"""Audit: every patient returned or refused leaves a record, committed before the response;
no audit, no data."""

from __future__ import annotations

import uuid

from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from tests.conftest import CITIZEN, Gateway, gid, raw_id, run

PATIENT = "query($id: ID!) { patient(id: $id) { id name { text } } }"
PAGE = "{ patients(first: 7) { edges { node { id } } } }"


def audit_rows(gateway: Gateway, request_marker: str) -> list[dict[str, object]]:
    rows = gateway.fetch(
        "SELECT * FROM audit_event WHERE request_id = ("
        "  SELECT request_id FROM audit_event WHERE $1 = ANY(resource_ids) ORDER BY id DESC LIMIT 1) ORDER BY id",
        request_marker,
    )
    return [dict(r) for r in rows]


def test_a_patient_returned_leaves_an_allow_record_with_actor_app_and_policy_version(gateway: Gateway) -> None:
    result = gateway.query(PATIENT, "homecare-nurse", {"id": CITIZEN})
    assert result["data"]["patient"]["id"] == CITIZEN
    [row] = audit_rows(gateway, str(CITIZEN_PATIENT_ID))
    nurse = PERSONAS["homecare-nurse"]
    assert row["decision"] == "ALLOW"
    # decided inside SQL by the query plan, as list rows are (the PDP explains denials only)
    assert row["reason"] == "PLAN_CONDITION"
    assert row["patient_id"] == CITIZEN_PATIENT_ID
    assert row["resource_kind"] == "patient" and row["action"] == "read"
    assert row["actor_kind"] == "personnel" and row["actor_id"] == str(nurse.entity_id)
    assert row["actor_hpr_number"] == nurse.hpr_number
    assert row["actor_unit_ids"] == [nurse.unit_id]
    assert row["client_id"] == nurse.client_id
    assert row["purpose_of_use"] == "TREAT"
    assert row["policy_version"] and len(str(row["trace_id"])) == 32


def test_a_refused_patient_leaves_a_deny_record_with_the_reason(gateway: Gateway) -> None:
    probe = str(uuid.uuid4())
    result = gateway.query(PATIENT, "nurse-other-municipality", {"id": gid("Patient", probe)})
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    [row] = audit_rows(gateway, probe)
    assert (row["decision"], row["reason"], str(row["patient_id"])) == ("DENY", "NO_CARE_RELATION", probe)


def test_every_patient_in_a_page_is_recorded_in_one_request(gateway: Gateway) -> None:
    result = gateway.query(PAGE, "gp")
    ids = [raw_id(e["node"]["id"]) for e in result["data"]["patients"]["edges"]]
    assert len(ids) == 7
    rows = audit_rows(gateway, ids[-1])
    assert [str(r["patient_id"]) for r in rows] == ids
    assert {r["decision"] for r in rows} == {"ALLOW"}
    assert len({r["request_id"] for r in rows}) == 1


def test_when_the_audit_log_refuses_writes_no_patient_data_is_returned(gateway: Gateway) -> None:
    async def sabotage(on: bool) -> None:
        import asyncpg

        conn = await asyncpg.connect(gateway.database_url)
        try:
            if on:
                await conn.execute(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit disk full'; END $$;"
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_event "
                    "FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit()"
                )
            else:
                await conn.execute("DROP TRIGGER refuse_audit ON audit_event; DROP FUNCTION refuse_audit()")
        finally:
            await conn.close()

    run(sabotage(True))
    try:
        response = gateway.post(PATIENT, persona="homecare-nurse", variables={"id": CITIZEN})
        listing = gateway.post(PAGE, persona="gp")
    finally:
        run(sabotage(False))
    for answer in (response, listing):
        assert answer.status_code == 503
        body = answer.json()
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["AUDIT_UNAVAILABLE"]
        assert "Nordmann" not in answer.text and "audit disk full" not in answer.text
    after = gateway.query(PATIENT, "homecare-nurse", {"id": CITIZEN})
    assert after["data"]["patient"]["name"]["text"] == "Ola Nordmann"


def test_audit_is_on_unless_explicitly_switched_off_for_a_benchmark(gateway: Gateway) -> None:
    response = gateway.post(PATIENT, persona="homecare-nurse", variables={"id": CITIZEN})
    assert response.status_code == 200
    assert "x-akson-audit" not in response.headers
