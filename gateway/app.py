"""Composition root: the Starlette app, its lifespan (pool, Cerbos client, verifier) and its routes.

The request path: HTTP (traced) -> AuthenticationMiddleware -> GraphQLView (context with the
principal's Store) -> resolvers -> Store (authorize, SQL) -> audit flush -> response.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from cerbos.sdk.grpc.client import AsyncCerbosClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gateway import demo_issuer
from gateway.audit import AuditWriter
from gateway.auth import (
    AuthenticationMiddleware,
    Authenticator,
    TokenVerifier,
    is_graphiql_page,
)
from gateway.authz import Authorizer, policy_fingerprint, policy_scopes
from gateway.browser_files import BrowserFiles
from gateway.bulk_export import BulkExports, export_routes
from gateway.change_hub import ChangeHub
from gateway.config import Settings, load_settings
from gateway.console import routes as console_routes
from gateway.console_oidc import ConsoleSignIn
from gateway.context import Context
from gateway.db import AppShares, create_pool
from gateway.demo_authorize import authorize
from gateway.fhir_api import BASE_PATH, FhirDoor, read_routes
from gateway.fhir_transaction import transaction
from gateway.graphql_http import GraphQLHttp
from gateway.jwks import RemoteJwks, StaticKeys
from gateway.live import ABANDONED_KEY, INIT_TIMEOUT, JournalSocket
from gateway.rate_limits import LeasingRateLimiter, PostgresRateLimiter, RedisRateLimiter
from gateway.registry import AppStatus
from gateway.runtime import Runtime, runtime_of
from gateway.schema import build_schema
from gateway.telemetry import setup_logging, setup_tracing, traced
from gateway.token_endpoint import TokenEndpoint
from gateway.trusted_documents import TrustedDocuments
from gateway.webhook_worker import WebhookWorker

log = logging.getLogger(__name__)


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view, for what it does well: websockets speaking graphql-transport-ws through
    `JournalSocket` (gateway/live.py). HTTP requests go to `GraphQLHttp`; the GraphiQL page is ours
    (gateway/browser_files.py: every file from this gateway, none from a CDN)."""

    graphql_transport_ws_handler_class = JournalSocket

    def __init__(self, *args: Any, files: BrowserFiles, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            try:
                await super().__call__(scope, receive, send)
            except asyncio.CancelledError:
                if not scope.get(ABANDONED_KEY):
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
            return
        await self._files.graphiql()(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context | None:  # type: ignore[override]
        """A websocket gets its context when `connection_init` authenticates it (gateway/live.py)."""
        return None

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        """orjson refuses invalid UTF-8, lone surrogates and nesting deeper than 1024 as JSON errors."""
        return orjson.loads(data)


class GraphQLEndpoint:
    """`/graphql`: the GraphiQL page for a browser (where introspection is on), websockets to strawberry's
    view, and every other HTTP request through authentication to the GraphQL-over-HTTP transport."""

    def __init__(self, view: GraphQLView, http: ASGIApp, graphiql: bool) -> None:
        self._view = view
        self._http = http
        self._graphiql = graphiql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" or (self._graphiql and is_graphiql_page(scope)):
            await self._view(scope, receive, send)
        else:
            await self._http(scope, receive, send)


async def live(request: Request) -> Response:
    """Liveness: the process answers HTTP. Restart it only when this fails, never for a component outage."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: the database and the PDP answer, each named with `ok` or `unavailable` and nothing more
    (what failed inside goes to the log, not to unauthenticated callers)."""
    runtime = runtime_of(request.scope)
    checks: dict[str, str] = {}
    try:
        await runtime.pool.fetchval("SELECT 1")
        checks["database"] = "ok"
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        log.warning("readiness: the database does not answer: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    try:
        await runtime.cerbos.server_info()
        checks["cerbos"] = "ok"
    except Exception as exc:  # any failure of the PDP client means "not ready"
        log.warning("readiness: the PDP does not answer: %s", type(exc).__name__)
        checks["cerbos"] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


async def jwks(request: Request) -> Response:
    """The demo issuer's public keys."""
    return JSONResponse(demo_issuer.public_keyset(runtime_of(request.scope).issuer_key).as_dict(private=False))


async def openid_configuration(request: Request) -> Response:
    """The demo issuer's discovery document, its URLs at the public URL (never at the Host header's)."""
    settings = runtime_of(request.scope).settings
    return JSONResponse(demo_issuer.discovery_document(settings.issuer, settings.base_url))


async def token(request: Request) -> Response:
    """The demo issuer's token endpoint (client credentials for backend services, authorization codes for
    user-facing apps)."""
    return await runtime_of(request.scope).token_endpoint(request)


def create_app(settings: Settings | None = None) -> Any:
    """The ASGI application; `DATABASE_URL` and `CERBOS_URL` must name running components
    (`akson serve` starts them when they are not given)."""
    settings = settings or load_settings()
    if not settings.database_url or not settings.cerbos_url:
        raise RuntimeError("DATABASE_URL and CERBOS_URL must be set; `akson serve` starts both for you")
    problems = [] if settings.demo else settings.production_problems()
    if problems:
        raise RuntimeError("refusing to start outside demo mode: " + "; ".join(problems))
    setup_logging()
    setup_tracing(settings.traces_exporter)
    if settings.audit_disabled_for_benchmark:
        log.warning("AUDIT IS OFF (AKSON_BENCHMARK_WITHOUT_AUDIT=1): for measuring its cost only, never for real use")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert settings.database_url and settings.cerbos_url
        pool = await create_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.database_pool_size,
            statement_timeout_ms=int(settings.request_deadline_seconds * 1000),
        )
        cerbos = AsyncCerbosClient(
            settings.cerbos_url.removeprefix("grpc://"),
            timeout_secs=5,
            # gRPC's default reconnect backoff grows to two minutes: after a PDP restart requests kept
            # failing for 27 s. Retrying at least every `pdp_reconnect_seconds` bounds that.
            channel_options={
                "grpc.initial_reconnect_backoff_ms": 100,
                "grpc.min_reconnect_backoff_ms": 100,
                "grpc.max_reconnect_backoff_ms": int(settings.pdp_reconnect_seconds * 1000),
            },
        )
        key = demo_issuer.load_or_create_key(settings.demo_key_path)
        keys: RemoteJwks | StaticKeys = (
            RemoteJwks(settings.jwks_url, min_refetch_seconds=settings.jwks_min_refetch_seconds)
            if settings.jwks_url
            else StaticKeys(demo_issuer.public_keyset(key))
        )
        app_status = AppStatus(pool)
        verifier = TokenVerifier(
            keys, issuer=settings.issuer, audience=settings.audience, claim_names=settings.claim_names
        )
        authorizer = Authorizer(cerbos, policy_fingerprint(settings.policy_dir), policy_scopes(settings.policy_dir))
        authenticator = Authenticator(verifier, pool, settings.claim_names, app_status, settings.principal_keep_seconds)
        audit_writer = AuditWriter(pool)
        hub = ChangeHub(settings.database_url, settings.change_poll_seconds)
        await hub.start()
        webhooks = WebhookWorker(settings, settings.database_url, pool, authorizer, authenticator, audit_writer, hub)
        await webhooks.start()
        app.state.runtime = Runtime(
            settings=settings,
            pool=pool,
            authorizer=authorizer,
            authenticator=authenticator,
            app_status=app_status,
            token_endpoint=TokenEndpoint(
                pool, key, settings.issuer, settings.audience, f"{settings.base_url}/oauth/token"
            ),
            cerbos=cerbos,
            issuer_key=key,
            audit_writer=audit_writer,
            hub=hub,
            webhooks=webhooks,
            trusted_documents=TrustedDocuments(pool),
            rate_limiter=LeasingRateLimiter(
                RedisRateLimiter(settings.redis_url) if settings.redis_url else PostgresRateLimiter(pool)
            ),
            app_shares=AppShares(pool, settings.database_pool_size),
            exports=BulkExports(settings, pool),
            console_sign_in=ConsoleSignIn(settings) if settings.console_client_id and not settings.demo else None,
        )
        await app.state.runtime.exports.start_sweeping()
        watcher = asyncio.create_task(authorizer.watch(settings.policy_dir))
        # What start-up built (schema, policies, pools) lives as long as the process: kept out of the
        # collector's full passes, which otherwise walk it all and stall requests (Q1's p99, bench/PROFILE.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            watcher.cancel()
            await app.state.runtime.exports.close()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await webhooks.stop()
            await hub.stop()
            await cerbos.close()  # type: ignore[no-untyped-call]
            app.state.runtime.rate_limiter.close()
            await pool.close()

    schema = build_schema(settings)
    files = BrowserFiles(settings.project_dir)
    view = GraphQLView(
        schema,
        files=files,
        graphql_ide="graphiql",
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=INIT_TIMEOUT,
        max_subscriptions_per_connection=settings.subscriptions_per_connection,
    )
    fhir = FhirDoor(
        [
            *(Route(path, transaction, methods=["POST"]) for path in (BASE_PATH, f"{BASE_PATH}/")),
            *export_routes(),
            *read_routes(),
        ],
        settings.base_url,
    )
    routes = [
        Route(
            "/graphql",
            GraphQLEndpoint(
                view,
                AuthenticationMiddleware(
                    GraphQLHttp(schema), lambda scope: runtime_of(scope).authenticator, settings.base_url
                ),
                graphiql=settings.introspection,
            ),
        ),
        WebSocketRoute("/graphql", view),
        Route(BASE_PATH, fhir, methods=["POST"]),
        Route(BASE_PATH + "/{rest:path}", fhir),
        Route("/assets/{name}", files.asset),
        *console_routes(),
        Route("/healthz", ready),
        Route("/healthz/ready", ready),
        Route("/healthz/live", live),
    ]
    if settings.demo:
        routes += [
            Route("/.well-known/jwks.json", jwks),
            Route("/.well-known/openid-configuration", openid_configuration),
            Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
            Route("/oauth/token", token, methods=["POST"]),
        ]
    app = Starlette(routes=routes, lifespan=lifespan)
    return traced(app)
