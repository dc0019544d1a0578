"""FHIR R4 at /fhir/R4: the same journal, policies and audit as GraphQL, spoken in FHIR. Every resource the
server emits validates against FHIR R4 (fhir.resources' R4 models, and fhirclient's as a real client reads
them); errors are OperationOutcomes with GraphQL's codes and reasons; lab results come in as transaction
Bundles through the same write as `createDiagnosticReport`; Bulk Data exports hold exactly what the caller
may search, every exported patient audited."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhirclient.models.observation import Observation as ClientObservation
from fhirclient.models.patient import Patient as ClientPatient
from fhirclient.server import FHIRServer

from gateway.fhir_map import FODSELSNUMMER, HPR_NUMBER
from gateway.personas import CITIZEN_PATIENT_ID, FJORDVIK, PERSONAS
from gateway.resources import KINDS
from tests.conftest import Gateway, gid, raw_id, restricted_from
from tests.journal_inputs import create_mutation, heart_rate, unit_patient, update_mutation

OSLO = ZoneInfo("Europe/Oslo")
TYPES = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "EpisodeOfCare",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "Condition",
    "MedicationStatement",
    "AllergyIntolerance",
    "DocumentReference",
    "CarePlan",
    "Appointment",
    "Consent",
]
READERS = ["homecare-nurse", "gp", "health-secretary", "citizen", "parent", "homecare-integration", "vendor-app"]
# The GraphQL root list of each patient-data type, to compare totals with.
ROOTS = {
    "Patient": "patients",
    "EpisodeOfCare": "careRelations",
    "Encounter": "encounters",
    "Observation": "observations",
    "DiagnosticReport": "diagnosticReports",
    "Condition": "conditions",
    "MedicationStatement": "medicationStatements",
    "AllergyIntolerance": "allergyIntolerances",
    "DocumentReference": "clinicalNotes",
    "CarePlan": "carePlans",
    "Appointment": "appointments",
    "Consent": "restrictions",
}


def fhir(
    gateway: Gateway, path: str, *, persona: str | None = None, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    """A FHIR request as a client sends it."""
    headers = {"Accept": "application/fhir+json", **kwargs.pop("headers", {})}
    token = token or (gateway.token(persona) if persona else None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    method = kwargs.pop("method", "GET")
    return httpx.request(method, f"{gateway.base_url}/fhir/R4/{path}", headers=headers, timeout=60, **kwargs)


def validate(resource: dict[str, Any]) -> None:
    """Raises unless the resource is valid FHIR R4 (structure, cardinality, types, required elements)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def search_all(gateway: Gateway, path: str, token: str) -> list[dict[str, Any]]:
    """Every resource of a search, following its next links."""
    found: list[dict[str, Any]] = []
    url: str | None = f"{gateway.base_url}/fhir/R4/{path}"
    while url:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert response.status_code == 200, response.text
        bundle = response.json()
        validate(bundle)
        found += [entry["resource"] for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return found


def issue(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    validate(body)
    assert body["resourceType"] == "OperationOutcome"
    result: dict[str, Any] = body["issue"][0]
    return result


def codes(found: dict[str, Any]) -> list[str]:
    return [c["code"] for c in found["details"]["coding"]]


def export(gateway: Gateway, token: str, path: str = "$export", **params: str) -> tuple[str, dict[str, Any]]:
    """A Bulk Data export, from kick-off to manifest: its status URL and its manifest."""
    kicked = httpx.get(
        f"{gateway.base_url}/fhir/R4/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json", "Prefer": "respond-async"},
        timeout=60,
    )
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["content-location"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        polled = httpx.get(status_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        if polled.status_code == 200:
            manifest: dict[str, Any] = polled.json()
            return status_url, manifest
        assert polled.status_code == 202, polled.text
        assert polled.headers["x-progress"].endswith(" resources written")
        time.sleep(0.2)
    raise AssertionError("the export did not complete in time")


def downloaded(manifest: dict[str, Any], token: str) -> dict[str, list[dict[str, Any]]]:
    """The resources of every output file, by type."""
    files: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        response = httpx.get(item["url"], headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in response.content.splitlines() if line]
        assert len(lines) == item["count"]
        for resource in lines:
            assert resource["resourceType"] == item["type"]
            validate(resource)
        files[item["type"]] = lines
    return files


def graphql_total(gateway: Gateway, root: str, token: str) -> int:
    answer = gateway.post(f"{{ {root}(first: 1) {{ totalCount }} }}", token=token).json()
    assert "errors" not in answer, answer
    return int(answer["data"][root]["totalCount"])


# ---- the capability statement -----------------------------------------------------------------------


def test_metadata_is_public_and_states_every_type_with_its_search_parameters(gateway: Gateway) -> None:
    response = fhir(gateway, "metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    [rest] = statement["rest"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(TYPES) | {"Group"} == set(by_type)
    observation = {p["name"] for p in by_type["Observation"]["searchParam"]}
    assert {"_id", "_lastUpdated", "patient", "code", "date", "category", "status"} <= observation
    assert "identifier" in {p["name"] for p in by_type["Patient"]["searchParam"]}
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"} in rest[
        "operation"
    ]


# ---- validation of everything emitted --------------------------------------------------------------


def test_every_resource_emitted_for_the_demo_journal_validates_against_r4(gateway: Gateway) -> None:
    seen: Counter[str] = Counter()
    with restricted_from(gateway, "homecare-nurse"):
        for persona in READERS:
            token = gateway.token(persona)
            for name in TYPES:
                bundle = fhir(gateway, f"{name}?_count=100", token=token)
                assert bundle.status_code == 200, (persona, name, bundle.text)
                validate(bundle.json())
                for entry in bundle.json().get("entry", []):
                    validate(entry["resource"])
                    seen[entry["resource"]["resourceType"]] += 1
                if bundle.json().get("entry"):
                    first = bundle.json()["entry"][0]["resource"]
                    for path in (f"{name}/{first['id']}", f"{name}/{first['id']}/_history"):
                        read = fhir(gateway, path, token=token)
                        assert read.status_code == 200, (persona, path, read.text)
                        validate(read.json())
                        for entry in read.json().get("entry", []):
                            validate(entry["resource"])
    assert set(seen) == set(TYPES), f"types never emitted: {set(TYPES) - set(seen)}"
    assert sum(seen.values()) > 1000


def test_resources_carry_norwegian_identifiers_and_references_by_type(gateway: Gateway) -> None:
    patient = fhir(gateway, f"Patient/{CITIZEN_PATIENT_ID}", persona="citizen").json()
    [number] = gateway.fetch("SELECT national_id FROM patient WHERE id = $1", CITIZEN_PATIENT_ID)
    assert {"system": FODSELSNUMMER, "value": number["national_id"]} in patient["identifier"]
    nurse = fhir(gateway, f"Practitioner/{PERSONAS['homecare-nurse'].entity_id}", persona="gp").json()
    assert {"system": HPR_NUMBER, "value": PERSONAS["homecare-nurse"].hpr_number} in nurse["identifier"]
    found = fhir(gateway, f"Patient?identifier={FODSELSNUMMER}|{number['national_id']}", persona="citizen").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [str(CITIZEN_PATIENT_ID)]
    observations = search_all(gateway, f"Observation?patient=Patient/{CITIZEN_PATIENT_ID}", gateway.token("citizen"))
    assert observations and {o["subject"]["reference"] for o in observations} == {f"Patient/{CITIZEN_PATIENT_ID}"}


# ---- search ----------------------------------------------------------------------------------------


def test_search_pages_hold_exactly_what_graphql_lists_for_the_same_caller(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse")
    by_fhir = search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&_count=7", token)
    answer = gateway.post(
        "query($id: ID!) { patient(id: $id) { observations(first: 100) { totalCount edges { node { id } } } } }",
        token=token,
        variables={"id": gid("Patient", CITIZEN_PATIENT_ID)},
    ).json()
    listed = answer["data"]["patient"]["observations"]
    assert len(by_fhir) == listed["totalCount"] > 7
    assert [gid("Observation", o["id"]) for o in by_fhir] == [e["node"]["id"] for e in listed["edges"]]


def test_search_filters_by_code_date_category_status_and_last_update(gateway: Gateway) -> None:
    token = gateway.token("gp")
    every = search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&_count=100", token)
    sample = every[0]
    code = sample["code"]["coding"][0]
    same_code = search_all(
        gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&code={code['system']}|{code['code']}", token
    )
    assert same_code and {o["code"]["coding"][0]["code"] for o in same_code} == {code["code"]}
    assert len(same_code) == sum(o["code"]["coding"][0]["code"] == code["code"] for o in every)
    taken = datetime.fromisoformat(sample["effectiveDateTime"]).astimezone(OSLO)
    day = taken.date().isoformat()
    on_day = search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&date={day}", token)
    assert sample["id"] in {o["id"] for o in on_day}
    assert {datetime.fromisoformat(o["effectiveDateTime"]).astimezone(OSLO).date() for o in on_day} == {taken.date()}
    assert len(on_day) == sum(
        datetime.fromisoformat(o["effectiveDateTime"]).astimezone(OSLO).date() == taken.date() for o in every
    )
    later = search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&date=gt{day}", token)
    assert sample["id"] not in {o["id"] for o in later}
    assert all(datetime.fromisoformat(o["effectiveDateTime"]).astimezone(OSLO).date() > taken.date() for o in later)
    labs = search_all(gateway, "DiagnosticReport?category=LAB&_count=50", token)
    assert labs and {r["category"][0]["coding"][0]["code"] for r in labs} == {"LAB"}
    final = search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&status=final", token)
    assert {o["status"] for o in final} == {"final"}
    assert search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}&_lastUpdated=gt2999-01-01", token) == []
    by_id = search_all(gateway, f"Observation?_id={sample['id']}", token)
    assert [o["id"] for o in by_id] == [sample["id"]]


def test_malformed_search_values_are_refused_with_400(gateway: Gateway) -> None:
    for path in (
        "Observation?_count=%C2%B2",
        "Observation?date=9999-12-31",
        "Observation?_lastUpdated=9999-12-31T23:59:59Z",
        "Observation?date=2026-00-00",
        "Observation?_cursor=bm90LWEtY3Vyc29y",
        "Observation?_id=not-an-id",
    ):
        response = fhir(gateway, path, persona="gp")
        assert response.status_code == 400, (path, response.text)
        assert codes(issue(response)) == ["BAD_USER_INPUT"], path


def test_a_post_search_finds_what_the_same_get_search_finds(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse")
    query = f"patient={CITIZEN_PATIENT_ID}&category=vital-signs&_count=100"
    by_get = fhir(gateway, f"Observation?{query}", token=token).json()
    by_post = fhir(
        gateway,
        "Observation/_search",
        token=token,
        method="POST",
        content=query,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert by_post.status_code == 200, by_post.text
    validate(by_post.json())
    assert [e["resource"]["id"] for e in by_post.json()["entry"]] == [e["resource"]["id"] for e in by_get["entry"]]
    assert by_get["entry"]
    wrong = fhir(
        gateway,
        "Observation/_search",
        token=token,
        method="POST",
        content="{}",
        headers={"Content-Type": "application/json"},
    )
    assert wrong.status_code == 415 and codes(issue(wrong)) == ["UNSUPPORTED_MEDIA_TYPE"]


def test_a_method_an_endpoint_does_not_take_is_an_operation_outcome(gateway: Gateway) -> None:
    response = fhir(gateway, f"Patient/{CITIZEN_PATIENT_ID}", persona="gp", method="PUT", content=b"{}")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]
    assert codes(issue(response)) == ["METHOD_NOT_ALLOWED"]


def test_an_unknown_search_parameter_is_refused_rather_than_ignored(gateway: Gateway) -> None:
    response = fhir(gateway, f"Observation?patinet={CITIZEN_PATIENT_ID}", persona="gp")
    assert response.status_code == 400
    found = issue(response)
    assert found["code"] == "invalid" and codes(found) == ["BAD_USER_INPUT"]
    assert "patient" in found["diagnostics"]


# ---- errors ----------------------------------------------------------------------------------------


def test_errors_are_operation_outcomes_with_the_codes_and_reasons_graphql_gives(gateway: Gateway) -> None:
    unauthenticated = fhir(gateway, "Patient")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert codes(issue(unauthenticated)) == ["UNAUTHENTICATED"]
    assert fhir(gateway, "Medication", persona="gp").status_code == 404
    assert fhir(gateway, "Observation?_count=0", persona="gp").status_code == 400
    assert fhir(gateway, "Patient", persona="gp", headers={"Accept": "application/fhir+xml"}).status_code == 406
    hidden = fhir(gateway, f"Patient/{CITIZEN_PATIENT_ID}", persona="nurse-other-municipality")
    missing = fhir(gateway, f"Patient/{uuid.uuid4()}", persona="nurse-other-municipality")
    assert hidden.status_code == missing.status_code == 403
    assert codes(issue(hidden)) == codes(issue(missing)) == ["FORBIDDEN", "NO_CARE_RELATION"]
    graphql = gateway.query(
        "query($id: ID!) { patient(id: $id) { id } }",
        "nurse-other-municipality",
        {"id": gid("Patient", CITIZEN_PATIENT_ID)},
    )
    assert graphql["errors"][0]["extensions"]["reason"] == codes(issue(hidden))[1]


# ---- another municipality ---------------------------------------------------------------------------


def test_the_nurse_of_another_municipality_gets_nothing_of_fjordvik_through_read_search_or_export(
    gateway: Gateway,
) -> None:
    token = gateway.token("nurse-other-municipality")
    fjordvik = {str(r["id"]) for r in gateway.fetch("SELECT id FROM patient WHERE municipality_id = $1", FJORDVIK)}
    assert str(CITIZEN_PATIENT_ID) in fjordvik
    assert fhir(gateway, f"Patient/{CITIZEN_PATIENT_ID}", token=token).status_code == 403
    for name in ROOTS:
        for resource in search_all(gateway, f"{name}?_count=100", token):
            patient = resource["id"] if name == "Patient" else _patient_of(resource)
            assert patient not in fjordvik, (name, resource["id"])
    assert search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}", token) == []
    _, manifest = export(gateway, token, f"Group/{FJORDVIK}/$export")
    assert manifest["output"] == []


def _patient_of(resource: dict[str, Any]) -> str:
    for element in ("subject", "patient"):
        if element in resource:
            return str(resource[element]["reference"]).removeprefix("Patient/")
    actors = [str(p["actor"]["reference"]) for p in resource.get("participant", []) if "actor" in p]
    return next(a.removeprefix("Patient/") for a in actors if a.startswith("Patient/"))


# ---- audit -----------------------------------------------------------------------------------------


def test_fhir_reads_and_searches_leave_the_audit_rows_graphql_reads_do(gateway: Gateway) -> None:
    token = gateway.token("gp")
    [row] = gateway.fetch("SELECT id FROM condition WHERE patient_id = $1 LIMIT 1", CITIZEN_PATIENT_ID)
    read = fhir(gateway, f"Condition/{row['id']}", token=token)
    assert read.status_code == 200
    audited = gateway.fetch(
        "SELECT action, decision, patient_id FROM audit_event WHERE resource_kind = 'condition' "
        "AND $1 = ANY(resource_ids) AND actor_id = $2 ORDER BY id DESC LIMIT 1",
        str(row["id"]),
        str(PERSONAS["gp"].entity_id),
    )
    assert [tuple(a) for a in audited] == [("read", "ALLOW", CITIZEN_PATIENT_ID)]
    listed = search_all(gateway, f"Encounter?patient={CITIZEN_PATIENT_ID}&_count=3", token)[:3]
    searched = gateway.fetch(
        "SELECT count(*) AS n FROM audit_event WHERE resource_kind = 'encounter' AND action = 'search' "
        "AND actor_id = $1 AND resource_ids && $2::text[]",
        str(PERSONAS["gp"].entity_id),
        [e["id"] for e in listed],
    )
    assert searched[0]["n"] >= 1


def test_a_note_text_the_reader_may_not_read_is_withheld_and_marked_redacted(gateway: Gateway) -> None:
    notes = search_all(gateway, "DocumentReference?_count=20", gateway.token("health-secretary"))
    gp_notes = search_all(gateway, "DocumentReference?_count=20", gateway.token("gp"))
    texts = [n for n in gp_notes if "data" in n["content"][0]["attachment"]]
    assert texts, "the GP reads note texts"
    for note in notes:
        assert "data" not in note["content"][0]["attachment"]
        assert note["meta"]["security"][0]["code"] == "REDACTED"


# ---- history ---------------------------------------------------------------------------------------


def test_history_lists_the_versions_the_journal_keeps_and_vread_returns_one(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse")
    patient = unit_patient(gateway)
    made = gateway.post(
        create_mutation("Observation"), token=token, variables={"input": heart_rate(gid("Patient", patient), 70)}
    ).json()
    created = made["data"]["createObservation"]
    changed = gateway.post(
        update_mutation("Observation"),
        token=token,
        variables={"id": created["id"], "v": created["version"], "input": {"valueQuantity": {"value": 72}}},
    ).json()
    assert changed["data"]["updateObservation"]["version"] == 2, changed
    rid = created["id"]
    history = fhir(gateway, f"Observation/{raw_id(rid)}/_history", token=token).json()
    validate(history)
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["resource"]["valueQuantity"]["value"] for e in history["entry"]] == [72, 70]
    first = fhir(gateway, f"Observation/{raw_id(rid)}/_history/1", token=token)
    assert first.status_code == 200 and first.json()["valueQuantity"]["value"] == 70
    assert fhir(gateway, f"Observation/{raw_id(rid)}/_history/3", token=token).status_code == 404


# ---- lab results in --------------------------------------------------------------------------------


def lab_bundle(national_id: str, requester: str, key: str, **changes: Any) -> dict[str, Any]:
    """A laboratory's transaction: a blood count with two results, the patient by national identity number."""
    results = [("718-7", 13.9, "urn:uuid:" + str(uuid.uuid4())), ("6690-2", 6.1, "urn:uuid:" + str(uuid.uuid4()))]
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
        "subject": {"identifier": {"system": FODSELSNUMMER, "value": national_id}},
        "effectiveDateTime": "2026-12-02T07:45:00Z",
        "conclusion": "Normal blodstatus",
        "extension": [
            {"url": "https://akson.no/fhir/StructureDefinition/requester", "valueReference": {"reference": requester}}
        ],
        "result": [{"reference": url} for _, _, url in results],
        **changes,
    }
    entries = [
        {
            "fullUrl": url,
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": amount},
                "effectiveDateTime": "2026-12-02T07:45:00Z",
            },
            "request": {"method": "POST", "url": "Observation"},
        }
        for code, amount, url in results
    ]
    entries.insert(1, {"resource": report, "request": {"method": "POST", "url": "DiagnosticReport"}})
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "identifier": {"system": "urn:oid:2.16.578.1.12.4.1.2.100", "value": key},
        "entry": entries,
    }


def post_bundle(gateway: Gateway, persona: str, bundle: dict[str, Any]) -> httpx.Response:
    return fhir(
        gateway,
        "",
        persona=persona,
        method="POST",
        content=orjson.dumps(bundle),
        headers={"Content-Type": "application/fhir+json"},
    )


def citizen_number(gateway: Gateway) -> str:
    return str(gateway.fetch("SELECT national_id FROM patient WHERE id = $1", CITIZEN_PATIENT_ID)[0]["national_id"])


def test_a_lab_delivers_a_transaction_bundle_once_and_the_gp_reads_it_through_fhir(gateway: Gateway) -> None:
    bundle = lab_bundle(citizen_number(gateway), f"Practitioner/{PERSONAS['gp'].entity_id}", str(uuid.uuid4()))
    validate(bundle)
    response = post_bundle(gateway, "lab-service", bundle)
    assert response.status_code == 200, response.text
    answer = response.json()
    validate(answer)
    assert answer["type"] == "transaction-response"
    assert {e["response"]["status"] for e in answer["entry"]} == {"201 Created"}
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert [loc.split("/")[0] for loc in locations] == ["Observation", "DiagnosticReport", "Observation"]
    report_id = locations[1].split("/")[1]
    report = fhir(gateway, f"DiagnosticReport/{report_id}", persona="gp").json()
    validate(report)
    assert report["conclusion"] == "Normal blodstatus"
    assert {r["reference"] for r in report["result"]} == {loc.rsplit("/_history", 1)[0] for loc in locations[::2]}
    for location, (code, amount) in zip(locations[::2], [("718-7", 13.9), ("6690-2", 6.1)], strict=True):
        result = fhir(gateway, location.rsplit("/_history", 1)[0], persona="gp").json()
        assert (result["code"]["coding"][0]["code"], result["valueQuantity"]["value"]) == (code, amount)
    again = post_bundle(gateway, "lab-service", bundle)
    assert again.status_code == 200
    assert {e["response"]["status"] for e in again.json()["entry"]} == {"200 OK"}
    assert [e["response"]["location"] for e in again.json()["entry"]] == locations
    audited = gateway.fetch(
        "SELECT resource_kind, count(*) AS n FROM audit_event WHERE action = 'create' AND resource_ids && $1::text[] "
        "GROUP BY 1 ORDER BY 1",
        [loc.split("/")[1] for loc in locations],
    )
    assert [(r["resource_kind"], r["n"]) for r in audited] == [("diagnostic_report", 1), ("observation", 2)]
    assert fhir(gateway, f"DiagnosticReport/{report_id}", persona="nurse-other-municipality").status_code == 403


def test_a_bundle_the_journal_cannot_take_is_refused_and_writes_nothing(gateway: Gateway) -> None:
    before = gateway.fetch("SELECT count(*) AS n FROM diagnostic_report")[0]["n"]
    number, gp = citizen_number(gateway), f"Practitioner/{PERSONAS['gp'].entity_id}"
    twice = lab_bundle(number, gp, str(uuid.uuid4()))
    twice["entry"][2]["fullUrl"] = twice["entry"][0]["fullUrl"]
    cases = [
        lab_bundle(number, gp, str(uuid.uuid4()), specimen=[{"reference": "Specimen/1"}]),
        lab_bundle(number, gp, str(uuid.uuid4()), result=[]),
        lab_bundle(number, gp, str(uuid.uuid4()), result=5),
        lab_bundle(number, gp, str(uuid.uuid4()), result=[{"reference": ["x"]}]),
        lab_bundle(number, gp, str(uuid.uuid4()), code={"coding": [{"system": "http://loinc.org", "code": "0-0"}]}),
        lab_bundle(number, gp, str(uuid.uuid4()), code={"coding": ["x"]}),
        lab_bundle(
            number,
            gp,
            str(uuid.uuid4()),
            code={"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": 5}]},
        ),
        lab_bundle(number, gp, str(uuid.uuid4()), category=["LAB"]),
        lab_bundle(number, gp, str(uuid.uuid4()), extension=["x"]),
        lab_bundle(number, gp, str(uuid.uuid4()), extension=[{"url": []}]),
        twice,
        {**lab_bundle(number, gp, str(uuid.uuid4())), "entry": 5},
        {**lab_bundle(number, gp, str(uuid.uuid4())), "type": "batch"},
    ]
    for bundle in cases:
        response = post_bundle(gateway, "lab-service", bundle)
        assert response.status_code == 400, response.text
        assert codes(issue(response)) == ["BAD_USER_INPUT"]
    denied = post_bundle(gateway, "nurse-other-municipality", lab_bundle(number, gp, str(uuid.uuid4())))
    assert denied.status_code == 403
    assert codes(issue(denied))[0] == "FORBIDDEN"
    assert gateway.fetch("SELECT count(*) AS n FROM diagnostic_report")[0]["n"] == before


# ---- Bulk Data export ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exporter(gateway: Gateway) -> str:
    """A backend service with system/*.rs scopes: the home-care integration, whose policy lets it read its
    unit's patients as their care relations allow."""
    return gateway.token("homecare-integration", scope="system/*.rs")


def test_a_backend_service_exports_exactly_what_graphql_lists_for_it(gateway: Gateway, exporter: str) -> None:
    status_url, manifest = export(gateway, exporter, "Patient/$export")
    files = downloaded(manifest, exporter)
    assert manifest["requiresAccessToken"] is True
    assert files["Patient"] and files["Observation"]
    for name, root in ROOTS.items():
        assert len(files.get(name, [])) == graphql_total(gateway, root, exporter), name
    exported = {r["id"] for r in files["Patient"]}
    audited = gateway.fetch(
        "SELECT DISTINCT patient_id::text AS p FROM audit_event WHERE action = 'export' AND resource_kind = 'patient' "
        "AND client_id = 'fjordvik-homecare-integration' AND recorded_at > now() - interval '5 minutes'"
    )
    assert exported <= {r["p"] for r in audited}
    other = fhir(gateway, status_url.split("/fhir/R4/")[1], persona="vendor-app")
    assert other.status_code == 404


def test_a_group_export_holds_only_the_groups_members_and_the_types_asked(gateway: Gateway, exporter: str) -> None:
    _, everything = export(gateway, exporter, "Patient/$export", _type="Patient,Encounter")
    _, group = export(gateway, exporter, f"Group/{FJORDVIK}/$export", _type="Patient,Encounter")
    assert {item["type"] for item in group["output"]} <= {"Patient", "Encounter"}
    members = {str(r["id"]) for r in gateway.fetch("SELECT id FROM patient WHERE municipality_id = $1", FJORDVIK)}
    files = downloaded(group, exporter)
    assert files["Patient"] and {p["id"] for p in files["Patient"]} <= members
    assert {e["subject"]["reference"].removeprefix("Patient/") for e in files["Encounter"]} <= members
    _, since = export(gateway, exporter, "Patient/$export", _type="Encounter", _since="2999-01-01T00:00:00Z")
    assert since["output"] == []
    assert sum(i["count"] for i in group["output"]) <= sum(i["count"] for i in everything["output"])


def test_a_system_export_holds_the_directory_as_well(gateway: Gateway) -> None:
    token = gateway.token("vendor-app")
    _, manifest = export(gateway, token, "$export")
    files = downloaded(manifest, token)
    assert set(files) == {"Organization", "Practitioner", "PractitionerRole"}
    units = gateway.fetch("SELECT count(*) AS n FROM organization")[0]["n"]
    assert len(files["Organization"]) == units
    refused = fhir(gateway, "Patient/$export?_type=Organization", token=token, headers={"Prefer": "respond-async"})
    assert refused.status_code == 400


def test_an_export_is_refused_without_respond_async_and_cancelled_by_delete(gateway: Gateway, exporter: str) -> None:
    plain = fhir(gateway, "$export", token=exporter)
    assert plain.status_code == 400 and "respond-async" in issue(plain)["diagnostics"]
    bad = fhir(gateway, "$export?_type=Medication", token=exporter, headers={"Prefer": "respond-async"})
    assert bad.status_code == 400
    status_url, manifest = export(gateway, exporter, "Patient/$export", _type="Patient")
    cancelled = httpx.delete(status_url, headers={"Authorization": f"Bearer {exporter}"}, timeout=30)
    assert cancelled.status_code == 202
    assert httpx.get(status_url, headers={"Authorization": f"Bearer {exporter}"}, timeout=30).status_code == 404
    gone = httpx.get(manifest["output"][0]["url"], headers={"Authorization": f"Bearer {exporter}"}, timeout=30)
    assert gone.status_code == 404


def test_an_app_runs_a_bounded_number_of_exports_and_one_whose_process_died_fails(
    gateway: Gateway, exporter: str
) -> None:
    status_url, _ = export(gateway, exporter, "Patient/$export", _type="Patient")
    job = uuid.UUID(status_url.rsplit("/", 1)[1])
    gateway.fetch(
        "UPDATE bulk_export SET status = 'running', heartbeat_at = now() - interval '1 hour', expires_at = NULL "
        "WHERE id = $1",
        job,
    )
    held = [uuid.uuid4(), uuid.uuid4()]
    for fake in held:
        gateway.fetch(
            "INSERT INTO bulk_export (id, client_id, requested_by, level, types, request_url, status, "
            "transaction_time) VALUES ($1, 'fjordvik-homecare-integration', 'service:x', 'patient', '{Patient}', "
            "'x', 'running', now())",
            fake,
        )
    try:
        refused = fhir(gateway, "Patient/$export", token=exporter, headers={"Prefer": "respond-async"})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert codes(issue(refused)) == ["RATE_LIMITED"]
    finally:
        gateway.fetch("DELETE FROM bulk_export WHERE id = ANY($1::uuid[])", held)
    died = httpx.get(status_url, headers={"Authorization": f"Bearer {exporter}"}, timeout=30)
    assert died.status_code == 500
    assert codes(issue(died)) == ["EXPORT_FAILED"]
    assert "stopped" in issue(died)["diagnostics"]
    head = httpx.head(
        f"{gateway.base_url}/fhir/R4/Patient/$export",
        headers={"Authorization": f"Bearer {exporter}", "Prefer": "respond-async"},
        timeout=30,
    )
    assert head.status_code == 405


def test_export_files_expire(gateway: Gateway, exporter: str) -> None:
    status_url, manifest = export(gateway, exporter, "Patient/$export", _type="Patient")
    job = status_url.rsplit("/", 1)[1]
    gateway.fetch("UPDATE bulk_export SET expires_at = now() - interval '1 second' WHERE id = $1", uuid.UUID(job))
    assert httpx.get(status_url, headers={"Authorization": f"Bearer {exporter}"}, timeout=30).status_code == 404
    assert (
        httpx.get(manifest["output"][0]["url"], headers={"Authorization": f"Bearer {exporter}"}, timeout=30).status_code
        == 404
    )
    export(gateway, exporter, "Patient/$export", _type="Patient")
    assert not (gateway.data_dir / "exports" / job).exists()


# ---- a real FHIR client ----------------------------------------------------------------------------


def test_a_real_fhir_client_reads_and_searches(gateway: Gateway) -> None:
    server = FHIRServer(None, base_uri=f"{gateway.base_url}/fhir/R4/")
    server.session.headers["Authorization"] = f"Bearer {gateway.token('homecare-nurse')}"
    patient = ClientPatient.read(str(CITIZEN_PATIENT_ID), server)
    assert patient.identifier[0].system == FODSELSNUMMER
    assert patient.name[0].family == PERSONAS["citizen"].family_name
    search = ClientObservation.where(struct={"patient": str(CITIZEN_PATIENT_ID), "_count": "5"})
    found = list(search.perform_resources_iter(server))
    expected = search_all(gateway, f"Observation?patient={CITIZEN_PATIENT_ID}", gateway.token("homecare-nurse"))
    assert len(found) == len(expected) > 5
    assert {o.id for o in found} == {o["id"] for o in expected}
    assert all(o.subject.reference == f"Patient/{CITIZEN_PATIENT_ID}" for o in found)


def test_every_fhir_type_is_a_declared_kind(gateway: Gateway) -> None:
    declared = {k.fhir.resource for k in KINDS.values() if k.fhir is not None}
    assert declared == set(TYPES)
