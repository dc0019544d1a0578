"""The authorization matrix for writes: for every persona, every writable kind and every write action
(create, update, entered in error, and cancelling an appointment), whether the API writes equals what an
oracle in plain Python says from the write table of docs/policy-admin.md. Zero differences.

The oracle knows nothing of the policies: it restates who writes what (role x kind, within the data
categories the role may see), the work-related need (a care relation of one of the writer's units), the
emergency, service, laboratory and citizen rules, and each persona's SMART scopes (`c` creates, `u`
changes). Rows to change are made fresh for each cell by the GP, who may write every kind.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from gateway.national_id import synthetic_national_id
from gateway.personas import (
    CHILD_PATIENT_ID,
    CITIZEN_PATIENT_ID,
    FJORDVIK_GP_OFFICE,
    FJORDVIK_HOMECARE,
    PERSONAS,
)
from tests.conftest import CITIZEN, Gateway, gid
from tests.journal_inputs import (
    CANCEL,
    ENTERED_IN_ERROR,
    KIND_INPUTS,
    create_mutation,
    unit_patient,
    update_mutation,
)

ALL_KINDS = {
    "Patient",
    "CareRelation",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Condition",
    "MedicationStatement",
    "AllergyIntolerance",
    "CarePlan",
    "Appointment",
}
# Rule 2 for writes, restated: what each role records.
WRITE_TABLE: dict[str, set[str]] = {
    "doctor": ALL_KINDS,
    "nurse": {"Encounter", "Observation", "CarePlan"},
    "care_worker": {"Encounter", "Observation", "CarePlan"},
    "public_health_nurse": {"Encounter", "Observation", "CarePlan", "Patient"},
    "physiotherapist": {"Encounter", "Observation"},
    "health_secretary": {"Patient", "Appointment"},
}
# What each persona's token lets its app do: kinds it may create (`c`) and change (`u`); patient/ scopes
# reach only the launch patient, which for these personas is the one they write for.
SCOPES: dict[str, tuple[set[str], set[str]]] = {
    "homecare-nurse": (ALL_KINDS, ALL_KINDS),
    "gp": (ALL_KINDS, ALL_KINDS),
    "health-secretary": (ALL_KINDS, ALL_KINDS),
    "nurse-other-municipality": (ALL_KINDS, ALL_KINDS),
    "policy-admin": (ALL_KINDS, ALL_KINDS),
    "citizen": ({"Observation"}, {"Appointment"}),
    "parent": ({"Observation"}, {"Appointment"}),
    "vendor-app": (set(), set()),
    "lab-service": ({"DiagnosticReport", "Observation"}, {"DiagnosticReport", "Observation"}),
    "homecare-integration": ({"Appointment", "Encounter", "Observation"}, {"Appointment", "Encounter"}),
}
PERSONAS_UNDER_TEST = list(SCOPES)
ACTIONS = ("create", "update", "entered_in_error")


def allowed(persona: str, kind: str, action: str, caring_units: set[str]) -> bool:
    """DESIGN.md rules 1 to 7 for one write, in plain Python. `caring_units` are the units with an active
    care relation to the patient written about."""
    creates, changes = SCOPES[persona]
    if kind not in (creates if action == "create" else changes):
        return False  # rule 6: the app's scopes are the ceiling
    who = PERSONAS[persona]
    if persona in ("citizen", "parent"):
        # rule 5: home measurements (vital signs) and cancelling appointments, for their own or a young child's
        return (kind, action) in {("Observation", "create"), ("Appointment", "cancel")}
    if persona == "lab-service":
        # a laboratory delivers reports to a requesting unit that cares for the patient (a lone observation
        # names no requester, so it is refused as bad input)
        return (kind, action) == ("DiagnosticReport", "create") and str(FJORDVIK_GP_OFFICE) in caring_units
    if persona == "homecare-integration":
        return str(FJORDVIK_HOMECARE) in caring_units  # acting for home care, as its care relations allow
    if who.kind != "personnel" or who.role is None:
        return False  # no job role (a policy admin), no service acting for a unit: nothing to record
    if kind not in WRITE_TABLE[who.role]:
        return False
    if kind == "Appointment" and action == "cancel" and "Appointment" not in WRITE_TABLE[who.role]:
        return False
    return str(who.unit_id) in caring_units  # rule 1: a care relation of the writer's unit


def write_for(persona: str) -> tuple[str, uuid.UUID | None]:
    """The patient a persona writes for: the citizen and the parent their own record and their child's,
    everyone else the matrix patient."""
    own = {"citizen": (CITIZEN, CITIZEN_PATIENT_ID), "parent": (gid("Patient", CHILD_PATIENT_ID), CHILD_PATIENT_ID)}
    return own.get(persona, ("", None))


@pytest.fixture(scope="module")
def matrix_patient(gateway: Gateway) -> tuple[str, set[str]]:
    """An adult Fjordvik patient of home care and the GP office, without restrictions or grants."""
    found = unit_patient(gateway, last=True)
    return gid("Patient", found), caring(gateway, found)


def caring(gateway: Gateway, patient: uuid.UUID | None) -> set[str]:
    rows = gateway.fetch(
        "SELECT organization_id FROM care_relation WHERE patient_id = $1 AND period_start <= now() "
        "AND (period_end IS NULL OR period_end > now())",
        patient,
    )
    return {str(r["organization_id"]) for r in rows}


def unused_number(gateway: Gateway) -> str:
    """A synthetic national identity number no patient has yet."""
    while True:
        born = date(2025, 1, 1) + timedelta(days=uuid.uuid4().int % 365)
        number = synthetic_national_id(born, individual=uuid.uuid4().int % 400)
        if not gateway.fetch("SELECT 1 FROM patient WHERE national_id = $1", number):
            return number


def registration(number: str) -> dict[str, Any]:
    return {
        "nationalIdentityNumber": number,
        "name": {"family": "Test", "given": ["Matrise"]},
        "gender": "OTHER",
        "birthDate": "2026-11-30",
    }


class Cells:
    """Tries one write per cell through the API and compares with the oracle."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.differences: list[tuple[str, str, str, bool, bool, str]] = []
        self.tried: dict[tuple[str, bool], int] = {}

    def check(self, persona: str, kind: str, action: str, want: bool, mutation: str, variables: dict[str, Any]) -> None:
        result = self.gateway.query(mutation, persona, variables)
        got = bool(result.get("data")) and all(v is not None for v in result["data"].values())
        self.tried[(persona, got)] = self.tried.get((persona, got), 0) + 1
        if got != want:
            detail = str(result.get("errors", [{}])[0].get("extensions", {}))
            self.differences.append((persona, kind, action, got, want, detail))

    def made_by_gp(self, kind: str, patient: str) -> str:
        """A fresh resource to change, made by the GP."""
        if kind == "Patient":
            made = self.gateway.query(
                create_mutation("Patient"), "gp", {"input": registration(unused_number(self.gateway))}
            )
        else:
            _, create, _ = KIND_INPUTS[kind]
            made = self.gateway.query(create_mutation(kind), "gp", {"input": {"patientId": patient, **create}})
        assert "errors" not in made, made
        return str(made["data"][f"create{kind}"]["id"])


def test_every_persona_kind_and_write_action_matches_the_oracle(
    gateway: Gateway, matrix_patient: tuple[str, set[str]]
) -> None:
    cells = Cells(gateway)
    for persona in PERSONAS_UNDER_TEST:
        own, own_raw = write_for(persona)
        patient, units = (own, caring(gateway, own_raw)) if own else matrix_patient
        for kind in sorted(ALL_KINDS):
            for action in ACTIONS:
                want = allowed(persona, kind, action, units)
                if action == "create":
                    if kind == "Patient":
                        body = {"input": registration(unused_number(gateway))}
                        want = allowed(persona, kind, action, {str(PERSONAS[persona].unit_id)})
                    else:
                        body = {"input": {"patientId": patient, **KIND_INPUTS[kind][1]}}
                    cells.check(persona, kind, action, want, create_mutation(kind), body)
                    continue
                target = cells.made_by_gp(kind, patient)
                if kind == "Patient":
                    want = allowed(persona, kind, action, {str(FJORDVIK_GP_OFFICE)})
                if action == "update":
                    change = {"phone": "+47 900 00 000"} if kind == "Patient" else KIND_INPUTS[kind][2]
                    cells.check(
                        persona, kind, action, want, update_mutation(kind), {"id": target, "v": 1, "input": change}
                    )
                else:
                    cells.check(persona, kind, action, want, ENTERED_IN_ERROR, {"id": target})
        appointment = cells.made_by_gp("Appointment", patient)
        want = allowed(persona, "Appointment", "cancel", units)
        cells.check(persona, "Appointment", "cancel", want, CANCEL, {"id": appointment})
    compared = sum(cells.tried.values())
    print(f"\nwrite matrix: compared {compared} cells, {len(cells.differences)} differences; written: {cells.tried}")
    assert cells.differences == [], cells.differences[:20]
    assert compared == len(PERSONAS_UNDER_TEST) * (len(ALL_KINDS) * len(ACTIONS) + 1)
    # The matrix is only worth something if both answers occur where the rules say they should.
    assert cells.tried.get(("gp", False), 0) == 0, "a doctor caring for the patient writes every kind"
    mixed = ("homecare-nurse", "health-secretary", "citizen", "parent", "lab-service", "homecare-integration")
    for persona in mixed:
        assert cells.tried.get((persona, True), 0) > 0, persona
        assert cells.tried.get((persona, False), 0) > 0, persona
    for persona in ("vendor-app", "policy-admin", "nurse-other-municipality"):
        assert cells.tried.get((persona, True), 0) == 0, persona
