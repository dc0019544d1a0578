"""Whole-selection reads as SQL: a list selection whose every field maps to columns becomes one statement
that builds the GraphQL answer as JSON inside PostgreSQL, and lists what it returned for the audit log.

Resolving 2,000 rows field by field in Python costs far more than fetching them (the profile in
bench/RESULTS.md). No library compiles a GraphQL selection into PostgreSQL JSON under our own per-level
policy filters, so this is written here. Each list level is a CTE of its rows, filtered by the same
WHERE clause the store uses for its other lists (the Cerbos plan, the client's filters and the cursor),
cut to `first + 1` rows per parent by a LATERAL join; the JSON is then folded from the deepest level up.
The statement also returns, per kind and patient, the ids that left, so every row is audited. The
response keys a client chose (aliases) travel as parameters like every other client value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.policy_attributes import PATIENT_CONTEXT, PATIENT_CONTEXT_COLUMNS
from gateway.sql import Sql, const, ident, join, sql, value

if TYPE_CHECKING:
    from gateway.declare import ResourceKind


@dataclass(frozen=True)
class Column:
    """A field whose value is the column as PostgreSQL writes it in JSON (text, number, date, time)."""

    column: str


@dataclass(frozen=True)
class InstantColumn:
    """A timestamptz column written as the resolvers write it: ISO 8601 in UTC, with microseconds only when
    there are any (PostgreSQL's own JSON drops trailing zeros of the fraction, Python keeps six digits)."""

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


Shape = Column | InstantColumn | FloatColumn | EnumColumn | Words | Joined | GlobalId | Value


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
# Metadata key of a connection field in the schema: (kind, parent column or None at the top), which
# tells whole-selection reads what a field lists.
LIST_OF = "akson_list_of"
# Metadata key of a root field that reads one resource by global id: its kind, or None for `node`.
ITEM_OF = "akson_item_of"


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


@dataclass(frozen=True)
class ItemSelection:
    """One resource read by id at the root (`patient(id:)`, `node(id:)`), with the fields asked of it."""

    kind: ResourceKind
    id: str
    node: NodeSelection

    def as_level(self, args: Any) -> ListSelection:
        """The item as a one-row level (`args` asks for one row), so that its rows, nested lists and audit
        are built as a list's are."""
        return ListSelection(self.kind, None, args, self.kind.type_name, (("", Edges((("node", self.node),))),))


def json_key(key: str) -> str:
    """A JSON object key, checked to be a GraphQL name, so that nothing in it needs escaping in JSON."""
    if not key.replace("_", "").isalnum() or not key.isascii():
        raise ValueError(f"not a GraphQL name: {key!r}")
    return key


def json_object(pairs: list[tuple[str, Sql]]) -> Sql:
    """SQL for the text of a JSON object: (key, SQL for the text of a JSON value) pairs, concatenated.
    Keys are response keys the client chose, so each key's text travels as a parameter.

    PostgreSQL's json_build_object looks up how to write each argument on every call; joining text
    whose values come from to_json took 40% less time for the same objects (bench/PROFILE.md)."""
    if not pairs:
        return sql("'{}'")
    pieces: list[Sql] = []
    separator = "{"
    for key, item in pairs:
        pieces += [value(f'{separator}"{json_key(key)}":', "text"), item]
        separator = ","
    pieces.append(sql("'}'"))
    return sql("(", join(pieces, " || "), ")")


def json_value(expression: Sql) -> Sql:
    """SQL for the text of any SQL value as JSON, null included."""
    return sql("coalesce(to_json(", expression, ")::text, 'null')")


def instant_text(expression: Sql) -> Sql:
    """SQL for a timestamptz as the text Python's isoformat() gives for it in UTC, or NULL."""
    utc = sql("(", expression, " AT TIME ZONE 'UTC')")
    return sql(
        "to_char(",
        utc,
        ", CASE WHEN ",
        utc,
        " = date_trunc('second', ",
        utc,
        ")",
        ' THEN \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\' ELSE \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\' END)',
    )


def json_string(expression: Sql) -> Sql:
    """SQL for the text of a JSON string whose characters need no escaping (base64, names), or null."""
    return sql("coalesce('\"' || ", expression, " || '\"', 'null')")


def json_literal(name: str) -> Sql:
    """SQL for the text of a constant JSON string that needs no escaping (a declared type name)."""
    json_key(name)
    return const(f'"{name}"')


# PostgreSQL's base64 breaks a line after every 57 bytes of input; removing the breaks with translate()
# was a tenth of a nested read's time, so ids short enough to have none skip it.
BASE64_LINE_BYTES = 57
UUID_TEXT_BYTES = 36


def _b64url(expression: Sql) -> Sql:
    return sql("translate(encode(convert_to(", expression, ", 'UTF8'), 'base64'), E'+/=\\n', '-_')")


def shape_sql(shape: Shape, alias: str, type_name: str) -> Sql:
    """SQL for the text of a field's JSON value for the row `alias`."""
    if isinstance(shape, Value):
        built = json_object([(k, shape_sql(s, alias, type_name)) for k, s in shape.fields.items()])
        if shape.null_unless is None:
            return built
        return sql("CASE WHEN ", ident(alias, shape.null_unless), " IS NULL THEN 'null' ELSE ", built, " END")
    if isinstance(shape, Column):
        return json_value(ident(alias, shape.column))
    if isinstance(shape, InstantColumn):
        return json_string(instant_text(ident(alias, shape.column)))
    if isinstance(shape, FloatColumn):
        return json_value(sql(ident(alias, shape.column), "::float8"))
    if isinstance(shape, EnumColumn):
        return json_value(sql("upper(replace(", ident(alias, shape.column), ", '-', '_'))"))
    if isinstance(shape, Words):
        return json_value(
            sql("coalesce(regexp_split_to_array(nullif(trim(", ident(alias, shape.column), "), ''), '\\s+'), '{}')")
        )
    if isinstance(shape, Joined):
        return json_value(sql("concat_ws(' ', ", join(ident(alias, c) for c in shape.columns), ")"))
    json_key(type_name)
    encoded = sql(
        "encode(convert_to(", const(f"{type_name}:"), " || ", ident(alias, "id"), "::text, 'UTF8'), 'base64')"
    )
    if len(type_name.encode()) + 1 + UUID_TEXT_BYTES >= BASE64_LINE_BYTES:
        encoded = sql("translate(", encoded, ", E'\\n', '')")
    return json_string(encoded)


# The WHERE conditions of one level (policy filter, client filters, cursor); the second argument names
# the joined patient context row, if the level has one.
WhereOf = Callable[[ListSelection, str | None], list[Sql]]
# The ORDER BY of one level, over the kind's alias.
OrderOf = Callable[[ListSelection], Sql]


def compile_list(selection: ListSelection, where_of: WhereOf, order_of: OrderOf) -> Sql:
    """The statement for a top-level list selection. It returns two columns: `data`, the connection as
    JSON text, and `audit`, JSON text of [kind, patient id, [ids], level] for every kind and patient with
    rows in the answer (levels numbered from 0 in the order their CTEs were built, the root first)."""
    builder = _Builder(where_of, order_of)
    rows = builder.rows(selection, None)
    grouped = builder.grouped(selection, rows)
    data = builder.connection(selection, grouped)
    return builder.statement(sql("SELECT ", data, " FROM (SELECT 1) AS _one LEFT JOIN ", ident(grouped), " ON TRUE"))


def compile_item(level: ListSelection, where_of: WhereOf, order_of: OrderOf) -> Sql:
    """The statement for a root item (`ItemSelection.as_level`): `data` is the node's JSON text, NULL when no
    row passes the WHERE of its level (none exists, or policy hides it: the caller explains which), and
    `audit` as for lists, the item's own rows at level 0."""
    builder = _Builder(where_of, order_of)
    rows = builder.rows(level, None)
    joins: list[Sql] = []
    edges = level.parts[0][1]
    assert isinstance(edges, Edges)
    node = edges.fields[0][1]
    assert isinstance(node, NodeSelection)
    built = builder.node(level, node, rows, joins)
    a = ident(level.kind.alias)
    data = sql("SELECT ", built, " FROM ", ident(rows), " AS ", a, " ", join(joins, " "), " WHERE ", a, "._rn = 1")
    return builder.statement(data)


@dataclass
class _Builder:
    where_of: WhereOf
    order_of: OrderOf
    ctes: list[Sql] = field(default_factory=list)
    audit: list[Sql] = field(default_factory=list)
    # The patient context CTE of each level's rows, made once for all the lists nested under that level.
    contexts: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def statement(self, data: Sql) -> Sql:
        """The whole statement: the CTEs, then `data` (a query of one text value), `audit`, and the
        `principal_epoch` its snapshot saw (which proves a kept principal current)."""
        audit = (
            join(self.audit, " UNION ALL ")
            if self.audit
            else sql("SELECT 0, 0::bigint, NULL::uuid, NULL::json WHERE FALSE")
        )
        return sql(
            "WITH ",
            join(self.ctes),
            " SELECT (",
            data,
            ") AS data, (SELECT coalesce(json_agg(j ORDER BY n, pos, p), '[]') FROM (",
            audit,
            ") AS a(n, pos, p, j))::text AS audit, (SELECT epoch FROM principal_epoch) AS epoch",
        )

    def _name(self, stem: str) -> str:
        self.counter += 1
        return f"_{stem}{self.counter}"

    def rows(self, sel: ListSelection, parent: tuple[str, ListSelection] | None) -> str:
        """A CTE of this level's rows, `first + 1` per parent, numbered in order; returns its name."""
        kind, a = sel.kind, ident(sel.kind.alias)
        name = self._name("rows")
        here = ident(name)
        context = self.patient_context(sel, parent)
        where = join(self.where_of(sel, PATIENT_CONTEXT if context else None), " AND ")
        order = self.order_of(sel)
        limit = value(sel.args.first + 1, "integer")
        numbered = sql("row_number() OVER (ORDER BY ", order, ") AS _rn")
        if parent is None:
            body = sql(
                "SELECT ",
                a,
                ".*, NULL::uuid AS _parent, ",
                numbered,
                " FROM ",
                kind.table_sql,
                " WHERE ",
                where,
                " ORDER BY ",
                order,
                " LIMIT ",
                limit,
            )
        else:
            up_name, up_sel = parent
            up = ident(up_name)
            joined = (
                sql(
                    "LEFT JOIN ",
                    ident(context),
                    " AS ",
                    ident(PATIENT_CONTEXT),
                    " ON ",
                    ident(PATIENT_CONTEXT, "id"),
                    " = ",
                    kind.col(kind.patient_column or "id"),
                    " ",
                )
                if context
                else sql()
            )
            body = sql(
                "SELECT _t.* FROM ",
                up,
                " CROSS JOIN LATERAL (SELECT ",
                a,
                ".*, ",
                up,
                ".id AS _parent, ",
                numbered,
                " FROM ",
                kind.table_sql,
                " ",
                joined,
                "WHERE ",
                kind.col(sel.parent_column or "id"),
                " = ",
                up,
                ".id AND ",
                where,
                " ORDER BY ",
                order,
                " LIMIT ",
                limit,
                ") AS _t WHERE ",
                up,
                "._rn <= ",
                value(up_sel.args.first, "integer"),
            )
        self.ctes.append(sql(here, " AS MATERIALIZED (", body, ")"))
        if kind.patient_column:
            patient = ident(name, kind.patient_column)
            ids = sql("array_agg(", here, ".id ORDER BY ", here, "._rn, ", here, "._parent)")
            self.audit.append(
                sql(
                    "SELECT ",
                    value(len(self.audit), "integer"),
                    ", min(",
                    here,
                    "._rn), ",
                    patient,
                    ", json_build_array(",
                    const(kind.name),
                    "::text, ",
                    patient,
                    ", ",
                    ids,
                    ", ",
                    value(len(self.audit), "integer"),
                    ") FROM ",
                    here,
                    " WHERE ",
                    here,
                    "._rn <= ",
                    value(sel.args.first, "integer"),
                    " GROUP BY ",
                    patient,
                )
            )
        return name

    def patient_context(self, sel: ListSelection, parent: tuple[str, ListSelection] | None) -> str | None:
        """A CTE of the per-patient attributes of the parents' patients, for a nested level of patient
        data: its policy then reads them once per patient instead of looking them up for every row."""
        if parent is None or not sel.kind.context_attributes or not sel.kind.patient_column:
            return None
        up_name, up_sel = parent
        if not up_sel.kind.patient_column:
            return None
        if up_name in self.contexts:
            return self.contexts[up_name]
        up = ident(up_name)
        name = self.contexts[up_name] = self._name("patients")
        self.ctes.append(
            sql(
                ident(name),
                " AS MATERIALIZED (SELECT ",
                PATIENT_CONTEXT_COLUMNS,
                " FROM patient px WHERE px.id IN ",
                "(SELECT ",
                ident(up_name, up_sel.kind.patient_column),
                " FROM ",
                up,
                " WHERE ",
                up,
                "._rn <= ",
                value(up_sel.args.first, "integer"),
                "))",
            )
        )
        return name

    def grouped(self, sel: ListSelection, rows: str) -> str:
        """A CTE with one row per parent: each edges list as JSON, the row count, the end cursors."""
        a, first = ident(sel.kind.alias), value(sel.args.first, "integer")
        columns = [sql(a, "._parent"), sql("count(*) AS _n")]
        joins: list[Sql] = []
        cursor = self.cursor(sel)
        for index, (_, part) in enumerate(sel.parts):
            if isinstance(part, Edges):
                edge = self.edge(sel, part, rows, joins)
                columns.append(
                    sql(
                        "'[' || coalesce(string_agg(",
                        edge,
                        ", ',' ORDER BY ",
                        a,
                        "._rn) FILTER (WHERE ",
                        a,
                        "._rn <= ",
                        first,
                        "), '') || ']' AS ",
                        ident(f"_e{index}"),
                    )
                )
            elif isinstance(part, PageInfo):
                wanted = {name for _, name in part.fields}
                if "startCursor" in wanted:
                    columns.append(sql("(array_agg(", cursor, " ORDER BY ", a, "._rn))[1] AS _start"))
                if "endCursor" in wanted:
                    columns.append(
                        sql(
                            "(array_agg(",
                            cursor,
                            " ORDER BY ",
                            a,
                            "._rn DESC) FILTER (WHERE ",
                            a,
                            "._rn <= ",
                            first,
                            "))[1] AS _end",
                        )
                    )
        name = self._name("json")
        self.ctes.append(
            sql(
                ident(name),
                " AS (SELECT ",
                join(columns),
                " FROM ",
                ident(rows),
                " AS ",
                a,
                " ",
                join(joins, " "),
                " GROUP BY ",
                a,
                "._parent)",
            )
        )
        return name

    def edge(self, sel: ListSelection, edges: Edges, rows: str, joins: list[Sql]) -> Sql:
        pairs: list[tuple[str, Sql]] = []
        for key, part in edges.fields:
            if part == "cursor":
                item = json_string(self.cursor(sel))
            elif isinstance(part, Typename):
                item = json_literal(part.name)
            else:
                assert isinstance(part, NodeSelection)
                item = self.node(sel, part, rows, joins)
            pairs.append((key, item))
        return json_object(pairs)

    def node(self, sel: ListSelection, node: NodeSelection, rows: str, joins: list[Sql]) -> Sql:
        a = ident(sel.kind.alias)
        pairs: list[tuple[str, Sql]] = []
        for key, part in node.fields:
            if isinstance(part, Typename):
                item = json_literal(part.name)
            elif isinstance(part, ListSelection):
                child = self.grouped(part, self.rows(part, (rows, sel)))
                joins.append(sql("LEFT JOIN ", ident(child), " ON ", ident(child, "_parent"), " = ", a, ".id"))
                item = self.connection(part, child)
            else:
                item = shape_sql(part, sel.kind.alias, sel.type_name)
            pairs.append((key, item))
        return json_object(pairs)

    def cursor(self, sel: ListSelection) -> Sql:
        keys = join(
            instant_text(sel.kind.col(column)) if pg_type == "timestamptz" else sel.kind.col(column)
            for column, pg_type in sel.kind.order
        )
        return _b64url(sql("json_build_array('v1', ", const(sel.kind.name), ", ", keys, ")::text"))

    def connection(self, sel: ListSelection, grouped: str) -> Sql:
        """The text of the connection's JSON from its grouped row (NULL columns when the parent has no rows)."""
        here = ident(grouped)
        pairs: list[tuple[str, Sql]] = []
        for index, (key, part) in enumerate(sel.parts):
            if isinstance(part, Edges):
                item = sql("coalesce(", here, ".", ident(f"_e{index}"), ", '[]')")
            elif isinstance(part, PageInfo):
                more = sql("coalesce(", here, "._n, 0) > ", value(sel.args.first, "integer"))
                info = {
                    "hasNextPage": sql("CASE WHEN ", more, " THEN 'true' ELSE 'false' END"),
                    "hasPreviousPage": sql("'true'") if sel.args.after is not None else sql("'false'"),
                    "startCursor": json_string(sql(here, "._start")),
                    "endCursor": json_string(sql(here, "._end")),
                }
                item = json_object([(k, info[n]) for k, n in part.fields])
            else:
                item = json_literal(part.name)
            pairs.append((key, item))
        return json_object(pairs)
