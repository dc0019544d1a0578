"""The authorization matrix: for every persona, every kind of journal data and both read paths (one
item by id, and lists), what the API returns equals what an oracle computes in plain Python from the
rules in DESIGN.md, reading the journal's tables directly. Zero differences.

The oracle knows nothing of the policies or the gateway's SQL: it restates rules 1 to 6 over plain
rows. A few extra states are set up for the run (a withheld item, an item and a unit restriction, an
emergency grant) and undone afterwards.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from gateway.personas import CHILD_PATIENT_ID, CITIZEN_PATIENT_ID, PERSONAS
from gateway.sql import ident, sql
from tests.conftest import Gateway, gid, raw_id

# kind -> (table, GraphQL type, FHIR-style category column or None)
KINDS = {
    "patient": ("patient", "Patient", None),
    "care_relation": ("care_relation", "CareRelation", None),
    "encounter": ("encounter", "Encounter", None),
    "observation": ("observation", "Observation", "category"),
    "diagnostic_report": ("diagnostic_report", "DiagnosticReport", "category"),
    "condition": ("condition", "Condition", "category"),
    "medication_statement": ("medication_statement", "MedicationStatement", None),
    "allergy_intolerance": ("allergy_intolerance", "AllergyIntolerance", "category"),
    "clinical_note": ("clinical_note", "ClinicalNote", None),
    "care_plan": ("care_plan", "CarePlan", None),
    "appointment": ("appointment", "Appointment", None),
    "restriction": ("restriction", "Restriction", None),
}
EPISODE_COLUMN = {
    "encounter": "id",
    "observation": "encounter_id",
    "diagnostic_report": "encounter_id",
    "condition": "encounter_id",
    "clinical_note": "encounter_id",
}

# DESIGN.md rule 2, restated: what each role may see.
ALL_BUT_SENSITIVE = {
    "demographics",
    "administrative",
    "clinical",
    "medication",
    "critical-information",
    "clinical-note",
    "restriction",
}
ROLE_CATEGORIES: dict[str, set[str]] = {
    "doctor": ALL_BUT_SENSITIVE | {"sensitive"},
    "nurse": ALL_BUT_SENSITIVE,
    "public_health_nurse": ALL_BUT_SENSITIVE,
    "care_worker": {
        "demographics",
        "administrative",
        "clinical",
        "medication",
        "critical-information",
        "clinical-note",
    },
    "physiotherapist": {"demographics", "administrative", "clinical", "critical-information"},
    "health_secretary": {"demographics", "administrative", "clinical-note"},
}
PERSONA_NAMES = [
    "homecare-nurse",
    "gp",
    "health-secretary",
    "nurse-other-municipality",
    "citizen",
    "parent",
    "vendor-app",
    "policy-admin",
]


@dataclass
class World:
    """The journal's facts the rules speak of, read straight from the tables."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    birth: dict[str, date] = field(default_factory=dict)
    care: set[tuple[str, str]] = field(default_factory=set)  # (patient, unit or practitioner)
    person_blocks: set[tuple[str, str, str | None]] = field(default_factory=set)  # (patient, practitioner, category)
    unit_blocks: set[tuple[str, str, str | None]] = field(default_factory=set)
    item_blocks: set[str] = field(default_factory=set)
    episode_blocks: set[str] = field(default_factory=set)
    category_blocks: set[tuple[str, str]] = field(default_factory=set)
    guardian_blocks: set[tuple[str, str | None]] = field(default_factory=set)
    grants: dict[tuple[str, str], bool] = field(default_factory=dict)  # (patient, practitioner) -> life threat
    roles: dict[str, set[str]] = field(default_factory=dict)
    units: dict[str, set[str]] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    unit_scope: dict[str, str] = field(default_factory=dict)  # unit -> its municipality's policy scope


def load_world(gateway: Gateway) -> World:
    world = World()
    for kind, (table, _, _) in KINDS.items():
        rows = gateway.fetch(sql("SELECT * FROM ", ident(table)))
        world.rows[kind] = [{k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in r.items()} for r in rows]
    world.birth = {r["id"]: r["birth_date"] for r in world.rows["patient"]}
    for r in gateway.fetch(
        "SELECT patient_id, organization_id, practitioner_id FROM care_relation "
        "WHERE period_start <= now() AND (period_end IS NULL OR period_end > now())"
    ):
        world.care.add((str(r["patient_id"]), str(r["organization_id"])))
        if r["practitioner_id"]:
            world.care.add((str(r["patient_id"]), str(r["practitioner_id"])))
    for r in gateway.fetch(
        "SELECT * FROM restriction WHERE lifted_at IS NULL AND period_start <= now() "
        "AND (period_end IS NULL OR period_end > now())"
    ):
        patient = str(r["patient_id"])
        if r["scope"] == "person":
            world.person_blocks.add((patient, str(r["target_practitioner_id"]), r["target_category"]))
        elif r["scope"] == "unit":
            world.unit_blocks.add((patient, str(r["target_unit_id"]), r["target_category"]))
        elif r["scope"] == "item":
            world.item_blocks.add(str(r["target_id"]))
        elif r["scope"] == "episode":
            world.episode_blocks.add(str(r["target_id"]))
        elif r["scope"] == "category":
            world.category_blocks.add((patient, r["target_category"]))
        elif r["scope"] == "guardians":
            world.guardian_blocks.add((patient, r["target_category"]))
    for r in gateway.fetch(
        "SELECT patient_id, practitioner_id, life_or_health_at_risk FROM emergency_grant "
        "WHERE granted_at <= now() AND expires_at > now()"
    ):
        key = (str(r["patient_id"]), str(r["practitioner_id"]))
        world.grants[key] = world.grants.get(key, False) or r["life_or_health_at_risk"]
    for r in gateway.fetch(
        "SELECT practitioner_id, organization_id, role FROM practitioner_role "
        "WHERE period_start <= current_date AND (period_end IS NULL OR period_end >= current_date)"
    ):
        world.roles.setdefault(str(r["practitioner_id"]), set()).add(r["role"])
        world.units.setdefault(str(r["practitioner_id"]), set()).add(str(r["organization_id"]))
    for r in gateway.fetch(
        "SELECT o.id, m.policy_scope FROM organization o JOIN municipality m ON m.id = o.municipality_id"
    ):
        world.unit_scope[str(r["id"])] = r["policy_scope"]
    for r in gateway.fetch("SELECT guardian_national_id, child_patient_id FROM guardianship WHERE basis = 'parent'"):
        world.children.setdefault(r["guardian_national_id"], set()).add(str(r["child_patient_id"]))
    return world


def age(born: date) -> int:
    today = date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def data_category(kind: str, row: dict[str, Any]) -> str:
    return "demographics" if kind == "patient" else str(row["data_category"])


def visible(world: World, persona_name: str, kind: str, row: dict[str, Any]) -> bool:
    """DESIGN.md rules 1 to 6 for one persona and one row, in plain Python."""
    persona = PERSONAS[persona_name]
    patient = row["id"] if kind == "patient" else row["patient_id"]
    category = data_category(kind, row)
    withheld = kind != "patient" and bool(row["withheld_from_patient"])
    if persona.kind == "service":
        return False  # rule 6 and no rule lets a backend service read patient data
    if persona.kind == "citizen":
        own = str(CITIZEN_PATIENT_ID) if persona_name == "citizen" else None
        children = world.children.get(persona.national_id or "", set())
        launch = str(persona.launch_patient_id) if persona.launch_patient_id else own
        if patient != launch or withheld:  # patient/ scopes reach the launch patient only; harm exception
            return False
        if patient == own:
            return True
        if patient in children:
            years = age(world.birth[patient])
            blocked = any(p == patient and c in (None, category) for p, c in world.guardian_blocks)
            return years < 12 or (years < 16 and not blocked)
        return False
    me = str(persona.entity_id)
    roles = world.roles.get(me, set())
    if not any(category in ROLE_CATEGORIES.get(role, set()) for role in roles):
        return False  # rule 2 (also: personnel with no care role, like a policy admin, see nothing)
    if (
        kind == "clinical_note"
        and "health_secretary" in roles
        and world.unit_scope.get(row["owning_unit_id"]) == "fjordvik"
    ):
        return False  # Fjordvik's local rule: its health secretaries do not see that notes exist
    related = (patient, me) in world.care or any((patient, u) in world.care for u in world.units.get(me, set()))
    grant = world.grants.get((patient, me))
    if not related and grant is None:
        return False  # rule 1 (and rule 4)
    episode = row.get(EPISODE_COLUMN.get(kind, ""), None) if kind in EPISODE_COLUMN else None
    restricted = (
        any(p == patient and t == me and c in (None, category) for p, t, c in world.person_blocks)
        or any(
            p == patient and t in world.units.get(me, set()) and c in (None, category) for p, t, c in world.unit_blocks
        )
        or row["id"] in world.item_blocks
        or (episode is not None and str(episode) in world.episode_blocks)
        or (patient, category) in world.category_blocks
    )
    return not restricted or bool(grant)  # rule 3, pierced only by a life-or-health emergency grant


@pytest.fixture(scope="module")
def world(gateway: Gateway) -> Iterator[World]:
    """Extra states for the matrix: withheld, blocked and opened in an emergency, undone afterwards."""
    nurse, nordby = PERSONAS["homecare-nurse"], PERSONAS["nurse-other-municipality"]
    homecare = str(nurse.unit_id)
    obs = gateway.fetch("SELECT id FROM observation WHERE patient_id = $1 ORDER BY id LIMIT 2", CITIZEN_PATIENT_ID)
    enc = gateway.fetch("SELECT id FROM encounter WHERE patient_id = $1 ORDER BY id LIMIT 1", CITIZEN_PATIENT_ID)
    other = gateway.fetch(
        "SELECT patient_id FROM care_relation WHERE organization_id = $1 AND patient_id <> $2 AND period_end IS NULL "
        "ORDER BY patient_id LIMIT 1",
        uuid.UUID(homecare),
        CITIZEN_PATIENT_ID,
    )[0]["patient_id"]
    made: list[uuid.UUID] = []
    gateway.fetch(
        "UPDATE observation SET withheld_from_patient = true, withheld_by = $2, withheld_reason = 'harm' WHERE id = $1",
        obs[0]["id"],
        PERSONAS["gp"].entity_id,
    )
    for scope, patient, target, unit, category in [
        ("item", CITIZEN_PATIENT_ID, obs[1]["id"], None, None),
        ("episode", CITIZEN_PATIENT_ID, enc[0]["id"], None, None),
        ("unit", other, None, uuid.UUID(homecare), None),
        ("category", CITIZEN_PATIENT_ID, None, None, "medication"),
    ]:
        rid = uuid.uuid4()
        made.append(rid)
        gateway.fetch(
            "INSERT INTO restriction (id, patient_id, owning_unit_id, scope, target_id, target_unit_id, "
            "target_category, reason, period_start, created_at) "
            "SELECT $1, p.id, p.owning_unit_id, $3, $4, $5, $6, 'matrix', now(), now() FROM patient p WHERE p.id = $2",
            rid,
            patient,
            scope,
            target,
            unit,
            category,
        )
    grant = uuid.uuid4()
    gateway.fetch(
        "INSERT INTO emergency_grant (id, patient_id, practitioner_id, reason, life_or_health_at_risk, "
        "expires_at) VALUES ($1, $2, $3, 'matrix emergency access', false, now() + interval '1 hour')",
        grant,
        CHILD_PATIENT_ID,
        nordby.entity_id,
    )
    try:
        yield load_world(gateway)
    finally:
        gateway.fetch("UPDATE emergency_grant SET expires_at = now() WHERE id = $1", grant)
        gateway.fetch(
            "UPDATE restriction SET lifted_at = now(), lifted_reason = 'matrix done' WHERE id = ANY($1)", made
        )
        gateway.fetch(
            "UPDATE observation SET withheld_from_patient = false, withheld_by = NULL, withheld_reason = NULL "
            "WHERE id = $1",
            obs[0]["id"],
        )


def listed_rows(world: World, kind: str) -> list[dict[str, Any]]:
    """The rows a list holds at most: those not entered in error."""
    return [r for r in world.rows[kind] if r.get("entered_in_error_at") is None]


def sample(world: World, kind: str, rng: random.Random) -> list[dict[str, Any]]:
    """Rows worth asking about: the demo patients' and a random spread of everyone else's."""
    rows = world.rows[kind]
    special = {str(CITIZEN_PATIENT_ID), str(CHILD_PATIENT_ID)}
    mine = [r for r in rows if (r["id"] if kind == "patient" else r["patient_id"]) in special]
    rest = [r for r in rows if r not in mine]
    return mine[:25] + rng.sample(rest, min(35, len(rest)))


def test_every_persona_kind_and_read_path_matches_the_oracle(gateway: Gateway, world: World) -> None:
    rng = random.Random(5)
    compared = 0
    # (persona, kind, row id or "*", action, what the API gave, what the oracle wants)
    differences: list[tuple[str, str, Any, str, int, int]] = []
    shown: dict[str, int] = {}
    for persona in PERSONA_NAMES:
        token = gateway.token(persona)
        for kind, (_, type_name, _) in KINDS.items():
            rows = sample(world, kind, rng)
            for start in range(0, len(rows), 25):
                chunk = rows[start : start + 25]
                query = (
                    "{ "
                    + " ".join(f'n{i}: node(id: "{gid(type_name, r["id"])}") {{ id }}' for i, r in enumerate(chunk))
                    + " }"
                )
                data = gateway.post(query, token=token).json()["data"]
                for i, row in enumerate(chunk):
                    got = data[f"n{i}"] is not None
                    want = visible(world, persona, kind, row)
                    compared += 1
                    shown[persona] = shown.get(persona, 0) + got
                    if got != want:
                        differences.append((persona, kind, row["id"], "read", got, want))
        listed = gateway.post("{ patients(first: 100) { totalCount edges { node { id } } } }", token=token).json()
        # Lists leave out what was entered in error (it stays readable by id).
        want_patients = {r["id"] for r in listed_rows(world, "patient") if visible(world, persona, "patient", r)}
        got_patients = {raw_id(e["node"]["id"]) for e in listed["data"]["patients"]["edges"]}
        compared += 1
        if listed["data"]["patients"]["totalCount"] != len(want_patients) or (
            len(want_patients) <= 100 and got_patients != want_patients
        ):
            differences.append((persona, "patient", "*", "search", len(got_patients), len(want_patients)))
        observations = gateway.post("{ observations(first: 1) { totalCount } }", token=token).json()
        want_obs = sum(1 for r in listed_rows(world, "observation") if visible(world, persona, "observation", r))
        compared += 1
        if observations["data"]["observations"]["totalCount"] != want_obs:
            differences.append(
                (persona, "observation", "*", "search", observations["data"]["observations"]["totalCount"], want_obs)
            )
    print(f"\nauthorization matrix: compared {compared} cases, {len(differences)} differences; items shown: {shown}")
    assert differences == [], differences[:20]
    assert compared > 2000
    # The matrix is only worth something if every kind of answer occurs.
    assert shown["homecare-nurse"] > 50 and shown["gp"] > 100 and shown["citizen"] > 50 and shown["parent"] > 5
    assert shown["vendor-app"] == 0 and shown["policy-admin"] == 0
    assert 0 < shown["health-secretary"] < shown["gp"]
    assert 0 < shown["nurse-other-municipality"], "the emergency grant and Nordby's own patients show"
