"""Tamper evidence: audit rows are hash-chained, `akson audit verify` finds the first broken link, and
the gateway's database role can only add audit rows."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from joserfc.jwk import ECKey

from gateway.audit_chain import AuditSeal, verify_chain
from gateway.db import GATEWAY_ROLE, migrate
from tests.conftest import CITIZEN, PROJECT, Gateway, run

INSERT = """INSERT INTO audit_event (request_id, actor_kind, actor_id, client_id, patient_id, resource_kind,
            resource_ids, action, decision, reason, policy_version)
            VALUES ($1, 'personnel', 'p1', 'app', NULL, 'patient', ARRAY[$2], 'read', 'ALLOW', 'CARE_RELATION', 'v1')"""


def verify(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        check=False,
    )


@pytest.fixture
def chained(make_database: Any) -> str:
    """A fresh journal database with six audit rows written as the gateway writes them."""
    url: str = make_database()

    async def setup() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await conn.execute(f"SET ROLE {GATEWAY_ROLE}")
            for i in range(6):
                await conn.execute(INSERT, uuid.uuid4(), f"id-{i}")
        finally:
            await conn.close()

    run(setup())
    return url


def superuser(url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run(go())


def test_an_untouched_log_verifies(chained: str) -> None:
    done = verify(chained)
    assert done.returncode == 0 and "intact: 6 rows verified" in done.stdout


def test_an_altered_row_is_found(chained: str) -> None:
    superuser(chained, "UPDATE audit_event SET reason = 'NO_CARE_RELATION' WHERE id = 3")
    done = verify(chained)
    assert done.returncode == 3
    assert "BROKEN at row 3" in done.stdout and "altered" in done.stdout


def test_a_removed_row_is_found(chained: str) -> None:
    superuser(chained, "DELETE FROM audit_event WHERE id = 4")
    done = verify(chained)
    assert done.returncode == 3 and "BROKEN at row 5" in done.stdout and "removed" in done.stdout


def test_a_truncated_tail_is_found(chained: str) -> None:
    superuser(chained, "DELETE FROM audit_event WHERE id >= 5")
    done = verify(chained)
    assert done.returncode == 3 and "BROKEN at row 6" in done.stdout and "truncated" in done.stdout


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET reason = 'x' WHERE id = 1",
        "DELETE FROM audit_event WHERE id = 1",
        "TRUNCATE audit_event",
        "UPDATE audit_chain_head SET last_hash = 'x'",
    ],
)
def test_the_gateway_role_cannot_change_or_remove_audit_rows(chained: str, statement: str) -> None:
    async def attempt() -> None:
        conn = await asyncpg.connect(chained)
        try:
            await conn.execute(f"SET ROLE {GATEWAY_ROLE}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        finally:
            await conn.close()

    run(attempt())
    assert verify(chained).returncode == 0


def test_the_running_gateways_log_is_a_valid_chain(gateway: Gateway) -> None:
    gateway.query("query($id: ID!) { patient(id: $id) { id } }", "homecare-nurse", {"id": CITIZEN})

    async def check() -> Any:
        conn = await asyncpg.connect(gateway.database_url)
        try:
            return await verify_chain(conn, AuditSeal(ECKey.generate_key("P-256", private=True)))
        finally:
            await conn.close()

    report = run(check())
    assert report.broken_at is None and report.checked >= 1


def test_the_chain_holds_when_many_connections_insert_at_once(chained: str) -> None:
    """Ids are drawn under the chain lock, so the id order verify walks is the order rows were chained in."""

    async def writer(n: int) -> None:
        conn = await asyncpg.connect(chained)
        try:
            await conn.execute(f"SET ROLE {GATEWAY_ROLE}")
            for i in range(15):
                async with conn.transaction():
                    await conn.execute(INSERT, uuid.uuid4(), f"w{n}-{i}-a")
                    await conn.execute(INSERT, uuid.uuid4(), f"w{n}-{i}-b")
        finally:
            await conn.close()

    async def all_writers() -> None:
        await asyncio.gather(*(writer(n) for n in range(8)))

    run(all_writers())
    done = verify(chained)
    assert done.returncode == 0, done.stdout
    assert "246 rows verified" in done.stdout


def test_concurrent_requests_to_the_gateway_are_all_audited_in_an_intact_chain(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse")
    query = "{ patients(first: 3) { edges { node { id } } } }"

    async def many() -> list[str]:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
                    for _ in range(24)
                )
            )
        assert all(r.status_code == 200 and "errors" not in r.json() for r in responses)
        return [r.headers["x-trace-id"] for r in responses]

    traces = run(many())
    rows = gateway.fetch("SELECT DISTINCT trace_id FROM audit_event WHERE trace_id = ANY($1::text[])", traces)
    assert len(rows) == 24
    done = verify(gateway.database_url)
    assert done.returncode == 0, done.stdout
