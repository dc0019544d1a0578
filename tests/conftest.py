"""Test fixtures: a real PostgreSQL, a real gateway process (which starts the real Cerbos PDP), and
clients that talk to it over HTTP with demo tokens.

PostgreSQL: with `DATABASE_URL` set, a fresh database is created on that server for the session and
dropped afterwards; without it, an embedded server (pgserver) runs in a temporary folder.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from gateway import demo_issuer
from gateway.components import free_port, start_embedded_postgres
from gateway.config import load_settings
from gateway.db import with_database
from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from gateway.sql import Sql

PROJECT = Path(__file__).resolve().parent.parent
TEST_PATIENTS = 400
# The suite's personas send thousands of requests a minute; the per-person budget is tested on its own. Every
# gateway the suite starts has it, as every process of one deployment has the same settings: processes take
# budgets in leases, and one with a far smaller limit would find the others' leases over it.
SHARED_BUDGETS = {"AKSON_USER_REQUESTS_PER_MINUTE": "1000000"}
# Live delivery on test time: slow consumers are closed after 2 s, webhooks retried within a second and given up
# (and their endpoints disabled) after 6 s instead of a day.
FAST_EVENTS = {
    "AKSON_SUBSCRIPTION_SEND_TIMEOUT_SECONDS": "2",
    "AKSON_CHANGE_POLL_SECONDS": "1",
    "AKSON_WEBHOOK_RETRY_BASE_SECONDS": "0.3",
    "AKSON_WEBHOOK_RETRY_MAX_DELAY_SECONDS": "1",
    "AKSON_WEBHOOK_RETRY_WINDOW_SECONDS": "6",
    "AKSON_WEBHOOK_DISABLE_AFTER_SECONDS": "6",
    "AKSON_WEBHOOK_TIMEOUT_SECONDS": "5",
    **SHARED_BUDGETS,
}


def gid(type_name: str, raw: object) -> str:
    """The global id the API uses for a journal id: base64 of `Type:id` (the Relay convention)."""
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


def raw_id(global_id: str) -> str:
    """The journal id inside a global id."""
    return base64.b64decode(global_id).decode().split(":", 1)[1]


CITIZEN = gid("Patient", CITIZEN_PATIENT_ID)
RESTRICT = """mutation($input: RestrictionInput!) { createRestriction(input: $input) { id } }"""
LIFT = """mutation($id: ID!) { liftRestriction(id: $id, reason: "patient changed their mind") { id } }"""


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from a synchronous test: on a thread of its own while Playwright's synchronous API keeps
    an event loop running on this one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL (its `postgres` database): the given one, or an embedded one."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield with_database(given, "postgres")
        return
    url, stop = start_embedded_postgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        yield with_database(url, "postgres")
    finally:
        stop()


@pytest.fixture(scope="session")
def make_database(server_url: str) -> Iterator[Any]:
    """A factory of fresh, empty databases on the test server; all are dropped at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"akson_test_{uuid.uuid4().hex[:10]}"

        async def create() -> None:
            conn = await asyncpg.connect(server_url)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        run(create())
        created.append(name)
        return with_database(server_url, name)

    yield make

    async def drop_all() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            for name in created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run(drop_all())


@dataclass
class Gateway:
    """A running `akson serve` process and what a test needs to talk to it and inspect it."""

    base_url: str
    database_url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def token(self, persona: str, **overrides: Any) -> str:
        """A demo token for a persona, optionally with claims changed (None removes a claim)."""
        settings = load_settings({"AKSON_DATA_DIR": str(self.data_dir), "AKSON_PROJECT_DIR": str(PROJECT)})
        claims = demo_issuer.persona_claims(PERSONAS[persona], issuer=settings.issuer, audience=settings.audience)
        for key, value in overrides.items():
            if value is None:
                claims.pop(key, None)
            else:
                claims[key] = value
        return demo_issuer.sign(claims, demo_issuer.load_or_create_key(settings.demo_key_path))

    def post(
        self,
        query: str,
        *,
        token: str | None = None,
        persona: str | None = None,
        variables: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """POST a GraphQL query as a client would."""
        headers = dict(kwargs.pop("headers", {}))
        if persona is not None:
            token = self.token(persona)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return httpx.post(f"{self.base_url}/graphql", json=body, headers=headers, timeout=30, **kwargs)

    def query(self, query: str, persona: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer of a query made as a persona (HTTP 200 expected)."""
        response = self.post(query, persona=persona, variables=variables)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        """Spans the console exporter wrote for one trace (exported as each span ends)."""
        decoder = json.JSONDecoder()
        deadline = time.monotonic() + 5
        while True:
            text = self.log_path.read_text(errors="replace")
            spans, index = [], 0
            while (start := text.find("{", index)) != -1:
                try:
                    obj, index = decoder.raw_decode(text, start)
                except json.JSONDecodeError:
                    index = start + 1
                    continue
                if isinstance(obj, dict) and obj.get("context", {}).get("trace_id") == f"0x{trace_id}":
                    spans.append(obj)
            if any(s["parent_id"] is None for s in spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

    def fetch(self, statement: str | Sql, *args: Any) -> list[asyncpg.Record]:
        """Read the journal directly, as an independent check of what the API says: a statement with `$n`
        arguments, or a fragment (table names from a test's list travel as identifiers)."""
        text, values = statement.render() if isinstance(statement, Sql) else (statement, list(args))

        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.database_url)
            try:
                return list(await conn.fetch(text, *values))
            finally:
                await conn.close()

        result: list[asyncpg.Record] = run(go())
        return result


def start_gateway(
    database_url: str,
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    demo_patients: int = TEST_PATIENTS,
    demo: bool = True,
    public_url: bool | None = None,
) -> Gateway:
    """Start `akson serve --demo` (or, with `demo=False`, in production mode) as a subprocess and wait until it
    is healthy. Its public URL is its loopback address outside demo mode (or when asked); a demo gateway
    otherwise publishes the default one, as `make run` does."""
    port = free_port()
    publish = not demo if public_url is None else public_url
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "gateway.log"
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"CERBOS_URL", "OTEL_TRACES_EXPORTER"}},
        "DATABASE_URL": database_url,
        "AKSON_DATA_DIR": str(data_dir),
        "AKSON_PROJECT_DIR": str(PROJECT),
        "OTEL_TRACES_EXPORTER": "console",
        **SHARED_BUDGETS,
        **({"AKSON_PUBLIC_URL": f"http://127.0.0.1:{port}"} if publish else {}),
        **(extra_env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                *(["--demo", "--demo-patients", str(demo_patients)] if demo else []),
                "--port",
                str(port),
            ],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", database_url, data_dir, log_path, process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited at start-up:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{gateway.base_url}/healthz", timeout=2).status_code in (200, 503):
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_gateway(gateway)
    raise RuntimeError(f"gateway did not start in time:\n{log_path.read_text()}")


def stop_gateway(gateway: Gateway) -> int:
    """Stop the gateway as Ctrl-C would and return its exit code."""
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGINT)
        try:
            gateway.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait()
    return int(gateway.process.returncode)


@pytest.fixture(scope="session")
def gateway(make_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway every HTTP test talks to, on a freshly seeded demo journal. When the tests are done, the
    audit chain of everything they did must verify (`akson audit verify`), or the session fails."""
    started = start_gateway(make_database(), tmp_path_factory.mktemp("gateway"), FAST_EVENTS)
    try:
        yield started
        verified = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "audit", "verify"],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env={**os.environ, "DATABASE_URL": started.database_url, "AKSON_DATA_DIR": str(started.data_dir)},
            check=False,
        )
        assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stdout + verified.stderr
    finally:
        stop_gateway(started)


def start_replica(
    gateway: Gateway, data_dir: Path, extra_env: dict[str, str] | None = None, public_url: bool = False
) -> Gateway:
    """Another gateway process on the same journal (a replica): its own PDP and change hub, the same demo
    issuer key, so the same tokens work on both."""
    key = load_settings({"AKSON_DATA_DIR": str(data_dir), "AKSON_PROJECT_DIR": str(PROJECT)}).demo_key_path
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(load_settings({"AKSON_DATA_DIR": str(gateway.data_dir)}).demo_key_path.read_bytes())
    return start_gateway(gateway.database_url, data_dir, {**FAST_EVENTS, **(extra_env or {})}, public_url=public_url)


@pytest.fixture(scope="session")
def second_gateway(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A second replica of the gateway every HTTP test talks to."""
    started = start_replica(gateway, tmp_path_factory.mktemp("gateway-2"))
    try:
        yield started
    finally:
        stop_gateway(started)


@pytest.fixture(scope="session")
def issuer(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A replica of the gateway that publishes its own loopback address: the demo issuer as an OpenID provider
    whose discovery document points where it listens (the session's gateway publishes `make run`'s address)."""
    started = start_replica(gateway, tmp_path_factory.mktemp("issuer"), public_url=True)
    try:
        yield started
    finally:
        stop_gateway(started)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis for the rate limiter: REDIS_URL, else this machine's; tests that need one skip when none answers."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1).close()
    except OSError:
        pytest.skip(f"no Redis answers at {url}")
    return url


@contextlib.contextmanager
def restricted_from(gateway: Gateway, persona: str, reason: str = "I know her privately") -> Iterator[str]:
    """The citizen's record closed to one practitioner (sperring, scope PERSON) inside the with-block; yields
    the restriction's id, and lifts it afterwards whatever happened."""
    practitioner = gid("Practitioner", PERSONAS[persona].entity_id)
    made = gateway.query(
        RESTRICT,
        "citizen",
        {"input": {"patientId": CITIZEN, "scope": "PERSON", "reason": reason, "practitionerId": practitioner}},
    )
    restriction = made["data"]["createRestriction"]["id"]
    try:
        yield restriction
    finally:
        gateway.query(LIFT, "citizen", {"id": restriction})


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium from the system's package (`make test` installs Debian's `chromium`), driven by
    Playwright (its own browser download is not used). Per module: Playwright's synchronous API keeps an event
    loop running on the main thread while it lives, which `asyncio.run` in other modules' tests cannot share."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium on PATH: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser page with cookies of its own (a new context)."""
    context = browser.new_context()
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()
