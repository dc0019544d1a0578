"""Red-team cases: alias tricks, nested paths to a blocked patient, node(id) probing and counting
hidden rows. A hidden row and a missing one must look the same everywhere."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from gateway.personas import CITIZEN_PATIENT_ID, PERSONAS
from gateway.sql import ident, sql, value
from tests.conftest import CITIZEN, Gateway, gid, restricted_from


def strip(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in {"locations", "path"}} for e in errors]


def test_aliases_probing_many_ids_learn_nothing_about_which_exist(gateway: Gateway) -> None:
    probes = [gid("Patient", uuid.uuid4()) for _ in range(20)] + [CITIZEN]
    query = "{ " + " ".join(f'p{i}: patient(id: "{p}") {{ id name {{ text }} }}' for i, p in enumerate(probes)) + " }"
    result = gateway.query(query, "nurse-other-municipality")
    assert all(v is None for v in result["data"].values())
    assert len({str(e) for e in strip(result["errors"])}) == 1, "every probe must fail the same way"
    assert "Nordmann" not in str(result)


def test_node_probing_of_hidden_items_of_every_kind_looks_like_missing_ones(gateway: Gateway) -> None:
    for table, type_name in [
        ("encounter", "Encounter"),
        ("observation", "Observation"),
        ("condition", "Condition"),
        ("medication_statement", "MedicationStatement"),
        ("clinical_note", "ClinicalNote"),
    ]:
        row = gateway.fetch(
            sql("SELECT id FROM ", ident(table), " WHERE patient_id = ", value(CITIZEN_PATIENT_ID, "uuid"), " LIMIT 1")
        )[0]
        query = "query($a: ID!, $b: ID!) { a: node(id: $a) { id } b: node(id: $b) { id } }"
        result = gateway.query(
            query, "nurse-other-municipality", {"a": gid(type_name, row["id"]), "b": gid(type_name, uuid.uuid4())}
        )
        assert result["data"] == {"a": None, "b": None}
        hidden, missing = strip(result["errors"])
        assert hidden == missing, type_name


WINDOW = "query($f: ObservationFilter) { observations(first: 100, filter: $f) { edges { node { patient { id } } } } }"


def test_nested_paths_do_not_lead_to_a_blocked_patient(gateway: Gateway) -> None:
    nurse = PERSONAS["homecare-nurse"]
    # the nurse's own list of observations, narrowed to an hour in which the patient has some
    [row] = gateway.fetch("SELECT max(effective_at) AS t FROM observation WHERE patient_id = $1", CITIZEN_PATIENT_ID)
    start, end = row["t"] - timedelta(hours=1), row["t"] + timedelta(seconds=1)
    window = {"f": {"effectiveFrom": start.isoformat(), "effectiveTo": end.isoformat()}}
    before = gateway.query(WINDOW, "homecare-nurse", window)
    assert "errors" not in before, before
    shown_before = [e["node"]["patient"]["id"] for e in before["data"]["observations"]["edges"]]
    assert CITIZEN in shown_before
    with restricted_from(gateway, "homecare-nurse", "red team"):
        # the same list under the sperring: the patient's rows are gone, everyone else's stay
        listed = gateway.query(WINDOW, "homecare-nurse", window)
        edges = listed["data"]["observations"]["edges"]
        shown = [e["node"]["patient"]["id"] for e in edges if e["node"]["patient"] is not None]
        assert CITIZEN not in shown
        assert set(shown) == set(shown_before) - {CITIZEN}
        # a patient left out of an edge (null) is left out for the sperring, and an error says so at that field
        hidden = {
            ("observations", "edges", i, "node", "patient") for i, e in enumerate(edges) if not e["node"]["patient"]
        }
        errors = listed.get("errors", [])
        assert len(errors) == len(hidden) and {tuple(e["path"]) for e in errors} == hidden, errors
        assert all(e["extensions"]["reason"] == "PATIENT_RESTRICTION" for e in errors), errors
        # from a practitioner to their roles to their unit: no patient data on that path
        own = gateway.query(
            "query($id: ID!) { node(id: $id) { ... on Practitioner { roles(first: 5) { edges { node "
            "{ organization { name } } } } } } }",
            "homecare-nurse",
            {"id": gid("Practitioner", nurse.entity_id)},
        )
        assert "errors" not in own
        # from the blocked patient's observation up to the patient
        obs = gateway.fetch(
            "SELECT id, encounter_id FROM observation WHERE patient_id = $1 AND encounter_id IS NOT NULL LIMIT 1",
            CITIZEN_PATIENT_ID,
        )[0]
        upward = gateway.query(
            "query($id: ID!) { node(id: $id) { ... on Observation { patient { id } encounter { id } } } }",
            "homecare-nurse",
            {"id": gid("Observation", obs["id"])},
        )
        assert upward["data"]["node"] is None
        assert upward["errors"][0]["extensions"]["reason"] == "PATIENT_RESTRICTION"


def test_counts_and_filters_never_count_hidden_rows(gateway: Gateway) -> None:
    code = "8480-6"
    query = "query($f: ObservationFilter) { observations(first: 1, filter: $f) { totalCount } }"
    counted = gateway.query(query, "nurse-other-municipality", {"f": {"code": code}})["data"]["observations"]
    visible = gateway.fetch(
        "SELECT count(*) AS n FROM observation o WHERE o.code = $1 AND EXISTS (SELECT 1 FROM care_relation cr "
        "WHERE cr.patient_id = o.patient_id AND cr.organization_id = $2 AND cr.period_start <= now() "
        "AND (cr.period_end IS NULL OR cr.period_end > now()))",
        code,
        PERSONAS["nurse-other-municipality"].unit_id,
    )[0]["n"]
    everything = gateway.fetch("SELECT count(*) AS n FROM observation WHERE code = $1", code)[0]["n"]
    assert counted["totalCount"] == visible < everything
    # narrowing to the hidden patient's own time window still counts nothing of theirs
    first = gateway.fetch("SELECT min(effective_at) AS t FROM observation WHERE patient_id = $1", CITIZEN_PATIENT_ID)[
        0
    ]["t"]
    window = {"code": code, "effectiveFrom": first.isoformat(), "effectiveTo": first.replace(microsecond=1).isoformat()}
    narrowed = gateway.query(query, "nurse-other-municipality", {"f": window})["data"]["observations"]["totalCount"]
    assert narrowed == 0
