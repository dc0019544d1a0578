"""Cheap by construction: SQL statements and Cerbos calls per request grow with the query's depth and
the number of resource kinds, never with the number of rows."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Gateway, run

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
    sql = [s for s in statements if s not in app_checks]
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
