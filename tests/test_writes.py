"""Writing to the journal through the API: every clinical kind created, updated and entered in error, in one
transaction with its audit rows, safe under retries and races, and refused cleanly on bad input."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from gateway.personas import CITIZEN_PATIENT_ID, FJORDVIK_GP_OFFICE, FJORDVIK_HOMECARE, PERSONAS
from gateway.sql import ident, sql, value
from tests.conftest import CITIZEN, Gateway, gid, raw_id
from tests.journal_inputs import (
    ENTERED_IN_ERROR,
    KIND_INPUTS,
    create_mutation,
    heart_rate,
    unit_patient,
    update_mutation,
)

# The call of the issue, exactly as written.
RECORD_BLOOD_PRESSURE = """mutation($p: ID!, $k: String) {
  createObservation(idempotencyKey: $k, input: {patientId: $p,
      code: {system: "http://loinc.org", code: "8480-6"},
      valueQuantity: {value: 142, unit: "mm[Hg]"}, effectiveDateTime: "2026-12-01T09:30:00Z"}) {
    id version lastUpdated status code { code } valueQuantity { value unit } patient { id }
  }
}"""
CREATE_OBSERVATION = """mutation($input: ObservationInput!, $k: String) {
  createObservation(input: $input, idempotencyKey: $k) { id version valueQuantity { value unit } } }"""
UPDATE_OBSERVATION = """mutation($id: ID!, $v: Int!, $input: ObservationPatch!) {
  updateObservation(id: $id, expectedVersion: $v, input: $input) { id version valueQuantity { value } } }"""
MARK = """mutation($id: ID!, $reason: String!) { enteredInError(id: $id, reason: $reason) {
  id ... on Observation { version enteredInErrorAt enteredInErrorReason } } }"""


def code(result: dict[str, Any]) -> str:
    return str(result["errors"][0]["extensions"]["code"])


def reason(result: dict[str, Any]) -> str:
    return str(result["errors"][0]["extensions"].get("reason"))


def rows(gateway: Gateway, table: str, patient: str | uuid.UUID | None) -> int:
    """How many rows of a journal table the patient has, read straight from the database."""
    counted = sql(
        "SELECT count(*) AS n FROM ", ident(table), " WHERE patient_id = ", value(uuid.UUID(str(patient)), "uuid")
    )
    return int(gateway.fetch(counted)[0]["n"])


def versions_kept(gateway: Gateway) -> int:
    return int(gateway.fetch("SELECT count(*) AS n FROM resource_version")[0]["n"])


@pytest.fixture(scope="module")
def patient(gateway: Gateway) -> tuple[uuid.UUID, str]:
    """A Fjordvik patient of both the home care and the GP office, adult, without restrictions: these tests
    write to their journal (not the demo citizen's, which other tests count)."""
    found = unit_patient(gateway)
    return found, gid("Patient", found)


def test_the_issues_call_records_a_blood_pressure_and_its_retry_returns_the_same_resource(gateway: Gateway) -> None:
    key = f"visit-{uuid.uuid4()}"
    before = rows(gateway, "observation", CITIZEN_PATIENT_ID)
    first = gateway.query(RECORD_BLOOD_PRESSURE, "homecare-nurse", {"p": CITIZEN, "k": key})
    assert "errors" not in first, first
    made = first["data"]["createObservation"]
    assert made["version"] == 1 and made["status"] == "FINAL" and made["lastUpdated"]
    assert made["code"] == {"code": "8480-6"} and made["valueQuantity"] == {"value": 142.0, "unit": "mm[Hg]"}
    assert made["patient"] == {"id": CITIZEN}
    again = gateway.query(RECORD_BLOOD_PRESSURE, "homecare-nurse", {"p": CITIZEN, "k": key})
    assert again["data"]["createObservation"]["id"] == made["id"]
    assert rows(gateway, "observation", CITIZEN_PATIENT_ID) == before + 1
    [row] = gateway.fetch(
        "SELECT created_by, updated_app, category, patient_reported, owning_unit_id FROM observation WHERE id = $1",
        uuid.UUID(raw_id(made["id"])),
    )
    assert row["created_by"] == f"personnel:{PERSONAS['homecare-nurse'].entity_id}"
    assert row["updated_app"] == "akson-demo-app" and row["category"] == "vital-signs"
    assert row["patient_reported"] is False and row["owning_unit_id"] == FJORDVIK_HOMECARE


def test_a_health_secretary_may_not_record_an_observation_and_is_told_why(gateway: Gateway) -> None:
    before = rows(gateway, "observation", CITIZEN_PATIENT_ID)
    refused = gateway.query(RECORD_BLOOD_PRESSURE, "health-secretary", {"p": CITIZEN, "k": None})
    assert refused["data"] is None
    assert code(refused) == "FORBIDDEN" and reason(refused) == "ROLE_CATEGORY"
    assert refused["errors"][0]["extensions"]["policyVersion"]
    assert rows(gateway, "observation", CITIZEN_PATIENT_ID) == before
    denied = gateway.fetch(
        "SELECT decision, reason FROM audit_event WHERE resource_kind = 'observation' AND action = 'create' "
        "AND actor_id = $1 ORDER BY id DESC LIMIT 1",
        str(PERSONAS["health-secretary"].entity_id),
    )
    assert [(r["decision"], r["reason"]) for r in denied] == [("DENY", "ROLE_CATEGORY")]


def test_the_same_idempotency_key_with_other_input_is_refused_and_writes_nothing(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    raw, global_id = patient
    key = f"k-{uuid.uuid4()}"
    first = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id, 70), "k": key})
    assert "errors" not in first
    before = rows(gateway, "observation", raw)
    other = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id, 99), "k": key})
    assert other["data"] is None and code(other) == "IDEMPOTENCY_KEY_REUSED"
    assert other["errors"][0]["extensions"]["argument"] == "idempotencyKey"
    colleague = gateway.query(CREATE_OBSERVATION, "gp", {"input": heart_rate(global_id, 70), "k": key})
    assert code(colleague) == "IDEMPOTENCY_KEY_REUSED", "a key belongs to its first request, not to anyone's"
    assert rows(gateway, "observation", raw) == before


async def _concurrently(gateway: Gateway, bodies: list[dict[str, Any]], token: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as client:
        responses = await asyncio.gather(
            *(client.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"}) for body in bodies)
        )
    return [r.json() for r in responses]


def test_ten_concurrent_identical_requests_with_one_key_make_one_row(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    raw, global_id = patient
    before = rows(gateway, "observation", raw)
    body = {
        "query": CREATE_OBSERVATION,
        "variables": {"input": heart_rate(global_id, 64, "2026-12-02T10:00:00Z"), "k": f"race-{uuid.uuid4()}"},
    }
    answers = asyncio.run(_concurrently(gateway, [body] * 10, gateway.token("homecare-nurse")))
    assert all("errors" not in a for a in answers), answers
    assert len({a["data"]["createObservation"]["id"] for a in answers}) == 1
    assert rows(gateway, "observation", raw) == before + 1
    made = uuid.UUID(raw_id(answers[0]["data"]["createObservation"]["id"]))
    creates = gateway.fetch(
        "SELECT count(*) AS n FROM audit_event WHERE action = 'create' AND $1 = ANY(resource_ids)", str(made)
    )
    assert creates[0]["n"] == 1


def test_twenty_concurrent_updates_from_one_version_let_exactly_one_win(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    _, global_id = patient
    made = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id, 80)})
    rid = made["data"]["createObservation"]["id"]
    bodies = [
        {"query": UPDATE_OBSERVATION, "variables": {"id": rid, "v": 1, "input": {"valueQuantity": {"value": 81 + i}}}}
        for i in range(20)
    ]
    answers = asyncio.run(_concurrently(gateway, bodies, gateway.token("homecare-nurse")))
    won = [a for a in answers if a.get("data") and a["data"]["updateObservation"]]
    lost = [a for a in answers if "errors" in a]
    assert len(won) == 1 and len(lost) == 19
    assert all(code(a) == "CONFLICT" and a["errors"][0]["extensions"]["currentVersion"] == 2 for a in lost)
    winner = won[0]["data"]["updateObservation"]["valueQuantity"]["value"]
    [row] = gateway.fetch("SELECT version, value_quantity FROM observation WHERE id = $1", uuid.UUID(raw_id(rid)))
    assert row["version"] == 2 and float(row["value_quantity"]) == winner
    kept = gateway.fetch("SELECT version FROM resource_version WHERE resource_id = $1", uuid.UUID(raw_id(rid)))
    assert [r["version"] for r in kept] == [1]


HISTORY = """query($id: ID!) { node(id: $id) { ... on Observation { version enteredInErrorAt
  history(first: 10) { totalCount edges { node { version change actorKind clientId actor { hprNumber }
    resource { valueQuantity { value } enteredInErrorAt } } } } } } }"""


def test_an_update_keeps_the_earlier_version_and_entered_in_error_hides_it_from_lists_only(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    _, global_id = patient
    when = "2026-11-03T07:15:00Z"
    made = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id, 120, when)})
    rid = made["data"]["createObservation"]["id"]
    updated = gateway.query(
        UPDATE_OBSERVATION, "gp", {"id": rid, "v": 1, "input": {"valueQuantity": {"value": 102, "unit": "/min"}}}
    )
    assert updated["data"]["updateObservation"]["version"] == 2
    marked = gateway.query(MARK, "homecare-nurse", {"id": rid, "reason": "wrong patient"})
    node = marked["data"]["enteredInError"]
    assert node["version"] == 3 and node["enteredInErrorAt"] and node["enteredInErrorReason"] == "wrong patient"
    history = gateway.query(HISTORY, "gp", {"id": rid})["data"]["node"]
    assert history["version"] == 3 and history["history"]["totalCount"] == 3
    versions = [e["node"] for e in history["history"]["edges"]]
    assert [(v["version"], v["change"]) for v in versions] == [(3, "ENTERED_IN_ERROR"), (2, "UPDATED"), (1, "CREATED")]
    assert [v["actor"]["hprNumber"] for v in versions] == ["9100101", "9100102", "9100101"]
    assert {v["actorKind"] for v in versions} == {"personnel"} and {v["clientId"] for v in versions} == {
        "akson-demo-app"
    }
    assert [v["resource"]["valueQuantity"]["value"] for v in versions] == [102.0, 102.0, 120.0]
    listed = """query($id: ID!, $all: Boolean) { patient(id: $id) {
      observations(first: 100, filter: {effectiveFrom: "2026-11-03T07:00:00Z", effectiveTo: "2026-11-03T08:00:00Z",
                   includeEnteredInError: $all}) { totalCount edges { node { id } } } } }"""
    default = gateway.query(listed, "gp", {"id": global_id, "all": None})["data"]["patient"]["observations"]
    assert rid not in [e["node"]["id"] for e in default["edges"]]
    everything = gateway.query(listed, "gp", {"id": global_id, "all": True})["data"]["patient"]["observations"]
    assert rid in [e["node"]["id"] for e in everything["edges"]]
    assert everything["totalCount"] == default["totalCount"] + 1
    again = gateway.query(UPDATE_OBSERVATION, "gp", {"id": rid, "v": 3, "input": {"valueQuantity": {"value": 1}}})
    assert code(again) == "BAD_USER_INPUT", "a resource entered in error no longer changes"


DOCTOR_WRITES = [(type_name, *inputs) for type_name, inputs in KIND_INPUTS.items() if type_name != "CareRelation"]


@pytest.mark.parametrize(("type_name", "table", "create", "patch"), DOCTOR_WRITES, ids=[w[0] for w in DOCTOR_WRITES])
def test_a_doctor_creates_updates_and_marks_entered_in_error_every_clinical_kind(
    gateway: Gateway,
    patient: tuple[uuid.UUID, str],
    type_name: str,
    table: str,
    create: dict[str, Any],
    patch: dict[str, Any],
) -> None:
    raw, global_id = patient
    before = rows(gateway, table, raw)
    made = gateway.query(create_mutation(type_name), "gp", {"input": {"patientId": global_id, **create}})
    assert "errors" not in made, made
    rid = made["data"][f"create{type_name}"]["id"]
    assert made["data"][f"create{type_name}"]["version"] == 1
    assert rows(gateway, table, raw) == before + 1
    changed = gateway.query(update_mutation(type_name), "gp", {"id": rid, "v": 1, "input": patch})
    assert "errors" not in changed, changed
    assert changed["data"][f"update{type_name}"]["version"] == 2
    marked = gateway.query(ENTERED_IN_ERROR, "gp", {"id": rid})
    assert "errors" not in marked, marked
    [row] = gateway.fetch(
        sql(
            "SELECT version, entered_in_error_reason, last_change FROM ",
            ident(table),
            " WHERE id = ",
            value(uuid.UUID(raw_id(rid)), "uuid"),
        )
    )
    assert (row["version"], row["entered_in_error_reason"], row["last_change"]) == (
        3,
        "registered by mistake",
        "entered-in-error",
    )
    audited = gateway.fetch(
        "SELECT action, decision FROM audit_event WHERE $1 = ANY(resource_ids) AND action <> 'read' ORDER BY id",
        raw_id(rid),
    )
    assert [(r["action"], r["decision"]) for r in audited] == [
        ("create", "ALLOW"),
        ("update", "ALLOW"),
        ("entered_in_error", "ALLOW"),
    ]


def test_a_care_relation_is_written_by_a_doctor_who_cares_for_the_patient(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    _, global_id = patient
    made = gateway.query(
        """mutation($input: CareRelationInput!) { createCareRelation(input: $input) { id purpose
          organization { id } period { start end } } }""",
        "gp",
        {
            "input": {
                "patientId": global_id,
                "organizationId": gid("Organization", FJORDVIK_HOMECARE),
                "purpose": "hjemmesykepleie etter sykehusopphold",
                "period": {"start": "2026-12-01T00:00:00Z", "end": "2027-03-01T00:00:00Z"},
            }
        },
    )
    assert "errors" not in made, made
    assert made["data"]["createCareRelation"]["organization"] == {"id": gid("Organization", FJORDVIK_HOMECARE)}
    stranger = gateway.query(
        """mutation($input: CareRelationInput!) { createCareRelation(input: $input) { id } }""",
        "nurse-other-municipality",
        {
            "input": {
                "patientId": global_id,
                "organizationId": gid("Organization", PERSONAS["nurse-other-municipality"].unit_id),
                "purpose": "self-granted access",
                "period": {"start": "2026-12-01T00:00:00Z"},
            }
        },
    )
    assert code(stranger) == "FORBIDDEN" and reason(stranger) == "ROLE_CATEGORY"


def test_a_care_relation_a_write_makes_cannot_be_what_allows_it(gateway: Gateway) -> None:
    """A doctor with no relation to a patient may not give their own unit one (access by self-referral)."""
    outsider = gateway.fetch(
        "SELECT p.id FROM patient p WHERE NOT EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id "
        "AND c.organization_id = $1) AND NOT EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id "
        "AND c.practitioner_id = $2) ORDER BY p.id LIMIT 1",
        FJORDVIK_GP_OFFICE,
        PERSONAS["gp"].entity_id,
    )[0]["id"]
    before = int(gateway.fetch("SELECT count(*) AS n FROM care_relation WHERE patient_id = $1", outsider)[0]["n"])
    result = gateway.query(
        """mutation($input: CareRelationInput!) { createCareRelation(input: $input) { id } }""",
        "gp",
        {
            "input": {
                "patientId": gid("Patient", outsider),
                "organizationId": gid("Organization", FJORDVIK_GP_OFFICE),
                "purpose": "fastlege",
                "period": {"start": "2026-12-01T00:00:00Z"},
            }
        },
    )
    assert code(result) == "FORBIDDEN" and reason(result) == "NO_CARE_RELATION"
    after = int(gateway.fetch("SELECT count(*) AS n FROM care_relation WHERE patient_id = $1", outsider)[0]["n"])
    assert after == before


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown code", {"code": {"system": "http://loinc.org", "code": "0000-0"}}, "input.code.code"),
    ("code of another system", {"code": {"system": "http://snomed.info/sct", "code": "8867-4"}}, "input.code.system"),
    (
        "code this field does not take",
        {"code": {"system": "http://loinc.org", "code": "58410-2"}},
        "input.code.code",
    ),
    (
        "display that does not match",
        {"code": {"system": "http://loinc.org", "code": "8867-4", "display": "Weight"}},
        "input.code.display",
    ),
    ("unit that is not the code's", {"valueQuantity": {"value": 70, "unit": "kg"}}, "input.valueQuantity.unit"),
    ("time without a time zone", {"effectiveDateTime": "2026-12-02T08:00:00"}, "input.effectiveDateTime"),
    ("encounter of another patient", {"encounterId": "OTHER_ENCOUNTER"}, "input.encounterId"),
    ("a patient's id where an encounter's belongs", {"encounterId": "A_PATIENT"}, "input.encounterId"),
    ("not an id at all", {"encounterId": "bm90IGFuIGlk"}, "input.encounterId"),
    ("two ways to name the patient", {"patientNationalIdentityNumber": "01010112345"}, "input.patientId"),
]


@pytest.mark.parametrize(("case", "change", "argument"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_argument_and_nothing_is_written(
    gateway: Gateway, patient: tuple[uuid.UUID, str], case: str, change: dict[str, Any], argument: str
) -> None:
    raw, global_id = patient
    other = gateway.fetch("SELECT id FROM encounter WHERE patient_id <> $1 ORDER BY id LIMIT 1", raw)[0]["id"]
    replacements = {"OTHER_ENCOUNTER": gid("Encounter", other), "A_PATIENT": global_id}
    given = {k: replacements.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    before, kept = rows(gateway, "observation", raw), versions_kept(gateway)
    result = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": {**heart_rate(global_id), **given}})
    assert result["data"] is None, case
    assert code(result) == "BAD_USER_INPUT", result
    assert result["errors"][0]["extensions"]["argument"] == argument
    assert rows(gateway, "observation", raw) == before and versions_kept(gateway) == kept


def test_text_with_a_nul_character_is_bad_input_and_no_note_is_recorded_as_written(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    raw, global_id = patient
    before = rows(gateway, "clinical_note", raw)
    audited = int(
        gateway.fetch(
            "SELECT count(*) AS n FROM audit_event WHERE resource_kind = 'clinical_note' AND action = 'create'"
        )[0]["n"]
    )
    result = gateway.query(
        'mutation($p: ID!, $t: String!) { createNote(patientId: $p, title: "Besøk", text: $t) { id } }',
        "homecare-nurse",
        {"p": global_id, "t": "Sår stelt\u0000 god form"},
    )
    assert code(result) == "BAD_USER_INPUT" and result["errors"][0]["extensions"]["argument"] == "text"
    assert rows(gateway, "clinical_note", raw) == before
    after = int(
        gateway.fetch(
            "SELECT count(*) AS n FROM audit_event WHERE resource_kind = 'clinical_note' AND action = 'create'"
        )[0]["n"]
    )
    assert after == audited


def test_a_write_whose_audit_rows_cannot_be_written_changes_nothing(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    raw, global_id = patient
    existing = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id, 66)})
    rid = existing["data"]["createObservation"]["id"]
    before, kept = rows(gateway, "observation", raw), versions_kept(gateway)
    gateway.fetch("REVOKE INSERT ON audit_event FROM akson_gateway")
    try:
        created = gateway.post(
            CREATE_OBSERVATION, persona="homecare-nurse", variables={"input": heart_rate(global_id, 67)}
        )
        changed = gateway.post(
            UPDATE_OBSERVATION,
            persona="homecare-nurse",
            variables={"id": rid, "v": 1, "input": {"valueQuantity": {"value": 68}}},
        )
    finally:
        gateway.fetch("GRANT INSERT ON audit_event TO akson_gateway")
    for response in (created, changed):
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert response.json()["data"] is None
    assert rows(gateway, "observation", raw) == before and versions_kept(gateway) == kept
    [row] = gateway.fetch("SELECT version, value_quantity FROM observation WHERE id = $1", uuid.UUID(raw_id(rid)))
    assert row["version"] == 1 and float(row["value_quantity"]) == 66


def test_a_write_and_its_audit_rows_commit_in_one_transaction(gateway: Gateway, patient: tuple[uuid.UUID, str]) -> None:
    _, global_id = patient
    made = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id, 75)})
    rid = raw_id(made["data"]["createObservation"]["id"])
    [written] = gateway.fetch("SELECT xmin::text AS tx FROM observation WHERE id = $1", uuid.UUID(rid))
    audited = gateway.fetch(
        "SELECT xmin::text AS tx, decision FROM audit_event WHERE action = 'create' AND $1 = ANY(resource_ids)", rid
    )
    assert [(r["tx"], r["decision"]) for r in audited] == [(written["tx"], "ALLOW")]


def test_sperring_denies_writes_as_it_denies_reads(gateway: Gateway, patient: tuple[uuid.UUID, str]) -> None:
    raw, global_id = patient
    nurse = PERSONAS["homecare-nurse"]
    made = gateway.query(
        "mutation($input: RestrictionInput!) { createRestriction(input: $input) { id } }",
        "gp",
        {
            "input": {
                "patientId": global_id,
                "scope": "PERSON",
                "reason": "kjenner sykepleieren privat",
                "practitionerId": gid("Practitioner", nurse.entity_id),
            }
        },
    )
    restriction = made["data"]["createRestriction"]["id"]
    try:
        before = rows(gateway, "observation", raw)
        refused = gateway.query(CREATE_OBSERVATION, "homecare-nurse", {"input": heart_rate(global_id)})
        assert code(refused) == "FORBIDDEN" and reason(refused) == "PATIENT_RESTRICTION"
        assert rows(gateway, "observation", raw) == before
        assert "errors" not in gateway.query(CREATE_OBSERVATION, "gp", {"input": heart_rate(global_id)})
    finally:
        gateway.query(
            'mutation($id: ID!) { liftRestriction(id: $id, reason: "test over") { id } }', "gp", {"id": restriction}
        )


def test_an_emergency_grant_lets_its_holder_document_what_they_did_and_nothing_more(
    gateway: Gateway, patient: tuple[uuid.UUID, str]
) -> None:
    _, global_id = patient
    encounter = {"patientId": global_id, "class": "EMER", "period": {"start": "2026-12-02T03:00:00Z"}}
    create_encounter = "mutation($input: EncounterInput!) { createEncounter(input: $input) { id } }"
    stranger = "nurse-other-municipality"
    assert reason(gateway.query(create_encounter, stranger, {"input": encounter})) == "NO_CARE_RELATION"
    grant = gateway.query(
        'mutation($p: ID!) { requestEmergencyAccess(patientId: $p, reason: "Falt i heisen, bevisstløs", '
        "lifeOrHealthAtRisk: false) { id } }",
        stranger,
        {"p": global_id},
    )
    grant_id = raw_id(grant["data"]["requestEmergencyAccess"]["id"])
    try:
        opened = gateway.query(create_encounter, stranger, {"input": encounter})
        assert "errors" not in opened, opened
        assert "errors" not in gateway.query(CREATE_OBSERVATION, stranger, {"input": heart_rate(global_id, 130)})
        plan = gateway.query(
            "mutation($input: CarePlanInput!) { createCarePlan(input: $input) { id } }",
            stranger,
            {"input": {"patientId": global_id, "title": "x", "description": "y", "period": {"start": "2026-12-02"}}},
        )
        assert code(plan) == "FORBIDDEN", "an emergency grant documents what was done, no more"
        flagged = gateway.fetch(
            "SELECT emergency FROM audit_event WHERE action = 'create' AND resource_kind = 'encounter' "
            "AND $1 = ANY(resource_ids)",
            raw_id(opened["data"]["createEncounter"]["id"]),
        )
        assert [r["emergency"] for r in flagged] == [True]
    finally:
        gateway.fetch("UPDATE emergency_grant SET expires_at = now() WHERE id = $1", uuid.UUID(grant_id))
