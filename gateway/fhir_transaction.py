"""Lab results in as FHIR: `POST /fhir/R4` with a transaction Bundle of one DiagnosticReport and its
Observations, written by the same create as GraphQL's `createDiagnosticReport` (same input checks,
policies, audit rows, change events; one transaction), with the Bundle's identifier as the idempotency key.

The patient is named by the report's subject: `Patient/<id>`, an identifier of a Norwegian person number,
or the conditional reference `Patient?identifier=<system>|<number>`. The Observations are the entries the
report's `result` references (by their `fullUrl`, as transaction Bundles link new resources).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import Context
from gateway.errors import BadRequest, BadUserInput
from gateway.fhir_api import FHIR_JSON, fhir_endpoint, fhir_response
from gateway.fhir_map import D_NUMBER, FODSELSNUMMER
from gateway.fhir_resources import write_input
from gateway.graphql_http import read_typed_body
from gateway.resources import DIAGNOSTIC_REPORT, OBSERVATION
from gateway.runtime import runtime_of
from gateway.sql import sql, value
from gateway.store import fetch
from gateway.write_path import result_id

PERSON_SYSTEMS = (FODSELSNUMMER, D_NUMBER)


def _patient_of(subject: Any) -> dict[str, Any]:
    """The create input naming the patient, from a report's subject."""
    if not isinstance(subject, dict):
        raise BadUserInput("DiagnosticReport.subject is required", argument="DiagnosticReport.subject")
    identifier = subject.get("identifier")
    reference = subject.get("reference")
    if isinstance(reference, str) and reference.startswith("Patient?"):
        query = dict(parse_qsl(reference.removeprefix("Patient?")))
        system, _, number = query.get("identifier", "").partition("|")
        identifier = {"system": system, "value": number}
    if isinstance(identifier, dict):
        if identifier.get("system") not in PERSON_SYSTEMS:
            raise BadUserInput(
                f"DiagnosticReport.subject.identifier.system must be {FODSELSNUMMER} or {D_NUMBER}",
                argument="DiagnosticReport.subject.identifier.system",
            )
        return {"patient_national_identity_number": identifier.get("value")}
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return {"patient": reference.removeprefix("Patient/")}
    raise BadUserInput(
        "DiagnosticReport.subject must be Patient/<id>, an identifier or Patient?identifier=<system>|<number>",
        argument="DiagnosticReport.subject",
    )


def _entries(
    bundle: Any,
) -> tuple[str | None, dict[str, Any], list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """The Bundle's idempotency key, its report, its Observations by fullUrl, and every entry's type and
    fullUrl in the Bundle's order (the response's order), each checked."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadUserInput("the body must be a FHIR Bundle", argument="Bundle")
    if bundle.get("type") != "transaction":
        raise BadUserInput("this server takes Bundles of type transaction", argument="Bundle.type")
    identifier = bundle.get("identifier") or {}
    key = identifier.get("value") if isinstance(identifier, dict) else None
    if key is not None:
        key = f"{identifier.get('system') or ''}|{key}"
    reports: list[dict[str, Any]] = []
    observations: list[tuple[str, dict[str, Any]]] = []
    order: list[tuple[str, str]] = []
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadUserInput("Bundle.entry must be a list", argument="Bundle.entry")
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(request, dict):
            raise BadUserInput(f"{where} needs a resource and a request", argument=where)
        kind_name = resource.get("resourceType")
        url = entry.get("fullUrl")
        if kind_name == "Observation" and (not isinstance(url, str) or not url or url in dict(observations)):
            raise BadUserInput(f"{where}.fullUrl must name this Observation, once in the Bundle", argument=where)
        order.append((str(kind_name), str(url or "")))
        if request.get("method") != "POST" or request.get("url") != kind_name:
            raise BadUserInput(f"{where}: this server takes only creates (POST {kind_name})", argument=where)
        if kind_name == "DiagnosticReport":
            reports.append(resource)
        elif kind_name == "Observation":
            observations.append((str(url), resource))
        else:
            raise BadUserInput(
                f"{where}: a transaction here holds one DiagnosticReport and its Observations, not {kind_name}",
                argument=where,
            )
    if len(reports) != 1:
        raise BadUserInput("a transaction here holds exactly one DiagnosticReport", argument="Bundle.entry")
    return key, reports[0], observations, order


def report_input(
    report: dict[str, Any], observations: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any], list[str]]:
    """The input of `createDiagnosticReport` from a report and the Observations its results reference, and
    the Observations' fullUrls in the order of the input's results."""
    by_url = dict(observations)
    references = report.get("result") or []
    if not isinstance(references, list) or not all(
        isinstance(r, dict) and isinstance(r.get("reference"), str) for r in references
    ):
        raise BadUserInput("DiagnosticReport.result must be a list of references", argument="DiagnosticReport.result")
    wanted = [str(r["reference"]) for r in references]
    if len(set(wanted)) != len(wanted) or set(wanted) != set(by_url):
        raise BadUserInput(
            "DiagnosticReport.result must reference every Observation of the Bundle by its fullUrl, once each",
            argument="DiagnosticReport.result",
        )
    given = write_input(DIAGNOSTIC_REPORT, {k: v for k, v in report.items() if k != "result"}, "DiagnosticReport")
    given.pop("patient", None)
    given.update(_patient_of(report.get("subject")))
    results = []
    for index, url in enumerate(wanted):
        observation = by_url[str(url)]
        if observation.get("subject") not in (None, report.get("subject")):
            raise BadUserInput(
                "an Observation's subject must be its report's", argument=f"Observation[{index}].subject"
            )
        item = write_input(OBSERVATION, observation, f"Observation[{index}]")
        item.pop("patient", None)
        results.append(item)
    if results:
        given["results"] = results
    return given, wanted


@fhir_endpoint(cost=lambda request: 1)
async def transaction(request: Request, context: Context) -> Response:
    """`POST /fhir/R4`: a lab's report with its results, written as one create; answered (200) with a
    transaction-response Bundle whose entries say `201 Created`, or `200 OK` for a report this key made
    before."""
    settings = runtime_of(request.scope).settings
    body = await read_typed_body(
        request.receive,
        request.headers,
        (FHIR_JSON, "application/json"),
        settings.max_body_bytes,
        f"send the Bundle as {FHIR_JSON}",
    )
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON") from exc
    key, report, observations, order = _entries(bundle)
    given, results = report_input(report, observations)
    row, rid = await context.journal.create(DIAGNOSTIC_REPORT, given, key)
    [made] = await fetch(
        runtime_of(request.scope).pool,
        sql("SELECT version, last_updated FROM diagnostic_report WHERE id = ", value(rid, "uuid")),
    )
    status = "201 Created" if row is not None else "200 OK"
    position = {url: index for index, url in enumerate(results)}
    entries = []
    for kind_name, url in order:
        if kind_name == "DiagnosticReport":
            entries.append(_entry(kind_name, rid, made["version"], made["last_updated"], status))
        else:
            oid = str(result_id(rid, position[url]))
            entries.append(_entry(kind_name, oid, 1, made["last_updated"], status))
    return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


def _entry(kind: str, rid: str, version: int, when: Any, status: str) -> dict[str, Any]:
    return {
        "response": {
            "status": status,
            "location": f"{kind}/{rid}/_history/{version}",
            "etag": f'W/"{version}"',
            "lastModified": when.isoformat(),
        }
    }
