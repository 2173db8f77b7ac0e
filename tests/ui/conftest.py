"""Fixtures for the dashboard's tests: a real HTTP server on a prepared home, a real MCP client in
a thread (for the sync Playwright tests), and Debian's Chromium driven by Playwright.

Chromium is `/usr/bin/chromium` (Debian's package; Playwright's own browser download is not used).
Without it, or without the `playwright` package, the browser tests skip with the reason, except
when MODEL_MCP_REQUIRE_BROWSER=1 (set by `.ci/run`): then they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings
from tests.test_http import Running, free_port, spawn, stop

CHROMIUM = os.environ.get("MODEL_MCP_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("MODEL_MCP_REQUIRE_BROWSER") == "1"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots land here (gitignored); a few are copied by hand into docs/images/ for the README.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
WIDTHS = (400, 1280)
WAIT_MS = 180_000


def _unavailable(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"browser tests are required here (MODEL_MCP_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: while sync Playwright runs, its event loop counts as running in
    # this thread, and the anyio tests of other modules could not start theirs.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Callable[..., Any]]:
    """New pages with their console errors and uncaught exceptions collected in `page.problems`."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda exc: page.problems.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: page.problems.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error" else None)
        # Generous bounds, not timings: a deploy loads the model in a child process, slow on a busy machine.
        page.set_default_timeout(WAIT_MS)
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def prepare_home(home: Path, folder: Path, **packages_kwargs: dict[str, Any]) -> dict[str, Path]:
    """Import packages (name -> package_files kwargs) into `home` with the core, before the server starts."""
    manager = ModelManager(Settings(home=home))
    manager.start()
    paths = {}
    for name, kwargs in packages_kwargs.items():
        path = samples.build_package(folder / f"{name}.zip", **kwargs)
        manager.import_zip(path=str(path))
        paths[name] = path
    return paths


@dataclass
class Served:
    running: Running
    home: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"

    def registry(self) -> dict[str, Any]:
        return json.loads((self.home / "registry.json").read_text())


def _wait_until_listening(process: Any, port: int, stderr: Path, bound_s: float = 120.0) -> None:
    """A generous bound: on a busy machine the server's start can take far longer than usual."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}: {stderr.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    pytest.fail(f"server did not listen on {port} within {bound_s:.0f} s: {stderr.read_text()}")


@contextlib.contextmanager
def served(folder: Path, *extra: str, token: str | None = None, env: dict[str, str] | None = None) -> Iterator[Served]:
    port = free_port()
    process, out, err = spawn(folder, port, *extra, token=token, env=env)
    try:
        _wait_until_listening(process, port, err)
        yield Served(Running(process, port, out, err), folder / "home")
    finally:
        stop(process)


class ThreadClient:
    """A real MCP client (streamable HTTP) on its own event loop thread, callable from sync code."""

    def __init__(self, url: str, token: str | None = None) -> None:
        from anyio.from_thread import start_blocking_portal

        from tests.test_http import mcp_client

        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(start_blocking_portal())
        self.client = self._stack.enter_context(self.portal.wrap_async_context_manager(mcp_client(url, token)))

    def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        return self.portal.call(self.client.call_tool, name, arguments)

    def read_resource(self, uri: str) -> Any:
        return self.portal.call(self.client.read_resource, uri)

    def list_tools(self) -> Any:
        return self.portal.call(self.client.list_tools)

    def close(self) -> None:
        self._stack.close()
