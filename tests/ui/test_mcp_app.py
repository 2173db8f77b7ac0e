"""The dashboard as an MCP App, in Chromium, inside a small test host.

The host page is what an MCP Apps host does, reduced to the protocol: it reads the `ui://` HTML
through a real MCP client, renders it in a sandboxed iframe (`allow-scripts` only: an opaque
origin, no storage, no access to the host), answers `ui/initialize` with a host context (dark
theme, style variables), follows `ui/notifications/size-changed`, and relays the app's
`tools/call` and `resources/read` to the real server (`page.expose_function`). The host applies
no CSP here on purpose: the hostile-text check then shows that the page itself renders untrusted
text as text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_mcp.ui import DASHBOARD_URI
from tests.ui.conftest import WIDTHS, ThreadClient, prepare_home, screenshot, served
from tests.ui.test_browser_page import HOSTILE_NAME, HOSTILE_TEXT

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where a browser is required
    expect = None

HOST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>test host</title>
<style>body{margin:0;font:14px sans-serif;background:#0e0f12;color:#eee} iframe{border:0;width:100%;display:block}</style>
</head><body>
<p id="host-status">test host</p>
<iframe id="app" name="app" title="model-mcp dashboard" sandbox="allow-scripts"></iframe>
<script>
window.hostLog = [];
const frame = document.getElementById('app');
let initialized = false;
function toApp(message) { frame.contentWindow.postMessage(message, '*'); }
window.addEventListener('message', async (event) => {
  if (event.source !== frame.contentWindow) return;
  const m = event.data;
  window.hostLog.push(m);
  if (m.method === 'ui/initialize') {
    toApp({jsonrpc: '2.0', id: m.id, result: {
      protocolVersion: '2026-01-26', hostInfo: {name: 'test-host', version: '1'},
      hostCapabilities: {serverTools: {}, serverResources: {}},
      hostContext: {theme: 'dark', displayMode: 'inline', containerDimensions: {maxHeight: 20000},
                    styles: {variables: {'--color-background-primary': '#101114', '--font-sans': 'sans-serif'}}}}});
  } else if (m.method === 'ui/notifications/initialized') {
    initialized = true;
    const args = window.toolArguments || {};
    const opened = JSON.parse(await window.relay(JSON.stringify({method: 'tools/call', params: {name: 'open_dashboard', arguments: args}})));
    toApp({jsonrpc: '2.0', method: 'ui/notifications/tool-input', params: {arguments: args}});
    toApp({jsonrpc: '2.0', method: 'ui/notifications/tool-result', params: opened.result});
  } else if (m.method === 'ui/notifications/size-changed') {
    frame.style.height = m.params.height + 'px';
  } else if ((m.method === 'tools/call' || m.method === 'resources/read') && m.id !== undefined) {
    if (!initialized) { toApp({jsonrpc: '2.0', id: m.id, error: {code: -32600, message: 'not initialized'}}); return; }
    const answer = JSON.parse(await window.relay(JSON.stringify(m)));
    toApp(Object.assign({jsonrpc: '2.0', id: m.id}, answer));
  }
});
</script></body></html>"""


def wire(result: Any) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


class Relay:
    """The host's side of the bridge: the app's requests to the real server, through a real MCP client."""

    def __init__(self, client: ThreadClient, app_tools: set[str]) -> None:
        self.client, self.app_tools, self.calls = client, app_tools, []

    def __call__(self, raw: str) -> str:
        message = json.loads(raw)
        params = message.get("params") or {}
        self.calls.append((message["method"], params.get("name") or params.get("uri")))
        if message["method"] == "tools/call":
            if params["name"] not in self.app_tools:  # the spec: only tools whose visibility includes "app"
                return json.dumps({"error": {"code": -32601, "message": f"tool {params['name']} is not for apps"}})
            return json.dumps({"result": wire(self.client.call_tool(params["name"], params.get("arguments") or {}))})
        return json.dumps({"result": wire(self.client.read_resource(params["uri"]))})


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    prepare_home(folder / "home", folder, a={"version": "v1"}, b={"version": "v2", "seed": 1},
                 h={"version": "hostile-1", "seed": 4, "model_name": HOSTILE_NAME,
                    "metadata_overrides": {"description": HOSTILE_TEXT, "tags": [HOSTILE_NAME]}})
    with served(folder) as running:
        yield running


def open_app(page_factory, server, width: int, tool_arguments: dict[str, Any] | None = None):
    client = ThreadClient(server.base + "/mcp")
    tools = client.list_tools().tools
    dashboard_tool = next(t for t in tools if t.name == "open_dashboard")
    assert dashboard_tool.meta["ui"]["resourceUri"] == DASHBOARD_URI
    app_tools = {t.name for t in tools if "app" in ((t.meta or {}).get("ui", {}).get("visibility") or ["model", "app"])}
    resource = client.read_resource(DASHBOARD_URI).contents[0]
    assert resource.mime_type == "text/html;profile=mcp-app"
    relay = Relay(client, app_tools)
    page = page_factory(width)
    page.expose_function("relay", relay)
    page.set_content(HOST_PAGE)
    page.evaluate("args => { window.toolArguments = args; }", tool_arguments or {})
    page.evaluate("html => { document.getElementById('app').srcdoc = html; }", resource.text)
    frame = page.frame_locator("#app")
    expect(frame.locator("body")).to_have_attribute("data-ready", "true")
    return client, relay, page, frame


def settle(page) -> None:
    """Wait (bounded) until the host has resized the iframe to the app's last reported size, for screenshots."""
    app = page.frame(name="app")
    for _ in range(50):
        content = app.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
        if page.evaluate("document.getElementById('app').getBoundingClientRect().height") == content:
            return
        page.wait_for_timeout(100)


def app_screenshot(page, name: str) -> None:
    """The whole host page: the viewport grows to the iframe's height first, so all of the app is painted."""
    settle(page)
    width = page.viewport_size["width"]
    height = page.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
    page.set_viewport_size({"width": width, "height": max(900, height)})
    screenshot(page, name)
    page.set_viewport_size({"width": width, "height": 900})


def test_the_app_speaks_the_apps_protocol_and_deploys_through_the_host(app_server, page_factory):
    client, relay, page, frame = open_app(page_factory, app_server, 1280)
    try:
        settle(page)
        log = page.evaluate("window.hostLog")
        methods = [m.get("method") for m in log]
        assert methods[0] == "ui/initialize"
        assert log[0]["params"]["protocolVersion"] == "2026-01-26"
        assert log[0]["params"]["appInfo"]["name"] == "model-mcp-dashboard"
        assert methods.index("ui/notifications/initialized") < methods.index("tools/call")
        sizes = [m["params"] for m in log if m.get("method") == "ui/notifications/size-changed"]
        assert sizes and sizes[-1]["height"] > 200 and sizes[-1]["width"] > 0
        # The host's context reached the page: dark theme, and its style variables.
        app = page.frame(name="app")
        assert app.evaluate("document.documentElement.getAttribute('data-theme')") == "dark"
        assert app.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 17, 20)"
        # The iframe follows the app's size.
        height = page.evaluate("document.getElementById('app').getBoundingClientRect().height")
        assert height == sizes[-1]["height"]
        assert ("tools/call", "list_models") in relay.calls

        # Deploy v1 from inside the app: the confirmation, then the call through the host to the server.
        frame.get_by_role("button", name="Open version v1").click()
        expect(frame.locator("#sec-validation")).to_be_visible()
        frame.get_by_role("button", name="Deploy", exact=True).click()
        expect(frame.locator("#confirm")).to_contain_text("v1 becomes the model that answers predict.")
        frame.locator("#confirm-ok").click()
        expect(frame.locator(".action-result .notice.ok")).to_contain_text("Deployed v1")
        assert ("tools/call", "deploy") in relay.calls
        assert app_server.registry()["v1"]["status"] == "deployed"
        assert client.call_tool("list_models", {}).structured_content["deployed_version"] == "v1"
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            app_screenshot(page, f"app-version-{width}")
        assert page.problems == []
    finally:
        client.close()


def test_hostile_package_text_stays_text_in_the_app(app_server, page_factory):
    client, relay, page, frame = open_app(page_factory, app_server, 400)
    try:
        row = frame.locator("tr[data-version='hostile-1']")
        expect(row).to_contain_text(HOSTILE_NAME)
        row.locator("td").nth(1).hover()
        frame.get_by_role("button", name="Open version hostile-1").click()
        expect(frame.locator("#sec-meta")).to_be_visible()
        app = page.frame(name="app")
        body = app.evaluate("document.getElementById('main').textContent")
        assert HOSTILE_NAME in body and HOSTILE_TEXT in body
        assert app.evaluate("window.__pwned") is None
        assert app.evaluate("document.querySelectorAll('img, #main b').length") == 0
        assert app.evaluate("document.scripts.length") == 2
        app_screenshot(page, "app-hostile-400")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            frame.get_by_role("button", name="Models", exact=True).click()
            expect(frame.locator("tr[data-version='v1']")).to_be_visible()
            app_screenshot(page, f"app-models-{width}")
        assert page.problems == []
    finally:
        client.close()


def test_open_dashboard_with_a_version_opens_the_app_on_it(app_server, page_factory):
    client, relay, page, frame = open_app(page_factory, app_server, 400, {"version": "v2"})
    try:
        expect(frame.get_by_role("heading", name="Version v2")).to_be_visible()
        assert ("tools/call", "get_model") in relay.calls
        assert page.problems == []
    finally:
        client.close()
