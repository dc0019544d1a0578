"""The webhook delivery worker: one per deployment, however many processes serve requests.

Every gateway process runs a worker, but only the one holding a PostgreSQL advisory lock (on a
connection of its own) delivers; if its process dies, the lock goes with the connection and another
worker takes over within a poll interval. A delivery is also unique per endpoint and change in the
database, so even two workers overlapping at a hand-over could not send a change twice to one endpoint.

A cycle, run when the change hub reports commits or when a retry falls due:
1. Fan-out: for each active endpoint, read the change feed from the endpoint's position as its app (the
   app's principal, with its approved scopes), filtered by the query plans like any read, and record one
   pending delivery per change, moving the position on in the same transaction.
2. Send: for each delivery that is due, decide again, now, whether the app may see the change (Cerbos,
   on the resource as it is now); record the audit row; then POST a thin, signed message (Standard
   Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`) that names the change but carries no
   patient data: the receiver fetches through the API, where policy applies again. A change the app may
   no longer see is withheld, with the reason.
3. Failures are retried with exponential backoff and jitter until the retry window (24 hours by
   default) has passed since the first attempt; then the delivery is dead-lettered. An endpoint whose
   deliveries have failed for `disable_after` without a success in between is disabled, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
from standardwebhooks import Webhook

from gateway.audit import AuditRecord, AuditTrail, AuditWriter
from gateway.auth import Authenticator, Principal
from gateway.authz import Authorizer
from gateway.change_feed import FEED_KINDS, ChangeFeed, ChangeFilter, encode_position, public_id
from gateway.change_hub import ChangeHub
from gateway.config import Settings
from gateway.db import GATEWAY_ROLE
from gateway.errors import ServiceUnavailable
from gateway.store import SEARCH, Row, Store, attributes_of, fetch, phantom_attributes, rows_by_id
from gateway.webhooks import DestinationRefused, check_destination, secret_keys

log = logging.getLogger(__name__)

LOCK_KEY = 0x414B534F4E57  # "AKSONW"
USER_AGENT = "Akson-Gateway-Webhooks/1"
_FAN_OUT_PAGES = 10
_ERROR_TEXT = 300


@dataclass(frozen=True)
class Attempt:
    """How one send went: when, the HTTP status (None without an answer), what went wrong, how long it took."""

    at: datetime
    status: int | None
    error: str | None
    latency_ms: int


def next_delay(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds until the next attempt after `attempts` failed ones: doubling from `base` up to `cap`,
    with jitter (a random point in the upper half), so that receivers that failed together are not
    retried together."""
    ceiling = min(cap, base * 2.0 ** max(0, attempts - 1))
    return ceiling / 2 + rng.random() * ceiling / 2


def message(row: Row) -> bytes:
    """The thin payload of a delivery: what changed and where to continue the feed, no patient data."""
    kind = FEED_KINDS[row["resource_kind"]]
    return orjson.dumps(
        {
            "type": f"{kind.type_name}.{row['action']}",
            "timestamp": row["committed_at"].astimezone(UTC).isoformat(),
            "data": {
                "kind": kind.name.upper(),
                "id": public_id(kind, row["resource_id"]),
                "action": row["action"].replace("-", "_").upper(),
                "version": row["version"],
                "cursor": encode_position(row["seq"]),
                "committedAt": row["committed_at"].astimezone(UTC).isoformat(),
            },
        }
    )


def signature(msg_id: str, timestamp: datetime, body: bytes, secrets: Sequence[str]) -> str:
    """The `webhook-signature` header: one `v1,` signature per secret in force."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body.decode()) for secret in secrets)


class WebhookWorker:
    """Fans changes out to webhook endpoints and delivers them, while this process holds the lock."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        pool: asyncpg.Pool,
        authorizer: Authorizer,
        authenticator: Authenticator,
        audit_writer: AuditWriter,
        hub: ChangeHub,
    ) -> None:
        self._settings = settings
        self._url = database_url
        self._pool = pool
        self._authorizer = authorizer
        self._authenticator = authenticator
        self._audit_writer = audit_writer
        self._hub = hub
        self._rng = random.SystemRandom()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.delivering = False

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=self._settings.webhook_timeout_seconds,
            headers={"user-agent": USER_AGENT},
            trust_env=False,
        )
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        poll = self._settings.change_poll_seconds
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._url, server_settings={"application_name": "akson-webhooks", "role": GATEWAY_ROLE}
                )
                while True:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                        break
                    await asyncio.sleep(poll)
                self.delivering = True
                log.info("this process delivers webhooks")
                follower = self._hub.follow(ChangeFilter(), self._hub.position)
                try:
                    while True:
                        follower.woken.clear()
                        await conn.fetchval("SELECT 1")  # the lock's connection still stands
                        wait = await self.cycle()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(follower.woken.wait(), wait)
                finally:
                    self._hub.unfollow(follower)
            except (
                OSError,
                asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError,
                asyncpg.InterfaceError,
                ServiceUnavailable,
            ) as exc:
                log.warning("webhook worker interrupted (%s); starting again", type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:
                log.exception("webhook worker failed; starting again")
                await asyncio.sleep(self._settings.change_poll_seconds)
            finally:
                self.delivering = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def cycle(self) -> float:
        """Fan out new changes, send what is due; returns how long to wait before the next cycle."""
        principals: dict[str, Principal | None] = {}
        endpoints = await self._pool.fetch(
            "SELECT we.id, we.client_id, we.kinds, we.patient_id, we.unit_id, c.position "
            "FROM webhook_endpoint we JOIN webhook_cursor c ON c.endpoint_id = we.id WHERE we.status = 'active'"
        )
        for endpoint in endpoints:
            principal = await self._principal(principals, endpoint["client_id"])
            if principal is not None:
                await self._fan_out(endpoint, principal)
        await self._send_due(principals)
        due = await self._pool.fetchval(
            "SELECT extract(epoch FROM min(d.next_attempt_at) - now()) FROM webhook_delivery d "
            "JOIN webhook_endpoint we ON we.id = d.endpoint_id WHERE d.status = 'pending' AND we.status = 'active'"
        )
        poll = self._settings.change_poll_seconds
        return poll if due is None else min(poll, max(0.05, float(due)))

    async def _principal(self, known: dict[str, Principal | None], client_id: str) -> Principal | None:
        """The endpoint's app as the policy sees it now; None while it is not approved."""
        if client_id not in known:
            row = await self._pool.fetchrow("SELECT status, requested_scopes FROM app WHERE client_id = $1", client_id)
            principal = None
            if row is not None and row["status"] == "approved":
                try:
                    principal = await self._authenticator.service_principal(client_id, list(row["requested_scopes"]))
                except Exception as exc:  # an app the gateway cannot act for gets nothing, and the log says why
                    log.warning("webhooks of %s paused: %s", client_id, exc)
            known[client_id] = principal
        return known[client_id]

    async def _fan_out(self, endpoint: Row, principal: Principal) -> None:
        trail = AuditTrail(principal, self._authorizer.policy_version)
        store = Store(self._pool, self._authorizer, principal, trail, self._settings.max_page_size)
        feed = ChangeFeed(self._pool, store, trail, self._settings.change_scan_window)
        wanted = ChangeFilter(
            kinds=tuple(FEED_KINDS[name] for name in endpoint["kinds"] if name in FEED_KINDS),
            patient_id=endpoint["patient_id"],
            unit_id=endpoint["unit_id"],
        )
        position = int(endpoint["position"])
        for _ in range(_FAN_OUT_PAGES):
            page = await feed.page(wanted, position, self._settings.webhook_batch_size, channel=None)
            async with self._pool.acquire() as conn, conn.transaction():
                current = await conn.fetchval(
                    "SELECT position FROM webhook_cursor WHERE endpoint_id = $1 FOR UPDATE", endpoint["id"]
                )
                if current != position:
                    return
                if page.items:
                    await conn.execute(
                        """INSERT INTO webhook_delivery (endpoint_id, seq, resource_kind, resource_id, patient_id,
                                                         action, version, committed_at)
                           SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                                                    $7::int[], $8::timestamptz[])
                           ON CONFLICT (endpoint_id, seq) DO NOTHING""",
                        endpoint["id"],
                        [i.seq for i in page.items],
                        [i.kind.name for i in page.items],
                        [i.resource_id for i in page.items],
                        [i.patient_id for i in page.items],
                        [i.action for i in page.items],
                        [i.version for i in page.items],
                        [i.committed_at for i in page.items],
                    )
                await conn.execute(
                    "UPDATE webhook_cursor SET position = $2 WHERE endpoint_id = $1", endpoint["id"], page.end
                )
            position = page.end
            if not page.has_next_page:
                return

    async def _send_due(self, principals: dict[str, Principal | None]) -> None:
        due = await self._pool.fetch(
            """SELECT * FROM (
                 SELECT d.*, we.url, we.client_id, we.secret, we.previous_secret, we.previous_secret_expires_at,
                        row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.seq) AS place
                   FROM webhook_delivery d JOIN webhook_endpoint we ON we.id = d.endpoint_id
                  WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND we.status = 'active') AS due
                WHERE due.place <= $1""",
            self._settings.webhook_batch_size,
        )
        by_endpoint: dict[uuid.UUID, list[Row]] = {}
        for row in due:
            by_endpoint.setdefault(row["endpoint_id"], []).append(row)
        gate = asyncio.Semaphore(self._settings.webhook_concurrency)

        async def deliver_in_order(rows: list[Row]) -> None:
            async with gate:
                principal = await self._principal(principals, rows[0]["client_id"])
                if principal is not None:
                    await self._deliver(sorted(rows, key=lambda r: r["seq"]), principal)

        await asyncio.gather(*(deliver_in_order(rows) for rows in by_endpoint.values()))

    async def _decide(self, rows: list[Row], principal: Principal) -> list[tuple[bool, str]]:
        """Whether the app may see each changed resource now, and why: decided on the rows as they are, one
        statement and one PDP call per kind, and audited (one write) before anything is sent."""
        trail = AuditTrail(principal, self._authorizer.policy_version)
        decided: dict[uuid.UUID, tuple[bool, str]] = {}
        by_kind: dict[str, list[Row]] = {}
        for row in rows:
            by_kind.setdefault(row["resource_kind"], []).append(row)
        for name, kind_rows in by_kind.items():
            kind = FEED_KINDS[name]
            ids = list(dict.fromkeys(r["resource_id"] for r in kind_rows))
            found = {str(r[kind.id_column]): r for r in await fetch(self._pool, rows_by_id(kind, ids))}
            resources = [(i, attributes_of(kind, found[i]) if i in found else phantom_attributes(kind, i)) for i in ids]
            scopes = [
                str(found[i]["_scope"]) if i in found and kind.scope_sql and found[i]["_scope"] else None for i in ids
            ]
            decisions = dict(
                zip(ids, await self._authorizer.check(principal, kind, SEARCH, resources, scopes), strict=True)
            )
            for row in kind_rows:
                decision = decisions[row["resource_id"]]
                decided[row["id"]] = (decision.allowed, decision.reason)
                if kind.is_patient_data:
                    patient = str(row["patient_id"]) if row["patient_id"] else None
                    trail.record(
                        AuditRecord(
                            patient, kind.name, (row["resource_id"],), "webhook", decision.allowed, decision.reason
                        )
                    )
        await trail.flush(self._audit_writer)
        return [decided[row["id"]] for row in rows]

    async def _deliver(self, rows: list[Row], principal: Principal) -> None:
        """Send an endpoint's due deliveries in order, after deciding on all of them and checking where its
        host points now; keep what happened."""
        try:
            decisions = await self._decide(rows, principal)
        except (ServiceUnavailable, asyncpg.PostgresError) as exc:
            log.warning("webhook deliveries wait: their decisions or audit rows failed (%s)", type(exc).__name__)
            return
        try:
            await check_destination(rows[0]["url"], self._settings.webhook_allowed_networks)
            refused = None
        except DestinationRefused as exc:
            refused = f"destination refused: {exc}"
        outcomes: list[Attempt | str] = []
        for row, (allowed, reason) in zip(rows, decisions, strict=True):
            if not allowed:
                outcomes.append(reason)
            elif refused is not None:
                outcomes.append(Attempt(datetime.now(UTC), None, refused, 0))
            else:
                outcomes.append(await self._post(row))
        await self._record(rows, outcomes)

    async def _post(self, row: Row) -> Attempt:
        """Send one signed message and say how it went."""
        assert self._client is not None
        started = time.monotonic()
        at = datetime.now(UTC)
        body = message(row)
        msg_id = f"msg_{row['id'].hex}"
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature(msg_id, now, body, secret_keys(row, now)),
        }
        try:
            response = await self._client.post(row["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            return Attempt(at, None, text[:_ERROR_TEXT], round((time.monotonic() - started) * 1000))
        latency = round((time.monotonic() - started) * 1000)
        if 200 <= response.status_code < 300:
            return Attempt(at, response.status_code, None, latency)
        return Attempt(at, response.status_code, f"the endpoint answered HTTP {response.status_code}", latency)

    async def _record(self, rows: list[Row], outcomes: list[Attempt | str]) -> None:
        """Keep each attempt; settle each delivery (delivered, retried later, dead, or withheld with the reason)
        and the endpoint's health: failing since the first failure after its last success, disabled once
        that has lasted `disable_after`. One transaction."""
        settings = self._settings
        attempts, settled, withheld = [], [], []
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, str):
                withheld.append((row["id"], outcome))
                continue
            number, first = row["attempts"] + 1, row["first_attempt_at"] or outcome.at
            if outcome.error is None:
                status, reason, next_at = "delivered", None, outcome.at
            elif (outcome.at - first).total_seconds() >= settings.webhook_retry_window_seconds:
                status, reason, next_at = "dead", "retries exhausted: " + outcome.error, outcome.at
            else:
                base, cap = settings.webhook_retry_base_seconds, settings.webhook_retry_max_delay_seconds
                delay = timedelta(seconds=next_delay(number, base, cap, self._rng))
                status, reason, next_at = "pending", outcome.error, outcome.at + delay
            attempts.append((row["id"], number, outcome.at, outcome.status, outcome.error, outcome.latency_ms))
            settled.append(
                (row["id"], status, reason, number, next_at, first, outcome.at, outcome.status, outcome.latency_ms)
            )
        endpoint = rows[0]["endpoint_id"]
        async with self._pool.acquire() as conn, conn.transaction():
            if attempts:
                await conn.executemany(
                    "INSERT INTO webhook_attempt (delivery_id, attempt, attempted_at, status_code, error, latency_ms) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    attempts,
                )
            await conn.executemany(
                """UPDATE webhook_delivery SET status = $2::text, status_reason = $3, attempts = $4,
                          next_attempt_at = $5, first_attempt_at = $6, last_attempt_at = $7::timestamptz,
                          last_status_code = $8, last_latency_ms = $9,
                          delivered_at = CASE WHEN $2::text = 'delivered' THEN $7::timestamptz END
                    WHERE id = $1""",
                settled,
            )
            if withheld:
                await conn.executemany(
                    "UPDATE webhook_delivery SET status = 'withheld', status_reason = $2 WHERE id = $1", withheld
                )
            sent = [o for o in outcomes if isinstance(o, Attempt)]
            if not sent:
                return
            health = await conn.fetchrow(
                "SELECT failing_since, last_error FROM webhook_cursor WHERE endpoint_id = $1 FOR UPDATE", endpoint
            )
            since, error = health["failing_since"], health["last_error"]
            for attempt in sent:
                since, error = (None, None) if attempt.error is None else (since or attempt.at, attempt.error)
            await conn.execute(
                "UPDATE webhook_cursor SET failing_since = $2, last_error = $3 WHERE endpoint_id = $1",
                endpoint,
                since,
                error,
            )
            if since is not None and error is not None:
                if (sent[-1].at - since).total_seconds() >= settings.webhook_disable_after_seconds:
                    await self._disable(conn, endpoint, since, error)

    async def _disable(self, conn: asyncpg.Connection, endpoint_id: uuid.UUID, since: datetime, error: str) -> None:
        reason = f"deliveries failed since {since.isoformat(timespec='seconds')} without a success; last: {error}"
        await conn.execute("SELECT set_config('akson.actor', 'system:webhook-worker', true)")
        await conn.execute(
            "UPDATE webhook_endpoint SET status = 'disabled', status_reason = $2, updated_at = now() "
            "WHERE id = $1 AND status = 'active'",
            endpoint_id,
            reason[:_ERROR_TEXT],
        )
        await conn.execute(
            "UPDATE webhook_delivery SET status = 'dead', status_reason = 'the endpoint was disabled' "
            "WHERE endpoint_id = $1 AND status = 'pending'",
            endpoint_id,
        )
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
