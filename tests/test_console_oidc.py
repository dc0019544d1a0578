"""The console outside demo mode signs people in with the OpenID Connect authorization-code flow and PKCE, driven
in a real headless Chromium: a gateway in production mode trusts the demo issuer (another gateway process, by
its discovery document and JWKS over HTTP), the person signs in there and comes back to a session that works
like any other, audited with them as actor. A forged or stale answer from the issuer makes no session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.console_text import TEXT
from gateway.personas import PERSONAS
from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.live_clients import approved_app

CONSOLE_SCOPES = ["openid", "fhirUser", "launch/patient", "user/*.crus", "patient/*.rs"]


@pytest.fixture(scope="module")
def console(gateway: Gateway, issuer: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A production-mode gateway whose console is the app `client_id` at the demo issuer (registered and
    approved through the API with this gateway's callback as its redirect URI)."""
    client_id = f"console-{uuid.uuid4().hex[:8]}"
    started = start_gateway(
        gateway.database_url,
        Path(tmp_path_factory.mktemp("console-oidc")),
        extra_env={
            "AKSON_JWKS_URL": f"{issuer.base_url}/.well-known/jwks.json",
            "AKSON_OIDC_CONFIGURATION_URL": f"{issuer.base_url}/.well-known/openid-configuration",
            "AKSON_CONSOLE_CLIENT_ID": client_id,
        },
        demo=False,
    )
    try:
        approved_app(gateway, CONSOLE_SCOPES, (f"{started.base_url}/console/callback",), client=client_id)
        yield started
    finally:
        stop_gateway(started)


def sign_in_at_issuer(page: Page, console: Gateway, persona: str) -> None:
    page.goto(f"{console.base_url}/console/sign-in?lang=en")
    page.get_by_role("link", name=TEXT["en"]["sign_in_with_issuer"]).click()
    expect(page.get_by_role("heading", name=TEXT["nb"]["issuer_sign_in"])).to_be_visible()
    page.get_by_label(persona, exact=False).first.check()
    page.get_by_role("button", name=TEXT["nb"]["sign_in"]).click()
    name = f"{PERSONAS[persona].given_name} {PERSONAS[persona].family_name}"
    expect(page.locator(f'[data-persona="{name}"]')).to_be_visible()


def console_client(console: Gateway) -> str:
    rows = console.fetch("SELECT client_id FROM app WHERE client_id LIKE 'console-%' ORDER BY registered_at DESC")
    return str(rows[0]["client_id"])


def test_a_policy_admin_signs_in_at_the_issuer_and_the_console_works_as_her(page: Page, console: Gateway) -> None:
    sign_in_at_issuer(page, console, "policy-admin")
    page.goto(f"{console.base_url}/console/apps?lang=en")
    client_id = console_client(console)
    expect(page.locator("table")).to_contain_text(client_id)

    admin = str(PERSONAS["policy-admin"].entity_id)
    signed_in = console.fetch(
        "SELECT client_id FROM audit_event WHERE actor_id = $1 AND resource_kind = 'console_session' "
        "AND action = 'sign_in' AND client_id = $2",
        admin,
        client_id,
    )
    assert len(signed_in) == 1, "signing in is audited with her as actor, through the console's client"

    page.get_by_role("button", name=TEXT["en"]["sign_out"]).click()
    expect(page.get_by_role("link", name=TEXT["en"]["sign_in_with_issuer"])).to_be_visible()
    page.goto(f"{console.base_url}/console/apps")
    expect(page).to_have_url(f"{console.base_url}/console/sign-in")
    signed_out = console.fetch(
        "SELECT 1 FROM audit_event WHERE actor_id = $1 AND action = 'sign_out' AND client_id = $2", admin, client_id
    )
    assert len(signed_out) == 1


def test_a_citizen_signed_in_at_the_issuer_sees_who_read_their_record(page: Page, console: Gateway) -> None:
    sign_in_at_issuer(page, console, "citizen")
    page.goto(f"{console.base_url}/console/my-log?lang=en")
    expect(page.get_by_role("heading", level=1)).to_have_text(TEXT["en"]["my_log"])
    expect(page.get_by_text(TEXT["en"]["no_access"])).to_have_count(0)


def test_signing_in_again_at_the_issuer_ends_the_session_this_browser_had(page: Page, console: Gateway) -> None:
    sessions = "SELECT count(*) AS n FROM console_session WHERE persona = $1"
    sign_in_at_issuer(page, console, "compliance-officer")
    before = console.fetch(sessions, "Hanne Moe")[0]["n"]
    assert before >= 1
    sign_in_at_issuer(page, console, "citizen")
    assert console.fetch(sessions, "Hanne Moe")[0]["n"] == before - 1


def test_an_answer_that_no_sign_in_in_this_browser_started_makes_no_session(console: Gateway) -> None:
    forged = httpx.get(f"{console.base_url}/console/callback", params={"code": "stolen", "state": "guessed"})
    assert forged.status_code == 400
    assert "akson_console=" not in forged.headers.get("set-cookie", "")
    assert "stolen" not in forged.text


def test_a_sign_in_whose_state_does_not_match_makes_no_session(console: Gateway) -> None:
    started = httpx.get(f"{console.base_url}/console/sign-in/issuer")
    assert started.status_code == 303 and "code_challenge_method=S256" in started.headers["location"]
    flow_cookie = started.headers["set-cookie"].split(";")[0]
    assert "samesite=lax" in started.headers["set-cookie"].lower()
    answer = httpx.get(
        f"{console.base_url}/console/callback",
        params={"code": "x", "state": "not-the-one"},
        headers={"Cookie": flow_cookie},
    )
    assert answer.status_code == 400 and "akson_console=" not in answer.headers.get("set-cookie", "")
    again = httpx.get(
        f"{console.base_url}/console/callback", params={"code": "x", "state": "y"}, headers={"Cookie": flow_cookie}
    )
    assert again.status_code == 400, "a sign-in is used once, even when it failed"
