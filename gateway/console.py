"""The console at `/console`: pages for policy admins, compliance officers and citizens, over the public API.

Server-rendered pages (Starlette + Jinja2 templates, plain HTML forms; only the charts page runs script). Every
page asks the gateway's own GraphQL endpoint, in process and through the whole request path (authentication, policy,
audit), with the signed-in person's token, so the console can do nothing its user could not do with their
own token, and every action is audited with them as the actor. No private back door.

- Sign-in (demo mode): a persona picker; the session holds the persona's token server-side
  (`console_session`, migration 0021), keyed by the SHA-256 of a random cookie (HttpOnly, Secure,
  SameSite=Strict). Forms carry a per-session CSRF token; sign-in, before a session, a double-submit cookie.
- Pages: apps (approve, suspend, revoke with a reason), emergency accesses waiting for review (who, whom,
  when, why, what was read during the grant; record the conclusion), access-log search (compliance), the
  information-blocking charts (denials by day, reason and app, Chart.js; a table traces each reason to the
  rules that give it), explaining a decision (`explainDecision`: the rule and the policy version) and a
  citizen's own access log (innsyn).
- Norwegian bokmål by default, English with `?lang=en` (kept in a cookie); gateway/console_text.py.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway import demo_issuer
from gateway.audit import AuditRecord, AuditTrail, insert_rows
from gateway.auth import credentials
from gateway.browser_files import page_headers
from gateway.console_text import LANGUAGES, TEXT
from gateway.personas import PERSONAS
from gateway.policy_reasons import rules_by_reason
from gateway.runtime import runtime_of
from gateway.store import global_id_of

SESSION_COOKIE = "akson_console"
SIGN_IN_COOKIE = "akson_console_signin"
LANGUAGE_COOKIE = "akson_console_lang"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# The charts page alone runs script: this origin's (Chart.js, pinned, and the page's own), nothing inline.
CHARTS_POLICY = CONTENT_SECURITY_POLICY.replace("default-src 'none';", "default-src 'none'; script-src 'self';")
LOG_DAYS = 30
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


@dataclass(frozen=True)
class Session:
    """A signed-in person: their token, who they are, and the CSRF token of their forms."""

    token: str
    persona: str
    csrf: str


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def start_session(pool: asyncpg.Pool, token: str, persona: str, expires: datetime) -> str:
    """A new session for `token`; returns the cookie value (only its hash is stored)."""
    cookie = secrets.token_urlsafe(32)
    await pool.execute("DELETE FROM console_session WHERE expires_at <= now()")
    await pool.execute(
        "INSERT INTO console_session (id_hash, access_token, persona, csrf_token, expires_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        _digest(cookie),
        token,
        persona,
        secrets.token_urlsafe(24),
        expires,
    )
    return cookie


async def session_of(request: Request) -> Session | None:
    """The request's session, if its cookie names one that has not expired."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    row = await runtime_of(request.scope).pool.fetchrow(
        "SELECT access_token, persona, csrf_token FROM console_session WHERE id_hash = $1 AND expires_at > now()",
        _digest(cookie),
    )
    return Session(row["access_token"], row["persona"], row["csrf_token"]) if row else None


def language_of(request: Request) -> str:
    """`?lang=` when given, else the language cookie, else bokmål."""
    asked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE) or "nb"
    return asked if asked in LANGUAGES else "nb"


def render(request: Request, template: str, status: int = 200, *, scripts: bool = False, **values: Any) -> HTMLResponse:
    """A page in the request's language, under the console's Content-Security-Policy (which lets this
    origin's scripts run only on a page that has some)."""
    language = language_of(request)
    words = TEXT[language]
    html = TEMPLATES.get_template(template).render(
        t=lambda key: words[key], lang=language, path=request.url.path, **values
    )
    headers = page_headers(CHARTS_POLICY if scripts else CONTENT_SECURITY_POLICY)
    response = HTMLResponse(html, status_code=status, headers=headers)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, httponly=True, secure=True, samesite="strict", path="/console")
    return response


async def graphql(request: Request, session: Session, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The public GraphQL API, asked in process with the person's token: the whole request path applies."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {session.token}", "Accept": "application/json"},
            timeout=30,
        )
    answer: dict[str, Any] = response.json()
    return answer


def problem(answer: dict[str, Any]) -> str | None:
    """The first error's message and reason code, for the page; None when there was none."""
    errors = answer.get("errors") or []
    if not errors:
        return None
    extensions = errors[0].get("extensions") or {}
    code = extensions.get("reason") or extensions.get("code") or ""
    return f"{errors[0].get('message', '')} ({code})" if code else str(errors[0].get("message", ""))


async def _form(request: Request, session: Session | None) -> dict[str, str] | None:
    """The posted form when its CSRF token is the session's (or, before one, the sign-in cookie's)."""
    form = await request.form()
    given = str(form.get("csrf", ""))
    expected = session.csrf if session else request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(given, expected):
        return None
    return {k: str(v) for k, v in form.items()}


def _forbidden(request: Request) -> HTMLResponse:
    return render(request, "console/message.html", status=403, session=None, message_key="no_access")


# ---- sign-in -------------------------------------------------------------------------------------------


async def sign_in(request: Request) -> Response:
    """GET: the persona picker (demo mode); POST: sign in as the chosen persona."""
    settings = runtime_of(request.scope).settings
    if not settings.demo:
        return render(request, "console/message.html", status=501, session=None, message_key="no_access")
    if request.method == "GET":
        csrf = secrets.token_urlsafe(24)
        personas = [p for p in PERSONAS.values() if p.kind != "service"]
        response = render(request, "console/sign_in.html", session=None, personas=personas, csrf=csrf)
        response.set_cookie(SIGN_IN_COOKIE, csrf, httponly=True, secure=True, samesite="strict", path="/console")
        return response
    form = await _form(request, None)
    persona = PERSONAS.get((form or {}).get("persona", ""))
    if form is None or persona is None or persona.kind == "service":
        return _forbidden(request)
    runtime = runtime_of(request.scope)
    claims = demo_issuer.persona_claims(persona, issuer=settings.issuer, audience=settings.audience)
    token = demo_issuer.sign(claims, runtime.issuer_key)
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    if earlier := request.cookies.get(SESSION_COOKIE):
        await runtime.pool.execute("DELETE FROM console_session WHERE id_hash = $1", _digest(earlier))
    cookie = await start_session(runtime.pool, token, persona.name, expires)
    await _record(request, token, "sign_in")
    signed_in = RedirectResponse("/console/", status_code=303)
    signed_in.set_cookie(
        SESSION_COOKIE, cookie, httponly=True, secure=True, samesite="strict", path="/console", expires=expires
    )
    signed_in.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return signed_in


async def _record(request: Request, token: str, action: str) -> None:
    """An audit record of signing in or out, with the person as actor (their token names them)."""
    runtime = runtime_of(request.scope)
    principal = await runtime.authenticator.authenticate(credentials(f"Bearer {token}", None, "POST", str(request.url)))
    trail = AuditTrail(principal, runtime.authorizer.policy_version)
    await insert_rows(runtime.pool, trail.rows([AuditRecord(None, "console_session", (), action, True, "CONSOLE")]))


async def sign_out(request: Request) -> Response:
    """End the session (its row is deleted, the cookie cleared), audited."""
    session = await session_of(request)
    if session is not None and await _form(request, session) is not None:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        await runtime_of(request.scope).pool.execute("DELETE FROM console_session WHERE id_hash = $1", _digest(cookie))
        await _record(request, session.token, "sign_out")
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


async def home(request: Request) -> Response:
    """The overview: the pages there are."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    return render(request, "console/home.html", session=session, persona=PERSONAS.get(session.persona))


# ---- apps ----------------------------------------------------------------------------------------------

APPS = """query { apps(first: 100) { clientId name vendorOrgNumber kind scopes status statusReason registeredAt
  decidedAt } }"""
APP_ACTIONS = {
    "approve": "mutation($id: String!, $reason: String!) { approveApp(clientId: $id, reason: $reason) { status } }",
    "suspend": "mutation($id: String!, $reason: String!) { suspendApp(clientId: $id, reason: $reason) { status } }",
    "revoke": "mutation($id: String!, $reason: String!) { revokeApp(clientId: $id, reason: $reason) { status } }",
}


async def apps(request: Request) -> Response:
    """Every app the person may see, with approve, suspend and revoke (decided by policy, audited)."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    notice = None
    if request.method == "POST":
        form = await _form(request, session)
        action = request.path_params.get("action", "")
        if form is None or action not in APP_ACTIONS:
            return _forbidden(request)
        client_id = request.path_params["client_id"]
        done = await graphql(request, session, APP_ACTIONS[action], {"id": client_id, "reason": form.get("reason", "")})
        failed = problem(done)
        outcome = f"failed:{failed}" if failed else f"done:{action} {client_id}"
        return RedirectResponse(f"/console/apps?notice={quote(outcome)}", status_code=303)
    notice = request.query_params.get("notice")
    answer = await graphql(request, session, APPS, {})
    listed = (answer.get("data") or {}).get("apps") or []
    return render(request, "console/apps.html", session=session, apps=listed, error=problem(answer), notice=notice)


# ---- emergency accesses --------------------------------------------------------------------------------

# A reviewer is not the patient's clinician: the patient is named by id, from the log of the grant.
PENDING = """query { emergencyGrants(first: 50, filter: {reviewed: false}) { edges { node { id reason
  lifeOrHealthAtRisk grantedAt expiresAt practitioner { id name { family given } } } } } }"""
READ_DURING = """query($from: DateTime!, $to: DateTime!, $actor: ID!) { accessLog(first: 50,
  filter: {recordedFrom: $from, recordedTo: $to, actorId: $actor, emergency: true}) {
  edges { node { recordedAt resourceKind action resourceCount decision patientIdGlobal } } } }"""
REVIEW = """mutation($id: ID!, $conclusion: String!) { reviewEmergencyAccess(id: $id, conclusion: $conclusion) {
  reviewedAt } }"""


async def emergency(request: Request) -> Response:
    """Emergency accesses waiting for review, with what was read under each; record a review's conclusion."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    if request.method == "POST":
        form = await _form(request, session)
        if form is None:
            return _forbidden(request)
        variables = {"id": request.path_params["grant_id"], "conclusion": form.get("conclusion", "")}
        failed = problem(await graphql(request, session, REVIEW, variables))
        outcome = f"failed:{failed}" if failed else "done:review"
        return RedirectResponse(f"/console/emergency?notice={quote(outcome)}", status_code=303)
    answer = await graphql(request, session, PENDING, {})
    grants = [e["node"] for e in ((answer.get("data") or {}).get("emergencyGrants") or {}).get("edges", [])]
    for grant in grants:
        actor = (grant.get("practitioner") or {}).get("id")
        read = await graphql(
            request, session, READ_DURING, {"from": grant["grantedAt"], "to": grant["expiresAt"], "actor": actor}
        )
        rows = [e["node"] for e in ((read.get("data") or {}).get("accessLog") or {}).get("edges", [])]
        grant["patient"] = _granted_patient(grant, rows)
        grant["read"] = [r for r in rows if r.get("patientIdGlobal") == grant["patient"]]
    return render(
        request,
        "console/emergency.html",
        session=session,
        grants=grants,
        error=problem(answer) if not grants else None,
        notice=request.query_params.get("notice"),
    )


def _granted_patient(grant: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """The patient a grant is for: the one its own creation was logged for (the log names the grant's patient
    even to a reviewer who may not read the patient), so that reads under another grant are not shown."""
    made = [r for r in rows if r["resourceKind"] == "emergency_grant" and r["action"] == "create"]
    made.sort(key=lambda r: abs(datetime.fromisoformat(r["recordedAt"]) - datetime.fromisoformat(grant["grantedAt"])))
    return made[0].get("patientIdGlobal") if made else None


# ---- a citizen's own access log ------------------------------------------------------------------------

MY_LOG = """query($patient: ID!, $from: DateTime!, $to: DateTime!) {
  emergencyGrants(first: 20) { edges { node { reason grantedAt expiresAt reviewedAt
    practitioner { name { family given } } } } }
  accessLog(first: 100, filter: {patientId: $patient, recordedFrom: $from, recordedTo: $to, decision: ALLOW}) {
    edges { node { recordedAt resourceKind action emergency actor { name { family given } } units { name } } } } }"""


async def my_log(request: Request) -> Response:
    """Innsyn: who accessed the person's record (or their child's), and every emergency access to it."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    persona = PERSONAS.get(session.persona)
    patient = (persona.launch_patient_id or persona.entity_id) if persona and persona.kind == "citizen" else None
    if patient is None:
        return _forbidden(request)
    now = datetime.now(UTC)
    variables = {
        "patient": global_id_of("Patient", patient),
        "from": (now - timedelta(days=LOG_DAYS)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
    }
    answer = await graphql(request, session, MY_LOG, variables)
    data = answer.get("data") or {}
    grants = [e["node"] for e in (data.get("emergencyGrants") or {}).get("edges", [])]
    accesses = [e["node"] for e in (data.get("accessLog") or {}).get("edges", [])]
    return render(
        request, "console/my_log.html", session=session, grants=grants, accesses=accesses, error=problem(answer)
    )


# ---- access log search (compliance) --------------------------------------------------------------------

LOG = """query($filter: AccessLogFilter!, $after: String) { accessLog(first: 100, after: $after, filter: $filter) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { recordedAt actorKind clientId resourceKind resourceCount action emergency decision reason
    patientIdGlobal actor { name { family given } } units { name } } } } }"""


def _day(raw: str | None, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


async def access_log(request: Request) -> Response:
    """Search the access log by patient, person, unit, app and time (what policy lets the person see)."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    params = request.query_params
    today = datetime.now(UTC).date()
    start, end = _day(params.get("from"), today - timedelta(days=7)), _day(params.get("to"), today)
    form = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "patient": params.get("patient", ""),
        "person": params.get("person", ""),
        "unit": params.get("unit", ""),
        "app": params.get("app", ""),
        "emergency": params.get("emergency", ""),
    }
    values: dict[str, Any] = {"session": session, "form": form, "searched": False, "rows": [], "total": 0, "next": None}
    if "from" not in params:
        return render(request, "console/log.html", **values)
    wanted: dict[str, Any] = {
        "recordedFrom": datetime.combine(start, datetime.min.time(), UTC).isoformat(),
        "recordedTo": datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC).isoformat(),
    }
    for field, key in (("patientId", "patient"), ("actorId", "person"), ("unitId", "unit"), ("clientId", "app")):
        if form[key]:
            wanted[field] = form[key]
    if form["emergency"]:
        wanted["emergency"] = True
    answer = await graphql(request, session, LOG, {"filter": wanted, "after": params.get("after")})
    found = (answer.get("data") or {}).get("accessLog") or {}
    page_info = found.get("pageInfo") or {}
    following = None
    if page_info.get("hasNextPage"):
        following = f"/console/log?{urlencode({**form, 'after': page_info['endCursor']})}"
    values.update(
        searched=True,
        rows=[e["node"] for e in found.get("edges", [])],
        total=found.get("totalCount", 0),
        next=following,
        error=problem(answer),
    )
    return render(request, "console/log.html", **values)


# ---- information blocking ------------------------------------------------------------------------------

DENIALS = "{ clientId vendorOrgNumber resourceKind reason denials }"


async def blocking(request: Request) -> Response:
    """Denials by app, vendor, kind and reason over the last days, as charts and a table with the rules that
    give each reason (read from the policies in force)."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    days = int(request.query_params.get("days", "14")) if request.query_params.get("days") in ("7", "14", "30") else 14
    app = request.query_params.get("app")
    today = datetime.now(UTC).date()
    starts = [today - timedelta(days=days - 1 - i) for i in range(days)]
    bounds = {f"f{i}": _midnight(day) for i, day in enumerate(starts)}
    bounds |= {f"t{i}": _midnight(day + timedelta(days=1)) for i, day in enumerate(starts)}
    declared = ", ".join(f"${name}: DateTime!" for name in bounds)
    fields = " ".join(f"d{i}: denialReport(recordedFrom: $f{i}, recordedTo: $t{i}) {DENIALS}" for i in range(days))
    answer = await graphql(request, session, f"query({declared}) {{ {fields} }}", bounds)
    data = answer.get("data") or {}
    per_day = [[r for r in data.get(f"d{i}") or [] if app in (None, r["clientId"])] for i in range(days)]
    reasons = sorted({r["reason"] or "" for rows in per_day for r in rows})
    totals: dict[tuple[str, str | None, str, str], int] = defaultdict(int)
    for rows in per_day:
        for r in rows:
            totals[(r["clientId"], r["vendorOrgNumber"], r["resourceKind"], r["reason"] or "")] += r["denials"]
    by_app: dict[str, int] = defaultdict(int)
    for (client, _, _, _), n in totals.items():
        by_app[client] += n
    rules = rules_by_reason(runtime_of(request.scope).settings.policy_dir)
    table = [
        {
            "clientId": client,
            "vendorOrgNumber": vendor,
            "resourceKind": kind,
            "reason": reason,
            "denials": n,
            "rules": [r for r in rules.get(reason, []) if r.split("#")[0].split("/")[0] == kind],
        }
        for (client, vendor, kind, reason), n in sorted(totals.items(), key=lambda item: -item[1])
    ]
    words = TEXT[language_of(request)]
    chart = {
        "days": [d.isoformat() for d in starts],
        "reasons": reasons,
        "byDay": {
            reason: [sum(r["denials"] for r in rows if (r["reason"] or "") == reason) for rows in per_day]
            for reason in reasons
        },
        "apps": list(by_app),
        "byApp": list(by_app.values()),
        "denialsLabel": words["denials"],
    }
    return render(
        request,
        "console/blocking.html",
        scripts=True,
        session=session,
        days=days,
        chart=chart,
        rows=table,
        error=problem(answer),
    )


def _midnight(day: date) -> str:
    return datetime.combine(day, datetime.min.time(), UTC).isoformat()


# ---- explain a decision --------------------------------------------------------------------------------

EXPLAIN = """query($person: ID!, $resource: ID!, $action: String!) {
  explainDecision(personId: $person, resourceId: $resource, action: $action) { decision reason matchedRule
    matchedScope decidedInScope derivedRoles personRoles outputs { source value } policyVersion } }"""
ACTIONS = ("read", "search", "read_text", "create", "update", "entered_in_error", "sign", "correct", "cancel")


async def explain(request: Request) -> Response:
    """Pick a person, a resource and an action: the decision, its reason, the rule and the policy version."""
    session = await session_of(request)
    if session is None:
        return RedirectResponse("/console/sign-in", status_code=303)
    people = [
        {"id": global_id_of("Practitioner", p.entity_id), "label": f"{p.name}: {p.description}"}
        for p in PERSONAS.values()
        if p.kind == "personnel" and p.entity_id is not None and p.role is not None
    ]
    params = request.query_params
    action = params.get("action", "read")
    form = {"person": params.get("person", people[0]["id"]), "resource": params.get("resource", ""), "action": action}
    values: dict[str, Any] = {"session": session, "people": people, "actions": ACTIONS, "form": form, "answer": None}
    if form["resource"]:
        variables = {"person": form["person"], "resource": form["resource"], "action": action}
        answer = await graphql(request, session, EXPLAIN, variables)
        values.update(answer=(answer.get("data") or {}).get("explainDecision"), error=problem(answer))
    return render(request, "console/explain.html", **values)


def routes() -> list[Route]:
    """The console's routes, under /console."""
    return [
        Route("/console", lambda request: RedirectResponse("/console/", status_code=307)),
        Route("/console/", home),
        Route("/console/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/console/sign-out", sign_out, methods=["POST"]),
        Route("/console/apps", apps),
        Route("/console/apps/{client_id}/{action}", apps, methods=["POST"]),
        Route("/console/emergency", emergency),
        Route("/console/emergency/{grant_id}/review", emergency, methods=["POST"]),
        Route("/console/my-log", my_log),
        Route("/console/log", access_log),
        Route("/console/blocking", blocking),
        Route("/console/explain", explain),
    ]
