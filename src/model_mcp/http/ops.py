"""Operations endpoints: /healthz (the process answers), /readyz (it serves what is deployed), /metrics.

/healthz and /readyz are open: no token and no Host check, so that load balancers and orchestrators
(whose probes rarely carry credentials, and address the server by an IP the Host check does not
list) can use them. They reveal only whether the process is up and ready, and which version serves.
/metrics is behind the token like every other path: it names versions and counts.
"""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from model_mcp.core.manager import ModelManager

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def ops_routes(manager: ModelManager) -> list[Route]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from model_mcp.http.metrics import build_registry

    registry = build_registry(manager)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        readiness = manager.readiness()
        return JSONResponse(readiness.model_dump(mode="json"), status_code=200 if readiness.ready else 503)

    async def metrics(request: Request) -> Response:
        # In a thread: the audit-trail tally reads a file.
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
