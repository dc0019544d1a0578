"""Reading patients: Cerbos decides, lists are filtered in SQL, hidden rows leave no trace."""

from __future__ import annotations

import base64
import uuid

import orjson
import pytest

from gateway.personas import CITIZEN_PATIENT_ID, FJORDVIK_HOMECARE, PERSONAS
from tests.conftest import CITIZEN, Gateway, gid, raw_id

PATIENT = """query($id: ID!) { patient(id: $id) { id name { family given text } birthDate gender
                                              nationalIdentityNumber } }"""
PAGE = """query($first: Int!, $after: String) {
  patients(first: $first, after: $after) {
    edges { cursor node { id name { family given } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
COUNT = "{ patients(first: 1) { totalCount } }"


def visible_to_unit(gateway: Gateway, unit_id: uuid.UUID, practitioner_id: uuid.UUID | None) -> set[str]:
    """The oracle: patients with an active care relation to the unit or the practitioner."""
    rows = gateway.fetch(
        "SELECT DISTINCT cr.patient_id FROM care_relation cr WHERE "
        "cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now()) "
        "AND (cr.organization_id = $1 OR cr.practitioner_id = $2)",
        unit_id,
        practitioner_id,
    )
    return {str(r["patient_id"]) for r in rows}


def walk(gateway: Gateway, persona: str, first: int = 100) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        result = gateway.query(PAGE, persona, {"first": first, "after": after})
        assert "errors" not in result, result
        page = result["data"]["patients"]
        ids += [raw_id(edge["node"]["id"]) for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


def test_a_nurse_reads_a_patient_her_unit_cares_for(gateway: Gateway) -> None:
    result = gateway.query(PATIENT, "homecare-nurse", {"id": CITIZEN})
    assert "errors" not in result
    patient = result["data"]["patient"]
    assert patient["id"] == CITIZEN
    assert patient["name"] == {"family": "Nordmann", "given": ["Ola"], "text": "Ola Nordmann"}
    assert patient["nationalIdentityNumber"] == PERSONAS["citizen"].national_id
    assert patient["birthDate"] == "1941-04-30"


def test_a_nurse_of_another_municipality_is_forbidden_with_a_reason(gateway: Gateway) -> None:
    result = gateway.query(PATIENT, "nurse-other-municipality", {"id": CITIZEN})
    assert result["data"] == {"patient": None}
    [error] = result["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["reason"] == "NO_CARE_RELATION"
    assert error["extensions"]["policyVersion"]
    assert error["path"] == ["patient"]
    assert "Nordmann" not in str(result)


def test_an_unknown_id_looks_exactly_like_a_hidden_patient(gateway: Gateway) -> None:
    hidden = gateway.query(PATIENT, "nurse-other-municipality", {"id": CITIZEN})
    missing = gateway.query(PATIENT, "nurse-other-municipality", {"id": gid("Patient", uuid.uuid4())})
    assert missing["data"] == hidden["data"] == {"patient": None}
    strip = [{k: v for k, v in e.items() if k != "locations"} for e in hidden["errors"]]
    assert [{k: v for k, v in e.items() if k != "locations"} for e in missing["errors"]] == strip


def test_a_malformed_id_is_bad_user_input(gateway: Gateway) -> None:
    result = gateway.query(PATIENT, "homecare-nurse", {"id": "not-an-id'; DROP TABLE patient; --"})
    assert result["data"] == {"patient": None}
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_the_list_holds_exactly_the_patients_with_a_care_relation(gateway: Gateway) -> None:
    nurse = PERSONAS["homecare-nurse"]
    expected = visible_to_unit(gateway, FJORDVIK_HOMECARE, nurse.entity_id)
    listed = walk(gateway, "homecare-nurse", first=37)
    assert len(listed) == len(set(listed)), "a page repeated a patient"
    assert set(listed) == expected
    assert str(CITIZEN_PATIENT_ID) in listed
    total = gateway.query(COUNT, "homecare-nurse")["data"]["patients"]["totalCount"]
    assert total == len(expected)
    everyone = gateway.fetch("SELECT count(*) AS n FROM patient")[0]["n"]
    assert 0 < total < everyone


def test_pages_follow_name_order_without_gaps(gateway: Gateway) -> None:
    first = gateway.query(PAGE, "gp", {"first": 5})["data"]["patients"]
    second = gateway.query(PAGE, "gp", {"first": 5, "after": first["pageInfo"]["endCursor"]})["data"]["patients"]
    both = gateway.query(PAGE, "gp", {"first": 10})["data"]["patients"]
    assert [e["node"]["id"] for e in first["edges"] + second["edges"]] == [e["node"]["id"] for e in both["edges"]]
    names = [(e["node"]["name"]["family"], " ".join(e["node"]["name"]["given"])) for e in both["edges"]]
    assert names == sorted(names)
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert second["pageInfo"]["hasPreviousPage"] is True


def test_a_forged_cursor_cannot_step_onto_hidden_patients(gateway: Gateway) -> None:
    nurse = PERSONAS["homecare-nurse"]
    expected = visible_to_unit(gateway, FJORDVIK_HOMECARE, nurse.entity_id)
    hidden = gateway.fetch(
        "SELECT family_name, given_name, id FROM patient WHERE id <> ALL($1::uuid[]) "
        "ORDER BY 1, 2, 3 OFFSET 40 LIMIT 1",
        list(expected),
    )[0]
    key = ["v1", "patient", hidden["family_name"], hidden["given_name"], str(hidden["id"])]
    forged = base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")
    page = gateway.query(PAGE, "homecare-nurse", {"first": 100, "after": forged})["data"]["patients"]
    listed = [raw_id(e["node"]["id"]) for e in page["edges"]]
    after_key = gateway.fetch(
        "SELECT id FROM patient WHERE id = ANY($1::uuid[]) AND (family_name, given_name, id) > ($2, $3, $4) "
        "ORDER BY family_name, given_name, id",
        list(expected),
        hidden["family_name"],
        hidden["given_name"],
        hidden["id"],
    )
    assert listed == [str(r["id"]) for r in after_key]
    assert 0 < len(listed) < len(expected)


@pytest.mark.parametrize("cursor", ["garbage", "", "WyJ2MSJd", base64.b64encode(b'["v1",1,2,3]').decode()])
def test_a_malformed_cursor_is_bad_user_input(gateway: Gateway, cursor: str) -> None:
    result = gateway.query(PAGE, "gp", {"first": 5, "after": cursor})
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert result["data"] is None


@pytest.mark.parametrize("first", [-1, 0, 101, 10_000_000])
def test_page_sizes_outside_1_to_100_are_bad_user_input(gateway: Gateway, first: int) -> None:
    result = gateway.query(PAGE, "gp", {"first": first})
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "between 1 and 100" in error["message"]


def test_a_page_size_beyond_32_bits_is_a_validation_error(gateway: Gateway) -> None:
    result = gateway.query(PAGE, "gp", {"first": 10_000_000_000})
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_a_citizen_sees_only_their_own_record(gateway: Gateway) -> None:
    assert walk(gateway, "citizen") == [str(CITIZEN_PATIENT_ID)]
    other = gateway.fetch("SELECT id FROM patient WHERE id <> $1 LIMIT 1", CITIZEN_PATIENT_ID)[0]["id"]
    result = gateway.query(PATIENT, "citizen", {"id": gid("Patient", other)})
    assert result["data"] == {"patient": None}
    assert result["errors"][0]["extensions"]["reason"] == "APP_SCOPE", "patient/ scopes bind to the own record"
    unbound = gateway.token("citizen", scope="user/*.rs")
    result = gateway.post(PATIENT, token=unbound, variables={"id": gid("Patient", other)}).json()
    assert result["errors"][0]["extensions"]["reason"] == "NOT_OWN_RECORD", "and so does the policy itself"
    assert gateway.post(PATIENT, token=unbound, variables={"id": CITIZEN}).json()["data"]["patient"]["id"] == CITIZEN


def test_a_backend_service_without_patient_scopes_sees_nothing_for_lack_of_scope(gateway: Gateway) -> None:
    assert walk(gateway, "vendor-app") == []
    assert gateway.query(COUNT, "vendor-app")["data"]["patients"]["totalCount"] == 0
    result = gateway.query(PATIENT, "vendor-app", {"id": CITIZEN})
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert result["errors"][0]["extensions"]["reason"] == "APP_SCOPE"


def test_a_backend_service_with_patient_scopes_still_needs_a_granting_rule(gateway: Gateway) -> None:
    token = gateway.token("vendor-app", scope="system/Patient.rs")
    result = gateway.post(PATIENT, token=token, variables={"id": CITIZEN}).json()
    assert result["data"] == {"patient": None}
    assert result["errors"][0]["extensions"]["reason"] == "NO_MATCHING_RULE"
    listing = gateway.post(PAGE, token=token, variables={"first": 10}).json()
    assert listing["data"]["patients"]["edges"] == []


def test_one_bad_id_among_aliases_does_not_spoil_the_others(gateway: Gateway) -> None:
    result = gateway.query(
        'query($id: ID!) { good: patient(id: $id) { id } bad: patient(id: "nope") { id } }',
        "homecare-nurse",
        {"id": CITIZEN},
    )
    assert result["data"] == {"good": {"id": CITIZEN}, "bad": None}
    [error] = result["errors"]
    assert error["path"] == ["bad"] and error["extensions"]["code"] == "BAD_USER_INPUT"
