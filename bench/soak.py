"""Soak: mixed reads and writes at a steady concurrency for a long time, then the audit chain verified.

One gateway (`akson serve --demo`, one worker, its own Cerbos PDP) on a freshly seeded journal. From this
process, `--concurrency` clients loop over a mix as apps send it: a GP's patient list and a patient's
chart, a home-care nurse's vital signs across her patients, a measurement she records (a write with its
audit rows in one transaction), and the home-care integration reading the change feed. Every minute it
prints requests per second, errors by code, and the gateway's memory (RSS); after `--warmup` minutes
memory should stay within 10% of where it was then. Then `akson audit verify` walks the whole chain.

Prints `SOAK rps=... errors=... memory_growth=...% verify=intact|BROKEN` as its last line.

The clients speak HTTP/1.1 over asyncio streams, one keep-alive connection each: at concurrency 64 on two
cores, httpx's client took more CPU than the gateway it measured (75 requests per second, client-bound).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.scratch import ROOT, Gateway, scratch_journal
from gateway.personas import FJORDVIK_HOMECARE

WORK = Path(__file__).resolve().parent / ".work" / "soak"
LIST = "{ patients(first: 20) { edges { node { id name { text } birthDate } } } }"
CHART = """query($id: ID!) { patient(id: $id) { id name { text }
  conditions(first: 5) { edges { node { code { display } clinicalStatus } } }
  encounters(first: 3) { edges { node { period { start } observations(first: 5) {
    edges { node { code { code } valueQuantity { value unit } } } } } } } } }"""
VITALS = """{ observations(first: 20, filter: {category: VITAL_SIGNS}) {
  edges { node { effectiveDateTime code { code } valueQuantity { value } } } } }"""
RECORD = """mutation($input: ObservationInput!) { createObservation(input: $input) { id } }"""
FEED = """query($after: String) { changes(first: 50, after: $after) {
  pageInfo { endCursor } edges { node { kind action } } } }"""


def gid(type_name: str, raw: object) -> str:
    import base64

    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


async def homecare_patients(database_url: str) -> list[uuid.UUID]:
    """Patients in home care's active care, without restrictions: those a nurse may record for."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT p.id FROM patient p WHERE EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id "
            "AND c.organization_id = $1 AND c.period_end IS NULL) "
            "AND NOT EXISTS (SELECT 1 FROM restriction r WHERE r.patient_id = p.id) ORDER BY p.id LIMIT 200",
            FJORDVIK_HOMECARE,
        )
        return [r["id"] for r in rows]
    finally:
        await conn.close()


class Connection:
    """One keep-alive HTTP/1.1 connection to the gateway, for JSON POSTs to /graphql."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, token: str) -> tuple[int, Any]:
        """The status and the parsed JSON body; reconnects when the gateway closed the connection."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            self.writer.close()
            raise ConnectionResetError("the gateway closed the connection")
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        payload = orjson.loads(await self.reader.readexactly(length))
        if close:
            self.writer.close()
        return int(status_line.split()[1]), payload


class Load:
    """The clients' shared tallies for the current minute."""

    def __init__(self, gateway: Gateway, patients: list[uuid.UUID]) -> None:
        self.gateway = gateway
        self.patients = patients
        self.tokens: dict[str, str] = {}
        self.requests = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.feed_cursor: str | None = None
        self.renew_tokens()

    def renew_tokens(self) -> None:
        self.tokens = {p: self.gateway.token(p) for p in ("gp", "homecare-nurse", "homecare-integration")}

    def operation(self, rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
        roll = rng.random()
        patient = gid("Patient", rng.choice(self.patients))
        if roll < 0.25:
            return "gp", LIST, None
        if roll < 0.55:
            return "homecare-nurse", CHART, {"id": patient}
        if roll < 0.75:
            return "homecare-nurse", VITALS, None
        if roll < 0.95:
            measurement = {
                "patientId": patient,
                "code": {"system": "http://loinc.org", "code": "8867-4"},
                "valueQuantity": {"value": rng.randint(50, 110)},
                "effectiveDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            return "homecare-nurse", RECORD, {"input": measurement}
        return "homecare-integration", FEED, {"after": self.feed_cursor}

    async def client(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        connection = Connection("127.0.0.1", self.gateway.port)
        while time.monotonic() < until:
            persona, query, variables = self.operation(rng)
            try:
                status, body = await connection.post(
                    orjson.dumps({"query": query, "variables": variables}), self.tokens[persona]
                )
            except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
                self.errors[type(exc).__name__] += 1
                connection.writer = None
                continue
            self.requests += 1
            if status != 200 or body.get("errors"):
                codes = {e.get("extensions", {}).get("code", "?") for e in body.get("errors") or [{}]}
                for code in codes:
                    self.errors[f"{status} {code}"] += 1
            elif query is FEED:
                self.feed_cursor = body["data"]["changes"]["pageInfo"]["endCursor"] or self.feed_cursor


async def soak(
    gateway: Gateway, patients: list[uuid.UUID], minutes: int, concurrency: int, warmup: int
) -> dict[str, Any]:
    load = Load(gateway, patients)
    memory: list[float] = []
    totals = {"requests": 0, "errors": 0}
    started = time.monotonic()
    until = started + minutes * 60
    clients = [asyncio.create_task(load.client(n, until)) for n in range(concurrency)]
    print("minute  req/s   errors  gateway RSS MB  errors by code", flush=True)
    for minute in range(1, minutes + 1):
        await asyncio.sleep(max(0.0, started + minute * 60 - time.monotonic()))
        requests, errors = load.requests, dict(load.errors)
        load.requests, load.errors = 0, collections.Counter()
        load.renew_tokens()
        rss = gateway.rss_mb()
        memory.append(rss)
        totals["requests"] += requests
        totals["errors"] += sum(errors.values())
        print(
            f"{minute:>6}  {requests / 60:>6.0f}  {sum(errors.values()):>6}  {rss:>14.1f}  {errors or '-'}",
            flush=True,
        )
    await asyncio.gather(*clients)
    settled = memory[min(warmup, len(memory)) - 1]
    growth = (max(memory[warmup - 1 :]) / settled - 1) * 100 if len(memory) >= warmup else 0.0
    return {"rps": totals["requests"] / (minutes * 60), "errors": totals["errors"], "growth": growth, "memory": memory}


def verify(database_url: str) -> tuple[bool, str, float]:
    """`akson audit verify` on the soaked journal: whether the chain is intact, its words, and seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify"],
        env={**os.environ, "DATABASE_URL": database_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip(), time.monotonic() - started


async def audit_rows(database_url: str) -> tuple[int, int]:
    """Rows in the audit log and its size on disk in bytes (every month's partition, indexes included)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM audit_event) AS n, "
            "(SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'audit_event'::regclass) AS bytes"
        )
        return int(row["n"]), int(row["bytes"])
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3, help="minutes before memory must stay flat")
    parser.add_argument("--patients", type=int, default=1000)
    args = parser.parse_args()
    with scratch_journal(WORK, args.patients, "akson_soak") as url:
        patients = asyncio.run(homecare_patients(url))
        rows_before, _ = asyncio.run(audit_rows(url))
        gateway = Gateway(url, WORK / "gateway")
        try:
            print(
                f"soak: {args.minutes} min at concurrency {args.concurrency}, {args.patients} patients, "
                f"gateway pid {gateway.process.pid}",
                flush=True,
            )
            result = asyncio.run(soak(gateway, patients, args.minutes, args.concurrency, args.warmup))
        finally:
            gateway.stop()
        rows, size = asyncio.run(audit_rows(url))
        requests = result["rps"] * args.minutes * 60
        written = rows - rows_before
        print(
            f"audit log: {written} rows written ({written / max(requests, 1):.1f} per request), "
            f"{size / 2**20:.0f} MiB in all"
        )
        intact, words, seconds = verify(url)
        print(f"akson audit verify ({seconds:.1f}s): {words}")
        print(
            f"SOAK rps={result['rps']:.0f} errors={result['errors']} "
            f"memory_growth={result['growth']:.1f}% verify={'intact' if intact else 'BROKEN'}"
        )


if __name__ == "__main__":
    main()
