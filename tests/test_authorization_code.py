"""The demo issuer's authorization-code flow with PKCE, as a user-facing app uses it over HTTP: the person signs
in at /oauth/authorize, the app redeems the code with its verifier at /oauth/token, and the access token works
on the API as that person through that app. Every refusal is one a careful provider makes."""

from __future__ import annotations

import html
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.authorization_codes import s256
from gateway.personas import PERSONAS
from tests.conftest import Gateway
from tests.live_clients import approved_app

REDIRECT = "https://vendor.example.invalid/callback"
SCOPES = ["openid", "fhirUser", "launch/patient", "user/Patient.rs", "patient/Patient.rs"]
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


@dataclass
class Flow:
    client_id: str
    verifier: str
    state: str
    nonce: str

    def query(self, **overrides: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "scope": " ".join(SCOPES),
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            **overrides,
        }


@pytest.fixture(scope="module")
def app_id(gateway: Gateway) -> str:
    return approved_app(gateway, SCOPES, (REDIRECT,))


def new_flow(client_id: str) -> Flow:
    return Flow(client_id, secrets.token_urlsafe(48), secrets.token_urlsafe(16), secrets.token_urlsafe(16))


def sign_in(issuer: Gateway, flow: Flow, persona: str, decision: str = "allow", **asked: str) -> httpx.Response:
    """The person's browser: the sign-in page, then the form posted back with the chosen persona (and the page's
    Secure cookie, which a browser sends to loopback over http and httpx does not)."""
    page = httpx.get(f"{issuer.base_url}/oauth/authorize", params=flow.query(**asked))
    assert page.status_code == 200, page.text
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(page.text)}
    cookie = page.headers["set-cookie"].split(";")[0]
    return httpx.post(
        f"{issuer.base_url}/oauth/authorize",
        data={**fields, "persona": persona, "decision": decision},
        headers={"Cookie": cookie},
    )


def answer_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def redeem(issuer: Gateway, flow: Flow, code: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": flow.client_id,
        "code_verifier": flow.verifier,
        **overrides,
    }
    return httpx.post(f"{issuer.base_url}/oauth/token", data=form)


def test_a_homecare_nurse_signs_in_and_the_app_gets_her_token_and_an_id_token_with_its_nonce(
    issuer: Gateway, app_id: str
) -> None:
    flow = new_flow(app_id)
    answer = answer_of(sign_in(issuer, flow, "homecare-nurse"))
    assert answer["state"] == flow.state and answer["iss"] == "https://demo-issuer.akson.invalid"
    issued = redeem(issuer, flow, answer["code"])
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    tokens = issued.json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid fhirUser user/Patient.rs"

    keys = KeySet.import_key_set(httpx.get(f"{issuer.base_url}/.well-known/jwks.json").json())
    identity = jwt.decode(tokens["id_token"], keys).claims
    access = jwt.decode(tokens["access_token"], keys).claims
    assert identity["aud"] == app_id and identity["nonce"] == flow.nonce and identity["sub"] == access["sub"]
    assert access["client_id"] == app_id and access["aud"] == "akson-gateway"

    read = issuer.post("{ patients(first: 1) { totalCount } }", token=tokens["access_token"]).json()
    assert read["data"]["patients"]["totalCount"] > 0, read
    rows = issuer.fetch(
        "SELECT client_id FROM audit_event WHERE actor_id = $1 AND client_id = $2",
        str(PERSONAS["homecare-nurse"].entity_id),
        app_id,
    )
    assert rows, "the read is audited as the nurse through the app"


def test_a_citizen_gets_only_the_patient_scopes_of_what_the_app_asked(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    tokens = redeem(issuer, flow, answer_of(sign_in(issuer, flow, "citizen"))["code"]).json()
    assert tokens["scope"] == "openid fhirUser launch/patient patient/Patient.rs"


def test_a_code_is_redeemed_once_and_only_with_its_verifier(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    code = answer_of(sign_in(issuer, flow, "homecare-nurse"))["code"]
    wrong = redeem(issuer, flow, code, code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    again = redeem(issuer, flow, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", "a failed try used the code up"

    flow = new_flow(app_id)
    code = answer_of(sign_in(issuer, flow, "homecare-nurse"))["code"]
    elsewhere = redeem(issuer, flow, code, redirect_uri="https://vendor.example.invalid/other")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"


def test_an_unknown_redirect_uri_is_refused_on_the_page_and_nobody_is_sent_there(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    refused = httpx.get(
        f"{issuer.base_url}/oauth/authorize", params=flow.query(redirect_uri="https://attacker.example.invalid/cb")
    )
    assert refused.status_code == 400 and "location" not in refused.headers
    assert "redirect URI" in refused.text


def test_a_request_without_pkce_s256_goes_back_to_the_app_as_invalid_request(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    for bad in ({"code_challenge_method": "plain"}, {"code_challenge_method": ""}, {"code_challenge": ""}):
        answer = answer_of(httpx.get(f"{issuer.base_url}/oauth/authorize?" + urlencode(flow.query(**bad))))
        assert answer["error"] == "invalid_request" and answer["state"] == flow.state


def test_an_app_not_approved_sends_nobody_to_its_redirect_uri(gateway: Gateway, issuer: Gateway) -> None:
    pending = f"pending-{secrets.token_hex(4)}"
    registered = gateway.query(
        "mutation($input: RegisterAppInput!) { registerApp(input: $input) { status } }",
        "gp",
        {
            "input": {
                "clientId": pending,
                "name": "Not yet approved",
                "vendorOrgNumber": "912345678",
                "kind": "USER_FACING",
                "redirectUris": ["https://phishing.example.invalid/cb"],
                "scopes": ["openid", "user/Patient.rs"],
            }
        },
    )
    assert registered["data"]["registerApp"]["status"] == "PENDING", registered
    flow = new_flow(pending)
    refused = httpx.get(
        f"{issuer.base_url}/oauth/authorize",
        params=flow.query(redirect_uri="https://phishing.example.invalid/cb", scope="openid user/Patient.rs"),
    )
    assert refused.status_code == 400 and "location" not in refused.headers


def test_a_parameter_given_twice_is_refused_on_the_page(issuer: Gateway, app_id: str) -> None:
    query = urlencode([*new_flow(app_id).query().items(), ("scope", "openid")])
    refused = httpx.get(f"{issuer.base_url}/oauth/authorize?{query}")
    assert refused.status_code == 400 and "location" not in refused.headers


def test_without_openid_the_app_gets_an_access_token_and_no_id_token(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    answer = answer_of(sign_in(issuer, flow, "homecare-nurse", scope="user/Patient.rs"))
    tokens = redeem(issuer, flow, answer["code"]).json()
    assert tokens["scope"] == "user/Patient.rs" and "access_token" in tokens and "id_token" not in tokens


def test_an_app_may_ask_for_less_than_it_registered(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    answer = answer_of(sign_in(issuer, flow, "homecare-nurse", scope="openid user/Patient.r"))
    assert redeem(issuer, flow, answer["code"]).json()["scope"] == "openid user/Patient.r"


def test_a_scope_the_app_did_not_register_goes_back_as_invalid_scope(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    answer = answer_of(httpx.get(f"{issuer.base_url}/oauth/authorize", params=flow.query(scope="openid user/*.crus")))
    assert answer["error"] == "invalid_scope"


def test_a_person_who_declines_sends_the_app_access_denied_and_no_code(issuer: Gateway, app_id: str) -> None:
    answer = answer_of(sign_in(issuer, new_flow(app_id), "homecare-nurse", decision="deny"))
    assert answer["error"] == "access_denied" and "code" not in answer


def test_a_sign_in_form_without_its_cookie_is_refused(issuer: Gateway, app_id: str) -> None:
    flow = new_flow(app_id)
    forged = httpx.post(
        f"{issuer.base_url}/oauth/authorize",
        data={**flow.query(), "csrf": "guess", "persona": "homecare-nurse", "decision": "allow"},
    )
    assert forged.status_code == 403 and "location" not in forged.headers


def test_the_discovery_document_offers_the_code_flow_with_pkce(issuer: Gateway) -> None:
    document = httpx.get(f"{issuer.base_url}/.well-known/openid-configuration").json()
    assert document["authorization_endpoint"] == f"{issuer.base_url}/oauth/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in document["grant_types_supported"]


def test_the_s256_challenge_is_rfc_7636s_example() -> None:
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
