"""What one HTTP client may hold: body size and time, header time, connections, sessions.

The attacks these answer (all seen on this server before): a 602 MiB body parsed into 8.3 GB;
10,000 `initialize` calls that filled the SDK's session table, after which every new client got
503 for 30 minutes; 20,000 connections that sent half their headers and were never closed, until
every file descriptor was used. Everything here sits at the ASGI or uvicorn level, so it covers
every path the app serves (`/mcp`, and whatever else is mounted beside it).

- `BodyLimitMiddleware`: a body larger than the message limit (`MODEL_MCP_MAX_MESSAGE_MB`) is
  refused with 413 before it is held: at once when Content-Length says so, else as soon as the
  streamed bytes pass it (the rest is never read). A body that takes longer than
  `MODEL_MCP_HTTP_BODY_TIMEOUT_S` to arrive is cut off with 408. Requests with a large body ask for
  memory to be given back once answered (`memory_release`).
- `SessionRoomMiddleware`: when the session table is full (`MODEL_MCP_HTTP_MAX_SESSIONS`), a new
  client's `initialize` closes the session that has been idle longest (never one with a request in
  flight) instead of being refused; its client gets 404 on its next request and, as the protocol
  says, initializes again. Sessions idle for `MODEL_MCP_HTTP_SESSION_IDLE_S` end on their own.
- `GuardedH11Protocol` (uvicorn's h11 protocol): a connection that has not sent a whole request
  head within `MODEL_MCP_HTTP_HEADER_TIMEOUT_S` of connecting (or of its previous answer) is
  closed; connections beyond `MODEL_MCP_HTTP_MAX_CONNECTIONS` are answered 503 and closed at once,
  so descriptors never run out. uvicorn itself has no header deadline (its keep-alive timer starts
  only after a first answer, and any byte stops it).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from model_mcp.logs import get_logger
from model_mcp.memory_release import RELEASE_ABOVE_BYTES, release_soon

log = get_logger(__name__)

INVALID_REQUEST = -32600
MCP_SESSION_HEADER = b"mcp-session-id"


def _json_error(status: int, message: str, **data: Any) -> tuple[int, bytes]:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}
    if data:
        body["error"]["data"] = data
    return status, json.dumps(body).encode()


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def too_large_body(limit: int, declared: int | None = None) -> tuple[int, bytes]:
    message = (f"Request body too large: the limit is {limit} bytes ({limit / (1024 * 1024):g} MiB, "
               f"MODEL_MCP_MAX_MESSAGE_MB); it was not read. Send fewer rows per call (drift_report can use "
               f"the recent predict inputs instead of rows), or import packages by path.")
    data: dict[str, Any] = {"limit_bytes": limit}
    if declared is not None:
        data["declared_bytes"] = declared
    return _json_error(413, message, **data)


class _BodyRefused(Exception):
    """Raised inside `receive` to stop the app reading a body that broke a limit."""


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` (413) or slower than `timeout_s` (408), without holding them."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float,
                 streamed_upload_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        # Routes that stream a package upload to disk with their own byte counter (the REST
        # import): a body that is not JSON is theirs to limit (MODEL_MCP_MAX_UPLOAD_BYTES).
        self.streamed_upload_paths = streamed_upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._streamed_upload(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            log.warning("http_body_too_large", declared_bytes=declared, limit_bytes=self.max_bytes,
                        path=scope.get("path"))
            await _send_error(send, *too_large_body(self.max_bytes, declared))
            return

        received = 0
        body_done = False
        refusal: tuple[int, bytes] | None = None
        started = False
        deadline = anyio.current_time() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done, refusal
            if body_done:
                return await receive()  # e.g. an SSE stream waiting for the disconnect: no deadline
            if refusal is not None:
                return {"type": "http.disconnect"}
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as waited:
                message = await receive()
            if waited.cancelled_caught:
                log.warning("http_body_timeout", timeout_s=self.timeout_s, received_bytes=received,
                            path=scope.get("path"))
                refusal = _json_error(408, f"Request body not received within {self.timeout_s:g} s "
                                           f"(MODEL_MCP_HTTP_BODY_TIMEOUT_S).")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    log.warning("http_body_too_large", received_bytes=received, limit_bytes=self.max_bytes,
                                path=scope.get("path"))
                    refusal = too_large_body(self.max_bytes)
                    return {"type": "http.disconnect"}
                if not message.get("more_body", False):
                    body_done = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refusal is not None and not started:
                return  # the app's answer to a body it never got whole (a 500, say): ours goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        finally:
            if received >= RELEASE_ABOVE_BYTES:
                release_soon()
        if refusal is not None and not started:
            await _send_error(send, *refusal)


    def _streamed_upload(self, scope: Scope) -> bool:
        if scope.get("method") != "POST" or scope.get("path", "").rstrip("/") not in self.streamed_upload_paths:
            return False
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                return not value.split(b";", 1)[0].strip().lower().endswith(b"json")
        return True


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class SessionRoomMiddleware:
    """At the session cap, close the longest-idle session to make room for a new client.

    Reads the SDK's session table (`StreamableHTTPSessionManager._server_instances`, each transport's
    `idle_scope` deadline and `_requests_in_flight`); mcp is pinned below 3, and a test fails if
    these change. If they are missing, nothing is evicted and the SDK's own 503 applies.
    """

    def __init__(self, app: ASGIApp, session_manager: Any, path: str) -> None:
        self.app = app
        self.sessions = session_manager
        self.paths = (path.rstrip("/"), path.rstrip("/") + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope.get("method") == "POST" and scope.get("path") in self.paths
                and not any(name == MCP_SESSION_HEADER for name, _ in scope.get("headers", ()))):
            await self._make_room()
        await self.app(scope, receive, send)

    async def _make_room(self) -> None:
        manager = self.sessions
        table = getattr(manager, "_server_instances", None)
        limit = getattr(manager, "max_sessions", None)
        if not isinstance(table, dict) or limit is None or len(table) < limit:
            return
        idle = []
        for session_id, transport in list(table.items()):
            scope = getattr(transport, "idle_scope", None)
            deadline = getattr(scope, "deadline", math.inf)
            if getattr(transport, "_requests_in_flight", 1) == 0 and math.isfinite(deadline):
                idle.append((deadline, session_id, transport))
        if not idle:
            return  # every session is busy: the SDK answers 503
        _, session_id, transport = min(idle, key=lambda item: item[0])
        log.info("http_session_evicted", session=session_id[:12], sessions=len(table), max_sessions=limit)
        await manager._discard_session(session_id, transport)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap.

    Class attributes set by `configure` (uvicorn builds one protocol per connection).
    """

    header_timeout_s: float = 10.0
    max_connections: int = 1000

    _header_timer: asyncio.TimerHandle | None = None

    @classmethod
    def configure(cls, *, header_timeout_s: float, max_connections: int) -> type[GuardedH11Protocol]:
        return type("ConfiguredGuardedH11Protocol", (cls,),
                    {"header_timeout_s": header_timeout_s, "max_connections": max_connections})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("http_connection_refused", reason="too many connections",
                        max_connections=self.max_connections)
            _, body = _json_error(503, f"Too many connections: this server accepts "
                                       f"{self.max_connections} at once (MODEL_MCP_HTTP_MAX_CONNECTIONS).")
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            transport.close()
            return
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        if self._waiting_for_head():
            self._arm_header_deadline()  # a no-op while armed: bytes trickling in do not extend it
        super().data_received(data)
        if not self._waiting_for_head():
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head gets its own deadline (uvicorn's keep-alive timer stops at the
        # first byte, so it alone would let a client trickle a second head forever).
        self._cancel_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_deadline(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline_passed(self) -> None:
        self._header_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            log.warning("http_header_timeout", timeout_s=self.header_timeout_s)
            self.transport.close()
