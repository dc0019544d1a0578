"""`make bench-scale`: Q2 and Q3 latency at 10,000,000 observations against 1,000,000, the gateway alone.

Seeds database `akson_bench_10m` once (10,000 patients as `make bench` has them, 10,000,000 observations;
the seeding time is printed and kept in bench/.work/ for later runs), uses `make bench`'s journal of
1,000,000, starts one gateway on each with the same settings, and drives Q2 and Q3 at concurrency 1 and 8
with wrk, the two gateways taking turns round by round. Prints `SCALE` lines with the ratio of the
medians of p50 latency (10M / 1M; the target is at most 1.5) and writes bench/SCALE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    CODE,
    GATEWAY_QUERIES,
    OBSERVATIONS,
    WORK,
    WORKERS,
    Measurement,
    Server,
    database,
    ensure_wrk,
    measure,
    prepare,
    settle,
    start_gateway,
)
from gateway.db import with_database  # noqa: E402

LARGE = 10_000_000
QUERIES = ("Q2", "Q3")
LEVELS = (1, 8)
GOAL = 1.5

def seed_note(observations: int) -> Path:
    """Where the time a journal of `observations` took to seed is kept for later runs."""
    return WORK / f"seeding-{observations}.json"


def seeded(url: str, observations: int) -> str:
    """Seed the journal if needed; the time it took, now or when it was seeded."""
    started = time.monotonic()
    outcome = asyncio.run(prepare(url, observations))
    if outcome.startswith("seeded"):
        seconds = time.monotonic() - started
        seed_note(observations).write_text(json.dumps({"seconds": seconds, "outcome": outcome}))
        return f"{outcome}; with VACUUM (ANALYZE) {seconds / 60:.1f} min"
    if seed_note(observations).exists():
        note = json.loads(seed_note(observations).read_text())
        return f"{outcome}; seeded earlier in {note['seconds'] / 60:.1f} min ({note['outcome']})"
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    ensure_wrk()
    WORK.mkdir(parents=True, exist_ok=True)
    small_url, stop = database("akson_bench")
    large_url = with_database(small_url, "akson_bench_10m")
    servers: dict[str, Server] = {}
    try:
        seeding = [f"1M: {seeded(small_url, OBSERVATIONS)}", f"10M: {seeded(large_url, LARGE)}"]
        print("\n".join(seeding), flush=True)
        servers = {
            "1M": start_gateway("gateway-1m", small_url, True, WORKERS),
            "10M": start_gateway("gateway-10m", large_url, True, WORKERS),
        }
        variables = {"Q2": {}, "Q3": {"code": CODE}}
        for server in servers.values():
            for query in QUERIES:
                body = {"query": GATEWAY_QUERIES[query], "variables": variables[query]}
                server.bodies[query] = json.dumps(body).encode()
        lines = []
        for query in QUERIES:
            for c in LEVELS:
                rounds: dict[str, list[Measurement]] = {name: [] for name in servers}
                for _ in range(args.rounds):
                    for name, server in servers.items():
                        rounds[name].append(measure(server, query, c, args.duration, args.warmup))
                        settle(server)
                p50 = {name: statistics.median(m.p50_ms for m in ms) for name, ms in rounds.items()}
                p99 = {name: statistics.median(m.p99_ms for m in ms) for name, ms in rounds.items()}
                errors = sum(m.errors for ms in rounds.values() for m in ms)
                ratio = p50["10M"] / p50["1M"]
                verdict = "met" if ratio <= GOAL else "NOT met"
                lines.append(
                    f"SCALE {query} c{c} p50 10M/1M={ratio:.2f} (1M {p50['1M']:.1f} ms, 10M {p50['10M']:.1f} ms; "
                    f"p99 {p99['1M']:.1f} / {p99['10M']:.1f} ms; errors {errors}) target <= {GOAL} {verdict}"
                )
                print(lines[-1], flush=True)
        (ROOT / "bench" / "SCALE.md").write_text(
            "\n".join(
                [
                    "# Scale: Q2 and Q3 at 10,000,000 observations against 1,000,000",
                    "",
                    f"Written by `make bench-scale` (bench/scale.py) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
                    f"the gateway with audit on as `homecare-nurse`, {WORKERS} workers per journal, "
                    f"{args.rounds} rounds of {args.duration} s taking turns, medians.",
                    "",
                    *[f"- {line}" for line in seeding],
                    "",
                    "```",
                    *lines,
                    "```",
                    "",
                ]
            )
        )
        print("wrote bench/SCALE.md")
    finally:
        for server in servers.values():
            server.process.terminate()
        for server in servers.values():
            server.process.wait(timeout=20)
        if stop:
            stop()


if __name__ == "__main__":
    main()
