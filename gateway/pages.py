"""Server-rendered pages of the gateway (the console, the demo issuer's sign-in): Jinja2 templates in the
request's language under a strict Content-Security-Policy."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.browser_files import page_headers
from gateway.console_text import LANGUAGES, TEXT

LANGUAGE_COOKIE = "akson_console_lang"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# The charts page alone runs script: this origin's (Chart.js, pinned, and the page's own), nothing inline.
CHARTS_POLICY = CONTENT_SECURITY_POLICY.replace("default-src 'none';", "default-src 'none'; script-src 'self';")
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def language_of(request: Request) -> str:
    """`?lang=` when given, else the language cookie, else bokmål."""
    asked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE) or "nb"
    return asked if asked in LANGUAGES else "nb"


def render(
    request: Request,
    template: str,
    status: int = 200,
    *,
    scripts: bool = False,
    policy: str | None = None,
    language_links: str | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page in the request's language, under the console's Content-Security-Policy (which lets this
    origin's scripts run only on a page that has some), or the page's own `policy`. Its language links lead
    to this page with its query (a search, a sign-in under way) unless a page names where they lead instead
    (an answer from the issuer is not to be replayed)."""
    language = language_of(request)
    words = TEXT[language]
    html = TEMPLATES.get_template(template).render(
        t=lambda key: words[key],
        word=lambda prefix, code: words.get(f"{prefix}_{code}", code),
        lang=language,
        path=request.url.path,
        lang_url=lambda code: f"{language_links}?lang={code}" if language_links else _with_language(request, code),
        **values,
    )
    headers = page_headers(policy or (CHARTS_POLICY if scripts else CONTENT_SECURITY_POLICY))
    response = HTMLResponse(html, status_code=status, headers=headers)
    if request.query_params.get("lang") in LANGUAGES:
        set_private_cookie(response, LANGUAGE_COOKIE, language)
    return response


def _with_language(request: Request, code: str) -> str:
    """This page's path and query with `lang` set, so switching language keeps a search or a sign-in flow."""
    url = request.url.include_query_params(lang=code)
    return f"{url.path}?{url.query}"


def set_private_cookie(response: Response, name: str, value: str, path: str = "/console", **options: Any) -> None:
    """A cookie for this origin's server only: HttpOnly, Secure, SameSite=Strict unless `options` say otherwise."""
    response.set_cookie(name, value, httponly=True, secure=True, path=path, **{"samesite": "strict", **options})


def form_token_matches(given: str, expected: str | None) -> bool:
    """A form's CSRF token is the one expected (compared in constant time; none expected matches nothing)."""
    return bool(expected) and hmac.compare_digest(given.encode(), (expected or "").encode())
