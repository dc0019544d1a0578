"""The directory's write side: a municipality's administrator keeps its units, people and roles through the API,
the national directory administrator keeps the units of no municipality, every write is decided by policy and
audited, and a person acts in a unit in the role they hold there."""

from __future__ import annotations

import random
import uuid
from typing import Any

from gateway.demo_issuer import CLAIM_HPR_NUMBER, CLAIM_PERSONNEL_PID
from gateway.personas import FJORDVIK, FJORDVIK_GP_OFFICE, FJORDVIK_HOMECARE, NORDBY, PERSONAS
from tests.conftest import Gateway, gid, raw_id

ADMIN = "municipal-admin"
CREATE_UNIT = """mutation($input: OrganizationInput!) { createOrganization(input: $input) {
  id name unitType version municipality { name } parent { id } } }"""
UPDATE_UNIT = """mutation($id: ID!, $version: Int!, $patch: OrganizationPatch!) {
  updateOrganization(id: $id, expectedVersion: $version, input: $patch) { id name version } }"""
CREATE_PERSON = """mutation($input: PractitionerInput!) { createPractitioner(input: $input) {
  id hprNumber healthPersonnel nationalIdentityNumber } }"""
CREATE_ROLE = """mutation($input: PractitionerRoleInput!) { createPractitionerRole(input: $input) {
  id role period { start end } organization { name } } }"""
MUNICIPALITY_UNITS = """query { municipalities(first: 10) { edges { node { name number policyScope
  units(first: 50) { totalCount edges { node { id name } } } } } } }"""


def org_number() -> str:
    return f"{random.randrange(10**8, 10**9)}"


def national_id() -> str:
    """An 11-digit number no seeded person has (the journal checks only its shape for practitioners)."""
    return f"9{random.randrange(10**9, 10**10)}"


def unit_input(name: str, unit_type: str = "NAV", municipality: uuid.UUID | None = FJORDVIK) -> dict[str, Any]:
    given: dict[str, Any] = {"name": name, "orgNumber": org_number(), "unitType": unit_type}
    if municipality is not None:
        given["municipalityId"] = gid("Municipality", municipality)
    return given


def audited(gateway: Gateway, persona: str, kind: str, rid: str) -> list[str]:
    rows = gateway.fetch(
        "SELECT action, decision, reason FROM audit_event WHERE actor_id = $1 AND resource_kind = $2 "
        "AND $3 = ANY(resource_ids) ORDER BY recorded_at",
        str(PERSONAS[persona].entity_id),
        kind,
        rid,
    )
    return [f"{r['action']} {r['decision']} {r['reason']}" for r in rows]


def register(gateway: Gateway, family: str, *, hpr: str | None, health_personnel: bool = True) -> tuple[str, str]:
    """A person registered by the municipal administrator: (global id, national id)."""
    nid = national_id()
    given: dict[str, Any] = {
        "name": {"family": family, "given": ["Test"]},
        "nationalIdentityNumber": nid,
        "healthPersonnel": health_personnel,
    }
    if hpr is not None:
        given["hprNumber"] = hpr
    done = gateway.query(CREATE_PERSON, ADMIN, {"input": given})
    assert "errors" not in done, done
    return done["data"]["createPractitioner"]["id"], nid


def give_role(gateway: Gateway, person: str, unit: uuid.UUID | str, role: str) -> dict[str, Any]:
    unit_id = unit if isinstance(unit, str) else gid("Organization", unit)
    return gateway.query(
        CREATE_ROLE,
        ADMIN,
        {
            "input": {
                "role": role,
                "period": {"start": "2026-01-01"},
                "practitionerId": person,
                "organizationId": unit_id,
            }
        },
    )


def as_person(gateway: Gateway, nid: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    token = gateway.token("gp", **{CLAIM_PERSONNEL_PID: nid, CLAIM_HPR_NUMBER: None})
    response = gateway.post(query, token=token, variables=variables)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_municipal_admin_creates_and_renames_a_unit_of_their_municipality_audited(gateway: Gateway) -> None:
    made = gateway.query(CREATE_UNIT, ADMIN, {"input": unit_input("Nav Fjordvik")})
    assert "errors" not in made, made
    unit = made["data"]["createOrganization"]
    assert unit["unitType"] == "NAV" and unit["municipality"] == {"name": "Fjordvik kommune"} and unit["version"] == 1
    renamed = gateway.query(
        UPDATE_UNIT, ADMIN, {"id": unit["id"], "version": 1, "patch": {"name": "Nav Fjordvik sentrum"}}
    )
    assert "data" in renamed, renamed
    assert renamed["data"]["updateOrganization"] == {"id": unit["id"], "name": "Nav Fjordvik sentrum", "version": 2}
    assert audited(gateway, ADMIN, "organization", raw_id(unit["id"])) == [
        "create ALLOW DIRECTORY_ADMIN",
        "update ALLOW DIRECTORY_ADMIN",
    ]
    listed = gateway.query(MUNICIPALITY_UNITS, "gp")
    fjordvik = next(e["node"] for e in listed["data"]["municipalities"]["edges"] if e["node"]["number"] == "9901")
    assert "Nav Fjordvik sentrum" in [e["node"]["name"] for e in fjordvik["units"]["edges"]]
    assert fjordvik["units"]["totalCount"] == len(fjordvik["units"]["edges"])


def test_a_municipal_admin_may_not_keep_another_municipalitys_units_and_nothing_is_written(gateway: Gateway) -> None:
    refused = gateway.query(CREATE_UNIT, ADMIN, {"input": unit_input("Barnevernet i Nordby", "BARNEVERN", NORDBY)})
    assert refused["data"] is None
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN" and error["extensions"]["reason"] == "NOT_YOUR_MUNICIPALITY"
    assert gateway.fetch("SELECT id FROM organization WHERE name = 'Barnevernet i Nordby'") == []
    clinician = gateway.query(CREATE_UNIT, "gp", {"input": unit_input("Fjordvik barnevern", "BARNEVERN")})
    assert clinician["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert gateway.fetch("SELECT id FROM organization WHERE name = 'Fjordvik barnevern'") == []


def test_the_national_directory_admin_creates_a_hospital_department_of_no_municipality(gateway: Gateway) -> None:
    made = gateway.query(
        CREATE_UNIT, "directory-admin", {"input": unit_input("Fjord sykehus, barneavdeling", "SYKEHUSAVDELING", None)}
    )
    assert "errors" not in made, made
    assert made["data"]["createOrganization"]["municipality"] is None
    local = gateway.query(CREATE_UNIT, ADMIN, {"input": unit_input("Fjord sykehus, ortopedi", "SYKEHUSAVDELING", None)})
    assert local["errors"][0]["extensions"]["reason"] == "NOT_YOUR_MUNICIPALITY"


def test_personnel_who_are_not_health_personnel_are_flagged_and_see_no_patient_data(gateway: Gateway) -> None:
    nav = gateway.query(CREATE_UNIT, ADMIN, {"input": unit_input("Nav Fjordvik vest")})["data"]["createOrganization"]
    person, nid = register(gateway, "Sosialarbeider", hpr=None, health_personnel=False)
    role = give_role(gateway, person, nav["id"], "NAV_ADVISOR")
    assert "errors" not in role, role
    assert role["data"]["createPractitionerRole"]["organization"] == {"name": "Nav Fjordvik vest"}
    [row] = gateway.fetch("SELECT health_personnel, hpr_number FROM practitioner WHERE id = $1", raw_id(person))
    assert row["health_personnel"] is False and row["hpr_number"] is None
    seen = as_person(gateway, nid, "{ patients(first: 5) { totalCount } }")
    assert seen["data"]["patients"]["totalCount"] == 0
    with_hpr = gateway.query(
        CREATE_PERSON,
        ADMIN,
        {"input": {"name": {"family": "Feil", "given": ["A"]}, "nationalIdentityNumber": national_id(),
                   "hprNumber": "1234567", "healthPersonnel": False}},
    )  # fmt: skip
    assert with_hpr["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_the_national_identity_number_is_shown_only_to_those_who_keep_the_directory(gateway: Gateway) -> None:
    person, nid = register(gateway, "Synlig", hpr=f"{random.randrange(10**6, 10**7)}7")
    query = "query($id: ID!) { node(id: $id) { ... on Practitioner { nationalIdentityNumber } } }"
    assert gateway.query(query, ADMIN, {"id": person})["data"]["node"] == {"nationalIdentityNumber": nid}
    hidden = gateway.query(query, "gp", {"id": person})
    assert hidden["data"]["node"] is None or hidden["data"]["node"]["nationalIdentityNumber"] is None
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_doctor_in_one_unit_who_is_a_secretary_in_another_is_a_secretary_there(gateway: Gateway) -> None:
    person, nid = register(gateway, "Tolegger", hpr=f"{random.randrange(10**6, 10**7)}8")
    assert "errors" not in give_role(gateway, person, FJORDVIK_HOMECARE, "DOCTOR")
    assert "errors" not in give_role(gateway, person, FJORDVIK_GP_OFFICE, "HEALTH_SECRETARY")

    def cared_for_only_by(unit: uuid.UUID, other: uuid.UUID) -> tuple[str, int]:
        [row] = gateway.fetch(
            """SELECT c.patient_id, count(*) AS n FROM condition c
                WHERE c.entered_in_error_at IS NULL
                  AND EXISTS (SELECT 1 FROM care_relation r WHERE r.patient_id = c.patient_id
                                 AND r.organization_id = $1 AND r.period_end IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM care_relation r WHERE r.patient_id = c.patient_id
                                     AND r.organization_id = $2 AND r.period_end IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM restriction x WHERE x.patient_id = c.patient_id)
                GROUP BY c.patient_id ORDER BY c.patient_id LIMIT 1""",
            unit,
            other,
        )
        return gid("Patient", row["patient_id"]), row["n"]

    query = """query($id: ID!) { node(id: $id) { ... on Patient { name { family }
      conditions(first: 50) { totalCount } } } }"""
    as_doctor, conditions = cared_for_only_by(FJORDVIK_HOMECARE, FJORDVIK_GP_OFFICE)
    as_secretary, _ = cared_for_only_by(FJORDVIK_GP_OFFICE, FJORDVIK_HOMECARE)
    doctor_sees = as_person(gateway, nid, query, {"id": as_doctor})["data"]["node"]
    assert doctor_sees["conditions"]["totalCount"] == conditions > 0
    secretary_sees = as_person(gateway, nid, query, {"id": as_secretary})["data"]["node"]
    assert secretary_sees["name"]["family"], "a secretary sees who the patient is"
    assert secretary_sees["conditions"]["totalCount"] == 0, "but not their diagnoses"


MERGE = """mutation($from: ID!, $into: ID!, $scope: String, $dryRun: Boolean!) {
  mergeMunicipalities(from: $from, into: $into, policyScope: $scope, combineUnits: true, dryRun: $dryRun) {
    applied title patientsMoved careRelationsMoved policyScopeAfter units { name change intoId } } }"""
MOVE = """mutation($id: ID!, $to: ID!, $dryRun: Boolean!) { moveUnit(id: $id, to: $to, dryRun: $dryRun) {
  applied units { unitId name change } } }"""
WHOLE_TABLES = ("municipality", "organization", "patient", "care_relation", "practitioner_role")


def table_fingerprints(gateway: Gateway) -> list[Any]:
    return [
        gateway.fetch(f"SELECT count(*), coalesce(sum(hashtext(t::text)), 0) FROM {table} t")[0]  # noqa: S608
        for table in WHOLE_TABLES
    ]


def test_the_national_directory_admin_previews_a_merger_and_nothing_changes(gateway: Gateway) -> None:
    before = table_fingerprints(gateway)
    variables = {"from": gid("Municipality", NORDBY), "into": gid("Municipality", FJORDVIK), "scope": "fjordvik"}
    preview = gateway.query(MERGE, "directory-admin", {**variables, "dryRun": True})
    assert "errors" not in preview, preview
    done = preview["data"]["mergeMunicipalities"]
    assert done["applied"] is False and done["policyScopeAfter"] == "fjordvik" and done["patientsMoved"] > 0
    combined = {u["name"]: u["intoId"] for u in done["units"] if u["change"] == "combined"}
    assert combined["Nordby hjemmetjeneste"] == gid("Organization", FJORDVIK_HOMECARE)
    assert table_fingerprints(gateway) == before
    [previewed] = gateway.fetch(
        "SELECT resource_ids FROM audit_event WHERE actor_id = $1 AND action = 'preview_merge'",
        str(PERSONAS["directory-admin"].entity_id),
    )
    assert previewed["resource_ids"] == [str(NORDBY), str(FJORDVIK)]
    refused = gateway.query(MERGE, ADMIN, {**variables, "dryRun": False})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert table_fingerprints(gateway) == before


def test_the_national_directory_admin_moves_a_unit_to_another_municipality(gateway: Gateway) -> None:
    unit = gateway.query(CREATE_UNIT, ADMIN, {"input": unit_input("Nav Fjordvik nord")})["data"]["createOrganization"]
    havlia = gateway.fetch("SELECT id FROM municipality WHERE name = 'Havlia kommune'")[0]["id"]
    moved = gateway.query(
        MOVE, "directory-admin", {"id": unit["id"], "to": gid("Municipality", havlia), "dryRun": False}
    )
    assert moved["data"]["moveUnit"] == {
        "applied": True,
        "units": [{"unitId": unit["id"], "name": "Nav Fjordvik nord", "change": "moved"}],
    }
    [row] = gateway.fetch("SELECT municipality_id FROM organization WHERE id = $1", raw_id(unit["id"]))
    assert row["municipality_id"] == havlia
    audit = gateway.fetch(
        "SELECT decision, reason FROM audit_event WHERE resource_kind = 'organization' AND action = 'move' "
        "AND $1 = ANY(resource_ids) AND actor_id = $2",
        raw_id(unit["id"]),
        str(PERSONAS["directory-admin"].entity_id),
    )
    assert sorted((a["decision"], a["reason"]) for a in audit) == [
        ("ALLOW", "DIRECTORY_ADMIN"),  # the decision
        ("ALLOW", "REORGANIZATION"),  # what it did: the units moved
    ]


def test_nobody_gives_themselves_a_role_not_even_the_administrator(gateway: Gateway) -> None:
    admin = gid("Practitioner", PERSONAS[ADMIN].entity_id)
    refused = give_role(gateway, admin, FJORDVIK_HOMECARE, "DOCTOR")
    assert refused["errors"][0]["extensions"]["reason"] == "OWN_ROLE"
    held = gateway.fetch("SELECT count(*) AS n FROM practitioner_role WHERE practitioner_id = $1", raw_id(admin))
    assert held[0]["n"] == 0
