"""Mergers and transfers in GraphQL: the national directory administrator's mutations, previewed by default.

The access-impact report (who comes to see or stops seeing which patients' data) evaluates every person of
the municipalities concerned against the PDP, which takes longer than a request may: it is the CLI's
(`akson org merge --dry-run`). These mutations carry the change out, or preview what it moves.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from gateway import resources as K
from gateway.reorganize import Reorganization
from gateway.store import parse_global_id
from resolvers.common import Info, global_id


@strawberry.type(description="What a merger or a transfer did, or would do, to one unit.")
class ReorganizedUnit:
    unit_id: strawberry.ID = strawberry.field(description="The unit's global id.")
    name: str = strawberry.field(description="The unit's name.")
    change: str = strawberry.field(
        description="`moved` to the other municipality, or `combined` into another unit (its care relations and "
        "roles end and start again there)."
    )
    into_id: strawberry.ID | None = strawberry.field(description="The unit it was combined into, if it was.")


@strawberry.type(description="A merger or a transfer: what it moved, and whether it was applied or previewed.")
class ReorganizationResult:
    applied: bool = strawberry.field(description="False for a preview: carried out, then rolled back.")
    title: str = strawberry.field(description="What was done, in words.")
    units: list[ReorganizedUnit] = strawberry.field(description="Every unit it moved or combined.")
    patients_moved: int = strawberry.field(description="Patients whose municipality changed.")
    care_relations_moved: int = strawberry.field(description="Active care relations moved to a combined unit.")
    roles_moved: int = strawberry.field(description="Active roles moved to a combined unit.")
    restrictions_carried_over: int = strawberry.field(
        description="Patients' blocks on a combined unit carried over to the unit it was combined into."
    )
    policy_scope_before: str | None = strawberry.field(description="The merged municipality's policy scope before.")
    policy_scope_after: str | None = strawberry.field(description="... and after (null: the national baseline).")

    @classmethod
    def of(cls, done: Reorganization, applied: bool) -> ReorganizationResult:
        def unit_gid(raw: str | None) -> strawberry.ID | None:
            return None if raw is None else strawberry.ID(str(global_id(K.ORGANIZATION, raw)))

        return cls(
            applied=applied,
            title=done.title,
            units=[
                ReorganizedUnit(
                    unit_id=strawberry.ID(str(global_id(K.ORGANIZATION, u.unit_id))),
                    name=u.name,
                    change=u.change,
                    into_id=unit_gid(u.into_id),
                )
                for u in done.units
            ],
            patients_moved=done.patients_moved,
            care_relations_moved=done.care_relations_moved,
            roles_moved=done.roles_moved,
            restrictions_carried_over=done.restrictions_carried_over,
            policy_scope_before=done.policy_scope_before,
            policy_scope_after=done.policy_scope_after,
        )


DRY_RUN = "True (the default) previews it: carried out and rolled back, nothing changes."


@strawberry.type(description="Reorganizations. Authorized by policy (national directory administrators) and audited.")
class ReorganizationMutations:
    @strawberry.mutation(
        description="Merge one municipality into another in one transaction: its units (combined into the other's "
        "only unit of the same service with `combineUnits`), patients and care relations move, and the merged "
        "municipality's policy scope is the one named (one of the two's own; null: the national baseline)."
    )
    async def merge_municipalities(
        self,
        info: Info,
        source: Annotated[strawberry.ID, strawberry.argument(name="from", description="The municipality merged away.")],
        into: Annotated[strawberry.ID, strawberry.argument(description="The municipality it becomes part of.")],
        policy_scope: Annotated[
            str | None, strawberry.argument(description="The merged municipality's policy scope; null: national.")
        ],
        combine_units: Annotated[
            bool, strawberry.argument(description="Combine units into the other's only unit of the same service.")
        ] = False,
        dry_run: Annotated[bool, strawberry.argument(description=DRY_RUN)] = True,
    ) -> ReorganizationResult:
        _, source_raw = parse_global_id(str(source), K.MUNICIPALITY)
        _, into_raw = parse_global_id(str(into), K.MUNICIPALITY)
        done, applied = await info.context.writes.merge_municipalities(
            source_raw, into_raw, policy_scope, combine_units=combine_units, dry_run=dry_run
        )
        return ReorganizationResult.of(done, applied)

    @strawberry.mutation(
        description="Move a unit, and the units under it, to another municipality: its care relations go with it, "
        "and its patients' data falls under that municipality's local rules."
    )
    async def move_unit(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The unit's global id.")],
        to: Annotated[strawberry.ID, strawberry.argument(description="The municipality's global id.")],
        dry_run: Annotated[bool, strawberry.argument(description=DRY_RUN)] = True,
    ) -> ReorganizationResult:
        _, unit_raw = parse_global_id(str(id), K.ORGANIZATION)
        _, to_raw = parse_global_id(str(to), K.MUNICIPALITY)
        done, applied = await info.context.writes.move_unit(unit_raw, to_raw, dry_run=dry_run)
        return ReorganizationResult.of(done, applied)
