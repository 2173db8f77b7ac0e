"""Fixtures for the REST API: the real HTTP app (the same one `serve --transport http` runs) over a
manager in tmp_path, reached through httpx's ASGI transport or a real uvicorn socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
import uvicorn

from model_mcp.core.manager import ModelManager
from model_mcp.http_app import build_http_app
from model_mcp.server import build_server
from model_mcp.settings import Settings

BASE = "http://127.0.0.1:8765"
API = "/api/v1"
PROBLEM = "application/problem+json"


def build_app(settings: Settings) -> tuple[Any, ModelManager]:
    settings = settings.model_copy(update={"transport": "http"})
    manager = ModelManager(settings)
    manager.start()
    return build_http_app(build_server(manager), settings, manager), manager


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., tuple[Any, ModelManager]]]:
    """make_app(**settings) -> (app, started manager); each manager is closed when the test ends."""
    managers: list[ModelManager] = []

    def make(**overrides: Any) -> tuple[Any, ModelManager]:
        app, manager = build_app(make_settings(**overrides))
        managers.append(manager)
        return app, manager

    yield make
    for manager in managers:
        manager.close()


@pytest.fixture
def make_api(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., httpx2.AsyncClient]]:
    """make_api(**settings) -> an AsyncClient over the app's ASGI interface (its manager at .manager)."""
    clients: list[httpx2.AsyncClient] = []

    def make(**overrides: Any) -> httpx2.AsyncClient:
        app, manager = build_app(make_settings(**overrides))
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE, timeout=60)
        client.manager = manager  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.manager.close()  # type: ignore[attr-defined]  # its threads and database connections


@pytest.fixture
async def api(make_api: Callable[..., httpx2.AsyncClient]) -> AsyncIterator[httpx2.AsyncClient]:
    async with make_api() as client:
        yield client


def assert_problem(response: httpx2.Response, code: str, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this code and status; answers its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"urn:model-mcp:problem:{code}"
    assert body["title"] and body["detail"]
    return body


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """uvicorn serving `app` on a free port in a thread (lifespan on, for /mcp); yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
