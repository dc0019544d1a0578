"""GraphQL subscriptions over graphql-transport-ws, with real clients: the `gql` library's websockets transport as
an app uses it, and a hand-driven websocket where the close codes matter. Each change is authorized for each
subscriber when it is delivered and audited as a read; a connection whose token expires, whose app is suspended
or whose consumer stops reading is closed with a code that says so."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from gateway.personas import PERSONAS
from tests.conftest import Gateway, gid, run
from tests.live_clients import (
    DECIDE,
    approved_app,
    deliver_report,
    end_care,
    head_cursor,
    own_patient,
    raw_socket,
    receive,
    record_heart_rate,
    send,
    subscribed,
)

REPORTS = """subscription($after: String, $kinds: [ResourceKind!], $patient: ID) {
  changes(after: $after, kinds: $kinds, patientId: $patient) {
    cursor kind action version committedAt node { id ... on DiagnosticReport { conclusion } } } }"""
GP_ID = str(PERSONAS["gp"].entity_id)


async def closed(socket_: Any, within: float = 15) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server closes the connection: its close code and reason, and what came before."""
    before: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while True:
                before.append(await receive(socket_, within))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "the server dropped the connection without a close frame"
        return exc.rcvd.code, exc.rcvd.reason, before
    raise AssertionError("unreachable")


def test_a_gp_subscription_gets_a_delivered_report_within_a_second_and_a_stranger_gets_nothing(
    gateway: Gateway,
) -> None:
    patient, other = own_patient(gateway, homecare=True), own_patient(gateway)
    variables = {"kinds": ["DIAGNOSTIC_REPORT"], "after": head_cursor(gateway)}

    async def scenario() -> None:
        async with (
            subscribed(gateway, gateway.token("gp"), REPORTS, variables) as gp,
            subscribed(gateway, gateway.token("nurse-other-municipality"), REPORTS, variables) as stranger,
        ):
            report = await asyncio.to_thread(deliver_report, gateway, patient.national_id, "Hb 13.9")
            delivered = await gp.next(within=1.0)
            assert delivered is not None, "the GP's subscription got nothing within a second of the delivery"
            change = delivered["changes"]
            assert (change["kind"], change["action"], change["version"]) == ("DIAGNOSTIC_REPORT", "CREATED", 1)
            assert change["node"] == {"id": report, "conclusion": "Hb 13.9"}

            await asyncio.to_thread(end_care, gateway, patient, "gp")
            hidden = await asyncio.to_thread(
                deliver_report,
                gateway,
                patient.national_id,
                "for home care, after the GP's relation ended",
                "homecare-nurse",
            )
            visible = await asyncio.to_thread(deliver_report, gateway, other.national_id, "another patient")
            following = await gp.next(within=5)
            assert following is not None and following["changes"]["node"]["id"] == visible
            assert hidden != visible and gp.empty()
            assert await stranger.next(within=0.5) is None

    run(scenario())
    audited = gateway.fetch(
        "SELECT resource_ids FROM audit_event WHERE action = 'subscription' AND actor_id = $1 AND patient_id = $2",
        GP_ID,
        patient.id,
    )
    assert len(audited) == 1 and len(audited[0]["resource_ids"]) == 1


def test_a_new_restriction_stops_delivery_from_the_next_change(gateway: Gateway) -> None:
    patient = own_patient(gateway)
    variables = {"patient": patient.gid, "kinds": ["DIAGNOSTIC_REPORT"], "after": head_cursor(gateway)}

    async def scenario() -> None:
        async with subscribed(gateway, gateway.token("gp"), REPORTS, variables) as gp:
            first = await asyncio.to_thread(deliver_report, gateway, patient.national_id)
            got = await gp.next(within=5)
            assert got is not None and got["changes"]["node"]["id"] == first
            made = await asyncio.to_thread(
                gateway.query,
                """mutation($input: RestrictionInput!) { createRestriction(input: $input) { id } }""",
                "health-secretary",
                {
                    "input": {
                        "patientId": patient.gid,
                        "scope": "PERSON",
                        "reason": "the patient asked",
                        "practitionerId": gid("Practitioner", GP_ID),
                    }
                },
            )
            assert "errors" not in made, made
            await asyncio.to_thread(deliver_report, gateway, patient.national_id)
            assert await gp.next(within=2) is None

    run(scenario())


def test_a_subscriber_back_after_downtime_catches_up_on_each_change_once_in_order(gateway: Gateway) -> None:
    patient = own_patient(gateway, homecare=True)
    query = """subscription($after: String, $patient: ID) { changes(after: $after, patientId: $patient,
      kinds: [OBSERVATION]) { cursor node { id } } }"""

    start = head_cursor(gateway)

    async def scenario() -> None:
        token = gateway.token("homecare-nurse")
        async with subscribed(gateway, token, query, {"patient": patient.gid, "after": start}) as live:
            first = await asyncio.to_thread(record_heart_rate, gateway, patient.gid)
            got = await live.next(within=5)
            assert got is not None and got["changes"]["node"]["id"] == first
            cursor = got["changes"]["cursor"]
        missed = [await asyncio.to_thread(record_heart_rate, gateway, patient.gid, value=v) for v in (60, 61, 62)]
        async with subscribed(gateway, token, query, {"patient": patient.gid, "after": cursor}) as back:
            caught = [await back.next(within=5) for _ in missed]
            assert [c["changes"]["node"]["id"] if c else None for c in caught] == missed
            assert await back.next(within=0.5) is None

    run(scenario())


def test_a_subscription_in_one_gateway_process_hears_of_writes_through_another(
    gateway: Gateway, second_gateway: Gateway
) -> None:
    patient = own_patient(gateway, homecare=True)
    variables = {"patient": patient.gid, "after": head_cursor(gateway)}

    async def scenario() -> None:
        query = (
            "subscription($after: String, $patient: ID) { changes(after: $after, patientId: $patient) { node { id } } }"
        )
        async with subscribed(second_gateway, second_gateway.token("homecare-nurse"), query, variables) as live:
            written = await asyncio.to_thread(record_heart_rate, gateway, patient.gid)
            got = await live.next(within=3)
            assert got is not None and got["changes"]["node"]["id"] == written

    run(scenario())


def test_an_expiring_token_closes_the_connection_with_4401(gateway: Gateway) -> None:
    # Valid now thanks to the 30 s clock skew allowance, expired in about 4 s.
    token = gateway.token("gp", exp=int(time.time()) - 26)

    async def scenario() -> None:
        ws = await raw_socket(gateway, {"Authorization": f"Bearer {token}"})
        assert (await receive(ws))["type"] == "connection_ack"
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": "subscription { changes { cursor } }"}})
        code, reason, _ = await closed(ws, within=15)
        assert code == 4401 and "expired" in reason

    run(scenario())


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({}, "Authorization"),
        ({"Authorization": "Bearer not-a-token"}, "bearer token rejected"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer"),
    ],
)
def test_connection_init_without_a_valid_token_is_refused_with_4403(
    gateway: Gateway, payload: dict[str, str], says: str
) -> None:
    async def scenario() -> None:
        ws = await raw_socket(gateway, payload)
        code, reason, before = await closed(ws)
        assert (code, before) == (4403, []) and says in reason

    run(scenario())


def test_queries_and_mutations_go_over_http_not_the_socket(gateway: Gateway) -> None:
    async def scenario() -> None:
        ws = await raw_socket(gateway, {"Authorization": f"Bearer {gateway.token('gp')}"})
        assert (await receive(ws))["type"] == "connection_ack"
        await send(
            ws, {"id": "q", "type": "subscribe", "payload": {"query": "{ patients(first: 1) { edges { cursor } } }"}}
        )
        answer = await receive(ws)
        assert answer["type"] == "error" and answer["id"] == "q"
        assert answer["payload"][0]["extensions"] == {"code": "BAD_REQUEST"}
        await send(
            ws, {"id": "s", "type": "subscribe", "payload": {"query": "subscription { changes(first: 1) { cursor } }"}}
        )
        invalid = await receive(ws)
        assert invalid["type"] == "error" and invalid["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        await ws.close()

    run(scenario())


def test_a_suspended_app_gets_no_further_change_and_its_connection_closed_with_4403(gateway: Gateway) -> None:
    client = approved_app(gateway, ["user/DiagnosticReport.rs"])
    token = gateway.token("gp", client_id=client, scope="user/DiagnosticReport.rs")
    patient = own_patient(gateway)
    variables = {"p": patient.gid, "a": head_cursor(gateway)}

    async def scenario() -> None:
        ws = await raw_socket(gateway, {"Authorization": f"Bearer {token}"})
        assert (await receive(ws))["type"] == "connection_ack"
        query = "subscription($p: ID, $a: String) { changes(patientId: $p, after: $a) { node { id } } }"
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
        first = await asyncio.to_thread(deliver_report, gateway, patient.national_id)
        assert (await receive(ws))["payload"]["data"]["changes"]["node"]["id"] == first
        suspended = await asyncio.to_thread(gateway.query, DECIDE % "suspendApp", "policy-admin", {"c": client})
        assert "errors" not in suspended, suspended
        await asyncio.to_thread(deliver_report, gateway, patient.national_id)
        code, reason, before = await closed(ws)
        assert (code, before) == (4403, []) and "suspended" in reason

    run(scenario())


FLOOD = """subscription { changes(after: "WyJ2MSIsImNoYW5nZSIsMF0", kinds: [PATIENT, OBSERVATION]) { cursor node { id
  ... on Patient { name { text } observations(first: 100) { edges { node { id code { system code display } } } } }
  ... on Observation { patient { observations(first: 100) { edges { node { id code { system code display } } } } } }
} } }"""


def test_a_consumer_that_stops_reading_is_closed_with_4420_and_costs_bounded_memory(gateway: Gateway) -> None:
    """A subscriber replays the feed with a heavy selection but reads nothing: once a window (1 MiB) is unread,
    the gateway pings and waits the send timeout (2 s in tests) for the pong, then closes with 4420. The client,
    reading again, gets what was sent before and the close: a bounded part of what it asked for."""
    changes = gateway.fetch("SELECT count(*) AS n FROM change_event WHERE resource_kind IN ('patient', 'observation')")

    async def scenario() -> None:
        tiny = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tiny.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = gateway.base_url.removeprefix("http://").split(":")
        tiny.connect((host, int(port)))
        ws = await raw_socket(gateway, {"Authorization": f"Bearer {gateway.token('gp')}"}, sock=tiny, max_queue=1)
        assert (await receive(ws))["type"] == "connection_ack"
        await send(ws, {"id": "flood", "type": "subscribe", "payload": {"query": FLOOD}})
        ws.transport.pause_reading()
        await asyncio.sleep(4)
        ws.transport.resume_reading()
        code, reason, before = await closed(ws, within=30)
        assert code == 4420 and "too slow" in reason
        data = [m for m in before if m["type"] == "next"]
        pings = [m for m in before if m["type"] == "ping"]
        assert len(pings) == 1 and 0 < len(data) < int(changes[0]["n"]) // 10
        assert sum(len(orjson.dumps(m)) for m in data) < 2 * 1_048_576

    run(scenario())
    assert "consumer read nothing" in gateway.log_path.read_text(errors="replace")


def test_subscription_arguments_are_checked_like_the_feed(gateway: Gateway) -> None:
    async def scenario() -> None:
        ws = await raw_socket(gateway, {"Authorization": f"Bearer {gateway.token('gp')}"})
        assert (await receive(ws))["type"] == "connection_ack"
        query = f'subscription {{ changes(patientId: "{gid("Observation", uuid.uuid4())}") {{ cursor }} }}'
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": query}})
        answer = await receive(ws)
        assert answer["type"] == "next" and answer["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        await ws.close()

    run(scenario())
