"""`model-mcp serve --transport http`: a real server process, real MCP and raw HTTP clients.

Checked: the bearer token (none, wrong, right), the Host/Origin checks with the right token, the
refusal to bind beyond loopback without a token, no-auth on loopback without a token, logs on
stderr only, and the request-size limit that lets a large `content_base64` reach our own checks.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from model_mcp.http_app import allowed_hosts, binding_refusal, build_http_app, is_loopback, max_request_body_size
from model_mcp.settings import Settings
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

TOKEN = "secret"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MISSING = "Unauthorized: this server requires 'Authorization: Bearer <token>' (its MODEL_MCP_TOKEN)"
WRONG = "Unauthorized: the bearer token is not the one this server is configured with"


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: the parent's MODEL_MCP_* variables must not leak into the server."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **(extra or {})}
    if token is not None:
        env["MODEL_MCP_TOKEN"] = token
    return env


def spawn(folder: Path, port: int, *extra: str, token: str | None,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "stdout.log", folder / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "model_mcp", "serve", "--transport", "http", "--port", str(port),
             "--home", str(folder / "home"), *extra],
            env=server_env(token, env), stdout=stdout, stderr=stderr,
        )
    return process, out, err


def wait_until_listening(process: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {stderr.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"server did not listen on {port} within 15 s: {stderr.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_server(folder: Path, *extra: str, token: str | None,
                   env: dict[str, str] | None = None) -> Iterator[Running]:
    port = free_port()
    process, out, err = spawn(folder, port, *extra, token=token, env=env)
    try:
        wait_until_listening(process, port, err)
        yield Running(process, port, out, err)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_server(tmp_path_factory.mktemp("token"), token=TOKEN) as running:
        yield running


@contextlib.asynccontextmanager
async def mcp_client(url: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    async with create_mcp_http_client(headers=headers) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        yield client


def mcp_errors(group: BaseException) -> list[str]:
    """The MCPError messages inside the (nested) exception groups the client raises."""
    if isinstance(group, MCPError):
        return [group.error.message]
    if isinstance(group, BaseExceptionGroup):
        return [message for inner in group.exceptions for message in mcp_errors(inner)]
    return []


async def post(url: str, *, token: str | None = None, **headers: str) -> httpx2.Response:
    sent = dict(MCP_HEADERS, **headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(url, json=INITIALIZE, headers=sent)


# --- the token ----------------------------------------------------------------------------------


async def test_no_token_is_refused_with_401_and_a_bearer_challenge(token_server):
    response = await post(token_server.url)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="model-mcp"'
    assert response.json() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": MISSING}}


async def test_wrong_token_is_refused_with_401_invalid_token(token_server):
    for credentials in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer " + "s" * 64, f"Basic {TOKEN}"):
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.post(token_server.url, json=INITIALIZE,
                                       headers=dict(MCP_HEADERS, Authorization=credentials))
        assert response.status_code == 401, credentials
    response = await post(token_server.url, token="wrong")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="model-mcp", error="invalid_token"'
    assert response.json()["error"]["message"] == WRONG


async def test_token_guards_every_path_and_method(token_server):
    # Only GET/HEAD of the static dashboard page at `/` pass (tests/ui/test_page_http.py).
    async with httpx2.AsyncClient(timeout=10) as http:
        for method, path in (("GET", "/mcp"), ("DELETE", "/mcp"), ("POST", "/"), ("GET", "/anything")):
            response = await http.request(method, f"http://127.0.0.1:{token_server.port}{path}")
            assert response.status_code == 401, (method, path)


async def test_mcp_client_without_or_with_a_wrong_token_fails(token_server):
    with pytest.raises(BaseExceptionGroup) as missing:
        async with mcp_client(token_server.url) as client:
            await client.list_tools()
    assert mcp_errors(missing.value) == [MISSING]
    with pytest.raises(BaseExceptionGroup) as wrong:
        async with mcp_client(token_server.url, token="wrong") as client:
            await client.list_tools()
    assert mcp_errors(wrong.value) == [WRONG]


async def test_mcp_client_with_the_right_token_works(token_server):
    async with mcp_client(token_server.url, token=TOKEN) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"import_zip", "list_models", "get_model", "validate"} <= tools
        listing = await call(client, "list_models")
        assert listing["total"] == 0 and listing["models"] == []


async def test_an_upload_over_the_sdk_default_4_mib_reaches_our_own_checks(token_server):
    junk = os.urandom(5 * 1024 * 1024)  # base64: 6.7 MiB of JSON, over the SDK's 4 MiB default
    async with mcp_client(token_server.url, token=TOKEN) as client:
        code, _ = await call_error(client, "import_zip", content_base64=base64.b64encode(junk).decode(),
                                   filename="junk.zip")
    assert code == "not_a_zip"


# --- Host and Origin ----------------------------------------------------------------------------


async def test_foreign_host_is_refused_even_with_the_right_token(token_server):
    response = await post(token_server.url, token=TOKEN, Host="evil.example")
    assert response.status_code == 421
    assert response.text == "Invalid Host header"
    response = await post(token_server.url, token=TOKEN, Host=f"evil.example:{token_server.port}")
    assert response.status_code == 421


async def test_foreign_origin_is_refused_even_with_the_right_token(token_server):
    response = await post(token_server.url, token=TOKEN, Origin="http://evil.example")
    assert response.status_code == 403
    assert response.text == "Invalid Origin header"
    allowed = await post(token_server.url, token=TOKEN, Origin=f"http://localhost:{token_server.port}")
    assert allowed.status_code == 200


async def test_logs_go_to_stderr_as_json_and_nothing_to_stdout(token_server):
    await post(token_server.url)  # one refused request: logged by us and by uvicorn's access log
    deadline = time.monotonic() + 5
    events: list[dict] = []
    while time.monotonic() < deadline:
        events = [json.loads(line) for line in token_server.stderr.read_text().splitlines() if line.strip()]
        if any(e["event"] == "http_unauthorized" for e in events):
            break
        time.sleep(0.05)
    assert any(e["event"] == "http_unauthorized" and e["reason"] == "missing" for e in events)
    assert any(e["logger"] == "uvicorn.access" for e in events)
    assert all(TOKEN not in json.dumps(e) for e in events)
    assert token_server.stdout.read_bytes() == b""


# --- bindings -----------------------------------------------------------------------------------


def test_binding_all_interfaces_without_a_token_exits_2(tmp_path):
    process, out, err = spawn(tmp_path, free_port(), "--host", "0.0.0.0", token=None)
    try:
        assert process.wait(timeout=15) == 2
    finally:
        stop(process)
    records = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    refused = [r for r in records if r["event"] == "http_refused"]
    assert len(refused) == 1 and refused[0]["level"] == "error"
    assert "requires MODEL_MCP_TOKEN" in refused[0]["message"]
    assert out.read_bytes() == b""
    assert not (tmp_path / "home").exists()  # refused before the store is touched


def test_a_taken_port_exits_2(tmp_path, token_server):
    process, _, err = spawn(tmp_path, token_server.port, token=TOKEN)
    try:
        assert process.wait(timeout=15) == 2
    finally:
        stop(process)
    events = [json.loads(line)["event"] for line in err.read_text().splitlines() if line.strip()]
    assert "http_start_failed" in events


async def test_loopback_without_a_token_needs_no_auth_but_keeps_host_checks(tmp_path):
    with running_server(tmp_path, token=None) as running:
        async with mcp_client(running.url) as client:
            assert (await call(client, "list_models"))["total"] == 0
        assert (await post(running.url)).status_code == 200
        assert (await post(running.url, Host="evil.example")).status_code == 421
        assert (await post(running.url, Origin="http://evil.example")).status_code == 403


async def test_all_interfaces_with_a_token_allows_this_machine_and_refuses_foreign_hosts(tmp_path):
    with running_server(tmp_path, "--host", "0.0.0.0", token=TOKEN) as running:
        assert (await post(running.url)).status_code == 401
        async with mcp_client(running.url, token=TOKEN) as client:
            assert (await call(client, "list_models"))["total"] == 0
        by_name = await post(running.url, token=TOKEN, Host=f"{socket.gethostname()}:{running.port}")
        assert by_name.status_code == 200
        assert (await post(running.url, token=TOKEN, Host="evil.example")).status_code == 421
        # The port is part of the allowed Host: another port means another server.
        assert (await post(running.url, token=TOKEN, Host=f"127.0.0.1:{running.port + 1}")).status_code == 421


# --- the rules, in-process ----------------------------------------------------------------------


def test_is_loopback():
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "192.168.1.5", "example.com", "localhost.example.com"):
        assert not is_loopback(host), host


def test_allowed_hosts_for_loopback_and_wider_bindings():
    assert allowed_hosts("127.0.0.1", 9000) == ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    assert allowed_hosts("127.0.0.2", 9000) == ["127.0.0.2:*", "127.0.0.1:*", "localhost:*", "[::1]:*"]
    wide = allowed_hosts("0.0.0.0", 9000)
    assert wide[:4] == ["0.0.0.0:9000", "127.0.0.1:9000", "localhost:9000", "[::1]:9000"]
    assert f"{socket.gethostname()}:9000" in wide
    assert all(entry.endswith(":9000") for entry in wide)
    assert allowed_hosts("::", 9000)[:2] == ["[::]:9000", "127.0.0.1:9000"]


def test_binding_refusal_and_build_http_app_refuse_an_open_binding(tmp_path):
    open_binding = Settings(home=tmp_path, transport="http", host="0.0.0.0")
    assert "requires MODEL_MCP_TOKEN" in (binding_refusal(open_binding) or "")
    with pytest.raises(ValueError, match="requires MODEL_MCP_TOKEN"):
        build_http_app(None, open_binding)  # type: ignore[arg-type]  # refused before the server is used
    assert binding_refusal(Settings(home=tmp_path, host="0.0.0.0", token="")) is not None  # empty is no token
    assert binding_refusal(Settings(home=tmp_path, host="0.0.0.0", token="t")) is None
    assert binding_refusal(Settings(home=tmp_path, host="127.0.0.1")) is None


def test_request_body_limit_is_one_message(tmp_path):
    assert max_request_body_size(Settings(home=tmp_path)) == 32 * 1024 * 1024
    assert max_request_body_size(Settings(home=tmp_path, max_message_mb=0.5)) == 512 * 1024


async def test_allowed_hosts_adds_a_proxy_name(tmp_path):
    env = {"MODEL_MCP_ALLOWED_HOSTS": "proxy.example,api.example:8443"}
    with running_server(tmp_path, token=TOKEN, env=env) as running:
        assert (await post(running.url, token=TOKEN, Host="proxy.example")).status_code == 200
        assert (await post(running.url, token=TOKEN, Host=f"proxy.example:{running.port}")).status_code == 200
        assert (await post(running.url, token=TOKEN, Host="api.example:8443")).status_code == 200
        assert (await post(running.url, token=TOKEN, Host="api.example:9999")).status_code == 421
        assert (await post(running.url, token=TOKEN, Host="evil.example")).status_code == 421
        assert (await post(running.url, token=TOKEN, Origin="http://proxy.example")).status_code == 200
