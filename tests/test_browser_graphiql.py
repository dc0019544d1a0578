"""GraphiQL is served by the gateway itself: every file from this origin, none from a CDN, under a
Content-Security-Policy that allows nothing else, and it works in a real headless Chromium (Debian's
`chromium`, driven by Playwright) under that policy."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Browser, ConsoleMessage

from gateway.browser_files import CONTENT_SECURITY_POLICY
from tests.conftest import Gateway

HTML = {"Accept": "text/html"}


def test_the_graphiql_page_loads_only_this_gateways_files_under_a_strict_policy(gateway: Gateway) -> None:
    page = httpx.get(f"{gateway.base_url}/graphql", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY
    assert "<script>" not in page.text and "style=" not in page.text, "no inline script or style"
    loaded = [url for url in re.findall(r'(?:src|href)="([^"]+)"', page.text) if url != "data:,"]
    assert loaded and all(url.startswith("/assets/") for url in loaded), loaded
    for url in loaded:
        asset = httpx.get(gateway.base_url + url)
        assert asset.status_code == 200, url
        expected = "text/javascript" if url.endswith(".js") else "text/css"
        assert asset.headers["content-type"].startswith(expected), url
        assert asset.headers["x-content-type-options"] == "nosniff"


def test_only_the_named_assets_are_served(gateway: Gateway) -> None:
    for name in ("package.json", "..%2Fpackage.json", "cerbos", "react.development.js"):
        assert httpx.get(f"{gateway.base_url}/assets/{name}").status_code == 404, name


def test_graphiql_runs_a_query_in_a_real_browser_with_no_request_elsewhere(gateway: Gateway, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    origins: set[str] = set()
    page.on("console", lambda m: problems.append(m.text) if _is_problem(m) else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: origins.add(_origin(request.url)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status == 404 else None)
    try:
        page.goto(f"{gateway.base_url}/graphql", wait_until="networkidle")
        page.wait_for_selector(".graphiql-execute-button", timeout=15_000)
        page.click(".graphiql-execute-button")
        result = page.locator(".result-window")
        result.get_by_text("UNAUTHENTICATED").wait_for(timeout=15_000)
    finally:
        context.close()
    assert problems == []
    assert origins <= {_origin(gateway.base_url), _origin(gateway.base_url.replace("http", "ws", 1))}, origins


def _is_problem(message: ConsoleMessage) -> bool:
    """A console error other than the 401 the query without a token is meant to get."""
    return message.type == "error" and "401" not in message.text


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else parts.scheme
