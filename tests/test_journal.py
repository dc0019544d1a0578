"""The whole journal through GraphQL: every kind, relations both ways, filters, ordering and global
ids, with the care-relation rule on every row."""

from __future__ import annotations

import base64
import uuid

import pytest

from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from gateway.sql import ident, sql, value
from tests.conftest import CITIZEN, Gateway, gid, raw_id

RELATIONS = {
    "careRelations": "care_relation",
    "encounters": "encounter",
    "observations": "observation",
    "diagnosticReports": "diagnostic_report",
    "conditions": "condition",
    "medicationStatements": "medication_statement",
    "allergyIntolerances": "allergy_intolerance",
    "clinicalNotes": "clinical_note",
    "carePlans": "care_plan",
    "appointments": "appointment",
    "restrictions": "restriction",
}

WHOLE_JOURNAL = """query Journal($id: ID!) {
  patient(id: $id) {
    id name { text } birthDate gender nationalIdentityNumber
    managingOrganization { name unitType orgNumber }
    careRelations(first: 10) { totalCount edges { node { purpose period { start end }
      organization { name } practitioner { name { text } hprNumber } } } }
    encounters(first: 5) { totalCount edges { node { id class status period { start end }
      serviceProvider { name } participant { name { text } }
      observations(first: 10) { totalCount edges { node { code { system code display }
        valueQuantity { value unit } } } }
      notes(first: 3) { edges { node { title status } } } } } }
    observations(first: 3) { totalCount edges { node { id category status effectiveDateTime } } }
    diagnosticReports(first: 3) { totalCount edges { node { id category code { code display } conclusion
      results(first: 20) { totalCount edges { node { code { code } } } } } } }
    conditions(first: 10) { totalCount edges { node { code { system code display } clinicalStatus category
      verificationStatus onsetDate recorder { name { text } } } } }
    medicationStatements(first: 10) { totalCount edges { node { medication { code display } dosage status
      effectivePeriod { start end } } } }
    allergyIntolerances(first: 10) { totalCount edges { node { code { display } category criticality reaction } } }
    clinicalNotes(first: 5) { totalCount edges { node { title text status author { name { text } } } } }
    carePlans(first: 5) { totalCount edges { node { title status period { start } author { name { text } } } } }
    appointments(first: 5) { totalCount edges { node { start end status serviceType } } }
    restrictions(first: 5) { totalCount edges { node { scope reason } } }
  }
}"""


def count(gateway: Gateway, table: str, patient: uuid.UUID) -> int:
    counted = sql(
        "SELECT count(*) AS n FROM ",
        ident(table),
        " WHERE patient_id = ",
        value(patient, "uuid"),
        " AND entered_in_error_at IS NULL",
    )
    return int(gateway.fetch(counted)[0]["n"])


def test_a_vendor_app_reads_a_patients_whole_journal_in_one_query(gateway: Gateway) -> None:
    assert CITIZEN_PATIENT_ID is not None
    result = gateway.query(WHOLE_JOURNAL, "homecare-nurse", {"id": CITIZEN})
    assert "errors" not in result, result["errors"]
    patient = result["data"]["patient"]
    assert patient["name"]["text"] == "Ola Nordmann"
    for field, table in RELATIONS.items():
        assert patient[field]["totalCount"] == count(gateway, table, CITIZEN_PATIENT_ID), field
    for field in (
        "careRelations",
        "encounters",
        "observations",
        "conditions",
        "medicationStatements",
        "allergyIntolerances",
        "carePlans",
    ):
        assert patient[field]["edges"], f"the demo patient should have {field}"
    encounter = patient["encounters"]["edges"][0]["node"]
    assert encounter["observations"]["edges"] and encounter["participant"]["name"]["text"]


def test_lists_are_newest_first_unless_asked_otherwise(gateway: Gateway) -> None:
    query = """query($id: ID!, $order: SortOrder!) { patient(id: $id) {
      encounters(first: 100, order: $order) { edges { node { period { start } } } } } }"""
    newest = gateway.query(query, "gp", {"id": CITIZEN, "order": "NEWEST_FIRST"})["data"]["patient"]["encounters"]
    oldest = gateway.query(query, "gp", {"id": CITIZEN, "order": "OLDEST_FIRST"})["data"]["patient"]["encounters"]
    starts = [e["node"]["period"]["start"] for e in newest["edges"]]
    assert len(starts) > 2 and starts == sorted(starts, reverse=True)
    assert [e["node"]["period"]["start"] for e in oldest["edges"]] == starts[::-1]


def test_relations_lead_back_from_an_observation_to_its_patient_and_encounter(gateway: Gateway) -> None:
    row = gateway.fetch(
        "SELECT id, encounter_id FROM observation WHERE patient_id = $1 AND encounter_id IS NOT NULL LIMIT 1",
        CITIZEN_PATIENT_ID,
    )[0]
    query = """query($id: ID!) { node(id: $id) { __typename id ... on Observation {
      patient { id } encounter { id observations(first: 100) { edges { node { id } } } } } } }"""
    node = gateway.query(query, "homecare-nurse", {"id": gid("Observation", row["id"])})["data"]["node"]
    assert node["__typename"] == "Observation"
    assert node["patient"]["id"] == CITIZEN
    assert node["encounter"]["id"] == gid("Encounter", row["encounter_id"])
    assert gid("Observation", row["id"]) in [e["node"]["id"] for e in node["encounter"]["observations"]["edges"]]


def test_a_lab_report_lists_its_results(gateway: Gateway) -> None:
    # A lab report with results of a patient the GP may read: a care relation with the GP or the GP's
    # office and no sperring; the demo patient when it has one.
    gp = PERSONAS["gp"]
    [row] = gateway.fetch(
        "SELECT r.id, count(o.id) AS n FROM diagnostic_report r JOIN observation o ON o.diagnostic_report_id = r.id "
        "WHERE r.category = 'laboratory' AND EXISTS (SELECT 1 FROM care_relation cr WHERE cr.patient_id = r.patient_id "
        "AND (cr.organization_id = $2 OR cr.practitioner_id = $3) "
        "AND cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now())) "
        "AND NOT EXISTS (SELECT 1 FROM restriction rx WHERE rx.patient_id = r.patient_id AND rx.lifted_at IS NULL "
        "AND rx.period_start <= now() AND (rx.period_end IS NULL OR rx.period_end > now())) "
        "GROUP BY r.id, r.patient_id ORDER BY r.patient_id = $1 DESC, r.id LIMIT 1",
        CITIZEN_PATIENT_ID,
        gp.unit_id,
        gp.entity_id,
    )
    query = """query($id: ID!) { node(id: $id) { ... on DiagnosticReport { category
      results(first: 100) { totalCount edges { node { diagnosticReport { id } } } } } } }"""
    answer = gateway.query(query, "gp", {"id": gid("DiagnosticReport", row["id"])})
    assert "errors" not in answer, answer
    report = answer["data"]["node"]
    assert report["category"] == "LABORATORY"
    assert report["results"]["totalCount"] == row["n"] == len(report["results"]["edges"]) > 0
    assert {e["node"]["diagnosticReport"]["id"] for e in report["results"]["edges"]} == {
        gid("DiagnosticReport", row["id"])
    }


def test_a_practitioner_leads_to_roles_and_units(gateway: Gateway) -> None:
    row = gateway.fetch("SELECT practitioner_id, organization_id FROM practitioner_role LIMIT 1")[0]
    query = """query($id: ID!) { node(id: $id) { ... on Practitioner { name { text }
      roles(first: 5) { edges { node { role organization { id unitType } practitioner { id } } } } } } }"""
    node = gateway.query(query, "citizen", {"id": gid("Practitioner", row["practitioner_id"])})["data"]["node"]
    [role] = node["roles"]["edges"]
    assert role["node"]["organization"]["id"] == gid("Organization", row["organization_id"])
    assert role["node"]["practitioner"]["id"] == gid("Practitioner", row["practitioner_id"])


def test_node_of_another_municipalitys_patient_data_is_forbidden_like_a_missing_one(gateway: Gateway) -> None:
    row = gateway.fetch("SELECT id FROM encounter WHERE patient_id = $1 LIMIT 1", CITIZEN_PATIENT_ID)[0]
    query = "query($id: ID!) { node(id: $id) { id } }"
    hidden = gateway.query(query, "nurse-other-municipality", {"id": gid("Encounter", row["id"])})
    missing = gateway.query(query, "nurse-other-municipality", {"id": gid("Encounter", uuid.uuid4())})
    assert hidden["data"] == missing["data"] == {"node": None}
    assert hidden["errors"][0]["extensions"] == missing["errors"][0]["extensions"]
    assert hidden["errors"][0]["message"] == missing["errors"][0]["message"]
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_nested_path_cannot_reach_a_hidden_patient(gateway: Gateway) -> None:
    # Observations of the citizen are hidden from the Nordby nurse, so are the citizen and its encounters
    # through any of Nordby's own data, and through the top-level observation search.
    own = gateway.query(
        "{ observations(first: 100) { totalCount edges { node { patient { id } } } } }", "nurse-other-municipality"
    )["data"]["observations"]
    patients = {e["node"]["patient"]["id"] for e in own["edges"]}
    assert CITIZEN not in patients and patients
    visible = gateway.fetch(
        "SELECT count(*) AS n FROM observation o WHERE EXISTS (SELECT 1 FROM care_relation cr "
        "WHERE cr.patient_id = o.patient_id AND cr.organization_id = $1 "
        "AND cr.period_start <= now() AND (cr.period_end IS NULL OR cr.period_end > now()))",
        uuid.UUID("0a9e7a31-0000-4000-8000-000000000021"),
    )[0]["n"]
    assert own["totalCount"] == visible


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("garbage", "not an id issued by this API"),
        (base64.b64encode(b"Spaceship:1").decode(), "not an id issued by this API"),
        (base64.b64encode(b"Patient:not-a-uuid").decode(), "not an id issued by this API"),
        (gid("Encounter", CITIZEN_PATIENT_ID), "not a Patient id"),
    ],
    ids=["not-base64", "unknown-type", "bad-uuid", "other-kind"],
)
def test_malformed_and_foreign_ids_are_bad_user_input(gateway: Gateway, value: str, fragment: str) -> None:
    result = gateway.query("query($id: ID!) { patient(id: $id) { id } }", "gp", {"id": value})
    assert result["data"] == {"patient": None}
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in result["errors"][0]["message"]


def test_observations_filter_by_code_and_time(gateway: Gateway) -> None:
    query = """query($f: ObservationFilter) { observations(first: 100, filter: $f) {
      totalCount edges { node { code { code } effectiveDateTime } } } }"""
    window = {"code": "8480-6", "effectiveFrom": "2025-01-01T00:00:00Z", "effectiveTo": "2026-01-01T00:00:00Z"}
    page = gateway.query(query, "homecare-nurse", {"f": window})["data"]["observations"]
    assert page["edges"]
    assert {e["node"]["code"]["code"] for e in page["edges"]} == {"8480-6"}
    assert all("2025-" in e["node"]["effectiveDateTime"][:5] for e in page["edges"])
    unfiltered = gateway.query(query, "homecare-nurse", {"f": None})["data"]["observations"]["totalCount"]
    assert 0 < page["totalCount"] < unfiltered


def test_an_inverted_time_range_is_bad_user_input(gateway: Gateway) -> None:
    query = "query($f: ObservationFilter) { observations(first: 5, filter: $f) { totalCount } }"
    result = gateway.query(
        query, "gp", {"f": {"effectiveFrom": "2026-01-01T00:00:00Z", "effectiveTo": "2025-01-01T00:00:00Z"}}
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "range is empty" in result["errors"][0]["message"]


def test_an_unknown_filter_value_is_a_validation_error(gateway: Gateway) -> None:
    query = "query($f: ObservationFilter) { observations(first: 5, filter: $f) { totalCount } }"
    result = gateway.query(query, "gp", {"f": {"category": "astrology"}})
    assert "data" not in result
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_a_cursor_from_another_list_is_bad_user_input(gateway: Gateway) -> None:
    patients = gateway.query("{ patients(first: 1) { pageInfo { endCursor } } }", "gp")["data"]["patients"]
    query = "query($after: String) { observations(first: 5, after: $after) { totalCount } }"
    result = gateway.query(query, "gp", {"after": patients["pageInfo"]["endCursor"]})
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_nested_page_sizes_are_capped_too(gateway: Gateway) -> None:
    result = gateway.query(
        "query($id: ID!) { patient(id: $id) { encounters(first: 101) { totalCount } } }", "gp", {"id": CITIZEN}
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_nested_pages_continue_from_their_cursor(gateway: Gateway) -> None:
    query = """query($id: ID!, $after: String) { patient(id: $id) {
      observations(first: 4, after: $after) { edges { node { id } } pageInfo { endCursor hasNextPage } } } }"""
    first = gateway.query(query, "gp", {"id": CITIZEN})["data"]["patient"]["observations"]
    second = gateway.query(query, "gp", {"id": CITIZEN, "after": first["pageInfo"]["endCursor"]})
    both = gateway.query(query.replace("first: 4", "first: 8"), "gp", {"id": CITIZEN})
    ids = [e["node"]["id"] for e in first["edges"] + second["data"]["patient"]["observations"]["edges"]]
    assert ids == [e["node"]["id"] for e in both["data"]["patient"]["observations"]["edges"]]
    assert len({raw_id(i) for i in ids}) == 8
