"""GraphQL over HTTP as the GraphQL Foundation's specification has it: the graphql-http package's public
audit passes every item, media types are negotiated, request errors get 4xx where the client asked for
`application/graphql-response+json`, and the HTTP edge refuses what is too large with 413."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import PROJECT, Gateway

GRAPHQL_RESPONSE = "application/graphql-response+json"
CHEAP = "{ apps { clientId } }"


def post(gateway: Gateway, body: object, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Authorization": f"Bearer {gateway.token('gp')}", "Content-Type": "application/json", **headers}
    return httpx.post(f"{gateway.base_url}/graphql", content=content, headers=sent, timeout=30)


def test_the_graphql_http_audit_passes_every_must_should_and_may_item(
    gateway: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js runs the graphql-http audit"
    finished = subprocess.run(
        [node, str(PROJECT / "tests" / "js" / "graphql_http_audit.cjs"), f"{gateway.base_url}/graphql"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", "AKSON_AUDIT_TOKEN": gateway.token("gp")},
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    results = json.loads(finished.stdout)
    by_level: dict[str, list[int]] = {}
    for result in results:
        counts = by_level.setdefault(result["name"].split()[0], [0, 0])
        counts[0 if result["status"] == "ok" else 1] += 1
    with capsys.disabled():
        print(
            "\ngraphql-http audit:",
            ", ".join(f"{level} {ok}/{ok + bad}" for level, (ok, bad) in sorted(by_level.items())),
        )
    failed = [f"{r['id']} {r['name']}: {r['detail']}" for r in results if r["status"] != "ok"]
    assert len(results) >= 40
    assert failed == []


def test_request_errors_are_400_without_data_in_graphql_response_json_and_200_in_application_json(
    gateway: Gateway,
) -> None:
    for body in (
        {"query": "{ patients(fir"},
        {"query": "{ noSuchField }"},
        {"query": "query($n: Int!) { apps(first: $n) { clientId } }"},
    ):
        strict = post(gateway, body, Accept=GRAPHQL_RESPONSE)
        assert strict.status_code == 400 and strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        assert "data" not in strict.json() and strict.json()["errors"]
        legacy = post(gateway, body, Accept="application/json")
        assert legacy.status_code == 200 and legacy.headers["content-type"].startswith("application/json")
        assert "data" not in legacy.json() and legacy.json()["errors"]


def test_media_types_are_negotiated_and_every_answer_says_no_store(gateway: Gateway) -> None:
    preferred = post(gateway, {"query": CHEAP}, Accept=f"{GRAPHQL_RESPONSE}, application/json;q=0.9")
    assert preferred.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert post(gateway, {"query": CHEAP}, Accept="*/*").headers["content-type"].startswith("application/json")
    refused = post(gateway, {"query": CHEAP}, Accept="text/csv")
    assert refused.status_code == 406 and refused.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
    wrong_type = post(gateway, b"query=%7B%7D", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 415
    for answer in (preferred, refused, wrong_type):
        assert answer.headers["cache-control"] == "no-store"


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(gateway: Gateway) -> None:
    huge = orjson.dumps({"query": CHEAP, "variables": {"pad": "x" * 2_000_000}})
    declared = post(gateway, huge)
    assert declared.status_code == 413 and declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Any:
        for start in range(0, len(huge), 65_536):
            yield huge[start : start + 65_536]

    streamed = httpx.post(
        f"{gateway.base_url}/graphql",
        content=chunks(),
        headers={"Authorization": f"Bearer {gateway.token('gp')}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert streamed.status_code == 413


def test_variables_over_their_limit_are_413_and_within_it_run(gateway: Gateway) -> None:
    query = "query($pad: String!) { __type(name: $pad) { name } }"
    too_many = post(gateway, {"query": query, "variables": {"pad": "x" * 300_000}})
    assert too_many.status_code == 413 and "variables" in too_many.json()["errors"][0]["message"]
    fits = post(gateway, {"query": query, "variables": {"pad": "x" * 1_000}})
    assert fits.status_code == 200 and "errors" not in fits.json()


def test_a_batch_is_refused_clearly_and_runs_nothing(gateway: Gateway) -> None:
    answer = post(gateway, [{"query": CHEAP}, {"query": CHEAP}])
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "BATCH_NOT_SUPPORTED" and "own request" in error["message"]
