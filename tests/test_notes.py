"""Clinical notes (DESIGN.md rule 7): only the author edits a draft; a signed note is immutable;
corrections are new versions that point back; every write is authorized and audited like a read."""

from __future__ import annotations

from typing import Any

from tests.conftest import CITIZEN, Gateway, raw_id

CREATE = """mutation($p: ID!) { createNote(patientId: $p, title: "Hjemmebesøk", text: "Sår stelt, god form.") {
  id status text author { hprNumber } } }"""
UPDATE = """mutation($id: ID!) { updateNote(id: $id, text: "Sår stelt, god form. Drakk lite.") { id text } }"""
SIGN = "mutation($id: ID!) { signNote(id: $id) { id status signedAt } }"
CORRECT = """mutation($id: ID!) {
  correctNote(id: $id, title: "Hjemmebesøk (rettet)", text: "Feil pasient i forrige notat.") {
    id status replaces { id status } } }"""


def reason(result: dict[str, Any]) -> str:
    return str(result["errors"][0]["extensions"].get("reason") or result["errors"][0]["extensions"]["code"])


def test_a_note_goes_from_draft_by_its_author_to_signed_and_immutable(gateway: Gateway) -> None:
    note = gateway.query(CREATE, "homecare-nurse", {"p": CITIZEN})["data"]["createNote"]
    assert note["status"] == "DRAFT" and note["text"] == "Sår stelt, god form."
    assert reason(gateway.query(UPDATE, "gp", {"id": note["id"]})) == "NOT_AUTHOR"
    assert gateway.query(UPDATE, "homecare-nurse", {"id": note["id"]})["data"]["updateNote"]["text"].endswith("lite.")
    assert reason(gateway.query(SIGN, "gp", {"id": note["id"]})) == "NOT_AUTHOR"
    signed = gateway.query(SIGN, "homecare-nurse", {"id": note["id"]})["data"]["signNote"]
    assert signed["status"] == "SIGNED" and signed["signedAt"]
    assert reason(gateway.query(UPDATE, "homecare-nurse", {"id": note["id"]})) == "NOTE_SIGNED"
    assert reason(gateway.query(SIGN, "homecare-nurse", {"id": note["id"]})) == "NOTE_SIGNED"
    correction = gateway.query(CORRECT, "gp", {"id": note["id"]})["data"]["correctNote"]
    assert correction["status"] == "DRAFT"
    assert correction["replaces"] == {"id": note["id"], "status": "SIGNED"}
    rows = gateway.fetch(
        "SELECT action, decision, reason FROM audit_event WHERE resource_kind = 'clinical_note' "
        "AND $1 = ANY(resource_ids) AND action IN ('create', 'update', 'sign', 'correct') ORDER BY id",
        note["id"] and raw_id(note["id"]),
    )
    assert [(r["action"], r["decision"], r["reason"]) for r in rows] == [
        ("create", "ALLOW", "CARE_RELATION"),
        ("update", "DENY", "NOT_AUTHOR"),
        ("update", "ALLOW", "CARE_RELATION"),
        ("sign", "DENY", "NOT_AUTHOR"),
        ("sign", "ALLOW", "CARE_RELATION"),
        ("update", "DENY", "NOTE_SIGNED"),
        ("sign", "DENY", "NOTE_SIGNED"),
        ("correct", "ALLOW", "CARE_RELATION"),
    ]


def test_only_clinicians_caring_for_the_patient_write_notes(gateway: Gateway) -> None:
    assert reason(gateway.query(CREATE, "nurse-other-municipality", {"p": CITIZEN})) == "NO_CARE_RELATION"
    assert reason(gateway.query(CREATE, "health-secretary", {"p": CITIZEN})) == "ROLE_CATEGORY"
    read_only = gateway.token("homecare-nurse", scope="user/*.rs")
    result = gateway.post(CREATE, token=read_only, variables={"p": CITIZEN}).json()
    assert reason(result) == "APP_SCOPE"


def test_a_note_needs_a_title_and_text(gateway: Gateway) -> None:
    result = gateway.query(
        'mutation($p: ID!) { createNote(patientId: $p, title: " ", text: "x") { id } }',
        "homecare-nurse",
        {"p": CITIZEN},
    )
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
