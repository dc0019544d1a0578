"""The change feed: the journal's committed changes, in commit order, as the caller may read them now.

Every committed write leaves a change event (the outbox, migration 0014), numbered at commit so that the
numbers follow commit order: reading `seq > position` never skips an event that committed late. A page
joins the events to the current rows of their kinds and keeps only rows the principal's query plan for
`search` admits, inside SQL, exactly as lists are filtered; so an event never tells anyone more than a
read of the same row would now. Every event handed out is audited like a read of its row, with the
channel (feed, subscription or webhook) as the action.

A page scans at most `scan_window` sequence numbers, so a caller who may see few events still moves on:
its end position can lie past the last event it was shown. Positions are sequence numbers; cursors wrap
them as the API's other cursors do.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import orjson
from strawberry import relay

from gateway.audit import AuditRecord, AuditTrail
from gateway.authz import SqlFilter
from gateway.declare import ResourceKind
from gateway.errors import BadUserInput
from gateway.policy_attributes import ACTIVE_CARE_RELATION
from gateway.resources import APP, KINDS, WEBHOOK_ENDPOINT
from gateway.sql import Sql, join, sql, value
from gateway.store import Row, Store, fetch, rows_by_id

# Every kind whose writes are changes, by Cerbos kind name (the audit log is not one).
FEED_KINDS: dict[str, ResourceKind] = {
    kind.name: kind for kind in (*KINDS.values(), APP, WEBHOOK_ENDPOINT) if kind.name != "audit_event"
}
ACTIONS = ("created", "updated", "entered-in-error")
_CURSOR_TAG = ["v1", "change"]


def encode_position(seq: int) -> str:
    """The opaque cursor of a position in the feed."""
    return base64.urlsafe_b64encode(orjson.dumps([*_CURSOR_TAG, seq])).decode().rstrip("=")


def decode_position(cursor: str, argument: str = "after") -> int:
    """The position inside a cursor this API issued for the change feed; anything else is bad input."""
    bad = BadUserInput(f"`{argument}` is not a change feed cursor issued by this API", argument=argument)
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise bad from exc
    if not isinstance(decoded, list) or len(decoded) != 3 or decoded[:2] != _CURSOR_TAG:
        raise bad
    seq = decoded[2]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise bad
    return seq


def public_id(kind: ResourceKind, resource_id: str) -> str:
    """The id the API shows for a changed resource: its global id, or an app's client id."""
    return resource_id if kind is APP else str(relay.GlobalID(kind.type_name, resource_id))


@dataclass(frozen=True)
class ChangeItem:
    """One change the caller may see: which resource, what happened, and the resource as it is now."""

    seq: int
    kind: ResourceKind
    resource_id: str
    patient_id: str | None
    action: str
    version: int
    committed_at: datetime
    row: Row | None

    @property
    def cursor(self) -> str:
        return encode_position(self.seq)

    @property
    def public_id(self) -> str:
        return public_id(self.kind, self.resource_id)


@dataclass(frozen=True)
class ChangePage:
    """Changes after a position, and the position to continue from (past every event scanned)."""

    items: list[ChangeItem]
    end: int
    has_next_page: bool
    # The audit reason of the rows of each kind: how the query plan admitted them.
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def end_cursor(self) -> str:
        return encode_position(self.end)


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes a reader follows: kinds (None for every kind), one patient, or the patients in a
    unit's active care."""

    kinds: tuple[ResourceKind, ...] | None = None
    patient_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None

    def wants_any(self, batch: dict[str, set[str | None]]) -> bool:
        """Whether any event of a batch (patients by kind name) may pass, before authorization; a unit
        filter cannot be told from the event alone, so it passes every event about a patient."""
        names = None if self.kinds is None else {k.name for k in self.kinds}
        for name, patients in batch.items():
            if names is not None and name not in names:
                continue
            if self.patient_id is not None:
                if str(self.patient_id) in patients:
                    return True
            elif self.unit_id is not None:
                if patients - {None}:
                    return True
            else:
                return True
        return False

    @property
    def key(self) -> tuple[tuple[str, ...] | None, str | None, str | None]:
        """What the filter selects, as a value (kinds are not hashable)."""
        kinds = None if self.kinds is None else tuple(sorted(k.name for k in self.kinds))
        patient = None if self.patient_id is None else str(self.patient_id)
        return kinds, patient, None if self.unit_id is None else str(self.unit_id)

    def selected_kinds(self) -> list[ResourceKind]:
        kinds = list(FEED_KINDS.values()) if self.kinds is None else list(self.kinds)
        if self.patient_id is not None or self.unit_id is not None:
            kinds = [k for k in kinds if k.patient_column is not None]
        return kinds


async def head(pool: asyncpg.Pool | asyncpg.Connection) -> int:
    """The newest committed position: every event at or below it is visible."""
    return int(await pool.fetchval("SELECT last_seq FROM change_head WHERE id = 1"))


class ChangeFeed:
    """Pages of changes for one principal, through its store (query plans) and audit trail."""

    def __init__(self, pool: asyncpg.Pool, store: Store, audit: AuditTrail, scan_window: int) -> None:
        self._pool = pool
        self._store = store
        self._audit = audit
        self._window = scan_window

    async def page(
        self,
        wanted: ChangeFilter,
        after: int,
        first: int,
        *,
        channel: str | None,
        upto: int | None = None,
        audit_denials: bool = True,
    ) -> ChangePage:
        """Up to `first` changes after position `after` and up to `upto` (the newest committed position when
        not given) that the principal may read now, oldest first. `channel` names the audit action (None:
        the caller audits, with `audit`, when it hands the changes on); a kind asked for by name that the
        principal may not search at all is audited as a denied list, unless `audit_denials` is off."""
        newest = await head(self._pool) if upto is None else upto
        limit = min(after + self._window, newest)
        if limit <= after:
            return ChangePage([], after, False)
        explicit = wanted.kinds is not None and audit_denials
        branches: list[Sql] = []
        filters: dict[str, SqlFilter] = {}
        for kind in wanted.selected_kinds():
            sql_filter = await self._store.list_filter(kind, audit_denial=explicit)
            if sql_filter is None:
                continue
            filters[kind.name] = sql_filter
            branches.append(self._branch(kind, sql_filter, wanted, after, limit, first))
        if not branches:
            return ChangePage([], limit, limit < newest)
        events = await fetch(
            self._pool,
            sql(
                "SELECT * FROM (",
                join(branches, " UNION ALL "),
                ") AS c ORDER BY c.seq LIMIT ",
                value(first + 1, "integer"),
            ),
        )
        full = len(events) > first
        events = events[:first]
        end = events[-1]["seq"] if full else limit
        page = ChangePage(
            await self._with_rows(events), end, full or end < newest, {name: f.reason for name, f in filters.items()}
        )
        if channel is not None:
            self.audit(page, channel)
        return page

    def _branch(
        self, kind: ResourceKind, sql_filter: SqlFilter, wanted: ChangeFilter, after: int, limit: int, first: int
    ) -> Sql:
        where = [
            sql("chg.resource_kind = ", value(kind.name, "text")),
            sql("chg.seq > ", value(after, "bigint")),
            sql("chg.seq <= ", value(limit, "bigint")),
            sql_filter.where,
        ]
        if wanted.patient_id is not None:
            where.append(sql("chg.patient_id = ", value(str(wanted.patient_id), "uuid")))
        if wanted.unit_id is not None:
            where.append(
                sql(
                    "EXISTS (SELECT 1 FROM care_relation cr WHERE cr.patient_id = chg.patient_id AND "
                    "cr.organization_id = ",
                    value(str(wanted.unit_id), "uuid"),
                    " AND ",
                    ACTIVE_CARE_RELATION,
                    ")",
                )
            )
        resource_id = sql("chg.resource_id") if kind.id_type == "text" else sql("chg.resource_id::", kind.id_type)
        return sql(
            "(SELECT chg.seq, chg.resource_kind, chg.resource_id, chg.patient_id, chg.action, chg.version, "
            "chg.committed_at FROM change_event chg JOIN ",
            kind.table_sql,
            " ON ",
            kind.col(kind.id_column),
            " = ",
            resource_id,
            " WHERE ",
            join(where, " AND "),
            " ORDER BY chg.seq LIMIT ",
            value(first + 1, "integer"),
            ")",
        )

    async def _with_rows(self, events: Sequence[Row]) -> list[ChangeItem]:
        """The events with their resources' current rows (one statement per kind on the page)."""
        ids: dict[str, list[str]] = {}
        for event in events:
            ids.setdefault(event["resource_kind"], []).append(event["resource_id"])
        rows: dict[tuple[str, str], Row] = {}
        for name, kind_ids in ids.items():
            kind = FEED_KINDS[name]
            found = await fetch(self._pool, rows_by_id(kind, list(dict.fromkeys(kind_ids)), for_policy=False))
            rows.update({(name, str(row[kind.id_column])): row for row in found})
        return [
            ChangeItem(
                seq=event["seq"],
                kind=FEED_KINDS[event["resource_kind"]],
                resource_id=event["resource_id"],
                patient_id=str(event["patient_id"]) if event["patient_id"] else None,
                action=event["action"],
                version=event["version"],
                committed_at=event["committed_at"],
                row=rows.get((event["resource_kind"], event["resource_id"])),
            )
            for event in events
        ]

    def audit(self, page: ChangePage, channel: str) -> None:
        """Record each change of a page handed out as a read of its resource through `channel`."""
        emergency = self._store.principal.emergency_patient_ids
        for item in page.items:
            if item.patient_id is None:
                continue
            self._audit.record(
                AuditRecord(
                    item.patient_id,
                    item.kind.name,
                    (item.resource_id,),
                    channel,
                    True,
                    page.reasons.get(item.kind.name, "PLAN_CONDITION"),
                    item.patient_id in emergency,
                )
            )
