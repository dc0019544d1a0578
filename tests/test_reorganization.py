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

from gateway.demo_issuer import CLAIM_HPR_NUMBER, CLAIM_PERSONNEL_PID
from gateway.personas import FJORDVIK, NORDBY, NORDBY_HOMECARE, PERSONAS
from tests.conftest import PROJECT, Gateway, gid, raw_id, start_gateway, stop_gateway

NURSE = "nurse-other-municipality"
TABLES = ("municipality", "organization", "practitioner_role", "care_relation", "restriction", "patient")
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


def patients_seen(journal: Gateway, token: str) -> dict[str, int]:
    """Patients whose demographics, medication and clinical notes a person reads through GraphQL."""

    def query(text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = journal.post(text, token=token, variables=variables)
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    seen = {"demographics": query("{ patients(first: 1) { totalCount } }")["patients"]["totalCount"]}
    for root, category in (("medicationStatements", "medication"), ("clinicalNotes", "clinical-note")):
        patients: set[str] = set()
        after = None
        while True:
            page = query(
                "query($after: String) { %s(first: 100, after: $after) {"  # noqa: UP031 - a root field's name
                " edges { node { patient { id } } } pageInfo { hasNextPage endCursor } } }" % root,
                {"after": after},
            )[root]
            patients.update(raw_id(e["node"]["patient"]["id"]) for e in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        seen[category] = len(patients)
    return seen


def person_token(journal: Gateway, practitioner_id: str) -> str:
    """A demo token for any practitioner of the journal (the GP persona's claims, with their national id)."""
    [row] = journal.fetch("SELECT national_id FROM practitioner WHERE id = $1", practitioner_id)
    return journal.token("gp", **{CLAIM_PERSONNEL_PID: row["national_id"], CLAIM_HPR_NUMBER: None})


MERGE = """mutation($from: ID!, $into: ID!) { mergeMunicipalities(from: $from, into: $into, policyScope: "fjordvik",
  combineUnits: true, dryRun: false) { applied patientsMoved careRelationsMoved rolesMoved restrictionsCarriedOver
  policyScopeAfter units { name change } } }"""


def test_a_dry_run_reports_the_impact_and_the_merger_then_does_exactly_that(journal: Gateway) -> None:
    nurse_id = str(PERSONAS[NURSE].entity_id)
    [secretary] = journal.fetch(
        "SELECT r.practitioner_id::text AS id FROM practitioner_role r JOIN organization o ON o.id = r.organization_id "
        "WHERE o.name = 'Nordby legekontor 1' AND r.role = 'health_secretary' ORDER BY 1 LIMIT 1"
    )
    people = {nurse_id: journal.token(NURSE), secretary["id"]: person_token(journal, secretary["id"])}
    before = {who: patients_seen(journal, token) for who, token in people.items()}
    # A read of the Nordby nurse before the merger: its audit record names her unit as it was then.
    [last_read] = journal.fetch(
        "SELECT recorded_at FROM audit_event WHERE actor_id = $1 ORDER BY recorded_at DESC LIMIT 1", nurse_id
    )
    untouched = fingerprints(journal)

    logged = journal.fetch("SELECT count(*) AS n FROM audit_event")[0]["n"]

    preview = merge(journal, "--dry-run")

    assert fingerprints(journal) == untouched
    [previewed] = journal.fetch("SELECT action, actor_id FROM audit_event ORDER BY recorded_at DESC LIMIT 1")
    assert (previewed["action"], previewed["actor_id"]) == ("preview_merge", "akson-org")
    assert journal.fetch("SELECT count(*) AS n FROM audit_event")[0]["n"] == logged + 1, "the preview's one record"
    assert preview["applied"] is False
    change = preview["reorganization"]
    combined = {u["name"]: u["into_name"] for u in change["units"] if u["change"] == "combined"}
    assert combined["Nordby hjemmetjeneste"] == "Fjordvik hjemmetjeneste"
    assert {u["name"] for u in change["units"] if u["change"] == "moved"} >= {"Nordby legekontor 1"}
    for who, seen in before.items():
        assert {c: preview["people"][who]["before"].get(c, 0) for c in seen} == seen
    assert preview["people"][nurse_id]["visible"]["demographics"] > 0, "home care combined: Fjordvik's patients"
    assert preview["people"][secretary["id"]]["invisible"]["clinical-note"] > 0, "Fjordvik's rule for secretaries"
    secretaries = [g for g in preview["groups"] if g["role"] == "health_secretary" and g["unit"].startswith("Nordby")]
    assert secretaries and all(g["invisible"]["clinical-note"]["patients"] > 0 for g in secretaries)

    # Applied through the national directory administrator's mutation: the same operation, another door.
    variables = {"from": gid("Municipality", NORDBY), "into": gid("Municipality", FJORDVIK)}
    applied = journal.query(MERGE, "directory-admin", variables)
    assert "errors" not in applied, applied
    done = applied["data"]["mergeMunicipalities"]
    assert done["applied"] is True
    assert done["patientsMoved"] == change["patients_moved"]
    assert done["careRelationsMoved"] == change["care_relations_moved"] > 0
    assert done["rolesMoved"] == change["roles_moved"]
    assert done["restrictionsCarriedOver"] == change["restrictions_carried_over"]
    assert sorted((u["name"], u["change"]) for u in done["units"]) == sorted(
        (u["name"], u["change"]) for u in change["units"]
    )
    for who, token in people.items():
        after = patients_seen(journal, token)
        assert after == {c: preview["people"][who]["after"].get(c, 0) for c in after}, who

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
        "SELECT resource_ids FROM audit_event WHERE actor_id = $1 AND resource_kind = 'care_relation' "
        "AND reason = 'REORGANIZATION'",
        str(PERSONAS["directory-admin"].entity_id),
    )
    assert len(moved) == done["careRelationsMoved"]
    patients = journal.fetch(
        "SELECT count(*) AS n FROM audit_event WHERE actor_id = $1 AND resource_kind = 'patient' AND action = 'update' "
        "AND reason = 'REORGANIZATION'",
        str(PERSONAS["directory-admin"].entity_id),
    )
    assert patients[0]["n"] == done["patientsMoved"], "every patient who changed municipality is audited"
    late = journal.query(
        'mutation($m: ID!) { createOrganization(input: {name: "Nordby barnevern", orgNumber: "987654321", '
        "unitType: BARNEVERN, municipalityId: $m}) { id } }",
        "directory-admin",
        {"m": gid("Municipality", NORDBY)},
    )
    assert late["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", "no new units in a merged municipality"
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
    assert report["applied"] is True
    assert [u["name"] for u in report["reorganization"]["units"]] == ["Havlia legekontor 1"]
    groups = {(g["role"], g["unit"]): g for g in report["groups"]}
    secretaries = groups["health_secretary", "Havlia legekontor 1"]
    assert secretaries["invisible"]["clinical-note"]["patients"] > 0
    [row] = journal.fetch(
        "SELECT m.name FROM organization o JOIN municipality m ON m.id = o.municipality_id WHERE o.name = $1",
        "Havlia legekontor 1",
    )
    assert row["name"] == "Fjordvik kommune"


def test_applying_a_merger_needs_its_policy_scope_chosen(journal: Gateway) -> None:
    done = akson(journal, "org", "merge", "--from", "Havlia", "--into", "Fjordvik")
    assert done.returncode == 2 and "choose the merged municipality's policy scope" in done.stdout, done.stdout
