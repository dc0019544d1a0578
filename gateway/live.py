"""Live connections: GraphQL subscriptions over the graphql-transport-ws protocol, authorized at every delivery.

The request path of a live connection: websocket -> `connection_init` with the access token in its payload
(`{"Authorization": "Bearer <token>"}`, plus `"DPoP": <proof>` for a DPoP-bound token, whose `htu` is the
ws:// URL and `htm` GET) -> one context for the connection -> `subscribe` -> the subscription follows the
change feed from its position -> at each wake-up the principal is looked up again (token, app status,
units, roles, grants) and the feed page filtered by the policy's query plans as of now -> each message's
audit records are written before the message is sent.

Strawberry's transport handler is kept, with these parts of it replaced: authentication at
`connection_init` (closing with 4403 and the reason when it fails), `subscribe` (queries and mutations
are refused here: they go over HTTP, where their audit and error handling live), and the sending of
results (errors shaped and masked as over HTTP; audit first; a send that waits longer than the timeout
on a consumer that does not read closes the connection).

Close codes: 4401 the access token expired; 4403 authentication failed or is no longer valid (app
suspended, person no longer known); 4420 the consumer did not read what it was sent (it did not answer
a ping within the send timeout once a window of messages was unread); 1011 the journal could not be
reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import orjson
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    PongMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult

from gateway.auth import CLOCK_SKEW_SECONDS, credentials, request_url
from gateway.change_feed import ChangeFilter, ChangeItem, ChangePage, head
from gateway.context import Context
from gateway.errors import AksonError, Forbidden, ServiceUnavailable, Unauthenticated, graphql_error_payload
from gateway.runtime import runtime_of

log = logging.getLogger(__name__)

CLOSE_EXPIRED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4420
CLOSE_UNAVAILABLE = 1011
INIT_TIMEOUT = timedelta(seconds=10)
# Set in the websocket's scope when its consumer was dropped without a close frame (see `_abandon`).
ABANDONED_KEY = "akson.abandoned"
_MAX_REASON_BYTES = 123


def _reason(text: str) -> str:
    """A close reason that fits a close frame (123 bytes)."""
    encoded = text.encode()
    return (
        text if len(encoded) <= _MAX_REASON_BYTES else encoded[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
    )


class LiveSession:
    """One authenticated live connection: its verified claims, its context, and how it ends."""

    def __init__(self, socket: JournalSocket, token: str, claims: dict[str, Any], context: Context) -> None:
        self._socket = socket
        self._token = token
        self._claims = claims
        self.context = context
        self.runtime = context.runtime

    @classmethod
    async def open(cls, socket: JournalSocket, payload: dict[str, Any]) -> LiveSession:
        """Authenticate `connection_init`'s payload with the same tokens and DPoP rules as HTTP."""
        request = socket.request
        runtime = runtime_of(request.scope)
        authorization = payload.get("Authorization", payload.get("authorization"))
        proof = payload.get("DPoP", payload.get("dpop"))
        if not isinstance(authorization, str):
            raise Unauthenticated('send the access token in connection_init: {"Authorization": "Bearer <token>"}')
        presented = credentials(
            authorization,
            proof if isinstance(proof, str) else None,
            "GET",
            request_url(request.scope, runtime.settings.base_url),
        )
        claims, principal = await runtime.authenticator.authenticate_claims(presented)
        context = Context.build(runtime, request, principal)
        session = cls(socket, presented.token, claims, context)
        context.live = session
        return session

    @property
    def expires_at(self) -> float:
        """When the token stops being accepted (epoch seconds; its `exp` plus the allowed clock skew)."""
        expires = self._claims.get("exp")
        return float(expires) + CLOCK_SKEW_SECONDS if isinstance(expires, int | float) else float("inf")

    async def close_at_expiry(self) -> None:
        """Close the connection when the token expires, whether or not anything is being delivered."""
        if self.expires_at == float("inf"):
            return
        await asyncio.sleep(max(0.0, self.expires_at - time.time()))
        await self._socket.close(CLOSE_EXPIRED, "the access token expired; connect again with a new token")

    async def refresh(self) -> bool:
        """Look the principal up again before a delivery and renew the context; on failure close the
        connection with the reason and return False. Sessions with the same token woken by the same
        commit share one lookup."""
        if time.time() >= self.expires_at:
            await self._socket.close(CLOSE_EXPIRED, "the access token expired; connect again with a new token")
            return False
        try:
            principal = await self.runtime.hub.shared(
                ("principal", self._token), lambda: self.runtime.authenticator.reauthenticate(self._claims)
            )
        except (Unauthenticated, Forbidden) as exc:
            await self._socket.close(CLOSE_FORBIDDEN, exc.message)
            return False
        except ServiceUnavailable as exc:
            await self._socket.close(CLOSE_UNAVAILABLE, exc.message)
            return False
        self.context.renew(principal)
        return True

    async def _page(self, wanted: ChangeFilter, after: int) -> ChangePage:
        """The next page for the current principal, read once for every subscription of the same principal,
        filter and position woken by the same commit (each audits what it hands out on its own)."""
        runtime, context = self.runtime, self.context
        upto, size = runtime.hub.position, runtime.settings.subscription_page_size
        subject, _ = runtime.authorizer.subject(context.principal)
        key = ("page", subject, runtime.authorizer.policy_version, wanted.key, after, upto, size)
        feed = context.changes
        return await runtime.hub.shared(
            key, lambda: feed.page(wanted, after, size, channel=None, upto=upto, audit_denials=False)
        )

    async def changes(self, wanted: ChangeFilter, after: int | None) -> AsyncIterator[ChangeItem]:
        """The changes the principal may read, from position `after` (or from now), for as long as the
        subscription lasts. A page found with the principal as last known is delivered only after the
        principal was looked up again (token, app status, units, roles, grants) and, if that changed
        anything, read again for the principal as it is now; so each delivery is authorized by the query
        plans in force and the journal as it stands. The change hub wakes the subscription when something
        it may want has committed."""
        position = after if after is not None else await head(self.runtime.pool)
        follower = self.runtime.hub.follow(wanted, position)
        try:
            while True:
                follower.woken.clear()
                if time.time() >= self.expires_at:
                    await self._socket.close(CLOSE_EXPIRED, "the access token expired; connect again with a new token")
                    return
                page = await self._page(wanted, follower.position)
                if page.items:
                    known = self.context.principal
                    if not await self.refresh():
                        return
                    if self.context.principal != known:
                        page = await self._page(wanted, follower.position)
                    self.context.changes.audit(page, "subscription")
                for item in page.items:
                    if time.time() >= self.expires_at:
                        await self._socket.close(
                            CLOSE_EXPIRED, "the access token expired; connect again with a new token"
                        )
                        return
                    yield item
                follower.advance(page.end)
                if not page.has_next_page:
                    await follower.woken.wait()
        finally:
            self.runtime.hub.unfollow(follower)

    async def flush_audit(self) -> None:
        """Write the audit records of what is about to be sent; raises if they cannot be written."""
        await self.context.audit.flush(self.runtime.audit_writer)


def _error(operation_id: str, text: str, code: str) -> Message:
    """A graphql-transport-ws error message for one operation, typed like the API's other errors."""
    return cast(
        Message, {"id": operation_id, "type": "error", "payload": [{"message": text, "extensions": {"code": code}}]}
    )


def _operation_type(message: SubscribeMessage) -> OperationType | None:
    """The type of the operation a subscribe message asks for, or None when the document does not parse
    (the transport then answers with its own protocol error)."""
    try:
        document = parse(message["payload"]["query"])
    except (GraphQLError, KeyError, TypeError):
        return None
    operation = get_operation_ast(document, message["payload"].get("operationName"))
    return operation.operation if operation is not None else None


class JournalOperation(Operation[Context, None]):
    """A subscription's messages: audit records first, errors typed and masked as over HTTP."""

    async def send_next(self, execution_result: ExecutionResult) -> None:
        socket = self.handler
        assert isinstance(socket, JournalSocket) and socket.session is not None
        try:
            await socket.session.flush_audit()
        except Exception as exc:
            log.error("audit write failed; withholding a subscription message: %s", type(exc).__name__)
            await self.send_operation_message(
                _error(
                    self.id,
                    "the delivery could not be recorded in the audit log, so nothing was sent",
                    "AUDIT_UNAVAILABLE",
                )
            )
            raise _OperationStreamClosed from exc
        payload: dict[str, Any] = {"data": execution_result.data}
        if execution_result.errors:
            payload["errors"] = [graphql_error_payload(e) for e in execution_result.errors]
        await self.send_operation_message(cast(Message, {"id": self.id, "type": "next", "payload": payload}))

    async def send_initial_errors(self, errors: list[GraphQLError]) -> None:
        await self.send_operation_message(
            cast(Message, {"id": self.id, "type": "error", "payload": [graphql_error_payload(e) for e in errors]})
        )


class JournalSocket(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws for the journal: authenticated at init, subscriptions only, bounded sends."""

    session: LiveSession | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expiry: asyncio.Task[None] | None = None
        self._main: asyncio.Task[Any] | None = None
        self._closed = False
        self._unacknowledged = 0
        self._pong = asyncio.Event()
        self._acknowledging = asyncio.Lock()

    @property
    def request(self) -> WebSocket:
        ws: WebSocket = self.websocket.ws  # type: ignore[attr-defined]
        return ws

    async def handle(self) -> None:
        self._main = asyncio.current_task()
        await super().handle()

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        await super().shutdown()

    async def close(self, code: int, reason: str) -> None:
        """Close the connection once, with a code and reason the client can act on."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError, WebSocketDisconnected):
            await self.websocket.close(code, _reason(reason))

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if self.connection_init_received or self.connection_timed_out or not isinstance(payload, dict):
            await super().handle_connection_init(message)
            return
        try:
            self.session = await LiveSession.open(self, payload)
        except AksonError as exc:
            self.connection_init_received = True
            if self.connection_init_timeout_task:
                self.connection_init_timeout_task.cancel()
            code = CLOSE_UNAVAILABLE if isinstance(exc, ServiceUnavailable) else CLOSE_FORBIDDEN
            await self.close(code, exc.message)
            return
        self.context = self.session.context
        self._expiry = asyncio.create_task(self.session.close_at_expiry())
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged:
            await self.close(4401, "Unauthorized: send connection_init with your access token first")
            return
        if message["id"] in self.operations:
            await self.close(4409, f"Subscriber for {message['id']} already exists")
            return
        if (
            self.max_subscriptions_per_connection is not None
            and len(self.operations) >= self.max_subscriptions_per_connection
        ):
            await self._refuse(message["id"], "this connection holds as many subscriptions as it may", "BAD_REQUEST")
            return
        if _operation_type(message) in {OperationType.QUERY, OperationType.MUTATION}:
            await self._refuse(
                message["id"],
                "queries and mutations go over HTTP (POST /graphql); this connection serves subscriptions",
                "BAD_REQUEST",
            )
            return
        payload = message["payload"]
        operation = JournalOperation(
            self, message["id"], payload["query"], payload.get("variables"), payload.get("operationName")
        )
        operation.task = asyncio.create_task(self.run_operation(operation))
        operation.task.add_done_callback(self._task_done)
        self.operations[message["id"]] = operation

    async def _refuse(self, operation_id: str, text: str, code: str) -> None:
        await self.send_message(_error(operation_id, text, code))

    async def send_message(self, message: Message) -> None:
        """Send one message, keeping what a consumer has not read bounded. Transport buffers do not stop a
        fast producer (they grow), so the protocol's own ping and pong serve as acknowledgement: once more
        than the window of messages is unacknowledged, the next is sent only after the client answered a
        ping, which it reads after everything sent before it. A consumer that does not answer within the
        send timeout is too slow: the connection is closed (4420) and its subscriptions end."""
        settings = runtime_of(self.request.scope).settings
        text = orjson.dumps(message).decode()
        if message["type"] == "next" and self._unacknowledged + len(text) > settings.subscription_window_bytes:
            await self._await_acknowledgement(settings.subscription_send_timeout_seconds)
        await self._send(text, settings.subscription_send_timeout_seconds)
        if message["type"] == "next":
            self._unacknowledged += len(text)

    async def _send(self, text: str, within: float) -> None:
        try:
            await asyncio.wait_for(self.request.send_text(text), within)
        except TimeoutError:
            await self._abandon(within)
            raise _OperationStreamClosed from None
        except (WebSocketDisconnect, RuntimeError) as exc:  # gone, or closed by us meanwhile
            raise WebSocketDisconnected from exc

    async def _await_acknowledgement(self, within: float) -> None:
        """Ping, and wait until the client's pong shows it has read everything sent so far."""
        async with self._acknowledging:
            if not self._unacknowledged:
                return
            self._pong.clear()
            await self._send(
                orjson.dumps({"type": "ping", "payload": {"unread": self._unacknowledged}}).decode(), within
            )
            try:
                await asyncio.wait_for(self._pong.wait(), within)
            except TimeoutError:
                await self._abandon(within)
                raise _OperationStreamClosed from None
            self._unacknowledged = 0

    async def handle_pong(self, message: PongMessage) -> None:
        self._pong.set()

    async def _abandon(self, waited: float) -> None:
        """Close a connection whose consumer reads too slowly; if even the close frame cannot be written
        within the grace period, drop the connection."""
        if self._closed:
            return
        log.warning("closing a live connection: its consumer read nothing for %.0f s", waited)
        grace = runtime_of(self.request.scope).settings.subscription_close_grace_seconds
        try:
            await asyncio.wait_for(
                self.close(CLOSE_TOO_SLOW, "consumer too slow: reconnect and resume from your last cursor"), grace
            )
        except TimeoutError:
            self.request.scope[ABANDONED_KEY] = True
            if self._main is not None:
                self._main.cancel()
