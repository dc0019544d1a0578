"""What the gateway starts it stops; without a reachable PDP it fails closed."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.components import free_port
from tests.conftest import CITIZEN, Gateway, start_gateway, stop_gateway


def cerbos_port_of(config: str) -> int:
    """The gRPC port the gateway wrote into the Cerbos configuration it started the PDP with."""
    found = re.search(r'grpcListenAddr: "127\.0\.0\.1:(\d+)"', config)
    assert found, config
    return int(found.group(1))


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_serve_without_database_url_starts_embedded_postgres_and_cerbos_and_stops_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    gateway = start_gateway("", tmp_path / "own", demo_patients=50)
    try:
        assert httpx.get(f"{gateway.base_url}/healthz").json()["status"] == "ok"
        result = gateway.query("{ patients(first: 1) { totalCount } }", "homecare-nurse")
        assert result["data"]["patients"]["totalCount"] > 0
        config = (tmp_path / "own" / "cerbos" / "cerbos.yaml").read_text()
        cerbos_port = cerbos_port_of(config)
        pid_file = tmp_path / "own" / "pgdata" / "postmaster.pid"
        assert listening(cerbos_port) and pid_file.exists()
    finally:
        code = stop_gateway(gateway)
    assert code == 0, gateway.log_path.read_text()[-2000:]
    assert not listening(cerbos_port), "Cerbos still runs after the gateway stopped"
    assert not pid_file.exists(), "the embedded PostgreSQL still runs after the gateway stopped"


def test_a_sigterm_stops_the_pdp_the_gateway_started(gateway: Gateway, tmp_path: Path) -> None:
    second = start_gateway(gateway.database_url, tmp_path / "term")
    config = (tmp_path / "term" / "cerbos" / "cerbos.yaml").read_text()
    cerbos_port = cerbos_port_of(config)
    assert listening(cerbos_port)
    second.process.terminate()
    assert second.process.wait(timeout=30) == 128 + 15
    assert not listening(cerbos_port), "Cerbos still runs after the gateway was terminated"


def test_with_the_pdp_unreachable_requests_fail_closed_with_503(gateway: Gateway, tmp_path: Path) -> None:
    blind = start_gateway(
        gateway.database_url, tmp_path / "blind", extra_env={"CERBOS_URL": f"127.0.0.1:{free_port()}"}
    )
    try:
        for query, variables in [
            ("query($id: ID!) { patient(id: $id) { id name { text } } }", {"id": CITIZEN}),
            ("{ patients(first: 5) { edges { node { id } } } }", None),
        ]:
            response = blind.post(query, token=blind.token("homecare-nurse"), variables=variables)
            assert response.status_code == 503, response.text
            body: dict[str, Any] = response.json()
            assert body["data"] is None
            assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        health = httpx.get(f"{blind.base_url}/healthz")
        assert health.status_code == 503 and health.json()["cerbos"] != "ok"
    finally:
        stop_gateway(blind)
