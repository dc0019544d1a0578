"""The app registry: which third-party apps may call the API, with which scopes.

Vendors register apps (pending); policy admins approve, suspend, reinstate or revoke them. Every
read and decision is authorized by Cerbos (resource kind `app`) and audited like patient data. The
gateway checks the calling app's status on every request through `AppStatus`, cached for a couple of
seconds and forgotten at once when this process changes it.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from strawberry.dataloader import DataLoader

from gateway.audit import AuditRecord, AuditTrail
from gateway.auth import Principal
from gateway.authz import Authorizer
from gateway.errors import BadUserInput, Forbidden, NotFound, Unauthenticated
from gateway.resources import APP, KINDS
from gateway.scopes import InvalidScope, parse_scopes
from gateway.sql import Sql, ident, join, sql, value
from gateway.store import Row, fetch
from gateway.trusted_documents import checked_document
from gateway.write_input import check_text
from gateway.write_path import WriteTransaction

MAX_DOCUMENTS_AT_ONCE = 500
MAX_BUDGET = 1_000_000_000
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,62}")
TRANSITIONS = {
    "approve": {"pending", "suspended"},
    "suspend": {"approved"},
    "revoke": {"pending", "approved", "suspended"},
}
OUTCOME = {"approve": "approved", "suspend": "suspended", "revoke": "revoked"}
_SELECT = sql("SELECT ", APP.select_list(), " FROM app a")


@dataclass(frozen=True)
class AppLimits:
    """The budgets a policy admin set when approving an app; None where the gateway's defaults apply."""

    requests_per_minute: int | None = None
    max_cost_per_request: int | None = None
    cost_per_minute: int | None = None


class AppStatus:
    """Whether a client id may call the API now, and its budgets; a short cache keeps this off the hot path."""

    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float = 2.0) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[str | None, AppLimits, float]] = {}

    async def _entry(self, client_id: str, fresh: bool) -> tuple[str | None, AppLimits, float]:
        cached = self._cache.get(client_id)
        if fresh or cached is None or time.monotonic() - cached[2] > self._ttl:
            row = await self._pool.fetchrow(
                "SELECT status, requests_per_minute, max_cost_per_request, cost_per_minute FROM app "
                "WHERE client_id = $1",
                client_id,
            )
            limits = AppLimits(*(row[1:] if row else ()))
            cached = (row["status"] if row else None, limits, time.monotonic())
            self._cache[client_id] = cached
        return cached

    async def require_approved(self, client_id: str, *, fresh: bool = False) -> None:
        """Refuse tokens of apps that are not registered and approved (`fresh`: ask the database now)."""
        status = (await self._entry(client_id, fresh))[0]
        if status is None:
            raise Unauthenticated(f"the app {client_id!r} is not registered with this gateway")
        if status != "approved":
            raise Unauthenticated(f"the app {client_id!r} is {status}; its tokens are not accepted")

    async def limits(self, client_id: str) -> AppLimits:
        """The app's budgets as its approval set them (cached with its status)."""
        return (await self._entry(client_id, False))[1]

    def forget(self, client_id: str) -> None:
        """Drop a cached status after this process changed it."""
        self._cache.pop(client_id, None)


@dataclass(frozen=True)
class Registration:
    """What a vendor asks for when registering an app."""

    client_id: str
    name: str
    vendor_org_number: str
    kind: str
    redirect_uris: tuple[str, ...]
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    scopes: tuple[str, ...]
    documents: tuple[str, ...] = ()


def validate(reg: Registration) -> None:
    """Bad registrations get one clear message each, before anything is written."""
    if not CLIENT_ID.fullmatch(reg.client_id):
        raise BadUserInput("clientId must be 3-63 lower-case letters, digits and dashes", argument="clientId")
    if not reg.name.strip() or len(reg.name) > 100:
        raise BadUserInput("name must be 1-100 characters", argument="name")
    if not re.fullmatch(r"[0-9]{9}", reg.vendor_org_number):
        raise BadUserInput("vendorOrgNumber must be a 9-digit organization number", argument="vendorOrgNumber")
    try:
        scopes = parse_scopes(list(reg.scopes), set(KINDS) - {"App"})
    except InvalidScope as exc:
        raise BadUserInput(f"invalid scope: {exc}", argument="scopes") from exc
    if not scopes:
        raise BadUserInput("an app must request at least one resource scope", argument="scopes")
    contexts = {s.context for s in scopes}
    if reg.kind == "backend-service":
        if contexts != {"system"}:
            raise BadUserInput("a backend service may only request system/ scopes", argument="scopes")
        if (reg.jwks is None) == (reg.jwks_uri is None):
            raise BadUserInput("a backend service needs exactly one of jwks or jwksUri", argument="jwks")
        if reg.jwks is not None:
            _public_keys(reg.jwks)
        if reg.jwks_uri is not None and urlsplit(reg.jwks_uri).scheme != "https":
            raise BadUserInput("jwksUri must be an https URL", argument="jwksUri")
    else:
        if "system" in contexts:
            raise BadUserInput("a user-facing app may not request system/ scopes", argument="scopes")
        if not reg.redirect_uris:
            raise BadUserInput("a user-facing app needs at least one redirect URI", argument="redirectUris")
        for uri in reg.redirect_uris:
            parts = urlsplit(uri)
            local = parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}
            if not (parts.scheme == "https" or local) or not parts.netloc or parts.fragment:
                raise BadUserInput(
                    f"redirect URI {uri!r} must be https (or http on loopback), without fragment",
                    argument="redirectUris",
                )


def _public_keys(jwks: dict[str, Any]) -> KeySet:
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise BadUserInput("jwks is not a valid JSON Web Key Set", argument="jwks") from exc
    if not keys.keys or any(k.is_private for k in keys.keys):
        raise BadUserInput("jwks must hold public keys only, at least one", argument="jwks")
    return keys


class Registry:
    """Per-request door to the app registry for one principal."""

    def __init__(
        self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, audit: AuditTrail, status: AppStatus
    ) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit
        self._status = status
        self._histories_loader: DataLoader[str, list[dict[str, Any]]] | None = None

    async def history(self, client_id: str) -> list[dict[str, Any]]:
        """The app's registration and the decisions on it, oldest first (for an app this principal was shown:
        its history is part of it). Who decided is shown where policy lets the reader see it (`read_deciders`)
        and to the decider; otherwise it is None. Batched: a page of apps asks once."""
        return await self._histories.load(client_id)

    @property
    def _histories(self) -> DataLoader[str, list[dict[str, Any]]]:
        """Made when first asked: most requests read no app's history."""
        if self._histories_loader is None:
            self._histories_loader = DataLoader(load_fn=self._load_histories)
        return self._histories_loader

    async def _load_histories(self, client_ids: list[str]) -> list[list[dict[str, Any]]]:
        rows = await fetch(
            self._pool,
            sql(
                "SELECT d.client_id, d.action, d.reason, d.decided_by, d.decided_at, a.status, a.kind, a.registered_by "
                "FROM app_decision d JOIN app a ON a.client_id = d.client_id WHERE d.client_id = ANY(",
                value(list(client_ids), "text[]"),
                ") ORDER BY d.decided_at, d.id",
            ),
        )
        apps = {row["client_id"]: self._attributes(row["client_id"], row) for row in rows}
        decisions = await self._authorizer.check(self._principal, APP, "read_deciders", list(apps.items()))
        shown = {client_id for client_id, decision in zip(apps, decisions, strict=True) if decision.allowed}
        by_app: dict[str, list[dict[str, Any]]] = {client_id: [] for client_id in client_ids}
        for row in rows:
            entry = dict(row)
            if row["client_id"] not in shown and row["decided_by"] != self._principal.id:
                entry["decided_by"] = None
            by_app[row["client_id"]].append(entry)
        return [by_app[client_id] for client_id in client_ids]

    async def _record_decision(self, tx: WriteTransaction, client_id: str, action: str, reason: str | None) -> None:
        """One entry of the app's history, in the transaction of the change it records."""
        if self._histories_loader is not None:
            with contextlib.suppress(KeyError):  # strawberry's clear() of a key never loaded
                self._histories_loader.clear(client_id)
        await tx.fetch(
            sql(
                "INSERT INTO app_decision (client_id, action, reason, decided_by) VALUES (",
                join(
                    [
                        value(client_id, "text"),
                        value(action, "text"),
                        value(reason, "text"),
                        value(self._principal.id, "text"),
                    ]
                ),
                ")",
            )
        )

    async def _decide(self, action: str, attrs: dict[str, Any]) -> None:
        [decision] = await self._authorizer.check(self._principal, APP, action, [(attrs["client_id"], attrs)])
        self._audit.record(
            AuditRecord(None, APP.name, (attrs["client_id"],), action, decision.allowed, decision.reason)
        )
        if not decision.allowed:
            raise Forbidden(
                f"you may not {action} this app", reason=decision.reason, policyVersion=self._authorizer.policy_version
            )

    def _transaction(self) -> WriteTransaction:
        return WriteTransaction(self._pool, self._authorizer, self._principal, self._audit)

    async def register(self, reg: Registration) -> asyncpg.Record:
        """Record a pending app for a policy admin to decide on."""
        validate(reg)
        attrs = {"client_id": reg.client_id, "status": "new", "kind": reg.kind, "registered_by": self._principal.id}
        async with self._transaction() as tx:
            await tx.decide_on(APP, "register", [(reg.client_id, attrs)])
            rows = await tx.fetch(
                sql(
                    "INSERT INTO app AS a (client_id, name, vendor_org_number, kind, redirect_uris, jwks, jwks_uri, "
                    "requested_scopes, status, registered_by) VALUES (",
                    join(
                        [
                            value(reg.client_id, "text"),
                            value(reg.name.strip(), "text"),
                            value(reg.vendor_org_number, "text"),
                            value(reg.kind, "text"),
                            value(list(reg.redirect_uris), "text[]"),
                            value(None if reg.jwks is None else orjson.dumps(reg.jwks).decode(), "jsonb"),
                            value(reg.jwks_uri, "text"),
                            value(list(reg.scopes), "text[]"),
                            sql("'pending'"),
                            value(self._principal.id, "text"),
                        ]
                    ),
                    ") ON CONFLICT (client_id) DO NOTHING RETURNING ",
                    APP.select_list(),
                )
            )
            if not rows:
                raise BadUserInput(f"an app with clientId {reg.client_id!r} is already registered", argument="clientId")
            await self._record_decision(tx, reg.client_id, "register", None)
            if reg.documents:
                await self._insert_documents(tx, reg.client_id, _checked_documents(list(reg.documents)))
        return rows[0]

    @staticmethod
    def _attributes(client_id: str, row: asyncpg.Record | None) -> dict[str, Any]:
        return {
            "client_id": client_id,
            "status": row["status"] if row else "new",
            "kind": row["kind"] if row else "user-facing",
            "registered_by": row["registered_by"] if row else "",
        }

    async def _row(self, client_id: str) -> asyncpg.Record:
        rows = await fetch(self._pool, sql(_SELECT, " WHERE a.client_id = ", value(client_id, "text")))
        row = rows[0] if rows else None
        await self._decide("read", self._attributes(client_id, row))
        if row is None:
            raise NotFound(f"no app {client_id!r} is registered")
        return row

    async def _decided_row(self, tx: WriteTransaction, client_id: str, action: str, lock: Sql) -> Row:
        """The app's row, locked, once policy allowed reading it and then `action` on it."""
        rows = await tx.fetch(sql(_SELECT, " WHERE a.client_id = ", value(client_id, "text"), lock))
        row = rows[0] if rows else None
        attrs = self._attributes(client_id, row)
        await tx.decide_on(APP, "read", [(client_id, attrs)])
        if row is None:
            raise NotFound(f"no app {client_id!r} is registered")
        await tx.decide_on(APP, action, [(client_id, attrs)])
        return row

    async def app(self, client_id: str) -> asyncpg.Record:
        """One app, if you registered it or are a policy admin."""
        return await self._row(client_id)

    async def decide(
        self,
        client_id: str,
        action: str,
        reason: str,
        acting_unit_id: str | None = None,
        limits: AppLimits | None = None,
    ) -> asyncpg.Record:
        """Approve, suspend or revoke an app, following the allowed transitions. Approving a backend service
        may name the unit it acts for (its data-processing agreement): its system scopes then reach that
        unit's patients as the unit's care relations allow. Approving may set the app's budgets (`limits`);
        those it leaves out keep the gateway's defaults."""
        text = check_text(reason, "reason", max_length=500)
        assert text is not None
        async with self._transaction() as tx:
            row = await self._decided_row(tx, client_id, action, lock=sql(" FOR UPDATE"))
            if row["status"] not in TRANSITIONS[action]:
                raise BadUserInput(f"an app that is {row['status']} cannot be {OUTCOME[action]}", argument="clientId")
            acting = sql()
            if acting_unit_id is not None:
                if action != "approve" or row["kind"] != "backend-service":
                    raise BadUserInput(
                        "only approving a backend service names a unit it acts for", argument="actingUnitId"
                    )
                exists = await tx.fetch(sql("SELECT 1 FROM organization WHERE id = ", value(acting_unit_id, "uuid")))
                if not exists:
                    raise BadUserInput("actingUnitId names no unit", argument="actingUnitId")
                acting = sql(", acting_unit_id = ", value(acting_unit_id, "uuid"))
            if limits is not None:
                if action != "approve":
                    raise BadUserInput("budgets are set when approving an app", argument="limits")
                acting = sql(acting, _budget_columns(limits))
            updated = await tx.fetch(
                sql(
                    "UPDATE app a SET status = ",
                    value(OUTCOME[action], "text"),
                    ", status_reason = ",
                    value(text.strip(), "text"),
                    ", decided_by = ",
                    value(self._principal.id, "text"),
                    ", decided_at = now()",
                    acting,
                    " WHERE a.client_id = ",
                    value(client_id, "text"),
                    " RETURNING ",
                    APP.select_list(),
                )
            )
            await self._record_decision(tx, client_id, action, text.strip())
        self._status.forget(client_id)
        return updated[0]

    async def register_documents(self, client_id: str, documents: list[str]) -> list[asyncpg.Record]:
        """Register operations the app will send (its trusted documents), as its registrant or a policy admin;
        a document registered before stays as it was. Returns the app's documents among those given."""
        checked = _checked_documents(documents)
        async with self._transaction() as tx:
            await self._decided_row(tx, client_id, "register_documents", lock=sql(" FOR SHARE"))
            await self._insert_documents(tx, client_id, checked)
        return await self.trusted_documents(client_id, [d["sha256"] for d in checked])

    async def _insert_documents(self, tx: WriteTransaction, client_id: str, checked: list[dict[str, Any]]) -> None:
        """Keep the app's checked documents (in the caller's transaction); one registered before stays as it was."""
        await tx.fetch(
            sql(
                "INSERT INTO trusted_document (client_id, sha256, document, operation_names, registered_by) SELECT ",
                value(client_id, "text"),
                ", d.sha256, d.document, ARRAY(SELECT jsonb_array_elements_text(d.names)), ",
                value(self._principal.ref, "text"),
                " FROM jsonb_to_recordset(",
                value(orjson.dumps(checked).decode(), "jsonb"),
                ") AS d(sha256 text, document text, names jsonb) ON CONFLICT DO NOTHING",
            )
        )

    async def trusted_documents(self, client_id: str, only: list[str] | None = None) -> list[asyncpg.Record]:
        """An app's trusted documents, newest first (the app itself was read under policy by the caller)."""
        chosen = sql() if only is None else sql(" AND sha256 = ANY(", value(only, "text[]"), ")")
        return await fetch(
            self._pool,
            sql(
                "SELECT sha256, operation_names, registered_by, registered_at FROM trusted_document WHERE client_id = ",
                value(client_id, "text"),
                chosen,
                " ORDER BY registered_at DESC, sha256",
            ),
        )

    async def apps(self, first: int, status: str | None) -> list[asyncpg.Record]:
        """The apps you may see, newest first (registrants see their own, policy admins all)."""
        if not 1 <= first <= 100:
            raise BadUserInput(f"`first` must be between 1 and 100, got {first}", argument="first")
        sql_filter = await self._authorizer.plan(self._principal, APP, "search")
        if sql_filter.kind == "none":
            return []
        where = [sql_filter.where]
        if status is not None:
            where.append(sql("a.status = ", value(status, "text")))
        return await fetch(
            self._pool,
            sql(
                "SELECT ",
                APP.select_list(),
                " FROM app a WHERE ",
                join(where, " AND "),
                " ORDER BY a.registered_at DESC, a.client_id DESC LIMIT ",
                value(first, "integer"),
            ),
        )


def _checked_documents(documents: list[str]) -> list[dict[str, Any]]:
    """Documents fit to register, each with its id and operation names, as `_insert_documents` keeps them."""
    if not 1 <= len(documents) <= MAX_DOCUMENTS_AT_ONCE:
        raise BadUserInput(f"register 1 to {MAX_DOCUMENTS_AT_ONCE} documents at once", argument="documents")
    checked = []
    for text in documents:
        sha256, names = checked_document(text)
        checked.append({"sha256": sha256, "document": text, "names": list(names)})
    return checked


def _budget_columns(limits: AppLimits) -> Sql:
    """The SET list of an approval's budgets; each must be a positive whole number."""
    parts = []
    for column in ("requests_per_minute", "max_cost_per_request", "cost_per_minute"):
        given = getattr(limits, column)
        if given is None:
            continue
        if not 1 <= given <= MAX_BUDGET:
            raise BadUserInput(f"{column} must be between 1 and {MAX_BUDGET}", argument="limits")
        parts.append(sql(", ", ident(column), " = ", value(given, "integer")))
    return sql(*parts)


async def client_keys(pool: asyncpg.Pool, client_id: str) -> tuple[KeySet, list[str]] | None:
    """An approved backend service's registered public keys and scopes, for client authentication."""
    row = await pool.fetchrow(
        "SELECT jwks, requested_scopes FROM app WHERE client_id = $1 AND status = 'approved' "
        "AND kind = 'backend-service' AND jwks IS NOT NULL",
        client_id,
    )
    if row is None:
        return None
    return _public_keys(orjson.loads(row["jwks"])), list(row["requested_scopes"])
