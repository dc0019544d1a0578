"""A seeded journal in a database of its own for one benchmark run, dropped when the run ends (on the server
`DATABASE_URL` names, or in an embedded PostgreSQL under the benchmark's work folder), and a gateway
serving it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx

from gateway import demo_issuer
from gateway.components import free_port, start_embedded_postgres
from gateway.config import load_settings
from gateway.db import migrate, with_database
from gateway.personas import PERSONAS
from gateway.seed import seed

ROOT = Path(__file__).resolve().parent.parent
# A benchmark's load is one persona sending thousands of requests a minute: the per-person budget (a policy,
# not a cost) is lifted so that it measures the gateway, not its rate limit.
LOAD_GENERATOR = {"AKSON_USER_REQUESTS_PER_MINUTE": "1000000000"}


@contextlib.contextmanager
def scratch_journal(work: Path, patients: int, prefix: str) -> Iterator[str]:
    """The URL of a fresh database seeded with `patients` synthetic patients."""
    server = os.environ.get("DATABASE_URL")
    stop: Callable[[], None] | None = None
    if not server:
        server, stop = start_embedded_postgres(work / "pgdata")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def prepare() -> None:
        await admin(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server, name))
        try:
            await migrate(conn)
            await seed(conn, patients=patients)
        finally:
            await conn.close()

    try:
        asyncio.run(prepare())
        yield with_database(server, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if stop:
            stop()


class Gateway:
    """One `akson serve --demo` process on a benchmark journal, with persona tokens and its memory."""

    def __init__(self, database_url: str, data: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data = data
        self.data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "AKSON_DATA_DIR": str(self.data),
            "AKSON_PROJECT_DIR": str(ROOT),
            "OTEL_TRACES_EXPORTER": "none",
            **LOAD_GENERATOR,
            **(extra_env or {}),
        }
        env.pop("CERBOS_URL", None)
        self.log = (self.data / "gateway.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"the gateway did not start; see {self.data / 'gateway.log'}")
        settings = load_settings({"AKSON_DATA_DIR": str(self.data), "AKSON_PROJECT_DIR": str(ROOT)})
        self._key = demo_issuer.load_or_create_key(settings.demo_key_path)
        self._issuer, self._audience = settings.issuer, settings.audience

    def token(self, persona: str) -> str:
        claims = demo_issuer.persona_claims(PERSONAS[persona], issuer=self._issuer, audience=self._audience)
        return demo_issuer.sign(claims, self._key)

    def rss_mb(self) -> float:
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split()
        total = 0
        for pid in [str(self.process.pid), *children]:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                if "uvicorn" in Path(f"/proc/{pid}/cmdline").read_text() or pid == str(self.process.pid):
                    total += int(status.split("VmRSS:")[1].split()[0])
        return total / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
