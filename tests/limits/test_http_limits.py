"""What HTTP clients may hold, against a real server on a free port, each attack at a bounded scale.

The attacks seen before: a 602 MiB body (8.3 GB peak); 10,000 `initialize` calls that filled the
session table so that every new client got 503 for 30 minutes; 20,000 connections sending half
their headers, never closed, until every descriptor was used and asyncio logged the same accept()
error 471,039 times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import socket
import time

import httpx2
import pytest

from model_mcp.log_limits import SUPPRESSED_FIELD, RepeatLimitFilter
from tests.test_http import INITIALIZE, MCP_HEADERS, mcp_client, running_server

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


def log_events(running, event: str) -> list[dict]:
    records = []
    for line in running.stderr.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("event") == event:
                records.append(record)
    return records


def wait_closed(sock: socket.socket, within_s: float) -> bytes:
    """Read until the server closes the connection (or `within_s` passes); return what came."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open for {within_s} s")


def still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False


# --- body size ------------------------------------------------------------------------------------
async def test_bodies_over_the_message_limit_are_refused_before_they_are_held(tmp_path):
    with running_server(tmp_path, token=None, env={"MODEL_MCP_MAX_MESSAGE_MB": "1"}) as running:
        async with httpx2.AsyncClient(timeout=30) as http:
            # A declared length over the limit is answered before a byte of the body is sent.
            for path in ("/mcp", "/elsewhere"):  # every path, not only /mcp
                with socket.create_connection(("127.0.0.1", running.port)) as sock:
                    sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % (path.encode(), running.port, 10 * MIB))
                    answer = wait_closed(sock, within_s=15)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 413"), head
                error = json.loads(body)["error"]
                assert "MODEL_MCP_MAX_MESSAGE_MB" in error["message"] and error["data"]["limit_bytes"] == MIB
            # No Content-Length (chunked): the limit must be counted on the stream.
            with socket.create_connection(("127.0.0.1", running.port)) as sock:
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                             b"Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                             % running.port)
                chunk = b"40000\r\n" + b"y" * 0x40000 + b"\r\n"
                with contextlib.suppress(OSError):  # the server answers and closes mid-upload
                    for _ in range(64):
                        sock.sendall(chunk)
                assert wait_closed(sock, within_s=15).startswith(b"HTTP/1.1 413")
            assert (await http.post(running.url, json=INITIALIZE, headers=MCP_HEADERS)).status_code == 200
        assert log_events(running, "http_body_too_large")


def test_a_body_that_trickles_in_is_cut_off(tmp_path):
    env = {"MODEL_MCP_HTTP_BODY_TIMEOUT_S": "1"}
    with running_server(tmp_path, token=None, env=env) as running:
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                         b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{"
                         % running.port)
            answer = wait_closed(sock, within_s=15)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert log_events(running, "http_body_timeout")


# --- sessions -------------------------------------------------------------------------------------
async def test_many_initialize_calls_cannot_lock_new_clients_out(tmp_path):
    env = {"MODEL_MCP_HTTP_MAX_SESSIONS": "5", "MODEL_MCP_HTTP_SESSION_IDLE_S": "3"}
    with running_server(tmp_path, token=None, env=env) as running:
        sessions = []
        async with httpx2.AsyncClient(timeout=30) as http:
            for _ in range(40):  # 8x the cap
                answer = await http.post(running.url, json=INITIALIZE, headers=MCP_HEADERS)
                assert answer.status_code == 200, answer.text
                sessions.append(answer.headers["mcp-session-id"])
            # The oldest sessions made room; the newest still work.
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            oldest = await http.post(running.url, json=ping,
                                     headers={**MCP_HEADERS, "mcp-session-id": sessions[0],
                                              "mcp-protocol-version": "2025-06-18"})
            assert oldest.status_code == 404
            newest = await http.post(running.url, json=ping,
                                     headers={**MCP_HEADERS, "mcp-session-id": sessions[-1],
                                              "mcp-protocol-version": "2025-06-18"})
            assert newest.status_code == 200
        assert log_events(running, "http_session_evicted")  # (written at most 10 a second)
        # A real client is served after the storm.
        async with mcp_client(running.url) as client:
            assert (await client.list_tools()).tools
        # Idle sessions end on their own.
        time.sleep(4)
        async with httpx2.AsyncClient(timeout=30) as http:
            expired = await http.post(running.url, json=ping,
                                      headers={**MCP_HEADERS, "mcp-session-id": sessions[-1],
                                               "mcp-protocol-version": "2025-06-18"})
            assert expired.status_code == 404


# --- headers and connections ----------------------------------------------------------------------
def test_connections_that_send_half_their_headers_are_closed_after_the_deadline(tmp_path):
    env = {"MODEL_MCP_HTTP_HEADER_TIMEOUT_S": "1"}
    with running_server(tmp_path, token=None, env=env) as running:
        silent = socket.create_connection(("127.0.0.1", running.port))
        half = socket.create_connection(("127.0.0.1", running.port))
        half.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % running.port)
        trickle = socket.create_connection(("127.0.0.1", running.port))
        started = time.monotonic()
        for byte in b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ":  # one byte each 0.1 s: no extension
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        for sock in (silent, half, trickle):
            with sock:
                wait_closed(sock, within_s=10)
        assert len(log_events(running, "http_header_timeout")) >= 3
        # A keep-alive connection that starts a second request head and stalls is closed too.
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            body = json.dumps(INITIALIZE).encode()
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                         b"Accept: application/json, text/event-stream\r\nContent-Length: " % running.port
                         + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
            time.sleep(0.5)
            sock.sendall(b"POST /mcp HTTP/1.1\r\n")
            answer = wait_closed(sock, within_s=10)
            assert answer.startswith(b"HTTP/1.1 200")


def test_connections_over_the_cap_are_refused_and_the_server_keeps_serving(tmp_path):
    env = {"MODEL_MCP_HTTP_MAX_CONNECTIONS": "20", "MODEL_MCP_HTTP_HEADER_TIMEOUT_S": "30"}
    with running_server(tmp_path, token=None, env=env) as running:
        time.sleep(0.5)  # the readiness probe's connection is gone
        held = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(20)]
        try:
            time.sleep(0.5)
            refused = []
            for _ in range(40):
                sock = socket.create_connection(("127.0.0.1", running.port))
                refused.append(wait_closed(sock, within_s=10))
                sock.close()
            assert all(answer.startswith(b"HTTP/1.1 503") for answer in refused), refused[:2]
            assert all(still_open(sock) for sock in held)
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.5)
        with httpx2.Client(timeout=30) as http:
            assert http.post(running.url, json=INITIALIZE, headers=MCP_HEADERS).status_code == 200
        assert running.process.poll() is None
        # 40 refusals in a moment: written a bounded number of times, the rest counted.
        written = log_events(running, "http_connection_refused")
        assert len(written) <= 11


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))


@pytest.mark.slow
def test_the_connection_cap_stays_below_the_descriptor_limit(tmp_path):
    """With 160 descriptors, 300 connections: no accept() storm, the server keeps serving."""
    import subprocess

    from tests.test_http import free_port, server_env, stop, wait_until_listening

    port = free_port()
    home = tmp_path / "home"
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [__import__("sys").executable, "-m", "model_mcp", "serve", "--transport", "http", "--port", str(port),
             "--home", str(home)],
            env=server_env(None, {"MODEL_MCP_HTTP_HEADER_TIMEOUT_S": "30"}), stdout=subprocess.DEVNULL,
            stderr=stderr, preexec_fn=_low_fd_limit,
        )
    try:
        wait_until_listening(process, port, stderr_path)
        socks = []
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(1)
        assert process.poll() is None
        for sock in socks:
            sock.close()
        # Connections still queued in the kernel are accepted (and refused) late: bounded retries.
        status = None
        with httpx2.Client(timeout=30) as http:
            for _ in range(20):
                status = http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=MCP_HEADERS).status_code
                if status == 200:
                    break
                time.sleep(0.5)
        assert status == 200
    finally:
        stop(process)
    lines = stderr_path.read_text().splitlines()
    events = [json.loads(line).get("event", "") for line in lines if line.strip()]
    assert any(e == "http_connection_cap_lowered" for e in events)
    assert not any("accept" in str(e) for e in events), [e for e in events if "accept" in str(e)][:3]
    assert len(lines) < 200


# --- rate-limited logs ----------------------------------------------------------------------------
class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_identical_errors_are_written_a_bounded_number_of_times_with_counts():
    handler = _Collect()
    now = [100.0]
    handler.addFilter(RepeatLimitFilter(burst=5, window_s=1.0, clock=lambda: now[0]))
    logger = logging.getLogger("tests.limits.storm")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for attempt in range(10_000):  # the accept() storm, at a bounded scale
            logger.error("socket.accept() out of system resource (attempt %d)", attempt)
        logger.error("another message")
        now[0] += 1.0  # the next second
        logger.error("socket.accept() out of system resource (attempt %d)", -1)
    finally:
        logger.removeHandler(handler)
    storm = [r for r in handler.records if r.msg.startswith("socket.accept()")]
    assert len(storm) == 6
    assert getattr(storm[-1], SUPPRESSED_FIELD) == 9_995
    assert any(r.msg == "another message" for r in handler.records)
