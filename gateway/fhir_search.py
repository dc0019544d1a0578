"""FHIR search parameters as the store's list filters, derived from each kind's declared filters.

A kind's FHIR search parameters are: `_id`, `_lastUpdated`, `patient` (patient data), `date` (the kind's
declared time range), `code` (a coded kind), `identifier` (Patient), and every declared code filter under
its FHIR name (`status`, `category`, `clinical-status`, ...). A parameter the kind does not have is refused
(400): a misspelt `patient` must never widen a search to every patient the caller may see.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.declare import Filter, ResourceKind
from gateway.errors import BadUserInput
from gateway.fhir_map import D_NUMBER, FODSELSNUMMER, Concept
from gateway.store import ListArgs

# Dates without a time zone are days in Norway.
LOCAL_TIME = ZoneInfo("Europe/Oslo")
CONTROL = frozenset({"_count", "_cursor", "_format"})
_PREFIXED = re.compile(r"(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}.*)")
_PARTIAL = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")

Filters = list[tuple[str, Any]]


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of a kind: its FHIR name and type, what it means, and how a value becomes
    filters of the kind's list."""

    name: str
    type: str
    documentation: str
    filters: Callable[[str], Filters]


def _token(raw: str) -> tuple[str | None, str]:
    system, bar, code = raw.partition("|")
    return (system or None, code) if bar else (None, raw)


def _uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise BadUserInput(f"{what} must be an id issued by this server", argument=what) from exc


def _bounds(raw: str, param: str) -> tuple[str, datetime, datetime]:
    """A FHIR date search value: its prefix and the instants its precision spans, [low, high)."""
    match = _PREFIXED.fullmatch(raw)
    if match is None:
        raise BadUserInput(f"{param} must be a date or date-time, optionally prefixed (ge2024-01-01)", argument=param)
    prefix, text = match.group(1) or "eq", match.group(2)
    if prefix not in {"eq", "gt", "lt", "ge", "le"}:
        raise BadUserInput(f"{param}: the prefix {prefix!r} is not supported (eq, gt, ge, lt, le)", argument=param)
    partial = _PARTIAL.fullmatch(text)
    try:
        if partial is not None:
            year, month, day = (int(g) if g else None for g in partial.groups())
            assert year is not None
            if month == 0 or day == 0:
                raise ValueError(text)
            low_day = date(year, month or 1, day or 1)
            if day:
                high_day = low_day + timedelta(days=1)
            elif month:
                high_day = date(year + month // 12, month % 12 + 1, 1)
            else:
                high_day = date(year + 1, 1, 1)
            low = datetime.combine(low_day, datetime.min.time(), LOCAL_TIME)
            high = datetime.combine(high_day, datetime.min.time(), LOCAL_TIME)
        else:
            low = datetime.fromisoformat(text)
            if low.tzinfo is None:
                low = low.replace(tzinfo=LOCAL_TIME)
            high = low + (timedelta(microseconds=1) if low.microsecond else timedelta(seconds=1))
    except (ValueError, OverflowError) as exc:
        raise BadUserInput(f"{param}: {text!r} is not a date this server can search by", argument=param) from exc
    return prefix, low, high


def _range(stem_from: str, stem_to: str, param: str) -> Callable[[str], Filters]:
    def filters(raw: str) -> Filters:
        prefix, low, high = _bounds(raw, param)
        return {
            "eq": [(stem_from, low), (stem_to, high)],
            "ge": [(stem_from, low)],
            "gt": [(stem_from, high)],
            "lt": [(stem_to, low)],
            "le": [(stem_to, high)],
        }[prefix]

    return filters


def _time_range(kind: ResourceKind) -> tuple[Filter, Filter] | None:
    """The kind's declared time range (`<stem>_from`, `<stem>_to`), if it has one."""
    for low in kind.filters:
        if low.op == "ge" and low.pg_type == "timestamptz" and low.exposed:
            high = next((f for f in kind.filters if f.op == "lt" and f.column == low.column), None)
            if high is not None:
                return low, high
    return None


def _code_filter(kind: ResourceKind, spec: Filter) -> Callable[[str], Filters]:
    """A declared code filter: FHIR's code where the kind's map shows it differently (`LAB`), ours otherwise."""
    elements = dict(kind.fhir.elements) if kind.fhir else {}
    element = elements.get(spec.name)
    theirs = {v: k for k, v in element.codes.items()} if isinstance(element, Concept) else {}

    def filters(raw: str) -> Filters:
        _, code = _token(raw)
        return [(spec.name, theirs.get(code, code))]

    return filters


def _identifier(raw: str) -> Filters:
    system, number = _token(raw)
    if system not in {None, FODSELSNUMMER, D_NUMBER}:
        raise BadUserInput(
            f"identifier: this server knows patients by {FODSELSNUMMER} or {D_NUMBER}", argument="identifier"
        )
    return [("national_identity_number", number)]


def _code(raw: str) -> Filters:
    system, code = _token(raw)
    return [("code", code)] + ([("code_system", system)] if system else [])


def _patient(raw: str) -> Filters:
    return [("patient_id", _uuid(raw.removeprefix("Patient/"), "patient"))]


def search_params(kind: ResourceKind) -> dict[str, SearchParam]:
    """The FHIR search parameters of a kind, by name."""
    params = [
        SearchParam("_id", "token", "The resource's id.", lambda raw: [("id", _uuid(raw, "_id"))]),
        SearchParam(
            "_lastUpdated",
            "date",
            "When the resource last changed.",
            _range("last_updated_from", "last_updated_to", "_lastUpdated"),
        ),
    ]
    if kind.patient_column is not None and kind.patient_column != "id":
        params.append(SearchParam("patient", "reference", "The patient (Patient/<id> or <id>).", _patient))
    time_range = _time_range(kind)
    if time_range is not None:
        low, high = time_range
        params.append(
            SearchParam("date", "date", f"{low.description} / {high.description}", _range(low.name, high.name, "date"))
        )
    declared = kind.filter_map
    if "code" in declared:
        params.append(SearchParam("code", "token", declared["code"].description, _code))
    if "national_identity_number" in declared:
        params.append(SearchParam("identifier", "token", "The national identity number (system|value).", _identifier))
    for spec in kind.filters:
        if spec.exposed and spec.enum is not None and spec.pg_type == "text":
            params.append(SearchParam(spec.name.replace("_", "-"), "token", spec.description, _code_filter(kind, spec)))
    return {p.name: p for p in params}


def list_args(kind: ResourceKind, query: list[tuple[str, str]], count: int) -> ListArgs:
    """The list arguments of a FHIR search: its filters (refused when the kind has no such parameter, or a
    value is malformed), `count` a page and `_cursor` where the page starts."""
    known = search_params(kind)
    filters: Filters = []
    cursor = None
    for name, raw in query:
        if name == "_cursor":
            cursor = raw
            continue
        if name in CONTROL:
            continue
        param = known.get(name.split(":")[0])
        if param is None or ":" in name:
            raise BadUserInput(
                f"{kind.fhir.resource if kind.fhir else kind.type_name} has no search parameter {name!r}; it has "
                f"{', '.join(sorted(known))}",
                argument=name,
            )
        if "," in raw:
            raise BadUserInput(f"{name}: lists of values (a,b) are not supported; search once per value", argument=name)
        filters += param.filters(raw)
    return ListArgs(first=count, after=cursor, filters=tuple(filters))
