"""Webhooks for backend services, with a real HTTP receiver that checks every message with the `standardwebhooks`
library: thin signed messages for the changes the endpoint's app may read, re-authorized when sent and audited;
retries with backoff, then dead letters and a disabled endpoint that says why; one delivery worker however many
gateway processes run."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.components import free_port
from gateway.webhook_worker import message, next_delay
from gateway.webhooks import DestinationRefused, check_addresses
from tests.conftest import Gateway, gid, raw_id
from tests.live_clients import end_care, own_patient, record_heart_rate

SERVICE = "homecare-integration"
CREATE = """mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) {
  secret endpoint { id url kinds status patientId unitId } } }"""
DISABLE = 'mutation($id: ID!) { disableWebhookEndpoint(id: $id, reason: "test over") { status statusReason } }'
ROTATE = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { previousSecretValidUntil } } }"
DELIVERIES = """query($id: ID!) { webhookDeliveries(endpointId: $id, first: 50) { totalCount edges { node {
  id kind resourceId action version cursor status statusReason attempts lastStatusCode lastLatencyMs deliveredAt
  attemptLog { attempt attemptedAt statusCode error latencyMs } } } } }"""
ENDPOINT_STATUS = "{ webhookEndpoints { id status statusReason } }"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_with: list[str]

    @property
    def data(self) -> dict[str, Any]:
        payload: dict[str, Any] = orjson.loads(self.body)
        return payload


@dataclass
class Receiver:
    """A webhook receiver on this machine: checks each message against the secrets it knows, answers with the
    next scripted status (204 when the script is empty), and may hold a request until released."""

    port: int = field(default_factory=free_port)
    secrets: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    always: int = 204
    hold: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        verified = []
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        with self.arrived:
            self.received.append(Received(headers, body, verified))
            self.arrived.notify_all()
            status = self.script.pop(0) if self.script else self.always
        if self.hold is not None:
            self.hold.wait(10)
            self.hold = None
        return status if verified else 401

    def wait(self, count: int, timeout: float = 10) -> list[Received]:
        """At least `count` requests, or what came within `timeout` seconds."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    spec = Receiver()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = spec.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", spec.port), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield spec
    finally:
        if spec.hold is not None:
            spec.hold.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoints(gateway: Gateway) -> Iterator[Callable[..., dict[str, Any]]]:
    """Registers endpoints for a test and disables them after it."""
    made: list[tuple[str, str]] = []

    def create(receiver: Receiver, persona: str = SERVICE, **fields: Any) -> dict[str, Any]:
        answer = gateway.query(CREATE, persona, {"input": {"url": receiver.url, "kinds": ["OBSERVATION"], **fields}})
        assert "errors" not in answer, answer
        created: dict[str, Any] = answer["data"]["createWebhookEndpoint"]
        receiver.secrets.append(created["secret"])
        made.append((persona, created["endpoint"]["id"]))
        return created

    yield create
    for persona, endpoint in made:
        gateway.query(DISABLE, persona, {"id": endpoint})


def deliveries(gateway: Gateway, endpoint: str, persona: str = SERVICE) -> list[dict[str, Any]]:
    answer = gateway.query(DELIVERIES, persona, {"id": endpoint})
    assert "errors" not in answer, answer
    return [edge["node"] for edge in answer["data"]["webhookDeliveries"]["edges"]]


def wait_until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_an_app_registers_an_endpoint_and_its_secret_is_shown_once(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    created = endpoints(receiver, description="results to the visit planner")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["endpoint"]["status"] == "ACTIVE" and created["endpoint"]["kinds"] == ["OBSERVATION"]
    fields = gateway.query('{ __type(name: "WebhookEndpoint") { fields { name } } }', SERVICE)
    assert "secret" not in {f["name"] for f in fields["data"]["__type"]["fields"]}
    listed = gateway.query(ENDPOINT_STATUS, SERVICE)["data"]["webhookEndpoints"]
    assert created["endpoint"]["id"] in {e["id"] for e in listed}
    endpoint = raw_id(created["endpoint"]["id"])
    assert [e["action"] for e in gateway.fetch("SELECT action FROM change_event WHERE resource_id = $1", endpoint)] == [
        "created"
    ]
    audited = gateway.fetch(
        "SELECT decision FROM audit_event WHERE resource_kind = 'webhook_endpoint' AND action = 'create' "
        "AND $1 = ANY(resource_ids)",
        endpoint,
    )
    assert [a["decision"] for a in audited] == ["ALLOW"]


@pytest.mark.parametrize(
    ("fields", "argument", "says"),
    [
        ({"url": "http://10.1.2.3/hook"}, "url", "not a public address"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url", "not a public address"),
        ({"url": "https://[::ffff:192.168.1.10]/hook"}, "url", "not a public address"),
        ({"url": "http://93.184.215.14/hook"}, "url", "https"),
        ({"url": "https://user:secret@93.184.215.14/hook"}, "url", "credentials"),
        ({"url": "ftp://93.184.215.14/hook"}, "url", "https"),
        ({"url": "https://no-such-host.invalid/hook"}, "url", "does not resolve"),
        ({"kinds": ["DIAGNOSTIC_REPORT"]}, "kinds", "DiagnosticReport"),
        ({"kinds": []}, "kinds", "at least one"),
    ],
)
def test_endpoints_the_gateway_will_not_send_to_are_refused_with_the_reason(
    gateway: Gateway, fields: dict[str, Any], argument: str, says: str
) -> None:
    answer = gateway.query(
        CREATE, SERVICE, {"input": {"url": "http://127.0.0.1:9/hook", "kinds": ["OBSERVATION"], **fields}}
    )
    assert answer["data"] is None
    error = answer["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument} and says in error["message"]


def test_only_backend_services_register_endpoints_and_only_for_their_own_app(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    personnel = gateway.query(CREATE, "gp", {"input": {"url": receiver.url, "kinds": ["OBSERVATION"]}})
    assert personnel["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mine = endpoints(receiver)["endpoint"]["id"]
    other = gateway.query(DISABLE, "lab-service", {"id": mine})
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert other["errors"][0]["extensions"]["reason"] == "NOT_OWN_APP"
    missing = gateway.query(DISABLE, "lab-service", {"id": gid("WebhookEndpoint", uuid.uuid4())})
    assert missing["errors"][0]["extensions"] == other["errors"][0]["extensions"]
    assert mine not in {e["id"] for e in gateway.query(ENDPOINT_STATUS, "lab-service")["data"]["webhookEndpoints"]}
    assert deliveries(gateway, mine, "lab-service") == []
    assert mine in {e["id"] for e in gateway.query(ENDPOINT_STATUS, "policy-admin")["data"]["webhookEndpoints"]}


def test_a_change_the_app_may_read_arrives_signed_thin_audited_and_is_fetched_through_the_api(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    patient = own_patient(gateway, homecare=True)
    endpoint = endpoints(receiver, patientId=patient.gid)["endpoint"]["id"]
    observation = record_heart_rate(gateway, patient.gid, value=93)
    [got] = receiver.wait(1)
    assert got.verified_with == receiver.secrets
    assert got.headers["webhook-id"].startswith("msg_") and got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
    assert set(got.data) == {"type", "timestamp", "data"} and got.data["type"] == "Observation.created"
    assert set(got.data["data"]) == {"kind", "id", "action", "version", "cursor", "committedAt"}
    assert got.data["data"] | {"cursor": None, "committedAt": None} == {
        "kind": "OBSERVATION",
        "id": observation,
        "action": "CREATED",
        "version": 1,
        "cursor": None,
        "committedAt": None,
    }
    assert patient.national_id.encode() not in got.body and 93 not in got.data["data"].values()
    fetched = gateway.query(
        "query($id: ID!) { node(id: $id) { ... on Observation { valueQuantity { value } } } }",
        SERVICE,
        {"id": observation},
    )
    assert fetched["data"]["node"]["valueQuantity"]["value"] == 93
    [sent] = wait_until(lambda: [d for d in deliveries(gateway, endpoint) if d["status"] == "DELIVERED"])
    assert sent["id"] == got.headers["webhook-id"] and sent["resourceId"] == observation and sent["attempts"] == 1
    assert sent["attemptLog"][0]["statusCode"] == 204 and sent["lastLatencyMs"] >= 0 and sent["deliveredAt"]
    audited = gateway.fetch(
        "SELECT actor_id, decision FROM audit_event WHERE action = 'webhook' AND $1 = ANY(resource_ids)",
        raw_id(observation),
    )
    assert [(a["actor_id"], a["decision"]) for a in audited] == [("fjordvik-homecare-integration", "ALLOW")]


def test_changes_outside_the_app_s_access_or_the_endpoint_s_filter_are_never_sent(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    from gateway.personas import FJORDVIK_HOMECARE

    endpoints(receiver, unitId=gid("Organization", FJORDVIK_HOMECARE))
    outsider = own_patient(gateway)  # in the GP office's care only: home care's service may not read it
    insider = own_patient(gateway, homecare=True)
    hidden = record_heart_rate(gateway, outsider.gid, persona="gp")
    shown = record_heart_rate(gateway, insider.gid)
    got = receiver.wait(1)
    time.sleep(1)
    assert [r.data["data"]["id"] for r in receiver.received] == [shown]
    assert hidden not in {r.data["data"]["id"] for r in got}


def test_a_failing_endpoint_is_retried_with_backoff_then_dead_lettered_and_disabled_with_the_reason(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    receiver.always = 500
    patient = own_patient(gateway, homecare=True)
    endpoint = endpoints(receiver, patientId=patient.gid)["endpoint"]["id"]
    record_heart_rate(gateway, patient.gid)
    [dead] = wait_until(lambda: [d for d in deliveries(gateway, endpoint) if d["status"] == "DEAD"], timeout=20)
    assert dead["attempts"] >= 3 and dead["attempts"] == len(receiver.received)
    assert {r.headers["webhook-id"] for r in receiver.received} == {dead["id"]}
    times = [datetime.fromisoformat(a["attemptedAt"]) for a in dead["attemptLog"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.1 for gap in gaps) and gaps[-1] >= gaps[0]
    assert dead["statusReason"].startswith("retries exhausted") and "HTTP 500" in dead["statusReason"]
    [state] = [e for e in gateway.query(ENDPOINT_STATUS, SERVICE)["data"]["webhookEndpoints"] if e["id"] == endpoint]
    assert state["status"] == "DISABLED" and "HTTP 500" in state["statusReason"]


def test_a_change_the_app_may_no_longer_read_when_it_is_retried_is_withheld_with_the_reason(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    receiver.script = [500]
    receiver.hold = threading.Event()
    patient = own_patient(gateway, homecare=True)
    endpoint = endpoints(receiver, patientId=patient.gid)["endpoint"]["id"]
    observation = record_heart_rate(gateway, patient.gid)
    receiver.wait(1)
    end_care(gateway, patient, "homecare")
    receiver.hold.set()
    [withheld] = wait_until(lambda: [d for d in deliveries(gateway, endpoint) if d["status"] == "WITHHELD"])
    assert withheld["resourceId"] == observation and withheld["statusReason"] == "NO_CARE_RELATION"
    assert withheld["attempts"] == 1 and len(receiver.received) == 1
    decisions = gateway.fetch(
        "SELECT decision, reason FROM audit_event WHERE action = 'webhook' AND $1 = ANY(resource_ids) ORDER BY id",
        raw_id(observation),
    )
    assert [(d["decision"], d["reason"]) for d in decisions][-1] == ("DENY", "NO_CARE_RELATION")


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    patient = own_patient(gateway, homecare=True)
    created = endpoints(receiver, patientId=patient.gid)
    rotated = gateway.query(ROTATE, SERVICE, {"id": created["endpoint"]["id"]})
    assert "errors" not in rotated, rotated
    new = rotated["data"]["rotateWebhookSecret"]["secret"]
    assert new != created["secret"] and rotated["data"]["rotateWebhookSecret"]["endpoint"]["previousSecretValidUntil"]
    receiver.secrets.append(new)
    record_heart_rate(gateway, patient.gid)
    [got] = receiver.wait(1)
    assert got.verified_with == [created["secret"], new]
    assert len(got.headers["webhook-signature"].split(" ")) == 2


def test_two_gateway_processes_deliver_each_change_once_through_one_worker(
    gateway: Gateway, second_gateway: Gateway, receiver: Receiver, endpoints: Callable[..., dict[str, Any]]
) -> None:
    patient = own_patient(gateway, homecare=True)
    endpoints(receiver, patientId=patient.gid)
    written = [record_heart_rate(g, patient.gid, value=60 + i) for i, g in enumerate([gateway, second_gateway] * 5)]
    got = receiver.wait(len(written))
    time.sleep(1.5)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == len(written)
    assert sorted(r.data["data"]["id"] for r in receiver.received) == sorted(written) and len(got) == len(written)
    logs = [g.log_path.read_text(errors="replace") for g in (gateway, second_gateway)]
    assert sum("this process delivers webhooks" in log for log in logs) == 1


def test_retry_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    import random

    rng = random.Random(7)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (30, 3600)]:
        delays = [next_delay(attempt, 5, 3600, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling and max(delays) - min(delays) > ceiling / 10


@pytest.mark.parametrize(
    ("url", "addresses", "allowed", "refused"),
    [
        ("https://hooks.example", ["93.184.215.14"], [], False),
        ("https://hooks.example", ["93.184.215.14", "10.0.0.5"], [], True),
        ("https://hooks.example", ["::1"], [], True),
        ("https://hooks.example", ["fd00::1"], [], True),
        ("https://hooks.example", ["::ffff:127.0.0.1"], [], True),
        ("https://hooks.example", ["224.0.0.1"], [], True),
        ("http://localhost:9000", ["127.0.0.1"], ["127.0.0.0/8"], False),
        ("http://hooks.example", ["93.184.215.14"], [], True),
        ("https://hooks.example", [], [], True),
    ],
)
def test_destinations_are_public_addresses_unless_their_network_is_allowed(
    url: str, addresses: list[str], allowed: list[str], refused: bool
) -> None:
    if refused:
        with pytest.raises(DestinationRefused):
            check_addresses(url, addresses, allowed)
    else:
        check_addresses(url, addresses, allowed)


def test_a_message_names_the_change_and_nothing_of_its_content() -> None:
    row = {
        "resource_kind": "observation",
        "resource_id": "0f0e7a31-0000-4000-8000-000000000001",
        "action": "entered-in-error",
        "version": 3,
        "seq": 42,
        "committed_at": datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
    }
    body = orjson.loads(message(row))
    assert body["type"] == "Observation.entered-in-error"
    assert body["data"] == {
        "kind": "OBSERVATION",
        "id": gid("Observation", row["resource_id"]),
        "action": "ENTERED_IN_ERROR",
        "version": 3,
        "cursor": body["data"]["cursor"],
        "committedAt": "2026-12-03T12:00:00+00:00",
    }
