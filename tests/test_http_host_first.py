"""The Host check comes first, on every path, and loopback on port 80 takes `Host: 127.0.0.1`
without a port (issue 18, item 4).

`POST /mcp/` with a foreign Host answered a 307 redirect to `/mcp` before the Host check ran;
on loopback port 80, clients sending `Host: 127.0.0.1` (browsers and httpx omit the default
port) got 421.
"""

from __future__ import annotations

import contextlib
import threading
import time

import httpx2
import pytest
import uvicorn

from model_mcp.core.manager import ModelManager
from model_mcp.http_app import allowed_hosts, build_http_app
from model_mcp.server import build_server
from model_mcp.settings import Settings
from tests.test_http import INITIALIZE, MCP_HEADERS, free_port, running_server

pytestmark = pytest.mark.anyio


async def test_a_foreign_host_gets_421_before_any_redirect(tmp_path):
    with running_server(tmp_path, token=None) as running:
        base = f"http://127.0.0.1:{running.port}"
        async with httpx2.AsyncClient(timeout=10, follow_redirects=False) as http:
            for path in ("/mcp/", "/mcp", "/mcp/x"):
                answer = await http.post(base + path, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.example"})
                assert answer.status_code == 421, (path, answer.status_code, answer.headers.get("location"))
            foreign_origin = await http.post(base + "/mcp/", json=INITIALIZE,
                                             headers={**MCP_HEADERS, "Origin": "http://evil.example"})
            assert foreign_origin.status_code == 403
            ours = await http.post(base + "/mcp/", json=INITIALIZE, headers=MCP_HEADERS)
            assert ours.status_code == 307  # our own Host: the SDK's redirect still works


def test_loopback_on_port_80_allows_the_names_without_a_port():
    hosts = allowed_hosts("127.0.0.1", 80)
    for name in ("127.0.0.1", "localhost", "[::1]"):
        assert name in hosts and f"{name}:*" in hosts
    assert "127.0.0.1" not in allowed_hosts("127.0.0.1", 8765)  # elsewhere no port means port 80: another server


@contextlib.contextmanager
def serving(app, port: int):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert server.started, "uvicorn did not start"
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def test_an_app_configured_for_port_80_answers_host_without_port(tmp_path):
    # Configured as the port-80 server it would be; listening on a free port so no privilege is needed.
    settings = Settings(home=tmp_path / "home", transport="http", port=80)
    manager = ModelManager(settings)
    manager.start()
    app = build_http_app(build_server(manager), settings)
    port = free_port()
    with serving(app, port):
        async with httpx2.AsyncClient(timeout=10) as http:
            url = f"http://127.0.0.1:{port}/mcp"
            bare = await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "127.0.0.1"})
            assert bare.status_code == 200, bare.text
            origin = await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "localhost",
                                                                     "Origin": "http://localhost"})
            assert origin.status_code == 200, origin.text
            foreign = await http.post(url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.example"})
            assert foreign.status_code == 421
