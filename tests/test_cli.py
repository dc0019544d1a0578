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
from gateway.personas import CITIZEN_PATIENT_ID, LAB_SERVICE_CLIENT_ID, PERSONAS
from tests.conftest import CITIZEN, PROJECT, Gateway


def akson(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AKSON_DATA_DIR": str(gateway.data_dir)}
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
    env = {**os.environ, "DATABASE_URL": gateway.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "--last", "1"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert "DENY" in line and "NO_CARE_RELATION" in line and str(CITIZEN_PATIENT_ID) in line
    hpr_number = PERSONAS["nurse-other-municipality"].hpr_number
    assert hpr_number and hpr_number in line


def test_policy_explain_shows_decision_reason_rule_and_version(gateway: Gateway) -> None:
    env = {**os.environ, "DATABASE_URL": gateway.database_url, "AKSON_DATA_DIR": str(gateway.data_dir)}
    env.pop("CERBOS_URL", None)

    def explain(persona: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "policy",
                "explain",
                "--persona",
                persona,
                "--resource",
                f"Patient:{CITIZEN}",
            ],
            capture_output=True,
            text=True,
            cwd=PROJECT,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    denied = explain("nurse-other-municipality")
    assert "decision:       DENY" in denied and "reason:         NO_CARE_RELATION" in denied
    assert "resource.patient.vdefault#personnel-with-care-relation -> NO_CARE_RELATION" in denied
    allowed = explain("homecare-nurse")
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
