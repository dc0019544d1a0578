"""The demo token issuer: a local signing key, tokens for demo personas, and a published JWKS.

Production trusts an external OIDC issuer (HelseID-like); the demo journal needs tokens without one,
so the gateway and `akson token` share one ES256 key kept in the project's data folder. Claim names
follow HelseID for personnel and ID-porten for citizens; a backend service's token carries no person.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from gateway.claims import ClaimNames
from gateway.keys import load_or_create_key as load_or_create_key
from gateway.personas import Persona

_NAMES = ClaimNames()
CLAIM_PERSONNEL_PID = _NAMES.personnel_pid
CLAIM_HPR_NUMBER = _NAMES.hpr_number
CLAIM_SECURITY_LEVEL = _NAMES.security_level
CLAIM_CITIZEN_PID = _NAMES.citizen_pid
CLAIM_PURPOSE_OF_USE = _NAMES.purpose_of_use
CLAIM_LAUNCH_PATIENT = _NAMES.launch_patient
TOKEN_LIFETIME_SECONDS = 3600


def public_keyset(key: ECKey) -> KeySet:
    """The verification keys, as the JWKS endpoint publishes them."""
    return KeySet.import_key_set({"keys": [key.as_dict(private=False)]})


def persona_claims(persona: Persona, *, issuer: str, audience: str, now: int | None = None) -> dict[str, Any]:
    """The claims a real issuer would put in this persona's access token."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_SECONDS,
        "jti": uuid.uuid4().hex,
        "client_id": persona.client_id,
        "scope": persona.scope,
        "sub": persona.name if persona.kind == "service" else str(uuid.uuid5(uuid.NAMESPACE_URL, persona.name)),
    }
    if persona.kind == "personnel":
        claims[CLAIM_PERSONNEL_PID] = persona.national_id
        claims[CLAIM_HPR_NUMBER] = persona.hpr_number
        claims[CLAIM_SECURITY_LEVEL] = "4"
        claims[CLAIM_PURPOSE_OF_USE] = "TREAT"
    elif persona.kind == "citizen":
        claims[CLAIM_CITIZEN_PID] = persona.national_id
    if persona.launch_patient_id is not None:
        claims[CLAIM_LAUNCH_PATIENT] = str(persona.launch_patient_id)
    return claims


def sign(claims: dict[str, Any], key: ECKey, typ: str = "at+jwt") -> str:
    """A compact JWS of the claims with the issuer key: an access token (RFC 9068's `at+jwt`) unless told
    otherwise (an ID token is a `JWT`)."""
    header = {"alg": "ES256", "typ": typ, "kid": key.kid}
    return jwt.encode(header, claims, key)


def discovery_document(issuer: str, base_url: str) -> dict[str, Any]:
    """The OIDC discovery fields a resource server and a client library look for, at the gateway's public URL."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{base_url}/.well-known/jwks.json",
        "authorization_endpoint": f"{base_url}/oauth/authorize",
        "token_endpoint": f"{base_url}/oauth/token",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "fhirUser", "launch/patient"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS256", "PS256", "EdDSA"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "authorization_response_iss_parameter_supported": True,
        "claims_supported": [CLAIM_PERSONNEL_PID, CLAIM_HPR_NUMBER, CLAIM_CITIZEN_PID, "client_id"],
    }
