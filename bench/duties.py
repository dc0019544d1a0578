"""Q1's duties without the serving stack: what any gateway must do to return one patient lawfully,
measured with no GraphQL, no HTTP framework and no tracing around it.

Per request, with the gateway's own classes and settings: verify the token and look the person up in the
journal (`Authenticator`), read the patient with its policy attributes and ask the PDP about it
(`Store.by_ids`, one CheckResources call or its remembered answer), and commit the audit record before
answering (`AuditTrail.flush` through the `AuditWriter`). The answer is the same patient the gateway returns.
The difference to the gateway is the cost of its serving stack; the difference to PostGraphile is the cost
of the duties themselves, which no serving stack can remove.

A bare ASGI app under the same server as the gateway (uvicorn with uvloop and httptools, the same worker
count), with its own Cerbos PDP. POST /q1 `{"id": "<global id>"}` with the gateway's bearer token.
Run: `DATABASE_URL=... AKSON_DATA_DIR=... python -m bench.duties --port P --workers W`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import uvicorn
from cerbos.sdk.grpc.client import AsyncCerbosClient

from bench.floor import lifespan, request_body, server_arguments
from gateway import demo_issuer
from gateway import resources as K
from gateway.audit import AuditTrail, AuditWriter
from gateway.auth import Authenticator, TokenVerifier, credentials, send_error
from gateway.authz import Authorizer, policy_fingerprint, policy_scopes
from gateway.cli import SERVER
from gateway.components import start_components
from gateway.config import load_settings
from gateway.db import create_pool
from gateway.errors import AksonError, Forbidden
from gateway.jwks import StaticKeys
from gateway.registry import AppStatus
from gateway.store import Store, parse_global_id

HEADERS = [(b"content-type", b"application/json")]
FIELDS = ("id", "national_id", "family_name", "given_name", "birth_date", "gender")


@dataclass
class Parts:
    """The gateway's components this app uses, built as the gateway builds them."""

    pool: asyncpg.Pool
    authenticator: Authenticator
    authorizer: Authorizer
    writer: AuditWriter
    max_page_size: int


async def build() -> Parts:
    """The same pool, PDP client, token check and audit writer as the gateway, from the same settings."""
    settings = load_settings()
    assert settings.database_url and settings.cerbos_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=settings.database_pool_size)
    cerbos = AsyncCerbosClient(settings.cerbos_url.removeprefix("grpc://"), timeout_secs=5)
    key = demo_issuer.load_or_create_key(settings.demo_key_path)
    verifier = TokenVerifier(
        StaticKeys(demo_issuer.public_keyset(key)),
        issuer=settings.issuer,
        audience=settings.audience,
        claim_names=settings.claim_names,
    )
    return Parts(
        pool=pool,
        authenticator=Authenticator(verifier, pool, settings.claim_names, AppStatus(pool)),
        authorizer=Authorizer(cerbos, policy_fingerprint(settings.policy_dir), policy_scopes(settings.policy_dir)),
        writer=AuditWriter(pool),
        max_page_size=settings.max_page_size,
    )


class Duties:
    """The ASGI app: authenticate, read and decide, audit, answer."""

    def __init__(self) -> None:
        self.parts: Parts | None = None

    async def start(self) -> None:
        self.parts = await build()

    async def stop(self) -> None:
        if self.parts is not None:
            await self.parts.pool.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.start, self.stop)
            return
        body = await request_body(receive)
        assert self.parts is not None
        try:
            answer = await self.patient(self.parts, scope, body)
        except AksonError as exc:
            await send_error(send, exc)
            return
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": answer})

    @staticmethod
    async def patient(parts: Parts, scope: dict[str, Any], body: bytes) -> bytes:
        """One patient by global id, with every duty the gateway has for it."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        presented = credentials(headers.get("authorization"), headers.get("dpop"), scope["method"], "")
        principal = await parts.authenticator.authenticate(presented)
        _, raw = parse_global_id(str(orjson.loads(body)["id"]), K.PATIENT)
        audit = AuditTrail(principal, parts.authorizer.policy_version)
        store = Store(parts.pool, parts.authorizer, principal, audit, parts.max_page_size)
        (row,) = await store.by_ids(K.PATIENT, [raw])
        await audit.flush(parts.writer)
        if isinstance(row, Exception):
            raise row if isinstance(row, AksonError) else Forbidden("not allowed", reason="DENIED")
        return orjson.dumps({"patient": {name: row[name] for name in FIELDS}}, default=str)


app = Duties()


def main() -> None:
    """Start a Cerbos PDP of its own (as `akson serve` does) and serve the app with the gateway's server settings."""
    args = server_arguments(__doc__.splitlines()[0])
    components = start_components(load_settings())
    try:
        os.environ["DATABASE_URL"] = components.database_url
        os.environ["CERBOS_URL"] = components.cerbos_target
        uvicorn.run("bench.duties:app", host="127.0.0.1", port=args.port, workers=args.workers, **SERVER)
    finally:
        components.stop()


if __name__ == "__main__":
    main()
