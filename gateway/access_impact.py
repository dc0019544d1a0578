"""The access-impact report of a reorganization: whose patients' data becomes visible or invisible to whom.

The reorganization is carried out in a transaction. Before it and after it, inside that transaction, every
person holding a role in an affected unit is looked up as the gateway looks them up (their principal, as
a user-facing app with a care purpose sees it), and for every kind of patient data the gateway's own
authorizer asks Cerbos for the query plan of `search` and the journal counts what the plan admits: the
(patient, data category) pairs the person may see. Nothing about the policies is reimplemented here: the
before and after states are decided by the real PDP over the real rows. A dry run then rolls back; an
applied run commits, so the report of an applied run is the report of exactly what changed.

The report groups people by role and unit (the unit they held the role in before): per data category, how
many patients' data became visible or invisible to the group, with sample patient ids.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.auth import Principal, principal_of_claims
from gateway.authz import Authorizer
from gateway.config import Settings
from gateway.errors import Forbidden
from gateway.explain import personnel_claims
from gateway.plan_sql import Column
from gateway.reorganize import Reorganization
from gateway.resources import KINDS
from gateway.sql import sql
from gateway.store import fetch

SEARCH = "search"
Seen = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Viewer:
    """One person's role in one unit, as the report groups people."""

    practitioner_id: str
    national_id: str
    role: str
    unit_id: str
    unit_name: str


@dataclass
class GroupImpact:
    """What changed for the people holding one role in one unit."""

    role: str
    unit_id: str
    unit_name: str
    people: set[str] = field(default_factory=set)
    visible: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    invisible: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def as_json(self, samples: int) -> dict[str, Any]:
        """Counts of patients per data category, with the first `samples` patient ids of each."""

        def counted(found: dict[str, set[str]]) -> dict[str, Any]:
            return {c: {"patients": len(p), "samples": sorted(p)[:samples]} for c, p in sorted(found.items())}

        return {
            "role": self.role,
            "unit_id": self.unit_id,
            "unit": self.unit_name,
            "people": len(self.people),
            "visible": counted(self.visible),
            "invisible": counted(self.invisible),
        }


@dataclass
class ImpactReport:
    """The reorganization as done, and what it did to access, per role and unit and per person."""

    reorganization: Reorganization
    applied: bool
    groups: list[GroupImpact]
    people: dict[str, dict[str, dict[str, int]]]
    samples: int

    def as_json(self) -> dict[str, Any]:
        """The whole report, for `--json` and the tests."""
        return {
            "applied": self.applied,
            "reorganization": self.reorganization.as_json(),
            "groups": [g.as_json(self.samples) for g in self.groups],
            "people": self.people,
        }


async def _viewers(conn: asyncpg.Connection, units: list[str]) -> list[Viewer]:
    rows = await conn.fetch(
        """SELECT pr.id::text, pr.national_id, r.role, o.id::text AS unit_id, o.name
             FROM practitioner_role r JOIN practitioner pr ON pr.id = r.practitioner_id
             JOIN organization o ON o.id = r.organization_id
            WHERE r.organization_id = ANY($1::uuid[]) AND r.period_start <= current_date
              AND (r.period_end IS NULL OR r.period_end >= current_date)
            ORDER BY o.name, r.role, pr.id""",
        units,
    )
    return [Viewer(r["id"], r["national_id"], r["role"], r["unit_id"], r["name"]) for r in rows]


async def visible_data(conn: asyncpg.Connection, authorizer: Authorizer, principal: Principal) -> Seen:
    """Every (patient, data category) the principal may see some data of, by the query plans of `search`:
    the plans of all kinds asked at once."""
    kinds = [k for k in KINDS.values() if k.is_patient_data and isinstance(k.attributes.get("data_category"), Column)]
    plans = await asyncio.gather(*(authorizer.plan(principal, kind, SEARCH) for kind in kinds))
    seen: set[tuple[str, str]] = set()
    for kind, plan in zip(kinds, plans, strict=True):
        category = kind.attributes["data_category"]
        if plan.kind == "none" or kind.patient_column is None or not isinstance(category, Column):
            continue
        rows = await fetch(
            conn,
            sql(
                "SELECT DISTINCT ",
                kind.col(kind.patient_column),
                "::text AS patient, ",
                category.sql,
                " AS category FROM ",
                kind.table_sql,
                " WHERE ",
                plan.where,
            ),
        )
        seen.update((r["patient"], r["category"]) for r in rows)
    return frozenset(seen)


async def _seen_by(
    conn: asyncpg.Connection, settings: Settings, authorizer: Authorizer, viewers: list[Viewer]
) -> dict[str, Seen]:
    """What each person sees now, as the gateway would let them (a person with no active role sees nothing)."""
    found: dict[str, Seen] = {}
    for viewer in viewers:
        if viewer.practitioner_id in found:
            continue
        try:
            claims = personnel_claims(settings.claim_names, viewer.national_id)
            principal = await principal_of_claims(conn, settings.claim_names, claims)
        except Forbidden:  # no active role any more: they see nothing
            found[viewer.practitioner_id] = frozenset()
            continue
        found[viewer.practitioner_id] = await visible_data(conn, authorizer, principal)
    return found


async def assess(
    pool: asyncpg.Pool,
    settings: Settings,
    authorizer: Authorizer,
    units_of: Callable[[asyncpg.Connection], Awaitable[list[str]]],
    change: Callable[[asyncpg.Connection], Awaitable[Reorganization]],
    *,
    apply: bool,
    samples: int = 3,
) -> ImpactReport:
    """Carry out `change` in a transaction, with what each person in the affected units (`units_of`, read
    before the change) sees before and after it; commit only when `apply`."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            viewers = await _viewers(conn, await units_of(conn))
            before = await _seen_by(conn, settings, authorizer, viewers)
            done = await change(conn)
            after = await _seen_by(conn, settings, authorizer, viewers)
        except BaseException:
            await transaction.rollback()
            raise
        if apply:
            await transaction.commit()
        else:
            await transaction.rollback()
    groups: dict[tuple[str, str], GroupImpact] = {}
    people: dict[str, dict[str, dict[str, int]]] = {}
    for viewer in viewers:
        group = groups.setdefault(
            (viewer.unit_id, viewer.role), GroupImpact(viewer.role, viewer.unit_id, viewer.unit_name)
        )
        group.people.add(viewer.practitioner_id)
        was, now = before[viewer.practitioner_id], after[viewer.practitioner_id]
        for patient, category in now - was:
            group.visible[category].add(patient)
        for patient, category in was - now:
            group.invisible[category].add(patient)
        people[viewer.practitioner_id] = {
            "visible": _patients_by_category(now - was),
            "invisible": _patients_by_category(was - now),
            "before": _patients_by_category(was),
            "after": _patients_by_category(now),
        }
    ordered = sorted(groups.values(), key=lambda g: (g.unit_name, g.role))
    return ImpactReport(done, apply, ordered, people, samples)


def _patients_by_category(pairs: Seen) -> dict[str, int]:
    counted: dict[str, set[str]] = defaultdict(set)
    for patient, category in pairs:
        counted[category].add(patient)
    return {c: len(p) for c, p in sorted(counted.items())}


async def units_of_municipalities(conn: asyncpg.Connection, ids: list[str]) -> list[str]:
    """The units of these municipalities: the people in them are the ones a merger can change access for."""
    rows = await conn.fetch(
        "SELECT id::text FROM organization WHERE municipality_id = ANY($1::uuid[])", [uuid.UUID(i) for i in ids]
    )
    return [r["id"] for r in rows]
