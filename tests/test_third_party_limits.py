"""Third-party apps within limits: trusted documents where they are required, budgets of requests and cost
set at approval and held across gateway processes (429 with Retry-After and RateLimit headers), emergency
access never refused for rate, deadlines that cancel the statement in PostgreSQL and are audited, and one
app's slow queries that leave another's answered."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.personas import CITIZEN_PATIENT_ID
from tests.conftest import PROJECT, Gateway, gid, run, start_replica, stop_gateway

OBSERVATIONS = "query Observations { observations(first: 5) { totalCount edges { node { id } } } }"
APPS = "query Apps { apps(first: 1) { clientId } }"
EMERGENCY = """mutation Emergency($patientId: ID!) { requestEmergencyAccess(patientId: $patientId,
  reason: "bevisstløs ved ankomst", lifeOrHealthAtRisk: true) { id } }"""
REGISTER = """mutation($c: String!, $d: [String!]!) {
  registerTrustedDocuments(clientId: $c, documents: $d) { documentId operationNames } }"""
APPROVE = """mutation($c: String!, $limits: AppLimitsInput) {
  approveApp(clientId: $c, reason: "DPIA ok", limits: $limits) {
    status requestsPerMinute maxCostPerRequest costPerMinute } }"""
DEADLINE_SECONDS = 3


def document_id(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def strict(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A replica that requires trusted documents from third-party apps and answers within 3 s."""
    started = start_replica(
        gateway,
        tmp_path_factory.mktemp("strict"),
        {"AKSON_TRUSTED_DOCUMENTS": "required", "AKSON_REQUEST_DEADLINE_SECONDS": str(DEADLINE_SECONDS)},
    )
    try:
        yield started
    finally:
        stop_gateway(started)


def third_party_app(gateway: Gateway, limits: dict[str, int] | None = None, documents: tuple[str, ...] = ()) -> str:
    """A user-facing app the GP registered (with its trusted `documents`) and a policy admin approved (with
    `limits`)."""
    client = f"vendor-{uuid.uuid4().hex[:8]}"
    registered = gateway.query(
        """mutation($input: RegisterAppInput!) {
          registerApp(input: $input) { clientId trustedDocuments { documentId } } }""",
        "gp",
        {
            "input": {
                "clientId": client,
                "name": "Vendor planner",
                "vendorOrgNumber": "912345678",
                "kind": "USER_FACING",
                "redirectUris": ["https://vendor.example.invalid/cb"],
                "scopes": ["openid", "fhirUser", "user/*.crus"],
                "trustedDocuments": list(documents),
            }
        },
    )
    assert "errors" not in registered, registered
    shown = registered["data"]["registerApp"]["trustedDocuments"]
    assert sorted(d["documentId"] for d in shown) == sorted(document_id(d) for d in documents)
    approved = gateway.query(APPROVE, "policy-admin", {"c": client, "limits": limits})
    assert approved["data"]["approveApp"]["status"] == "APPROVED", approved
    return client


def call(gateway: Gateway, client: str, body: dict[str, Any], persona: str = "health-secretary") -> httpx.Response:
    """A request of `persona` through the app `client`. The health secretary, who can hold no emergency grant
    (and so is never exempt from budgets), unless the test says otherwise."""
    headers = {"Authorization": f"Bearer {gateway.token(persona, client_id=client)}"}
    return httpx.post(f"{gateway.base_url}/graphql", json=body, headers=headers, timeout=30)


def code_of(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


def test_approval_sets_an_apps_budgets_and_they_are_shown_on_the_app(gateway: Gateway) -> None:
    client = third_party_app(gateway, {"requestsPerMinute": 30, "maxCostPerRequest": 500})
    shown = gateway.query(
        "query($c: String!) { app(clientId: $c) { requestsPerMinute maxCostPerRequest costPerMinute } }",
        "policy-admin",
        {"c": client},
    )
    assert shown["data"]["app"] == {"requestsPerMinute": 30, "maxCostPerRequest": 500, "costPerMinute": None}
    refused = gateway.query(APPROVE, "policy-admin", {"c": third_party_app(gateway), "limits": {"costPerMinute": 0}})
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_where_trusted_documents_are_required_a_third_party_app_runs_only_what_it_registered(
    gateway: Gateway, strict: Gateway
) -> None:
    client = third_party_app(gateway)
    text = call(strict, client, {"query": APPS})
    assert text.status_code == 400 and code_of(text) == "TRUSTED_DOCUMENT_REQUIRED"
    unknown = call(strict, client, {"documentId": document_id(APPS)})
    assert unknown.status_code == 400 and code_of(unknown) == "TRUSTED_DOCUMENT_NOT_FOUND"
    apollo = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_id(APPS)[7:]}}}
    assert code_of(call(strict, client, apollo)) == "PERSISTED_QUERY_NOT_FOUND"

    outsider = strict.query(REGISTER, "homecare-nurse", {"c": client, "d": [APPS]})
    assert outsider["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    added = gateway.query(REGISTER, "gp", {"c": client, "d": [APPS]})["data"]["registerTrustedDocuments"]
    assert added == [{"documentId": document_id(APPS), "operationNames": ["Apps"]}]

    for body in ({"documentId": document_id(APPS)}, apollo):
        answer = call(strict, client, body)
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
    by_get = httpx.get(
        f"{strict.base_url}/graphql",
        params={"documentId": document_id(APPS)},
        headers={"Authorization": f"Bearer {strict.token('gp', client_id=client)}"},
    )
    assert by_get.status_code == 200 and "apps" in by_get.json()["data"]
    other = third_party_app(gateway)
    assert code_of(call(strict, other, {"documentId": document_id(APPS)})) == "TRUSTED_DOCUMENT_NOT_FOUND"
    apollo_retry = {"query": APPS, **apollo}
    assert code_of(call(strict, other, apollo_retry)) == "PERSISTED_QUERY_NOT_FOUND", "registered text only"
    assert call(gateway, other, apollo_retry).status_code == 200, "Apollo's retry with the text runs where text may"
    mismatch = {"query": OBSERVATIONS, **apollo}
    assert code_of(call(gateway, other, mismatch)) == "BAD_REQUEST"
    assert "errors" not in strict.query(APPS, "gp"), "the demo app (GraphiQL's) may still send text"
    service = strict.post(APPS, persona="lab-service").json()
    assert all(e["extensions"]["code"] != "TRUSTED_DOCUMENT_REQUIRED" for e in service.get("errors", [])), (
        "in demo mode every persona may send text, GraphiQL's way"
    )
    assert call(gateway, client, {"query": APPS}).status_code == 200, "where they are optional, text runs"


def test_over_its_rate_an_app_gets_429_with_retry_after_across_two_gateway_processes(
    gateway: Gateway, strict: Gateway
) -> None:
    client = third_party_app(gateway, {"requestsPerMinute": 6}, documents=(APPS,))
    answers = [call(g, client, {"documentId": document_id(APPS)}) for g in [gateway, strict] * 4]
    assert [a.status_code for a in answers] == [200] * 6 + [429] * 2
    remaining = [int(a.headers["ratelimit"].split("r=")[1].split(";")[0]) for a in answers[:6]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    refused = answers[-1]
    assert code_of(refused) == "RATE_LIMITED" and "data" not in refused.json()
    assert 1 <= int(refused.headers["retry-after"]) <= 120, "a sliding window is whole again within two"
    assert '"app";q=6;w=60' in refused.headers["ratelimit-policy"]


def test_emergency_access_is_never_refused_for_rate_nor_are_reads_under_the_grant(
    gateway: Gateway, strict: Gateway
) -> None:
    client = third_party_app(gateway, {"requestsPerMinute": 1}, documents=(APPS, EMERGENCY))
    apps = {"documentId": document_id(APPS)}
    assert call(strict, client, apps, persona="gp").status_code == 200
    assert call(strict, client, apps, persona="gp").status_code == 429
    patient = gid("Patient", CITIZEN_PATIENT_ID)
    body = {"documentId": document_id(EMERGENCY), "variables": {"patientId": patient}}
    try:
        emergency = call(strict, client, body, persona="gp")
        assert emergency.status_code == 200 and "errors" not in emergency.json(), emergency.text
        under_grant = call(strict, client, apps, persona="gp")
        assert under_grant.status_code == 200, under_grant.text
    finally:
        strict.fetch(
            "UPDATE emergency_grant SET expires_at = granted_at + interval '1 millisecond' WHERE reason = $1",
            "bevisstløs ved ankomst",
        )
    assert call(strict, client, apps, persona="gp").status_code == 429, "without the grant the budget holds again"


def test_an_operation_over_the_apps_cost_limit_is_refused_before_any_sql_with_its_cost(gateway: Gateway) -> None:
    client = third_party_app(gateway, {"maxCostPerRequest": 100})
    cheap = call(gateway, client, {"query": OBSERVATIONS, "extensions": {"cost": True}}, persona="gp")
    assert cheap.status_code == 200 and cheap.json()["extensions"]["cost"] == {"requested": 21, "limit": 100}
    big = "{ observations(first: 50) { edges { node { id code { code } } } } }"
    refused = call(gateway, client, {"query": big}, persona="gp")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"] == {"code": "COST_LIMIT_EXCEEDED", "cost": 251, "limit": 100}
    trace_id = refused.headers["x-trace-id"]
    assert gateway.fetch("SELECT count(*) AS n FROM audit_event WHERE trace_id = $1", trace_id)[0]["n"] == 0
    assert gateway.fetch("SELECT count(*) AS n FROM audit_event WHERE trace_id = $1", cheap.headers["x-trace-id"])[0][
        "n"
    ]


def test_an_apps_cost_per_minute_runs_out_with_429_and_retry_after(gateway: Gateway) -> None:
    client = third_party_app(gateway, {"maxCostPerRequest": 25, "costPerMinute": 50})
    first = call(gateway, client, {"query": OBSERVATIONS})
    second = call(gateway, client, {"query": OBSERVATIONS})
    assert first.status_code == 200 and second.status_code == 200, second.headers
    spent = call(gateway, client, {"query": OBSERVATIONS})
    assert spent.status_code == 429 and code_of(spent) == "COST_LIMIT_EXCEEDED", [
        (r.headers.get("ratelimit"), r.headers.get("ratelimit-policy")) for r in (first, second, spent)
    ]
    assert spent.json()["errors"][0]["extensions"]["limit"] == 50 and int(spent.headers["retry-after"]) >= 1


@contextlib.asynccontextmanager
async def observations_locked(gateway: Gateway) -> AsyncIterator[asyncpg.Connection]:
    """The observation table locked by another session, so that every statement reading it waits."""
    conn = await asyncpg.connect(gateway.database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE observation IN ACCESS EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def gateway_statements_waiting(conn: asyncpg.Connection) -> int:
    found: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'akson-gateway' AND wait_event_type = 'Lock'"
    )
    return found


async def until(check: Any, within: float) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "the condition did not come true in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def test_a_request_past_its_deadline_is_504_its_statement_cancelled_and_the_timeout_audited(strict: Gateway) -> None:
    async def scenario() -> httpx.Response:
        async with observations_locked(strict) as conn:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    f"{strict.base_url}/graphql",
                    json={"query": OBSERVATIONS},
                    headers={"Authorization": f"Bearer {strict.token('gp')}"},
                )
            await until(lambda: _none_waiting(conn), 2)
            return response

    response = run(scenario())
    assert response.status_code == 504 and code_of(response) == "DEADLINE_EXCEEDED"
    assert "data" not in response.json()
    audited = strict.fetch(
        "SELECT decision, reason FROM audit_event WHERE trace_id = $1 AND resource_kind = 'request'",
        response.headers["x-trace-id"],
    )
    assert [(r["decision"], r["reason"]) for r in audited] == [("DENY", "DEADLINE_EXCEEDED")]


async def _none_waiting(conn: asyncpg.Connection) -> bool:
    return await gateway_statements_waiting(conn) == 0


def test_a_client_that_goes_away_cancels_its_statement_before_the_deadline(strict: Gateway) -> None:
    async def scenario() -> float:
        async with observations_locked(strict) as conn, httpx.AsyncClient(timeout=30) as client:
            request = asyncio.ensure_future(
                client.post(
                    f"{strict.base_url}/graphql",
                    json={"query": OBSERVATIONS},
                    headers={"Authorization": f"Bearer {strict.token('gp')}"},
                )
            )
            await until(lambda: _some_waiting(conn), 2)
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            return await until(lambda: _none_waiting(conn), DEADLINE_SECONDS)

    assert run(scenario()) < DEADLINE_SECONDS - 1, "cancelled when the client left, not at the deadline"


async def _some_waiting(conn: asyncpg.Connection) -> bool:
    return await gateway_statements_waiting(conn) > 0


def test_one_apps_blocked_queries_leave_another_apps_cheap_query_answered(gateway: Gateway, strict: Gateway) -> None:
    greedy = third_party_app(gateway, documents=(OBSERVATIONS,))
    finished: list[tuple[str, float, int]] = []

    def timed(name: str, gateway_: Gateway, client: str, body: dict[str, Any], persona: str = "gp") -> None:
        response = call(gateway_, client, body, persona)
        finished.append((name, time.monotonic(), response.status_code))

    async def scenario() -> None:
        async with observations_locked(strict):
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(8) as pool:
                blocked = [
                    loop.run_in_executor(
                        pool, timed, "greedy", strict, greedy, {"documentId": document_id(OBSERVATIONS)}
                    )
                    for _ in range(6)
                ]
                await asyncio.sleep(0.5)
                await loop.run_in_executor(
                    pool, timed, "other", strict, "akson-demo-app", {"query": APPS}, "homecare-nurse"
                )
                assert [name for name, _, _ in finished] == ["other"], finished
            await asyncio.gather(*blocked)

    run(scenario())
    assert finished[0][0] == "other" and finished[0][2] == 200
    assert len(finished) == 7


def test_with_redis_url_set_the_budgets_are_counted_in_redis(
    gateway: Gateway, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = third_party_app(gateway, {"requestsPerMinute": 2})
    counted_in_redis = start_replica(gateway, tmp_path_factory.mktemp("redis"), {"REDIS_URL": redis_url})
    try:
        answers = [call(counted_in_redis, client, {"query": APPS}) for _ in range(3)]
        on_postgres = call(gateway, client, {"query": APPS})
    finally:
        stop_gateway(counted_in_redis)
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert code_of(answers[-1]) == "RATE_LIMITED" and int(answers[-1].headers["retry-after"]) >= 1
    assert on_postgres.status_code == 200, "the PostgreSQL counters never saw those requests"


def test_akson_app_documents_registers_graphql_files_and_manifests_through_the_api(
    gateway: Gateway, tmp_path: Path
) -> None:
    client = third_party_app(gateway)
    (tmp_path / "apps.graphql").write_text(APPS)
    (tmp_path / "manifest.json").write_text(json.dumps({document_id(OBSERVATIONS): OBSERVATIONS}))
    apollo = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": document_id(EMERGENCY)[7:], "name": "Emergency", "type": "mutation", "body": EMERGENCY}],
    }
    (tmp_path / "apollo.json").write_text(json.dumps(apollo))
    (tmp_path / "wrong.json").write_text(json.dumps({document_id(APPS): OBSERVATIONS}))

    def documents(*files: str, persona: str = "gp") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "app",
                "documents",
                client,
                *[str(tmp_path / f) for f in files],
                "--gateway",
                gateway.base_url,
            ],
            env={**os.environ, "AKSON_TOKEN": gateway.token(persona)},
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
        )

    registered = documents("apps.graphql", "manifest.json", "apollo.json")
    assert registered.returncode == 0, registered.stderr
    assert sorted(registered.stdout.split()) == sorted(
        [document_id(APPS), "Apps", document_id(OBSERVATIONS), "Observations", document_id(EMERGENCY), "Emergency"]
    )
    wrong = documents("wrong.json")
    assert wrong.returncode == 2 and "not the SHA-256" in wrong.stderr
    outsider = documents("apps.graphql", persona="homecare-nurse")
    assert outsider.returncode == 1 and "FORBIDDEN" in outsider.stderr
