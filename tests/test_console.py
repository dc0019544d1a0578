"""The console at /console, driven in a real headless Chromium as the personas would use it: a policy admin
approves a pending app and the app's next token works; a compliance officer records an emergency access's
review; the citizen sees the emergency access to their record; the nurse of another municipality sees none
of it. Every action is audited with the signed-in person as actor, through the public API."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from joserfc.jwk import ECKey
from playwright.sync_api import Browser, Page, expect

from gateway.authorization_codes import s256
from gateway.console_text import TEXT
from gateway.pages import CHARTS_POLICY, CONTENT_SECURITY_POLICY
from gateway.personas import CHILD_PATIENT_ID, CITIZEN_PATIENT_ID, FJORDVIK, PERSONAS
from gateway.resources import KINDS
from tests.conftest import PROJECT, Gateway, gid
from tests.test_app_registry import DECIDE, REGISTER, backend, client_token

EMERGENCY = """mutation($patient: ID!, $reason: String!) { requestEmergencyAccess(patientId: $patient,
  reason: $reason, lifeOrHealthAtRisk: false) { id } }"""


def sign_in(page: Page, gateway: Gateway, persona: str, lang: str = "en") -> None:
    page.goto(f"{gateway.base_url}/console/sign-in?lang={lang}")
    page.get_by_label(persona, exact=False).first.check()
    page.get_by_role("button", name=TEXT[lang]["sign_in"]).click()
    expect(page.locator(f'[data-persona="{persona}"]')).to_be_visible()


def actor_rows(gateway: Gateway, persona: str, action: str, resource_id: str) -> list[str]:
    rows = gateway.fetch(
        "SELECT decision FROM audit_event WHERE actor_id = $1 AND action = $2 AND $3 = ANY(resource_ids)",
        str(PERSONAS[persona].entity_id),
        action,
        resource_id,
    )
    return [r["decision"] for r in rows]


@contextlib.contextmanager
def emergency_access(gateway: Gateway, patient_id: uuid.UUID | None) -> Iterator[str]:
    """The GP opens a patient's record in an emergency (by the API) and reads it; the grant is ended afterwards,
    so that the GP's later requests are not under it. Yields the stated reason."""
    reason = f"Akutt forverring, fastlegen utilgjengelig {uuid.uuid4().hex[:6]}"
    opened = gateway.query(EMERGENCY, "gp", {"patient": gid("Patient", patient_id), "reason": reason})
    assert "errors" not in opened, opened
    read = gateway.query("query($id: ID!) { patient(id: $id) { id } }", "gp", {"id": gid("Patient", patient_id)})
    assert read["data"]["patient"] is not None
    try:
        yield reason
    finally:
        gateway.fetch(
            "UPDATE emergency_grant SET expires_at = granted_at + interval '1 millisecond' WHERE reason = $1", reason
        )


@pytest.fixture(scope="module")
def emergency_reason(gateway: Gateway) -> Iterator[str]:
    """The emergency access to the citizen's record that the pages below show."""
    with emergency_access(gateway, CITIZEN_PATIENT_ID) as reason:
        yield reason


def test_every_console_page_is_under_a_policy_of_this_origin_only_and_no_script(gateway: Gateway) -> None:
    page = httpx.get(f"{gateway.base_url}/console/sign-in")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY and "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "<script" not in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie


def test_a_form_without_the_sessions_csrf_token_is_refused(gateway: Gateway) -> None:
    refused = httpx.post(f"{gateway.base_url}/console/sign-in", data={"persona": "policy-admin", "csrf": "guess"})
    assert refused.status_code == 403 and "akson_console=" not in refused.headers.get("set-cookie", "")


def test_the_console_speaks_bokmal_by_default_and_english_on_request(gateway: Gateway) -> None:
    assert set(TEXT["nb"]) == set(TEXT["en"])
    norwegian = httpx.get(f"{gateway.base_url}/console/sign-in")
    assert '<html lang="nb">' in norwegian.text and TEXT["nb"]["choose_persona"] in norwegian.text
    english = httpx.get(f"{gateway.base_url}/console/sign-in?lang=en")
    assert '<html lang="en">' in english.text and TEXT["en"]["choose_persona"] in english.text


def test_every_kind_and_policy_action_has_words_in_both_languages() -> None:
    """The logs say what was done to what in words: for every kind declared and every action a policy names."""
    actions = {
        action
        for policy in (PROJECT / "policies" / "resources").glob("*.yaml")
        for rule in (yaml.safe_load(policy.read_text())["resourcePolicy"].get("rules") or [])
        for action in rule["actions"]
        if action != "*"
    }
    wanted = {f"kind_{k}" for k in [*(kind.name for kind in KINDS.values()), "console_session"]} | {
        f"action_{a}" for a in actions
    }
    assert len(actions) > 15
    for language in ("nb", "en"):
        assert wanted - set(TEXT[language]) == set(), language


def test_a_policy_admin_approves_a_pending_app_and_its_next_token_works(gateway: Gateway, page: Page) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    client_id = gateway.query(REGISTER, "vendor-app", {"input": backend(key)})["data"]["registerApp"]["clientId"]
    assert client_token(gateway, key, client_id).status_code != 200, "a pending app gets no token"

    sign_in(page, gateway, "policy-admin")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["apps"]).click()
    row = page.locator(f'tr[data-client-id="{client_id}"]')
    expect(row.locator(".status")).to_have_text("PENDING")
    row.get_by_label("Reason (Approve", exact=False).fill("DPIA and data-processing agreement signed")
    row.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text(f"approve {client_id}")
    expect(page.locator(f'tr[data-client-id="{client_id}"] .status')).to_have_text("APPROVED")
    history = page.locator(f'tr[data-client-id="{client_id}"] .history')
    history.locator("summary").click()
    expect(history.locator('li[data-action="register"]')).to_be_visible()
    expect(history.locator('li[data-action="approve"]')).to_contain_text("DPIA and data-processing agreement signed")

    issued = client_token(gateway, key, client_id)
    assert issued.status_code == 200, issued.text
    answer = gateway.post("{ organizations(first: 1) { totalCount } }", token=issued.json()["access_token"])
    assert answer.status_code == 200 and "errors" not in answer.json()
    assert "ALLOW" in actor_rows(gateway, "policy-admin", "approve", client_id)


def test_a_compliance_officer_records_the_review_of_an_emergency_access(
    gateway: Gateway, page: Page, emergency_reason: str
) -> None:
    sign_in(page, gateway, "compliance-officer")
    page.goto(f"{gateway.base_url}/console/emergency")
    [[waiting]] = gateway.fetch("SELECT count(*) FROM emergency_grant WHERE reviewed_at IS NULL")
    expect(page.get_by_text(TEXT["en"]["waiting_for_review"])).to_have_text(
        f"{waiting} {TEXT['en']['waiting_for_review']}"
    )
    grant = page.locator("section.grant", has_text=emergency_reason)
    expect(grant).to_contain_text("Haugen")
    expect(grant).to_contain_text(gid("Patient", CITIZEN_PATIENT_ID))
    expect(grant.locator("table")).to_contain_text(f"{TEXT['en']['action_read']}: {TEXT['en']['kind_patient']}")
    grant.get_by_label("Conclusion").fill("Justified: the GP office was closed and the patient deteriorated.")
    grant.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("status")).to_contain_text("review")
    [row] = gateway.fetch(
        "SELECT id, reviewed_at, review_conclusion FROM emergency_grant WHERE reason = $1", emergency_reason
    )
    assert row["reviewed_at"] is not None and row["review_conclusion"].startswith("Justified")
    assert "ALLOW" in actor_rows(gateway, "compliance-officer", "review", str(row["id"]))


def test_the_citizen_sees_the_emergency_access_to_their_record(
    gateway: Gateway, page: Page, emergency_reason: str
) -> None:
    sign_in(page, gateway, "citizen", lang="nb")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["nb"]["my_log"]).click()
    expect(page.locator(".emergency-item", has_text=emergency_reason)).to_contain_text("Erik Haugen")
    expect(page.locator("tr.emergency-row").first).to_be_visible()
    words = TEXT["nb"]
    expect(page.locator("tr.emergency-row").first).to_contain_text(words["kind_patient"])
    menu = page.get_by_role("navigation").get_by_role("link")
    expect(menu).to_have_text([words["home"], words["my_log"]])


def test_the_citizen_pages_through_who_read_their_record_in_a_chosen_period(gateway: Gateway, page: Page) -> None:
    for _ in range(101):  # one access record each: more than a page
        read = gateway.query(
            "query($id: ID!) { patient(id: $id) { id } }", "gp", {"id": gid("Patient", CITIZEN_PATIENT_ID)}
        )
        assert read["data"]["patient"] is not None
    sign_in(page, gateway, "citizen")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["my_log"]).click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(100)
    first_page = [rows.nth(i).locator("td").first.inner_text() for i in range(100)]
    page.get_by_role("link", name=TEXT["en"]["next_page"]).click()
    expect(rows.first).to_be_visible()
    assert rows.first.locator("td").first.inner_text() <= first_page[-1], "the next page goes on back in time"
    assert int(page.get_by_role("status").inner_text().split()[0]) >= 101

    page.get_by_label(TEXT["en"]["from"]).fill("2020-01-01")
    page.get_by_label(TEXT["en"]["to"]).fill("2020-01-31")
    page.get_by_role("button", name=TEXT["en"]["show"]).click()
    expect(page.get_by_role("status")).to_have_text(f"0 {TEXT['en']['records']}")
    expect(page.locator("tbody tr")).to_have_count(0)


def test_a_log_page_asked_for_a_date_that_is_not_one_says_so(gateway: Gateway, page: Page) -> None:
    asked = [("compliance-officer", "/console/log?from=2026-13-01"), ("citizen", "/console/my-log?to=igår")]
    for persona, path in asked:
        sign_in(page, gateway, persona)
        response = page.goto(gateway.base_url + path)
        assert response is not None and response.status == 400, path
        expect(page.locator("h1")).to_have_text(TEXT["en"]["bad_date"])


def test_a_parent_sees_the_emergency_access_to_their_childs_record_and_not_the_citizens(
    gateway: Gateway, page: Page, emergency_reason: str
) -> None:
    with emergency_access(gateway, CHILD_PATIENT_ID) as reason:
        sign_in(page, gateway, "parent")
        page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["my_log"]).click()
        expect(page.locator(".emergency-item", has_text=reason)).to_contain_text("Erik Haugen")
        expect(page.locator(".emergency-item", has_text=emergency_reason)).to_have_count(0)


def test_the_nurse_of_another_municipality_sees_none_of_it(gateway: Gateway, page: Page, emergency_reason: str) -> None:
    sign_in(page, gateway, "nurse-other-municipality")
    page.goto(f"{gateway.base_url}/console/emergency")
    expect(page.locator("h1")).to_have_text(TEXT["en"]["emergency"])
    assert page.locator("section.grant", has_text=emergency_reason).count() == 0
    page.goto(f"{gateway.base_url}/console/apps")
    assert page.locator("tr[data-client-id]").count() == 0
    response = page.goto(f"{gateway.base_url}/console/my-log")
    assert response is not None and response.status == 403
    assert emergency_reason not in page.content()


def test_a_compliance_officer_searches_the_access_log_by_patient_and_emergency(
    gateway: Gateway, page: Page, emergency_reason: str
) -> None:
    sign_in(page, gateway, "compliance-officer")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["access_log"]).click()
    page.get_by_label(TEXT["en"]["patient_id"]).fill(gid("Patient", CITIZEN_PATIENT_ID))
    page.get_by_label(TEXT["en"]["only_emergency"]).check()
    page.get_by_role("button", name=TEXT["en"]["search"]).click()
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 1
    for i in range(rows.count()):
        expect(rows.nth(i)).to_contain_text(gid("Patient", CITIZEN_PATIENT_ID))
        expect(rows.nth(i)).to_have_class("emergency-row")
    expect(page.locator("tbody")).to_contain_text("Haugen")


def test_information_blocking_is_charted_and_each_reason_traced_to_its_rules(gateway: Gateway, page: Page) -> None:
    # A denial to chart: the Nordby nurse, through the demo app, asks for a Fjordvik patient.
    denied = gateway.query("query($id: ID!) { patient(id: $id) { id } }", "nurse-other-municipality",
                           {"id": gid("Patient", CITIZEN_PATIENT_ID)})  # fmt: skip
    assert denied["errors"][0]["extensions"]["reason"] == "NO_CARE_RELATION"
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(page, gateway, "policy-admin")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["blocking"]).click()
    expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
    row = page.locator('tr[data-client-id="akson-demo-app"][data-reason="NO_CARE_RELATION"]').filter(has_text="patient")
    expect(row.first).to_contain_text("patient#personnel-with-care-relation")
    drawn = {c: page.evaluate(f"Chart.getChart('{c}').data") for c in ("by-app", "by-vendor", "by-kind")}
    assert "akson-demo-app" in drawn["by-app"]["labels"]
    assert "999999999" in drawn["by-vendor"]["labels"], "the demo app's vendor"
    kinds = drawn["by-kind"]["labels"]
    assert "patient" in kinds and drawn["by-kind"]["datasets"][0]["data"][kinds.index("patient")] >= 1
    assert problems == [], "Chart.js draws under the page's policy"
    response = page.goto(f"{gateway.base_url}/console/blocking?days=7")
    assert response is not None and response.headers["content-security-policy"] == CHARTS_POLICY
    assert "script-src 'self'" in CHARTS_POLICY and "unsafe" not in CHARTS_POLICY


def test_a_policy_admin_explains_a_decision_in_the_console(gateway: Gateway, page: Page) -> None:
    [note] = gateway.fetch(
        "SELECT n.id FROM clinical_note n JOIN organization o ON o.id = n.owning_unit_id "
        "WHERE o.municipality_id = $1 AND n.entered_in_error_at IS NULL ORDER BY n.id LIMIT 1",
        FJORDVIK,
    )
    sign_in(page, gateway, "policy-admin")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["explain"]).click()
    page.get_by_label(TEXT["en"]["person"]).select_option(gid("Practitioner", PERSONAS["health-secretary"].entity_id))
    page.get_by_label(TEXT["en"]["resource_id"]).fill(gid("ClinicalNote", note["id"]))
    page.get_by_label(TEXT["en"]["action"]).select_option("read")
    page.get_by_role("button", name=TEXT["en"]["explain_it"]).click()
    answer = page.locator("section.explanation")
    expect(answer).to_contain_text("DENY")
    expect(answer).to_contain_text("LOCAL_RULE")
    expect(answer).to_contain_text("fjordvik-secretaries-see-no-notes")


AXE = PROJECT / "node_modules" / "axe-core" / "axe.min.js"
PAGES = [
    ("policy-admin", "/console/apps"),
    ("policy-admin", "/console/blocking"),
    ("policy-admin", "/console/explain"),
    ("compliance-officer", "/console/emergency"),
    ("compliance-officer", "/console/log?from=2026-01-01"),
    ("citizen", "/console/my-log"),
    ("citizen", "/console/"),
]


# The demo issuer's sign-in page, as the demo app's authorization-code flow opens it.
ISSUER_SIGN_IN = "/oauth/authorize?" + urlencode(
    {
        "response_type": "code",
        "client_id": "akson-demo-app",
        "redirect_uri": "http://127.0.0.1:8000/callback",
        "scope": "openid user/*.crus",
        "code_challenge": s256("a-verifier-of-forty-three-characters-or-more-0123"),
        "code_challenge_method": "S256",
    }
)


def test_every_console_page_passes_axe_at_wcag_2_aa(gateway: Gateway, browser: Browser, emergency_reason: str) -> None:
    """Labels, names, landmarks, contrast: axe-core (pinned in package.json) finds nothing serious on any page.
    The check runs in a context that lets its script in past the pages' policy; the pages are unchanged."""
    context = browser.new_context(bypass_csp=True)
    found: list[str] = []
    try:
        checked = context.new_page()
        checked.goto(f"{gateway.base_url}/console/sign-in?lang=nb")
        for persona, path in [(None, "/console/sign-in"), (None, ISSUER_SIGN_IN), *PAGES]:
            if persona is not None:
                sign_in(checked, gateway, persona)
            checked.goto(gateway.base_url + path)
            checked.add_script_tag(path=str(AXE))
            result = checked.evaluate("axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa']})")
            found += [
                f"{path}: {v['id']} ({v['impact']}) {v['nodes'][0]['target']}"
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
    finally:
        context.close()
    assert found == []


def test_signing_in_works_from_the_keyboard_alone(gateway: Gateway, page: Page) -> None:
    page.goto(f"{gateway.base_url}/console/sign-in?lang=en")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    for _ in range(8):  # past the header's links to the first choice
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "persona":
            break
    expect(page.locator("#persona-homecare-nurse")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#persona-gp")).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator('[data-persona="gp"]')).to_be_visible()


def test_signing_in_and_out_is_audited_with_the_person_as_actor(gateway: Gateway, page: Page) -> None:
    sign_in(page, gateway, "compliance-officer")
    session = next(c["value"] for c in page.context.cookies() if c["name"] == "akson_console")
    page.get_by_role("button", name=TEXT["en"]["sign_out"]).click()
    expect(page.get_by_role("button", name=TEXT["en"]["sign_in"])).to_be_visible()
    rows = gateway.fetch(
        "SELECT action FROM audit_event WHERE resource_kind = 'console_session' AND actor_id = $1 "
        "ORDER BY recorded_at DESC LIMIT 2",
        str(PERSONAS["compliance-officer"].entity_id),
    )
    assert [r["action"] for r in rows] == ["sign_out", "sign_in"]
    signed_out = httpx.get(f"{gateway.base_url}/console/apps", cookies={"akson_console": session})
    assert signed_out.status_code == 303, "the session is gone on the server, not only in the browser"


def audited_since(gateway: Gateway, mark: int) -> dict[str, set[tuple[str, str]]]:
    """What each persona was audited doing, allowed, after audit record `mark`: {persona: {(kind, action)}}."""
    ids = {str(p.entity_id): name for name, p in PERSONAS.items() if p.entity_id is not None}
    rows = gateway.fetch(
        "SELECT actor_id, resource_kind, action FROM audit_event WHERE id > $1 AND decision = 'ALLOW' "
        "AND actor_id = ANY($2::text[])",
        mark,
        list(ids),
    )
    found: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        found.setdefault(ids[r["actor_id"]], set()).add((r["resource_kind"], r["action"]))
    return found


def test_every_console_action_is_audited_with_the_signed_in_person_as_actor(gateway: Gateway, page: Page) -> None:
    """Each page and form of the console, as the persona it is for, leaves an audit record naming that person."""
    [[mark]] = gateway.fetch("SELECT coalesce(max(id), 0) FROM audit_event")
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    client_id = gateway.query(REGISTER, "vendor-app", {"input": backend(key)})["data"]["registerApp"]["clientId"]
    approved = gateway.query(DECIDE % "approveApp", "policy-admin", {"id": client_id, "reason": "DPIA ok"})
    assert approved["data"]["approveApp"]["status"] == "APPROVED", approved
    [[mark]] = gateway.fetch("SELECT coalesce(max(id), 0) FROM audit_event")

    sign_in(page, gateway, "policy-admin")
    page.goto(f"{gateway.base_url}/console/apps?lang=en")
    for action, status in (("Suspend", "SUSPENDED"), ("Revoke", "REVOKED")):
        row = page.locator(f'tr[data-client-id="{client_id}"]')
        row.get_by_label(f"Reason ({action}", exact=False).fill(f"{action}: the vendor broke the agreement")
        row.get_by_role("button", name=action).click()
        expect(page.locator(f'tr[data-client-id="{client_id}"] .status')).to_have_text(status)
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["blocking"]).click()
    expect(page.locator("body")).to_have_attribute("data-charts", "drawn")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["explain"]).click()
    page.get_by_label(TEXT["en"]["resource_id"]).fill(gid("Patient", CITIZEN_PATIENT_ID))
    page.get_by_role("button", name=TEXT["en"]["explain_it"]).click()
    expect(page.locator("section.explanation")).to_be_visible()
    page.get_by_role("button", name=TEXT["en"]["sign_out"]).click()

    with emergency_access(gateway, CITIZEN_PATIENT_ID) as reason:
        sign_in(page, gateway, "compliance-officer")
        page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["access_log"]).click()
        page.get_by_label(TEXT["en"]["patient_id"]).fill(gid("Patient", CITIZEN_PATIENT_ID))
        page.get_by_role("button", name=TEXT["en"]["search"]).click()
        expect(page.locator("tbody tr").first).to_be_visible()
        page.goto(f"{gateway.base_url}/console/emergency?lang=en")
        grant = page.locator("section.grant", has_text=reason)
        grant.get_by_label("Conclusion").fill("Justified.")
        grant.get_by_role("button", name="Record the review").click()
        expect(page.get_by_role("status")).to_contain_text("review")

    sign_in(page, gateway, "citizen")
    page.get_by_role("navigation").get_by_role("link", name=TEXT["en"]["my_log"]).click()
    expect(page.locator(".emergency-item", has_text=reason)).to_be_visible()

    audited = audited_since(gateway, mark)
    assert {
        ("console_session", "sign_in"),
        ("app", "suspend"),
        ("app", "revoke"),
        ("audit_event", "report"),
        ("patient", "explain"),
        ("console_session", "sign_out"),
    } <= audited["policy-admin"], audited["policy-admin"]
    assert {
        ("console_session", "sign_in"),
        ("audit_event", "search"),
        ("emergency_grant", "review"),
    } <= audited["compliance-officer"], audited["compliance-officer"]
    assert {("console_session", "sign_in"), ("audit_event", "search")} <= audited["citizen"], audited["citizen"]
