"""The app registry: register, approve, suspend, revoke; client credentials for backend services;
a suspended app is refused on its next request."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.personas import PERSONAS
from tests.conftest import Gateway

REGISTER = """mutation($input: RegisterAppInput!) { registerApp(input: $input) {
  clientId status kind scopes registeredAt } }"""
DECIDE = """mutation($id: String!, $reason: String!) {
  %s(clientId: $id, reason: $reason) { clientId status statusReason decidedAt } }"""
ORGANIZATIONS = "{ organizations(first: 3) { totalCount edges { node { name unitType } } } }"


def backend(key: ECKey, client_id: str | None = None, scopes: list[str] | None = None) -> dict[str, Any]:
    return {
        "clientId": client_id or f"planner-{uuid.uuid4().hex[:8]}",
        "name": "Visit planner",
        "vendorOrgNumber": "912345678",
        "kind": "BACKEND_SERVICE",
        "scopes": scopes or ["system/Organization.rs", "system/Practitioner.rs"],
        "jwks": {"keys": [key.as_dict(private=False)]},
    }


def assertion(key: ECKey, client_id: str, audience: str, **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        **extra,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def client_token(gateway: Gateway, key: ECKey, client_id: str, **form: str) -> httpx.Response:
    endpoint = f"{gateway.base_url}/oauth/token"
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, client_id, endpoint),
        **form,
    }
    return httpx.post(endpoint, data=data)


def registered_and_approved(gateway: Gateway) -> tuple[ECKey, str]:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    app = gateway.query(REGISTER, "vendor-app", {"input": backend(key)})["data"]["registerApp"]
    assert app["status"] == "PENDING"
    approved = gateway.query(DECIDE % "approveApp", "policy-admin", {"id": app["clientId"], "reason": "DPIA ok"})
    assert approved["data"]["approveApp"]["status"] == "APPROVED", approved
    return key, app["clientId"]


def test_a_backend_service_registers_is_approved_and_calls_the_api_with_client_credentials(gateway: Gateway) -> None:
    key, client_id = registered_and_approved(gateway)
    issued = client_token(gateway, key, client_id)
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "system/Organization.rs system/Practitioner.rs"
    answer = gateway.post(ORGANIZATIONS, token=body["access_token"]).json()
    units = gateway.fetch("SELECT count(*) AS n FROM organization")[0]["n"]
    assert answer["data"]["organizations"]["totalCount"] == units
    patients = gateway.post("{ patients(first: 5) { totalCount } }", token=body["access_token"]).json()
    assert patients["data"]["patients"]["totalCount"] == 0, "no patient scope, no patients"


def test_a_suspended_app_is_refused_on_its_next_request_and_reinstated_on_approval(gateway: Gateway) -> None:
    key, client_id = registered_and_approved(gateway)
    token = client_token(gateway, key, client_id).json()["access_token"]
    assert gateway.post(ORGANIZATIONS, token=token).status_code == 200
    suspended = gateway.query(DECIDE % "suspendApp", "policy-admin", {"id": client_id, "reason": "incident 42"})
    assert suspended["data"]["suspendApp"]["status"] == "SUSPENDED"
    refused = gateway.post(ORGANIZATIONS, token=token)
    assert refused.status_code == 401
    assert "suspended" in refused.json()["errors"][0]["message"]
    assert "suspended" in refused.headers["www-authenticate"]
    assert client_token(gateway, key, client_id).status_code == 401
    gateway.query(DECIDE % "approveApp", "policy-admin", {"id": client_id, "reason": "fixed"})
    assert gateway.post(ORGANIZATIONS, token=token).status_code == 200


HISTORY = "query($id: String!) { app(clientId: $id) { history { action reason decidedBy decidedAt } } }"


def test_an_apps_history_names_its_registration_and_every_decision_with_who_and_why(gateway: Gateway) -> None:
    _, client_id = registered_and_approved(gateway)
    for action, reason in [("suspendApp", "Vendor breach under review"), ("revokeApp", "Breach confirmed")]:
        assert "errors" not in gateway.query(DECIDE % action, "policy-admin", {"id": client_id, "reason": reason})
    refused = gateway.query(DECIDE % "approveApp", "policy-admin", {"id": client_id, "reason": "try again"})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", "a revoked app stays revoked"

    history = gateway.query(HISTORY, "policy-admin", {"id": client_id})["data"]["app"]["history"]
    assert [(h["action"], h["reason"]) for h in history] == [
        ("REGISTER", None),
        ("APPROVE", "DPIA ok"),
        ("SUSPEND", "Vendor breach under review"),
        ("REVOKE", "Breach confirmed"),
    ], "a refused decision leaves no entry"
    registrant = gateway.fetch("SELECT registered_by FROM app WHERE client_id = $1", client_id)[0]["registered_by"]
    admin = str(PERSONAS["policy-admin"].entity_id)
    assert [h["decidedBy"] for h in history] == [registrant, admin, admin, admin]
    assert [h["decidedAt"] for h in history] == sorted(h["decidedAt"] for h in history)
    own = gateway.query(HISTORY, "vendor-app", {"id": client_id})["data"]["app"]["history"]
    assert [h["decidedBy"] for h in own] == [registrant, None, None, None], "the registrant sees no admin's id"


def test_a_revoked_app_stays_revoked(gateway: Gateway) -> None:
    _, client_id = registered_and_approved(gateway)
    gateway.query(DECIDE % "revokeApp", "policy-admin", {"id": client_id, "reason": "contract ended"})
    again = gateway.query(DECIDE % "approveApp", "policy-admin", {"id": client_id, "reason": "oops"})
    assert again["data"] is None
    assert again["errors"][0]["extensions"]["reason"] == "APP_REVOKED"


def test_only_policy_admins_decide_on_apps(gateway: Gateway) -> None:
    key = ECKey.generate_key("P-256", private=True)
    client_id = gateway.query(REGISTER, "vendor-app", {"input": backend(key)})["data"]["registerApp"]["clientId"]
    for persona in ("vendor-app", "gp"):
        result = gateway.query(DECIDE % "approveApp", persona, {"id": client_id, "reason": "self-service"})
        assert result["data"] is None
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mine = gateway.query("{ apps { clientId status } }", "vendor-app")["data"]["apps"]
    assert {"clientId": client_id, "status": "PENDING"} in mine
    assert all(a["clientId"] != client_id for a in gateway.query("{ apps { clientId } }", "gp")["data"]["apps"])
    everyone = gateway.query("{ apps(first: 100) { clientId } }", "policy-admin")["data"]["apps"]
    assert {a["clientId"] for a in everyone} >= {client_id, "akson-demo-app", "vendor-homecare-planner"}
    rows = gateway.fetch(
        "SELECT action, decision, reason FROM audit_event WHERE resource_kind = 'app' AND $1 = ANY(resource_ids) "
        "ORDER BY id",
        client_id,
    )
    # A refused decision rolls back with everything it read; its denial is what the log keeps.
    assert [(r["action"], r["decision"]) for r in rows][:3] == [
        ("register", "ALLOW"),
        ("approve", "DENY"),
        ("read", "DENY"),
    ]


def test_invalid_registrations_are_refused_with_the_reason(gateway: Gateway) -> None:
    key = ECKey.generate_key("P-256", private=True)
    private = ECKey.generate_key("P-256", private=True)
    cases = {
        "invalid scope": backend(key, scopes=["system/Observation.write"]),
        "only request system/ scopes": backend(key, scopes=["patient/Observation.rs"]),
        "public keys only": {**backend(key), "jwks": {"keys": [private.as_dict(private=True)]}},
        "exactly one of jwks or jwksUri": {**backend(key), "jwks": None},
        "lower-case letters": backend(key, client_id="Planner!"),
        "redirect URI": {
            **backend(key),
            "kind": "USER_FACING",
            "jwks": None,
            "scopes": ["user/Patient.rs"],
            "redirectUris": ["http://evil.example/cb"],
        },
    }
    for fragment, app in cases.items():
        result = gateway.query(REGISTER, "vendor-app", {"input": app})
        assert result["data"] is None, fragment
        assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", fragment
        assert fragment in result["errors"][0]["message"], (fragment, result["errors"][0]["message"])
    taken = gateway.query(REGISTER, "vendor-app", {"input": backend(key, client_id="akson-demo-app")})
    assert "already registered" in taken["errors"][0]["message"]


def test_client_authentication_defects_are_refused(gateway: Gateway) -> None:
    key, client_id = registered_and_approved(gateway)
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    assert client_token(gateway, stranger, client_id).json()["error"] == "invalid_client"
    assert client_token(gateway, key, "nobody-registered").json()["error"] == "invalid_client"
    too_much = client_token(gateway, key, client_id, scope="system/Patient.rs")
    assert too_much.status_code == 400 and too_much.json()["error"] == "invalid_scope"
    endpoint = f"{gateway.base_url}/oauth/token"
    reused = assertion(key, client_id, endpoint)
    form = {
        "grant_type": "client_credentials",
        "client_assertion": reused,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    assert httpx.post(endpoint, data=form).status_code == 200
    replay = httpx.post(endpoint, data=form)
    assert replay.status_code == 401 and "used before" in replay.json()["error_description"]
    assert httpx.post(endpoint, data={"grant_type": "password"}).json()["error"] == "unsupported_grant_type"


def test_tokens_of_unregistered_apps_are_refused(gateway: Gateway) -> None:
    response = gateway.post(ORGANIZATIONS, token=gateway.token("gp", client_id="rogue-app"))
    assert response.status_code == 401
    assert "not registered" in response.json()["errors"][0]["message"]
