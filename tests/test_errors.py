"""Bad input gets a clear, typed error: never a 500, a stack trace or SQL."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Gateway


def assert_no_internals(text: str) -> None:
    for leak in ("Traceback", "asyncpg", "SELECT", 'File "', "INTERNAL_SERVER_ERROR"):
        assert leak not in text


def test_a_body_that_is_not_json_is_a_bad_request(gateway: Gateway) -> None:
    response = httpx.post(
        f"{gateway.base_url}/graphql",
        content=b'{"query": "{ patients(fir',
        headers={"Authorization": f"Bearer {gateway.token('gp')}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert_no_internals(response.text)


def test_malformed_graphql_is_a_parse_error(gateway: Gateway) -> None:
    result = gateway.query("{ patients(fir", "gp")
    assert "data" not in result
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert_no_internals(str(result))


def test_an_unknown_field_is_a_validation_error(gateway: Gateway) -> None:
    result = gateway.query("{ patients(first: 1) { edges { node { socialSecret } } } }", "gp")
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "socialSecret" in result["errors"][0]["message"]


def test_a_missing_required_argument_is_a_validation_error(gateway: Gateway) -> None:
    result = gateway.query("{ patients { totalCount } }", "gp")
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_a_missing_variable_is_a_validation_error(gateway: Gateway) -> None:
    result = gateway.query("query($id: ID!) { patient(id: $id) { id } }", "gp", {})
    assert result["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (
            "{ " + " ".join(f"a{i}: patients(first: 1) {{ totalCount }}" for i in range(40)) + " }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ " + " ".join(["__typename"] * 2500) + " }", "GRAPHQL_PARSE_FAILED"),
    ],
    ids=["too-many-aliases", "too-many-tokens"],
)
def test_oversized_queries_are_refused_before_execution(gateway: Gateway, query: str, code: str) -> None:
    result = gateway.query(query, "gp")
    assert "data" not in result
    assert result["errors"][0]["extensions"]["code"] == code


def nested(levels: int) -> str:
    """Patients -> encounters -> patient, `levels` times over: 4 + 4 * levels fields deep."""
    return (
        "{ patients(first: 1) { edges { node { "
        + "encounters(first: 1) { edges { node { patient { " * levels
        + "id"
        + " } } } }" * levels
        + " } } } }"
    )


def test_a_query_deeper_than_the_limit_is_refused_and_one_within_it_runs(gateway: Gateway) -> None:
    within = gateway.query(nested(1), "gp")
    assert "errors" not in within and within["data"]["patients"]["edges"]
    too_deep = gateway.query(nested(2), "gp")
    assert "data" not in too_deep
    assert too_deep["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "depth" in too_deep["errors"][0]["message"]


def test_queries_run_with_get_and_mutations_are_refused_with_405_naming_post(gateway: Gateway) -> None:
    headers = {"Authorization": f"Bearer {gateway.token('gp')}", "Accept": "application/json"}
    query = httpx.get(
        f"{gateway.base_url}/graphql", params={"query": "{ patients(first: 1) { totalCount } }"}, headers=headers
    )
    assert query.status_code == 200 and query.json()["data"]["patients"]["totalCount"] > 0
    assert query.headers["cache-control"] == "no-store"
    mutation = httpx.get(
        f"{gateway.base_url}/graphql",
        params={"query": 'mutation { enteredInError(id: "x", reason: "y") { id } }'},
        headers=headers,
    )
    assert mutation.status_code == 405 and mutation.headers["allow"] == "POST"
    assert mutation.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


def test_health_reports_database_and_pdp_and_liveness_apart(gateway: Gateway) -> None:
    ready = {"status": "ok", "database": "ok", "cerbos": "ok"}
    assert httpx.get(f"{gateway.base_url}/healthz").json() == ready
    assert httpx.get(f"{gateway.base_url}/healthz/ready").json() == ready
    assert httpx.get(f"{gateway.base_url}/healthz/live").json() == {"status": "ok"}
