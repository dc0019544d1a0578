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
from gateway.resources import PATIENT_CONTEXT, PATIENT_CONTEXT_COLUMNS, ResourceKind


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
    """A JSON object key, checked to be a GraphQL name, so that nothing in it needs escaping in JSON or SQL."""
    if not key.replace("_", "").isalnum() or not key.isascii():
        raise ValueError(f"not a GraphQL name: {key!r}")
    return key


def json_object(pairs: list[tuple[str, str]]) -> str:
    """SQL for the text of a JSON object: (key, SQL for the text of a JSON value) pairs, concatenated.

    PostgreSQL's json_build_object looks up how to write each argument on every call; joining text
    whose values come from to_json took 40% less time for the same objects (bench/PROFILE.md)."""
    if not pairs:
        return "'{}'"
    pieces: list[str] = []
    separator = "{"
    for key, value in pairs:
        pieces += [f"'{separator}\"{json_key(key)}\":'", value]
        separator = ","
    pieces.append("'}'")
    return "(" + " || ".join(pieces) + ")"


def json_value(sql: str) -> str:
    """SQL for the text of any SQL value as JSON, null included."""
    return f"coalesce(to_json({sql})::text, 'null')"


def json_string(sql: str) -> str:
    """SQL for the text of a JSON string whose characters need no escaping (base64, names), or null."""
    return f"coalesce('\"' || {sql} || '\"', 'null')"


def json_literal(value: str) -> str:
    """SQL for the text of a constant JSON string that needs no escaping (a type name)."""
    json_key(value)
    return f"'\"{value}\"'"


# PostgreSQL's base64 breaks a line after every 57 bytes of input; removing the breaks with translate()
# was a tenth of a nested read's time, so ids short enough to have none skip it.
BASE64_LINE_BYTES = 57
UUID_TEXT_BYTES = 36


def _b64url(sql: str) -> str:
    return f"translate(encode(convert_to({sql}, 'UTF8'), 'base64'), E'+/=\\n', '-_')"


def shape_sql(shape: Shape, alias: str, type_name: str) -> str:
    """SQL for the text of a field's JSON value for the row `alias`."""
    if isinstance(shape, Value):
        built = json_object([(k, shape_sql(s, alias, type_name)) for k, s in shape.fields.items()])
        if shape.null_unless is None:
            return built
        return f"CASE WHEN {alias}.{shape.null_unless} IS NULL THEN 'null' ELSE {built} END"
    if isinstance(shape, Column):
        return json_value(f"{alias}.{shape.column}")
    if isinstance(shape, FloatColumn):
        return json_value(f"{alias}.{shape.column}::float8")
    if isinstance(shape, EnumColumn):
        return json_value(f"upper(replace({alias}.{shape.column}, '-', '_'))")
    if isinstance(shape, Words):
        return json_value(f"coalesce(regexp_split_to_array(nullif(trim({alias}.{shape.column}), ''), '\\s+'), '{{}}')")
    if isinstance(shape, Joined):
        return json_value(f"concat_ws(' ', {', '.join(f'{alias}.{c}' for c in shape.columns)})")
    json_key(type_name)
    encoded = f"encode(convert_to('{type_name}:' || {alias}.id::text, 'UTF8'), 'base64')"
    if len(type_name.encode()) + 1 + UUID_TEXT_BYTES >= BASE64_LINE_BYTES:
        encoded = f"translate({encoded}, E'\\n', '')"
    return json_string(encoded)


# The WHERE conditions of one level (policy filter, client filters, cursor), adding to the parameters;
# the third argument names the joined patient context row, if the level has one.
WhereOf = Callable[[ListSelection, Params, str | None], list[str]]
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
        f"SELECT (SELECT {data} FROM (SELECT 1) AS _one LEFT JOIN {grouped} ON TRUE) AS data, "
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
        context = self.patient_context(sel, parent)
        where = self.where_of(sel, self.params, PATIENT_CONTEXT if context else None)
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
            joined = (
                f"LEFT JOIN {context} AS {PATIENT_CONTEXT} ON {PATIENT_CONTEXT}.id = {a}.{kind.patient_column} "
                if context
                else ""
            )
            body = (
                f"SELECT _t.* FROM {up} CROSS JOIN LATERAL (SELECT {a}.*, {up}.id AS _parent, {numbered} "
                f"FROM {kind.table} {a} {joined}WHERE {a}.{sel.parent_column} = {up}.id AND {' AND '.join(where)} "
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

    def patient_context(self, sel: ListSelection, parent: tuple[str, ListSelection] | None) -> str | None:
        """A CTE of the per-patient attributes of the parents' patients, for a nested level of patient
        data: its policy then reads them once per patient instead of looking them up for every row."""
        if parent is None or not sel.kind.context_attributes or not sel.kind.patient_column:
            return None
        up, up_sel = parent
        if not up_sel.kind.patient_column:
            return None
        name = self._name("patients")
        self.ctes.append(
            f"{name} AS MATERIALIZED (SELECT {PATIENT_CONTEXT_COLUMNS} FROM patient px WHERE px.id IN "
            f"(SELECT {up}.{up_sel.kind.patient_column} FROM {up} WHERE {up}._rn <= {up_sel.args.first}))"
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
                    f"'[' || coalesce(string_agg({edge}, ',' ORDER BY {a}._rn) FILTER (WHERE {a}._rn <= {first}), '') "
                    f"|| ']' AS _e{index}"
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
        pairs: list[tuple[str, str]] = []
        for key, part in edges.fields:
            if part == "cursor":
                value = json_string(self.cursor(sel))
            elif isinstance(part, Typename):
                value = json_literal(part.name)
            else:
                assert isinstance(part, NodeSelection)
                value = self.node(sel, part, rows, joins)
            pairs.append((key, value))
        return json_object(pairs)

    def node(self, sel: ListSelection, node: NodeSelection, rows: str, joins: list[str]) -> str:
        a = sel.kind.alias
        pairs: list[tuple[str, str]] = []
        for key, part in node.fields:
            if isinstance(part, Typename):
                value = json_literal(part.name)
            elif isinstance(part, ListSelection):
                child = self.grouped(part, self.rows(part, (rows, sel)))
                joins.append(f"LEFT JOIN {child} ON {child}._parent = {a}.id")
                value = self.connection(part, child)
            else:
                value = shape_sql(part, a, sel.type_name)
            pairs.append((key, value))
        return json_object(pairs)

    def cursor(self, sel: ListSelection) -> str:
        a = sel.kind.alias
        keys = ", ".join(f"{a}.{column}" for column, _ in sel.kind.order)
        return _b64url(f"json_build_array('v1', '{sel.kind.name}', {keys})::text")

    def connection(self, sel: ListSelection, grouped: str) -> str:
        """The text of the connection's JSON from its grouped row (NULL columns when the parent has no rows)."""
        pairs: list[tuple[str, str]] = []
        for index, (key, part) in enumerate(sel.parts):
            if isinstance(part, Edges):
                value = f"coalesce({grouped}._e{index}, '[]')"
            elif isinstance(part, PageInfo):
                more = f"coalesce({grouped}._n, 0) > {sel.args.first}"
                info = {
                    "hasNextPage": f"CASE WHEN {more} THEN 'true' ELSE 'false' END",
                    "hasPreviousPage": "'true'" if sel.args.after is not None else "'false'",
                    "startCursor": json_string(f"{grouped}._start"),
                    "endCursor": json_string(f"{grouped}._end"),
                }
                value = json_object([(k, info[n]) for k, n in part.fields])
            else:
                value = json_literal(part.name)
            pairs.append((key, value))
        return json_object(pairs)
