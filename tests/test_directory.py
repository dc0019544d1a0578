"""The directory through the API: practitioners found by HPR number or the start of their family name, a
unit's staff, and an organization's parent and children, each decided by the directory's policies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.personas import FJORDVIK, FJORDVIK_HOMECARE, HOSPITAL_LABORATORY, HOSPITAL_RADIOLOGY, PERSONAS
from tests.conftest import Gateway, gid

PRACTITIONERS = """query($filter: PractitionerFilter) { practitioners(first: 20, filter: $filter) {
  totalCount edges { node { id hprNumber name { family given } roles(first: 5) { edges { node { role } } } } } } }"""
UNIT = """query($id: ID!) { node(id: $id) { ... on Organization { name parent { id name }
  children(first: 10, order: OLDEST_FIRST) { totalCount edges { node { id name } } }
  staff(first: 50) { totalCount edges { node { role practitioner { id hprNumber } } } } } } }"""


def test_a_practitioner_is_found_by_hpr_number_or_the_start_of_the_family_name(gateway: Gateway) -> None:
    nurse = PERSONAS["homecare-nurse"]
    by_number = gateway.query(PRACTITIONERS, "gp", {"filter": {"hprNumber": nurse.hpr_number}})
    assert "errors" not in by_number, by_number
    [found] = by_number["data"]["practitioners"]["edges"]
    assert found["node"]["id"] == gid("Practitioner", nurse.entity_id)
    assert [e["node"]["role"] for e in found["node"]["roles"]["edges"]] == ["NURSE"]
    by_name = gateway.query(PRACTITIONERS, "gp", {"filter": {"name": nurse.family_name[:4].upper()}})
    names = [e["node"]["name"]["family"] for e in by_name["data"]["practitioners"]["edges"]]
    assert nurse.family_name in names and all(n.lower().startswith(nurse.family_name[:4].lower()) for n in names)
    wildcard = gateway.query(PRACTITIONERS, "gp", {"filter": {"name": "%"}})
    assert wildcard["data"]["practitioners"]["totalCount"] == 0


def test_a_units_staff_are_the_roles_held_in_it(gateway: Gateway) -> None:
    seen = gateway.query(UNIT, "gp", {"id": gid("Organization", FJORDVIK_HOMECARE)})
    assert "errors" not in seen, seen
    staff = seen["data"]["node"]["staff"]
    held = gateway.fetch("SELECT count(*) AS n FROM practitioner_role WHERE organization_id = $1", FJORDVIK_HOMECARE)
    assert staff["totalCount"] == held[0]["n"] > 0
    nurse = PERSONAS["homecare-nurse"]
    assert {
        "role": "NURSE",
        "practitioner": {"id": gid("Practitioner", nurse.entity_id), "hprNumber": nurse.hpr_number},
    } in [e["node"] for e in staff["edges"]]


@pytest.fixture
def hospital(gateway: Gateway) -> Iterator[uuid.UUID]:
    """A hospital with its laboratory and radiology as its departments (set by SQL, as units are today)."""
    parent = uuid.uuid4()
    gateway.fetch(
        "INSERT INTO organization (id, municipality_id, org_number, name, unit_type) "
        "VALUES ($1, $2, $3, 'Fjord sykehus', 'sykehusavdeling')",
        parent,
        FJORDVIK,
        f"{parent.int % 10**9:09d}",
    )
    gateway.fetch(
        "UPDATE organization SET parent_id = $1 WHERE id = ANY($2::uuid[])",
        parent,
        [HOSPITAL_LABORATORY, HOSPITAL_RADIOLOGY],
    )
    try:
        yield parent
    finally:
        gateway.fetch("UPDATE organization SET parent_id = NULL WHERE parent_id = $1", parent)
        gateway.fetch("DELETE FROM organization WHERE id = $1", parent)


def test_an_organization_shows_its_parent_and_its_children(gateway: Gateway, hospital: uuid.UUID) -> None:
    lab = gateway.query(UNIT, "gp", {"id": gid("Organization", HOSPITAL_LABORATORY)})["data"]["node"]
    assert lab["parent"] == {"id": gid("Organization", hospital), "name": "Fjord sykehus"}
    assert lab["children"]["totalCount"] == 0
    parent = gateway.query(UNIT, "gp", {"id": gid("Organization", hospital)})["data"]["node"]
    assert parent["parent"] is None
    assert {e["node"]["id"] for e in parent["children"]["edges"]} == {
        gid("Organization", HOSPITAL_LABORATORY),
        gid("Organization", HOSPITAL_RADIOLOGY),
    }
    token = gateway.token("gp")
    fhir = httpx.get(
        f"{gateway.base_url}/fhir/R4/Organization/{HOSPITAL_LABORATORY}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    assert fhir["partOf"] == {"reference": f"Organization/{hospital}"}
