"""The console's sign-in outside demo mode: the OpenID Connect authorization-code flow with PKCE (S256) at the
issuer the gateway trusts, as the client `AKSON_CONSOLE_CLIENT_ID`.

Starting, the console keeps a random state, nonce and PKCE verifier on the server (`console_sign_in`, found by
the SHA-256 of an HttpOnly cookie; ten minutes, used once) and sends the person to the issuer's authorization
endpoint. Back at `/console/callback`, the state must be the one this browser started with; the code is
redeemed with the verifier at the token endpoint; the ID token must be the issuer's, for this client, with this
nonce; and the access token must be one the gateway itself accepts, of a person. Only then is a session made.
The endpoints come from the issuer's discovery document, which must name the trusted issuer.

Hand-written over httpx: the flow is a URL, one POST and two token checks the gateway already makes, and
Authlib's httpx client (the library that would do it) is deprecated in favour of another HTTP library.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx

from gateway.auth import Authenticator, Principal, credentials
from gateway.authorization_codes import s256
from gateway.config import Settings
from gateway.errors import AksonError
from gateway.trusted_documents import sha256_of

SIGN_IN_SECONDS = 600
CALLBACK_PATH = "/console/callback"


class SignInFailed(Exception):
    """Why a sign-in did not end in a session: said on the page, with no token or code in it."""


@dataclass(frozen=True)
class Provider:
    """The issuer's endpoints, from its discovery document, and whether its answers name it (RFC 9207)."""

    authorization_endpoint: str
    token_endpoint: str
    names_itself: bool


@dataclass(frozen=True)
class SignedIn:
    """What a finished sign-in gives the console: the person's access token, when it ends, who it names and
    the name the issuer gives them (the ID token's `name`, else its subject)."""

    access_token: str
    expires: datetime
    principal: Principal
    name: str
    replaces_session: str | None


class ConsoleSignIn:
    """The console as an OpenID Connect client of the trusted issuer (one per process; discovery is kept)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.console_client_id is not None
        self._settings = settings
        self._client_id = settings.console_client_id
        self._provider: Provider | None = None

    @property
    def redirect_uri(self) -> str:
        """Where the issuer sends the person back: registered with the issuer for this client."""
        return f"{self._settings.base_url}{CALLBACK_PATH}"

    async def provider(self) -> Provider:
        """The issuer's endpoints; the discovery document must be the trusted issuer's and offer PKCE S256."""
        if self._provider is None:
            try:
                async with httpx.AsyncClient(timeout=10) as client:
                    response = await client.get(self._settings.oidc_discovery_url)
                response.raise_for_status()
                document: dict[str, Any] = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise SignInFailed("the issuer's discovery document cannot be read") from exc
            if document.get("issuer") != self._settings.issuer:
                raise SignInFailed("the discovery document names another issuer than the one this gateway trusts")
            if "S256" not in document.get("code_challenge_methods_supported", ["S256"]):
                raise SignInFailed("the issuer does not offer PKCE with S256")
            try:
                self._provider = Provider(
                    str(document["authorization_endpoint"]),
                    str(document["token_endpoint"]),
                    document.get("authorization_response_iss_parameter_supported") is True,
                )
            except KeyError as exc:
                raise SignInFailed("the discovery document has no authorization or token endpoint") from exc
        return self._provider

    async def start(self, pool: asyncpg.Pool, replaces_session: str | None) -> tuple[str, str]:
        """A new sign-in (ending, when it succeeds, the session whose id hash is given): the cookie that finds it
        and the issuer URL to send the person to."""
        provider = await self.provider()
        cookie, state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        await pool.execute("DELETE FROM console_sign_in WHERE expires_at <= now()")
        await pool.execute(
            "INSERT INTO console_sign_in (id_hash, state, nonce, code_verifier, replaces_session, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            sha256_of(cookie),
            state,
            nonce,
            verifier,
            replaces_session,
            datetime.now(UTC) + timedelta(seconds=SIGN_IN_SECONDS),
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self._settings.console_scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        return cookie, f"{provider.authorization_endpoint}{separator}{query}"

    async def finish(
        self, pool: asyncpg.Pool, authenticator: Authenticator, cookie: str, answer: dict[str, str]
    ) -> SignedIn:
        """The person's token from the issuer's answer at the callback, checked end to end."""
        row = await pool.fetchrow(
            "DELETE FROM console_sign_in WHERE id_hash = $1 RETURNING state, nonce, code_verifier, replaces_session, "
            "expires_at > now() AS fresh",
            sha256_of(cookie),
        )
        if row is None or not row["fresh"]:
            raise SignInFailed("no sign-in was started in this browser, or it took longer than ten minutes")
        if not hmac.compare_digest(answer.get("state", "").encode(), row["state"].encode()):
            raise SignInFailed("the issuer's answer belongs to another sign-in")
        provider = await self.provider()
        named = answer.get("iss")
        if (named is None and provider.names_itself) or named not in (None, self._settings.issuer):
            raise SignInFailed("the answer does not come from the issuer this gateway trusts")
        if "error" in answer:
            raise SignInFailed(f"the issuer answered {answer['error']}: {answer.get('error_description', '')}")
        tokens = await self._redeem(answer.get("code", ""), row["code_verifier"])
        try:
            identity = await authenticator.verifier.verify_id_token(
                str(tokens.get("id_token", "")), client_id=self._client_id, nonce=row["nonce"]
            )
            access_token = str(tokens.get("access_token", ""))
            claims, principal = await authenticator.authenticate_claims(
                credentials(f"Bearer {access_token}", None, "GET", self.redirect_uri)
            )
        except AksonError as exc:
            raise SignInFailed(exc.message) from exc
        if principal.kind == "service" or identity["sub"] != claims["sub"]:
            raise SignInFailed("the tokens do not name one person")
        name = str(identity.get("name") or identity["sub"])
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        return SignedIn(access_token, expires, principal, name, row["replaces_session"])

    async def _redeem(self, code: str, verifier: str) -> dict[str, Any]:
        provider = await self.provider()
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    provider.token_endpoint,
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": self.redirect_uri,
                        "client_id": self._client_id,
                        "code_verifier": verifier,
                    },
                    headers={"Accept": "application/json"},
                )
            tokens = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed("the issuer's token endpoint does not answer") from exc
        if not isinstance(tokens, dict):
            raise SignInFailed("the issuer's token endpoint answered no JSON object")
        if response.status_code != 200:
            raise SignInFailed(f"the issuer refused the code: {tokens.get('error', response.status_code)}")
        return tokens
