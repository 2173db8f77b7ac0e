"""MCP over stdio with a message-size limit checked before a message is parsed.

The SDK's stdio transport reads stdin line by line as text: a client that writes one 860 MiB line
makes it buffer all of it, decode it, and parse it into Python objects (~12 GB). Here the bytes are
read in chunks; a line that grows past `max_message_bytes` before its newline is refused at once
with a JSON-RPC error naming the limit, and the rest of it is read and dropped without being kept
(only its first KiB is kept, to echo the request's `id` so the client's call ends rather than
waits). Lines within the limit go to the SDK's own reader (`stdio_server(stdin=..., stdout=...)`)
as bytearrays: pydantic parses the bytes directly (no decoded copy), and each line's buffer is
emptied as soon as the SDK asks for the next one, so a large message does not stay resident
until the next message arrives.

Given explicit streams the SDK skips its stdio claim (fd 0 pointed at /dev/null and fd 1 at
stderr while serving, so stray prints and child processes cannot corrupt the protocol); we do the
same here: the wire is kept on private descriptors and restored at exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread

from model_mcp.logs import get_logger
from model_mcp.memory_release import RELEASE_ABOVE_BYTES, release_soon

log = get_logger(__name__)

READ_CHUNK = 256 * 1024
LARGE_LINE = 64 * 1024  # lines this long are handed on without a copy
ID_PREFIX_BYTES = 1024
INVALID_REQUEST = -32600
PARSE_ERROR = -32700
# The request id of a refused line, read from its first KiB (clients write `id` before `params`).
_ID_PATTERN = re.compile(rb'"id"\s*:\s*(-?\d{1,19}(?![\d.eE])|"(?:[^"\\]|\\.){0,256}")')


def request_id_from_prefix(prefix: bytes) -> int | str | None:
    """The JSON-RPC id of a message from its first bytes, when it appears before `params`; else None."""
    head = prefix.split(b'"params"', 1)[0]
    match = _ID_PATTERN.search(head)
    if match is None:
        return None
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def too_large_error(request_id: int | str | None, size_at_least: int, limit: int) -> bytes:
    """The JSON-RPC error line answering a message over the limit."""
    message = (f"Message too large: it exceeds {limit} bytes ({limit / (1024 * 1024):g} MiB), the limit "
               f"MODEL_MCP_MAX_MESSAGE_MB sets for one message; it was not read. Send fewer rows per call "
               f"(drift_report can use the recent predict inputs instead of rows), or import packages by path.")
    body = {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": INVALID_REQUEST, "message": message,
                      "data": {"limit_bytes": limit, "received_bytes_at_least": size_at_least}}}
    return (json.dumps(body) + "\n").encode()


def unreadable_error(exc: BaseException, request_id: int | str | None) -> bytes:
    """The JSON-RPC error line answering a line that is no readable JSON-RPC message.

    Without it the SDK drops such a line with a debug log and the client waits for its own timeout
    (rows nested about 200 deep make `json.loads` raise RecursionError; a 5,000-digit integer
    raises ValueError). Not JSON: -32700; JSON that is no JSON-RPC message: -32600.
    """
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        code, label, reason = INVALID_REQUEST, "Invalid request", "the JSON is not a JSON-RPC 2.0 message"
    elif isinstance(exc, RecursionError):
        code, label, reason = PARSE_ERROR, "Parse error", "the JSON is nested too deeply to read"
    else:
        code, label, reason = PARSE_ERROR, "Parse error", str(exc)[:200] or type(exc).__name__
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": f"{label}: {reason}"}}
    return (json.dumps(body) + "\n").encode()


class LimitedLineReader:
    """Async iterator over stdin's lines (as bytearrays), refusing lines over the limit.

    `refuse(line_bytes)` is awaited with the error line for each refused message.
    """

    def __init__(self, fd: int, max_message_bytes: int, refuse: Any) -> None:
        self._fd = fd
        self._limit = max_message_bytes
        self._refuse = refuse
        self._pending = bytearray()
        self._start = 0  # where the next line begins in _pending
        self._last: bytearray | None = None
        self._eof = False

    def __aiter__(self) -> LimitedLineReader:
        return self

    async def _read(self) -> bytes:
        # abandon_on_cancel: a thread blocked in read() must not hold up shutdown.
        return await anyio.to_thread.run_sync(os.read, self._fd, READ_CHUNK, abandon_on_cancel=True)

    async def __anext__(self) -> bytearray:
        if self._last is not None:
            # The SDK is done with the previous line (it asks for the next one only after handing the
            # parsed message on): free its bytes now rather than when the next line replaces them.
            self._last.clear()
            self._last = None
        while True:
            line = await self._next_line()
            if line is None:
                raise StopAsyncIteration
            if line.strip():
                self._last = line
                return line

    async def _next_line(self) -> bytearray | None:
        buffer = self._pending
        start = searched = self._start
        while True:
            newline = buffer.find(b"\n", searched)
            if newline >= 0:
                if newline - start > self._limit:
                    await self._refuse_line(bytes(buffer[start:start + ID_PREFIX_BYTES]), newline - start)
                    start = searched = newline + 1
                    continue
                self._start = newline + 1
                if start == 0 and newline >= LARGE_LINE:
                    # A large message keeps the buffer itself (no copy); the little that follows moves on.
                    self._pending = bytearray(buffer[newline + 1:])
                    self._start = 0
                    del buffer[newline:]
                    return buffer
                return buffer[start:newline]
            if len(buffer) - start > self._limit:
                await self._refuse_line(bytes(buffer[start:start + ID_PREFIX_BYTES]), len(buffer) - start)
                buffer = self._pending = await self._skip_to_next_line()
                start = searched = 0
                if self._eof and not buffer:
                    self._start = 0
                    return None
                continue
            if start:
                del buffer[:start]  # keep only the unfinished line before reading more
                start = 0
            if self._eof:
                self._pending, self._start = bytearray(), 0
                return buffer if buffer else None
            searched = len(buffer)
            chunk = await self._read()
            if not chunk:
                self._eof = True
                continue
            buffer.extend(chunk)

    async def _skip_to_next_line(self) -> bytearray:
        """Read and drop bytes up to the next newline; return what follows it (or nothing at EOF)."""
        while True:
            chunk = await self._read()
            if not chunk:
                self._eof = True
                return bytearray()
            newline = chunk.find(b"\n")
            if newline >= 0:
                return bytearray(chunk[newline + 1:])

    async def _refuse_line(self, prefix: bytes, size_at_least: int) -> None:
        request_id = request_id_from_prefix(prefix)
        log.warning("message_too_large", limit_bytes=self._limit, received_bytes_at_least=size_at_least,
                    request_id=request_id)
        await self._refuse(too_large_error(request_id, size_at_least, self._limit))


class LockedLineWriter:
    """The wire's stdout for the SDK's writer and for our refusals: one whole line at a time."""

    def __init__(self, fd: int) -> None:
        self._file = io.TextIOWrapper(os.fdopen(fd, "wb", closefd=False), encoding="utf-8")
        self._lock = anyio.Lock()

    async def write(self, text: str) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._file.write, text)

    async def flush(self) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._file.flush)

    async def write_line_now(self, data: bytes) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._write_bytes, data)

    def _write_bytes(self, data: bytes) -> None:
        self._file.flush()
        self._file.buffer.write(data)
        self._file.buffer.flush()


@contextlib.contextmanager
def claimed_stdio() -> Iterator[tuple[int, int]]:
    """The wire's (stdin, stdout) on private descriptors; fd 0 reads /dev/null and fd 1 goes to stderr."""
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
    finally:
        os.close(null)
    try:
        yield wire_in, wire_out
    finally:
        with contextlib.suppress(OSError):
            os.dup2(wire_in, 0)
            os.dup2(wire_out, 1)


async def run_stdio(server: Any, max_message_bytes: int) -> None:
    """Serve `server` (an MCPServer) over stdio, refusing messages over `max_message_bytes`.

    The same loop as the SDK's `stdio_server`, with three differences: lines come from
    `LimitedLineReader`; a line is parsed with `json.loads` and then validated as a JSON-RPC message
    (pydantic's `validate_json` briefly holds about twice the parsed objects; measured 3.8x the
    line's bytes at its peak against 1.9x for this); and the answers of large requests ask for the
    memory to be given back (`memory_release`).
    """
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    # Large requests by id, until answered: see stdout_writer.
    large_requests: dict[Any, Any] = {}

    with claimed_stdio() as (wire_in, wire_out):
        writer = LockedLineWriter(wire_out)
        reader = LimitedLineReader(wire_in, max_message_bytes, writer.write_line_now)
        read_send, read_receive = anyio.create_memory_object_stream[Any](0)
        write_send, write_receive = anyio.create_memory_object_stream[Any](0)

        reader_scope = anyio.CancelScope()

        async def stdin_reader() -> None:
            with reader_scope:
                async with read_send:
                    async for line in reader:
                        size = len(line)
                        prefix = bytes(line[:ID_PREFIX_BYTES])
                        try:
                            message = parse_message(line, types.jsonrpc_message_adapter)
                        except (ValueError, RecursionError) as exc:  # pydantic's ValidationError too
                            # Answered here: the SDK would drop it and the client would wait.
                            log.info("stdio_line_unreadable", error=type(exc).__name__, bytes=size)
                            await writer.write_line_now(unreadable_error(exc, request_id_from_prefix(prefix)))
                            continue
                        except Exception as exc:  # the SDK's own behaviour: the session sees the failure
                            await read_send.send(exc)
                            continue
                        if size >= RELEASE_ABOVE_BYTES and getattr(message, "id", None) is not None:
                            large_requests[message.id] = message
                        await read_send.send(SessionMessage(message))
                        # Held here, the message would keep its rows alive until the next line came.
                        del message, line

        async def stdout_writer() -> None:
            async with write_receive:
                async for session_message in write_receive:
                    message = session_message.message
                    text = message.model_dump_json(by_alias=True, exclude_unset=True)
                    await writer.write(text + "\n")
                    await writer.flush()
                    request_id = getattr(message, "id", None)
                    del session_message, message, text
                    if request_id is not None and request_id in large_requests:
                        # The SDK's dispatcher keeps the last message it read in a local until the next
                        # one arrives, and with it the rows. The answer is out, nothing needs them.
                        answered = large_requests.pop(request_id)
                        if isinstance(getattr(answered, "params", None), dict):
                            answered.params.clear()
                        del answered
                        release_soon()

        lowlevel = server._lowlevel_server  # MCPServer.run_stdio_async passes the SDK's streams to it
        async with anyio.create_task_group() as tg:
            tg.start_soon(stdin_reader)
            tg.start_soon(stdout_writer)
            await lowlevel.run(read_receive, write_send, lowlevel.create_initialization_options())
            # The session is over (stdin closed, or it ended itself): stop reading; the writer ends
            # once the session's write stream is closed and every answer is out.
            reader_scope.cancel()


def parse_message(line: bytearray, adapter: Any) -> Any:
    """One JSON-RPC message from a line; the line's bytes are freed before the message is validated.

    Undecodable bytes become U+FFFD, as in the SDK's reader. A large line's matrices of numbers (the
    rows of predict and drift_report) become float64 arrays without a Python float per number
    (`row_matrices`): for short numbers those floats cost 8 times the line.
    """
    if len(line) < LARGE_LINE:
        return adapter.validate_python(json.loads(line.decode("utf-8", errors="replace")), by_name=False)
    from model_mcp import row_matrices

    value = row_matrices.loads(line)
    line.clear()  # parsed: drop the bytes before the message is validated and dispatched
    return adapter.validate_python(value, by_name=False)
