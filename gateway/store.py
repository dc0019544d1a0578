"""The store: the only door to journal data. Every public method authorizes, runs SQL, and audits.

Lists are filtered inside SQL by the Cerbos query plan (hidden rows never leave PostgreSQL, so they
cannot show in pages, counts or cursors). Items are fetched with their policy attributes and checked
in one batched CheckResources call. An id that does not exist is checked as a resource with no
relations, so "missing" and "hidden" get the same answer and the same reason.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import orjson

from gateway.audit import AuditRecord, AuditTrail
from gateway.auth import Principal
from gateway.authz import Authorizer, SqlFilter
from gateway.errors import BadUserInput, Forbidden, NotFound
from gateway.plan_sql import Params, SetOf, UntranslatablePlan
from gateway.resources import PATIENT, ResourceKind

READ = "read"
_PATIENT_COLUMNS = "p.id, p.national_id, p.family_name, p.given_name, p.birth_date, p.gender"


@dataclass(frozen=True)
class PatientRecord:
    """A patient's demographic record as the journal holds it."""

    id: uuid.UUID
    national_id: str
    family_name: str
    given_name: str
    birth_date: date
    gender: str


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated list: (cursor, record) pairs and whether more follow."""

    items: list[tuple[str, Any]]
    has_next_page: bool


def encode_cursor(key: Sequence[Any]) -> str:
    """An opaque cursor for a row's sort key."""
    return base64.urlsafe_b64encode(orjson.dumps(["v1", *[str(k) for k in key]])).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[str]:
    """The sort key inside a cursor this API issued; anything else is bad input."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadUserInput("`after` is not a cursor issued by this API") from exc
    if (
        not isinstance(value, list)
        or len(value) != width + 1
        or value[0] != "v1"
        or not all(isinstance(v, str) for v in value)
    ):
        raise BadUserInput("`after` is not a cursor issued by this API")
    return list(value[1:])


def parse_id(raw: str, what: str) -> uuid.UUID:
    """A resource id from client input."""
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise BadUserInput(f"{what} id {raw!r} is not a valid id") from exc


def _attributes(kind: ResourceKind, row: asyncpg.Record) -> dict[str, Any]:
    return {
        name: list(row[f"attr_{name}"]) if isinstance(attr, SetOf) else row[f"attr_{name}"]
        for name, attr in kind.attributes.items()
    }


def _phantom_attributes(kind: ResourceKind, rid: str) -> dict[str, Any]:
    """Attributes of a resource that has no relations to anyone: what a missing id is checked as."""
    phantom: dict[str, Any] = {name: [] if isinstance(attr, SetOf) else "" for name, attr in kind.attributes.items()}
    phantom["patient_id"] = rid
    return phantom


class Store:
    """Per-request door to the journal for one principal; its audit trail is flushed by the view."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        authorizer: Authorizer,
        principal: Principal,
        audit: AuditTrail,
        max_page_size: int,
    ) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit
        self._max_page_size = max_page_size
        self._filters: dict[tuple[str, str], SqlFilter] = {}

    async def _filter(self, kind: ResourceKind, action: str) -> SqlFilter:
        key = (kind.name, action)
        if key not in self._filters:
            try:
                self._filters[key] = await self._authorizer.plan(self._principal, kind, action)
            except UntranslatablePlan as exc:
                raise Forbidden(
                    f"the access policy for {kind.name} lists cannot be enforced in the database; the list is denied",
                    reason="UNENFORCEABLE_POLICY",
                ) from exc
        return self._filters[key]

    def _check_first(self, first: int) -> None:
        if first < 1 or first > self._max_page_size:
            raise BadUserInput(f"`first` must be between 1 and {self._max_page_size}, got {first}", argument="first")

    async def patients_by_ids(self, ids: Sequence[str]) -> list[PatientRecord | Exception]:
        """Patients by id for a DataLoader: each a record, or the error that explains why not."""
        wanted = [str(parse_id(i, "patient")) for i in ids]
        rows = await self._pool.fetch(
            f"SELECT {_PATIENT_COLUMNS}, {PATIENT.attribute_select()} FROM patient p WHERE p.id = ANY($1::uuid[])",
            wanted,
        )
        found = {str(r["id"]): r for r in rows}
        unique = list(dict.fromkeys(wanted))
        decisions = await self._authorizer.check(
            self._principal,
            PATIENT,
            READ,
            [
                (rid, _attributes(PATIENT, found[rid]) if rid in found else _phantom_attributes(PATIENT, rid))
                for rid in unique
            ],
        )
        results: dict[str, PatientRecord | Exception] = {}
        for rid, decision in zip(unique, decisions, strict=True):
            self._audit.record(AuditRecord(rid, PATIENT.name, (rid,), READ, decision.allowed, decision.reason))
            if not decision.allowed:
                results[rid] = Forbidden(
                    "no patient with this id is visible to you",
                    reason=decision.reason,
                    policyVersion=self._authorizer.policy_version,
                )
            elif rid not in found:
                results[rid] = NotFound("no patient with this id exists")
            else:
                results[rid] = PatientRecord(**{k: found[rid][k] for k in PatientRecord.__dataclass_fields__})
        return [results[rid] for rid in wanted]

    async def patient_page(self, first: int, after: str | None) -> Page:
        """A page of the patients the principal may read, ordered by name, after a cursor."""
        self._check_first(first)
        key = decode_cursor(after, 3) if after is not None else None
        if key is not None:
            parse_id(key[2], "cursor")
        sql_filter = await self._filter(PATIENT, READ)
        if sql_filter.kind == "none":
            self._audit.record(AuditRecord(None, PATIENT.name, (), READ, False, sql_filter.reason))
            return Page([], False)
        params = Params(list(sql_filter.params))
        where = [sql_filter.sql]
        if key is not None:
            where.append(
                f"(p.family_name, p.given_name, p.id) > ({params.add(key[0], 'text')}, "
                f"{params.add(key[1], 'text')}, {params.add(key[2], 'uuid')})"
            )
        limit = params.add(first + 1, "integer")
        rows = await self._pool.fetch(
            f"SELECT {_PATIENT_COLUMNS} FROM patient p WHERE {' AND '.join(where)} "
            f"ORDER BY p.family_name, p.given_name, p.id LIMIT {limit}",
            *params.values,
        )
        items = [
            (encode_cursor((r["family_name"], r["given_name"], r["id"])), PatientRecord(**dict(r)))
            for r in rows[:first]
        ]
        for _, record in items:
            rid = str(record.id)
            self._audit.record(AuditRecord(rid, PATIENT.name, (rid,), READ, True, sql_filter.reason))
        return Page(items, len(rows) > first)

    async def patient_count(self) -> int:
        """How many patients the principal may read (hidden rows are not counted)."""
        sql_filter = await self._filter(PATIENT, READ)
        if sql_filter.kind == "none":
            return 0
        return int(
            await self._pool.fetchval(f"SELECT count(*) FROM patient p WHERE {sql_filter.sql}", *sql_filter.params)
        )
