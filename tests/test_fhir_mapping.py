"""The FHIR maps beside the declarations, and the pure functions that read them: every declared field has its
FHIR element (or a stated reason not to), element paths compose as FHIR wants them, FHIR search dates are the
ranges their precision spans, and a FHIR resource becomes a write's input without losing anything."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.declare import History, Many
from gateway.errors import BadUserInput
from gateway.fhir_map import D_NUMBER, FODSELSNUMMER, get, put
from gateway.fhir_resources import FHIR_KINDS, render, write_input
from gateway.fhir_search import LOCAL_TIME, list_args, search_params
from gateway.resources import DIAGNOSTIC_REPORT, KINDS, OBSERVATION, PATIENT

META = {"version", "last_updated", "entered_in_error_at", "entered_in_error_reason"}
# Fields no FHIR element shows, and why: a result's report is found from the report (DiagnosticReport.result);
# a municipality is no FHIR resource here (its people are the Group of the municipality in a bulk export); a
# practitioner's national identity number is shown only to directory administrators, which FHIR reads do not ask.
NOT_SHOWN = {
    ("Observation", "diagnostic_report"),
    ("Organization", "municipality"),
    ("Practitioner", "national_identity_number"),
}


def test_every_declared_field_of_a_fhir_kind_has_its_element_or_a_stated_reason() -> None:
    for kind in KINDS.values():
        if kind.fhir is None:
            continue
        mapped = {name for name, _ in kind.fhir.elements}
        for item in kind.fields:
            if (isinstance(item, Many | History) and item.name not in mapped) or item.name in META:
                continue
            assert item.name in mapped or (kind.type_name, item.name) in NOT_SHOWN, (kind.type_name, item.name)
        assert mapped <= {item.name for item in kind.fields}, kind.type_name


def test_paths_share_a_list_element_with_brackets_and_append_with_a_plus() -> None:
    resource: dict[str, Any] = {}
    put(resource, "content[].attachment.title", "Notat")
    put(resource, "content[].attachment", {"data": "eA=="})
    put(resource, "identifier[+]", {"value": "1"})
    put(resource, "identifier[+]", {"value": "2"})
    put(resource, "category[]", "food")
    assert resource == {
        "content": [{"attachment": {"title": "Notat", "data": "eA=="}}],
        "identifier": [{"value": "1"}, {"value": "2"}],
        "category": ["food"],
    }
    assert get(resource, "content[].attachment.title") == "Notat"
    assert get(resource, "identifier[+].value") == "1"
    assert get(resource, "missing.element") is None


def test_a_patients_person_number_is_a_fodselsnummer_or_a_d_number() -> None:
    row = {
        "id": "a11ce000-0000-4000-8000-000000000201",
        "version": 3,
        "last_updated": datetime(2026, 12, 1, 9, tzinfo=UTC),
        "national_id": "01815412345",
        "family_name": "Nordmann",
        "given_name": "Ola Johan",
        "gender": "male",
        "birth_date": date(1954, 1, 1),
        "phone": None,
        "email": "ola@example.no",
        "address": None,
        "owning_unit_id": "0a9e7a31-0000-4000-8000-000000000012",
        "entered_in_error_at": None,
    }
    patient = render(PATIENT, row)
    get_fhir_model_class("Patient").model_validate(patient)
    assert patient["identifier"] == [{"system": FODSELSNUMMER, "value": "01815412345"}]
    assert patient["name"] == [{"family": "Nordmann", "given": ["Ola", "Johan"], "text": "Ola Johan Nordmann"}]
    assert patient["telecom"] == [{"system": "email", "value": "ola@example.no"}]
    assert patient["meta"] == {"versionId": "3", "lastUpdated": "2026-12-01T09:00:00+00:00"}
    assert render(PATIENT, {**row, "national_id": "41815412345"})["identifier"][0]["system"] == D_NUMBER
    assert render(PATIENT, {**row, "entered_in_error_at": row["last_updated"]})["active"] is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "2026-12-01",
            [("from", datetime(2026, 12, 1, tzinfo=LOCAL_TIME)), ("to", datetime(2026, 12, 2, tzinfo=LOCAL_TIME))],
        ),
        ("ge2026-12", [("from", datetime(2026, 12, 1, tzinfo=LOCAL_TIME))]),
        ("gt2026-12", [("from", datetime(2027, 1, 1, tzinfo=LOCAL_TIME))]),
        ("lt2026", [("to", datetime(2026, 1, 1, tzinfo=LOCAL_TIME))]),
        ("le2026", [("to", datetime(2027, 1, 1, tzinfo=LOCAL_TIME))]),
        (
            "eq2026-12-01T08:30:00Z",
            [("from", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)), ("to", datetime(2026, 12, 1, 8, 30, 1, tzinfo=UTC))],
        ),
    ],
)
def test_a_date_search_is_the_range_its_precision_spans(value: str, expected: list[tuple[str, datetime]]) -> None:
    args = list_args(OBSERVATION, [("date", value)], 10)
    assert [(name.rsplit("_", 1)[1], moment) for name, moment in args.filters] == expected


def test_search_parameters_follow_the_declared_filters() -> None:
    assert set(search_params(OBSERVATION)) == {"_id", "_lastUpdated", "patient", "date", "code", "category", "status"}
    assert "identifier" in search_params(PATIENT) and "patient" not in search_params(PATIENT)
    assert list_args(DIAGNOSTIC_REPORT, [("category", "LAB")], 5).filters == (("category", "laboratory"),)
    assert list_args(OBSERVATION, [("code", "http://loinc.org|8867-4")], 5).filters == (
        ("code", "8867-4"),
        ("code_system", "http://loinc.org"),
    )
    for refused in ([("subject", "x")], [("date", "sa2026")], [("code", "a,b")], [("patient", "not-an-id")]):
        with pytest.raises(BadUserInput):
            list_args(OBSERVATION, refused, 5)
    assert set(FHIR_KINDS) == {k.fhir.resource for k in KINDS.values() if k.fhir}


def test_a_fhir_observation_becomes_the_input_of_its_create_and_unknown_elements_are_refused() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
        "valueQuantity": {"value": 13.9, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
        "effectiveDateTime": "2026-12-02T07:45:00Z",
        "subject": {"reference": "Patient/a11ce000-0000-4000-8000-000000000201"},
    }
    given = write_input(OBSERVATION, observation, "Observation")
    assert given == {
        "status": "final",
        "category": "laboratory",
        "code": {"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"},
        "value_quantity": {"value": 13.9, "unit": "g/dL"},
        "effective_date_time": datetime(2026, 12, 2, 7, 45, tzinfo=UTC),
        "patient": "a11ce000-0000-4000-8000-000000000201",
    }
    with pytest.raises(BadUserInput, match="interpretation"):
        write_input(OBSERVATION, {**observation, "interpretation": [{"text": "H"}]}, "Observation")
    with pytest.raises(BadUserInput, match=r"example\.org"):
        write_input(
            OBSERVATION,
            {**observation, "extension": [{"url": "http://example.org/x", "valueString": "y"}]},
            "Observation",
        )
    with pytest.raises(BadUserInput, match="time zone"):
        write_input(OBSERVATION, {**observation, "effectiveDateTime": "2026-12-02T07:45:00"}, "Observation")
