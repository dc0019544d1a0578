"""The console at `/console`: pages for policy admins, compliance officers and citizens, over the public API.

Server-rendered pages (Starlette + Jinja2 templates, plain HTML forms; only the charts page runs script). Every
page asks the gateway's own GraphQL endpoint, in process and through the whole request path (authentication, policy,
audit), with the signed-in person's token, so the console can do nothing its user could not do with their
own token, and every action is audited with them as the actor. No private back door.

- Sign-in: in demo mode a persona picker; otherwise the OpenID Connect authorization-code flow with PKCE at the
  trusted issuer (gateway/console_oidc.py). The session holds the person's token server-side
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

import contextlib
import functools
import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway import demo_issuer
from gateway.audit import AuditRecord, AuditTrail, insert_rows
from gateway.auth import Principal, credentials
from gateway.console_oidc import CALLBACK_PATH, SIGN_IN_SECONDS, SignInFailed
from gateway.console_text import TEXT
from gateway.errors import AksonError
from gateway.pages import form_token_matches, language_of, render, set_private_cookie
from gateway.personas import PERSONAS, people
from gateway.policy_reasons import rules_by_reason
from gateway.runtime import runtime_of
from gateway.store import global_id_of
from gateway.trusted_documents import sha256_of

log = logging.getLogger(__name__)

SESSION_COOKIE = "akson_console"
SIGN_IN_COOKIE = "akson_console_signin"
# A sign-in at the issuer under way (gateway/console_oidc.py): sent back to the callback only.
FLOW_COOKIE = "akson_console_flow"
LOG_DAYS = 30
# The console's pages: (path, name key, for whom: patients, personnel or both when None).
PAGES: list[tuple[str, str, bool | None]] = [
    ("/console/", "home", None),
    ("/console/apps", "apps", False),
    ("/console/emergency", "emergency", False),
    ("/console/log", "access_log", False),
    ("/console/blocking", "blocking", False),
    ("/console/explain", "explain", False),
    ("/console/my-log", "my_log", True),
]


@dataclass(frozen=True)
class Session:
    """A signed-in person: their token, who they are, the patient whose access log they may see (a citizen's own
    or their child's), and the CSRF token of their forms."""

    token: str
    persona: str
    csrf: str
    patient_id: str | None = None

    @property
    def pages(self) -> list[tuple[str, str]]:
        """The pages for this person, as (path, name key): a patient's own log for citizens, the rest for
        personnel. Only what the menu shows; policy decides what each page holds."""
        patient = self.patient_id is not None
        return [(path, key) for path, key, for_patients in PAGES if for_patients in (None, patient)]


async def session_of(request: Request) -> Session | None:
    """The request's session, if its cookie names one that has not expired."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    row = await runtime_of(request.scope).pool.fetchrow(
        "SELECT access_token, persona, csrf_token, patient_id::text FROM console_session "
        "WHERE id_hash = $1 AND expires_at > now()",
        sha256_of(cookie),
    )
    return Session(row["access_token"], row["persona"], row["csrf_token"], row["patient_id"]) if row else None


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
    if not form_token_matches(given, session.csrf if session else request.cookies.get(SIGN_IN_COOKIE)):
        return None
    return {k: str(v) for k, v in form.items()}


def _forbidden(request: Request) -> HTMLResponse:
    return render(request, "console/message.html", status=403, session=None, message_key="no_access")


def _not_configured(request: Request) -> HTMLResponse:
    return render(request, "console/message.html", status=501, session=None, message_key="console_not_configured")


Page = Callable[[Request, Session], Awaitable[Response]]


def signed_in(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """A page for a signed-in person: without a session, the way to sign in instead."""

    @functools.wraps(page)
    async def route(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return RedirectResponse("/console/sign-in", status_code=303)
        return await page(request, session)

    return route


def connection(answer: dict[str, Any], field: str) -> dict[str, Any]:
    """A connection in a GraphQL answer (empty when the field is missing or null)."""
    return (answer.get("data") or {}).get(field) or {}


def nodes(answer: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The nodes of a connection in a GraphQL answer (none when the field is missing or null)."""
    return connection_nodes(connection(answer, field))


def connection_nodes(connection: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The nodes of a connection's edges (none for a null connection)."""
    return [edge["node"] for edge in (connection or {}).get("edges", [])]


def after_action(path: str, answer: dict[str, Any], done: str) -> RedirectResponse:
    """Back to the page after a form's action, with a notice of what happened (or of why it did not)."""
    failed = problem(answer)
    return RedirectResponse(f"{path}?notice={quote(f'failed:{failed}' if failed else f'done:{done}')}", status_code=303)


async def ask_each(
    request: Request, session: Session, field: str, each: list[dict[str, Any]], types: dict[str, str]
) -> tuple[list[Any], str | None]:
    """`field` asked once per entry of `each`, in as few requests as the gateway's alias limit allows: each entry's
    answer (None where it failed), and the first problem."""
    limit = runtime_of(request.scope).settings.graphql_max_aliases
    answers: list[Any] = []
    trouble = None
    for start in range(0, len(each), limit):
        chunk = each[start : start + limit]
        answer = await graphql(request, session, *aliased(field, chunk, types))
        data = answer.get("data") or {}
        answers += [data.get(f"a{i}") for i in range(len(chunk))]
        trouble = trouble or problem(answer)
    return answers, trouble


def aliased(field: str, each: list[dict[str, Any]], types: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """One query that asks `field` once per entry of `each` (as `a0`, `a1`, ...), each with its own variables."""
    declared = ", ".join(f"${name}_{i}: {kind}" for i in range(len(each)) for name, kind in types.items())
    fields = " ".join(f"a{i}: " + re.sub(r"\$(\w+)", rf"$\1_{i}", field) for i in range(len(each)))
    variables = {f"{name}_{i}": values[name] for i, values in enumerate(each) for name in types}
    return f"query({declared}) {{ {fields} }}", variables


# ---- sign-in -------------------------------------------------------------------------------------------


async def sign_in(request: Request) -> Response:
    """GET: the persona picker (demo mode) or the way to the issuer's sign-in; POST (demo mode): sign in as the
    chosen persona."""
    runtime = runtime_of(request.scope)
    settings = runtime.settings
    if not settings.demo:
        if runtime.console_sign_in is None or request.method != "GET":
            return _not_configured(request)
        return render(request, "console/sign_in_oidc.html", session=None)
    if request.method == "GET":
        csrf = secrets.token_urlsafe(24)
        response = render(request, "console/sign_in.html", session=None, personas=people(), csrf=csrf)
        set_private_cookie(response, SIGN_IN_COOKIE, csrf)
        return response
    form = await _form(request, None)
    persona = PERSONAS.get((form or {}).get("persona", ""))
    if form is None or persona is None or persona.kind == "service":
        return _forbidden(request)
    claims = demo_issuer.persona_claims(persona, issuer=settings.issuer, audience=settings.audience)
    token = demo_issuer.sign(claims, runtime.issuer_key)
    principal = await runtime.authenticator.authenticate(credentials(f"Bearer {token}", None, "POST", str(request.url)))
    signed_in = RedirectResponse("/console/", status_code=303)
    await _open_session(request, signed_in, token, persona.name, datetime.fromtimestamp(claims["exp"], UTC), principal)
    signed_in.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return signed_in


async def sign_in_at_issuer(request: Request) -> Response:
    """Start the OpenID Connect sign-in: off to the issuer, with this browser's sign-in remembered here."""
    flow = runtime_of(request.scope).console_sign_in
    if flow is None:
        return _not_configured(request)
    earlier = request.cookies.get(SESSION_COOKIE)
    try:
        cookie, url = await flow.start(runtime_of(request.scope).pool, sha256_of(earlier) if earlier else None)
    except SignInFailed as exc:
        return _sign_in_failed(request, exc)
    response = RedirectResponse(url, status_code=303)
    # Lax: the issuer sends the person back with a top-level GET from its own site.
    set_private_cookie(response, FLOW_COOKIE, cookie, CALLBACK_PATH, samesite="lax", max_age=SIGN_IN_SECONDS)
    return response


async def callback(request: Request) -> Response:
    """The issuer's answer: a session when every check holds. The page that follows is reached by a link from
    this origin, so the session cookie (SameSite=Strict) goes with it, which a redirect begun at the issuer's
    site would not carry."""
    runtime = runtime_of(request.scope)
    flow = runtime.console_sign_in
    if flow is None:
        return _not_configured(request)
    answer = {k: str(v) for k, v in request.query_params.items()}
    try:
        signed_in = await flow.finish(runtime.pool, runtime.authenticator, request.cookies.get(FLOW_COOKIE, ""), answer)
    except SignInFailed as exc:
        response = _sign_in_failed(request, exc)
    else:
        response = render(request, "console/signed_in.html", session=None, language_links="/console/")
        await _open_session(
            request,
            response,
            signed_in.access_token,
            signed_in.name,
            signed_in.expires,
            signed_in.principal,
            signed_in.replaces_session,
        )
    response.delete_cookie(FLOW_COOKIE, path=CALLBACK_PATH)
    return response


def _sign_in_failed(request: Request, exc: SignInFailed) -> HTMLResponse:
    log.warning("console sign-in failed: %s", exc)
    return render(
        request,
        "console/message.html",
        status=400,
        session=None,
        message_key="sign_in_failed",
        detail=str(exc),
        language_links="/console/sign-in",
    )


async def _open_session(
    request: Request,
    response: Response,
    token: str,
    label: str,
    expires: datetime,
    principal: Principal,
    replaces_session: str | None = None,
) -> None:
    """A new session for the person's token, its cookie on `response`, and the audit record of signing in, in one
    transaction; the session this browser had ends with it."""
    runtime = runtime_of(request.scope)
    earlier = request.cookies.get(SESSION_COOKIE)
    ended = [h for h in (replaces_session, sha256_of(earlier) if earlier else None) if h]
    patient = (principal.launch_patient_id or principal.patient_id) if principal.kind == "citizen" else None
    cookie = secrets.token_urlsafe(32)
    trail = AuditTrail(principal, runtime.authorizer.policy_version)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM console_session WHERE id_hash = ANY($1::text[]) OR expires_at <= now()", ended)
        await conn.execute(
            "INSERT INTO console_session (id_hash, access_token, persona, csrf_token, expires_at, patient_id) "
            "VALUES ($1, $2, $3, $4, $5, $6::uuid)",
            sha256_of(cookie),
            token,
            label,
            secrets.token_urlsafe(24),
            expires,
            patient,
        )
        await insert_rows(conn, trail.rows([_session_record("sign_in")]))
    set_private_cookie(response, SESSION_COOKIE, cookie, expires=expires)


def _session_record(action: str) -> AuditRecord:
    return AuditRecord(None, "console_session", (), action, True, "CONSOLE")


async def sign_out(request: Request) -> Response:
    """End the session (its row is deleted, the cookie cleared) and record it, in one transaction. (A session
    lives no longer than its token, so its person is known; were they gone from the journal, it still ends.)"""
    session = await session_of(request)
    if session is not None and await _form(request, session) is not None:
        runtime = runtime_of(request.scope)
        cookie = request.cookies.get(SESSION_COOKIE, "")
        principal = None
        with contextlib.suppress(AksonError):
            principal = await runtime.authenticator.authenticate(
                credentials(f"Bearer {session.token}", None, "POST", str(request.url))
            )
        async with runtime.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM console_session WHERE id_hash = $1", sha256_of(cookie))
            if principal is not None:
                trail = AuditTrail(principal, runtime.authorizer.policy_version)
                await insert_rows(conn, trail.rows([_session_record("sign_out")]))
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@signed_in
async def home(request: Request, session: Session) -> Response:
    """The overview: the pages there are."""
    return render(request, "console/home.html", session=session, persona=PERSONAS.get(session.persona))


# ---- apps ----------------------------------------------------------------------------------------------

APPS = """query { apps(first: 100) { clientId name vendorOrgNumber kind scopes status statusReason registeredAt
  decidedAt history { action reason decidedBy decidedAt } } }"""
APP_ACTIONS = {
    "approve": "mutation($id: String!, $reason: String!) { approveApp(clientId: $id, reason: $reason) { status } }",
    "suspend": "mutation($id: String!, $reason: String!) { suspendApp(clientId: $id, reason: $reason) { status } }",
    "revoke": "mutation($id: String!, $reason: String!) { revokeApp(clientId: $id, reason: $reason) { status } }",
}


@signed_in
async def apps(request: Request, session: Session) -> Response:
    """Every app the person may see, with approve, suspend and revoke (decided by policy, audited)."""
    notice = None
    if request.method == "POST":
        form = await _form(request, session)
        action = request.path_params.get("action", "")
        if form is None or action not in APP_ACTIONS:
            return _forbidden(request)
        client_id = request.path_params["client_id"]
        done = await graphql(request, session, APP_ACTIONS[action], {"id": client_id, "reason": form.get("reason", "")})
        return after_action("/console/apps", done, f"{action} {client_id}")
    notice = request.query_params.get("notice")
    answer = await graphql(request, session, APPS, {})
    listed = (answer.get("data") or {}).get("apps") or []
    return render(request, "console/apps.html", session=session, apps=listed, error=problem(answer), notice=notice)


# ---- emergency accesses --------------------------------------------------------------------------------

# A reviewer is not the patient's clinician: the patient is named by id, from the log of the grant.
PENDING = """query($after: String) { emergencyGrants(first: 50, after: $after, filter: {reviewed: false}) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id reason lifeOrHealthAtRisk grantedAt expiresAt practitioner { id name { family given } } } } } }"""
READ_DURING = """accessLog(first: 50,
  filter: {recordedFrom: $from, recordedTo: $to, actorId: $actor, emergency: true}) {
  edges { node { recordedAt resourceKind action resourceCount decision patientIdGlobal } } }"""
READ_DURING_TYPES = {"from": "DateTime!", "to": "DateTime!", "actor": "ID!"}
REVIEW = """mutation($id: ID!, $conclusion: String!) { reviewEmergencyAccess(id: $id, conclusion: $conclusion) {
  reviewedAt } }"""


@signed_in
async def emergency(request: Request, session: Session) -> Response:
    """Emergency accesses waiting for review, with what was read under each; record a review's conclusion."""
    if request.method == "POST":
        form = await _form(request, session)
        if form is None:
            return _forbidden(request)
        variables = {"id": request.path_params["grant_id"], "conclusion": form.get("conclusion", "")}
        return after_action("/console/emergency", await graphql(request, session, REVIEW, variables), "review")
    answer = await graphql(request, session, PENDING, {"after": request.query_params.get("after")})
    waiting = connection(answer, "emergencyGrants")
    grants = connection_nodes(waiting)
    asked = [g for g in grants if (g.get("practitioner") or {}).get("id")]
    windows = [{"from": g["grantedAt"], "to": g["expiresAt"], "actor": g["practitioner"]["id"]} for g in asked]
    reads, _ = await ask_each(request, session, READ_DURING, windows, READ_DURING_TYPES)
    read_by_grant = {g["id"]: connection_nodes(read) for g, read in zip(asked, reads, strict=True)}
    for grant in grants:
        rows = read_by_grant.get(grant["id"], [])
        grant["patient"] = _granted_patient(grant, rows)
        grant["read"] = [r for r in rows if r.get("patientIdGlobal") == grant["patient"]]
    return render(
        request,
        "console/emergency.html",
        session=session,
        grants=grants,
        total=waiting.get("totalCount", 0),
        next=_next_page("/console/emergency", {}, waiting),
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

MY_LOG = """query($patient: ID!, $from: DateTime!, $to: DateTime!, $after: String) {
  emergencyGrants(first: 100) { edges { node { reason grantedAt expiresAt reviewedAt
    practitioner { name { family given } } } } }
  accessLog(first: 100, after: $after,
    filter: {patientId: $patient, recordedFrom: $from, recordedTo: $to, decision: ALLOW}) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { recordedAt resourceKind action emergency actor { name { family given } } units { name } } } } }"""


@signed_in
async def my_log(request: Request, session: Session) -> Response:
    """Innsyn: who accessed the person's record (or their child's) in a period, page by page, and every
    emergency access to it."""
    patient = session.patient_id
    if patient is None:
        return _forbidden(request)
    try:
        start, end = _period(request, LOG_DAYS)
    except ValueError:
        return _bad_period(request, session)
    form = {"from": start.isoformat(), "to": end.isoformat()}
    variables = {
        "patient": global_id_of("Patient", patient),
        **_span(start, end),
        "after": request.query_params.get("after"),
    }
    answer = await graphql(request, session, MY_LOG, variables)
    found = connection(answer, "accessLog")
    return render(
        request,
        "console/my_log.html",
        session=session,
        form=form,
        grants=nodes(answer, "emergencyGrants"),
        accesses=connection_nodes(found),
        total=found.get("totalCount", 0),
        next=_next_page("/console/my-log", form, found),
        error=problem(answer),
    )


def _period(request: Request, days: int) -> tuple[date, date]:
    """The days from `from` to `to` (both included) that a log page asks for; the last `days` days unless given.
    ValueError when either is not a date."""
    today = datetime.now(UTC).date()
    return _day(request.query_params.get("from"), today - timedelta(days=days)), _day(
        request.query_params.get("to"), today
    )


def _next_page(path: str, form: dict[str, str], connection: dict[str, Any]) -> str | None:
    """The link to the page after this one of a log, with the same search."""
    page_info = connection.get("pageInfo") or {}
    if not page_info.get("hasNextPage"):
        return None
    return f"{path}?{urlencode({**form, 'after': page_info['endCursor']})}"


# ---- access log search (compliance) --------------------------------------------------------------------

LOG = """query($filter: AccessLogFilter!, $after: String) { accessLog(first: 100, after: $after, filter: $filter) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { recordedAt actorKind clientId resourceKind resourceCount action emergency decision reason
    patientIdGlobal actor { name { family given } } units { name } } } } }"""


def _day(raw: str | None, default: date) -> date:
    """A date from a log page's query (YYYY-MM-DD), or the default when none is given; ValueError otherwise."""
    return date.fromisoformat(raw) if raw else default


def _bad_period(request: Request, session: Session) -> HTMLResponse:
    return render(request, "console/message.html", status=400, session=session, message_key="bad_date")


@signed_in
async def access_log(request: Request, session: Session) -> Response:
    """Search the access log by patient, person, unit, app and time (what policy lets the person see)."""
    params = request.query_params
    try:
        start, end = _period(request, 7)
    except ValueError:
        return _bad_period(request, session)
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
    span = _span(start, end)
    wanted: dict[str, Any] = {"recordedFrom": span["from"], "recordedTo": span["to"]}
    for field, key in (("patientId", "patient"), ("actorId", "person"), ("unitId", "unit"), ("clientId", "app")):
        if form[key]:
            wanted[field] = form[key]
    if form["emergency"]:
        wanted["emergency"] = True
    answer = await graphql(request, session, LOG, {"filter": wanted, "after": params.get("after")})
    found = connection(answer, "accessLog")
    values.update(
        searched=True,
        rows=connection_nodes(found),
        total=found.get("totalCount", 0),
        next=_next_page("/console/log", form, found),
        error=problem(answer),
    )
    return render(request, "console/log.html", **values)


# ---- information blocking ------------------------------------------------------------------------------

DENIALS = "denialReport(recordedFrom: $from, recordedTo: $to) { clientId vendorOrgNumber resourceKind reason denials }"


@signed_in
async def blocking(request: Request, session: Session) -> Response:
    """Denials by app, vendor, kind and reason over the last days, as charts and a table with the rules that
    give each reason (read from the policies in force)."""
    days = int(request.query_params.get("days", "14")) if request.query_params.get("days") in ("7", "14", "30") else 14
    app = request.query_params.get("app")
    today = datetime.now(UTC).date()
    starts = [today - timedelta(days=days - 1 - i) for i in range(days)]
    bounds = [_span(day, day) for day in starts]
    reports, trouble = await ask_each(request, session, DENIALS, bounds, {"from": "DateTime!", "to": "DateTime!"})
    per_day = [[r for r in report or [] if app in (None, r["clientId"])] for report in reports]
    reasons = sorted({r["reason"] or "" for rows in per_day for r in rows})
    totals: dict[tuple[str, str | None, str, str], int] = defaultdict(int)
    for rows in per_day:
        for r in rows:
            totals[(r["clientId"], r["vendorOrgNumber"], r["resourceKind"], r["reason"] or "")] += r["denials"]
    by_app: dict[str, int] = defaultdict(int)
    by_vendor: dict[str, int] = defaultdict(int)
    by_kind: dict[str, int] = defaultdict(int)
    for (client, vendor, kind, _), n in totals.items():
        by_app[client] += n
        by_vendor[vendor or "–"] += n
        by_kind[kind] += n
    runtime = runtime_of(request.scope)
    rules = rules_by_reason(runtime.settings.policy_dir, runtime.authorizer.policy_version)
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
        "vendors": list(by_vendor),
        "byVendor": list(by_vendor.values()),
        "kinds": list(by_kind),
        "byKind": list(by_kind.values()),
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
        error=trouble,
    )


def _span(first: date, last: date) -> dict[str, str]:
    """From the start of day `first` to the end of day `last` (UTC), as a log's `from` and `to` (exclusive)."""
    return {
        "from": datetime.combine(first, datetime.min.time(), UTC).isoformat(),
        "to": datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC).isoformat(),
    }


# ---- explain a decision --------------------------------------------------------------------------------

EXPLAIN = """query($person: ID!, $resource: ID!, $action: String!) {
  explainDecision(personId: $person, resourceId: $resource, action: $action) { decision reason matchedRule
    matchedScope decidedInScope derivedRoles personRoles outputs { source value } policyVersion } }"""
ACTIONS = ("read", "search", "read_text", "create", "update", "entered_in_error", "sign", "correct", "cancel")


@signed_in
async def explain(request: Request, session: Session) -> Response:
    """Pick a person, a resource and an action: the decision, its reason, the rule and the policy version."""
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
        Route("/console/sign-in/issuer", sign_in_at_issuer),
        Route(CALLBACK_PATH, callback),
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
