"""The dashboard's server side, without a browser: the assembled page, the MCP App's resource and
tool through a real MCP client, and the page at `/` over real HTTP with its CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx2
import pytest
from mcp import Client

from model_mcp.server import build_server
from model_mcp.ui import DASHBOARD_URI, UPLOT_VERSION, content_security_policy, dashboard_page
from tests.helpers import call, call_error
from tests.ui.conftest import served

pytestmark = pytest.mark.anyio
PAGE_BUDGET = 300 * 1024


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@pytest.mark.parametrize("transport", ["http", "mcp-app"])
def test_the_page_is_whole_small_and_fetches_nothing(transport):
    html = dashboard_page(transport).html
    assert len(html.encode()) < PAGE_BUDGET
    assert f'data-transport="{transport}"' in html
    # Nothing loaded from anywhere: no src/href attribute other than the in-page skip link, no import().
    assert re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html) == ["#main"]
    assert "import(" not in html and "<link" not in html and "@import" not in html
    # The only absolute URL is the comment naming uPlot's home page in its own banner.
    assert re.findall(r"https?://[^\s\"')]+", html) == ["https://github.com/leeoniya/uPlot"]
    assert f"(v{UPLOT_VERSION})" in html
    assert "innerHTML" not in html and "outerHTML" not in html and "insertAdjacentHTML" not in html
    assert "document.write" not in html and "eval(" not in html


def test_the_csp_allows_exactly_the_pages_own_inline_code():
    page = dashboard_page("http")
    scripts = re.findall(r"<script>(.*?)</script>", page.html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", page.html, re.S)
    assert len(scripts) == 2 and len(styles) == 1
    csp = dict(part.split(" ", 1) for part in content_security_policy(page).split("; "))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"].split() == [f"'{_sha(s)}'" for s in scripts]
    assert csp["style-src"].split() == [f"'{_sha(s)}'" for s in styles]
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in content_security_policy(page)


def test_the_vendored_chart_library_carries_its_license():
    from importlib import resources

    vendor = resources.files("model_mcp.ui").joinpath("vendor")
    assert "The MIT License" in vendor.joinpath("uPlot.LICENSE").read_text()
    assert vendor.joinpath("uPlot.iife.min.js").read_text().startswith(f"/*! https://github.com/leeoniya/uPlot (v{UPLOT_VERSION}) */")


async def test_the_app_resource_and_the_tool_that_opens_it(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    tool = tools["open_dashboard"]
    assert tool.meta["ui"]["resourceUri"] == DASHBOARD_URI
    assert tool.annotations.read_only_hint is True
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed[DASHBOARD_URI].mime_type == "text/html;profile=mcp-app"
    read = await client.read_resource(DASHBOARD_URI)
    content = read.contents[0]
    assert content.mime_type == "text/html;profile=mcp-app"
    assert content.text == dashboard_page("mcp-app").html


async def test_open_dashboard_answers_text_for_hosts_without_apps(manager, packages):
    manager.import_zip(path=str(packages(version="v1")))
    manager.import_zip(path=str(packages(version="v2", seed=1)))
    manager.deploy(version="v2")
    async with Client(build_server(manager)) as client:
        result = await client.call_tool("open_dashboard", {})
        assert not result.is_error
        text = result.content[0].text
        assert "2 version(s) registered (1 available, 1 deployed); deployed: v2." in text
        assert "Newest:" in text and "MCP Apps host" in text
        assert result.structured_content["deployed_version"] == "v2"
        assert result.structured_content["by_status"] == {"available": 1, "deployed": 1}
        assert result.structured_content["read_only"] is False
        focused = await client.call_tool("open_dashboard", {"version": "v1"})
        assert "Version v1 (network-anomaly): available, validation passed, quality 100/100" in focused.content[0].text
        assert focused.structured_content["view"] == "version"
        code, sentence = await call_error(client, "open_dashboard", version="nope")
        assert code == "not_found" and "nope" in sentence
        code, _ = await call_error(client, "open_dashboard", version="../etc")
        assert code in ("invalid_version", "not_found")


async def test_open_dashboard_on_an_empty_store(client):
    answer = await call(client, "open_dashboard")
    assert answer["total"] == 0 and answer["deployed_version"] is None and answer["newest"] == []


async def test_the_page_is_served_at_the_root_with_its_csp_and_without_the_token(tmp_path):
    with served(tmp_path / "srv", token="secret") as server:
        base = server.base
        async with httpx2.AsyncClient(timeout=10) as http:
            page = await http.get(base + "/")
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert page.text == dashboard_page("http").html
            assert page.headers["content-security-policy"] == content_security_policy(dashboard_page("http"))
            assert page.headers["x-frame-options"] == "DENY"
            # Everything else still needs the token, the MCP endpoint first.
            assert (await http.post(base + "/")).status_code in (401, 405)
            assert (await http.post(base + "/mcp", json={})).status_code == 401
            assert (await http.get(base + "/index.html")).status_code == 401
