"""The `akson` command as a newcomer uses it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from gateway import demo_issuer
from gateway.config import load_settings
from gateway.personas import CITIZEN_PATIENT_ID, FJORDVIK, FJORDVIK_GP_OFFICE, LAB_SERVICE_CLIENT_ID, PERSONAS
from tests.conftest import CITIZEN, PROJECT, Gateway, gid


def akson(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AKSON_DATA_DIR": str(gateway.data_dir), "DATABASE_URL": gateway.database_url}
    env.pop("CERBOS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, cwd=PROJECT, env=env, check=False
    )


def test_personas_lists_every_demo_persona_and_the_citizen_patient_id() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "personas"], capture_output=True, text=True, check=True, cwd=PROJECT
    ).stdout
    for name in ["homecare-nurse", "gp", "health-secretary", "nurse-other-municipality", "citizen", "vendor-app"]:
        assert name in out
    assert CITIZEN in out
    assert set(PERSONAS) == {line.split()[0] for line in out.splitlines()}


def test_token_prints_a_token_alone_on_its_last_line_that_the_gateway_accepts(gateway: Gateway) -> None:
    done = akson(gateway, "token", "--persona", "homecare-nurse")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.count(".") == 2 and " " not in token
    result = gateway.post("query($id: ID!) { patient(id: $id) { id } }", token=token, variables={"id": CITIZEN}).json()
    assert result == {"data": {"patient": {"id": CITIZEN}}}


def test_the_lab_service_token_is_a_system_token_of_the_approved_hospital_laboratory(gateway: Gateway) -> None:
    done = akson(gateway, "token", "--persona", "lab-service")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["client_id"] == LAB_SERVICE_CLIENT_ID
    assert claims["scope"].split() == ["system/DiagnosticReport.crus", "system/Observation.crus"]
    person_claims = {demo_issuer.CLAIM_PERSONNEL_PID, demo_issuer.CLAIM_HPR_NUMBER, demo_issuer.CLAIM_CITIZEN_PID}
    assert not person_claims & set(claims), "no person: a backend service"
    [app] = gateway.fetch(
        "SELECT a.status, o.unit_type, o.municipality_id FROM app a JOIN organization o ON o.id = a.acting_unit_id "
        "WHERE a.client_id = $1",
        LAB_SERVICE_CLIENT_ID,
    )
    assert (app["status"], app["unit_type"], app["municipality_id"]) == ("approved", "laboratorium", None)
    listed = gateway.post("{ diagnosticReports(first: 1) { totalCount } }", token=token).json()
    assert "errors" not in listed, listed


def test_token_for_an_unknown_persona_fails_with_the_list_of_known_ones(gateway: Gateway) -> None:
    done = akson(gateway, "token", "--persona", "doctor-who")
    assert done.returncode == 2
    assert "homecare-nurse" in done.stderr and done.stdout == ""


def test_audit_shows_the_latest_decisions(gateway: Gateway) -> None:
    gateway.query("query($id: ID!) { patient(id: $id) { id } }", "nurse-other-municipality", {"id": CITIZEN})
    done = akson(gateway, "audit", "--last", "1")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert "DENY" in line and "NO_CARE_RELATION" in line and str(CITIZEN_PATIENT_ID) in line
    hpr_number = PERSONAS["nurse-other-municipality"].hpr_number
    assert hpr_number and hpr_number in line


def explain(gateway: Gateway, persona: str, resource: str = f"Patient:{CITIZEN}") -> str:
    """`akson policy explain` as a policy admin runs it, with its own PDP, on the gateway's journal."""
    done = akson(gateway, "policy", "explain", "--persona", persona, "--resource", resource)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_policy_explain_decides_with_the_municipal_rule_as_the_gateway_does(gateway: Gateway) -> None:
    [note] = gateway.fetch(
        "SELECT n.id FROM clinical_note n JOIN organization o ON o.id = n.owning_unit_id "
        "WHERE o.municipality_id = $1 AND n.entered_in_error_at IS NULL AND EXISTS (SELECT 1 FROM care_relation c "
        "WHERE c.patient_id = n.patient_id AND c.organization_id = $2 AND c.period_end IS NULL) ORDER BY n.id LIMIT 1",
        FJORDVIK,
        FJORDVIK_GP_OFFICE,
    )
    told = explain(gateway, "health-secretary", f"clinical_note:{note['id']}")
    assert "decision:       DENY" in told and "reason:         LOCAL_RULE" in told
    assert "decided in:     fjordvik" in told and "in scope fjordvik" in told
    seen = gateway.query(
        "query($id: ID!) { node(id: $id) { id } }", "health-secretary", {"id": gid("ClinicalNote", note["id"])}
    )
    assert seen["data"]["node"] is None
    assert seen["errors"][0]["extensions"]["reason"] == "LOCAL_RULE"
    gp = explain(gateway, "gp", f"clinical_note:{note['id']}")
    assert "decision:       ALLOW" in gp and "decided in:     fjordvik" in gp


def test_policy_explain_shows_decision_reason_rule_and_version(gateway: Gateway) -> None:
    denied = explain(gateway, "nurse-other-municipality")
    assert "decision:       DENY" in denied and "reason:         NO_CARE_RELATION" in denied
    assert "resource.patient.vdefault#personnel-with-care-relation -> NO_CARE_RELATION" in denied
    allowed = explain(gateway, "homecare-nurse")
    assert "decision:       ALLOW" in allowed and "reason:         CARE_RELATION" in allowed
    version = gateway.query("query($id: ID!) { patient(id: $id) { id } }", "nurse-other-municipality", {"id": CITIZEN})[
        "errors"
    ][0]["extensions"]["policyVersion"]
    assert f"policy version: {version}" in allowed


def test_policy_test_runs_the_cerbos_suites() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "policy", "test"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BaselineRulesTestSuite" in done.stdout and "FAILED" not in done.stdout


def test_the_database_pool_size_is_a_setting_and_nonsense_is_refused() -> None:
    assert load_settings({}).database_pool_size == 3
    assert load_settings({"AKSON_DATABASE_POOL_SIZE": "8"}).database_pool_size == 8
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match="AKSON_DATABASE_POOL_SIZE"):
            load_settings({"AKSON_DATABASE_POOL_SIZE": bad})


EXPLAIN_DECISION = """query($person: ID!, $resource: ID!, $action: String!) {
  explainDecision(personId: $person, resourceId: $resource, action: $action) {
    decision reason matchedRule matchedScope decidedInScope policyVersion outputs { source value } } }"""


def test_explain_decision_in_graphql_gives_the_answer_of_akson_policy_explain(gateway: Gateway) -> None:
    [note] = gateway.fetch(
        "SELECT n.id FROM clinical_note n JOIN organization o ON o.id = n.owning_unit_id "
        "WHERE o.municipality_id = $1 AND n.entered_in_error_at IS NULL ORDER BY n.id LIMIT 1",
        FJORDVIK,
    )
    secretary = gid("Practitioner", PERSONAS["health-secretary"].entity_id)
    variables = {"person": secretary, "resource": gid("ClinicalNote", note["id"]), "action": "read"}
    audit = (
        "SELECT decision FROM audit_event WHERE action = 'explain' AND $1 = ANY(resource_ids) AND actor_id = $2 "
        "ORDER BY recorded_at"
    )
    admin = str(PERSONAS["policy-admin"].entity_id)
    before = gateway.fetch(audit, str(note["id"]), admin)
    answer = gateway.query(EXPLAIN_DECISION, "policy-admin", variables)
    assert "errors" not in answer, answer
    found = answer["data"]["explainDecision"]
    told = explain(gateway, "health-secretary", f"clinical_note:{note['id']}")
    assert f"decision:       {found['decision']}" in told and f"reason:         {found['reason']}" in told
    assert found["reason"] == "LOCAL_RULE" and found["decidedInScope"] == "fjordvik"
    assert f"matched rule:   {found['matchedRule']} in scope {found['matchedScope']}" in told
    assert f"policy version: {found['policyVersion']}" in told
    refused = gateway.query(EXPLAIN_DECISION, "gp", variables)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    after = gateway.fetch(audit, str(note["id"]), admin)
    assert [a["decision"] for a in after[len(before) :]] == ["ALLOW"], "the explanation is audited, once"
