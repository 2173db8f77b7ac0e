"""The HTTP edge beside /mcp: the REST API (/api/v1), problem details, /healthz, /readyz, /metrics.

`mount_api` adds them to the SDK's Starlette app that `http_app.build_http_app` assembles. FastAPI
and prometheus_client are imported here only, when the HTTP transport starts: the stdio server
never loads them.

    http_app.build_http_app   the SDK's app at /mcp, the token check around everything
      └── mount_api           /api/v1 (rest.py), /healthz /readyz /metrics (ops.py, metrics.py),
                              the Host/Origin check for every path but /mcp (guard.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette

    from model_mcp.core.manager import ModelManager

__all__ = ["mount_api"]


def mount_api(app: Starlette, manager: ModelManager, security: TransportSecuritySettings, *, mcp_path: str,
              max_json_bytes: int) -> frozenset[str]:
    """Mount the REST API and the operations endpoints; answers the paths that need no token."""
    from starlette.routing import Mount

    from model_mcp.http.guard import HostOriginGuard
    from model_mcp.http.ops import OPEN_PATHS, ops_routes
    from model_mcp.http.rest import API_PREFIX, build_rest_app

    app.router.routes.extend(ops_routes(manager))
    app.router.routes.append(Mount(API_PREFIX, app=build_rest_app(manager, max_json_bytes=max_json_bytes)))
    app.add_middleware(HostOriginGuard, security=security, mcp_path=mcp_path, open_paths=OPEN_PATHS)
    return OPEN_PATHS
