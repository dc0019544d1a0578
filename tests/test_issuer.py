"""Tokens from a real OIDC-style issuer: keys from its JWKS URL, key rotation, and DPoP-bound tokens, on a
gateway in production mode (no demo issuer, public URL from a setting)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from websockets.exceptions import ConnectionClosed

from gateway import demo_issuer
from gateway.dpop import access_token_hash
from gateway.personas import PERSONAS
from tests.conftest import PROJECT, Gateway, run, start_gateway, stop_gateway
from tests.live_clients import raw_socket, receive, ws_url

ISSUER = "https://idp.test.invalid"
QUERY = "{ patients(first: 1) { totalCount } }"


class Jwks:
    """A JWKS endpoint on loopback whose published keys the test controls."""

    def __init__(self) -> None:
        self.keys: list[ECKey] = []
        self.hits = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.hits += 1
                body = json.dumps({"keys": [k.as_dict(private=False) for k in jwks.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_key(self, publish: bool = True) -> ECKey:
        key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex[:12], "alg": "ES256"}, private=True)
        if publish:
            self.keys.append(key)
        return key


@pytest.fixture(scope="module")
def idp(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Jwks, Gateway]]:
    jwks = Jwks()
    jwks.new_key()
    trusting = start_gateway(
        gateway.database_url,
        Path(tmp_path_factory.mktemp("idp")),
        extra_env={
            "AKSON_JWKS_URL": jwks.url,
            "AKSON_ISSUER": ISSUER,
            "AKSON_JWKS_MIN_REFETCH_SECONDS": "1",
            # These tests are about tokens; the app sends query text as a first-party app may.
            "AKSON_FIRST_PARTY_APPS": "akson-demo-app",
        },
        demo=False,
    )
    try:
        yield jwks, trusting
    finally:
        stop_gateway(trusting)
        jwks.server.shutdown()
        jwks.server.server_close()


def sign(key: ECKey, **extra: Any) -> str:
    now = int(time.time())
    persona = PERSONAS["homecare-nurse"]
    claims = {
        "iss": ISSUER,
        "aud": "akson-gateway",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "sub": "nurse",
        "client_id": "akson-demo-app",
        "scope": "user/*.rs",
        "helseid://claims/identity/pid": persona.national_id,
        **extra,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key)


def test_a_token_signed_with_a_published_key_is_accepted_and_the_demo_key_is_not(idp: tuple[Jwks, Gateway]) -> None:
    jwks, trusting = idp
    assert trusting.post(QUERY, token=sign(jwks.keys[0])).status_code == 200
    demo = trusting.post(QUERY, token=trusting.token("homecare-nurse"))
    assert demo.status_code == 401


def test_without_a_console_client_the_console_says_it_is_not_set_up_and_the_demo_issuer_is_absent(
    idp: tuple[Jwks, Gateway],
) -> None:
    _, trusting = idp
    console = httpx.get(f"{trusting.base_url}/console/sign-in?lang=en")
    assert console.status_code == 501 and "AKSON_CONSOLE_CLIENT_ID" in console.text
    assert httpx.get(f"{trusting.base_url}/console/sign-in/issuer").status_code == 501
    assert httpx.get(f"{trusting.base_url}/oauth/authorize").status_code == 404


def test_a_rotated_key_is_fetched_once_it_is_used(idp: tuple[Jwks, Gateway]) -> None:
    jwks, trusting = idp
    assert trusting.post(QUERY, token=sign(jwks.keys[0])).status_code == 200
    rotated = jwks.new_key()
    time.sleep(1.2)
    assert trusting.post(QUERY, token=sign(rotated)).status_code == 200


def test_unknown_kids_are_refused_without_hammering_the_issuer(idp: tuple[Jwks, Gateway]) -> None:
    jwks, trusting = idp
    time.sleep(1.2)
    before = jwks.hits
    for _ in range(15):
        response = trusting.post(QUERY, token=sign(jwks.new_key(publish=False)))
        assert response.status_code == 401
        assert "key the issuer does not publish" in response.json()["errors"][0]["message"]
    assert jwks.hits - before <= 2


def proof(key: ECKey, token: str, url: str, method: str = "POST", **overrides: Any) -> str:
    claims = {
        "jti": uuid.uuid4().hex,
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
        "ath": access_token_hash(token),
        **overrides,
    }
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key)


def test_dpop_bound_tokens_need_a_fresh_proof_for_this_request_and_key(idp: tuple[Jwks, Gateway]) -> None:
    jwks, trusting = idp
    holder = ECKey.generate_key("P-256", private=True)
    token = sign(jwks.keys[0], cnf={"jkt": holder.thumbprint()})
    url = f"{trusting.base_url}/graphql"

    def call(scheme: str, dpop: str | None) -> Any:
        headers = {"Authorization": f"{scheme} {token}"}
        if dpop is not None:
            headers["DPoP"] = dpop
        return trusting.post(QUERY, headers=headers)

    good = proof(holder, token, url)
    assert call("DPoP", good).status_code == 200
    cases = {
        "used before": good,
        "htu does not match": proof(holder, token, url + "/elsewhere"),
        "htm does not match": proof(holder, token, url, method="GET"),
        "ath does not match": proof(holder, token, url, ath="x"),
        "not recent": proof(holder, token, url, iat=int(time.time()) - 600),
        "key other than": proof(ECKey.generate_key("P-256", private=True), token, url),
        "send a DPoP proof": None,
    }
    for fragment, dpop in cases.items():
        response = call("DPoP", dpop)
        assert response.status_code == 401, fragment
        assert fragment in response.json()["errors"][0]["message"]
        assert response.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"'), fragment
        assert 'algs="ES256' in response.headers["www-authenticate"]
    bearer = call("Bearer", proof(holder, token, url))
    assert bearer.status_code == 401 and "DPoP-bound" in bearer.json()["errors"][0]["message"]
    assert bearer.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    expired = trusting.post(QUERY, headers={"Authorization": f"DPoP {sign(jwks.keys[0], exp=1)}"})
    assert expired.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    unbound = trusting.post(QUERY, token=sign(jwks.keys[0], exp=1))
    assert unbound.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_outside_demo_mode_the_demo_issuer_and_its_token_endpoint_are_not_served(idp: tuple[Jwks, Gateway]) -> None:
    _, trusting = idp
    for path in ["/.well-known/jwks.json", "/.well-known/openid-configuration"]:
        assert httpx.get(f"{trusting.base_url}{path}").status_code == 404
    assert httpx.post(f"{trusting.base_url}/oauth/token", data={"grant_type": "client_credentials"}).status_code in {
        404,
        405,
    }


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "AKSON_JWKS_URL is not set"),
        ({"AKSON_JWKS_URL": "https://idp.example/jwks"}, "AKSON_PUBLIC_URL is not set"),
        (
            {
                "AKSON_JWKS_URL": "https://idp.example/jwks",
                "AKSON_PUBLIC_URL": "https://akson.example",
                "AKSON_BENCHMARK_WITHOUT_AUDIT": "1",
            },
            "switches the audit log off",
        ),
    ],
    ids=["demo-issuer", "no-public-url", "audit-off"],
)
def test_outside_demo_mode_the_gateway_refuses_to_start_with_anything_unsafe(
    tmp_path: Path, env: dict[str, str], problem: str
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AKSON_") and k != "CERBOS_URL"}
    started = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "1"],
        env={**base, "AKSON_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    assert started.returncode == 2 and problem in started.stderr


def test_gateway_workers_starting_together_agree_on_one_demo_key(tmp_path: Path) -> None:
    """Several workers create the key at once; none may read a half-written file."""
    path = tmp_path / "demo-issuer" / "signing-key.json"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: demo_issuer.load_or_create_key(path), range(32)))
    assert len({key.kid for key in keys}) == 1
    assert [p.name for p in path.parent.iterdir()] == ["signing-key.json"]


def test_a_dpop_bound_token_opens_a_live_connection_only_with_a_proof_for_the_websocket(
    idp: tuple[Jwks, Gateway],
) -> None:
    jwks, trusting = idp
    holder = ECKey.generate_key("P-256", private=True)
    token = sign(jwks.keys[0], cnf={"jkt": holder.thumbprint()})
    url = ws_url(trusting)

    async def init(payload: dict[str, str]) -> tuple[str, int | None, str]:
        socket = await raw_socket(trusting, payload)
        try:
            return (await receive(socket))["type"], None, ""
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return "closed", exc.rcvd.code, exc.rcvd.reason
        finally:
            await socket.close()

    accepted = run(init({"Authorization": f"DPoP {token}", "DPoP": proof(holder, token, url, method="GET")}))
    assert accepted == ("connection_ack", None, "")
    for payload, fragment in [
        ({"Authorization": f"DPoP {token}", "DPoP": proof(holder, token, url)}, "htm does not match"),
        ({"Authorization": f"DPoP {token}"}, "send a DPoP proof"),
        ({"Authorization": f"Bearer {token}"}, "DPoP-bound"),
    ]:
        kind, code, reason = run(init(payload))
        assert (kind, code) == ("closed", 4403) and fragment in reason, reason


def test_outside_demo_mode_introspection_is_off_and_graphiql_is_not_served(idp: tuple[Jwks, Gateway]) -> None:
    jwks, trusting = idp
    token = sign(jwks.keys[0])
    introspection = trusting.post("{ __schema { queryType { name } } }", token=token).json()
    assert introspection["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "introspection" in introspection["errors"][0]["message"].lower()
    assert trusting.post("{ __typename }", token=token).json() == {"data": {"__typename": "Query"}}
    page = httpx.get(f"{trusting.base_url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "graphiql" not in page.text.lower()
