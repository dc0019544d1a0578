"""What admission costs a request: the one statement that takes its rate budgets (`rate_take` with the
app's, the cost's and the person's keys) beside the cheapest round trip there is (`SELECT 1`), and the
static cost computed from a Q2-sized document, each timed alone on one connection, alternating.

Run: `DATABASE_URL=postgresql://... python -m bench.admission` (a migrated journal database; the counters
it touches are its own keys). Prints medians and p99 in microseconds.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import asyncpg
from graphql import parse

from gateway.config import load_settings
from gateway.cost import operation_cost
from gateway.rate_limits import WINDOW_SECONDS
from gateway.schema import build_schema

ROUNDS = 20
PER_ROUND = 250
Q2 = """query($n: Int!) { patients(first: $n) { edges { node { id name { text }
  observations(first: 10) { edges { node { code { code } value { value unit } effectiveAt } } } } } } }"""


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)]


async def main() -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    take = await conn.prepare(
        "SELECT key, current, previous, elapsed, taken FROM rate_take($1::text[], $2::bigint[], $3::bigint[], $4)"
    )
    ping = await conn.prepare("SELECT 1")
    keys = ["app:bench", "cost:bench", "user:personnel:bench"]
    schema = build_schema(load_settings({"AKSON_DEMO": "1"}))._schema
    document = parse(Q2)
    timings: dict[str, list[float]] = {"SELECT 1": [], "rate_take (3 budgets)": [], "static cost (Q2)": []}
    for _ in range(ROUNDS):
        for _ in range(PER_ROUND):
            started = time.perf_counter()
            await ping.fetch()
            timings["SELECT 1"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await take.fetch(keys, [1, 41, 1], [10**12, 10**15, 10**12], WINDOW_SECONDS)
            timings["rate_take (3 budgets)"].append(time.perf_counter() - started)
            started = time.perf_counter()
            operation_cost(schema, document, None, {"n": 20}, 100)
            timings["static cost (Q2)"].append(time.perf_counter() - started)
    await conn.close()
    for name, samples in timings.items():
        median, p99 = _quantiles(samples)
        print(f"{name:24s} median {median * 1e6:7.1f} us   p99 {p99 * 1e6:7.1f} us   ({len(samples)} samples)")


if __name__ == "__main__":
    asyncio.run(main())
