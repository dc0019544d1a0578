"""The static cost of an operation, computed from the served schema before execution."""

from __future__ import annotations

from graphql import parse

from gateway.config import load_settings
from gateway.cost import operation_cost
from gateway.graphql_http import GRAPHQL_RESPONSE, JSON, negotiate
from gateway.schema import build_schema

SCHEMA = build_schema(load_settings({"AKSON_DEMO": "1"}))._schema


def cost(query: str, variables: dict[str, object] | None = None, name: str | None = None) -> int:
    return operation_cost(SCHEMA, parse(query), name, variables, list_limit=100)


def test_lists_multiply_what_they_select_by_first_and_connections_count_their_edges_once() -> None:
    query = """{ patients(first: 20) { edges { node { name { text }
      observations(first: 10) { edges { node { code { code } } } } } } } }"""
    # 1 + 20 x (edges 1 + node 1 + name (1 + 1) + observations (1 + 10 x (1 + 1 + (1 + 1))))
    assert cost(query) == 1 + 20 * (1 + 1 + 2 + (1 + 10 * 4))


def test_first_comes_from_variables_their_defaults_and_the_arguments_default() -> None:
    query = "query($n: Int = 7) { apps(first: $n) { clientId } }"
    assert cost(query) == 1 + 7
    assert cost(query, {"n": 3}) == 1 + 3
    assert cost("{ apps { clientId } }") == 1 + 50, "apps takes 50 unless told"
    assert cost("query($n: Int) { apps(first: $n) { clientId } }", {"n": 10_000}) == 1 + 100, "capped at the limit"


def test_fragments_cost_as_if_expanded_and_only_the_chosen_operation_counts() -> None:
    query = """query A { ...Apps ...Apps } query B { __typename }
      fragment Apps on Query { apps(first: 2) { clientId name } }"""
    assert cost(query, name="A") == 2 * (1 + 2 * 2)
    assert cost(query, name="B") == 1


def test_the_response_media_type_is_negotiated_from_accept() -> None:
    assert negotiate(None) == JSON
    assert negotiate("*/*") == JSON
    assert negotiate(f"{GRAPHQL_RESPONSE}, application/json;q=0.9") == GRAPHQL_RESPONSE
    assert negotiate(f"application/json, {GRAPHQL_RESPONSE}") == JSON
    assert negotiate(f"{GRAPHQL_RESPONSE};q=0, application/json") == JSON


def test_a_person_has_a_budget_of_their_own_and_a_service_only_its_apps() -> None:
    from gateway.admission import budgets
    from gateway.auth import Principal

    person = Principal(kind="personnel", id="p1", client_id="vendor-x", roles=frozenset({"personnel"}))
    assert [(b.name, b.key, b.amount, b.limit) for b in budgets(person, 100, 10, 42, 1000)] == [
        ("app", "app:vendor-x", 1, 100),
        ("cost", "cost:vendor-x", 42, 1000),
        ("user", "user:personnel:p1", 1, 10),
    ]
    first_party = budgets(person, None, 10, 42, 1000)
    assert [b.name for b in first_party] == ["user"], "a first-party app has no budgets of its own"
    service = Principal(kind="service", id="lab", client_id="lab", roles=frozenset({"service"}))
    assert [b.name for b in budgets(service, 100, 10, 1, 1000)] == ["app", "cost"]
