"""Whole-selection reads: a query of lists and plain fields is answered by PostgreSQL's JSON in one
statement per root list, with exactly the answer, the policy filtering and the audit records the
resolvers give. `@include(if: true)` sends the same selection down the resolver path for comparison."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import orjson

from gateway.json_sql import GlobalId, InstantColumn, json_object, json_value, shape_sql
from gateway.plan_sql import Attribute, SetOf, Translator
from gateway.resources import KINDS
from gateway.sql import ident, join, sql, value
from tests.conftest import CITIZEN, Gateway, gid, raw_id, run

FIELDS = """
  id __typename nationalIdentityNumber name { family given text } gender birthDate
  careRelations(first: 3) { edges { cursor node { id purpose period { start end } } } }
  encounters(first: 4) {
    __typename
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { __typename cursor node { id status class period { start end }
      observations(first: 3) { edges { node { id status category code { system code display }
        valueQuantity { value unit } effectiveDateTime } } }
      diagnosticReports(first: 2) { edges { node { id status category code { code } effectiveDateTime issued
        conclusion } } }
    } }
  }
  conditions(first: 3) { edges { node { id clinicalStatus verificationStatus category code { code display }
    onsetDate abatementDate recordedDate } } }
  medicationStatements(first: 3) { edges { node { id status medication { system code display } dosage
    effectivePeriod { start end } dateAsserted } } }
  allergyIntolerances(first: 3) { edges { node { id clinicalStatus category criticality code { code }
    reaction recordedDate } } }
  labs: observations(first: 2, filter: {category: LABORATORY}) { edges { node { code { c: code } } } }
"""
WHOLE = "{ patients(first: 6) { pageInfo { hasNextPage endCursor } edges { cursor node { " + FIELDS + " } } } }"
RESOLVED = WHOLE.replace("patients(first: 6) {", "patients(first: 6) @include(if: true) {", 1)
OBSERVATIONS = """query($code: String!, $after: String) {
  observations(first: 5, after: $after, filter: {code: $code}) {
    pageInfo { hasNextPage endCursor } edges { cursor node { id effectiveDateTime valueQuantity { value } } } } }"""
RESOLVED_OBSERVATIONS = OBSERVATIONS.replace(
    "filter: {code: $code}) {", "filter: {code: $code}) @include(if: true) {", 1
)


def post(gateway: Gateway, query: str, persona: str, variables: dict[str, Any] | None = None) -> Any:
    response = gateway.post(query, persona=persona, variables=variables)
    assert response.status_code == 200, response.text
    return response


def cursor_key(cursor: str) -> list[Any]:
    """What a cursor holds; the two paths may write the same key with different spacing."""
    key: list[Any] = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return key


def normalized(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: normalized(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if key in {"cursor", "startCursor", "endCursor"} and isinstance(value, str):
        return cursor_key(value)
    return value


def sql_statements(response: Any) -> int:
    return int(response.headers["x-akson-sql-statements"])


def request_sql(gateway: Gateway, response: Any) -> list[str]:
    """The request's own SQL statements, from its trace: the calling app's status is cached for 2 s and
    looked up again by whichever request finds it expired, so it is left out, as is admission's one
    statement for the rate limits (`rate_take`), the same for every request."""
    spans = gateway.spans(response.headers["x-trace-id"])
    statements = [str(s["attributes"]["db.statement"]) for s in spans if "db.statement" in s["attributes"]]
    return [s for s in statements if "FROM app WHERE client_id" not in s and "rate_take(" not in s]


def request_statements(gateway: Gateway, response: Any) -> int:
    return len(request_sql(gateway, response))


def test_the_whole_selection_answer_equals_the_resolver_answer_for_every_field_it_covers(gateway: Gateway) -> None:
    for persona in ("gp", "homecare-nurse", "health-secretary", "citizen"):
        whole = post(gateway, WHOLE, persona)
        resolved = post(gateway, RESOLVED, persona)
        assert "errors" not in whole.json(), whole.json()
        assert normalized(whole.json()) == normalized(resolved.json()), persona
        assert sql_statements(whole) < sql_statements(resolved), "the whole-selection path must have been taken"


def test_a_whole_selection_costs_one_statement_per_root_list_however_many_rows(gateway: Gateway) -> None:
    small = post(gateway, WHOLE.replace("first: 6", "first: 1"), "gp")
    large = post(gateway, WHOLE.replace("first: 6", "first: 40"), "gp")
    rows = [len(r.json()["data"]["patients"]["edges"]) for r in (small, large)]
    assert rows[1] > 5 * rows[0] > 0
    # principal lookup + one statement for the list and everything under it + the audit insert
    assert request_statements(gateway, small) == request_statements(gateway, large) <= 3


def test_every_row_a_whole_selection_returns_is_in_the_audit_log_of_its_request(gateway: Gateway) -> None:
    response = post(gateway, WHOLE, "gp")
    patients = response.json()["data"]["patients"]["edges"]
    shown: dict[str, set[str]] = {}
    for edge in patients:
        node = edge["node"]
        shown.setdefault("patient", set()).add(raw_id(node["id"]))
        for e in node["encounters"]["edges"]:
            shown.setdefault("encounter", set()).add(raw_id(e["node"]["id"]))
            for o in e["node"]["observations"]["edges"]:
                shown.setdefault("observation", set()).add(raw_id(o["node"]["id"]))
    rows = gateway.fetch(
        "SELECT resource_kind, patient_id, resource_ids, decision, reason, action FROM audit_event WHERE trace_id = $1",
        response.headers["x-trace-id"],
    )
    audited: dict[str, set[str]] = {}
    for row in rows:
        assert (row["decision"], row["action"]) == ("ALLOW", "search")
        assert row["reason"] in {"PLAN_CONDITION", "PLAN_ALWAYS_ALLOWED"}
        audited.setdefault(row["resource_kind"], set()).update(row["resource_ids"])
    for kind, ids in shown.items():
        assert ids <= audited[kind], kind
    patients_audited = {str(r["patient_id"]) for r in rows if r["resource_kind"] == "patient"}
    assert patients_audited == shown["patient"]


def test_a_whole_selection_shows_no_row_policy_hides(gateway: Gateway) -> None:
    other = post(gateway, WHOLE, "nurse-other-municipality").json()
    fjordvik = {raw_id(e["node"]["id"]) for e in post(gateway, WHOLE, "gp").json()["data"]["patients"]["edges"]}
    seen = {raw_id(e["node"]["id"]) for e in other["data"]["patients"]["edges"]}
    assert not seen & fjordvik
    secretary = post(gateway, WHOLE, "health-secretary").json()
    for edge in secretary["data"]["patients"]["edges"]:
        assert edge["node"]["encounters"]["edges"] == [], "a health secretary sees no clinical data"


def test_cursors_of_either_path_continue_the_same_list(gateway: Gateway) -> None:
    assert RESOLVED_OBSERVATIONS != OBSERVATIONS
    first = post(gateway, OBSERVATIONS, "gp", {"code": "8480-6"}).json()["data"]["observations"]
    assert first["pageInfo"]["hasNextPage"]
    after = first["pageInfo"]["endCursor"]
    # the whole-selection path's cursor, continued by both paths
    whole = post(gateway, OBSERVATIONS, "gp", {"code": "8480-6", "after": after})
    resolved = post(gateway, RESOLVED_OBSERVATIONS, "gp", {"code": "8480-6", "after": after})
    # one page by each path: not the same statements (though as many of them)
    assert sorted(request_sql(gateway, whole)) != sorted(request_sql(gateway, resolved)), "the same path twice"
    assert normalized(whole.json()) == normalized(resolved.json())
    # the resolver path's cursor, continued by the whole-selection path
    resolved_first = post(gateway, RESOLVED_OBSERVATIONS, "gp", {"code": "8480-6"}).json()["data"]["observations"]
    assert normalized(resolved_first) == normalized(first)
    continued = post(gateway, OBSERVATIONS, "gp", {"code": "8480-6", "after": resolved_first["pageInfo"]["endCursor"]})
    assert normalized(continued.json()) == normalized(whole.json())
    page = whole.json()["data"]["observations"]["edges"]
    ids = [e["node"]["id"] for e in first["edges"]] + [e["node"]["id"] for e in page]
    assert len(ids) == len(set(ids)) == 10


def test_bad_arguments_in_a_whole_selection_get_the_same_typed_error(gateway: Gateway) -> None:
    body = post(gateway, "{ patients(first: 0) { edges { node { id } } } }", "gp").json()
    assert body["data"] is None or body["data"].get("patients") is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = post(gateway, '{ patients(first: 2, after: "bm9wZQ") { edges { node { id } } } }', "gp").json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_fields_outside_the_whole_selection_take_the_resolver_path_and_still_answer(gateway: Gateway) -> None:
    query = "{ patients(first: 2) { totalCount edges { node { id managingOrganization { name } } } } }"
    body = post(gateway, query, "gp").json()
    assert "errors" not in body, body
    assert body["data"]["patients"]["totalCount"] >= 2
    assert all(e["node"]["managingOrganization"]["name"] for e in body["data"]["patients"]["edges"])


def test_global_ids_built_by_postgresql_equal_strawberrys_for_every_length_of_type_name(server_url: str) -> None:
    row_id = "0a9e7a31-0000-4000-8000-000000000011"
    names = ["T" * n for n in range(1, 40)]

    async def ids() -> list[str]:
        conn = await asyncpg.connect(server_url)
        try:
            statement = sql(
                "SELECT ",
                join(shape_sql(GlobalId(), "r", name) for name in names),
                " FROM (SELECT ",
                value(row_id, "uuid"),
                " AS id) AS r",
            )
            text, values = statement.render()
            row = await conn.fetchrow(text, *values)
            return list(row.values())
        finally:
            await conn.close()

    expected = [base64.b64encode(f"{name}:{row_id}".encode()).decode() for name in names]
    assert [orjson.loads(text) for text in run(ids())] == expected


def test_json_text_built_by_postgresql_escapes_what_json_must_escape(server_url: str) -> None:
    nasty = 'He said "hei" \\ then\nleft\t\u00f8\u2028 \U0001f600'

    async def built() -> str:
        conn = await asyncpg.connect(server_url)
        try:
            built = json_object(
                [
                    ("text", json_value(value(nasty, "text"))),
                    ("none", json_value(sql("NULL::text"))),
                    ("empty", json_object([])),
                ]
            )
            text, values = sql("SELECT ", built).render()
            return str(await conn.fetchval(text, *values))
        finally:
            await conn.close()

    assert orjson.loads(run(built())) == {"text": nasty, "none": None, "empty": {}}


def test_times_built_by_postgresql_are_written_as_the_resolvers_write_them(server_url: str) -> None:
    instants = [
        datetime(2026, 12, 3, 13, 53, 29, 228130, tzinfo=UTC),
        datetime(2026, 12, 3, 13, 53, 29, 100000, tzinfo=UTC),
        datetime(2026, 12, 3, 13, 53, 29, 7, tzinfo=UTC),
        datetime(2026, 12, 3, 13, 53, 29, tzinfo=UTC),
        datetime(1999, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))),
    ]

    async def built() -> list[Any]:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute("SET TIME ZONE 'Europe/Oslo'")
            columns = {f"t{n}": value(at, "timestamptz") for n, at in enumerate(instants)}
            statement = sql(
                "SELECT ",
                json_object([(name, shape_sql(InstantColumn(name), "r", "T")) for name in columns]),
                " FROM (SELECT ",
                join(sql(expression, " AS ", ident(name)) for name, expression in columns.items()),
                ") AS r",
            )
            text, values = statement.render()
            return list(orjson.loads(await conn.fetchval(text, *values)).values())
        finally:
            await conn.close()

    assert run(built()) == [at.astimezone(UTC).isoformat() for at in instants]


NESTED = """{ patients(first: 100) { edges { node { id encounters(first: 50) { edges { node { id
  observations(first: 50) { edges { node { id } } } } } } } } } }"""
RESTRICT = """mutation($input: RestrictionInput!) { createRestriction(input: $input) { id } }"""
LIFT = """mutation($id: ID!) { liftRestriction(id: $id, reason: "test over") { id } }"""


def nested_ids(answer: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Per patient: its encounters' ids, and per encounter its observations' ids."""
    found: dict[str, dict[str, list[str]]] = {}
    for patient in answer["data"]["patients"]["edges"]:
        encounters = found.setdefault(patient["node"]["id"], {})
        for encounter in patient["node"]["encounters"]["edges"]:
            encounters[encounter["node"]["id"]] = [o["node"]["id"] for o in encounter["node"]["observations"]["edges"]]
    return found


def test_a_restriction_hides_its_nested_rows_in_a_whole_selection_as_in_the_resolvers(gateway: Gateway) -> None:
    before = nested_ids(post(gateway, NESTED, "homecare-nurse").json())
    encounter, observations = next((e, o) for e, o in before[CITIZEN].items() if o)
    made = gateway.query(
        RESTRICT,
        "citizen",
        {"input": {"patientId": CITIZEN, "scope": "EPISODE", "reason": "not this stay", "targetId": encounter}},
    )
    restriction = made["data"]["createRestriction"]["id"]
    try:
        whole = post(gateway, NESTED, "homecare-nurse")
        resolved = post(
            gateway, NESTED.replace("patients(first: 100)", "patients(first: 100) @include(if: true)"), "homecare-nurse"
        )
        after = nested_ids(whole.json())
        assert sql_statements(whole) < sql_statements(resolved), "the whole-selection path must have been taken"
        assert after == nested_ids(resolved.json())
        assert encounter not in after[CITIZEN]
        shown = {o for encounters in after.values() for ids in encounters.values() for o in ids}
        assert not shown & set(observations)
        assert {e: o for e, o in after[CITIZEN].items()} == {e: o for e, o in before[CITIZEN].items() if e != encounter}
    finally:
        gateway.query(LIFT, "citizen", {"id": restriction})
    assert nested_ids(post(gateway, NESTED, "homecare-nurse").json()) == before


CHART = "query($id: ID!) { patient(id: $id) { " + FIELDS + " } }"
RESOLVED_CHART = CHART.replace("patient(id: $id) {", "patient(id: $id) @include(if: true) {", 1)
NODE_CHART = """query($id: ID!) { node(id: $id) { id __typename ... on Encounter { x: status }
  ...Chart ... on Observation { status } } }
fragment Chart on Patient { """ + FIELDS + " }"
RESOLVED_NODE_CHART = NODE_CHART.replace("node(id: $id) {", "node(id: $id) @include(if: true) {", 1)


def test_an_item_read_with_nested_lists_answers_as_the_resolvers_do_in_one_statement(gateway: Gateway) -> None:
    for persona in ("gp", "homecare-nurse", "health-secretary", "citizen"):
        for whole_query, resolved_query in ((CHART, RESOLVED_CHART), (NODE_CHART, RESOLVED_NODE_CHART)):
            whole = post(gateway, whole_query, persona, {"id": CITIZEN})
            resolved = post(gateway, resolved_query, persona, {"id": CITIZEN})
            assert "errors" not in whole.json(), whole.json()
            assert normalized(whole.json()) == normalized(resolved.json()), persona
            # the item, every list under it and the principal: one statement for the data, one audit insert
            assert request_statements(gateway, whole) <= 3 < request_statements(gateway, resolved), persona
            spans = gateway.spans(whole.headers["x-trace-id"])
            assert not [s for s in spans if s["name"] == "cerbos.CheckResources"], "decided by the plan, no PDP check"


def test_an_item_read_through_the_plan_is_audited_as_a_read_and_its_lists_as_searches(gateway: Gateway) -> None:
    response = post(gateway, CHART, "gp", {"id": CITIZEN})
    rows = gateway.fetch(
        "SELECT resource_kind, resource_ids, decision, action, reason FROM audit_event WHERE trace_id = $1",
        response.headers["x-trace-id"],
    )
    reads = [r for r in rows if r["action"] == "read"]
    assert [(r["resource_kind"], r["resource_ids"], r["decision"]) for r in reads] == [
        ("patient", [raw_id(CITIZEN)], "ALLOW")
    ]
    encounters = {raw_id(e["node"]["id"]) for e in response.json()["data"]["patient"]["encounters"]["edges"]}
    searched = {
        i for r in rows if (r["resource_kind"], r["action"]) == ("encounter", "search") for i in r["resource_ids"]
    }
    assert encounters and encounters <= searched


def test_an_item_policy_hides_gets_the_pdps_exact_reason_and_one_denial_in_the_log(gateway: Gateway) -> None:
    for persona, reason in (("nurse-other-municipality", "NO_CARE_RELATION"),):
        whole = post(gateway, CHART, persona, {"id": CITIZEN}).json()
        resolved = post(gateway, RESOLVED_CHART, persona, {"id": CITIZEN}).json()
        assert whole["data"]["patient"] is None
        assert whole["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert whole["errors"][0]["extensions"]["reason"] == reason
        assert normalized(whole) == normalized(resolved)
    response = post(gateway, CHART, "nurse-other-municipality", {"id": CITIZEN})
    rows = gateway.fetch(
        "SELECT resource_kind, decision, action, reason FROM audit_event WHERE trace_id = $1",
        response.headers["x-trace-id"],
    )
    assert [tuple(r.values()) for r in rows] == [("patient", "DENY", "read", "NO_CARE_RELATION")], rows


def test_an_id_that_does_not_exist_looks_like_one_policy_hides_on_the_item_path(gateway: Gateway) -> None:
    missing = gid("Patient", "00000000-0000-4000-8000-000000000001")
    whole = post(gateway, CHART, "homecare-nurse", {"id": missing}).json()
    hidden = post(gateway, CHART, "nurse-other-municipality", {"id": CITIZEN}).json()
    assert whole["data"]["patient"] is None
    assert whole["errors"][0]["extensions"]["code"] == hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_list_attributes_asked_by_value_admit_exactly_the_rows_they_admit_asked_row_by_row(gateway: Gateway) -> None:
    kind = KINDS["Observation"]
    values = gateway.fetch(
        "SELECT (SELECT array_agg(DISTINCT organization_id::text) FROM care_relation) AS units, "
        "(SELECT array_agg(DISTINCT practitioner_id::text) FROM care_relation) AS practitioners"
    )[0]
    for name, candidates in (("care_unit_ids", values["units"]), ("care_practitioner_ids", values["practitioners"])):
        attribute = kind.attributes[name]
        assert isinstance(attribute, SetOf) and attribute.holders is not None
        row_by_row: dict[str, Attribute] = {name: replace(attribute, holders=None)}
        for candidate in candidates[:5]:
            condition = {"expression": {"operator": "in", "operands": [
                {"value": candidate}, {"variable": f"request.resource.attr.{name}"}]}}  # fmt: skip
            by_value = Translator({name: attribute}).where(condition)
            per_row = Translator(row_by_row).where(condition)
            assert by_value.render()[0] != per_row.render()[0]
            checksum = sql("coalesce(sum(hashtext(", ident(kind.alias, "id"), "::text)), 0) AS h")
            statement = sql("SELECT count(*) AS n, ", checksum, " FROM ", kind.table_sql, " WHERE ")
            assert gateway.fetch(sql(statement, by_value))[0] == gateway.fetch(sql(statement, per_row))[0], candidate
