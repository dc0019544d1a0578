"""Shared by the change feed, subscription and webhook tests: real clients of the live API, and the journal
events they wait for (a patient of their own, a laboratory report, a care relation that ends)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import ClientConnection, connect

from gateway.change_feed import encode_position
from gateway.national_id import synthetic_national_id
from gateway.personas import FJORDVIK_HOMECARE, PERSONAS
from tests.conftest import Gateway, gid, raw_id

PROTOCOL = "graphql-transport-ws"
REGISTER = """mutation($input: PatientInput!) { createPatient(input: $input) { id
  careRelations(first: 5) { edges { node { id version } } } } }"""
ADD_CARE = """mutation($input: CareRelationInput!) { createCareRelation(input: $input) { id version } }"""
END_CARE = """mutation($id: ID!, $v: Int!, $input: CareRelationPatch!) {
  updateCareRelation(id: $id, expectedVersion: $v, input: $input) { id version } }"""
DELIVER = """mutation($input: DiagnosticReportInput!) { createDiagnosticReport(input: $input) { id } }"""
HEART_RATE = """mutation($input: ObservationInput!) { createObservation(input: $input) { id } }"""


DECIDE = 'mutation($c: String!) { %s(clientId: $c, reason: "test") { status } }'


def approved_app(
    gateway: Gateway,
    scopes: list[str],
    redirect_uris: tuple[str, ...] = ("https://live.example.invalid/cb",),
    client: str | None = None,
) -> str:
    """A new user-facing app, registered by the GP and approved by a policy admin; returns its client id."""
    client = client or f"live-{uuid.uuid4().hex[:8]}"
    registered = gateway.query(
        """mutation($input: RegisterAppInput!) { registerApp(input: $input) { clientId } }""",
        "gp",
        {
            "input": {
                "clientId": client,
                "name": "Live test",
                "vendorOrgNumber": "912345678",
                "kind": "USER_FACING",
                "redirectUris": list(redirect_uris),
                "scopes": scopes,
            }
        },
    )
    assert "errors" not in registered, registered
    approved = gateway.query(DECIDE % "approveApp", "policy-admin", {"c": client})
    assert "errors" not in approved, approved
    return client


def ws_url(gateway: Gateway) -> str:
    return gateway.base_url.replace("http://", "ws://") + "/graphql"


def head_cursor(gateway: Gateway) -> str:
    """The change feed's cursor at its newest committed change: subscribing from it misses nothing after it."""
    return encode_position(int(gateway.fetch("SELECT last_seq FROM change_head")[0]["last_seq"]))


@dataclass
class OwnPatient:
    """A patient registered for one test, with its care relations by unit name."""

    id: uuid.UUID
    national_id: str
    care: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def gid(self) -> str:
        return gid("Patient", self.id)


def own_patient(gateway: Gateway, *, homecare: bool = False) -> OwnPatient:
    """A new adult patient of the GP office (and, if asked, of home care), so a test may end its care relations."""
    while True:
        born = date(1950, 1, 1) + timedelta(days=uuid.uuid4().int % (365 * 40))
        number = synthetic_national_id(born, individual=uuid.uuid4().int % 400)
        if not gateway.fetch("SELECT 1 FROM patient WHERE national_id = $1", number):
            break
    made = gateway.query(
        REGISTER,
        "health-secretary",
        {
            "input": {
                "nationalIdentityNumber": number,
                "name": {"family": "Hendelse", "given": ["Test"]},
                "gender": "FEMALE",
                "birthDate": born.isoformat(),
            }
        },
    )
    assert "errors" not in made, made
    patient = OwnPatient(uuid.UUID(raw_id(made["data"]["createPatient"]["id"])), number)
    relation = made["data"]["createPatient"]["careRelations"]["edges"][0]["node"]
    patient.care["gp"] = (relation["id"], relation["version"])
    if homecare:
        added = gateway.query(
            ADD_CARE,
            "gp",
            {
                "input": {
                    "patientId": patient.gid,
                    "organizationId": gid("Organization", FJORDVIK_HOMECARE),
                    "purpose": "hjemmesykepleie",
                    "period": {"start": "2026-01-01T00:00:00Z"},
                }
            },
        )
        assert "errors" not in added, added
        patient.care["homecare"] = (
            added["data"]["createCareRelation"]["id"],
            added["data"]["createCareRelation"]["version"],
        )
    return patient


def end_care(gateway: Gateway, patient: OwnPatient, unit: str) -> None:
    """End one of the patient's care relations now (the GP office's own ends by the GP's hand too)."""
    relation, version = patient.care[unit]
    ended = gateway.query(
        END_CARE,
        "gp",
        {
            "id": relation,
            "v": version,
            "input": {"period": {"start": "2026-01-01T00:00:00Z", "end": datetime.now(UTC).isoformat()}},
        },
    )
    assert "errors" not in ended, ended


def deliver_report(
    gateway: Gateway, national_id: str, conclusion: str = "Normal blodstatus", requester: str = "gp"
) -> str:
    """The hospital laboratory delivers a blood count requested by the GP (or another persona's unit); returns the
    report's id."""
    made = gateway.query(
        DELIVER,
        "lab-service",
        {
            "input": {
                "patientNationalIdentityNumber": national_id,
                "requesterId": gid("Practitioner", PERSONAS[requester].entity_id),
                "code": {"system": "http://loinc.org", "code": "58410-2"},
                "effectiveDateTime": "2026-12-02T07:45:00Z",
                "conclusion": conclusion,
                "results": [
                    {"code": {"system": "http://loinc.org", "code": "718-7"}, "valueQuantity": {"value": 13.9}}
                ],
            }
        },
    )
    assert "errors" not in made, made
    report: str = made["data"]["createDiagnosticReport"]["id"]
    return report


def record_heart_rate(gateway: Gateway, patient: str, persona: str = "homecare-nurse", value: float = 71) -> str:
    """A heart rate measured by home care; returns the observation's id."""
    made = gateway.query(
        HEART_RATE,
        persona,
        {
            "input": {
                "patientId": patient,
                "code": {"system": "http://loinc.org", "code": "8867-4"},
                "valueQuantity": {"value": value},
                "effectiveDateTime": datetime.now(UTC).isoformat(),
            }
        },
    )
    assert "errors" not in made, made
    observation: str = made["data"]["createObservation"]["id"]
    return observation


class Inbox:
    """What a subscription delivered, in order, for a test to wait on; a client that failed fails the test."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pump: asyncio.Task[None] | None = None

    def put(self, result: dict[str, Any]) -> None:
        self._queue.put_nowait(result)

    async def next(self, within: float) -> dict[str, Any] | None:
        """The next message, or None when none came within `within` seconds."""
        waiting = asyncio.ensure_future(self._queue.get())
        watched = [waiting] if self.pump is None else [waiting, self.pump]
        done, _ = await asyncio.wait(watched, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            return waiting.result()
        waiting.cancel()
        if self.pump is not None and self.pump in done and self.pump.exception() is not None:
            raise AssertionError("the subscription's client failed") from self.pump.exception()
        return None

    def empty(self) -> bool:
        return self._queue.empty()


@contextlib.asynccontextmanager
async def subscribed(
    gateway: Gateway, token: str, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[Inbox]:
    """A subscription through the `gql` client's websockets transport (graphql-transport-ws), as an app makes it."""
    transport = WebsocketsTransport(
        url=ws_url(gateway),
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    inbox = Inbox()
    async with Client(transport=transport) as session:

        async def pump() -> None:
            async for result in session.subscribe(GraphQLRequest(query, variable_values=variables)):
                inbox.put(result)

        inbox.pump = asyncio.create_task(pump())
        await asyncio.sleep(0.3)
        try:
            yield inbox
        finally:
            inbox.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inbox.pump


async def raw_socket(gateway: Gateway, init: dict[str, Any] | None, **options: Any) -> ClientConnection:
    """A websocket speaking graphql-transport-ws by hand, for what a client library hides (close codes);
    sends `connection_init` with `init` as its payload unless it is None."""
    socket = await connect(ws_url(gateway), subprotocols=[PROTOCOL], **options)  # type: ignore[list-item]
    if init is not None:
        await socket.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
    return socket


async def send(socket: ClientConnection, message: dict[str, Any]) -> None:
    await socket.send(orjson.dumps(message).decode())


async def receive(socket: ClientConnection, within: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(socket.recv(), within))
    return message
