"""What the audit log costs: the same nested query against two gateways on the same journal, one writing
audit records (as always) and one with audit switched off for this measurement only, measured in
alternating rounds in one run. Target: at most 15% less throughput with audit on.

The query is the nested read of issue 7's Q2 (50 patients x 5 encounters x 10 observations) as the
home-care nurse. Load comes from asyncio + httpx in this process (a separate process from the gateways).
Prints each round, the medians and `AUDIT_OVERHEAD throughput_ratio=... overhead=...%`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.scratch import LOAD_GENERATOR, scratch_journal
from gateway import demo_issuer
from gateway.components import free_port
from gateway.config import load_settings
from gateway.personas import PERSONAS

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(__file__).resolve().parent / ".work"
QUERY = """{ patients(first: 50) { edges { node { id encounters(first: 5) { edges { node { id
  observations(first: 10) { edges { node { id code { code } valueQuantity { value unit } effectiveDateTime } } }
} } } } } } }"""


def start(database_url: str, name: str, audit: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    data = WORK / name
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AKSON_DATA_DIR": str(data),
        "AKSON_PROJECT_DIR": str(ROOT),
        "OTEL_TRACES_EXPORTER": "none",
        **LOAD_GENERATOR,
    }
    env.pop("CERBOS_URL", None)
    if not audit:
        env["AKSON_BENCHMARK_WITHOUT_AUDIT"] = "1"
    data.mkdir(parents=True, exist_ok=True)
    log = (data / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gateway {name} did not start; see {data / 'gateway.log'}")


async def round_trip(base: str, token: str, seconds: float, concurrency: int) -> float:
    """Requests per second of the query over `seconds`, with `concurrency` clients."""
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.post(f"{base}/graphql", json={"query": QUERY})
                if response.status_code != 200 or "errors" in response.json():
                    raise SystemExit(f"bad response: {response.text[:300]}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    with scratch_journal(WORK, args.patients, "akson_bench") as url:
        try:
            on, on_base = start(url, "audit-on", audit=True)
            off, off_base = start(url, "audit-off", audit=False)
            processes += [on, off]
            settings = load_settings({"AKSON_DATA_DIR": str(WORK / "audit-on"), "AKSON_PROJECT_DIR": str(ROOT)})
            token_on = demo_issuer.sign(
                demo_issuer.persona_claims(
                    PERSONAS["homecare-nurse"], issuer=settings.issuer, audience=settings.audience
                ),
                demo_issuer.load_or_create_key(settings.demo_key_path),
            )
            settings_off = load_settings({"AKSON_DATA_DIR": str(WORK / "audit-off"), "AKSON_PROJECT_DIR": str(ROOT)})
            token_off = demo_issuer.sign(
                demo_issuer.persona_claims(
                    PERSONAS["homecare-nurse"], issuer=settings_off.issuer, audience=settings_off.audience
                ),
                demo_issuer.load_or_create_key(settings_off.demo_key_path),
            )
            print(
                f"machine: {os.cpu_count()} cores; {args.patients} patients; concurrency {args.concurrency}; "
                f"{args.rounds} alternating rounds of {args.seconds:.0f} s each"
            )
            asyncio.run(round_trip(on_base, token_on, 2, args.concurrency))
            asyncio.run(round_trip(off_base, token_off, 2, args.concurrency))
            with_audit, without = [], []
            for i in range(args.rounds):
                with_audit.append(asyncio.run(round_trip(on_base, token_on, args.seconds, args.concurrency)))
                without.append(asyncio.run(round_trip(off_base, token_off, args.seconds, args.concurrency)))
                print(f"round {i + 1}: audit on {with_audit[-1]:.1f} req/s, audit off {without[-1]:.1f} req/s")
            ratio = statistics.median(with_audit) / statistics.median(without)
            medians = f"audit on {statistics.median(with_audit):.1f} req/s, off {statistics.median(without):.1f} req/s"
            print(f"median: {medians}")
            print(f"AUDIT_OVERHEAD throughput_ratio={ratio:.3f} overhead={(1 - ratio) * 100:.1f}% (target <= 15%)")
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
