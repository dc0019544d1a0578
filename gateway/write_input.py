"""What a write sets, checked against the kind's declaration before anything is written.

An input arrives as plain values keyed by field name (resolvers/writes.py turns GraphQL inputs into
them): scalars, enum codes, `{system, code, display}` for a code, `{value, unit}` for a quantity,
`{start, end}` for a period, `{family, given}` for a name, and journal ids for references. Every value
is checked here (length and characters of text, time zones, periods, codes against the code tables with
their expected units, references against their kind and the patient) and becomes column values. Bad
input raises BadUserInput naming the argument path (`input.code.code`), before any row changes.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg

from gateway.declare import (
    Choice,
    Coded,
    Count,
    Day,
    Field,
    Flag,
    Instant,
    Many,
    Measured,
    Named,
    Ref,
    ResourceKind,
    Span,
    Text,
)
from gateway.errors import BadUserInput
from gateway.resources import KINDS
from gateway.sql import ident, sql, value
from gateway.store import fetch


@dataclass
class Columns:
    """Column values a write sets, and the code concept its code is (for derived values)."""

    values: dict[str, Any] = field(default_factory=dict)
    concept: asyncpg.Record | None = None


def _path(prefix: str, item: Field, *rest: str) -> str:
    """The argument path of a field of an input, as the client named it (`input.encounterId`)."""
    name = f"{item.public_name}Id" if isinstance(item, Ref) else item.public_name
    return ".".join([prefix, name, *rest])


def check_text(text: Any, where: str, *, max_length: int, required: bool = True) -> str | None:
    """Text as stored: not blank when required, within its length, without control characters PostgreSQL
    refuses (NUL)."""
    if text is None:
        if required:
            raise BadUserInput(f"{where} is required", argument=where)
        return None
    if not isinstance(text, str):
        raise BadUserInput(f"{where} must be text", argument=where)
    if "\x00" in text:
        raise BadUserInput(f"{where} may not contain the NUL character", argument=where)
    if required and not text.strip():
        raise BadUserInput(f"{where} may not be blank", argument=where)
    if len(text) > max_length:
        raise BadUserInput(f"{where} may be at most {max_length} characters", argument=where)
    return text


def _may_be_null(item: Field) -> bool:
    """Whether an update may clear the field."""
    if isinstance(item, Text | Instant | Day | Choice | Flag | Count):
        return item.nullable
    if isinstance(item, Ref):
        return item.create != "required"
    return isinstance(item, Measured)


def _instant(moment: Any, where: str) -> datetime:
    if not isinstance(moment, datetime):
        raise BadUserInput(f"{where} must be a date and time", argument=where)
    if moment.tzinfo is None:
        raise BadUserInput(f"{where} needs a time zone (e.g. 2026-12-01T09:30:00Z)", argument=where)
    return moment


def _day(day: Any, where: str) -> date:
    if not isinstance(day, date) or isinstance(day, datetime):
        raise BadUserInput(f"{where} must be a date (YYYY-MM-DD)", argument=where)
    return day


class InputChecker:
    """Checks one write's input for one kind, with the connection of its transaction for lookups."""

    def __init__(self, conn: asyncpg.Connection, kind: ResourceKind, patient_id: str | None) -> None:
        self._conn = conn
        self._kind = kind
        self._patient_id = patient_id

    async def columns(self, given: dict[str, Any], *, creating: bool, prefix: str = "input") -> Columns:
        """Column values for the fields `given` sets; on create, every required field must be there."""
        out = Columns()
        for item in self._kind.fields:
            if isinstance(item, Ref) and item.column == self._kind.patient_column:
                continue
            if isinstance(item, Many) or not item.writable:
                if item.name in given and not isinstance(item, Many):
                    raise BadUserInput(f"{_path(prefix, item)} cannot be set", argument=_path(prefix, item))
                continue
            allowed = item.create is not None if creating else item.patch
            if item.name not in given:
                if creating and item.create == "required":
                    raise BadUserInput(f"{_path(prefix, item)} is required", argument=_path(prefix, item))
                if creating and item.create is not None and item.default is not None:
                    out.values[item.columns[0]] = item.default
                continue
            if not allowed:
                what = "set when creating" if creating else "changed"
                raise BadUserInput(f"{_path(prefix, item)} cannot be {what}", argument=_path(prefix, item))
            await self._field(item, given[item.name], out, prefix)
        return out

    async def _field(self, item: Field, given: Any, out: Columns, prefix: str) -> None:
        where = _path(prefix, item)
        if given is None:
            if not _may_be_null(item):
                raise BadUserInput(f"{where} may not be null", argument=where)
            out.values.update(dict.fromkeys(item.columns))
            return
        if isinstance(item, Text):
            text = check_text(given, where, max_length=item.max_length)
            if item.pattern is not None and text is not None and not re.fullmatch(item.pattern[0], text):
                raise BadUserInput(f"{where} must be {item.pattern[1]}", argument=where)
            out.values[item.column] = text
        elif isinstance(item, Choice):
            if given not in item.enum.codes:
                raise BadUserInput(f"{where} must be one of {', '.join(item.enum.codes)}", argument=where)
            out.values[item.column] = given
        elif isinstance(item, Instant):
            out.values[item.column] = _instant(given, where)
        elif isinstance(item, Day):
            out.values[item.column] = _day(given, where)
        elif isinstance(item, Flag):
            out.values[item.column] = bool(given)
        elif isinstance(item, Span):
            out.values.update(self._span(item, given, where))
        elif isinstance(item, Named):
            out.values[item.family] = check_text(given.get("family"), f"{where}.family", max_length=100)
            given_names = check_text(given.get("given"), f"{where}.given", max_length=200)
            assert given_names is not None
            out.values[item.given] = " ".join(given_names.split())
        elif isinstance(item, Coded):
            out.concept = await self._code(item, given, where, out)
        elif isinstance(item, Measured):
            out.values.update(self._quantity(item, given, where))
        elif isinstance(item, Ref):
            out.values[item.column] = await self.reference(KINDS[item.target], given, where)
        else:
            raise BadUserInput(f"{where} cannot be set", argument=where)

    def _span(self, item: Span, given: dict[str, Any], where: str) -> dict[str, Any]:
        convert = _day if item.dates else _instant
        start = given.get("start")
        if start is None:
            raise BadUserInput(f"{where}.start is required", argument=f"{where}.start")
        begins = convert(start, f"{where}.start")
        ends = None if given.get("end") is None else convert(given["end"], f"{where}.end")
        if ends is not None and ends < begins:
            raise BadUserInput(f"{where}.end may not come before its start", argument=f"{where}.end")
        return {item.start: begins, item.end: ends}

    async def _code(self, item: Coded, given: dict[str, Any], where: str, out: Columns) -> asyncpg.Record:
        system = check_text(given.get("system"), f"{where}.system", max_length=200)
        code = check_text(given.get("code"), f"{where}.code", max_length=50)
        if system not in item.systems:
            raise BadUserInput(
                f"{where}.system must be {' or '.join(item.systems)}, not {system!r}", argument=f"{where}.system"
            )
        concept = await self._conn.fetchrow(
            "SELECT system, code, display, kind, sensitive, unit FROM code_concept "
            "WHERE system = $1 AND code = $2 AND kind = ANY($3::text[])",
            system,
            code,
            list(item.concepts),
        )
        if concept is None:
            raise BadUserInput(
                f"{where}.code {code!r} is not a code of {system} that this field takes", argument=f"{where}.code"
            )
        display = given.get("display")
        if display is not None and display.strip().casefold() != concept["display"].casefold():
            raise BadUserInput(
                f"{where}.display does not match the code, which means {concept['display']!r}",
                argument=f"{where}.display",
            )
        system_column, code_column, display_column = item.columns
        out.values.update({system_column: system, code_column: code, display_column: concept["display"]})
        return concept

    def _quantity(self, item: Measured, given: dict[str, Any], where: str) -> dict[str, Any]:
        amount = given.get("value")
        if not isinstance(amount, int | float) or isinstance(amount, bool) or not math.isfinite(amount):
            raise BadUserInput(f"{where}.value must be a finite number", argument=f"{where}.value")
        if abs(amount) >= 1e12:
            raise BadUserInput(f"{where}.value is out of range", argument=f"{where}.value")
        unit = check_text(given.get("unit"), f"{where}.unit", max_length=30, required=False)
        return {item.value_column: amount, item.unit_column: unit}

    async def reference(self, target: ResourceKind, raw: Any, where: str) -> uuid.UUID:
        """The id of an existing resource of `target`; when it is patient data, it must be the patient's."""
        try:
            rid = uuid.UUID(str(raw))
        except ValueError as exc:
            raise BadUserInput(f"{where} is not an id issued by this API", argument=where) from exc
        if target.is_patient_data and target.patient_column != "id":
            owner = sql("SELECT ", ident(target.patient_column or "id"), "::text AS patient FROM ", ident(target.table))
            found = await fetch(self._conn, sql(owner, " WHERE id = ", value(rid, "uuid")))
            if not found or found[0]["patient"] != self._patient_id:
                raise BadUserInput(f"{where} must be a {target.type_name} of the same patient", argument=where)
        else:
            exists = await fetch(
                self._conn, sql("SELECT 1 FROM ", ident(target.table), " WHERE id = ", value(rid, "uuid"))
            )
            if not exists:
                raise BadUserInput(f"{where} names no {target.type_name}", argument=where)
        return rid


def check_units(kind: ResourceKind, columns: Columns, prefix: str = "input") -> None:
    """A measured value's unit must be its code's unit where the code table has one (filled in when left out)."""
    measured = next((f for f in kind.fields if isinstance(f, Measured)), None)
    if measured is None or columns.concept is None or measured.value_column not in columns.values:
        return
    expected = columns.concept["unit"]
    given = columns.values.get(measured.unit_column)
    if columns.values[measured.value_column] is None or expected is None:
        return
    if given is None:
        columns.values[measured.unit_column] = expected
    elif given != expected:
        where = f"{prefix}.{measured.public_name}.unit"
        raise BadUserInput(
            f"{where} must be {expected!r} for code {columns.concept['code']}, not {given!r}", argument=where
        )


def check_order(kind: ResourceKind, row: dict[str, Any], prefix: str = "input") -> None:
    """Pairs of columns that must come in order (an appointment ends after it starts)."""
    for first, then in kind.ordered_columns:
        if row.get(first) is not None and row.get(then) is not None and row[then] <= row[first]:
            names = {f.columns[0]: f.public_name for f in kind.fields if f.columns}
            where = f"{prefix}.{names.get(then, then)}"
            raise BadUserInput(f"{where} must come after {names.get(first, first)}", argument=where)
