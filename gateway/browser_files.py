"""What a browser loads from the gateway: the GraphiQL page and every file it needs, all from this origin.

A page that holds access tokens must not run a third party's scripts, and on a closed health network there is
no CDN to load them from. The browser code comes from npm packages pinned exactly in package.json (installed
into node_modules/ by `make`), each file named one by one here: nothing else under node_modules/ is reachable.
The page and its own script and style are in gateway/static/. The Content-Security-Policy allows this origin
only, and no inline script or style.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
# This origin only; `ws:`/`wss:` of it are 'self' too (CSP 3), for subscriptions.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page_headers(content_security_policy: str) -> dict[str, str]:
    """The headers of a page the gateway serves a browser: its policy, no sniffing, no referrer, no caching."""
    return {
        "Content-Security-Policy": content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


@dataclass(frozen=True)
class Asset:
    """One file a page loads: where it is on disk and what it is."""

    path: Path
    media_type: str


def assets(project_dir: Path) -> dict[str, Asset]:
    """Every file `/assets/{name}` serves, by name."""
    modules = project_dir / "node_modules"
    return {
        "react.production.min.js": Asset(modules / "react/umd/react.production.min.js", JS),
        "react-dom.production.min.js": Asset(modules / "react-dom/umd/react-dom.production.min.js", JS),
        "graphiql.min.js": Asset(modules / "graphiql/graphiql.min.js", JS),
        "graphiql.min.css": Asset(modules / "graphiql/graphiql.min.css", CSS),
        "plugin-explorer.umd.js": Asset(modules / "@graphiql/plugin-explorer/dist/index.umd.js", JS),
        "plugin-explorer.css": Asset(modules / "@graphiql/plugin-explorer/dist/style.css", CSS),
        "graphiql-page.js": Asset(STATIC / "graphiql-page.js", JS),
        "graphiql-page.css": Asset(STATIC / "graphiql-page.css", CSS),
        "console.css": Asset(STATIC / "console.css", CSS),
        "chart.umd.min.js": Asset(modules / "chart.js/dist/chart.umd.min.js", JS),
        "console-charts.js": Asset(STATIC / "console-charts.js", JS),
    }


class BrowserFiles:
    """`/assets/{name}` and the GraphiQL page."""

    def __init__(self, project_dir: Path) -> None:
        self._assets = assets(project_dir)
        missing = [str(a.path) for a in self._assets.values() if not a.path.is_file()]
        if missing:
            log.warning("GraphiQL will not load: missing %s (run `make deps`)", ", ".join(missing))
        self._page = (STATIC / "graphiql.html").read_text()

    async def asset(self, request: Request) -> Response:
        """One file of the allow-list, cacheable for an hour; anything else is 404."""
        found = self._assets.get(request.path_params["name"])
        if found is None or not found.path.is_file():
            return PlainTextResponse("no such asset", status_code=404, headers={"X-Content-Type-Options": "nosniff"})
        return FileResponse(
            found.path,
            media_type=found.media_type,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    def graphiql(self) -> Response:
        """The GraphiQL page: only this origin's files, under a Content-Security-Policy that says so."""
        return Response(
            self._page, media_type="text/html; charset=utf-8", headers=page_headers(CONTENT_SECURITY_POLICY)
        )
