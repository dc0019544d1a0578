"""`akson policy diff`: the authorization matrix decided under two policy sets by two PDPs, every changed
decision named with its rule and reason, and an exit code a municipality's CI can stop a rollout on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.policy_diff import Change, allowed_patterns, not_allowed
from tests.conftest import PROJECT, Gateway

STRICT = '      actions: ["read", "search", "read_text"]'


def policy_diff(gateway: Gateway, policies: Path, *args: str, rows: int = 30) -> subprocess.CompletedProcess[str]:
    """`akson policy diff --against policies/` on the gateway's journal, with `policies` as the edited set, over
    `rows` resources of each kind."""
    env = {
        **os.environ,
        "DATABASE_URL": gateway.database_url,
        "AKSON_DATA_DIR": str(gateway.data_dir),
        "AKSON_POLICY_DIR": str(policies),
    }
    env.pop("CERBOS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "policy", "diff", "--rows", str(rows), "--against", "policies", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
        check=False,
    )


def test_the_same_policies_change_nothing(gateway: Gateway) -> None:
    # Over fewer rows than the edit below: that test shows one line changing exactly one decision in the rest.
    done = policy_diff(gateway, PROJECT / "policies", rows=5)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ", 0 changed" in done.stdout.splitlines()[0]


def test_a_one_line_rule_change_names_exactly_the_decisions_it_changes(gateway: Gateway, tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(PROJECT / "policies", folder)
    rule = folder / "resources" / "fjordvik" / "clinical_note.yaml"
    assert STRICT in rule.read_text()
    rule.write_text(rule.read_text().replace(STRICT, '      actions: ["search", "read_text"]'))
    allowed = tmp_path / "expected.txt"
    allowed.write_text("# another rollout's change\nclinical_note read_text *\n")
    done = policy_diff(gateway, folder, "--json", "--allow", str(allowed))
    assert done.returncode == 1, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    [change] = report["changes"]
    assert (change["kind"], change["action"]) == ("clinical_note", "read")
    assert change["before"] == "DENY:LOCAL_RULE" and change["after"].startswith("ALLOW:")
    assert set(change["personas"]) == {"health-secretary"}
    assert change["rule_before"] == "resource.clinical_note.vdefault/fjordvik#fjordvik-secretaries-see-no-notes"
    assert change["rule_after"].startswith("resource.clinical_note.vdefault") and change["allowed"] is False
    fjordvik_notes = {
        str(r["id"])
        for r in gateway.fetch(
            "SELECT n.id FROM clinical_note n JOIN organization o ON o.id = n.owning_unit_id "
            "JOIN municipality m ON m.id = o.municipality_id WHERE m.policy_scope = 'fjordvik'"
        )
    }
    assert {s["id"] for s in change["samples"]} <= fjordvik_notes
    assert change["count"] == change["personas"]["health-secretary"] >= 1


def test_the_allowed_list_matches_changes_by_kind_action_and_before_and_after(tmp_path: Path) -> None:
    listed = tmp_path / "expected.txt"
    listed.write_text("# the rollout lets secretaries see that notes exist\nclinical_note read DENY:LOCAL_RULE->*\n\n")
    patterns = allowed_patterns(str(listed))
    assert patterns == ["clinical_note read DENY:LOCAL_RULE->*"]
    expected = Change("clinical_note", "read", "DENY:LOCAL_RULE", "ALLOW:CARE_RELATION")
    other = Change("clinical_note", "read_text", "DENY:LOCAL_RULE", "ALLOW:CARE_RELATION")
    widened = Change("patient", "read", "DENY:NO_CARE_RELATION", "ALLOW:CARE_RELATION")
    assert not_allowed([expected, other, widened], patterns) == [other, widened]
    assert not_allowed([expected], []) == [expected]
