"""Whole-selection reads as SQL: a list selection whose every field maps to columns becomes one statement
that builds the GraphQL answer as JSON inside PostgreSQL, and lists what it returned for the audit log.

Resolving 2,000 rows field by field in Python costs far more than fetching them (the profile in
bench/RESULTS.md). No library compiles a GraphQL selection into PostgreSQL JSON under our own per-level
policy filters, so this is written here. Each list level is a CTE of its rows, filtered by the same
WHERE clause the store uses for its other lists (the Cerbos plan, the client's filters and the cursor),
cut to `first + 1` rows per parent by a LATERAL join; the JSON is then folded from the deepest level up.
The statement also returns, per kind and patient, the ids that left, so every row is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.plan_sql import Params
from gateway.resources import ResourceKind


@dataclass(frozen=True)
class Column:
    """A field whose value is the column as PostgreSQL writes it in JSON (text, number, date, time)."""

    column: str


@dataclass(frozen=True)
class FloatColumn:
    """A numeric column as a GraphQL Float."""

    column: str


@dataclass(frozen=True)
class EnumColumn:
    """A column holding FHIR codes (`in-progress`) shown as GraphQL enum names (`IN_PROGRESS`)."""

    column: str


@dataclass(frozen=True)
class Words:
    """A column of space-separated words as a list (given names)."""

    column: str


@dataclass(frozen=True)
class Joined:
    """Columns joined with spaces, skipping none (a full name)."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class GlobalId:
    """The Relay global id: base64 of `Type:uuid`, as strawberry writes it."""


@dataclass(frozen=True)
class Value:
    """A value object (Coding, Period, Quantity): null when `null_unless` is null, else its fields."""

    fields: dict[str, Shape]
    null_unless: str | None = None


Shape = Column | FloatColumn | EnumColumn | Words | Joined | GlobalId | Value


@dataclass(frozen=True)
class Typename:
    """`__typename` of the object at hand."""

    name: str


@dataclass(frozen=True)
class NodeSelection:
    """The fields asked of one node: (response key, shape, nested list or typename), in order."""

    fields: tuple[tuple[str, Shape | Typename | ListSelection], ...]


@dataclass(frozen=True)
class Edges:
    """`edges { cursor node { ... } }`: (response key, "cursor", a typename or the node's selection)."""

    fields: tuple[tuple[str, str | Typename | NodeSelection], ...]


@dataclass(frozen=True)
class PageInfo:
    """`pageInfo { ... }`: (response key, PageInfo field name)."""

    fields: tuple[tuple[str, str], ...]


PAGE_INFO_FIELDS = ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")


@dataclass(frozen=True)
class ListSelection:
    """One connection in the query: its kind, the column linking it to its parent (None at the top),
    the store's list arguments, and the parts asked of the connection, in order."""

    kind: ResourceKind
    parent_column: str | None
    args: Any
    type_name: str
    parts: tuple[tuple[str, Edges | PageInfo | Typename], ...]

    def children(self) -> list[ListSelection]:
        """The lists nested directly under this one's nodes."""
        return [
            part
            for _, edges in self.parts
            if isinstance(edges, Edges)
            for _, node in edges.fields
            if isinstance(node, NodeSelection)
            for _, part in node.fields
            if isinstance(part, ListSelection)
        ]


def json_key(key: str) -> str:
    """A JSON object key as a SQL literal; keys are GraphQL names, so nothing needs escaping."""
    if not key.replace("_", "").isalnum() or not key.isascii():
        raise ValueError(f"not a GraphQL name: {key!r}")
    return f"'{key}'"


# PostgreSQL's base64 breaks a line after every 57 bytes of input; removing the breaks with translate()
# was a tenth of a nested read's time, so ids short enough to have none skip it.
BASE64_LINE_BYTES = 57
UUID_TEXT_BYTES = 36


def _b64url(sql: str) -> str:
    return f"translate(encode(convert_to({sql}, 'UTF8'), 'base64'), E'+/=\\n', '-_')"


def shape_sql(shape: Shape, alias: str, type_name: str) -> str:
    """The SQL expression giving a field's JSON value for the row `alias`."""
    if isinstance(shape, Value):
        inner = ", ".join(f"{json_key(k)}, {shape_sql(s, alias, type_name)}" for k, s in shape.fields.items())
        built = f"json_build_object({inner})"
        if shape.null_unless is None:
            return built
        return f"CASE WHEN {alias}.{shape.null_unless} IS NULL THEN NULL ELSE {built} END"
    if isinstance(shape, Column):
        return f"{alias}.{shape.column}"
    if isinstance(shape, FloatColumn):
        return f"{alias}.{shape.column}::float8"
    if isinstance(shape, EnumColumn):
        return f"upper(replace({alias}.{shape.column}, '-', '_'))"
    if isinstance(shape, Words):
        return f"coalesce(regexp_split_to_array(nullif(trim({alias}.{shape.column}), ''), '\\s+'), '{{}}')"
    if isinstance(shape, Joined):
        return f"concat_ws(' ', {', '.join(f'{alias}.{c}' for c in shape.columns)})"
    encoded = f"encode(convert_to('{type_name}:' || {alias}.id::text, 'UTF8'), 'base64')"
    if len(type_name.encode()) + 1 + UUID_TEXT_BYTES < BASE64_LINE_BYTES:
        return encoded
    return f"translate({encoded}, E'\\n', '')"


# The WHERE conditions of one level (policy filter, client filters, cursor), adding to the parameters.
WhereOf = Callable[[ListSelection, Params], list[str]]
# The ORDER BY of one level, over the kind's alias.
OrderOf = Callable[[ListSelection], str]


@dataclass
class JsonStatement:
    """One statement answering a top-level list and everything nested in it.

    `sql` returns two columns: `data`, the connection as JSON text, and `audit`, JSON text of
    [kind, patient id, [ids]] for every kind and patient with rows in the answer."""

    sql: str
    params: list[Any]


def compile_list(selection: ListSelection, where_of: WhereOf, order_of: OrderOf) -> JsonStatement:
    """The statement for a top-level list selection."""
    builder = _Builder(where_of, order_of)
    rows = builder.rows(selection, None)
    grouped = builder.grouped(selection, rows)
    data = builder.connection(selection, grouped)
    audit = " UNION ALL ".join(builder.audit) or "SELECT 0, 0::bigint, NULL::uuid, NULL::json WHERE FALSE"
    sql = (
        f"WITH {', '.join(builder.ctes)} "
        f"SELECT (SELECT {data} FROM (SELECT 1) AS _one LEFT JOIN {grouped} ON TRUE)::text AS data, "
        f"(SELECT coalesce(json_agg(j ORDER BY n, pos, p), '[]') FROM ({audit}) AS a(n, pos, p, j))::text AS audit"
    )
    return JsonStatement(sql, builder.params.values)


@dataclass
class _Builder:
    where_of: WhereOf
    order_of: OrderOf
    params: Params = field(default_factory=Params)
    ctes: list[str] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)
    counter: int = 0

    def _name(self, stem: str) -> str:
        self.counter += 1
        return f"_{stem}{self.counter}"

    def rows(self, sel: ListSelection, parent: tuple[str, ListSelection] | None) -> str:
        """A CTE of this level's rows, `first + 1` per parent, numbered in order; returns its name."""
        kind, a = sel.kind, sel.kind.alias
        name = self._name("rows")
        where = self.where_of(sel, self.params)
        order = self.order_of(sel)
        limit = self.params.add(sel.args.first + 1, "integer")
        numbered = f"row_number() OVER (ORDER BY {order}) AS _rn"
        if parent is None:
            body = (
                f"SELECT {a}.*, NULL::uuid AS _parent, {numbered} FROM {kind.table} {a} "
                f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {limit}"
            )
        else:
            up, up_sel = parent
            body = (
                f"SELECT _t.* FROM {up} CROSS JOIN LATERAL (SELECT {a}.*, {up}.id AS _parent, {numbered} "
                f"FROM {kind.table} {a} WHERE {a}.{sel.parent_column} = {up}.id AND {' AND '.join(where)} "
                f"ORDER BY {order} LIMIT {limit}) AS _t WHERE {up}._rn <= {up_sel.args.first}"
            )
        self.ctes.append(f"{name} AS MATERIALIZED ({body})")
        if kind.patient_column:
            patient = f"{name}.{kind.patient_column}"
            ids = f"array_agg({name}.id ORDER BY {name}._rn, {name}._parent)"
            self.audit.append(
                f"SELECT {len(self.audit)}, min({name}._rn), {patient}, "
                f"json_build_array('{kind.name}'::text, {patient}, {ids}) "
                f"FROM {name} WHERE {name}._rn <= {sel.args.first} GROUP BY {patient}"
            )
        return name

    def grouped(self, sel: ListSelection, rows: str) -> str:
        """A CTE with one row per parent: each edges list as JSON, the row count, the end cursors."""
        a, first = sel.kind.alias, sel.args.first
        columns = [f"{a}._parent", "count(*) AS _n"]
        joins: list[str] = []
        cursor = self.cursor(sel)
        for index, (_, part) in enumerate(sel.parts):
            if isinstance(part, Edges):
                edge = self.edge(sel, part, rows, joins)
                columns.append(
                    f"coalesce(json_agg({edge} ORDER BY {a}._rn) FILTER (WHERE {a}._rn <= {first}), '[]') AS _e{index}"
                )
            elif isinstance(part, PageInfo):
                wanted = {name for _, name in part.fields}
                if "startCursor" in wanted:
                    columns.append(f"(array_agg({cursor} ORDER BY {a}._rn))[1] AS _start")
                if "endCursor" in wanted:
                    columns.append(
                        f"(array_agg({cursor} ORDER BY {a}._rn DESC) FILTER (WHERE {a}._rn <= {first}))[1] AS _end"
                    )
        name = self._name("json")
        self.ctes.append(
            f"{name} AS (SELECT {', '.join(columns)} FROM {rows} AS {a} {' '.join(joins)} GROUP BY {a}._parent)"
        )
        return name

    def edge(self, sel: ListSelection, edges: Edges, rows: str, joins: list[str]) -> str:
        pairs: list[str] = []
        for key, part in edges.fields:
            if part == "cursor":
                value = self.cursor(sel)
            elif isinstance(part, Typename):
                value = f"'{part.name}'::text"
            else:
                assert isinstance(part, NodeSelection)
                value = self.node(sel, part, rows, joins)
            pairs.append(f"{json_key(key)}, {value}")
        return f"json_build_object({', '.join(pairs)})"

    def node(self, sel: ListSelection, node: NodeSelection, rows: str, joins: list[str]) -> str:
        a = sel.kind.alias
        pairs: list[str] = []
        for key, part in node.fields:
            if isinstance(part, Typename):
                value = f"'{part.name}'::text"
            elif isinstance(part, ListSelection):
                child = self.grouped(part, self.rows(part, (rows, sel)))
                joins.append(f"LEFT JOIN {child} ON {child}._parent = {a}.id")
                value = self.connection(part, child)
            else:
                value = shape_sql(part, a, sel.type_name)
            pairs.append(f"{json_key(key)}, {value}")
        return f"json_build_object({', '.join(pairs)})"

    def cursor(self, sel: ListSelection) -> str:
        a = sel.kind.alias
        keys = ", ".join(f"{a}.{column}" for column, _ in sel.kind.order)
        return _b64url(f"json_build_array('v1', '{sel.kind.name}', {keys})::text")

    def connection(self, sel: ListSelection, grouped: str) -> str:
        """The connection's JSON from its grouped row (NULL columns when the parent has no rows)."""
        pairs: list[str] = []
        for index, (key, part) in enumerate(sel.parts):
            if isinstance(part, Edges):
                value = f"coalesce({grouped}._e{index}, '[]')"
            elif isinstance(part, PageInfo):
                info = {
                    "hasNextPage": f"coalesce({grouped}._n, 0) > {sel.args.first}",
                    "hasPreviousPage": "TRUE" if sel.args.after is not None else "FALSE",
                    "startCursor": f"{grouped}._start",
                    "endCursor": f"{grouped}._end",
                }
                value = f"json_build_object({', '.join(f'{json_key(k)}, {info[n]}' for k, n in part.fields)})"
            else:
                value = f"'{part.name}'::text"
            pairs.append(f"{json_key(key)}, {value}")
        return f"json_build_object({', '.join(pairs)})"
