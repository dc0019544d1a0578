"""Authentication: only valid tokens from the trusted issuer reach GraphQL; every defect is a 401."""

from __future__ import annotations

import base64
import time

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from gateway import demo_issuer
from gateway.personas import PERSONAS
from tests.conftest import Gateway

QUERY = "{ patients(first: 1) { totalCount } }"


def assert_unauthenticated(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert fragment in error["message"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "error_description=" in challenge
    assert "Traceback" not in response.text


def test_a_request_without_a_token_is_refused(gateway: Gateway) -> None:
    assert_unauthenticated(gateway.post(QUERY), "missing bearer token")


def test_a_non_bearer_authorization_header_is_refused(gateway: Gateway) -> None:
    response = gateway.post(QUERY, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_unauthenticated(response, "Bearer (or DPoP) scheme")


def test_an_expired_token_is_refused(gateway: Gateway) -> None:
    past = int(time.time()) - 7200
    token = gateway.token("homecare-nurse", iat=past, nbf=past, exp=past + 600)
    assert_unauthenticated(gateway.post(QUERY, token=token), "expired")


def test_a_token_not_yet_valid_is_refused(gateway: Gateway) -> None:
    future = int(time.time()) + 3600
    token = gateway.token("homecare-nurse", nbf=future, iat=int(time.time()), exp=future + 600)
    assert_unauthenticated(gateway.post(QUERY, token=token), "token is not yet valid")


def test_a_token_issued_in_the_future_is_refused(gateway: Gateway) -> None:
    future = int(time.time()) + 3600
    token = gateway.token("homecare-nurse", nbf=None, iat=future, exp=future + 600)
    assert_unauthenticated(gateway.post(QUERY, token=token), "issued in the future")


def test_an_id_token_is_not_an_access_token(gateway: Gateway) -> None:
    settings_key = demo_issuer.load_or_create_key(gateway.data_dir / "demo-issuer" / "signing-key.json")
    claims = demo_issuer.persona_claims(
        PERSONAS["homecare-nurse"], issuer="https://demo-issuer.akson.invalid", audience="akson-gateway"
    )
    token = jwt.encode({"alg": "ES256", "typ": "JWT", "kid": settings_key.kid}, claims, settings_key)
    assert_unauthenticated(gateway.post(QUERY, token=token), "not an access token")


def test_a_person_identifier_that_is_not_a_national_id_is_refused(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse", **{demo_issuer.CLAIM_PERSONNEL_PID: "1234\u0000"})
    assert_unauthenticated(gateway.post(QUERY, token=token), "11-digit national id")


def test_a_token_signed_by_another_key_is_refused(gateway: Gateway) -> None:
    claims = demo_issuer.persona_claims(
        PERSONAS["homecare-nurse"], issuer="https://demo-issuer.akson.invalid", audience="akson-gateway"
    )
    trusted = demo_issuer.load_or_create_key(gateway.data_dir / "demo-issuer" / "signing-key.json")
    assert trusted.kid, "the demo issuer's key has a key id"
    stranger = ECKey.generate_key("P-256", parameters={"kid": trusted.kid}, private=True)
    token = jwt.encode({"alg": "ES256", "kid": stranger.kid}, claims, stranger)
    assert_unauthenticated(gateway.post(QUERY, token=token), "signature")


def test_a_tampered_payload_is_refused(gateway: Gateway) -> None:
    header, payload, signature = gateway.token("nurse-other-municipality").split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims[demo_issuer.CLAIM_PERSONNEL_PID] = PERSONAS["homecare-nurse"].national_id
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("=")
    assert_unauthenticated(gateway.post(QUERY, token=f"{header}.{forged}.{signature}"), "signature")


@pytest.mark.parametrize(("claim", "value"), [("iss", "https://evil.example"), ("aud", "another-api")])
def test_a_token_for_another_issuer_or_audience_is_refused(gateway: Gateway, claim: str, value: str) -> None:
    token = gateway.token("homecare-nurse", **{claim: value})
    assert_unauthenticated(gateway.post(QUERY, token=token), claim)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "client_id"])
def test_a_token_missing_a_required_claim_is_refused(gateway: Gateway, claim: str) -> None:
    token = gateway.token("homecare-nurse", **{claim: None})
    assert_unauthenticated(gateway.post(QUERY, token=token), claim)


def test_an_unsigned_alg_none_token_is_refused(gateway: Gateway) -> None:
    claims = demo_issuer.persona_claims(
        PERSONAS["homecare-nurse"], issuer="https://demo-issuer.akson.invalid", audience="akson-gateway"
    )

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    assert_unauthenticated(gateway.post(QUERY, token=token), "bearer token rejected")


def test_an_hmac_token_keyed_with_the_public_key_is_refused(gateway: Gateway) -> None:
    claims = demo_issuer.persona_claims(
        PERSONAS["homecare-nurse"], issuer="https://demo-issuer.akson.invalid", audience="akson-gateway"
    )
    public = httpx.get(f"{gateway.base_url}/.well-known/jwks.json").content
    token = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(public), algorithms=["HS256"])
    assert_unauthenticated(gateway.post(QUERY, token=token), "bearer token rejected")


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30"])
def test_a_malformed_token_is_refused(gateway: Gateway, garbage: str) -> None:
    assert_unauthenticated(gateway.post(QUERY, token=garbage), "bearer token rejected")


def test_a_valid_token_for_a_person_unknown_to_the_journal_is_forbidden(gateway: Gateway) -> None:
    token = gateway.token("homecare-nurse", **{demo_issuer.CLAIM_PERSONNEL_PID: "01010100000"})
    response = gateway.post(QUERY, token=token)
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"] == {"code": "FORBIDDEN", "reason": "UNKNOWN_PRACTITIONER"}


def test_personnel_without_an_active_role_are_forbidden(gateway: Gateway) -> None:
    retired = "01817012345"
    gateway.fetch(
        "INSERT INTO practitioner (id, national_id, hpr_number, family_name, given_name) "
        "VALUES (gen_random_uuid(), $1, '9999999', 'Pensjonist', 'Per') ON CONFLICT DO NOTHING",
        retired,
    )
    response = gateway.post(QUERY, token=gateway.token("gp", **{demo_issuer.CLAIM_PERSONNEL_PID: retired}))
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"] == {"code": "FORBIDDEN", "reason": "NO_ACTIVE_ROLE"}


def test_the_issuer_publishes_its_keys_and_discovery_document(gateway: Gateway) -> None:
    keys = httpx.get(f"{gateway.base_url}/.well-known/jwks.json").json()["keys"]
    assert [k["kty"] for k in keys] == ["EC"]
    assert "d" not in keys[0], "the private part must never be published"
    discovery = httpx.get(
        f"{gateway.base_url}/.well-known/openid-configuration", headers={"Host": "evil.example"}
    ).json()
    assert discovery["issuer"] == "https://demo-issuer.akson.invalid"
    assert discovery["jwks_uri"] == f"{gateway.base_url}/.well-known/jwks.json"
    assert discovery["token_endpoint"] == f"{gateway.base_url}/oauth/token"


def test_graphiql_is_served_to_a_browser_without_a_token(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.base_url}/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
