"""SMART v2 scope parsing (pure): valid scopes parse, invalid ones say what is wrong."""

from __future__ import annotations

import pytest

from gateway.scopes import InvalidScope, ResourceScope, grants, parse_scope, parse_scopes, within

TYPES = {"Patient", "Observation", "Encounter", "Condition"}
KINDS = {"Patient": "patient", "Observation": "observation", "Encounter": "encounter", "Condition": "condition"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("patient/Observation.rs", ResourceScope("patient", "Observation", frozenset("rs"))),
        ("user/*.cruds", ResourceScope("user", "*", frozenset("cruds"))),
        ("system/Encounter.r", ResourceScope("system", "Encounter", frozenset("r"))),
        (
            "patient/Observation.rs?category=vital-signs",
            ResourceScope("patient", "Observation", frozenset("rs"), (("category", "vital-signs"),)),
        ),
    ],
)
def test_smart_v2_scopes_parse(text: str, expected: ResourceScope) -> None:
    assert parse_scope(text, TYPES) == expected


@pytest.mark.parametrize(
    "text", ["openid", "fhirUser", "launch/patient", "offline_access", "helseid://scopes/identity/pid"]
)
def test_non_resource_scopes_pass_through(text: str) -> None:
    assert parse_scope(text, TYPES) is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("clinician/Observation.rs", "context must be patient, user or system"),
        ("patient/Spaceship.rs", "not a resource type of this API"),
        ("patient/Observation.sr", "in that order"),
        ("patient/Observation.rr", "in that order"),
        ("patient/Observation.x", "in that order"),
        ("patient/Observation.read", "SMART v1"),
        ("patient/Observation.rs?code=1234", "only the `category` parameter"),
        ("patient/Observation.rs?category", "malformed"),
        ("patient Observation", "not a SMART v2 scope"),
    ],
)
def test_invalid_scopes_are_rejected_with_the_reason(text: str, fragment: str) -> None:
    with pytest.raises(InvalidScope) as failure:
        parse_scope(text, TYPES)
    assert fragment in str(failure.value)


def test_grants_separate_patient_context_and_keep_category_limits_only_where_no_scope_is_unlimited() -> None:
    scopes = parse_scopes(
        "openid user/Patient.rs patient/Observation.rs?category=vital-signs patient/Condition.r "
        "user/Encounter.s user/Condition.rs?category=problem-list-item user/Condition.s",
        TYPES,
    )
    granted = grants(scopes, KINDS)
    assert granted.read == ("condition", "patient")
    assert granted.search == ("condition", "encounter", "patient")
    assert granted.patient_read == ("condition", "observation")
    assert granted.patient_search == ("observation",)
    assert granted.categories == {"observation": ["vital-signs"]}


def test_a_wildcard_scope_grants_every_kind() -> None:
    assert grants(parse_scopes("user/*.rs", TYPES), KINDS).read == tuple(sorted(KINDS.values()))


LAB_OR_VITALS = "category=laboratory&category=vital-signs"


@pytest.mark.parametrize(
    ("requested", "registered", "allowed"),
    [
        ("openid patient/Observation.rs", ["openid", "patient/*.rs"], True),
        ("patient/Observation.r", ["patient/Observation.rs"], True),
        ("patient/Observation.crs", ["patient/*.rs"], False),
        ("user/Observation.rs", ["patient/*.rs"], False),
        ("fhirUser", ["openid", "patient/*.rs"], False),
        (
            "user/Observation.rs?category=laboratory",
            ["user/Observation.rs?category=laboratory&category=vital-signs"],
            True,
        ),
        ("user/Observation.rs", ["user/Observation.rs?category=laboratory"], False),
        ("user/Observation.rs?category=social-history", ["user/Observation.rs?category=laboratory"], False),
        ("patient/Nothing.rs", ["patient/*.rs"], False),
    ],
)
def test_an_app_may_ask_for_its_registered_scopes_or_narrower_ones(
    requested: str, registered: list[str], allowed: bool
) -> None:
    assert within(requested, registered, TYPES) is allowed
