"""Journal rows as FHIR R4 resources, and FHIR resources as the input of the journal's writes, both from the
kinds' FHIR maps (gateway/fhir_map.py, declared in gateway/resources.py).

Every field's FHIR value follows from its declared type: a Span is a Period, a Coded a CodeableConcept, a
Measured a UCUM Quantity, a Named a HumanName, a Ref a Reference to the target kind's resource. The
version and the time of the last change are `meta`; a resource entered in error carries its kind's mark.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from gateway.declare import (
    Choice,
    Coded,
    Count,
    Day,
    Field,
    Flag,
    Instant,
    Measured,
    Named,
    Ref,
    ResourceKind,
    Span,
    Text,
)
from gateway.errors import BadUserInput
from gateway.fhir_map import (
    AKSON_EXTENSIONS,
    D_NUMBER,
    FODSELSNUMMER,
    UCUM,
    AddressText,
    As,
    Attachment,
    CodingOf,
    Concept,
    Contact,
    Described,
    Element,
    Extension,
    FhirMap,
    Identifier,
    PeriodStatus,
    PersonIdentifier,
    Results,
    Within,
    get,
    put,
)
from gateway.resources import KINDS

FHIR_KINDS: dict[str, ResourceKind] = {k.fhir.resource: k for k in KINDS.values() if k.fhir is not None}
REDACTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED"}
# The element that holds the value of an extension, by the type of the field in it.
_VALUE_ELEMENT = {Flag: "valueBoolean", Ref: "valueReference", Instant: "valueDateTime", Text: "valueString"}


def fhir_map(kind: ResourceKind) -> FhirMap:
    """The kind's FHIR map (every kind FHIR shows has one)."""
    assert kind.fhir is not None, kind.type_name
    return kind.fhir


def reference(type_name: str, rid: object) -> dict[str, str]:
    """A Reference to a journal resource of the kind with this GraphQL type name."""
    return {"reference": f"{fhir_map(KINDS[type_name]).resource}/{rid}"}


def _moment(moment: datetime | date) -> str:
    return moment.isoformat()


def natural(item: Field, row: Mapping[str, Any]) -> Any:
    """A field of a row as its own FHIR type, or None when it has no value."""
    if isinstance(item, Span):
        period = {
            key: _moment(row[column])
            for key, column in (("start", item.start), ("end", item.end))
            if row[column] is not None
        }
        return period or None
    if isinstance(item, Named):
        given = (row[item.given] or "").split()
        name: dict[str, Any] = {"family": row[item.family], "given": given}
        name["text"] = " ".join([*given, row[item.family]])
        return name
    if isinstance(item, Coded):
        system, code, display = (row[c] for c in item.columns)
        if code is None:
            return None
        return {"coding": [{"system": system, "code": code, "display": display}], "text": display}
    if isinstance(item, Measured):
        amount = row[item.value_column]
        if amount is None:
            return None
        quantity: dict[str, Any] = {"value": float(amount) if isinstance(amount, Decimal) else amount}
        unit = row[item.unit_column]
        if unit:
            quantity |= {"unit": unit, "system": UCUM, "code": unit}
        return quantity
    if isinstance(item, Ref):
        found = row[item.column]
        return None if found is None else reference(item.target, found)
    if isinstance(item, Instant | Day):
        found = row[item.column]
        return None if found is None else _moment(found)
    if isinstance(item, Text | Choice | Flag | Count):
        return row[item.column]
    raise TypeError(f"{type(item).__name__} has no FHIR form")  # pragma: no cover


def _period_status(element: PeriodStatus, item: Span, row: Mapping[str, Any]) -> str:
    now: date | datetime = date.today() if item.dates else datetime.now(UTC)
    start, end = row[item.start], row[item.end]
    if start is not None and start > now:
        return element.before
    if end is not None and end < now:
        return element.after
    return element.during


def _element_value(element: Element, item: Field, row: Mapping[str, Any], children: list[str]) -> Any:
    """What `element` puts in the resource for this field of this row (None: nothing)."""
    if isinstance(element, PeriodStatus):
        assert isinstance(item, Span)
        return _period_status(element, item, row)
    if isinstance(element, Results):
        return [reference(getattr(item, "target", ""), child) for child in children] or None
    found = natural(item, row)
    if found is None:
        return None
    if isinstance(element, Concept):
        code = element.codes.get(found, found)
        coding = {"system": element.system, "code": code}
        return coding if isinstance(element, CodingOf) else {"coding": [coding]}
    if isinstance(element, PersonIdentifier):
        return {"system": D_NUMBER if str(found)[0] in "4567" else FODSELSNUMMER, "value": found}
    if isinstance(element, Identifier):
        return {"system": element.system, "value": found}
    if isinstance(element, Contact):
        return {"system": element.system, "value": found}
    if isinstance(element, AddressText):
        return {"text": found}
    if isinstance(element, Described):
        return {"text": found}
    if isinstance(element, Attachment):
        return {"data": base64.b64encode(str(found).encode()).decode()}
    if isinstance(element, Extension):
        return {"url": f"{AKSON_EXTENSIONS}/{element.name}", _VALUE_ELEMENT[_value_type(item)]: found}
    if isinstance(element, Within):
        return {**dict(element.extra), element.key: found}
    assert isinstance(element, As)
    return element.codes.get(found, found) if isinstance(found, str) else found


def _value_type(item: Field) -> type[Field]:
    return next(t for t in _VALUE_ELEMENT if isinstance(item, t))


def render(
    kind: ResourceKind,
    row: Mapping[str, Any],
    *,
    children: Mapping[str, list[str]] | None = None,
    withheld: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A row as its FHIR resource. `children` holds, by field name, the ids of list fields shown as
    references (only those the caller may read); `withheld` names fields the caller may not read."""
    spec = fhir_map(kind)
    resource: dict[str, Any] = {
        "resourceType": spec.resource,
        "id": str(row[kind.id_column]),
        "meta": {"versionId": str(row["version"]), "lastUpdated": _moment(row["last_updated"])},
    }
    for name, element in spec.elements:
        if name in withheld:
            continue
        found = _element_value(element, kind.field(name), row, list((children or {}).get(name, ())))
        if found is None:
            continue
        if isinstance(element, Results):
            for each in found:
                put(resource, element.path, each)
        else:
            put(resource, element.path, found)
    for path, constant in spec.fixed:
        put(resource, path, constant)
    if spec.entered_in_error is not None and row.get("entered_in_error_at") is not None:
        path, mark = spec.entered_in_error
        put(resource, path, mark)
    if withheld:
        resource["meta"]["security"] = [REDACTED]
    return resource


# ---- FHIR in: the input of a write ----------------------------------------------------------------------


def _reference_id(found: Any, target: str, where: str) -> str:
    text = found.get("reference") if isinstance(found, dict) else None
    kind_name = fhir_map(KINDS[target]).resource
    if not isinstance(text, str) or not text.startswith(f"{kind_name}/"):
        raise BadUserInput(f"{where} must reference a {kind_name} as {kind_name}/<id>", argument=where)
    rid = text.removeprefix(f"{kind_name}/")
    try:
        return str(uuid.UUID(rid))
    except ValueError as exc:
        raise BadUserInput(f"{where} names no {kind_name} of this journal", argument=where) from exc


def _instant_in(found: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(found))
    except ValueError as exc:
        raise BadUserInput(f"{where} must be a FHIR dateTime with a time zone", argument=where) from exc
    if moment.tzinfo is None:
        raise BadUserInput(f"{where} needs a time zone (e.g. 2026-12-01T09:30:00Z)", argument=where)
    return moment


def _references_of(resource: dict[str, Any], element: Element) -> list[Any]:
    """Every candidate value for a reference field: a list's elements, or the one element."""
    if isinstance(element, Extension):
        url = f"{AKSON_EXTENSIONS}/{element.name}"
        return [e.get("valueReference") for e in resource.get("extension", []) if e.get("url") == url]
    head, _, rest = element.path.partition("[")
    if rest:
        items = resource.get(head)
        return list(items) if isinstance(items, list) else []
    found = get(resource, element.path)
    return [] if found is None else [found]


def _field_in(item: Field, element: Element, resource: dict[str, Any], where: str) -> Any:
    """The write input of one field from a FHIR resource, or None when the resource leaves it out."""
    if isinstance(item, Ref):
        kind_name = fhir_map(KINDS[item.target]).resource
        for candidate in _references_of(resource, element):
            text = candidate.get("reference", "") if isinstance(candidate, dict) else ""
            if isinstance(text, str) and text.startswith(f"{kind_name}/"):
                return _reference_id(candidate, item.target, where)
        return None
    if isinstance(element, Extension):
        url = f"{AKSON_EXTENSIONS}/{element.name}"
        values = [e for e in resource.get("extension", []) if e.get("url") == url]
        return values[0].get(_VALUE_ELEMENT[_value_type(item)]) if values else None
    found = get(resource, element.path)
    if found is None:
        return None
    if isinstance(element, Concept):
        codings = [found] if isinstance(element, CodingOf) else (found.get("coding") or [])
        reverse = {theirs: ours for ours, theirs in element.codes.items()}
        for coding in codings:
            if coding.get("system") == element.system:
                return reverse.get(coding.get("code"), coding.get("code"))
        raise BadUserInput(f"{where} needs a coding of {element.system}", argument=where)
    if isinstance(item, Coded):
        codings = found.get("coding") if isinstance(found, dict) else None
        for coding in codings or []:
            if coding.get("system") in item.systems:
                given = {k: coding[k] for k in ("system", "code", "display") if k in coding}
                if not all(isinstance(v, str) for v in given.values()):
                    raise BadUserInput(f"{where}: a coding's system, code and display are strings", argument=where)
                return given
        raise BadUserInput(f"{where} needs a coding of {' or '.join(item.systems)}", argument=where)
    if isinstance(item, Measured):
        if not isinstance(found, dict):
            raise BadUserInput(f"{where} must be a Quantity", argument=where)
        return {"value": found.get("value"), "unit": found.get("code") or found.get("unit")}
    if isinstance(item, Instant):
        return _instant_in(found, where)
    if isinstance(item, Span):
        return {
            key: None if found.get(key) is None else _instant_in(found[key], f"{where}.{key}")
            for key in ("start", "end")
        }
    if isinstance(element, As) and isinstance(found, str):
        reverse = {theirs: ours for ours, theirs in element.codes.items()}
        return reverse.get(found, found)
    return found


def write_input(kind: ResourceKind, resource: dict[str, Any], where: str) -> dict[str, Any]:
    """The input of a create of `kind` from a FHIR resource of its type: every field its map places that a
    create takes. Elements the journal would not keep are refused (nothing sent is silently lost)."""
    spec = fhir_map(kind)
    if resource.get("resourceType") != spec.resource:
        raise BadUserInput(f"{where} must be a {spec.resource}", argument=where)
    kept = {"resourceType", "id", "meta", "text", "extension"} | {
        element.path.split(".")[0].removesuffix("[+]").removesuffix("[]") for _, element in spec.elements
    }
    ours = {f"{AKSON_EXTENSIONS}/{e.name}" for _, e in spec.elements if isinstance(e, Extension)}
    extensions = resource.get("extension") or []
    if not isinstance(extensions, list) or not all(isinstance(e, dict) for e in extensions):
        raise BadUserInput(f"{where}.extension must be a list of extensions", argument=f"{where}.extension")
    unknown = sorted(set(resource) - kept) + sorted(
        str(e.get("url")) for e in extensions if not isinstance(e.get("url"), str) or e["url"] not in ours
    )
    if unknown:
        raise BadUserInput(
            f"{where} has elements this journal does not keep: {', '.join(unknown)}", argument=f"{where}.{unknown[0]}"
        )
    given: dict[str, Any] = {}
    for name, element in spec.elements:
        item = kind.field(name)
        if item.create is None or isinstance(element, PeriodStatus | Results):
            continue
        at = f"{where}.{element.path.split('.')[0].strip('[]+')}"
        try:
            found = _field_in(item, element, resource, at)
        except (AttributeError, TypeError, KeyError) as exc:
            raise BadUserInput(f"{at} is not shaped as FHIR R4 has it", argument=at) from exc
        if found is not None:
            given[name] = found
    return given
