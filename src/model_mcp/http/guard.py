"""The Host and Origin checks of /mcp, applied to every other path of the HTTP transport.

The SDK runs its DNS-rebinding check inside the /mcp transport only; the REST API, /metrics and
any page mounted beside it get the very same check here, with the same settings
(`http_app.transport_security_for`), answered as problem details: 421 `misdirected_host` for a
foreign Host, 403 `forbidden_origin` for a foreign Origin. /mcp itself is left to the SDK, and the
open probe paths (/healthz, /readyz) are not checked.
"""

from __future__ import annotations

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from model_mcp.http.problems import problem_response
from model_mcp.logs import get_logger

log = get_logger(__name__)


class HostOriginGuard:
    def __init__(self, app: ASGIApp, security: TransportSecuritySettings, mcp_path: str,
                 open_paths: frozenset[str]) -> None:
        self.app = app
        self.checker = TransportSecurityMiddleware(security)
        self.mcp_path = mcp_path
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or path in self.open_paths or path == self.mcp_path
                or path.startswith(self.mcp_path + "/")):
            await self.app(scope, receive, send)
            return
        refusal = await self.checker.validate_request(Request(scope), is_post=False)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        headers = Request(scope).headers
        if refusal.status_code == 421:
            log.warning("http_host_refused", path=path, host=headers.get("host"))
            response = problem_response("misdirected_host", f"The Host {headers.get('host', '')[:100]!r} is not one "
                                        "this server answers to; add it with MODEL_MCP_ALLOWED_HOSTS.")
        else:
            log.warning("http_origin_refused", path=path, origin=headers.get("origin"))
            response = problem_response("forbidden_origin", f"The Origin {headers.get('origin', '')[:100]!r} may not "
                                        "call this server.")
        await response(scope, receive, send)
