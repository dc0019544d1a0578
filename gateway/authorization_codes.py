"""Authorization codes of the demo issuer (RFC 6749 section 4.1 with PKCE, RFC 7636, S256 only): checking an
authorization request against the app registry, issuing a code, redeeming it for tokens.

A code is kept as its SHA-256, bound to its client, redirect URI, PKCE challenge and the person who signed in,
lives one minute and is redeemed once (a DELETE ... RETURNING). The app is a public client: the PKCE verifier,
not a secret, proves that who redeems a code is who asked for it. The sign-in page is gateway/demo_authorize.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
from joserfc.jwk import ECKey
from starlette.responses import RedirectResponse

from gateway import demo_issuer
from gateway.personas import PERSONAS, Persona
from gateway.resources import KINDS
from gateway.scopes import within
from gateway.trusted_documents import sha256_of

CODE_SECONDS = 60
PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")


class FlowError(Exception):
    """A request the issuer answers without sending the person back to the app (unknown app or redirect URI)."""


@dataclass(frozen=True)
class FlowRequest:
    """An authorization request that names an approved user-facing app and one of its redirect URIs."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str
    registered_scopes: frozenset[str]
    error: tuple[str, str] | None

    def hidden_fields(self) -> dict[str, str]:
        """What the sign-in form carries back to the POST."""
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }


async def flow_request(pool: asyncpg.Pool, values: dict[str, str]) -> FlowRequest:
    """The checked request. Without a known app and its redirect URI there is nowhere safe to send an error,
    so FlowError; every other problem is carried in `error` for the redirect (RFC 6749 4.1.2.1)."""
    client_id = values.get("client_id", "")
    redirect_uri = values.get("redirect_uri", "")
    row = await pool.fetchrow(
        "SELECT kind, status, redirect_uris, requested_scopes FROM app WHERE client_id = $1", client_id
    )
    if row is None or row["kind"] != "user-facing":
        raise FlowError("no user-facing app is registered with this client id")
    if row["status"] != "approved":
        # Nobody has vouched for a pending, suspended or revoked app's redirect URIs: send no one there.
        raise FlowError(f"the app is {row['status']}, not approved")
    if redirect_uri not in row["redirect_uris"] or redirect_origin(redirect_uri) is None:
        raise FlowError("the redirect URI is not one the app registered")
    scope = " ".join(values.get("scope", "").split())
    error: tuple[str, str] | None = None
    if values.get("response_type") != "code":
        error = ("unsupported_response_type", "only response_type=code is supported")
    elif values.get("code_challenge_method") != "S256" or not PKCE_VALUE.fullmatch(values.get("code_challenge", "")):
        error = ("invalid_request", "PKCE is required: a code_challenge with code_challenge_method=S256")
    elif not scope or not within(scope, list(row["requested_scopes"]), set(KINDS)):
        error = ("invalid_scope", "ask for scopes the app registered, or narrower ones")
    return FlowRequest(
        client_id,
        redirect_uri,
        scope,
        values.get("state", ""),
        values.get("nonce", ""),
        values.get("code_challenge", ""),
        frozenset(row["requested_scopes"]),
        error,
    )


def redirect_origin(uri: str) -> str | None:
    """The origin of a redirect URI as a Content-Security-Policy source (`scheme://host[:port]`), or None when its
    host is not a plain DNS name or IPv4 address (a policy could not name it, or it would smuggle in directives)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or parts.username or not re.fullmatch(r"[a-z0-9.-]+", host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def back_to_app(flow: FlowRequest, issuer: str, **answer: str) -> RedirectResponse:
    """Send the person back to the app's redirect URI with the answer, its state and the issuer (RFC 9207)."""
    query = urlencode({**answer, **({"state": flow.state} if flow.state else {}), "iss": issuer})
    separator = "&" if urlsplit(flow.redirect_uri).query else "?"
    return RedirectResponse(f"{flow.redirect_uri}{separator}{query}", status_code=303)


def granted_scope(requested: str, persona: Persona) -> str:
    """The requested scopes that fit the person: `user/` scopes for personnel, `patient/` and `launch/patient`
    for citizens (a person's token never carries what only the other kind may use)."""
    foreign = ("patient/", "launch/") if persona.kind == "personnel" else ("user/",)
    return " ".join(s for s in requested.split() if not s.startswith(foreign))


async def issue_code(pool: asyncpg.Pool, flow: FlowRequest, persona: Persona) -> str:
    """A one-minute, one-use code for this person, bound to the request."""
    code = secrets.token_urlsafe(32)
    await pool.execute("DELETE FROM oauth_authorization_code WHERE expires_at <= now()")
    await pool.execute(
        "INSERT INTO oauth_authorization_code (code_hash, client_id, redirect_uri, code_challenge, persona, scope, "
        "nonce, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        sha256_of(code),
        flow.client_id,
        flow.redirect_uri,
        flow.code_challenge,
        persona.name,
        granted_scope(flow.scope, persona),
        flow.nonce or None,
        datetime.now(UTC) + timedelta(seconds=CODE_SECONDS),
    )
    return code


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def redeem_code(
    pool: asyncpg.Pool, form: dict[str, str], key: ECKey, issuer: str, audience: str
) -> dict[str, Any] | tuple[str, str]:
    """The token response for a code (used up whether or not it redeems), or an RFC 6749 5.2 error."""
    row = await pool.fetchrow(
        "DELETE FROM oauth_authorization_code WHERE code_hash = $1 RETURNING *, expires_at > now() AS fresh",
        sha256_of(form.get("code", "")),
    )
    if row is None or not row["fresh"]:
        return ("invalid_grant", "the code is unknown, used or expired")
    if form.get("client_id") != row["client_id"] or form.get("redirect_uri") != row["redirect_uri"]:
        return ("invalid_grant", "the code was issued to another client or redirect URI")
    verifier = form.get("code_verifier", "")
    if not PKCE_VALUE.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), row["code_challenge"]):
        return ("invalid_grant", "the code_verifier does not match the code_challenge")
    status = await pool.fetchval("SELECT status FROM app WHERE client_id = $1", row["client_id"])
    if status != "approved":
        return ("unauthorized_client", f"the app is {status}")
    persona = PERSONAS[row["persona"]]
    granted = row["scope"].split()
    claims = {
        **demo_issuer.persona_claims(persona, issuer=issuer, audience=audience),
        "client_id": row["client_id"],
        "scope": row["scope"],
    }
    if "launch/patient" not in granted:
        claims.pop(demo_issuer.CLAIM_LAUNCH_PATIENT, None)
    answer: dict[str, Any] = {
        "access_token": demo_issuer.sign(claims, key),
        "token_type": "Bearer",
        "expires_in": demo_issuer.TOKEN_LIFETIME_SECONDS,
        "scope": row["scope"],
    }
    if "openid" not in granted:
        return answer
    id_claims = {
        "iss": issuer,
        "aud": row["client_id"],
        "sub": claims["sub"],
        "iat": int(time.time()),
        "exp": claims["exp"],
        "auth_time": int(row["expires_at"].timestamp()) - CODE_SECONDS,
        "name": f"{persona.given_name} {persona.family_name}".strip() or persona.name,
        **({"nonce": row["nonce"]} if row["nonce"] else {}),
    }
    return {**answer, "id_token": demo_issuer.sign(id_claims, key, typ="JWT")}
