"""Live delivery: commit-to-subscriber latency with 1,000 open subscriptions, beside 10, and webhook throughput.

One gateway (`akson serve`, one worker, its own Cerbos PDP) on a freshly seeded journal. From this process:

1. Subscriptions. `--subscriptions` websockets (graphql-transport-ws), one subscription each, spread over
   personas as apps would hold them: a quarter GPs following every diagnostic report (policy lets each see
   its own patients' only), a quarter home-care nurses following observations, a quarter nurses of another
   municipality following everything (they may see none of it), a quarter GPs following one other patient.
   The laboratory then delivers `--reports` blood counts, one every `--interval` seconds, for patients of
   both the GP office and home care. Latency is the time from the commit (the change's `committedAt`, the
   database's clock on this machine) to the moment this process read the message, over every delivery to
   every subscriber. The same is measured with `--baseline` subscriptions, alternating, in the same run.
2. Webhooks. Ten endpoints of the home-care integration (the most one app may have) on a receiver in this
   process; home-care nurses record `--observations` measurements, 8 at a time. Throughput is deliveries
   accepted by the receiver per second, from the first commit to the last delivery; latency is commit to
   receipt.

Prints the medians, p99 and maxima, and `EVENTS subscription_p50_ms=... p99_ms=... webhook_per_s=...`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import statistics
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.scratch import Gateway, scratch_journal
from gateway.components import free_port
from gateway.personas import FJORDVIK_GP_OFFICE, FJORDVIK_HOMECARE, PERSONAS

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(__file__).resolve().parent / ".work" / "events"
DELIVER = """mutation($input: DiagnosticReportInput!) { createDiagnosticReport(input: $input) { id } }"""
RECORD = """mutation($input: ObservationInput!) { createObservation(input: $input) { id } }"""
ENDPOINT = """mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }"""
FOLLOW = """subscription($kinds: [ResourceKind!], $patient: ID) {
  changes(kinds: $kinds, patientId: $patient) { committedAt node { id } } }"""


def gid(type_name: str, raw: object) -> str:
    import base64

    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
        f"max {max(values):.1f} ms ({len(values)} deliveries)"
    )


class Subscriber:
    """One websocket with one subscription; notes the commit-to-receipt latency of every change it gets."""

    def __init__(self, socket: ClientConnection, latencies: list[float]) -> None:
        self.socket = socket
        self.latencies = latencies
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str, variables: dict[str, Any], latencies: list[float]) -> Subscriber:
        socket = await connect(url, subprotocols=["graphql-transport-ws"], max_size=2**22)  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await socket.send(orjson.dumps(init).decode())
        assert orjson.loads(await socket.recv())["type"] == "connection_ack"
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": FOLLOW, "variables": variables}}
        await socket.send(orjson.dumps(subscribe).decode())
        return cls(socket, latencies)

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.socket:
                received = time.time()
                message = orjson.loads(raw)
                if message["type"] == "ping":
                    await self.socket.send('{"type":"pong"}')
                elif message["type"] == "next" and "data" in message["payload"] and message["payload"]["data"]:
                    committed = datetime.fromisoformat(message["payload"]["data"]["changes"]["committedAt"])
                    self.latencies.append((received - committed.timestamp()) * 1000)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(Exception):
            await self.socket.close()


async def patients(database_url: str) -> tuple[list[str], list[uuid.UUID]]:
    """National ids of patients of both the GP office and home care, and other patients' ids."""
    conn = await asyncpg.connect(database_url)
    try:
        shared = await conn.fetch(
            "SELECT p.national_id FROM patient p WHERE p.birth_date < current_date - 30 * 365 "
            "AND EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id AND c.organization_id = $1 "
            "AND c.period_end IS NULL) AND EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id "
            "AND c.organization_id = $2 AND c.period_end IS NULL) "
            "AND NOT EXISTS (SELECT 1 FROM restriction r WHERE r.patient_id = p.id) ORDER BY p.id LIMIT 50",
            FJORDVIK_GP_OFFICE,
            FJORDVIK_HOMECARE,
        )
        others = await conn.fetch("SELECT id FROM patient ORDER BY id DESC LIMIT 300")
        return [r["national_id"] for r in shared], [r["id"] for r in others]
    finally:
        await conn.close()


def report(national_id: str) -> dict[str, Any]:
    return {
        "input": {
            "patientNationalIdentityNumber": national_id,
            "requesterId": gid("Practitioner", PERSONAS["gp"].entity_id),
            "code": {"system": "http://loinc.org", "code": "58410-2"},
            "effectiveDateTime": "2026-12-02T07:45:00Z",
            "conclusion": "Normal blodstatus",
            "results": [{"code": {"system": "http://loinc.org", "code": "718-7"}, "valueQuantity": {"value": 13.9}}],
        }
    }


async def subscription_round(
    gateway: Gateway, count: int, reports: int, interval: float, shared: list[str], others: list[uuid.UUID]
) -> tuple[list[float], float]:
    """Open `count` subscriptions, let the laboratory deliver, return every delivery's latency and the
    gateway's memory with the subscriptions open."""
    url = gateway.base.replace("http://", "ws://") + "/graphql"
    tokens = {p: gateway.token(p) for p in ("gp", "homecare-nurse", "nurse-other-municipality", "lab-service")}
    latencies: list[float] = []
    plans: list[tuple[str, dict[str, Any]]] = [
        ("gp", {"kinds": ["DIAGNOSTIC_REPORT"]}),
        ("homecare-nurse", {"kinds": ["OBSERVATION"]}),
        ("nurse-other-municipality", {}),
    ]
    subscribers: list[Subscriber] = []
    for i in range(count):
        persona, variables = plans[i % 4] if i % 4 < 3 else ("gp", {"patient": gid("Patient", others[i % len(others)])})
        subscribers.append(await Subscriber.open(url, tokens[persona], variables, latencies))
    await asyncio.sleep(1)
    memory = gateway.rss_mb()
    rng = random.Random(14)
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {tokens['lab-service']}"}) as lab:
        for _ in range(reports):
            answer = (
                await lab.post(
                    f"{gateway.base}/graphql", json={"query": DELIVER, "variables": report(rng.choice(shared))}
                )
            ).json()
            if answer.get("errors"):
                raise SystemExit(f"the laboratory's delivery was refused: {answer['errors'][0]['message']}")
            await asyncio.sleep(interval)
    await asyncio.sleep(2)
    for subscriber in subscribers:
        await subscriber.close()
    return latencies, memory


class Receiver:
    """A webhook receiver in this process, noting commit-to-receipt latency (signatures are the tests' job)."""

    def wait(self, count: int, seconds: float) -> None:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received_at) >= count, seconds)

    def __init__(self) -> None:
        self.port = free_port()
        self.latencies: list[float] = []
        self.received_at: list[float] = []
        arrived = threading.Condition()
        outer = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                now = time.time()
                committed = datetime.fromisoformat(orjson.loads(body)["data"]["committedAt"]).timestamp()
                with arrived:
                    outer.latencies.append((now - committed) * 1000)
                    outer.received_at.append(now)
                    arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.arrived = arrived
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def webhook_round(
    gateway: Gateway, observations: int, shared_ids: list[uuid.UUID]
) -> tuple[float, list[float], int]:
    receiver = Receiver()
    service = {"Authorization": f"Bearer {gateway.token('homecare-integration')}"}
    nurse = {"Authorization": f"Bearer {gateway.token('homecare-nurse')}"}
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(10):
            endpoint = {"url": f"http://127.0.0.1:{receiver.port}/hook/{i}", "kinds": ["OBSERVATION"]}
            answer = (
                await client.post(
                    f"{gateway.base}/graphql",
                    json={"query": ENDPOINT, "variables": {"input": endpoint}},
                    headers=service,
                )
            ).json()
            if answer.get("errors"):
                raise SystemExit(f"endpoint refused: {answer['errors'][0]['message']}")
        gate = asyncio.Semaphore(8)
        started = time.time()

        async def record(i: int) -> None:
            measurement = {
                "input": {
                    "patientId": gid("Patient", shared_ids[i % len(shared_ids)]),
                    "code": {"system": "http://loinc.org", "code": "8867-4"},
                    "valueQuantity": {"value": 60 + i % 40},
                    "effectiveDateTime": datetime.now().astimezone().isoformat(),
                }
            }
            async with gate:
                answer = (
                    await client.post(
                        f"{gateway.base}/graphql", json={"query": RECORD, "variables": measurement}, headers=nurse
                    )
                ).json()
                if answer.get("errors"):
                    raise SystemExit(f"measurement refused: {answer['errors'][0]['message']}")

        await asyncio.gather(*(record(i) for i in range(observations)))
        expected = observations * 10
        deadline = time.time() + 120
        await asyncio.to_thread(receiver.wait, expected, deadline - time.time())
    receiver.server.shutdown()
    elapsed = max(receiver.received_at) - started if receiver.received_at else float("inf")
    return len(receiver.received_at) / elapsed, receiver.latencies, len(receiver.received_at)


async def shared_patient_ids(database_url: str, national_ids: list[str]) -> list[uuid.UUID]:
    conn = await asyncpg.connect(database_url)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM patient WHERE national_id = ANY($1)", national_ids)]
    finally:
        await conn.close()


def measure(gateway: Gateway, url: str, args: argparse.Namespace) -> None:
    """Both measurements on one gateway, printed as they finish."""
    shared, others = asyncio.run(patients(url))
    print(f"machine: {os.cpu_count()} cores; {args.patients} patients; one gateway worker")
    many: list[float] = []
    few: list[float] = []
    memory: dict[int, float] = {}
    for i in range(args.rounds):
        for count, into in ((args.baseline, few), (args.subscriptions, many)):
            latencies, memory[count] = asyncio.run(
                subscription_round(gateway, count, args.reports, args.interval, shared, others)
            )
            into.extend(latencies)
            opened = f"{count} subscriptions open ({memory[count]:.0f} MB gateway RSS)"
            print(f"round {i + 1}: {opened}: {summary(latencies)}")
    print(f"{args.baseline} subscriptions: {summary(few)}")
    print(f"{args.subscriptions} subscriptions: {summary(many)}")
    ratio = statistics.median(many) / statistics.median(few) if few and many else float("nan")
    per_subscription = (
        (memory[args.subscriptions] - memory[args.baseline]) * 1024 / (args.subscriptions - args.baseline)
    )
    print(
        f"median ratio {args.subscriptions}/{args.baseline}: {ratio:.2f}; "
        f"about {per_subscription:.0f} kB of gateway memory per open subscription"
    )
    ids = asyncio.run(shared_patient_ids(url, shared))
    throughput, hook_latencies, delivered = asyncio.run(webhook_round(gateway, args.observations, ids))
    print(f"webhooks: {delivered} deliveries to 10 endpoints, {throughput:.0f} per second; {summary(hook_latencies)}")
    print(
        f"EVENTS subscriptions={args.subscriptions} subscription_p50_ms={statistics.median(many):.1f} "
        f"subscription_p99_ms={percentile(many, 0.99):.1f} baseline_p50_ms={statistics.median(few):.1f} "
        f"webhook_per_s={throughput:.0f} webhook_p50_ms={statistics.median(hook_latencies):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=10)
    parser.add_argument("--reports", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--observations", type=int, default=200)
    args = parser.parse_args()
    # Every subscription is a socket here and one in the gateway (which inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.subscriptions + 1024)), hard))
    with scratch_journal(WORK, args.patients, "akson_events") as url:
        gateway = Gateway(url, WORK / "gateway", {"AKSON_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"})
        try:
            measure(gateway, url, args)
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
