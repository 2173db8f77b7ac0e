"""Start the server: the manager over the home, then the MCP server on the chosen transport."""

from __future__ import annotations

from model_mcp.core.errors import ModelMcpError
from model_mcp.logs import get_logger
from model_mcp.settings import Settings

log = get_logger(__name__)


def serve(settings: Settings) -> int:
    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    if settings.transport == "http":
        # Checked before the store is touched: an unsafe binding must not even create the home.
        from model_mcp.http_app import binding_refusal

        refusal = binding_refusal(settings)
        if refusal is not None:
            log.error("http_refused", host=settings.host, port=settings.port, message=refusal)
            return 2

    if settings.alert_webhook:
        from model_mcp.core.alert_webhook import check_webhook_url

        try:
            check_webhook_url(settings.alert_webhook)
        except ValueError as exc:
            log.error("alert_webhook_refused", message=str(exc))
            return 2
    manager = ModelManager(settings)
    try:
        manager.start()
    except ModelMcpError as exc:
        log.error("start_failed", code=exc.code, message=str(exc))
        return 2
    # Loaded in a thread: the server answers initialize meanwhile, and predicts wait for the load.
    manager.load_deployed_in_background()
    # Folders placed by hand under models/ are validated and registered, also off the start path.
    manager.discover_in_background()
    # Watches the deployed version on its own: operational alerts, and drift once enough new rows came.
    manager.start_background_check()
    # Imports new complete packages from the training folder (--watch-training; one watcher per home).
    watch = manager.start_training_watch()
    # On a database: this server's row in the replicas table, every MODEL_MCP_REPLICA_HEARTBEAT_S.
    manager.start_heartbeat()
    server = build_server(manager)
    log.info("serving", home=str(settings.home), transport=settings.transport, read_only=settings.read_only,
             watch_training_s=watch.interval_s if watch else 0)
    try:
        if settings.transport == "http":
            from model_mcp.http_app import serve_http

            return serve_http(server, settings, manager)
        import anyio

        from model_mcp.stdio_transport import run_stdio

        anyio.run(run_stdio, server, settings.max_message_bytes)
        return 0
    finally:
        if watch is not None:
            watch.stop()  # lets an import in progress finish, then gives the home's watch lock up
        # Writes what the recorder still holds (the last second of figures), saves a shadow's last
        # comparison, sends pending webhook alerts, closes database connections; bounded waits.
        # The heartbeat stops first: the row stays and turns `missing`; pruned after a day.
        manager.close()
