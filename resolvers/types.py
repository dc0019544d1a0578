"""The GraphQL face of every declared resource kind, built from its declaration (gateway/resources.py):
its object type with plain fields, references and nested lists, its enums and its filter input.

Plain fields are filled from the row when the object is made; a reference resolves through the item
loader (authorized like any item), a nested list through the batched list loaders, and a field with a
permission of its own (a note's text) asks the policy first. Generated classes are module attributes
here, so other modules and lazy type references find them by name.
"""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

import orjson
import strawberry
from strawberry import relay

from gateway.declare import (
    Choice,
    Coded,
    Count,
    Day,
    EnumType,
    Field,
    Flag,
    History,
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
from gateway.json_sql import LIST_OF
from gateway.resources import KINDS
from gateway.store import Row
from resolvers.common import (
    NODE_TYPES,
    AfterArg,
    Coding,
    Connection,
    DatePeriod,
    Edge,
    FirstArg,
    HumanName,
    Info,
    OrderArg,
    Period,
    Quantity,
    SortOrder,
    child_list,
    list_args,
    to_one,
    top_list,
)

MODULE = __name__
FILTER_HELP = "Only items matching every criterion given."
_FILTER_TYPES: dict[str, Any] = {"timestamptz": datetime, "text": str, "boolean": bool, "uuid": strawberry.ID}

ENUMS: dict[str, Any] = {}
FILTERS: dict[str, Any] = {}
TYPES: dict[str, Any] = {}


def lazy(type_name: str) -> Any:
    """A reference to a generated type that may not exist yet."""
    return Annotated[type_name, strawberry.lazy(MODULE)]


def enum_of(declared: EnumType) -> Any:
    """The GraphQL enum of a declared code set (one per name)."""
    if declared.name not in ENUMS:
        members = {EnumType.member(code): code for code in declared.codes}
        python_enum = Enum(declared.name, members)  # type: ignore[misc]
        python_enum.__module__ = MODULE
        ENUMS[declared.name] = strawberry.enum(python_enum, description=declared.description)
        setattr(sys.modules[MODULE], declared.name, ENUMS[declared.name])
    return ENUMS[declared.name]


def filter_of(kind: ResourceKind) -> Any | None:
    """The filter input of a kind's lists, or None when its lists take no filter."""
    exposed = [f for f in kind.filters if f.exposed]
    if not exposed:
        return None
    if kind.type_name not in FILTERS:
        annotations: dict[str, Any] = {}
        namespace: dict[str, Any] = {"__module__": MODULE}
        for item in exposed:
            python_type = enum_of(item.enum) if item.enum else _FILTER_TYPES[item.pg_type]
            annotations[item.name] = python_type | None
            namespace[item.name] = strawberry.field(default=None, description=item.description)
        namespace["__annotations__"] = annotations
        name = f"{kind.type_name}Filter"
        FILTERS[kind.type_name] = strawberry.input(type(name, (), namespace), description=kind.filter_description)
        setattr(sys.modules[MODULE], name, FILTERS[kind.type_name])
    return FILTERS[kind.type_name]


def _plain(item: Field) -> tuple[Any, Callable[[Row], Any]] | None:
    """The Python type of a plain field and how its value is made from a row; None for resolver fields."""
    if isinstance(item, Text) and item.permission is None:
        column = item.column
        return (str | None if item.nullable else str), lambda row: row[column]
    if isinstance(item, Flag | Count):
        column = item.column
        return (bool if isinstance(item, Flag) else int), lambda row: row[column]
    if isinstance(item, Instant | Day):
        column, python_type = item.column, datetime if isinstance(item, Instant) else date
        return (python_type | None if item.nullable else python_type), lambda row: row[column]
    if isinstance(item, Choice):
        column, enum = item.column, enum_of(item.enum)
        return (
            enum | None if item.nullable else enum,
            lambda row: None if row[column] is None else enum(row[column]),
        )
    if isinstance(item, Coded):
        system, code, display = item.columns
        return Coding, lambda row: Coding(system=row[system], code=row[code], display=row[display])
    if isinstance(item, Measured):
        amount, unit = item.value_column, item.unit_column
        return (
            Quantity | None,
            lambda row: None if row[amount] is None else Quantity(value=float(row[amount]), unit=row[unit]),
        )
    if isinstance(item, Span):
        start, end, period = item.start, item.end, DatePeriod if item.dates else Period
        return period, lambda row: period(start=row[start], end=row[end])
    if isinstance(item, Named):
        family, given = item.family, item.given
        return HumanName, lambda row: HumanName(family=row[family], given=row[given].split())
    return None


def _reference(item: Ref) -> Any:
    target, column = item.target, item.column

    async def resolve(self: Any, info: Info) -> Any:
        return await to_one(info, KINDS[target], self.row[column])

    resolve.__annotations__ = {"info": Info, "return": lazy(target) | None}
    return strawberry.field(resolver=resolve, name=item.public_name, description=item.description)


def _guarded_text(kind: ResourceKind, item: Text) -> Any:
    column, action = item.column, item.permission
    assert action is not None

    async def resolve(self: Any, info: Info) -> str | None:
        await info.context.loaders.permission(kind, action).load(str(self.row["id"]))
        text: str | None = self.row[column]
        return text

    resolve.__annotations__ = {"info": Info, "return": str | None}
    return strawberry.field(resolver=resolve, name=item.public_name, description=item.description)


def children(item: Many) -> Any:
    """A connection field for this resource's children of one kind: `first`, `after`, the kind's filter
    and the order when the declaration has them, batched with the same list of every other parent in the
    query (one statement per level)."""
    kind, parent_column = KINDS[item.target], item.parent_column
    filter_type = filter_of(kind) if item.filtered else None

    async def resolve(self: Any, info: Info, **arguments: Any) -> Any:
        order = arguments.get("order")
        args = list_args(arguments["first"], arguments.get("after"), arguments.get("filter"), order)
        return await child_list(info, kind, parent_column, self.row["id"], args)

    parameters: list[tuple[str, Any, Any]] = [("first", FirstArg, item.default_first), ("after", AfterArg, None)]
    if filter_type is not None:
        parameters.append(("filter", Annotated[filter_type | None, strawberry.argument(description=FILTER_HELP)], None))
    if item.ordered:
        parameters.append(("order", OrderArg, SortOrder.NEWEST_FIRST))
    target = _with_signature(resolve, parameters, Connection[lazy(item.target)])  # type: ignore[misc]
    return strawberry.field(
        resolver=target,
        name=item.public_name,
        description=item.description,
        metadata={LIST_OF: (kind, parent_column)},
    )


def _with_signature(
    resolve: Callable[..., Any], parameters: list[tuple[str, Any, Any]], returns: Any
) -> Callable[..., Any]:
    """`resolve(self, info, **arguments)` as a function with named, annotated, defaulted parameters, which
    is how strawberry reads a field's arguments."""
    import inspect

    async def resolver(self: Any, info: Info, **arguments: Any) -> Any:
        return await resolve(self, info, **arguments)

    signature = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info),
    ]
    annotations: dict[str, Any] = {"info": Info, "return": returns}
    for name, annotation, default in parameters:
        signature.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if default is None and name == "first" else default,
                annotation=annotation,
            )
        )
        annotations[name] = annotation
    resolver.__signature__ = inspect.Signature(signature, return_annotation=returns)  # type: ignore[attr-defined]
    resolver.__annotations__ = annotations
    return resolver


@strawberry.enum(description="What a version of a resource was.")
class ResourceChange(Enum):
    CREATED = "created"
    UPDATED = "updated"
    ENTERED_IN_ERROR = "entered-in-error"


def _version_cursor(version: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(["v1", "version", version])).decode().rstrip("=")


def _version_before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadUserInput("`after` is not a cursor issued by this API for this list", argument="after") from exc
    if not (isinstance(decoded, list) and decoded[:2] == ["v1", "version"] and len(decoded) == 3):
        raise BadUserInput("`after` is not a cursor issued by this API for this list", argument="after")
    if not isinstance(decoded[2], int) or isinstance(decoded[2], bool):
        raise BadUserInput("`after` is not a cursor issued by this API for this list", argument="after")
    return decoded[2]


def version_type(kind: ResourceKind) -> Any:
    """`<Kind>Version`: one version of a resource, with who made it, when and through which app."""
    name = f"{kind.type_name}Version"

    async def actor(self: Any, info: Info) -> Any:
        if self.actor_kind != "personnel" or self.actor_id is None:
            return None
        return await to_one(info, KINDS["Practitioner"], self.actor_id)

    actor.__annotations__ = {"info": Info, "return": lazy("Practitioner") | None}
    namespace: dict[str, Any] = {
        "__module__": MODULE,
        "__annotations__": {
            "version": int,
            "change": ResourceChange,
            "recorded_at": datetime,
            "actor_kind": str | None,
            "client_id": str | None,
            "resource": lazy(kind.type_name),
            "actor_id": strawberry.Private[str | None],  # type: ignore[misc]
        },
        "version": strawberry.field(description="The version number: 1 when created, one more with every change."),
        "change": strawberry.field(description="Whether this version created, changed or marked the resource."),
        "recorded_at": strawberry.field(description="When this version was made."),
        "actor_kind": strawberry.field(
            description="Who made it: personnel, citizen or service; null when it came from outside the API."
        ),
        "client_id": strawberry.field(
            description="The app it was made through; null when it came from outside the API."
        ),
        "actor": strawberry.field(resolver=actor, description="The practitioner who made it, when it was personnel."),
        "resource": strawberry.field(description="The resource as it was in this version."),
    }
    cls = strawberry.type(type(name, (), namespace), description=f"One version of a resource ({kind.type_name}).")
    setattr(sys.modules[MODULE], name, cls)
    return cls


def _history(kind: ResourceKind, item: History) -> Any:
    versions = version_type(kind)
    store_kind = kind

    async def resolve(self: Any, info: Info, first: int = 10, after: str | None = None) -> Any:
        rid = str(self.row["id"])
        await info.context.loaders.item(store_kind).load(rid)
        rows, more = await info.context.store.versions(store_kind, rid, first, _version_before(after))
        edges = []
        for row in rows:
            who = row["_by"].split(":", 1) if row["_by"] else [None, None]
            entry = versions(
                version=row["_version"],
                change=ResourceChange(row["_change"]),
                recorded_at=row["_recorded_at"],
                actor_kind=who[0],
                actor_id=who[1],
                client_id=row["_app"],
                resource=TYPES[store_kind.type_name].from_row(row),
            )
            edges.append(Edge(cursor=_version_cursor(row["_version"]), node=entry))

        async def count() -> int:
            return int(self.row["version"]) if not rows else max(int(self.row["version"]), rows[0]["_version"])

        return Connection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=more,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            count=count,
        )

    resolve.__annotations__ = {
        "info": Info,
        "first": Annotated[int, strawberry.argument(description="How many versions, 1 to 100.")],
        "after": AfterArg,
        "return": Connection[versions],  # type: ignore[valid-type]
    }
    return strawberry.field(resolver=resolve, name=item.public_name, description=item.description)


def build(kind: ResourceKind) -> Any:
    """The GraphQL object type of a node kind, with `from_row` to make one from a row."""
    annotations: dict[str, Any] = {"id": relay.NodeID[str], "row": strawberry.Private[Any]}  # type: ignore[misc]
    namespace: dict[str, Any] = {"__module__": MODULE}
    makers: dict[str, Callable[[Row], Any]] = {}
    for item in kind.fields:
        plain = _plain(item)
        if plain is not None:
            python_type, make = plain
            annotations[item.name] = python_type
            namespace[item.name] = strawberry.field(name=item.public_name, description=item.description)
            makers[item.name] = make
        elif isinstance(item, Ref):
            namespace[item.name] = _reference(item)
        elif isinstance(item, Text):
            namespace[item.name] = _guarded_text(kind, item)
        elif isinstance(item, Many):
            namespace[item.name] = children(item)
        elif isinstance(item, History):
            namespace[item.name] = _history(kind, item)
        else:
            raise TypeError(f"{kind.type_name}.{item.name}: no GraphQL form for {type(item).__name__}")
    namespace["__annotations__"] = annotations

    def from_row(cls: Any, row: Row) -> Any:
        return cls(id=str(row["id"]), row=row, **{name: make(row) for name, make in makers.items()})

    namespace["from_row"] = classmethod(from_row)
    cls = strawberry.type(type(kind.type_name, (relay.Node,), namespace), description=kind.description)
    TYPES[kind.type_name] = NODE_TYPES[kind.type_name] = cls
    setattr(sys.modules[MODULE], kind.type_name, cls)
    return cls


for _kind in KINDS.values():
    if _kind.node:
        build(_kind)


def root_list(kind: ResourceKind, description: str) -> Any:
    """A top-level connection of one kind across every patient the caller may read: `first`, `after`, the
    kind's filter and the order."""
    filter_type = filter_of(kind)

    async def resolve(self: Any, info: Info, **arguments: Any) -> Any:
        args = list_args(arguments["first"], arguments.get("after"), arguments.get("filter"), arguments.get("order"))
        return await top_list(info, kind, args)

    parameters: list[tuple[str, Any, Any]] = [("first", FirstArg, None), ("after", AfterArg, None)]
    if filter_type is not None:
        parameters.append(("filter", Annotated[filter_type | None, strawberry.argument(description=FILTER_HELP)], None))
    parameters.append(("order", OrderArg, SortOrder.NEWEST_FIRST))
    target = _with_signature(resolve, parameters, Connection[lazy(kind.type_name)])  # type: ignore[misc]
    return strawberry.field(resolver=target, description=description, metadata={LIST_OF: (kind, None)})


def node_of(kind: ResourceKind, row: Row) -> Any:
    """The GraphQL object of a row of `kind`."""
    return TYPES[kind.type_name].from_row(row)
