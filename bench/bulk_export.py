"""`make bench-export`: a municipality's FHIR Bulk Data export of 10,000 patients and 1,000,000 observations.

Uses `make bench`'s journal (seeded once), copied to `akson_bench_export`, where every patient lives in
Fjordvik and Fjordvik home care has a care relation with each: so that one backend service, the home-care
integration acting for that unit, may read the whole municipality under the real policies. Starts one
gateway (one worker), exports Group Fjordvik as the integration with `system/*.rs`, and prints the time from
kick-off to manifest, the resources and bytes per type, and the gateway process's peak resident memory
against its memory before the export (sampled every 50 ms). Writes bench/EXPORT.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import WORK, database, prepare, start_gateway  # noqa: E402
from gateway import demo_issuer  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.db import with_database  # noqa: E402
from gateway.personas import FJORDVIK, FJORDVIK_HOMECARE, PERSONAS  # noqa: E402

COPY = "akson_bench_export"


async def make_copy(source: str) -> str:
    """`akson_bench_export`: the benchmark journal with the whole population in Fjordvik home care's care."""
    admin = await asyncpg.connect(with_database(source, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{COPY}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{COPY}" TEMPLATE "akson_bench"')
    finally:
        await admin.close()
    url = with_database(source, COPY)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE patient SET municipality_id = $1", FJORDVIK)
        await conn.execute(
            """INSERT INTO care_relation (id, patient_id, organization_id, purpose, period_start, owning_unit_id,
                                          data_category)
               SELECT gen_random_uuid(), p.id, $1, 'hjemmesykepleie', now() - interval '1 year', $1, 'administrative'
                 FROM patient p
                WHERE NOT EXISTS (SELECT 1 FROM care_relation c WHERE c.patient_id = p.id AND c.organization_id = $1
                                    AND c.period_end IS NULL)""",
            FJORDVIK_HOMECARE,
        )
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    return url


def exporter_token(data_dir: Path) -> str:
    settings = load_settings({"AKSON_DATA_DIR": str(data_dir), "AKSON_PROJECT_DIR": str(ROOT)})
    claims = demo_issuer.persona_claims(
        PERSONAS["homecare-integration"], issuer=settings.issuer, audience=settings.audience
    )
    claims["scope"] = "system/*.rs"
    claims["exp"] = int(time.time()) + 3 * 3600
    return demo_issuer.sign(claims, demo_issuer.load_or_create_key(settings.demo_key_path))


class PeakMemory:
    """The highest resident memory of a process tree (the gateway, without its PDP), sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> int:
        tree = [self._root, *self._root.children(recursive=True)]
        total = 0
        for process in tree:
            with contextlib.suppress(psutil.Error):
                if "cerbos" not in process.name():
                    total += process.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    source, stop = database()
    try:
        print(asyncio.run(prepare(source)))
        url = asyncio.run(make_copy(source))
        server = start_gateway("export", url, audit=True, workers=1)
        try:
            token = exporter_token(WORK / "export")
            headers = {"Authorization": f"Bearer {token}"}
            base = f"http://127.0.0.1:{server.port}/fhir/R4"
            memory = PeakMemory(server.process.pid)
            before = memory.now()
            with memory, httpx.Client(headers=headers, timeout=120) as client:
                started = time.monotonic()
                kicked = client.get(f"{base}/Group/{FJORDVIK}/$export", headers={"Prefer": "respond-async"})
                kicked.raise_for_status()
                while (polled := client.get(kicked.headers["content-location"])).status_code == 202:
                    time.sleep(0.5)
                polled.raise_for_status()
                seconds = time.monotonic() - started
            manifest = polled.json()
            lines = []
            total_bytes = 0
            for item in manifest["output"]:
                size = 0
                with httpx.stream("GET", item["url"], headers=headers, timeout=120) as response:
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                total_bytes += size
                lines.append(f"| {item['type']} | {item['count']:,} | {size / 1e6:,.1f} |")
            counts = {item["type"]: item["count"] for item in manifest["output"]}
            summary = (
                f"EXPORT patients={counts.get('Patient', 0)} observations={counts.get('Observation', 0)} "
                f"resources={sum(counts.values())} seconds={seconds:.1f} "
                f"peak_rss_mb={memory.peak / 1e6:.0f} rss_before_mb={before / 1e6:.0f} "
                f"output_mb={total_bytes / 1e6:.0f}"
            )
            print(summary)
            report = [
                "# Bulk Data export: one municipality",
                "",
                f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench-export` (bench/bulk_export.py): Group "
                "Fjordvik exported by the home-care integration (`system/*.rs`) from one gateway worker, kick-off "
                "to manifest.",
                "",
                f"- {summary}",
                f"- time: {seconds:.1f} s for {sum(counts.values()):,} resources "
                f"({sum(counts.values()) / seconds:,.0f} per second)",
                f"- gateway memory: {before / 1e6:.0f} MB before, {memory.peak / 1e6:.0f} MB at its peak "
                "(resident, the gateway's processes without the PDP)",
                "",
                "| type | resources | MB |",
                "|---|---:|---:|",
                *lines,
                "",
            ]
            (ROOT / "bench" / "EXPORT.md").write_text("\n".join(report))
        finally:
            server.process.terminate()
            server.process.wait(timeout=30)
    finally:
        if stop is not None:
            stop()


if __name__ == "__main__":
    main()
