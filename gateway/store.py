"""The store: the only door to journal data. Every public method authorizes, runs SQL, and audits.

Lists are filtered inside SQL by the Cerbos query plan (hidden rows never leave PostgreSQL, so they
cannot show in pages, counts or cursors). Nested lists for many parents are one statement (a LATERAL
join per parent key with the same filter). Items are fetched with their policy attributes and checked
in one batched CheckResources call. An id that does not exist is checked as a resource with no
relations, so "missing" and "hidden" get the same answer and the same reason.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeAlias

import asyncpg
import orjson
from strawberry import UNSET, relay

from gateway.audit import AuditRecord, AuditTrail
from gateway.auth import Principal
from gateway.authz import Authorizer, SqlFilter
from gateway.db import Reads
from gateway.declare import Filter, ResourceKind, camel
from gateway.errors import BadUserInput, Forbidden, NotFound
from gateway.json_sql import ItemSelection, ListSelection, compile_item, compile_list
from gateway.plan_sql import SetOf, UntranslatablePlan
from gateway.resources import AUDIT_EVENT, KINDS
from gateway.sql import EMPTY, Sql, ident, join, sql, value

READ = "read"
SEARCH = "search"
EXPORT = "export"
_SQL_OP = {"eq": sql(" = "), "ge": sql(" >= "), "lt": sql(" < ")}

Row: TypeAlias = asyncpg.Record


@dataclass(frozen=True)
class ListArgs:
    """What a client asked of one list: page size, cursor, filters and direction. Hashable, so that
    equal arguments on many parents share one DataLoader and one statement."""

    first: int
    after: str | None = None
    filters: tuple[tuple[str, Any], ...] = ()
    newest_first: bool | None = None

    def descending(self, kind: ResourceKind) -> bool:
        return kind.newest_first if self.newest_first is None else self.newest_first

    @classmethod
    def of(cls, first: int, after: str | None, filter: object = None, order: Enum | None = None) -> ListArgs:
        """List arguments from a connection field's arguments: the filter input's fields that were given
        (enum members as their stored codes), and the order (`newest_first` or `oldest_first`)."""
        filters: list[tuple[str, Any]] = []
        if filter is not None:
            for name, item in vars(filter).items():
                if item is None or item is UNSET:
                    continue
                filters.append((name, item.value if isinstance(item, Enum) else item))
        newest = None if order is None else order.value == "newest_first"
        return cls(first=first, after=after, filters=tuple(filters), newest_first=newest)


@dataclass(frozen=True)
class Page:
    """One page of a keyset-paginated list: (cursor, row) pairs and whether more follow."""

    items: list[tuple[str, Row]]
    has_next_page: bool


def encode_cursor(kind: ResourceKind, row: Row) -> str:
    """An opaque cursor holding the row's sort key."""
    key = [kind.name] + [_cursor_value(row[column]) for column, _ in kind.order]
    return base64.urlsafe_b64encode(orjson.dumps(["v1", *key])).decode().rstrip("=")


def _cursor_value(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def decode_cursor(kind: ResourceKind, cursor: str) -> list[Any]:
    """The sort key inside a cursor this API issued for this kind; anything else is bad input."""
    bad = BadUserInput("`after` is not a cursor issued by this API for this list", argument="after")
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise bad from exc
    if (
        not isinstance(value, list)
        or len(value) != len(kind.order) + 2
        or value[:2] != ["v1", kind.name]
        or not all(isinstance(v, str) and "\x00" not in v and len(v) <= 200 for v in value)
    ):
        raise bad
    try:
        return [_parse_key(raw, pg_type) for raw, (_, pg_type) in zip(value[2:], kind.order, strict=True)]
    except ValueError as exc:
        raise bad from exc


def _parse_key(raw: str, pg_type: str) -> Any:
    if pg_type == "timestamptz":
        return datetime.fromisoformat(raw)
    if pg_type == "date":
        return date.fromisoformat(raw)
    if pg_type == "uuid":
        return str(uuid.UUID(raw))
    if pg_type == "bigint":
        return int(raw)
    return raw


def parse_id(raw: str, what: str) -> uuid.UUID:
    """A resource id from client input."""
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError) as exc:
        raise BadUserInput(f"{what} id {raw!r} is not a valid id") from exc


_PHANTOM_SCALARS: dict[str, Any] = {"boolean": False, "integer": 0}


def global_id_of(type_name: str, raw: object) -> str:
    """The API's global id of a resource (Relay convention: base64 of `<Type>:<id>`), for code that names one
    outside a resolver (the CLI, the console)."""
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


def parse_global_id(value: str, expected: ResourceKind | None = None) -> tuple[ResourceKind, str]:
    """The kind and journal id behind a global id; a foreign or malformed id is bad input."""
    try:
        gid = relay.GlobalID.from_id(value)
    except (relay.GlobalIDValueError, ValueError) as exc:
        raise BadUserInput(f"{value!r} is not an id issued by this API", argument="id") from exc
    kind = KINDS.get(gid.type_name)
    if kind is None and expected is not None and gid.type_name == expected.type_name:
        kind = expected
    if kind is None:
        raise BadUserInput(f"{value!r} is not an id issued by this API", argument="id")
    if expected is not None and kind is not expected:
        raise BadUserInput(f"{value!r} is not a {expected.type_name} id", argument="id")
    try:
        uuid.UUID(gid.node_id)
    except ValueError as exc:
        raise BadUserInput(f"{value!r} is not an id issued by this API", argument="id") from exc
    return kind, gid.node_id


def scope_select(kind: ResourceKind) -> Sql:
    """SELECT-list entry for a row's policy scope, when the kind has one."""
    return sql(", ", kind.scope_sql, " AS _scope") if kind.scope_sql else EMPTY


def attributes_of(kind: ResourceKind, row: Row) -> dict[str, Any]:
    """A row's policy attributes as Cerbos gets them, from the `attr_<name>` columns `attribute_select` made."""
    return {
        name: list(row[f"attr_{name}"]) if isinstance(attr, SetOf) else row[f"attr_{name}"]
        for name, attr in kind.attributes.items()
    }


def rows_by_id(kind: ResourceKind, ids: list[str], extra: Sql = EMPTY, *, for_policy: bool = True) -> Sql:
    """SELECT of rows by id with their policy attributes and scope (`extra`: more SELECT-list entries); only
    the rows' own columns when they are not for a decision."""
    selected = [kind.select_list()]
    if kind.attributes and for_policy:
        selected.append(kind.attribute_select())
    return sql(
        "SELECT ",
        join(selected),
        extra,
        scope_select(kind) if for_policy else EMPTY,
        " FROM ",
        kind.table_sql,
        " WHERE ",
        kind.col(kind.id_column),
        " = ANY(",
        value(ids, kind.id_type + "[]"),
        ")",
    )


async def fetch(pool: asyncpg.Pool | asyncpg.Connection | Reads, statement: Sql) -> list[Row]:
    """The rows of a statement built from fragments."""
    text, values = statement.render()
    return list(await pool.fetch(text, *values))


def _rows(kind: ResourceKind, where: list[Sql], order: Sql, limit: int | None = None) -> Sql:
    """A kind's rows that meet every condition of `where`, in `order`, at most `limit` of them."""
    return sql(
        "SELECT ",
        kind.select_list(),
        " FROM ",
        kind.table_sql,
        " WHERE ",
        join(where, " AND "),
        " ORDER BY ",
        order,
        EMPTY if limit is None else sql(" LIMIT ", value(limit, "integer")),
    )


def phantom_attributes(kind: ResourceKind, rid: str) -> dict[str, Any]:
    """Attributes of a resource that has no relations to anyone: what a missing id is checked as."""
    phantom: dict[str, Any] = {
        name: [] if isinstance(attr, SetOf) else _PHANTOM_SCALARS.get(attr.pg_type, "")
        for name, attr in kind.attributes.items()
    }
    phantom.update(kind.phantom)
    if kind.patient_column == "id":
        phantom["patient_id"] = rid
    return phantom


class StalePrincipal(Exception):
    """The principal kept from an earlier request is no longer what the journal says (its epoch moved)."""


class Store:
    """Per-request door to the journal for one principal; its audit trail is flushed by the view."""

    def __init__(
        self, pool: Reads, authorizer: Authorizer, principal: Principal, audit: AuditTrail, max_page_size: int
    ) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit
        self._max_page_size = max_page_size
        self._filters: dict[tuple[str, str], SqlFilter] = {}
        self._denied_lists: set[str] = set()

    @property
    def principal(self) -> Principal:
        return self._principal

    @property
    def max_page_size(self) -> int:
        """The most items one page may hold."""
        return self._max_page_size

    def audit_mark(self) -> tuple[int, frozenset[str]]:
        """Where the request's audit trail stands, to rewind to when what was read since is not shown."""
        return self._audit.mark(), frozenset(self._denied_lists)

    def audit_rewind(self, mark: tuple[int, frozenset[str]]) -> None:
        """Forget the audit records since `mark`: the reads behind them will not be answered (they are read
        and audited again on another path)."""
        self._audit.rewind(mark[0])
        self._denied_lists = set(mark[1])

    async def _filter(self, kind: ResourceKind, action: str) -> SqlFilter:
        key = (kind.name, action)
        if key not in self._filters:
            try:
                self._filters[key] = await self._authorizer.plan(self._principal, kind, action)
            except UntranslatablePlan as exc:
                self._audit.record(AuditRecord(None, kind.name, (), action, False, "UNENFORCEABLE_POLICY"))
                raise Forbidden(
                    f"the access policy for {kind.name} lists cannot be enforced in the database; the list is denied",
                    reason="UNENFORCEABLE_POLICY",
                    policyVersion=self._authorizer.policy_version,
                ) from exc
        return self._filters[key]

    def _audit_rows(self, kind: ResourceKind, rows: Sequence[Row], reason: str, action: str = SEARCH) -> None:
        if kind.patient_column is None:
            return
        emergency = self._principal.emergency_patient_ids
        for row in rows:
            rid = str(row["id"])
            patient = str(row[kind.patient_column]) if row[kind.patient_column] is not None else None
            self._audit.record(
                AuditRecord(
                    patient, kind.name, (rid,), action, True, reason, patient in emergency if patient else False
                )
            )

    async def by_ids(self, kind: ResourceKind, ids: Sequence[str]) -> list[Row | Exception]:
        """Resources by id for a DataLoader: each a row, or the error that explains why not."""
        results: dict[str, Row | Exception] = {}
        wanted: list[str] = []
        for raw in ids:
            try:
                wanted.append(str(parse_id(raw, kind.type_name)))
            except BadUserInput as exc:
                results[raw] = exc
        rows = await fetch(self._pool, rows_by_id(kind, wanted))
        found = {str(r["id"]): r for r in rows}
        unique = list(dict.fromkeys(wanted))
        decisions = await self._authorizer.check(
            self._principal,
            kind,
            READ,
            [
                (rid, attributes_of(kind, found[rid]) if rid in found else phantom_attributes(kind, rid))
                for rid in unique
            ],
            [self._scope_of(kind, found.get(rid)) for rid in unique],
        )
        for rid, decision in zip(unique, decisions, strict=True):
            row = found.get(rid)
            if kind.patient_column is not None:
                patient = (
                    str(row[kind.patient_column]) if row is not None else (rid if kind.patient_column == "id" else None)
                )
                self._audit.record(
                    AuditRecord(
                        patient,
                        kind.name,
                        (rid,),
                        READ,
                        decision.allowed,
                        decision.reason,
                        decision.reason == "EMERGENCY_GRANT",
                    )
                )
            if not decision.allowed:
                results[rid] = Forbidden(
                    f"no {kind.type_name} with this id is visible to you",
                    reason=decision.reason,
                    policyVersion=self._authorizer.policy_version,
                )
            elif row is None:
                results[rid] = NotFound(f"no {kind.type_name} with this id exists")
            else:
                results[rid] = row
        return [results[raw] if raw in results else results[str(uuid.UUID(raw))] for raw in ids]

    def _scope_of(self, kind: ResourceKind, row: Row | None) -> str | None:
        """A row's policy scope; a missing row is checked in the caller's own municipality, so that local
        rules answer a probe for a made-up id as they would for a hidden one."""
        if not kind.scope_sql:
            return None
        if row is not None:
            return str(row["_scope"]) if row["_scope"] else None
        return self._principal.home_scopes[0] if self._principal.home_scopes else None

    async def permitted(self, kind: ResourceKind, action: str, ids: Sequence[str]) -> list[bool | Exception]:
        """Whether a field-level action (e.g. `read_text`) is allowed on rows the caller already has:
        True, or the Forbidden error to show in the field's place. One statement and one PDP call."""
        patient_of = kind.col(kind.patient_column or kind.id_column)
        rows = await fetch(self._pool, rows_by_id(kind, list(ids), sql(", ", patient_of, " AS _patient")))
        found = {str(r["id"]): r for r in rows}
        present = [i for i in ids if i in found]
        decisions = await self._authorizer.check(
            self._principal,
            kind,
            action,
            [(i, attributes_of(kind, found[i])) for i in present],
            [found[i]["_scope"] if kind.scope_sql else None for i in present],
        )
        outcome: dict[str, bool | Exception] = {}
        for rid, decision in zip(present, decisions, strict=True):
            patient = str(found[rid]["_patient"])
            self._audit.record(
                AuditRecord(
                    patient,
                    kind.name,
                    (rid,),
                    action,
                    decision.allowed,
                    decision.reason,
                    decision.reason == "EMERGENCY_GRANT",
                )
            )
            outcome[rid] = (
                True
                if decision.allowed
                else Forbidden(
                    f"you may not {action.replace('_', ' ')} of this {kind.type_name}",
                    reason=decision.reason,
                    policyVersion=self._authorizer.policy_version,
                )
            )
        return [outcome.get(i, NotFound(f"no {kind.type_name} with this id exists")) for i in ids]

    async def denial_report(self, start: datetime, end: datetime) -> list[Row]:
        """Denials over a period by app, vendor, kind and reason (information-blocking report)."""
        [decision] = await self._authorizer.check(
            self._principal,
            AUDIT_EVENT,
            "report",
            [("denial-report", {"patient_id": "", "patient_age": 0, "blocked_for_guardians": False})],
        )
        self._audit.record(AuditRecord(None, AUDIT_EVENT.name, (), "report", decision.allowed, decision.reason))
        if not decision.allowed:
            raise Forbidden(
                "the denial report is for policy admins and compliance officers",
                reason=decision.reason,
                policyVersion=self._authorizer.policy_version,
            )
        return list(
            await self._pool.fetch(
                """SELECT ae.client_id, a.vendor_org_number, ae.resource_kind, ae.reason, count(*)::int AS denials
                 FROM audit_event ae LEFT JOIN app a ON a.client_id = ae.client_id
                WHERE ae.decision = 'DENY' AND ae.recorded_at >= $1 AND ae.recorded_at < $2
                GROUP BY 1, 2, 3, 4 ORDER BY denials DESC, 1, 3, 4 LIMIT 500""",
                start,
                end,
            )
        )

    def _check_args(self, kind: ResourceKind, args: ListArgs) -> None:
        if args.first < 1 or args.first > self._max_page_size:
            raise BadUserInput(
                f"`first` must be between 1 and {self._max_page_size}, got {args.first}", argument="first"
            )
        ranges: dict[str, dict[str, Any]] = {}
        filters = kind.filter_map
        for name, item in args.filters:
            spec = filters.get(name)
            if spec is None:
                raise BadUserInput(f"{kind.type_name} lists cannot be filtered by {name}", argument="filter")
            self._filter_value(spec, item)
            if spec.op in {"ge", "lt"}:
                ranges.setdefault(spec.column, {})[spec.op] = item
        for column, bounds in ranges.items():
            if "ge" in bounds and "lt" in bounds and bounds["ge"] >= bounds["lt"]:
                raise BadUserInput(f"the {column} range is empty: its start is not before its end", argument="filter")

    @staticmethod
    def _filter_value(spec: Filter, item: Any) -> Any:
        """A filter's value as SQL compares it: a global id of the filter's target kind becomes its journal id."""
        if spec.target is None:
            return item
        try:
            gid = relay.GlobalID.from_id(str(item))
            if gid.type_name != spec.target:
                raise ValueError(gid.type_name)
            return uuid.UUID(gid.node_id)
        except (relay.GlobalIDValueError, ValueError) as exc:
            raise BadUserInput(f"{camel(spec.name)} must be a {spec.target} id", argument="filter") from exc

    def _where(self, kind: ResourceKind, sql_filter: SqlFilter, args: ListArgs) -> list[Sql]:
        where = [sql_filter.where]
        filters = kind.filter_map
        included = {name for name, item in args.filters if filters[name].op == "include" and item}
        for spec in kind.filters:
            if spec.op == "include" and spec.name not in included:
                where.append(sql(kind.col(spec.column), " IS NULL"))
        for name, item in args.filters:
            spec = filters[name]
            column = kind.col(spec.column)
            if spec.op == "include":
                continue
            if spec.op == "set":
                where.append(sql("((", column, " IS NOT NULL) = ", value(item, "boolean"), ")"))
            elif spec.op == "has":
                where.append(sql("(", value(item, spec.pg_type), " = ANY(", column, "))"))
            elif spec.op == "prefix":
                escaped = str(item).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                where.append(sql("lower(", column, ") LIKE ", value(escaped.lower() + "%", "text")))
            else:
                where.append(sql(column, _SQL_OP[spec.op], value(self._filter_value(spec, item), spec.pg_type)))
        if args.after is not None:
            key = decode_cursor(kind, args.after)
            columns = join(kind.col(column) for column, _ in kind.order)
            placeholders = join(value(v, t) for v, (_, t) in zip(key, kind.order, strict=True))
            where.append(
                sql("(", columns, ") ", sql("<") if args.descending(kind) else sql(">"), " (", placeholders, ")")
            )
        return where

    def _order_by(self, kind: ResourceKind, args: ListArgs) -> Sql:
        direction = sql(" DESC") if args.descending(kind) else sql(" ASC")
        return join(sql(kind.col(column), direction) for column, _ in kind.order)

    async def list_filter(self, kind: ResourceKind, *, audit_denial: bool = True) -> SqlFilter | None:
        """The SQL filter of the rows of `kind` the principal may search, or None when it may see none (a
        denied list of patient data is audited once per request, unless `audit_denial` is off)."""
        sql_filter = await self._filter(kind, SEARCH)
        if sql_filter.kind == "none":
            if audit_denial and kind.name not in self._denied_lists and kind.is_patient_data:
                self._denied_lists.add(kind.name)
                self._audit.record(AuditRecord(None, kind.name, (), SEARCH, False, sql_filter.reason))
            return None
        return sql_filter

    def _page(self, kind: ResourceKind, rows: Sequence[Row], first: int) -> Page:
        return Page([(encode_cursor(kind, r), r) for r in rows[:first]], len(rows) > first)

    async def page(self, kind: ResourceKind, args: ListArgs) -> Page:
        """A page of the resources of `kind` the principal may read."""
        self._check_args(kind, args)
        sql_filter = await self.list_filter(kind)
        if sql_filter is None:
            return Page([], False)
        where = self._where(kind, sql_filter, args)
        rows = await fetch(
            self._pool,
            _rows(kind, where, self._order_by(kind, args), args.first + 1),
        )
        page = self._page(kind, rows, args.first)
        self._audit_rows(kind, [row for _, row in page.items], sql_filter.reason)
        filters = kind.filter_map
        if not page.items and any(filters[name].identifies for name, _ in args.filters):
            self._audit.record(AuditRecord(None, kind.name, (), SEARCH, True, sql_filter.reason))
        return page

    async def of_patients(
        self, kind: ResourceKind, patient_ids: Sequence[uuid.UUID], since: datetime | None
    ) -> list[Row]:
        """Every resource of `kind` of these patients that the principal may search (changed since `since`,
        when given), audited as exported: one statement, for a Bulk Data export's batch of patients."""
        filters = (("last_updated_from", since),) if since is not None else ()
        args = ListArgs(first=1, filters=filters)
        sql_filter = await self.list_filter(kind)
        if sql_filter is None:
            return []
        patient = kind.col(kind.patient_column or kind.id_column)
        mine = sql(patient, " = ANY(", value([str(p) for p in patient_ids], "uuid[]"), ")")
        where = [*self._where(kind, sql_filter, args), mine]
        rows = await fetch(self._pool, _rows(kind, where, sql(patient, ", ", self._order_by(kind, args))))
        self._audit_rows(kind, rows, sql_filter.reason, EXPORT)
        return rows

    async def pages_by_parent(
        self, kind: ResourceKind, parent_column: str, parent_ids: Sequence[uuid.UUID], args: ListArgs
    ) -> list[Page]:
        """For each parent id, a page of its `kind` resources the principal may read: one statement."""
        self._check_args(kind, args)
        sql_filter = await self.list_filter(kind)
        if sql_filter is None:
            return [Page([], False) for _ in parent_ids]
        where = [*self._where(kind, sql_filter, args), sql(kind.col(parent_column), " = k.parent")]
        rows = await fetch(
            self._pool,
            sql(
                "SELECT k.parent AS _parent, t.* FROM unnest(",
                value([str(p) for p in parent_ids], "uuid[]"),
                ") AS k(parent) CROSS JOIN LATERAL (",
                _rows(kind, where, self._order_by(kind, args), args.first + 1),
                ") AS t",
            ),
        )
        grouped: dict[uuid.UUID, list[Row]] = {}
        for row in rows:
            grouped.setdefault(row["_parent"], []).append(row)
        pages = [self._page(kind, grouped.get(parent, []), args.first) for parent in parent_ids]
        self._audit_rows(kind, [row for page in pages for _, row in page.items], sql_filter.reason)
        return pages

    async def list_json(self, selection: ListSelection) -> str:
        """A top-level list and all lists nested in it as the JSON of the answer, built by PostgreSQL in
        one statement: every level filtered by its own query plan exactly as `page` and `pages_by_parent`
        filter it, every row that leaves audited as theirs are. Raises BadUserInput like they do."""
        filters = await self._nested_filters(selection)
        statement = compile_list(selection, self._where_of(filters, None), self._level_order)
        row = await self._fetch_json(statement)
        self._audit_json(row["audit"], filters, None)
        return str(row["data"])

    async def item_json(self, item: ItemSelection) -> str | None:
        """A resource by id and all lists nested in it as the JSON of the answer, in one statement, decided
        by the same query plan for `read` that would filter a list of it (no PDP call per item), the nested
        lists as `list_json` filters them. None when no row passes: it does not exist, policy hides it, or
        the plan cannot be enforced in SQL; `by_ids` then gives the exact error and its reason."""
        kind = item.kind
        try:
            own = await self._authorizer.plan(self._principal, kind, READ)
        except UntranslatablePlan:
            return None
        if own.kind == "none":
            return None
        level = item.as_level(ListArgs(first=1))
        filters = await self._nested_filters(level, skip_root=True)
        root_where = [own.where, sql(kind.col(kind.id_column), " = ", value(item.id, "uuid"))]
        where_of = self._where_of(filters, (level, root_where))
        row = await self._fetch_json(compile_item(level, where_of, self._level_order))
        if row["data"] is None:
            return None
        self._audit_json(row["audit"], filters, own.reason)
        return str(row["data"])

    async def _fetch_json(self, statement: Sql) -> Row:
        """Run a JSON statement; a kept principal must be as current as the statement's snapshot, or
        nothing it read counts (StalePrincipal: look the principal up again and ask again)."""
        text, values = statement.render()
        row = await self._pool.fetchrow(text, *values)
        assert row is not None, "an aggregate returns one row"
        if self._principal.kept and row["epoch"] != self._principal.epoch:
            raise StalePrincipal
        return row

    async def _nested_filters(
        self, selection: ListSelection, *, skip_root: bool = False
    ) -> dict[str, SqlFilter | None]:
        """The search filter of every kind listed in a selection (the root's too, unless `skip_root`)."""
        filters: dict[str, SqlFilter | None] = {}
        pending = selection.children() if skip_root else [selection]
        while pending:
            level = pending.pop()
            self._check_args(level.kind, level.args)
            if level.kind.name not in filters:
                filters[level.kind.name] = await self.list_filter(level.kind)
            pending.extend(level.children())
        return filters

    def _where_of(
        self, filters: dict[str, SqlFilter | None], root: tuple[ListSelection, list[Sql]] | None
    ) -> Callable[[ListSelection, str | None], list[Sql]]:
        """Each level's WHERE: its kind's search filter (over the patient context row, when it has one), the
        client's filters and cursor; the `root` level, when given, has its own."""

        def where_of(level: ListSelection, context: str | None) -> list[Sql]:
            if root is not None and level is root[0]:
                return root[1]
            sql_filter = filters[level.kind.name]
            if sql_filter is None:
                return [sql("FALSE")]
            if context is not None:
                sql_filter = sql_filter.in_patient_context(level.kind.context_attributes, context)
            return self._where(level.kind, sql_filter, level.args)

        return where_of

    def _level_order(self, level: ListSelection) -> Sql:
        return self._order_by(level.kind, level.args)

    def _audit_json(self, audit: str, filters: dict[str, SqlFilter | None], root_read: str | None) -> None:
        """Audit what a JSON statement returned: [kind, patient, ids, level] per kind and patient, searched
        rows with their filter's reason; level 0 is a root item's `read`, with `root_read` its reason."""
        emergency = self._principal.emergency_patient_ids
        for kind_name, patient, ids, level in orjson.loads(audit):
            if root_read is not None and level == 0:
                action, reason = READ, root_read
            else:
                sql_filter = filters[kind_name]
                assert sql_filter is not None
                action, reason = SEARCH, sql_filter.reason
            self._audit.record(AuditRecord(patient, kind_name, tuple(ids), action, True, reason, patient in emergency))

    async def versions(self, kind: ResourceKind, rid: str, first: int, before: int | None) -> tuple[list[Row], bool]:
        """The versions of a resource the caller has read (the current one and those kept before it), newest
        first, each with `_version`, `_change`, `_recorded_at`, `_by` and `_app`: `first` of them below
        version `before`, and whether more follow."""
        if first < 1 or first > self._max_page_size:
            raise BadUserInput(f"`first` must be between 1 and {self._max_page_size}, got {first}", argument="first")
        table, rid_value = ident(kind.table), value(rid, "uuid")
        below = sql(" WHERE v._version < ", value(before, "integer")) if before is not None else EMPTY
        rows = await fetch(
            self._pool,
            sql(
                "SELECT v.* FROM (SELECT t.version AS _version, t.last_change AS _change, "
                "t.last_updated AS _recorded_at, t.updated_by AS _by, t.updated_app AS _app, t.* FROM ",
                table,
                " t WHERE t.id = ",
                rid_value,
                " UNION ALL SELECT h.version, h.change, h.recorded_at, h.recorded_by, h.recorded_app, "
                "(jsonb_populate_record(NULL::",
                table,
                ", h.data)).* FROM resource_version h WHERE h.resource_id = ",
                rid_value,
                ") AS v",
                below,
                " ORDER BY v._version DESC LIMIT ",
                value(first + 1, "integer"),
            ),
        )
        return rows[:first], len(rows) > first

    async def count(self, kind: ResourceKind, args: ListArgs) -> int:
        """How many resources of `kind` match the filters and may be read (hidden rows are not counted)."""
        counts = await self.counts_by_parent(kind, None, [None], args)
        return counts[0]

    async def counts_by_parent(
        self, kind: ResourceKind, parent_column: str | None, parent_ids: Sequence[uuid.UUID | None], args: ListArgs
    ) -> list[int]:
        """For each parent, how many of its `kind` resources match and may be read: one statement."""
        sql_filter = await self.list_filter(kind)
        if sql_filter is None:
            return [0 for _ in parent_ids]
        where = join(self._where(kind, sql_filter, ListArgs(first=1, filters=args.filters)), " AND ")
        if parent_column is None:
            [row] = await fetch(self._pool, sql("SELECT count(*) AS n FROM ", kind.table_sql, " WHERE ", where))
            return [int(row["n"])]
        parent = kind.col(parent_column)
        rows = await fetch(
            self._pool,
            sql(
                "SELECT ",
                parent,
                " AS parent, count(*) AS n FROM ",
                kind.table_sql,
                " WHERE ",
                parent,
                " = ANY(",
                value([str(p) for p in parent_ids], "uuid[]"),
                ") AND ",
                where,
                " GROUP BY ",
                parent,
            ),
        )
        counts = {r["parent"]: int(r["n"]) for r in rows}
        return [counts.get(parent_id, 0) for parent_id in parent_ids]
