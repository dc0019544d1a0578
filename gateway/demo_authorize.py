"""The demo issuer's authorization endpoint: the OpenID Connect authorization-code flow with PKCE (RFC 6749
section 4.1, RFC 7636 with S256 only, RFC 9207's `iss`) for user-facing apps registered with this gateway.

The demo journal has personas, not passwords, so signing in at the demo issuer is picking a persona. What an
app does with it is what it does with HelseID or ID-porten: send the person to `/oauth/authorize`, take the
code back at a registered redirect URI, redeem it with its PKCE verifier at `/oauth/token`, and receive the
person's access token and an ID token naming them (with the app's nonce). The app must be approved and
user-facing; the redirect URI must be one it registered, or the person is not sent anywhere (the codes:
gateway/authorization_codes.py).

Hand-written: Authlib's authorization server is built for Flask and Django, and this endpoint is four checks,
a page and a row.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.authorization_codes import FlowError, FlowRequest, back_to_app, flow_request, issue_code, redirect_origin
from gateway.pages import form_token_matches, render, set_private_cookie
from gateway.personas import PERSONAS, people
from gateway.runtime import runtime_of

CSRF_COOKIE = "akson_issuer_signin"


def sign_in_policy(flow: FlowRequest) -> str:
    """The sign-in page's Content-Security-Policy: its form posts here and is redirected to the app."""
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' {redirect_origin(flow.redirect_uri)}"
    )


def form_values(raw: Any) -> dict[str, str]:
    """A query string or form as plain strings; a parameter given twice is refused (RFC 6749 section 3.1)."""
    pairs = [(str(k), str(v)) for k, v in raw.multi_items()]
    values = dict(pairs)
    if len(values) != len(pairs):
        raise FlowError("a parameter is given more than once")
    return values


async def authorize(request: Request) -> Response:
    """GET: check the request and show the sign-in page (a persona picker); POST: sign the chosen person in
    and send them back to the app with a code, or with `access_denied` when they decline."""
    runtime = runtime_of(request.scope)
    try:
        values = form_values(request.query_params if request.method == "GET" else await request.form())
        flow = await flow_request(runtime.pool, values)
    except FlowError as exc:
        return render(request, "issuer/error.html", status=400, session=None, detail=str(exc))
    issuer = runtime.settings.issuer
    if flow.error is not None:
        return back_to_app(flow, issuer, error=flow.error[0], error_description=flow.error[1])
    if request.method == "GET":
        csrf = secrets.token_urlsafe(24)
        page = render(
            request,
            "issuer/authorize.html",
            session=None,
            policy=sign_in_policy(flow),
            personas=people(),
            fields=flow.hidden_fields(),
            csrf=csrf,
            client_id=flow.client_id,
        )
        set_private_cookie(page, CSRF_COOKIE, csrf, "/oauth/authorize")
        return page
    if not form_token_matches(values.get("csrf", ""), request.cookies.get(CSRF_COOKIE)):
        return render(request, "issuer/error.html", status=403, session=None, detail="the sign-in form expired")
    persona = PERSONAS.get(values.get("persona", ""))
    if values.get("decision") != "allow" or persona is None or persona.kind == "service":
        answer = back_to_app(flow, issuer, error="access_denied", error_description="the person did not sign in")
    else:
        answer = back_to_app(flow, issuer, code=await issue_code(runtime.pool, flow, persona))
    answer.delete_cookie(CSRF_COOKIE, path="/oauth/authorize")
    return answer
