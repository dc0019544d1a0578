"""Cheap by construction: SQL statements and Cerbos calls per request grow with the query's depth and
the number of resource kinds, never with the number of rows."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import CITIZEN, Gateway, restricted_from, run

NESTED = """query Nested($patients: Int!) {
  patients(first: $patients) {
    edges { node { id name { text }
      encounters(first: 5) { edges { node { id class period { start }
        observations(first: 10) { edges { node { id code { code } valueQuantity { value unit } } } }
      } } }
    } }
  }
}"""


def cost(gateway: Gateway, patients: int, purpose: str) -> tuple[int, int, int, dict[str, Any]]:
    # Query plans are cached per principal; a purpose of use not used before gives a cold cache.
    token = gateway.token("gp", purpose_of_use=purpose)
    response = gateway.post(NESTED, token=token, variables={"patients": patients})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    spans = gateway.spans(response.headers["x-trace-id"])
    statements = [s["attributes"]["db.statement"] for s in spans if "db.statement" in s["attributes"]]
    app_checks = [s for s in statements if "FROM app WHERE client_id" in s]
    assert len(app_checks) <= 1, "the calling app's status is looked up at most once per request (and cached)"
    # admission's budgets are taken in leases: a request now and then takes a new one (`rate_take`)
    sql = [s for s in statements if s not in app_checks and "rate_take(" not in s]
    cerbos = [s for s in spans if s["name"].startswith("cerbos.")]
    assert int(response.headers["x-akson-sql-statements"]) == len(statements), "the header counts what the trace shows"
    assert int(response.headers["x-akson-cerbos-calls"]) == len(cerbos)
    observations = sum(
        len(e["node"]["observations"]["edges"])
        for p in body["data"]["patients"]["edges"]
        for e in p["node"]["encounters"]["edges"]
    )
    return len(sql), len(cerbos), observations, body


def test_a_nested_query_costs_the_same_statements_and_pdp_calls_for_5_and_50_patients(gateway: Gateway) -> None:
    small_sql, small_cerbos, small_rows, _ = cost(gateway, 5, "COC")
    large_sql, large_cerbos, large_rows, body = cost(gateway, 50, "ETREAT")
    assert len(body["data"]["patients"]["edges"]) == 50
    assert large_rows > 5 * small_rows > 0, "the larger query must really return many more rows"
    assert large_sql == small_sql
    assert large_cerbos == small_cerbos or min(large_cerbos, small_cerbos) == 0, "only a cached plan saves calls"
    # principal lookup + one statement per list level (patients, encounters, observations) + one audit insert,
    # besides the app-status lookup counted above
    assert large_sql <= 1 + 3 + 1
    # one query plan per resource kind listed, and per municipality with local rules (Fjordvik)
    assert large_cerbos <= 3 * 2


def test_requests_arriving_together_share_one_plan_call_per_plan(gateway: Gateway) -> None:
    query = "{ patients(first: 3) { edges { node { id encounters(first: 2) { edges { node { id } } } } } } }"

    def cerbos_calls(token: str, at_once: int) -> list[int]:
        async def many() -> list[int]:
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
                responses = await asyncio.gather(
                    *(
                        client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
                        for _ in range(at_once)
                    )
                )
            assert all(r.status_code == 200 and "errors" not in r.json() for r in responses)
            return [int(r.headers["x-akson-cerbos-calls"]) for r in responses]

        return run(many())

    # Principals no other test uses, so that their plans are not cached yet.
    alone = sum(cerbos_calls(gateway.token("nurse-other-municipality", purpose_of_use="ETREAT"), 1))
    together = cerbos_calls(gateway.token("nurse-other-municipality", purpose_of_use="COC"), 16)
    assert alone > 0, "a principal never seen before needs its plans"
    assert sum(together) == alone, together


# `@include` keeps the read on the resolver path, whose item reads ask the PDP (the whole-selection path
# decides them by query plan: tests/test_whole_reads.py).
PATIENT = "query($id: ID!) { patient(id: $id) @include(if: true) { id } }"


def read_patient(gateway: Gateway, token: str) -> tuple[dict[str, Any], int, str, str]:
    """The answer, its Cerbos calls, and the decision and reason its audit row records."""
    response = gateway.post(PATIENT, token=token, variables={"id": CITIZEN})
    assert response.status_code == 200, response.text
    rows = gateway.fetch(
        "SELECT decision, reason FROM audit_event WHERE trace_id = $1 AND resource_kind = 'patient'",
        response.headers["x-trace-id"],
    )
    assert len(rows) == 1, rows
    return response.json(), int(response.headers["x-akson-cerbos-calls"]), rows[0]["decision"], rows[0]["reason"]


def test_reading_the_same_resource_again_reuses_the_pdps_decision_until_its_input_changes(gateway: Gateway) -> None:
    # A principal no other test uses: a decision another test asked for within the last 5 s is rightly
    # reused, and would make this test depend on the order the suite runs in.
    token = gateway.token("homecare-nurse", purpose_of_use="ETREAT")
    read_patient(gateway, token)
    again, calls, decision, reason = read_patient(gateway, token)
    assert again["data"]["patient"]["id"] == CITIZEN
    assert calls == 0, "the same principal, resource attributes and policies: the PDP's answer is reused"
    assert (decision, reason) == ("ALLOW", "CARE_RELATION"), "the reused decision keeps the rule's reason"

    with restricted_from(gateway, "homecare-nurse", "I know her privately"):
        blocked, calls, decision, reason = read_patient(gateway, token)
        assert blocked["data"]["patient"] is None
        assert blocked["errors"][0]["extensions"]["reason"] == "PATIENT_RESTRICTION"
        assert (calls, decision, reason) == (1, "DENY", "PATIENT_RESTRICTION"), "changed attributes: asked again"
    lifted, _, decision, _ = read_patient(gateway, token)
    assert lifted["data"]["patient"]["id"] == CITIZEN and decision == "ALLOW"
