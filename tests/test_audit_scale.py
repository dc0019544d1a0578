"""The audit log at scale: rows live in the partition of their month, `akson audit verify` continues from
its last signed checkpoint, and `akson audit archive` moves whole months to files that verify on their
own while verification of what remains continues where they end."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from gateway.audit_chain import archive_file_problem
from gateway.db import GATEWAY_ROLE, migrate
from tests.conftest import PROJECT, run

INSERT = """INSERT INTO audit_event (request_id, actor_kind, actor_id, client_id, patient_id, resource_kind,
            resource_ids, action, decision, reason, policy_version, recorded_at)
            VALUES ($1, 'personnel', 'p1', 'app', NULL, 'patient', ARRAY[$2], 'read', 'ALLOW', 'CARE_RELATION', 'v1',
                    coalesce($3, clock_timestamp()))"""


def month_start(months_back: int) -> datetime:
    today = datetime.now(UTC).date().replace(day=1)
    for _ in range(months_back):
        today = (today - timedelta(days=1)).replace(day=1)
    return datetime(today.year, today.month, 1, tzinfo=UTC)


def partition_of(moment: datetime) -> str:
    return f"audit_event_y{moment:%Y}m{moment:%m}"


@pytest.fixture
def journal(make_database: Any, tmp_path: Path) -> tuple[str, Path]:
    """A fresh journal with three audit rows in each of the months three and two months back and three now,
    written in time order as the gateway's role writes them; and a data folder for `akson`."""
    url: str = make_database()

    async def setup() -> None:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            await conn.execute("SELECT audit_ensure_partitions($1, 0)", month_start(3).date())
            await conn.execute(f"SET ROLE {GATEWAY_ROLE}")
            for months_back in (3, 2):
                for i in range(3):
                    at = month_start(months_back) + timedelta(days=2, hours=i)
                    await conn.execute(INSERT, uuid.uuid4(), f"m{months_back}-{i}", at)
            for i in range(3):
                await add_row(conn, f"now-{i}")
        finally:
            await conn.close()

    run(setup())
    return url, tmp_path


async def add_row(conn: asyncpg.Connection, label: str) -> None:
    await conn.execute(INSERT, uuid.uuid4(), label, None)


def akson(journal: tuple[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    url, data = journal
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", *args],
        env={**os.environ, "DATABASE_URL": url, "AKSON_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
    )


def superuser(url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    return run(go())


def rewrite(path: Path, change: Callable[[list[dict[str, Any]]], object]) -> list[dict[str, Any]]:
    """Change an archive file's lines in place, as someone with access to the files could; the lines read."""
    lines = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    originals = [dict(line) for line in lines]
    change(lines)
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(line) + b"\n" for line in lines)))
    return originals


def test_audit_rows_live_in_the_partition_of_their_month(journal: tuple[str, Path]) -> None:
    url, _ = journal
    rows = superuser(
        url, "SELECT tableoid::regclass::text AS part, count(*) AS n FROM audit_event GROUP BY 1 ORDER BY 1"
    )
    now = datetime.now(UTC)
    assert {r["part"]: r["n"] for r in rows} == {
        partition_of(month_start(3)): 3,
        partition_of(month_start(2)): 3,
        partition_of(now): 3,
    }
    ids_in_time_order = superuser(url, "SELECT id FROM audit_event ORDER BY recorded_at, id")
    assert [r["id"] for r in ids_in_time_order] == sorted(r["id"] for r in ids_in_time_order)


def test_verify_continues_after_its_last_signed_checkpoint(journal: tuple[str, Path]) -> None:
    url, _ = journal
    first = akson(journal, "verify")
    assert first.returncode == 0 and "intact: 9 rows verified" in first.stdout, first.stdout + first.stderr

    async def two_more() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"SET ROLE {GATEWAY_ROLE}")
            await add_row(conn, "later-1")
            await add_row(conn, "later-2")
        finally:
            await conn.close()

    run(two_more())
    again = akson(journal, "verify")
    assert again.returncode == 0 and "intact: 2 rows verified after checkpoint row 9" in again.stdout
    full = akson(journal, "verify", "--full")
    assert full.returncode == 0 and "intact: 11 rows verified" in full.stdout


def test_a_change_to_the_checkpointed_row_is_found_and_older_changes_by_a_full_verify(
    journal: tuple[str, Path],
) -> None:
    url, _ = journal
    assert akson(journal, "verify").returncode == 0
    superuser(url, "UPDATE audit_event SET reason = 'NO_CARE_RELATION' WHERE id = 3")
    assert akson(journal, "verify").returncode == 0, "rows before the checkpoint are what --full is for"
    full = akson(journal, "verify", "--full")
    assert full.returncode == 3 and "BROKEN at row 3" in full.stdout and "altered" in full.stdout
    superuser(url, "UPDATE audit_event SET row_hash = repeat('f', 64) WHERE id = 9")
    changed = akson(journal, "verify")
    assert changed.returncode == 3 and "BROKEN at row 9" in changed.stdout and "signed" in changed.stdout


def test_a_checkpoint_not_signed_with_the_audit_key_is_ignored(journal: tuple[str, Path]) -> None:
    url, _ = journal
    superuser(url, "UPDATE audit_event SET reason = 'NO_CARE_RELATION' WHERE id = 5")
    last = superuser(url, "SELECT id, row_hash FROM audit_event ORDER BY id DESC LIMIT 1")[0]
    superuser(
        url,
        "INSERT INTO audit_checkpoint (last_id, last_hash, signature) VALUES ($1, $2, 'forged')",
        last["id"],
        last["row_hash"],
    )
    done = akson(journal, "verify")
    assert done.returncode == 3 and "BROKEN at row 5" in done.stdout


def test_archiving_moves_whole_months_to_files_that_verify_and_what_remains_still_verifies(
    journal: tuple[str, Path],
) -> None:
    url, data = journal
    this_month = datetime.now(UTC).date().replace(day=1)
    archived = akson(journal, "archive", "--before", this_month.isoformat())
    assert archived.returncode == 0, archived.stdout + archived.stderr
    assert f"archived {partition_of(month_start(3))}: 3 rows" in archived.stdout
    assert f"archived {partition_of(month_start(2))}: 3 rows" in archived.stdout
    left = superuser(url, "SELECT min(id) AS first, count(*) AS n FROM audit_event")[0]
    assert (left["first"], left["n"]) == (7, 3)
    gone = superuser(url, "SELECT to_regclass($1) AS t", partition_of(month_start(3)))[0]
    assert gone["t"] is None
    full = akson(journal, "verify", "--full")
    assert full.returncode == 0 and "intact: 3 rows verified after checkpoint row 6" in full.stdout
    files = akson(journal, "verify-archives")
    assert files.returncode == 0 and "archives intact" in files.stdout

    path = data / "audit-archive" / f"{partition_of(month_start(2))}.ndjson.gz"
    lines = rewrite(path, lambda lines: lines[1].update(decision="DENY"))
    assert [line["id"] for line in lines] == ["4", "5", "6"] and lines[0]["decision"] == "ALLOW"
    tampered = akson(journal, "verify-archives")
    assert tampered.returncode == 3 and "SHA-256 differs" in tampered.stdout


def test_an_archive_file_checks_every_row_without_the_database(journal: tuple[str, Path]) -> None:
    url, data = journal
    assert akson(journal, "archive", "--before", datetime.now(UTC).date().replace(day=1).isoformat()).returncode == 0
    [record] = superuser(url, "SELECT * FROM audit_archive WHERE partition_name = $1", partition_of(month_start(3)))
    path = data / "audit-archive" / record["file_name"]
    assert archive_file_problem(record, path) is None
    rewrite(path, lambda lines: lines[2].update(reason="EMERGENCY"))
    rehashed = {**dict(record), "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert archive_file_problem(rehashed, path) == "row 3 does not match its hash or link"
    superuser(url, "UPDATE audit_archive SET file_sha256 = $1 WHERE last_id = $2", rehashed["file_sha256"], 3)
    done = akson(journal, "verify-archives")
    assert done.returncode == 3 and "not signed" in done.stdout


def test_nothing_is_archived_from_a_broken_chain(journal: tuple[str, Path]) -> None:
    url, _ = journal
    superuser(url, "UPDATE audit_event SET reason = 'x' WHERE id = 2")
    done = akson(journal, "archive", "--before", date.today().replace(day=1).isoformat())
    assert done.returncode == 3 and "broken at row 2" in done.stderr
    assert superuser(url, "SELECT count(*) AS n FROM audit_event")[0]["n"] == 9
