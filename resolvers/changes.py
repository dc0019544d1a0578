"""The change feed in GraphQL: `changes` to pull a page, and the `changes` subscription to follow it live."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, cast

import strawberry
from strawberry import relay

from gateway import resources as K
from gateway.change_feed import FEED_KINDS, ChangeFilter, ChangeItem, decode_position
from gateway.errors import BadRequest, BadUserInput
from gateway.store import parse_global_id
from resolvers.common import NODE_TYPES, AfterArg, Info
from resolvers.types import ResourceChange

ResourceKindEnum: Any = strawberry.enum(
    cast(Any, Enum("ResourceKind", {kind.name.upper(): kind.name for kind in FEED_KINDS.values()})),
    description="A kind of resource whose changes the change feed carries.",
)

KindsArg = Annotated[
    list[ResourceKindEnum] | None,
    strawberry.argument(description="Only changes of these kinds (all kinds when not given)."),
]
PatientArg = Annotated[
    strawberry.ID | None, strawberry.argument(description="Only changes of this patient's data (a Patient id).")
]


@strawberry.type(
    description="A committed change: which resource, what happened to it, when, and the resource as it is now. "
    "You see a change only if you may read its resource now."
)
class Change:
    cursor: str = strawberry.field(description="Pass as `after` to continue after this change.")
    kind: ResourceKindEnum = strawberry.field(description="The kind of the changed resource.")
    action: ResourceChange = strawberry.field(description="Created, updated, or marked entered in error.")
    version: int = strawberry.field(description="The resource's version this change made.")
    committed_at: datetime = strawberry.field(description="When the change was committed.")
    resource_id: strawberry.ID = strawberry.field(
        description="The changed resource's id: a global id, or an app's client id."
    )
    node: relay.Node | None = strawberry.field(
        description="The resource as it is now (its version may be newer than this change's); null for apps and "
        "webhook endpoints, which are not nodes."
    )

    @classmethod
    def of(cls, item: ChangeItem) -> Change:
        make = NODE_TYPES.get(item.kind.type_name) if item.kind.node else None
        return cls(
            cursor=item.cursor,
            kind=ResourceKindEnum(item.kind.name),
            action=ResourceChange(item.action),
            version=item.version,
            committed_at=item.committed_at,
            resource_id=strawberry.ID(item.public_id),
            node=make.from_row(item.row) if make is not None and item.row is not None else None,
        )


@strawberry.type(description="One change, with the cursor to continue after it.")
class ChangeEdge:
    cursor: str = strawberry.field(description="Opaque cursor: pass as `after` to continue after this change.")
    node: Change = strawberry.field(description="The change.")


@strawberry.type(
    description="A page of the change feed, oldest first. `pageInfo.endCursor` is where to continue: it may lie "
    "past the last change shown, over changes you may not see."
)
class ChangeConnection:
    edges: list[ChangeEdge] = strawberry.field(description="The changes of this page.")
    page_info: relay.PageInfo = strawberry.field(description="Where to continue, and whether more is there now.")


def change_filter(kinds: list[Any] | None, patient_id: strawberry.ID | None) -> ChangeFilter:
    """The feed filter of a client's arguments."""
    if kinds is not None and not kinds:
        raise BadUserInput("`kinds` must name at least one kind, or be left out for all", argument="kinds")
    patient = None
    if patient_id is not None:
        _, raw = parse_global_id(str(patient_id), K.PATIENT)
        patient = uuid.UUID(raw)
    chosen = None if kinds is None else tuple({kind.value: FEED_KINDS[kind.value] for kind in kinds}.values())
    return ChangeFilter(kinds=chosen, patient_id=patient)


async def changes(
    info: Info,
    first: Annotated[int, strawberry.argument(description="Page size, 1 to 100.")] = 50,
    after: AfterArg = None,
    kinds: KindsArg = None,
    patient_id: PatientArg = None,
) -> ChangeConnection:
    """A page of the changes committed after `after` (from the start of the feed without it), in commit order."""
    limit = info.context.runtime.settings.max_page_size
    if not 1 <= first <= limit:
        raise BadUserInput(f"`first` must be between 1 and {limit}, got {first}", argument="first")
    wanted = change_filter(kinds, patient_id)
    position = decode_position(after) if after is not None else 0
    page = await info.context.changes.page(wanted, position, first, channel="feed")
    edges = [ChangeEdge(cursor=item.cursor, node=Change.of(item)) for item in page.items]
    return ChangeConnection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=position > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=page.end_cursor,
        ),
    )


@strawberry.type(description="Live updates over a websocket (graphql-transport-ws), authorized at every delivery.")
class Subscription:
    @strawberry.subscription(
        description="The changes you may read, as they are committed: from now, or from `after` (a cursor of the "
        "feed or of an earlier change) to catch up first. Each change is authorized for you when it is "
        "delivered, and audited as a read."
    )
    async def changes(
        self, info: Info, kinds: KindsArg = None, patient_id: PatientArg = None, after: AfterArg = None
    ) -> AsyncGenerator[Change, None]:
        live = info.context.live if info.context is not None else None
        if live is None:
            raise BadRequest("subscriptions run over a websocket speaking graphql-transport-ws, at /graphql")
        wanted = change_filter(kinds, patient_id)
        async for item in live.changes(wanted, decode_position(after) if after is not None else None):
            yield Change.of(item)
