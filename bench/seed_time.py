"""How long seeding the benchmark journal takes: 10,000 patients and 1,000,000 observations.

Target: under 2 minutes on a 2-core machine. Uses DATABASE_URL's server when set, otherwise an
embedded PostgreSQL in bench/.work/; always seeds a fresh database that is dropped afterwards.
Prints one line per run plus `SEED_SECONDS <median>` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

import asyncpg

from gateway.components import start_embedded_postgres
from gateway.db import migrate, with_database
from gateway.seed import seed


async def one_run(server: str, patients: int, observations: int) -> tuple[float, dict[str, int]]:
    name = f"akson_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(with_database(server, name))
        try:
            await migrate(conn)
            started = time.perf_counter()
            report = await seed(conn, patients=patients, observations=observations)
            return time.perf_counter() - started, report.counts
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL")
    stop = None
    if not server:
        server, stop = start_embedded_postgres(Path(__file__).resolve().parent / ".work" / "pgdata")
    try:
        print(f"machine: {os.cpu_count()} cores; server: {'embedded' if stop else 'DATABASE_URL'}")
        seconds = []
        for run in range(1, args.runs + 1):
            elapsed, counts = asyncio.run(one_run(server, args.patients, args.observations))
            seconds.append(elapsed)
            print(f"run {run}: {elapsed:.1f}s  " + ", ".join(f"{n:,} {t}" for t, n in counts.items()), flush=True)
        print(f"SEED_SECONDS {statistics.median(seconds):.1f} (target < 120)")
    finally:
        if stop:
            stop()


if __name__ == "__main__":
    main()
