"""DPoP proofs (RFC 9449) for sender-constrained access tokens, as HelseID issues them.

A token carrying `cnf.jkt` is only accepted with a `DPoP` header holding a proof JWT signed by the
key whose thumbprint is `jkt`, for this request's method and URL, issued just now, bound to this
access token (`ath`), and never seen before (`jti`). Hand-written on joserfc's JWS and JWK: no Python
library checks DPoP proofs on the resource-server side.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.errors import DpopProofRejected

PROOF_ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"]
_KEY_TYPES = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}


def access_token_hash(token: str) -> str:
    """The `ath` claim value for an access token."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")


class DpopVerifier:
    """Checks proofs and remembers their ids for the replay window (per gateway process)."""

    def __init__(self, *, max_age_seconds: int = 60, clock_skew_seconds: int = 5) -> None:
        self._max_age = max_age_seconds
        self._skew = clock_skew_seconds
        self._seen: dict[str, float] = {}

    def verify(self, proof: str | None, *, access_token: str, jkt: str, method: str, url: str) -> None:
        """Raise DpopProofRejected unless `proof` is a fresh, unused proof for this request and key."""
        if not proof:
            raise DpopProofRejected("this token is DPoP-bound: send a DPoP proof in the DPoP header")
        header, claims, key = self._signed(proof)
        if header.get("typ") != "dpop+jwt":
            raise DpopProofRejected("DPoP proof rejected: typ must be dpop+jwt")
        if key.thumbprint() != jkt:
            raise DpopProofRejected("DPoP proof rejected: signed by a key other than the one the token is bound to")
        if claims.get("htm") != method:
            raise DpopProofRejected("DPoP proof rejected: htm does not match the request method")
        if claims.get("htu") != url:
            raise DpopProofRejected("DPoP proof rejected: htu does not match the request URL")
        if claims.get("ath") != access_token_hash(access_token):
            raise DpopProofRejected("DPoP proof rejected: ath does not match the access token")
        now = time.time()
        issued = claims.get("iat")
        if not isinstance(issued, int | float) or not (now - self._max_age <= issued <= now + self._skew):
            raise DpopProofRejected("DPoP proof rejected: iat is missing or not recent")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise DpopProofRejected("DPoP proof rejected: jti is missing")
        self._forget(now)
        if jti in self._seen:
            raise DpopProofRejected("DPoP proof rejected: this proof was used before")
        self._seen[jti] = now + self._max_age + self._skew

    def _signed(self, proof: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
        try:
            header = jws.extract_compact(proof.encode()).headers()
            jwk = header.get("jwk")
            if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") not in _KEY_TYPES:
                raise DpopProofRejected("DPoP proof rejected: header must carry a public jwk")
            key = _KEY_TYPES[jwk["kty"]].import_key(jwk)  # type: ignore[attr-defined]
            payload = jws.deserialize_compact(proof, key, algorithms=PROOF_ALGORITHMS).payload
            claims = orjson.loads(payload)
        except (JoseError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise DpopProofRejected("DPoP proof rejected: not a valid signed proof") from exc
        if not isinstance(claims, dict):
            raise DpopProofRejected("DPoP proof rejected: not a valid signed proof")
        return header, claims, key

    def _forget(self, now: float) -> None:
        expired = [jti for jti, until in self._seen.items() if until < now]
        for jti in expired:
            del self._seen[jti]
