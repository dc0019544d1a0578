"""Choosing the reason reported for a decision (a pure function): fixed priority, codes only."""

from __future__ import annotations

from gateway.authz import DEFAULT_ALLOW_REASON, DEFAULT_DENY_REASON, choose_reason


def test_the_same_outputs_in_any_order_give_the_same_reason() -> None:
    assert choose_reason(False, ["NOT_OWN_RECORD", "NO_CARE_RELATION"]) == "NO_CARE_RELATION"
    assert choose_reason(False, ["NO_CARE_RELATION", "NOT_OWN_RECORD"]) == "NO_CARE_RELATION"
    assert choose_reason(True, ["CARE_RELATION", "OWN_RECORD"]) == choose_reason(True, ["OWN_RECORD", "CARE_RELATION"])


def test_unknown_codes_come_after_known_ones_in_a_stable_order() -> None:
    assert choose_reason(False, ["ZED_RULE", "NO_CARE_RELATION", "ALPHA_RULE"]) == "NO_CARE_RELATION"
    assert choose_reason(False, ["ZED_RULE", "ALPHA_RULE"]) == "ALPHA_RULE"


def test_an_output_that_is_not_a_reason_code_never_reaches_the_client() -> None:
    leaked = ["0a9e7a31-0000-4000-8000-000000000011", "{'unit': 'x'}", "Ola Nordmann", "lower_case"]
    assert choose_reason(False, leaked) == DEFAULT_DENY_REASON
    assert choose_reason(True, leaked) == DEFAULT_ALLOW_REASON
    assert choose_reason(False, [*leaked, "PATIENT_RESTRICTION"]) == "PATIENT_RESTRICTION"


def test_no_output_gives_the_default_reasons() -> None:
    assert choose_reason(False, []) == "NO_MATCHING_RULE"
    assert choose_reason(True, []) == "ALLOWED"
