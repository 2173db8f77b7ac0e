"""The dashboard page at `/` on the HTTP transport.

The page is static (the same bytes for every caller, no data in it), so it is served without the
bearer token: a browser cannot send an `Authorization` header when it navigates. The page asks
for the token itself when `/mcp` answers 401, and keeps it in `sessionStorage` only.

Headers: a Content-Security-Policy that lets only this page's own inline script and style run (by
hash) and lets it connect only to its own origin; no framing; no sniffing; no referrer; no caching
(a new server version serves a new page).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from model_mcp.ui import content_security_policy, dashboard_page

PAGE_PATH = "/"


def is_dashboard_request(scope: Scope) -> bool:
    """True for GET or HEAD of the page: the one request the bearer token check lets through."""
    return scope.get("type") == "http" and scope.get("path") == PAGE_PATH and scope.get("method") in ("GET", "HEAD")


async def _dashboard(_request: Request) -> Response:
    page = dashboard_page("http")
    return Response(page.html, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": content_security_policy(page),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    })


def dashboard_route() -> Route:
    return Route(PAGE_PATH, _dashboard, methods=["GET", "HEAD"], name="dashboard")
