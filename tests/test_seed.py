"""The seeder: deterministic, Norwegian-flavoured, and it creates the demo personas."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from gateway.db import migrate
from gateway.national_id import is_valid_synthetic
from gateway.personas import CITIZEN_PATIENT_ID, FJORDVIK_HOMECARE, PERSONAS
from gateway.seed import TABLE_COLUMNS, reset, seed
from gateway.sql import ident, join, sql
from tests.conftest import run


async def seeded_digest(url: str, seed_value: int) -> tuple[dict[str, str], dict[str, int], asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        report = await seed(conn, patients=120, observations=3000, seed_value=seed_value, today=date(2026, 11, 1))
        digests = {}
        for table, columns in TABLE_COLUMNS.items():
            seeded = sql("ROW(", join(ident("x", c) for c in columns), ")::text")
            text, _ = sql(
                "SELECT md5(string_agg(", seeded, ", '|' ORDER BY ", seeded, ")) FROM ", ident(table), " x"
            ).render()
            digests[table] = await conn.fetchval(text)
        facts = await conn.fetchrow(
            """SELECT
                 (SELECT array_agg(national_id) FROM patient) AS patient_ids,
                 (SELECT array_agg(national_id) FROM practitioner) AS practitioner_ids,
                 (SELECT count(*) FROM observation) AS observations,
                 (SELECT count(DISTINCT unit_type) FROM organization) AS unit_types,
                 (SELECT count(*) FROM care_relation WHERE patient_id = $1 AND organization_id = $2
                    AND period_end IS NULL) AS citizen_homecare,
                 (SELECT count(*) FROM practitioner WHERE hpr_number IS NOT NULL) AS with_hpr""",
            CITIZEN_PATIENT_ID,
            FJORDVIK_HOMECARE,
        )
        return digests, report.counts, facts
    finally:
        await conn.close()


def test_the_same_seed_gives_the_same_journal_and_another_seed_a_different_one(make_database: Any) -> None:
    first, counts, facts = run(seeded_digest(make_database(), 7))
    again, _, _ = run(seeded_digest(make_database(), 7))
    other, _, _ = run(seeded_digest(make_database(), 8))
    assert first == again
    assert first["patient"] != other["patient"]
    assert counts["patient"] == 120
    assert facts["observations"] == 3000
    assert facts["unit_types"] == 8, "five municipal unit types and the hospital's laboratory, radiology and ward"
    assert facts["citizen_homecare"] == 1
    assert facts["with_hpr"] > 100
    assert all(is_valid_synthetic(n) for n in facts["patient_ids"] + facts["practitioner_ids"])
    personnel = {p.national_id for p in PERSONAS.values() if p.kind == "personnel"}
    assert personnel <= set(facts["practitioner_ids"])


def test_a_reset_empties_the_journal_and_the_same_seed_fills_it_again(make_database: Any) -> None:
    """TRUNCATE refuses a table another one refers to unless both are named: the reset names every one."""

    async def seed_twice(url: str) -> tuple[dict[str, int], dict[str, int], int]:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            first = await seed(conn, patients=30, observations=300, seed_value=3, today=date(2026, 11, 1))
            await reset(conn)
            left = await conn.fetchval("SELECT count(*) FROM patient") + await conn.fetchval("SELECT count(*) FROM app")
            again = await seed(conn, patients=30, observations=300, seed_value=3, today=date(2026, 11, 1))
            return first.counts, again.counts, left
        finally:
            await conn.close()

    first, again, left = run(seed_twice(make_database()))
    assert left == 0 and first == again and first["app_decision"] == 2 * first["app"]
