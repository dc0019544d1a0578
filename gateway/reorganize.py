"""Municipal mergers and transfers of units: one operation each, in the caller's transaction, audited.

A merger (`merge`) moves every unit of one municipality into another, with its patients, and chooses the
merged municipality's policy scope explicitly. With `combine_units`, a unit whose service the other
municipality has exactly one unit of (home care into home care) is combined into that unit: its active care
relations and roles end and start again there with their planned ends (planned relations simply move), and a
patient's block on the old unit is carried over to the new one, so that no sperring is lost. Everything else
keeps its identity and only changes municipality; every moved patient and care relation is audited, and the
merged-away municipality's administrators lose that role (migration 0020 refuses new units in it).
A transfer (`move_unit`) moves one unit, with the units under it, to another municipality.

Nothing of the past is rewritten: ended relations and roles stay as they were, the merged municipality stays
as a named row, and `organization_municipality_period` (migration 0020) keeps which municipality each unit
belonged to when, so an audit record resolves to the municipality it was made under.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.audit import AuditRecord, AuditTrail, insert_rows
from gateway.auth import Principal
from gateway.errors import BadUserInput, NotFound

REASON = "REORGANIZATION"


@dataclass(frozen=True)
class Municipality:
    """A municipality as a reorganization names it."""

    id: str
    number: str
    name: str
    policy_scope: str | None


@dataclass(frozen=True)
class UnitChange:
    """What happened to one unit: `moved` to another municipality, or `combined` into another unit."""

    unit_id: str
    name: str
    unit_type: str
    change: str
    into_id: str | None = None
    into_name: str | None = None


@dataclass
class Reorganization:
    """What a merger or transfer changed, counted as it was done."""

    title: str
    units: list[UnitChange] = field(default_factory=list)
    patients_moved: int = 0
    care_relations_moved: int = 0
    roles_moved: int = 0
    restrictions_carried_over: int = 0
    admin_roles_ended: int = 0
    policy_scope_before: str | None = None
    policy_scope_after: str | None = None
    audit_records: int = 0

    def as_json(self) -> dict[str, Any]:
        """The counts and units as the CLI and the admin mutation show them."""
        return {
            "title": self.title,
            "units": [vars(u) for u in self.units],
            "patients_moved": self.patients_moved,
            "care_relations_moved": self.care_relations_moved,
            "roles_moved": self.roles_moved,
            "restrictions_carried_over": self.restrictions_carried_over,
            "admin_roles_ended": self.admin_roles_ended,
            "policy_scope_before": self.policy_scope_before,
            "policy_scope_after": self.policy_scope_after,
            "audit_records": self.audit_records,
        }


async def find_municipality(conn: asyncpg.Connection, named: str) -> Municipality:
    """A municipality by id, number or name (`Nordby` finds `Nordby kommune`), not one merged away."""
    rows = await conn.fetch(
        """SELECT id::text, number, name, policy_scope, merged_into_id FROM municipality
            WHERE id::text = $1 OR number = $1 OR lower(name) = lower($1) OR lower(name) = lower($1 || ' kommune')""",
        named.strip(),
    )
    if not rows:
        raise NotFound(f"no municipality is called {named!r}")
    if len(rows) > 1:
        raise BadUserInput(f"{len(rows)} municipalities are called {named!r}: name one by its number", argument="name")
    [row] = rows
    if row["merged_into_id"] is not None:
        raise BadUserInput(f"{row['name']} has been merged into another municipality", argument="municipality")
    return Municipality(row["id"], row["number"], row["name"], row["policy_scope"])


async def find_unit(conn: asyncpg.Connection, named: str) -> asyncpg.Record:
    """A unit by id or exact name."""
    rows = await conn.fetch(
        "SELECT id::text, name, unit_type, municipality_id::text FROM organization WHERE id::text = $1 OR name = $1",
        named.strip(),
    )
    if len(rows) != 1:
        raise NotFound(f"no single unit is called {named!r}")
    return rows[0]


def check_merge(source: Municipality, target: Municipality, policy_scope: str | None) -> None:
    """Refuse a merger that cannot be done, before anything is looked at: into itself, or into a policy scope
    neither municipality has (a scope is chosen, never made up)."""
    if source.id == target.id:
        raise BadUserInput("a municipality cannot be merged into itself", argument="into")
    if policy_scope is not None and policy_scope not in {source.policy_scope, target.policy_scope}:
        raise BadUserInput(
            f"the merged municipality's policy scope is one of the two municipalities' own "
            f"({source.policy_scope or '-'}, {target.policy_scope or '-'}) or the national baseline",
            argument="policyScope",
        )


class Reorganizer:
    """Does one reorganization on `conn`, inside the caller's transaction, as `actor` (audited)."""

    def __init__(self, conn: asyncpg.Connection, actor: Principal, policy_version: str) -> None:
        self._conn = conn
        self._trail = AuditTrail(actor, policy_version)

    async def merge(
        self, source: Municipality, target: Municipality, policy_scope: str | None, *, combine_units: bool
    ) -> Reorganization:
        """Merge `source` into `target`: units, patients and care relations move in this transaction; the
        target's policy scope becomes `policy_scope` (None: the national baseline alone)."""
        check_merge(source, target, policy_scope)
        await self._begin()
        locked = await self._conn.fetch(
            "SELECT id::text, merged_into_id, policy_scope FROM municipality WHERE id = ANY($1::uuid[]) FOR UPDATE",
            [source.id, target.id],
        )
        fresh = {r["id"]: r for r in locked}
        if any(r["merged_into_id"] is not None for r in locked):
            raise BadUserInput("one of the municipalities has been merged meanwhile", argument="from")
        source = Municipality(source.id, source.number, source.name, fresh[source.id]["policy_scope"])
        target = Municipality(target.id, target.number, target.name, fresh[target.id]["policy_scope"])
        check_merge(source, target, policy_scope)
        done = Reorganization(f"merge {source.name} into {target.name}", policy_scope_before=target.policy_scope)
        units = await self._conn.fetch(
            """SELECT s.id::text, s.name, s.unit_type,
                      (SELECT t.id::text FROM organization t WHERE t.municipality_id = $2 AND t.unit_type = s.unit_type
                        AND (SELECT count(*) FROM organization t2 WHERE t2.municipality_id = $2
                              AND t2.unit_type = s.unit_type) = 1) AS only_target,
                      (SELECT count(*) FROM organization s2 WHERE s2.municipality_id = $1
                        AND s2.unit_type = s.unit_type) AS of_its_type
                 FROM organization s WHERE s.municipality_id = $1 ORDER BY s.name""",
            uuid.UUID(source.id),
            uuid.UUID(target.id),
        )
        for unit in units:
            into = unit["only_target"] if combine_units and unit["of_its_type"] == 1 else None
            if into is None:
                done.units.append(UnitChange(unit["id"], unit["name"], unit["unit_type"], "moved"))
                continue
            into_name = await self._conn.fetchval("SELECT name FROM organization WHERE id = $1::uuid", into)
            done.units.append(UnitChange(unit["id"], unit["name"], unit["unit_type"], "combined", into, into_name))
            await self._combine(unit["id"], into, done)
        await self._conn.execute(
            "UPDATE organization SET municipality_id = $2 WHERE municipality_id = $1",
            uuid.UUID(source.id),
            uuid.UUID(target.id),
        )
        moved = await self._conn.fetch(
            "UPDATE patient SET municipality_id = $2 WHERE municipality_id = $1 RETURNING id::text",
            uuid.UUID(source.id),
            uuid.UUID(target.id),
        )
        done.patients_moved = len(moved)
        for r in moved:
            self._trail.record(AuditRecord(r["id"], "patient", (r["id"],), "update", True, REASON))
        admins = await self._conn.fetch(
            "DELETE FROM platform_role WHERE role = 'municipal_admin' AND municipality_id = $1 RETURNING national_id",
            uuid.UUID(source.id),
        )
        done.admin_roles_ended = len(admins)
        await self._conn.execute(
            "UPDATE municipality SET policy_scope = NULL, merged_into_id = $2, merged_at = now() WHERE id = $1",
            uuid.UUID(source.id),
            uuid.UUID(target.id),
        )
        await self._conn.execute(
            "UPDATE municipality SET policy_scope = $2 WHERE id = $1", uuid.UUID(target.id), policy_scope
        )
        done.policy_scope_after = policy_scope
        self._trail.record(AuditRecord(None, "municipality", (source.id, target.id), "merge", True, REASON))
        return await self._finish(done)

    async def move_unit(self, unit: asyncpg.Record | dict[str, Any], target: Municipality) -> Reorganization:
        """Move one unit, and the units under it, to `target`: its care relations go with it."""
        if unit["municipality_id"] == target.id:
            raise BadUserInput(f"{unit['name']} already belongs to {target.name}", argument="to")
        if unit["municipality_id"] is None:
            raise BadUserInput(f"{unit['name']} belongs to no municipality (a health trust's unit)", argument="unit")
        await self._begin()
        done = Reorganization(f"move {unit['name']} to {target.name}")
        moved = await self._conn.fetch(
            """WITH RECURSIVE tree AS (
                   SELECT id FROM organization WHERE id = $1
                   UNION SELECT o.id FROM organization o JOIN tree ON o.parent_id = tree.id)
               UPDATE organization o SET municipality_id = $2 FROM tree WHERE o.id = tree.id
               RETURNING o.id::text, o.name, o.unit_type""",
            uuid.UUID(unit["id"]),
            uuid.UUID(target.id),
        )
        done.units = [UnitChange(r["id"], r["name"], r["unit_type"], "moved") for r in moved]
        self._trail.record(
            AuditRecord(None, "organization", tuple(u.unit_id for u in done.units), "move", True, REASON)
        )
        return await self._finish(done)

    async def _begin(self) -> None:
        actor = self._trail.principal
        await self._conn.execute(
            "SELECT set_config('akson.actor', $1, true), set_config('akson.app', $2, true)", actor.ref, actor.client_id
        )

    async def _combine(self, unit: str, into: str, done: Reorganization) -> None:
        """Combine `unit` into `into`: its active roles and care relations end and start again there, a
        patient's active block on it also blocks `into`, and it becomes a part of `into`."""
        old, new = uuid.UUID(unit), uuid.UUID(into)
        roles = await self._conn.fetch(
            """WITH old AS (
                   SELECT id, practitioner_id, role, period_end FROM practitioner_role
                    WHERE organization_id = $1 AND period_start < current_date
                      AND (period_end IS NULL OR period_end >= current_date)
                      FOR UPDATE),
               ended AS (
                   UPDATE practitioner_role r SET period_end = current_date - 1 FROM old WHERE r.id = old.id
                   RETURNING r.id),
               moved AS (
                   UPDATE practitioner_role SET organization_id = $2
                    WHERE organization_id = $1 AND period_start >= current_date RETURNING id)
               INSERT INTO practitioner_role (id, practitioner_id, organization_id, role, period_start, period_end)
               SELECT gen_random_uuid(), o.practitioner_id, $2, o.role, current_date, o.period_end FROM old o
                WHERE NOT EXISTS (SELECT 1 FROM practitioner_role r WHERE r.practitioner_id = o.practitioner_id
                                     AND r.organization_id = $2 AND r.role = o.role AND r.period_end IS NULL)
               RETURNING id""",
            old,
            new,
        )
        done.roles_moved += len(roles)
        relations = await self._conn.fetch(
            """WITH old AS (
                   SELECT gen_random_uuid() AS new_id, c.id AS old_id, c.patient_id, c.practitioner_id, c.purpose,
                          c.data_category, c.period_end
                     FROM care_relation c
                    WHERE c.organization_id = $1 AND c.period_start <= now()
                      AND (c.period_end IS NULL OR c.period_end > now())
                      FOR UPDATE),
               ended AS (
                   UPDATE care_relation c SET period_end = now() FROM old WHERE c.id = old.old_id RETURNING c.id),
               added AS (
                   INSERT INTO care_relation (id, patient_id, organization_id, practitioner_id, purpose, period_start,
                                              period_end, owning_unit_id, data_category)
                   SELECT new_id, patient_id, $2, practitioner_id, purpose, now(), period_end, $2, data_category
                     FROM old
                   RETURNING id),
               planned AS (
                   UPDATE care_relation SET organization_id = $2, owning_unit_id = $2
                    WHERE organization_id = $1 AND period_start > now()
                   RETURNING id, patient_id)
               SELECT old_id::text, new_id::text, patient_id::text FROM old
               UNION ALL SELECT id::text, id::text, patient_id::text FROM planned""",
            old,
            new,
        )
        done.care_relations_moved += len(relations)
        for r in relations:
            ids = tuple(dict.fromkeys((r["old_id"], r["new_id"])))
            self._trail.record(AuditRecord(r["patient_id"], "care_relation", ids, "update", True, REASON))
        carried = await self._conn.fetch(
            """INSERT INTO restriction (id, patient_id, owning_unit_id, data_category, scope, target_category,
                                        target_unit_id, reason, period_start, period_end, created_at,
                                        withheld_from_patient)
               SELECT gen_random_uuid(), rx.patient_id, $2, rx.data_category, 'unit', rx.target_category, $2,
                      rx.reason, now(), rx.period_end, now(), rx.withheld_from_patient
                 FROM restriction rx
                WHERE rx.scope = 'unit' AND rx.target_unit_id = $1 AND rx.lifted_at IS NULL
                  AND (rx.period_end IS NULL OR rx.period_end > now())
               RETURNING id::text, patient_id::text""",
            old,
            new,
        )
        done.restrictions_carried_over += len(carried)
        for r in carried:
            self._trail.record(AuditRecord(r["patient_id"], "restriction", (r["id"],), "create", True, REASON))
        await self._conn.execute("UPDATE organization SET parent_id = $2 WHERE id = $1", old, new)

    async def _finish(self, done: Reorganization) -> Reorganization:
        records = self._trail.records
        self._trail.records = []
        await insert_rows(self._conn, self._trail.rows(records))
        done.audit_records = len(records)
        return done
