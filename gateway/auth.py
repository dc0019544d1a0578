"""Authentication: bearer token -> verified claims -> Principal (who calls, through which app, why).

The token is checked with joserfc (signature against the issuer's keys, an allow-list of asymmetric
algorithms, issuer, audience, expiry and not-before with a small clock skew). The person it names is
then looked up in the journal: personnel get their active units and roles from PractitionerRole, a
citizen gets their patient id. Every failure is an `Unauthenticated` (HTTP 401, WWW-Authenticate) or,
for a valid token naming nobody the journal knows, a `Forbidden` (HTTP 403).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import asyncpg
import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.claims import ClaimNames
from gateway.dpop import PROOF_ALGORITHMS, DpopVerifier
from gateway.errors import (
    AksonError,
    DpopTokenRejected,
    Forbidden,
    ServiceUnavailable,
    Unauthenticated,
    as_client_error,
    http_error_body,
)
from gateway.personas import PrincipalKind
from gateway.resources import KINDS
from gateway.scopes import InvalidScope, ScopeGrants, grants, parse_scopes

ALLOWED_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
NATIONAL_ID = re.compile(r"[0-9]{11}")
CLOCK_SKEW_SECONDS = 30
# Units whose backend services deliver results rather than act within care relations.
DIAGNOSTIC_UNITS = frozenset({"laboratorium", "radiologi"})
PRINCIPAL_SCOPE_KEY = "akson.principal"
CLAIMS_SCOPE_KEY = "akson.claims"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """The caller as policy sees it; every field is passed to Cerbos as an attribute or role."""

    kind: PrincipalKind
    id: str
    client_id: str
    roles: frozenset[str]
    unit_ids: tuple[str, ...] = ()
    # Per role, the units it is held in (sorted): a person acts in a unit in the roles they hold there.
    role_units: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Municipalities whose directory the person keeps (municipal_admin).
    admin_municipality_ids: tuple[str, ...] = ()
    hpr_number: str | None = None
    patient_id: str | None = None
    guardian_of: tuple[str, ...] = ()
    attorney_for: tuple[str, ...] = ()
    emergency_patient_ids: frozenset[str] = frozenset()
    home_scopes: tuple[str, ...] = ()
    purpose_of_use: str | None = None
    self_attested: bool = False
    scopes: tuple[str, ...] = ()
    launch_patient_id: str | None = None
    grants: ScopeGrants = field(default_factory=lambda: ScopeGrants((), (), (), (), {}))
    # The `principal_epoch` the journal was at when this was read, and whether it was kept from an earlier
    # request: a kept principal is used only where a statement proves the epoch unchanged.
    epoch: int | None = field(default=None, compare=False)
    kept: bool = field(default=False, compare=False)

    @property
    def ref(self) -> str:
        """Who this is in the journal's records of its writes: `kind:id`."""
        return f"{self.kind}:{self.id}"

    @property
    def practitioner_id(self) -> str | None:
        """The practitioner behind the call, when it is personnel."""
        return self.id if self.kind == "personnel" else None


class KeySource(Protocol):
    """Where verification keys come from: the demo key, or the issuer's JWKS URL."""

    async def for_kid(self, kid: str | None) -> KeySet: ...


class AppGate(Protocol):
    """Whether the calling app may use the API now (the app registry's status check)."""

    async def require_approved(self, client_id: str, *, fresh: bool = False) -> None: ...


class TokenVerifier:
    """Checks a JWT against the trusted issuer's keys and the claims every token must carry."""

    KEPT_TOKENS = 10_000

    def __init__(self, keys: KeySource, *, issuer: str, audience: str, claim_names: ClaimNames) -> None:
        self._keys = keys
        self._issuer = issuer
        essential: dict[str, jwt.ClaimsOption] = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": audience},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "sub": {"essential": True},
            claim_names.client_id: {"essential": True},
        }
        self._registry = jwt.JWTClaimsRegistry(None, CLOCK_SKEW_SECONDS, **essential)
        self._verified: dict[str, dict[str, Any]] = {}

    async def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token; raises Unauthenticated saying what is wrong, without echoing it. A token
        whose signature was verified once is not verified again: its claims are kept (a bounded number of
        tokens) and checked for expiry on every use."""
        known = self._verified.get(token)
        if known is not None:
            try:
                return _validated(self._registry, known, "bearer token")
            except Unauthenticated:
                del self._verified[token]
                raise
        claims = await self._verify(token)
        if len(self._verified) >= self.KEPT_TOKENS:
            self._verified.clear()
        self._verified[token] = claims
        return dict(claims)

    async def verify_id_token(self, token: str, *, client_id: str, nonce: str) -> dict[str, Any]:
        """The claims of an OpenID Connect ID token the issuer gave `client_id` for the sign-in that sent
        `nonce` (the console's sign-in); raises Unauthenticated otherwise. An access token is no ID token."""
        decoded = await self._decode(token)
        if str(decoded.header.get("typ", "JWT")).lower() in ACCESS_TOKEN_TYPES:
            raise Unauthenticated("ID token rejected: it is an access token")
        registry = jwt.JWTClaimsRegistry(
            None,
            CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        return _validated(registry, decoded.claims, "ID token")

    async def _verify(self, token: str) -> dict[str, Any]:
        decoded = await self._decode(token)
        if str(decoded.header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise Unauthenticated("bearer token rejected: not an access token (typ must be at+jwt)")
        return _validated(self._registry, decoded.claims, "bearer token")

    async def _decode(self, token: str) -> jwt.Token:
        """A JWT whose signature verifies with one of the issuer's published keys."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthenticated(f"bearer token rejected: {_describe(exc)}") from exc
        kid = header.get("kid")
        keys = await self._keys.for_kid(kid if isinstance(kid, str) else None)
        if isinstance(kid, str) and kid not in {k.kid for k in keys.keys}:
            raise Unauthenticated("bearer token rejected: signed with a key the issuer does not publish")
        try:
            return jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise Unauthenticated(f"bearer token rejected: {_describe(exc)}") from exc


def _validated(registry: jwt.JWTClaimsRegistry, claims: dict[str, Any], what: str) -> dict[str, Any]:
    """The claims, once the registry finds them valid; else Unauthenticated saying what is wrong with `what`."""
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise Unauthenticated(f"{what} rejected: {_describe(exc)}") from exc
    return dict(claims)


def _describe(exc: Exception) -> str:
    if isinstance(exc, JoseError):
        if exc.error == "bad_signature":
            return "signature does not verify"
        return (exc.description or exc.error).removeprefix("The ").rstrip(".")
    return "token is not a well-formed JWT"


@dataclass(frozen=True)
class Credentials:
    """What a request presents: the access token, how (Bearer or DPoP), and a DPoP proof if any."""

    token: str
    scheme: str
    dpop_proof: str | None
    method: str
    url: str


def credentials(authorization: str | None, dpop: str | None, method: str, url: str) -> Credentials:
    """The credentials of an `Authorization: Bearer|DPoP <token>` header."""
    if not authorization:
        raise Unauthenticated("missing bearer token: send `Authorization: Bearer <access token>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() not in {"bearer", "dpop"} or not token.strip():
        raise Unauthenticated("the Authorization header must use the Bearer (or DPoP) scheme")
    return Credentials(token.strip(), scheme.lower(), dpop, method, url)


KIND_OF_TYPE = {type_name: kind.name for type_name, kind in KINDS.items()}
PURPOSES_OF_USE = {"TREAT", "ETREAT", "COC", "POPHLTH", "HOPERAT", "HPAYMT"}


def _purpose_of_use(value: object) -> str:
    """The HL7 PurposeOfUse code the token states; treatment when the token states none."""
    if value is None:
        return "TREAT"
    if not isinstance(value, str) or value not in PURPOSES_OF_USE:
        raise Unauthenticated(
            f"bearer token rejected: purpose of use must be one of {', '.join(sorted(PURPOSES_OF_USE))}"
        )
    return value


def _launch_patient(value: object) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise Unauthenticated("bearer token rejected: the patient claim is not a patient id") from exc


def _national_id(value: object) -> str:
    if not isinstance(value, str) or not NATIONAL_ID.fullmatch(value):
        raise Unauthenticated("bearer token rejected: the person identifier claim is not an 11-digit national id")
    return value


class Authenticator:
    """Turns a request's Authorization header into a Principal, or refuses it."""

    KEPT_PRINCIPALS = 10_000

    def __init__(
        self,
        verifier: TokenVerifier,
        pool: asyncpg.Pool,
        claim_names: ClaimNames,
        apps: AppGate,
        keep_seconds: float = 300.0,
    ) -> None:
        self._verifier = verifier
        self._pool = pool
        self._names = claim_names
        self._apps = apps
        self._dpop = DpopVerifier()
        self._keep_seconds = keep_seconds
        # Principals kept between requests, by the claims they were made from, with the time (epoch
        # seconds) until which the journal's clock cannot change them (a grant's end, the next day).
        self._kept: dict[tuple[str, ...], tuple[Principal, float]] = {}

    @property
    def verifier(self) -> TokenVerifier:
        """The token checks, for a sign-in that must also check an ID token (the console's)."""
        return self._verifier

    async def authenticate(self, presented: Credentials) -> Principal:
        """The principal behind the credentials: verified token (and DPoP proof, when the token is
        bound to a key) plus who that person is in the journal."""
        _, principal = await self.authenticate_claims(presented)
        return principal

    async def authenticate_claims(self, presented: Credentials) -> tuple[dict[str, Any], Principal]:
        """The verified claims and the principal behind the credentials (a live connection keeps the
        claims, to look the principal up again while it lasts)."""
        claims = await self._verifier.verify(presented.token)
        self._check_binding(claims, presented)
        return claims, await self.reauthenticate(claims, fresh=False)

    async def reauthenticate(self, claims: dict[str, Any], *, fresh: bool = True) -> Principal:
        """The principal of claims verified earlier, as the journal and the app registry say now: the token
        must not have expired, the app must still be approved (`fresh`: asked of the database, not the
        cache), and the person must still be known with their current units, roles and grants (`fresh`:
        read now; otherwise possibly kept from an earlier request, marked `kept`, for the request's
        statements to prove current against `principal_epoch`)."""
        expires = claims.get("exp")
        now = time.time()
        if isinstance(expires, int | float) and expires + CLOCK_SKEW_SECONDS < now:
            raise Unauthenticated("the access token expired; connect again with a new token")
        try:
            await self._apps.require_approved(str(claims[self._names.client_id]), fresh=fresh)
        except asyncpg.PostgresError as exc:
            raise ServiceUnavailable("the journal database is unavailable; try again shortly") from exc
        key = self._key(claims)
        kept = self._kept.get(key)
        if not fresh and kept is not None and now < kept[1]:
            return kept[0]
        principal, valid_until = await self._principal_until(claims)
        if len(self._kept) >= self.KEPT_PRINCIPALS:
            self._kept.clear()
        self._kept[key] = (replace(principal, kept=True), min(valid_until, now + self._keep_seconds))
        return principal

    def _key(self, claims: dict[str, Any]) -> tuple[str, ...]:
        """Everything in claims a principal is made from."""
        names = self._names
        return tuple(
            str(claims.get(name, ""))
            for name in (
                names.client_id,
                names.scope,
                names.personnel_pid,
                names.citizen_pid,
                names.purpose_of_use,
                names.self_attested,
                names.launch_patient,
            )
        )

    async def principal_for(self, claims: dict[str, Any]) -> Principal:
        """Who verified claims name in the journal, with the app's scopes (also used by `akson policy explain`)."""
        principal, _ = await self._principal_until(claims)
        return principal

    async def _principal_until(self, claims: dict[str, Any]) -> tuple[Principal, float]:
        """The principal of verified claims as the journal says now, and until when (epoch seconds) the
        clock alone cannot change it: an emergency grant starting or ending, a role's or guardianship's
        period (by date)."""
        names = self._names
        client_id = str(claims[names.client_id])
        scopes = tuple(str(claims.get(names.scope, "")).split())
        try:
            granted = grants(parse_scopes(list(scopes), set(KINDS)), KIND_OF_TYPE)
        except InvalidScope as exc:
            raise Unauthenticated(f"bearer token rejected: {exc}") from exc
        launch = _launch_patient(claims.get(names.launch_patient))
        try:
            if personnel_pid := claims.get(names.personnel_pid):
                principal, valid_until = await self._personnel(_national_id(personnel_pid), claims, client_id)
            elif citizen_pid := claims.get(names.citizen_pid):
                principal, valid_until = await self._citizen(_national_id(citizen_pid), client_id)
            else:
                principal, valid_until = await self._service(client_id)
        except asyncpg.PostgresError as exc:
            raise ServiceUnavailable("the journal database is unavailable; try again shortly") from exc
        if principal.kind == "citizen":
            own = {principal.patient_id, *principal.guardian_of, *principal.attorney_for} - {None}
            if launch is not None and launch not in own:
                raise Forbidden(
                    "the token's patient is neither the citizen nor a child in their care",
                    reason="LAUNCH_PATIENT_NOT_OWN",
                )
            launch = launch or principal.patient_id
        return replace(principal, scopes=scopes, grants=granted, launch_patient_id=launch), valid_until

    async def service_principal(self, client_id: str, scopes: list[str]) -> Principal:
        """A backend app as it would be with a system token for `scopes` (the webhook worker acts for it)."""
        return await self.principal_for({self._names.client_id: client_id, self._names.scope: " ".join(scopes)})

    def _check_binding(self, claims: dict[str, Any], presented: Credentials) -> None:
        confirmation = claims.get("cnf")
        jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
        if jkt is None:
            if presented.scheme == "dpop":
                raise DpopTokenRejected("the DPoP scheme needs a DPoP-bound token (cnf.jkt)")
            return
        if presented.scheme != "dpop":
            raise DpopTokenRejected("this token is DPoP-bound: use `Authorization: DPoP <token>` with a DPoP proof")
        self._dpop.verify(
            presented.dpop_proof, access_token=presented.token, jkt=str(jkt), method=presented.method, url=presented.url
        )

    async def _personnel(self, national_id: str, claims: dict[str, Any], client_id: str) -> tuple[Principal, float]:
        row = await self._pool.fetchrow(
            """SELECT p.id, p.hpr_number,
                      coalesce(array_agg(DISTINCT r.organization_id::text)
                               FILTER (WHERE r.id IS NOT NULL), '{}') AS unit_ids,
                      coalesce(array_agg(DISTINCT r.role) FILTER (WHERE r.id IS NOT NULL), '{}') AS roles,
                      coalesce(array_agg(DISTINCT r.role || ' ' || r.organization_id::text)
                               FILTER (WHERE r.id IS NOT NULL), '{}') AS role_units,
                      ARRAY(SELECT pr.role FROM platform_role pr WHERE pr.national_id = p.national_id
                            ORDER BY 1) AS platform_roles,
                      ARRAY(SELECT pr.municipality_id::text FROM platform_role pr
                             WHERE pr.national_id = p.national_id AND pr.role = 'municipal_admin'
                            ORDER BY 1) AS admin_municipalities,
                      ARRAY(SELECT eg.patient_id::text FROM emergency_grant eg WHERE eg.practitioner_id = p.id
                               AND eg.granted_at <= now() AND eg.expires_at > now()) AS emergency_patients,
                      ARRAY(SELECT DISTINCT m.policy_scope FROM practitioner_role r2
                              JOIN organization o ON o.id = r2.organization_id
                              JOIN municipality m ON m.id = o.municipality_id
                             WHERE r2.practitioner_id = p.id AND m.policy_scope IS NOT NULL
                               AND r2.period_start <= current_date
                               AND (r2.period_end IS NULL OR r2.period_end >= current_date)
                             ORDER BY 1) AS home_scopes,
                      (SELECT epoch FROM principal_epoch) AS epoch,
                      extract(epoch FROM least(
                          (current_date + 1)::timestamptz,
                          (SELECT min(CASE WHEN eg.granted_at > now() THEN eg.granted_at ELSE eg.expires_at END)
                             FROM emergency_grant eg WHERE eg.practitioner_id = p.id AND eg.expires_at > now())
                      ))::float8 AS valid_until
                 FROM practitioner p
                 LEFT JOIN practitioner_role r
                        ON r.practitioner_id = p.id
                       AND r.period_start <= current_date
                       AND (r.period_end IS NULL OR r.period_end >= current_date)
                WHERE p.national_id = $1
                GROUP BY p.id""",
            national_id,
        )
        if row is None:
            raise Forbidden(
                "the token's person is not registered as personnel in this journal",
                reason="UNKNOWN_PRACTITIONER",
            )
        if not row["unit_ids"] and not row["platform_roles"]:
            raise Forbidden("the token's person has no active role in any unit", reason="NO_ACTIVE_ROLE")
        return Principal(
            kind="personnel",
            id=str(row["id"]),
            client_id=client_id,
            roles=frozenset({"personnel", *row["roles"], *row["platform_roles"]}),
            unit_ids=tuple(sorted(row["unit_ids"])),
            role_units=_by_role(row["role_units"]),
            admin_municipality_ids=tuple(row["admin_municipalities"]),
            hpr_number=row["hpr_number"],
            purpose_of_use=_purpose_of_use(claims.get(self._names.purpose_of_use)),
            self_attested=claims.get(self._names.self_attested) is True,
            emergency_patient_ids=frozenset(row["emergency_patients"]),
            home_scopes=tuple(row["home_scopes"]),
            epoch=row["epoch"],
        ), row["valid_until"]

    async def _service(self, client_id: str) -> tuple[Principal, float]:
        """A backend service, acting for the unit its approval names (its data-processing agreement), if any:
        a laboratory's or radiology's service delivers results (`diagnostic_service`), another service acts
        within the unit's care relations (`unit_service`)."""
        row = await self._pool.fetchrow(
            """SELECT (SELECT epoch FROM principal_epoch) AS epoch, a.acting_unit_id::text AS unit_id, o.unit_type,
                      m.policy_scope
                 FROM (SELECT 1) AS one
                 LEFT JOIN app a ON a.client_id = $1
                 LEFT JOIN organization o ON o.id = a.acting_unit_id
                 LEFT JOIN municipality m ON m.id = o.municipality_id""",
            client_id,
        )
        assert row is not None
        roles = {"service"}
        units: tuple[str, ...] = ()
        scopes: tuple[str, ...] = ()
        if row["unit_id"] is not None:
            units = (row["unit_id"],)
            scopes = (row["policy_scope"],) if row["policy_scope"] else ()
            roles.add("diagnostic_service" if row["unit_type"] in DIAGNOSTIC_UNITS else "unit_service")
        return Principal(
            kind="service",
            id=client_id,
            client_id=client_id,
            roles=frozenset(roles),
            unit_ids=units,
            home_scopes=scopes,
            epoch=row["epoch"],
        ), math.inf

    async def _citizen(self, national_id: str, client_id: str) -> tuple[Principal, float]:
        row = await self._pool.fetchrow(
            """SELECT (SELECT id FROM patient WHERE national_id = $1) AS patient_id,
                      ARRAY(SELECT g.child_patient_id::text FROM guardianship g
                             WHERE g.guardian_national_id = $1 AND g.basis = 'parent' AND g.period_start <= current_date
                               AND (g.period_end IS NULL OR g.period_end >= current_date)
                             ORDER BY 1) AS children,
                      ARRAY(SELECT g.child_patient_id::text FROM guardianship g
                             WHERE g.guardian_national_id = $1 AND g.basis = 'power-of-attorney'
                               AND g.period_start <= current_date
                               AND (g.period_end IS NULL OR g.period_end >= current_date)
                             ORDER BY 1) AS attorney_for,
                      (SELECT epoch FROM principal_epoch) AS epoch,
                      extract(epoch FROM (current_date + 1)::timestamptz)::float8 AS valid_until""",
            national_id,
        )
        patient_id = str(row["patient_id"]) if row["patient_id"] else None
        if patient_id is None and not row["children"] and not row["attorney_for"]:
            raise Forbidden("the token's person has no record in this journal", reason="UNKNOWN_CITIZEN")
        return Principal(
            kind="citizen",
            id=patient_id or "citizen:" + hashlib.sha256(national_id.encode()).hexdigest()[:24],
            client_id=client_id,
            roles=frozenset({"citizen"}),
            patient_id=patient_id,
            guardian_of=tuple(row["children"]),
            attorney_for=tuple(row["attorney_for"]),
            epoch=row["epoch"],
        ), row["valid_until"]


async def principal_of_claims(
    pool: asyncpg.Pool | asyncpg.Connection, names: ClaimNames, claims: dict[str, Any]
) -> Principal:
    """The principal verified claims make, looked up as the gateway looks it up, for tools outside a request
    (policy explain and diff, the access-impact report): no token to verify, no app to gate."""
    return await Authenticator(None, pool, names, None).principal_for(claims)  # type: ignore[arg-type]


def _by_role(pairs: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`role unit` pairs as (role, its units), both sorted, so that equal principals compare equal."""
    units: dict[str, list[str]] = {}
    for pair in pairs:
        role, unit = pair.split(" ", 1)
        units.setdefault(role, []).append(unit)
    return tuple((role, tuple(sorted(held))) for role, held in sorted(units.items()))


SendError = Callable[[Send, AksonError, str | None], Awaitable[None]]


class AuthenticationMiddleware:
    """The authentication step of the request path: no principal, no GraphQL execution. (The GraphiQL page,
    which needs no token, is routed around it: gateway/app.py `GraphQLEndpoint`.)"""

    def __init__(self, app: ASGIApp, authenticator_of: Any, public_url: str, on_error: SendError | None = None) -> None:
        self._app = app
        self._authenticator_of = authenticator_of
        self._public_url = public_url
        self._send_error = on_error or send_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            presented = credentials(
                headers.get("authorization"),
                headers.get("dpop"),
                scope["method"],
                request_url(scope, self._public_url),
            )
            claims, principal = await self._authenticator_of(scope).authenticate_claims(presented)
            scope[PRINCIPAL_SCOPE_KEY], scope[CLAIMS_SCOPE_KEY] = principal, claims
        except Exception as exc:
            error = as_client_error(exc)
            if error is None:
                log.exception("unexpected error while authenticating")
                error = AksonError("Unexpected error; it has been logged.")
            scheme = (headers.get("authorization") or "").partition(" ")[0].lower()
            await self._send_error(send, error, scheme)
            return
        await self._app(scope, receive, send)


def request_url(scope: Scope, public_url: str) -> str:
    """The URL of this request at the gateway's public address, without query (the DPoP `htu`; ws:// or
    wss:// for a websocket). The Host header plays no part: a client cannot choose what is checked."""
    base = public_url
    if scope["type"] == "websocket":
        base = "ws" + base.removeprefix("http")
    return f"{base}{scope['path']}"


def is_graphiql_page(scope: Scope) -> bool:
    """A browser asking for the GraphiQL page itself (no query to execute)."""
    if scope.get("method") != "GET" or b"query=" in scope.get("query_string", b""):
        return False
    accept = next((v for k, v in scope["headers"] if k.lower() == b"accept"), b"")
    return b"text/html" in accept


def challenge(error: Unauthenticated, scheme: str | None) -> str:
    """The WWW-Authenticate value: a DPoP challenge (RFC 9449, with the proof algorithms accepted) for
    DPoP failures and for any failure of a request that used the DPoP scheme, else a Bearer one."""
    description = error.message.replace('"', "'").replace("\\", "/")
    if error.challenge == "DPoP" or scheme == "dpop":
        algorithms = " ".join(PROOF_ALGORITHMS)
        return f'DPoP error="{error.oauth_error}", error_description="{description}", algs="{algorithms}"'
    return f'Bearer error="{error.oauth_error}", error_description="{description}"'


async def send_error(send: Send, error: AksonError, scheme: str | None = None) -> None:
    """Answer with a typed JSON error before GraphQL runs (401 carries WWW-Authenticate, in the scheme
    the request used)."""
    body = orjson.dumps(http_error_body(error))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if isinstance(error, Unauthenticated):
        headers.append((b"www-authenticate", challenge(error, scheme).encode("latin-1", "replace")))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
