"""Drills: a component is lost under light load and comes back. While it is gone the gateway answers 503
with no data; once it answers again, so does the gateway, within seconds and with no operator. The
gateway under drill has a PostgreSQL server of its own, so stopping it disturbs no other test."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pgserver._commands import POSTGRES_BIN_PATH

from gateway.components import start_embedded_postgres
from tests.conftest import Gateway, start_gateway, stop_gateway

READ = "query($id: ID!) { node(id: $id) { id ... on Observation { status } } }"
RECOVERY_SECONDS = 5.0


@dataclass
class Drill:
    gateway: Gateway
    pgdata: Path
    socket_dir: str
    observations: list[str]
    turn: int = 0

    def read(self) -> httpx.Response:
        """An item read the PDP must decide: a different observation each time, so no cached decision."""
        self.turn += 1
        observation = self.observations[self.turn % len(self.observations)]
        return self.gateway.post(READ, persona="gp", variables={"id": observation})

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            capture_output=True,
            timeout=60,
            # As root, the embedded server runs as its own user (the pgserver package does the same).
            user="pgserver" if os.geteuid() == 0 else None,
        )


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    pgdata = tmp_path_factory.mktemp("drill-pg") / "data"
    url, stop_pg = start_embedded_postgres(pgdata)
    socket_dir = parse_qs(urlsplit(url).query)["host"][0]
    database_url = url.replace("/akson?", "/drill?")
    gateway = start_gateway(database_url, tmp_path_factory.mktemp("drill"), demo_patients=30)
    try:
        listing = gateway.query("{ observations(first: 60) { edges { node { id } } } }", "gp")
        observations = [e["node"]["id"] for e in listing["data"]["observations"]["edges"]]
        assert len(observations) >= 30
        yield Drill(gateway, pgdata, socket_dir, observations)
    finally:
        stop_gateway(gateway)
        stop_pg()


def answered(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.json()["data"]["node"] is not None


def assert_failed_closed(response: httpx.Response) -> None:
    """Anything but a full answer is a 503 that carries no data."""
    assert response.status_code == 503, response.text
    body: dict[str, Any] = response.json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


def recover(drill: Drill, since: float) -> float:
    """Read until the gateway answers again; every answer before that must fail closed. Seconds taken."""
    while not answered(response := drill.read()):
        assert_failed_closed(response)
        assert time.monotonic() - since < 30, "the gateway did not recover"
        time.sleep(0.05)
    return time.monotonic() - since


def pdp_pids(gateway: Gateway) -> list[int]:
    """The Cerbos processes whose parent is the gateway, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, _, rest = stat.partition(") ")
            if name.split("(", 1)[1].startswith("cerbos") and int(rest.split()[1]) == gateway.process.pid:
                found.append(int(entry.name))
    return found


def pdp_serving(drill: Drill) -> bool:
    """Whether the gateway's PDP answers its own health check (its HTTP port is in the config it was given)."""
    config = (drill.gateway.data_dir / "cerbos" / "cerbos.yaml").read_text()
    port = config.split('httpListenAddr: "127.0.0.1:', 1)[1].split('"', 1)[0]
    try:
        return bool(httpx.get(f"http://127.0.0.1:{port}/_cerbos/health", timeout=0.5).json()["status"] == "SERVING")
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def test_a_killed_pdp_is_restarted_by_the_gateway_and_reads_answer_again_within_seconds(drill: Drill) -> None:
    assert answered(drill.read())
    [pdp] = pdp_pids(drill.gateway)
    os.kill(pdp, signal.SIGKILL)
    killed = time.monotonic()
    while pdp_pids(drill.gateway) == [pdp] or not pdp_serving(drill):
        assert time.monotonic() - killed < 30, "the PDP was not started again"
        time.sleep(0.02)
    serving = time.monotonic()
    took = recover(drill, serving)
    print(f"PDP killed: serving again after {serving - killed:.2f}s, reads answered {took:.2f}s after that")
    assert serving - killed + took < RECOVERY_SECONDS, "reads answered again too late after the PDP was killed"
    assert took < 2.0, f"the gateway reconnected only {took:.1f}s after the PDP answered again"
    [restarted] = pdp_pids(drill.gateway)
    assert restarted != pdp and not Path(f"/proc/{pdp}").exists(), "the killed PDP was left unreaped"
    ready = httpx.get(f"{drill.gateway.base_url}/healthz/ready")
    assert ready.json() == {"status": "ok", "database": "ok", "cerbos": "ok"}


def test_while_the_database_is_stopped_reads_fail_closed_and_answer_again_once_it_is_back(drill: Drill) -> None:
    assert answered(drill.read())
    drill.pg_ctl("-w", "-m", "fast", "stop")
    try:
        assert_failed_closed(drill.read())
        ready = httpx.get(f"{drill.gateway.base_url}/healthz/ready")
        assert ready.status_code == 503 and ready.json() == {
            "status": "unavailable",
            "database": "unavailable",
            "cerbos": "ok",
        }
        assert httpx.get(f"{drill.gateway.base_url}/healthz/live").status_code == 200
    finally:
        drill.pg_ctl("-w", "-o", '-h ""', "-o", f"-k {drill.socket_dir}", "-l", str(drill.pgdata / "log"), "start")
    took = recover(drill, time.monotonic())
    print(f"database back: reads answered again after {took:.2f}s")
    assert took < RECOVERY_SECONDS, f"reads answered again only {took:.1f}s after the database came back"
