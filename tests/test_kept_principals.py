"""Kept principals: a caller's principal is kept between requests and costs no lookup of its own, yet every
change of the data it is made of (roles, emergency grants) and every change of the data policy reads
(restrictions) is honoured by the very next request, on whichever gateway process serves it."""

from __future__ import annotations

from typing import Any

from gateway.personas import PERSONAS
from tests.conftest import CITIZEN, Gateway, restricted_from

CHART = "query($id: ID!) { patient(id: $id) { id encounters(first: 2) { edges { node { id } } } } }"
RESOLVED = "query($id: ID!) { patient(id: $id) { id encounters(first: 2) { totalCount } } }"
GRANT = """mutation($id: ID!) { requestEmergencyAccess(patientId: $id,
  reason: "Found unconscious, needs medication list", lifeOrHealthAtRisk: false) { id } }"""


def read(gateway: Gateway, token: str, query: str = CHART) -> tuple[dict[str, Any] | None, str | None, Any]:
    """The patient the query returned (or None), the reason of the first error, and the response."""
    response = gateway.post(query, token=token, variables={"id": CITIZEN})
    body = response.json()
    patient = (body.get("data") or {}).get("patient")
    errors = body.get("errors") or []
    return patient, errors[0]["extensions"].get("reason") if errors else None, response


def statements(gateway: Gateway, response: Any) -> list[str]:
    spans = gateway.spans(response.headers["x-trace-id"])
    return [str(s["attributes"]["db.statement"]) for s in spans if "db.statement" in s["attributes"]]


def test_a_kept_principal_is_not_looked_up_again_and_its_read_is_one_statement(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse")
    read(gateway, token)
    patient, _, response = read(gateway, token)
    assert patient is not None and patient["id"] == CITIZEN
    sql = [s for s in statements(gateway, response) if "FROM app WHERE client_id" not in s and "rate_take(" not in s]
    assert not [s for s in sql if "FROM practitioner p" in s], "the kept principal needs no lookup"
    assert [s for s in sql if "principal_epoch" in s], "the read proves the kept principal current"
    assert len(sql) <= 2, sql  # the read itself, and the audit insert unless another request's commit took it


def test_a_role_removed_is_honoured_on_the_very_next_request_served_by_another_gateway(
    gateway: Gateway, second_gateway: Gateway
) -> None:
    nurse = PERSONAS["homecare-nurse"]
    token = gateway.token("homecare-nurse")
    for server in (gateway, second_gateway):
        for query in (CHART, RESOLVED):
            assert read(server, token, query)[0] is not None, "both processes keep the nurse's principal"
    ended = gateway.fetch(
        "UPDATE practitioner_role SET period_end = current_date - 1 WHERE practitioner_id = $1 "
        "AND (period_end IS NULL OR period_end >= current_date) RETURNING id, (SELECT period_end FROM "
        "practitioner_role old WHERE old.id = practitioner_role.id) AS was",
        nurse.entity_id,
    )
    assert ended
    try:
        for server in (second_gateway, gateway):
            for query in (CHART, RESOLVED):
                patient, reason, response = read(server, token, query)
                assert patient is None, "no role, no data: not even once"
                assert reason == "NO_ACTIVE_ROLE", response.text
    finally:
        for row in ended:
            gateway.fetch("UPDATE practitioner_role SET period_end = $2 WHERE id = $1", row["id"], row["was"])
    assert read(second_gateway, token)[0] is not None, "the role given back is honoured at once too"


def test_a_restriction_added_is_honoured_on_the_very_next_request_served_by_another_gateway(
    gateway: Gateway, second_gateway: Gateway
) -> None:
    token = gateway.token("homecare-nurse")
    assert read(second_gateway, token)[0] is not None
    with restricted_from(gateway, "homecare-nurse", "I know her privately"):
        patient, reason, _ = read(second_gateway, token)
        assert (patient, reason) == (None, "PATIENT_RESTRICTION")
    assert read(second_gateway, token)[0] is not None


def test_an_emergency_grant_given_and_ended_is_seen_by_the_very_next_request_on_another_gateway(
    gateway: Gateway, second_gateway: Gateway
) -> None:
    nordby = PERSONAS["nurse-other-municipality"]
    token = gateway.token("nurse-other-municipality")
    assert read(second_gateway, token)[1] == "NO_CARE_RELATION"
    gateway.query(GRANT, "nurse-other-municipality", {"id": CITIZEN})
    try:
        patient, _, response = read(second_gateway, token)
        assert patient is not None and patient["id"] == CITIZEN
        flagged = gateway.fetch(
            "SELECT emergency FROM audit_event WHERE trace_id = $1 AND action = 'read'", response.headers["x-trace-id"]
        )
        assert [r["emergency"] for r in flagged] == [True], "the kept principal knows of the new grant"
    finally:
        gateway.fetch("UPDATE emergency_grant SET expires_at = now() WHERE practitioner_id = $1", nordby.entity_id)
    assert read(second_gateway, token)[1] == "NO_CARE_RELATION"
