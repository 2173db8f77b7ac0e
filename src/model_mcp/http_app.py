"""Streamable HTTP: the SDK's app at `/mcp`, behind a bearer token and the SDK's Host/Origin checks.

Why each layer is there:

- Binding. 127.0.0.1 by default. Binding beyond loopback (0.0.0.0, a LAN address, a host name) is
  refused unless a token is configured (`MODEL_MCP_TOKEN`): the tools import, deploy and delete
  models, so an open port on a network must never answer anonymous callers.
- Bearer token. When a token is configured, every HTTP request (any path, any method) must carry
  `Authorization: Bearer <token>`; otherwise the answer is 401 with `WWW-Authenticate: Bearer`. The
  comparison runs on SHA-256 digests with `hmac.compare_digest`, so neither the content nor the
  length of the token leaks through timing. With no token on a loopback address no auth is asked:
  only local processes can connect, and the Host/Origin checks below stop web pages (DNS
  rebinding) from reaching it through a browser.
- Host and Origin. The SDK validates them inside the transport (421 for a foreign Host, 403 for a
  foreign Origin), but it turns that on by itself only for the names 127.0.0.1, localhost and ::1;
  for any other binding it would be off. We always pass explicit settings:
  * loopback binding: the bound address plus 127.0.0.1, localhost and [::1], any port (the SDK's
    own defaults, extended to e.g. 127.0.0.2);
  * any other binding: `<bound host>:<port>`, the loopback names at that port, this machine's host
    name and fully-qualified name at that port, and the addresses those names resolve to. Origins
    are the same entries as `http://...`. A client reaching the server under another name (a DNS
    alias, a reverse proxy's name) gets 421: that needs an allowed-hosts setting (not there yet).
  The token check runs first, so a request with a foreign Host and no token gets 401, and one with
  the right token but a foreign Host still gets 421. The same rule runs again ahead of routing, for
  every path (`HostCheckMiddleware`): `POST /mcp/` with a foreign Host is a 421, not a redirect to it.
  On loopback port 80 the loopback names are also allowed without a port (what browsers send).
- Request size. One message (`MODEL_MCP_MAX_MESSAGE_MB`, 32 MiB by default) bounds what one call
  may cost: bodies over it are refused before they are held, on every path. A `content_base64`
  upload therefore carries at most about three quarters of it; larger packages come by `path`.
- What clients may hold: sessions, connections, header and body time (`http_limits.py`).

The SDK's app keeps its lifespan (the session manager's task group): the token check is added as
a middleware of that same Starlette app, and lifespan events pass through it untouched.

Beside /mcp, `model_mcp.http.mount_api` adds the REST API (/api/v1), /healthz, /readyz and /metrics,
and applies the same Host/Origin check to them. The token covers them too, except the two probes
/healthz and /readyz, which are open (see `model_mcp/http/ops.py`). On those paths a refusal is a
problem document (application/problem+json) instead of a JSON-RPC error.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from typing import TYPE_CHECKING
from mcp.server import MCPServer
from mcp.types import INVALID_REQUEST
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from model_mcp.http_limits import BodyLimitMiddleware, GuardedH11Protocol, SessionRoomMiddleware
from model_mcp.logs import get_logger
from model_mcp.settings import Settings
from model_mcp.ui.http_page import dashboard_route, is_dashboard_request

if TYPE_CHECKING:
    from model_mcp.core.manager import ModelManager

log = get_logger(__name__)

MCP_PATH = "/mcp"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
# uvicorn waits this long for open SSE streams on shutdown before closing them.
GRACEFUL_SHUTDOWN_S = 5


def is_loopback(host: str) -> bool:
    """True for loopback addresses and the name `localhost`; False for wildcards and other names."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def configured_token(settings: Settings) -> str | None:
    """The token, or None when unset or empty (an empty token must not count as protection)."""
    token = settings.token
    return token if token else None


def binding_refusal(settings: Settings) -> str | None:
    """Why this HTTP binding must not start, or None when it may."""
    if not is_loopback(settings.host) and configured_token(settings) is None:
        return (f"refusing to serve HTTP on {settings.host}:{settings.port} without a token: binding beyond "
                f"loopback requires MODEL_MCP_TOKEN (clients then send 'Authorization: Bearer <token>'); "
                f"or bind to 127.0.0.1")
    return None


def _host_entry(name: str, port: int | None) -> str:
    """A Host header value: IPv6 literals in brackets, with the port when given."""
    shown = f"[{name}]" if ":" in name and not name.startswith("[") else name
    return shown if port is None else f"{shown}:{port}"


def _machine_names() -> list[str]:
    """This machine's host names and the addresses they resolve to (what remote clients type)."""
    names: list[str] = []
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in names:
            names.append(name)
    for name in list(names):
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError:
            continue
        for info in infos:
            address = str(info[4][0]).split("%")[0]
            if address not in names:
                names.append(address)
    return names


def allowed_hosts(host: str, port: int) -> list[str]:
    """Host header values the server answers to (see the module docstring for the rules)."""
    entries: list[str] = []

    def add(entry: str) -> None:
        if entry not in entries:
            entries.append(entry)

    if is_loopback(host):
        for name in (host.strip().strip("[]"), *LOOPBACK_NAMES):
            add(f"{_host_entry(name, None)}:*")
        if port == 80:  # the default port is left out of Host by browsers and httpx
            for name in (host.strip().strip("[]"), *LOOPBACK_NAMES):
                add(_host_entry(name, None))
        return entries
    bound = host.strip().strip("[]")
    if bound:
        add(_host_entry(bound, port))
    for name in (*LOOPBACK_NAMES, *_machine_names()):
        add(_host_entry(name, port))
    if port == 80:  # browsers and httpx omit the default port from Host
        for entry in list(entries):
            add(entry.rsplit(":", 1)[0])
    return entries


def transport_security_for(host: str, port: int, extra_hosts: tuple[str, ...] = ()) -> TransportSecuritySettings:
    """DNS-rebinding protection on, for every binding (the SDK would leave it off beyond loopback).

    `extra_hosts` (MODEL_MCP_ALLOWED_HOSTS) adds the names clients use that the machine does not
    know itself: a DNS alias, a reverse proxy's name. Each is `name` (any port) or `name:port`.
    """
    hosts = allowed_hosts(host, port)
    for extra in extra_hosts:
        entry = extra.strip()
        has_port = ":" in entry.rsplit("]", 1)[-1]
        # A bare name stands for any port, and for no port at all (a proxy on 80 or 443).
        for allowed in ([entry] if has_port else [entry, f"{entry}:*"]):
            if allowed and allowed not in hosts:
                hosts.append(allowed)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{entry}" for entry in hosts],
    )


def max_request_body_size(settings: Settings) -> int:
    """The largest body: one message (a body is one JSON-RPC message, or one REST request)."""
    return settings.max_message_bytes


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class HostCheckMiddleware:
    """The SDK's Host/Origin rule (421 / 403) for every HTTP request, ahead of routing.

    The SDK checks inside its `/mcp` endpoint only, so before this a `POST /mcp/` with a foreign
    Host got Starlette's 307 redirect to that host first. Same settings, same rule, one place:
    `TransportSecurityMiddleware.validate_request`.
    """

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings,
                 open_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self._check = TransportSecurityMiddleware(security)
        self._open_paths = open_paths  # health probes a load balancer calls under its own Host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") or ""
        # The MCP endpoint's paths (`/mcp`, `/mcp/...`, which the router redirects); the REST routes
        # run the same check themselves and answer it as problem details.
        if scope["type"] != "http" or path in self._open_paths or not path.startswith(MCP_PATH):
            await self.app(scope, receive, send)
            return
        refusal = await self._check.validate_request(Request(scope), is_post=False)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        log.warning("http_host_refused", status=refusal.status_code, path=scope.get("path"),
                    client=client[0] if client else None)
        await refusal(scope, receive, send)


class BearerTokenMiddleware:
    """Refuse every HTTP request whose `Authorization: Bearer` token is missing or wrong.

    A plain ASGI middleware: lifespan events pass through, so the SDK's session manager still
    starts and stops with the app.
    """

    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self._expected = _digest(token.encode("utf-8"))
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The dashboard page is static (it asks for the token); the probes are open (model_mcp/http/ops.py).
        if scope["type"] == "lifespan" or is_dashboard_request(scope) or scope.get("path") in self._open_paths:
            await self.app(scope, receive, send)
            return
        reason = self._refusal(Headers(scope=scope).get("authorization"))
        if reason is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        log.warning("http_unauthorized", reason=reason, path=scope.get("path"),
                    client=client[0] if client else None)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await _unauthorized(reason, scope.get("path", ""))(scope, receive, send)

    def _refusal(self, authorization: str | None) -> str | None:
        """None when the token matches; else "missing" or "wrong"."""
        if not authorization:
            return "missing"
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return "missing"
        # Headers arrive as latin-1 text: back to the raw bytes, which a UTF-8 token was sent as.
        given = _digest(credentials.strip().encode("latin-1"))
        return None if hmac.compare_digest(given, self._expected) else "wrong"


def _unauthorized(reason: str, path: str = MCP_PATH) -> Response:
    """401 with an RFC 6750 challenge and, like the SDK's own HTTP errors, a JSON-RPC error body.

    The JSON-RPC body is what an MCP client surfaces to its user, so the reason reaches them. The
    challenge names no error when no token came, and `invalid_token` when a wrong one did.
    """
    if reason == "missing":
        challenge = 'Bearer realm="model-mcp"'
        message = "Unauthorized: this server requires 'Authorization: Bearer <token>' (its MODEL_MCP_TOKEN)"
    else:
        challenge = 'Bearer realm="model-mcp", error="invalid_token"'
        message = "Unauthorized: the bearer token is not the one this server is configured with"
    if path != MCP_PATH and not path.startswith(MCP_PATH + "/"):
        from model_mcp.http.problems import problem_response

        return problem_response("unauthorized", message, headers={"WWW-Authenticate": challenge})
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def build_http_app(server: MCPServer, settings: Settings, manager: ModelManager | None = None) -> Starlette:
    """The SDK's Streamable HTTP app at `/mcp`, with Host/Origin checks on and the token check around it.

    With `manager` (the one `server` was built over), the REST API and the operations endpoints too.

    Raises ValueError for a binding beyond loopback without a token (see `binding_refusal`).
    """
    refusal = binding_refusal(settings)
    if refusal is not None:
        raise ValueError(refusal)
    security = transport_security_for(settings.host, settings.port, settings.allowed_hosts)
    log.info("http_allowed_hosts", allowed_hosts=security.allowed_hosts)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=security,
        max_request_body_size=max_request_body_size(settings),
        session_idle_timeout=settings.http_session_idle_s,
        max_sessions=settings.http_max_sessions,
        host=settings.host,
    )
    app.router.routes.append(dashboard_route())  # the dashboard page at `/` (model_mcp.ui)
    # Each add_middleware wraps what is there: the session room inside the token check (no caller
    # without the token can close a session), the body limit outside everything.
    app.add_middleware(SessionRoomMiddleware, session_manager=server.session_manager, path=MCP_PATH)
    open_paths: frozenset[str] = frozenset()
    if manager is not None:
        from model_mcp.http import mount_api

        open_paths = mount_api(app, manager, security, mcp_path=MCP_PATH,
                               max_json_bytes=max_request_body_size(settings))
    # Host and Origin on every path, before routing: the router's slash redirect (`/mcp/` -> 307 to
    # the Host the client named) and any later route must not answer a foreign Host first.
    app.add_middleware(HostCheckMiddleware, security=security, open_paths=open_paths)
    token = configured_token(settings)
    if token is not None:
        app.add_middleware(BearerTokenMiddleware, token=token, open_paths=open_paths)
    # The REST import streams ZIP uploads to disk under its own counter (max_upload_bytes).
    uploads = frozenset({"/api/v1/models"}) if manager is not None else frozenset()
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_request_body_size(settings),
                       timeout_s=settings.http_body_timeout_s, streamed_upload_paths=uploads)
    return app


# Descriptors kept for everything but client connections: the store, logs, probe children's pipes.
RESERVED_FDS = 64
LISTEN_BACKLOG = 128


def listen_backlog(fd_limit: int) -> int:
    """The listen queue, which is also how many connections asyncio accepts in one go before any is
    looked at: small enough that a burst cannot use up descriptors between two looks."""
    return max(8, min(LISTEN_BACKLOG, (fd_limit - RESERVED_FDS) // 4))


def connection_cap(wanted: int) -> tuple[int, int]:
    """(connection cap, listen backlog): `wanted`, lowered so that connections, plus one accept
    burst, can never use up the process's file descriptors (else asyncio's accept loop fails with
    EMFILE, over and over).

    The soft descriptor limit is first raised to the hard one (as most servers do).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    backlog = listen_backlog(soft)
    cap = max(1, min(wanted, soft - RESERVED_FDS - backlog))
    if cap < wanted:
        log.warning("http_connection_cap_lowered", wanted=wanted, cap=cap, fd_limit=soft)
    return cap, backlog


def serve_http(server: MCPServer, settings: Settings, manager: ModelManager | None = None) -> int:
    """Run uvicorn on the app until stopped; 2 when the binding is refused or the port can't be bound.

    uvicorn's own logging config is skipped (`log_config=None`): its loggers then go to the root
    handler, which writes JSON to stderr; uvicorn's default would print access lines to stdout.
    """
    import uvicorn

    refusal = binding_refusal(settings)
    if refusal is not None:
        log.error("http_refused", host=settings.host, port=settings.port, message=refusal)
        return 2
    app = build_http_app(server, settings, manager)
    log.info("http_listening", url=f"http://{_host_entry(settings.host, settings.port)}{MCP_PATH}",
             auth="bearer" if configured_token(settings) else "none (loopback only)")
    max_connections, backlog = connection_cap(settings.http_max_connections)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=settings.http_keep_alive_s,
        http=GuardedH11Protocol.configure(header_timeout_s=settings.http_header_timeout_s,
                                          max_connections=max_connections),
        # uvicorn answers 503 to requests once this many connections or tasks exist (counting the
        # asking one): one more than the connection cap, so the cap alone decides for connections.
        limit_concurrency=max_connections + 1,
        backlog=backlog,
    )
    try:
        uvicorn.Server(config).run()
    except SystemExit as exc:  # uvicorn exits 3 when the port is taken or startup fails
        if exc.code not in (0, None):
            log.error("http_start_failed", host=settings.host, port=settings.port, exit_code=exc.code)
            return 2
    except KeyboardInterrupt:
        pass
    return 0
