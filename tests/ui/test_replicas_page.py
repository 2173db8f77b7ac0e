"""The dashboard's Replicas view in Chromium: two real `serve --transport http` processes on two homes,
one PostgreSQL database and one shared artifact folder. The page of one lists both with what each
serves and whether each is current; a stopped one turns missing (tests/postgres.py: skipped without a
database, except in CI; the browser tests skip without Chromium, except where required)."""

from __future__ import annotations

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where a browser is required
    expect = None

from model_mcp import samples
from tests.test_http import stop
from tests.ui.conftest import SCREENSHOTS, ThreadClient, served

NET = "network-anomaly"


def test_two_replicas_side_by_side_and_one_turning_missing(page_factory, pg_url, tmp_path):
    env = {"MODEL_MCP_DATABASE_URL": pg_url, "MODEL_MCP_ARTIFACT_ROOT": str(tmp_path / "shared"),
           "MODEL_MCP_REPLICA_HEARTBEAT_S": "0.5"}
    package = samples.build_package(tmp_path / "n1.zip", version="n1", model_name=NET)
    with served(tmp_path / "a", env=env) as a, served(tmp_path / "b", env=env) as b:
        client = ThreadClient(a.base + "/mcp")
        try:
            assert not client.call_tool("import_zip", {"path": str(package)}).is_error
            assert not client.call_tool("deploy", {"version": "n1"}).is_error
        finally:
            client.close()
        page = page_factory(1280)
        page.goto(a.base + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_role("button", name="Replicas", exact=True).click()
        rows = page.locator("#replicas tbody tr")
        addresses = {f"127.0.0.1:{a.running.port}", f"127.0.0.1:{b.running.port}"}
        for _ in range(600):  # B loads n1 on its own (its heartbeat follows the registry): a bound, not a timing
            texts = rows.all_inner_texts()
            if len(texts) == 2 and all("current" in t and f"{NET} n1" in t for t in texts):
                break
            page.get_by_role("button", name="Refresh", exact=True).click()
            page.wait_for_timeout(200)
        texts = rows.all_inner_texts()
        assert len(texts) == 2 and all("up" in t and "current" in t and f"{NET} n1" in t for t in texts), texts
        assert {page.locator("#replicas tbody tr .address").nth(i).inner_text() for i in range(2)} == addresses
        expect(page.locator("#replicas tbody tr").filter(has_text="this server")).to_contain_text(str(a.running.port))
        expect(page.locator("#main p[role=status]")).to_contain_text("2 up, 0 missing · 0 behind the registry")
        page.screenshot(path=str(tmp_path / "replicas-two-up.png"), full_page=True)

        stop(b.running.process)
        missing = page.locator("#replicas tbody tr[data-state=missing]")
        for _ in range(300):
            if missing.count() == 1:
                break
            page.get_by_role("button", name="Refresh", exact=True).click()
            page.wait_for_timeout(200)
        expect(missing).to_have_count(1)
        assert str(b.running.port) in missing.inner_text() and "was current" in missing.inner_text()
        expect(page.locator("#main p[role=status]")).to_contain_text("1 up, 1 missing")
        page.screenshot(path=str(tmp_path / "replicas-one-missing.png"), full_page=True)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "browser-replicas-1280.png"), full_page=True)

        narrow = page_factory(400)
        narrow.goto(a.base + "/")
        narrow.wait_for_selector("body[data-ready=true]")
        narrow.get_by_role("button", name="Replicas", exact=True).click()
        expect(narrow.locator("#replicas tbody tr")).to_have_count(2)
        narrow.screenshot(path=str(tmp_path / "replicas-400.png"), full_page=True)
        assert page.problems == [] and narrow.problems == []
        print("screenshots:", tmp_path)
