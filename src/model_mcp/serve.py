"""Start the server: the manager over the home, then the MCP server on the chosen transport."""

from __future__ import annotations

from model_mcp.core.errors import ModelMcpError
from model_mcp.logs import get_logger
from model_mcp.settings import Settings

log = get_logger(__name__)


def serve(settings: Settings) -> int:
    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    manager = ModelManager(settings)
    try:
        manager.start()
    except ModelMcpError as exc:
        log.error("start_failed", code=exc.code, message=str(exc))
        return 2
    # Loaded in a thread: the server answers initialize meanwhile, and predicts wait for the load.
    manager.load_deployed_in_background()
    server = build_server(manager)
    log.info("serving", home=str(settings.home), transport=settings.transport, read_only=settings.read_only)
    if settings.transport == "http":
        server.run("streamable-http", host=settings.host, port=settings.port)
    else:
        server.run("stdio")
    return 0
