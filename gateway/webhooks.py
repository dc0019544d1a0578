"""Webhook endpoints: a backend app tells the gateway where to send which changes.

An endpoint names a URL, the kinds of change it wants, and optionally one patient or one unit (the
patients in that unit's active care). Its signing secret (Standard Webhooks, `whsec_...`) is shown
once, when the endpoint is made or its secret rotated; after a rotation the previous secret signs too,
for a grace period, so the receiver can switch without losing a message. Every change to an endpoint is
authorized by Cerbos (kind `webhook_endpoint`), audited, and itself a change in the feed.

Destinations are checked against server-side request forgery: the URL must be https, and every address
its host resolves to must be public, unless it lies in a network the operator allowed
(`AKSON_WEBHOOK_ALLOWED_NETWORKS`; plain http is accepted only there). The delivery worker checks again
before each send, since names can be re-pointed.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
import socket
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg

from gateway.audit import AuditTrail
from gateway.auth import Principal
from gateway.authz import Authorizer
from gateway.change_feed import FEED_KINDS, head
from gateway.config import Settings
from gateway.declare import ResourceKind
from gateway.errors import BadUserInput, NotFound
from gateway.resources import WEBHOOK_ENDPOINT
from gateway.sql import Sql, join, sql, value
from gateway.store import Row, fetch
from gateway.write_input import check_text
from gateway.write_path import WriteTransaction

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MAX_ENDPOINTS_PER_APP = 10
_SELECT = sql("SELECT ", WEBHOOK_ENDPOINT.select_list(), " FROM webhook_endpoint we")


class DestinationRefused(ValueError):
    """A webhook URL the gateway will not send to; the message says why."""


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[str]) -> bool:
    return any(address in ipaddress.ip_network(network) for network in networks)


def check_addresses(url: str, addresses: Sequence[str], allowed_networks: Sequence[str]) -> None:
    """Refuse a destination any of whose addresses is not public (loopback, private, link-local,
    multicast, reserved) unless an operator allowed its network; plain http only to allowed networks."""
    if not addresses:
        raise DestinationRefused("its host does not resolve to any address")
    scheme = urlsplit(url).scheme
    for raw in addresses:
        address = ipaddress.ip_address(raw)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if _allowed(address, allowed_networks):
            continue
        if not address.is_global or address.is_multicast:
            raise DestinationRefused(f"its host resolves to {address}, which is not a public address")
        if scheme != "https":
            raise DestinationRefused("it must use https")


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL, or DestinationRefused saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused("it is not a valid URL") from exc
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise DestinationRefused("it must be an https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("it must not carry credentials")
    if parts.fragment:
        raise DestinationRefused("it must not have a fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_destination(url: str, allowed_networks: Sequence[str]) -> None:
    """Resolve the URL's host and check every address it resolves to (see `check_addresses`)."""
    host, port = parse_url(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused("its host does not resolve") from exc
    check_addresses(url, sorted({str(info[4][0]) for info in infos}), allowed_networks)


class WebhookEndpoints:
    """Per-request door to the webhook endpoints and deliveries of the calling app."""

    def __init__(
        self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, audit: AuditTrail, settings: Settings
    ) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit
        self._settings = settings

    def _transaction(self) -> WriteTransaction:
        return WriteTransaction(self._pool, self._authorizer, self._principal, self._audit)

    async def _checked_url(self, url: str) -> str:
        url = url.strip()
        check_text(url, "url", max_length=2000)
        try:
            await check_destination(url, self._settings.webhook_allowed_networks)
        except DestinationRefused as exc:
            raise BadUserInput(f"the gateway does not send to this URL: {exc}", argument="url") from exc
        return url

    def _checked_kinds(self, kinds: Sequence[ResourceKind]) -> list[str]:
        if not kinds:
            raise BadUserInput("name at least one kind of change", argument="kinds")
        names = list(dict.fromkeys(kind.name for kind in kinds))
        readable = set(self._principal.grants.search)
        missing = [
            FEED_KINDS[name].type_name for name in names if name not in readable and name != WEBHOOK_ENDPOINT.name
        ]
        if missing:
            raise BadUserInput(
                f"your app's scopes do not let it search {', '.join(missing)}; no change of them could be sent",
                argument="kinds",
            )
        return names

    async def create(
        self,
        url: str,
        kinds: Sequence[ResourceKind],
        *,
        patient_id: uuid.UUID | None,
        unit_id: uuid.UUID | None,
        description: str | None,
    ) -> tuple[Row, str]:
        """Register an endpoint of the calling app; returns it and its secret (shown this once). It
        receives the changes committed from now on."""
        if patient_id is not None and unit_id is not None:
            raise BadUserInput("filter by a patient or by a unit, not both", argument="patientId")
        if description is not None:
            check_text(description, "description", max_length=200)
        names = self._checked_kinds(kinds)
        url = await self._checked_url(url)
        client = self._principal.client_id
        secret = new_secret()
        endpoint_id = str(uuid.uuid4())
        async with self._transaction() as tx:
            await tx.decide_on(WEBHOOK_ENDPOINT, "create", [(endpoint_id, {"client_id": client})])
            count = await tx.conn.fetchval(
                "SELECT count(*) FROM webhook_endpoint WHERE client_id = $1 AND status = 'active'", client
            )
            if count >= MAX_ENDPOINTS_PER_APP:
                raise BadUserInput(
                    f"an app may have at most {MAX_ENDPOINTS_PER_APP} active webhook endpoints", argument="url"
                )
            try:
                rows = await tx.fetch(
                    sql(
                        "INSERT INTO webhook_endpoint AS we (id, client_id, url, description, kinds, patient_id, "
                        "unit_id, secret, created_by) VALUES (",
                        join(
                            [
                                value(endpoint_id, "uuid"),
                                value(client, "text"),
                                value(url, "text"),
                                value(description, "text"),
                                value(names, "text[]"),
                                value(None if patient_id is None else str(patient_id), "uuid"),
                                value(None if unit_id is None else str(unit_id), "uuid"),
                                value(secret, "text"),
                                value(self._principal.ref, "text"),
                            ]
                        ),
                        ") RETURNING ",
                        WEBHOOK_ENDPOINT.select_list(),
                    )
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise BadUserInput("no such patient or unit", argument="patientId" if patient_id else "unitId") from exc
            await tx.conn.execute(
                "INSERT INTO webhook_cursor (endpoint_id, position) VALUES ($1, $2)", endpoint_id, await head(tx.conn)
            )
        return rows[0], secret

    async def _locked(self, tx: WriteTransaction, endpoint_id: str, action: str) -> Row:
        """The endpoint, locked for a change, once Cerbos allowed `action` on it; hidden and missing look alike."""
        rows = await tx.fetch(sql(_SELECT, " WHERE we.id = ", value(endpoint_id, "uuid"), " FOR UPDATE"))
        owner = rows[0]["client_id"] if rows else ""
        await tx.decide_on(WEBHOOK_ENDPOINT, action, [(endpoint_id, {"client_id": owner})])
        if not rows:
            raise NotFound("no webhook endpoint with this id exists")
        return rows[0]

    async def _update(self, tx: WriteTransaction, endpoint_id: str, changes: Sql) -> Row:
        rows = await tx.fetch(
            sql(
                "UPDATE webhook_endpoint we SET ",
                changes,
                ", updated_at = now() WHERE we.id = ",
                value(endpoint_id, "uuid"),
                " RETURNING ",
                WEBHOOK_ENDPOINT.select_list(),
            )
        )
        return rows[0]

    async def rotate_secret(self, endpoint_id: str) -> tuple[Row, str]:
        """A new secret for an endpoint (shown this once); the previous one keeps signing for the overlap."""
        secret = new_secret()
        overlap = timedelta(seconds=self._settings.webhook_secret_overlap_seconds)
        async with self._transaction() as tx:
            await self._locked(tx, endpoint_id, "update")
            row = await self._update(
                tx,
                endpoint_id,
                sql(
                    "previous_secret = we.secret, previous_secret_expires_at = ",
                    value(datetime.now(UTC) + overlap, "timestamptz"),
                    ", secret = ",
                    value(secret, "text"),
                ),
            )
        return row, secret

    async def set_enabled(self, endpoint_id: str, enabled: bool, reason: str | None) -> Row:
        """Disable an endpoint (its pending deliveries are dead-lettered), or enable it again: it then
        receives the changes committed from now on (the feed, from the cursor of its last delivery,
        covers the gap)."""
        if reason is not None:
            check_text(reason, "reason", max_length=200)
        async with self._transaction() as tx:
            await self._locked(tx, endpoint_id, "update")
            if enabled:
                row = await self._update(tx, endpoint_id, sql("status = 'active', status_reason = NULL"))
                await tx.conn.execute(
                    "UPDATE webhook_cursor SET position = $2, failing_since = NULL, last_error = NULL "
                    "WHERE endpoint_id = $1",
                    endpoint_id,
                    await head(tx.conn),
                )
            else:
                row = await self._update(
                    tx,
                    endpoint_id,
                    sql("status = 'disabled', status_reason = ", value(reason or "disabled by its app", "text")),
                )
                await tx.conn.execute(
                    "UPDATE webhook_delivery SET status = 'dead', status_reason = 'the endpoint was disabled' "
                    "WHERE endpoint_id = $1 AND status = 'pending'",
                    endpoint_id,
                )
        return row

    async def endpoints(self) -> list[Row]:
        """The endpoints the caller may see (its app's; every one for a policy admin), newest first."""
        sql_filter = await self._authorizer.plan(self._principal, WEBHOOK_ENDPOINT, "search")
        return await fetch(self._pool, sql(_SELECT, " WHERE ", sql_filter.where, " ORDER BY we.created_at DESC, we.id"))

    async def attempts(self, delivery_ids: Sequence[str]) -> dict[str, list[Row]]:
        """The attempts of deliveries the caller was already shown, oldest first, by delivery id."""
        rows = await self._pool.fetch(
            "SELECT delivery_id, attempt, attempted_at, status_code, error, latency_ms FROM webhook_attempt "
            "WHERE delivery_id = ANY($1::uuid[]) ORDER BY delivery_id, attempt",
            list(delivery_ids),
        )
        found: dict[str, list[Row]] = {}
        for row in rows:
            found.setdefault(str(row["delivery_id"]), []).append(row)
        return found


def secret_keys(row: Row, now: datetime) -> list[str]:
    """The secrets that sign a message to an endpoint now: its own, and the previous one during its overlap."""
    keys = [str(row["secret"])]
    if row["previous_secret"] and row["previous_secret_expires_at"] and row["previous_secret_expires_at"] > now:
        keys.append(str(row["previous_secret"]))
    return keys
