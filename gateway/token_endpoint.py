"""The demo issuer's token endpoint: client credentials with `private_key_jwt` (RFC 7523), as HelseID
requires of backend services. A registered, approved backend service proves possession of a key it
registered and receives a short-lived system access token for (a subset of) its registered scopes. A
user-facing app redeems an authorization code here with its PKCE verifier (gateway/authorization_codes.py).
Errors follow RFC 6749 section 5.2.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import asyncpg
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway import demo_issuer
from gateway.auth import ALLOWED_ALGORITHMS
from gateway.authorization_codes import redeem_code
from gateway.registry import client_keys

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SYSTEM_TOKEN_SECONDS = 300
MAX_ASSERTION_SECONDS = 300


def _error(code: str, description: str, status: int = 400) -> Response:
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers={"Cache-Control": "no-store"}
    )


class TokenEndpoint:
    """Issues system tokens; remembers assertion ids to refuse replays (per process)."""

    def __init__(self, pool: asyncpg.Pool, key: ECKey, issuer: str, audience: str, url: str) -> None:
        self._pool = pool
        self._url = url
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._seen: dict[str, float] = {}

    async def __call__(self, request: Request) -> Response:
        """POST /oauth/token (application/x-www-form-urlencoded)."""
        form = await request.form()
        if form.get("grant_type") == "authorization_code":
            answer = await redeem_code(
                self._pool, {k: str(v) for k, v in form.items()}, self._key, self._issuer, self._audience
            )
            if isinstance(answer, tuple):
                return _error(*answer)
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})
        if form.get("grant_type") != "client_credentials":
            return _error("unsupported_grant_type", "only client_credentials and authorization_code are supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            return _error("invalid_client", "authenticate with a private_key_jwt client assertion", 401)
        assertion = str(form["client_assertion"])
        client_id = _claimed_client(assertion)
        if client_id is None:
            return _error("invalid_client", "the client assertion is not a JWT naming its client (iss and sub)", 401)
        registered = await client_keys(self._pool, client_id)
        if registered is None:
            return _error("invalid_client", "no approved backend service with registered keys has this client id", 401)
        keys, scopes = registered
        problem = self._check_assertion(assertion, keys, client_id, self._url)
        if problem:
            return _error("invalid_client", problem, 401)
        asked = str(form.get("scope") or " ".join(scopes)).split()
        if not set(asked) <= set(scopes):
            return _error("invalid_scope", "the requested scopes exceed the app's registered scopes")
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": now + SYSTEM_TOKEN_SECONDS,
            "jti": uuid.uuid4().hex,
            "sub": client_id,
            "client_id": client_id,
            "scope": " ".join(asked),
        }
        return JSONResponse(
            {
                "access_token": demo_issuer.sign(claims, self._key),
                "token_type": "Bearer",
                "expires_in": SYSTEM_TOKEN_SECONDS,
                "scope": " ".join(asked),
            },
            headers={"Cache-Control": "no-store"},
        )

    def _check_assertion(self, assertion: str, keys: Any, client_id: str, endpoint: str) -> str | None:
        try:
            claims = jwt.decode(assertion, keys, algorithms=ALLOWED_ALGORITHMS).claims
            jwt.JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": client_id},
                sub={"essential": True, "value": client_id},
                aud={"essential": True, "values": [endpoint, self._issuer]},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, KeyError) as exc:
            return f"the client assertion is not valid: {getattr(exc, 'description', None) or type(exc).__name__}"
        now = time.time()
        if int(claims["exp"]) > now + MAX_ASSERTION_SECONDS:
            return "the client assertion lives too long (at most 5 minutes)"
        self._seen = {jti: until for jti, until in self._seen.items() if until > now}
        if claims["jti"] in self._seen:
            return "the client assertion was used before"
        self._seen[str(claims["jti"])] = float(claims["exp"]) + 30
        return None


def _claimed_client(assertion: str) -> str | None:
    """The client id an assertion claims, read before its signature can be checked (to find the keys)."""
    try:
        payload = assertion.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or claims.get("iss") != claims.get("sub") or not isinstance(claims.get("iss"), str):
        return None
    return str(claims["iss"])
