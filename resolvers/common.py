"""Shared GraphQL building blocks: FHIR value types, Relay connections, global ids and the helpers
that turn a resolver's arguments into a store request."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from strawberry import relay

from gateway.context import Context
from gateway.declare import ResourceKind
from gateway.store import ListArgs, Page, parse_global_id

Info = strawberry.Info[Context, None]
T = TypeVar("T")

FirstArg = Annotated[int, strawberry.argument(description="Page size, 1 to 100.")]
AfterArg = Annotated[
    str | None, strawberry.argument(description="The `endCursor` of the previous page, to continue after it.")
]

# The GraphQL type of each node kind, by type name (filled by resolvers/types.py).
NODE_TYPES: dict[str, Any] = {}


@strawberry.enum(description="Which end of a list comes first.")
class SortOrder(Enum):
    NEWEST_FIRST = "newest_first"
    OLDEST_FIRST = "oldest_first"


@strawberry.type(description="A code from a code system (FHIR Coding): ICPC-2, ICD-10, LOINC, ATC, ...")
class Coding:
    system: str = strawberry.field(description="The code system's URI (an OID URN for Norwegian code systems).")
    code: str = strawberry.field(description="The code within the system.")
    display: str = strawberry.field(description="The code's human-readable meaning.")


@strawberry.type(description="A measured amount (FHIR Quantity), with a UCUM unit.")
class Quantity:
    value: float = strawberry.field(description="The numerical value.")
    unit: str | None = strawberry.field(description="The unit, in UCUM notation.")


@strawberry.type(description="A time interval (FHIR Period); an open end means ongoing.")
class Period:
    start: datetime | None = strawberry.field(description="Start, inclusive.")
    end: datetime | None = strawberry.field(description="End, exclusive; null while ongoing.")


@strawberry.type(description="A span of calendar days (FHIR Period with dates); an open end means ongoing.")
class DatePeriod:
    start: date | None = strawberry.field(description="First day.")
    end: date | None = strawberry.field(description="Last day; null while ongoing.")


@strawberry.type(description="A person's name (FHIR HumanName).")
class HumanName:
    family: str = strawberry.field(description="Family name (surname).")
    given: list[str] = strawberry.field(description="Given names, in order.")

    @strawberry.field(description="The full name as it is usually written.")
    def text(self) -> str:
        return " ".join([*self.given, self.family])


@strawberry.type(description="One item of a list, with the cursor to continue after it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque cursor: pass as `after` to continue after this item.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(
    description="A page of a list, holding only what policy lets you read. Pages use keyset cursors: "
    "a cursor never reaches rows you may not read."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page.")
    page_info: relay.PageInfo = strawberry.field(description="Where this page lies in the list.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list holds for you. Counted only when asked for.")
    async def total_count(self) -> int:
        return await self.count()


def global_id(kind: ResourceKind, raw_id: uuid.UUID | str) -> relay.GlobalID:
    """The opaque id clients see for a resource."""
    return relay.GlobalID(kind.type_name, str(raw_id))


def list_args(first: int, after: str | None, filter: Any = None, order: SortOrder | None = None) -> ListArgs:
    """Store list arguments from a resolver's arguments; filter inputs map field names to store filters."""
    return ListArgs.of(first, after, filter, order)


def to_connection(
    kind: ResourceKind, page: Page, args: ListArgs, count: Callable[[], Awaitable[int]]
) -> Connection[Any]:
    """A Connection of GraphQL nodes from a store page."""
    make = NODE_TYPES[kind.type_name].from_row
    edges = [Edge(cursor=cursor, node=make(row)) for cursor, row in page.items]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=args.after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


async def top_list(info: Info, kind: ResourceKind, args: ListArgs) -> Connection[Any]:
    """A top-level list of one kind."""
    store = info.context.store
    page = await store.page(kind, args)
    return to_connection(kind, page, args, lambda: store.count(kind, args))


async def child_list(
    info: Info, kind: ResourceKind, parent_column: str, parent: uuid.UUID, args: ListArgs
) -> Connection[Any]:
    """A parent's list of one kind, batched with the same list of every other parent in the query."""
    loaders = info.context.loaders
    page = await loaders.pages(kind, parent_column, args).load(parent)
    count_args = ListArgs(first=1, filters=args.filters)
    return to_connection(kind, page, args, lambda: loaders.counts(kind, parent_column, count_args).load(parent))


async def to_one(info: Info, kind: ResourceKind, raw_id: uuid.UUID | str | None) -> Any:
    """The resource a reference points at, authorized like any item (null with FORBIDDEN if hidden)."""
    if raw_id is None:
        return None
    row = await info.context.loaders.item(kind).load(str(raw_id))
    return NODE_TYPES[kind.type_name].from_row(row)


async def by_global_id(info: Info, value: str, expected: ResourceKind | None = None) -> Any:
    """The resource behind a global id."""
    kind, raw = parse_global_id(value, expected)
    row = await info.context.loaders.item(kind).load(raw)
    return NODE_TYPES[kind.type_name].from_row(row)


OrderArg = Annotated[SortOrder, strawberry.argument(description="Newest first unless asked otherwise.")]
