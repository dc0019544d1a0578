"""Hot reload: editing a policy file changes the running gateway's decisions, without a restart,
and the new policy version shows in denials and the audit log."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import CITIZEN, PROJECT, Gateway, start_gateway, stop_gateway

QUERY = "query($id: ID!) { patient(id: $id) { id } }"
# Cerbos decides per role and allows when any of the principal's roles allows: a deny meant for
# nurses must match every role ("*") and test the role in its condition.
LOCAL_RULE = """
    - name: local-rule-nurses-read-no-demographics
      actions: ["read", "search"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: '"nurse" in P.roles'
      output:
        when:
          ruleActivated: '"LOCAL_RULE"'
"""


def test_a_policy_edit_takes_effect_live(gateway: Gateway, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT / "policies", policies)
    live = start_gateway(gateway.database_url, tmp_path / "live", extra_env={"AKSON_POLICY_DIR": str(policies)})
    try:
        before = live.query(QUERY, "homecare-nurse", {"id": CITIZEN})
        assert before["data"]["patient"]["id"] == CITIZEN
        old_version = live.query(QUERY, "nurse-other-municipality", {"id": CITIZEN})["errors"][0]["extensions"][
            "policyVersion"
        ]
        patient_policy = policies / "resources" / "patient.yaml"
        patient_policy.write_text(patient_policy.read_text() + LOCAL_RULE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            after = live.query(QUERY, "homecare-nurse", {"id": CITIZEN})
            if after["data"]["patient"] is None:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the edited policy did not take effect within 30 s: {after}")
        extensions = after["errors"][0]["extensions"]
        assert extensions["reason"] == "LOCAL_RULE"
        assert extensions["policyVersion"] != old_version
        listed = live.query("{ patients(first: 5) { totalCount } }", "homecare-nurse")
        assert listed["data"]["patients"]["totalCount"] == 0, "the cached query plan was not dropped"
        rows = live.fetch(
            "SELECT reason, policy_version FROM audit_event WHERE reason = 'LOCAL_RULE' ORDER BY id DESC LIMIT 1"
        )
        assert rows and rows[0]["policy_version"] == extensions["policyVersion"]
    finally:
        stop_gateway(live)


FJORDVIK_WRITE_RULE = """
    - name: fjordvik-no-new-notes
      actions: ["create"]
      effect: EFFECT_DENY
      roles: ["*"]
      output:
        when:
          ruleActivated: '"LOCAL_RULE"'
"""


def test_a_municipalitys_local_rule_applies_to_writes_on_its_data(gateway: Gateway, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT / "policies", policies)
    local = policies / "resources" / "fjordvik" / "clinical_note.yaml"
    local.write_text(local.read_text() + FJORDVIK_WRITE_RULE)
    live = start_gateway(gateway.database_url, tmp_path / "local", extra_env={"AKSON_POLICY_DIR": str(policies)})
    try:
        create = 'mutation($p: ID!) { createNote(patientId: $p, title: "Besøk", text: "Notat.") { id } }'
        refused = live.query(create, "homecare-nurse", {"p": CITIZEN})
        assert refused["data"] is None
        assert refused["errors"][0]["extensions"]["reason"] == "LOCAL_RULE"
    finally:
        stop_gateway(live)
