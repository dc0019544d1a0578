"""Municipal mergers and unit transfers (`akson org merge`, `akson org move-unit`): a dry run reports the
access impact and changes nothing; the applied change does exactly what the report said, seen through the
GraphQL reads of the people it concerns; the past keeps the municipality it was made under."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.personas import NORDBY_HOMECARE, PERSONAS
from tests.conftest import PROJECT, Gateway, raw_id, start_gateway, stop_gateway

NURSE = "nurse-other-municipality"
TABLES = ("municipality", "organization", "practitioner_role", "care_relation", "restriction", "audit_event")
# A table's rows as a whole, so that a dry run that changed any of them is caught, not only one that added some.
FINGERPRINT = "SELECT count(*) AS n, coalesce(sum(hashtext(t::text)), 0) AS h FROM {} t"


@pytest.fixture(scope="module")
def journal(make_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway on a demo journal of its own: the tests below merge its municipalities."""
    started = start_gateway(make_database(), tmp_path_factory.mktemp("merge"), demo_patients=200)
    try:
        yield started
    finally:
        stop_gateway(started)


def akson(journal: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": journal.database_url, "AKSON_DATA_DIR": str(journal.data_dir)}
    env.pop("CERBOS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, cwd=PROJECT, env=env, check=False
    )


def merge(journal: Gateway, *extra: str) -> dict[str, Any]:
    done = akson(
        journal, "org", "merge", "--from", "Nordby", "--into", "Fjordvik", "--policy-scope", "fjordvik",
        "--combine-units", "--json", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def fingerprints(journal: Gateway) -> dict[str, tuple[int, int]]:
    found = {}
    for table in TABLES:
        [row] = journal.fetch(FINGERPRINT.format(table))
        found[table] = (row["n"], row["h"])
    return found


def seen_by_nurse(journal: Gateway) -> dict[str, int]:
    """Patients whose demographics and medication the Nordby nurse reads through GraphQL, counted by patient."""
    patients = journal.query("{ patients(first: 1) { totalCount } }", NURSE)
    medication: set[str] = set()
    after = None
    while True:
        page = journal.query(
            "query($after: String) { medicationStatements(first: 100, after: $after) {"
            " edges { node { patient { id } } } pageInfo { hasNextPage endCursor } } }",
            NURSE,
            {"after": after},
        )
        assert "errors" not in page, page
        connection = page["data"]["medicationStatements"]
        medication.update(raw_id(e["node"]["patient"]["id"]) for e in connection["edges"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    return {"demographics": patients["data"]["patients"]["totalCount"], "medication": len(medication)}


def test_a_dry_run_reports_the_impact_and_the_merger_then_does_exactly_that(journal: Gateway) -> None:
    before_reads = seen_by_nurse(journal)
    # A read of the Nordby nurse before the merger: its audit record names her unit as it was then.
    [last_read] = journal.fetch(
        "SELECT recorded_at FROM audit_event WHERE actor_id = $1 ORDER BY recorded_at DESC LIMIT 1",
        str(PERSONAS[NURSE].entity_id),
    )
    untouched = fingerprints(journal)

    preview = merge(journal, "--dry-run")

    assert fingerprints(journal) == untouched
    assert preview["applied"] is False
    change = preview["reorganization"]
    combined = {u["name"]: u["into_name"] for u in change["units"] if u["change"] == "combined"}
    assert combined["Nordby hjemmetjeneste"] == "Fjordvik hjemmetjeneste"
    assert {u["name"] for u in change["units"] if u["change"] == "moved"} >= {"Nordby legekontor 1"}
    nurse = preview["people"][str(PERSONAS[NURSE].entity_id)]
    assert nurse["before"]["demographics"] == before_reads["demographics"]
    assert nurse["before"].get("medication", 0) == before_reads["medication"]
    assert nurse["visible"]["demographics"] > 0, "home care combined: the Fjordvik home care patients come into view"
    secretaries = [g for g in preview["groups"] if g["role"] == "health_secretary" and g["unit"].startswith("Nordby")]
    assert secretaries and all(g["invisible"].get("clinical-note", {}).get("patients", 0) > 0 for g in secretaries), (
        "under Fjordvik's scope, its local rule hides clinical notes from Nordby's health secretaries"
    )

    applied = merge(journal)

    assert applied["applied"] is True
    assert applied["groups"] == preview["groups"]
    assert applied["people"] == preview["people"]
    assert applied["reorganization"] == preview["reorganization"]
    after_reads = seen_by_nurse(journal)
    assert after_reads["demographics"] == nurse["after"]["demographics"]
    assert after_reads["demographics"] - before_reads["demographics"] == nurse["visible"]["demographics"] - nurse[
        "invisible"
    ].get("demographics", 0)
    assert after_reads["medication"] == nurse["after"].get("medication", 0)

    [nordby] = journal.fetch("SELECT id, merged_into_id, policy_scope FROM municipality WHERE name = 'Nordby kommune'")
    [fjordvik] = journal.fetch("SELECT id, policy_scope FROM municipality WHERE name = 'Fjordvik kommune'")
    assert nordby["merged_into_id"] == fjordvik["id"] and nordby["policy_scope"] is None
    assert fjordvik["policy_scope"] == "fjordvik"
    [then] = journal.fetch(
        "SELECT unit_municipality_at($1, $2) AS then, unit_municipality_at($1, now()) AS now",
        NORDBY_HOMECARE,
        last_read["recorded_at"],
    )
    assert then["then"] == nordby["id"] and then["now"] == fjordvik["id"]
    moved = journal.fetch(
        "SELECT resource_ids FROM audit_event WHERE actor_id = 'akson-org' AND resource_kind = 'care_relation'"
    )
    assert len(moved) == applied["reorganization"]["care_relations_moved"] > 0
    verified = akson(journal, "audit", "verify")
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout, verified.stdout + verified.stderr


def test_a_merged_municipality_cannot_be_merged_again_and_nothing_changes(journal: Gateway) -> None:
    untouched = fingerprints(journal)
    done = akson(journal, "org", "merge", "--from", "Nordby", "--into", "Havlia", "--national-baseline")
    assert done.returncode == 2 and "merged into another municipality" in done.stdout, done.stdout + done.stderr
    assert fingerprints(journal) == untouched


def test_a_scope_neither_municipality_has_is_refused(journal: Gateway) -> None:
    done = akson(journal, "org", "merge", "--from", "Havlia", "--into", "Fjordvik", "--policy-scope", "oslo")
    assert done.returncode == 2 and "policy scope" in done.stdout, done.stdout + done.stderr


def test_moving_a_unit_moves_its_rows_into_the_other_municipalitys_scope(journal: Gateway) -> None:
    done = akson(journal, "org", "move-unit", "Havlia legekontor 1", "--to", "Fjordvik", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [u["name"] for u in report["reorganization"]["units"]] == ["Havlia legekontor 1"]
    groups = {(g["role"], g["unit"]): g for g in report["groups"]}
    secretaries = groups["health_secretary", "Havlia legekontor 1"]
    assert secretaries["invisible"]["clinical-note"]["patients"] > 0
    [row] = journal.fetch(
        "SELECT m.name FROM organization o JOIN municipality m ON m.id = o.municipality_id WHERE o.name = $1",
        "Havlia legekontor 1",
    )
    assert row["name"] == "Fjordvik kommune"
