"""The dashboard page in Chromium against a real `model-mcp serve --transport http` process.

Checked as a person would use it: the models list, a deploy through the button and its
confirmation (the registry on disk changes), an error shown with its code (nothing changes),
charts that draw points once real predicts have run, an upload with progress, the token prompt,
and hostile package text that stays text. Screenshots at 400 and 1280 px go to `screenshots/`.
"""

from __future__ import annotations

import json
from pathlib import Path

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where a browser is required
    expect = None

from model_mcp import samples
from tests.ui.conftest import WIDTHS, ThreadClient, prepare_home, screenshot, served

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_TEXT = '</script><script>window.__pwned=2</script><b onmouseover="window.__pwned=3">x</b>'


def ready(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def model_rows(page) -> list[str]:
    return page.locator("#models-table tbody tr[data-version]").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-version'))")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    prepare_home(folder / "home", folder,
                 a={"version": "v1"}, b={"version": "v2", "seed": 1}, c={"version": "v3", "seed": 2, "model_name": "other-model"})
    with served(folder) as running:
        yield running


def test_the_page_lists_deploys_charts_and_shows_error_codes(server, page_factory):
    client = ThreadClient(server.base + "/mcp")
    try:
        page = page_factory(1280)
        ready(page, server.base + "/")
        # The models view opens first and lists the registry, newest created_at first.
        listing = client.call_tool("list_models", {}).structured_content
        assert model_rows(page) == [m["version"] for m in listing["models"]]
        assert page.locator("#tabs button[aria-current=page]").inner_text() == "Models"
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            screenshot(page, f"browser-models-{width}")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_label("Filter").fill("other")
        expect(page.locator("#models-table tbody tr[data-version]")).to_have_count(1)
        assert model_rows(page) == ["v3"]
        page.get_by_label("Filter").fill("")

        # Deploy v2 through its button and the confirmation, which says what will change.
        page.get_by_role("button", name="Open version v2").click()
        page.wait_for_selector("#sec-validation")
        page.get_by_role("button", name="Deploy", exact=True).click()
        dialog = page.locator("#confirm")
        assert dialog.is_visible()
        assert "v2 becomes the model that answers predict." in dialog.inner_text()
        assert "nothing changes" in dialog.inner_text()
        page.locator("#confirm-ok").click()
        page.wait_for_selector(".action-result .notice.ok")
        assert "Deployed v2" in page.locator(".action-result").inner_text()
        assert server.registry()["v2"]["status"] == "deployed"
        page.wait_for_selector("#main >> text=deployed")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            screenshot(page, f"browser-version-{width}")
        page.set_viewport_size({"width": 1280, "height": 900})

        # Cancelling changes nothing; deleting the deployed version answers its code, in place.
        before = (server.home / "registry.json").read_bytes()
        page.get_by_role("button", name="Delete").click()
        page.locator("#confirm-cancel").click()
        assert not dialog.is_visible()
        page.get_by_role("button", name="Delete").click()
        assert "This cannot be undone." in dialog.inner_text()
        page.locator("#confirm-ok").click()
        page.wait_for_selector(".action-result .notice.error")
        assert page.locator(".action-result code.code").inner_text() == "[invalid_state]"
        assert (server.home / "registry.json").read_bytes() == before

        # Serving: no predict yet, so no latency point; after real predicts, the charts draw them.
        page.get_by_role("button", name="Serving", exact=True).click()
        page.wait_for_selector("#chart-0[data-points]")
        assert page.locator("#chart-0").get_attribute("data-points") == "0"
        rows = samples.sample_rows(50, 8, seed=3)
        for _ in range(5):
            assert not client.call_tool("predict", {"rows": rows}).is_error
        report = client.call_tool("performance_report", {}).structured_content
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator("#chart-0")).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
        assert page.locator(".card").filter(has_text="Requests").locator(".value").inner_text() == str(report["n_requests"])
        assert page.locator("#chart-0 canvas").count() == 1
        # The monitoring store's 60 s buckets of the last hour: the chart's data table holds every request
        # (its own table, not uPlot's legend, whose '--' cells are no figures).
        page.locator("#chart-1 summary").click()
        cells = page.locator("#chart-1 details tbody tr td:nth-child(2)").all_inner_texts()
        assert sum(float(c.replace(",", "")) for c in cells) == report["n_requests"] == 5
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            screenshot(page, f"browser-serving-{width}")

        # History shows the deploy and the refused delete as a timeline.
        page.get_by_role("button", name="History", exact=True).click()
        page.wait_for_selector(".timeline li")
        timeline = page.locator(".timeline").inner_text()
        assert "deploy" in timeline and "v2" in timeline
        screenshot(page, "browser-history-1280")
        assert page.problems == []
    finally:
        client.close()


def test_many_versions_are_paged_and_filtered(tmp_path, page_factory):
    """1,000 versions: the page renders one page of rows; the filter and the pager reach all of them."""
    folder = tmp_path / "many"
    prepare_home(folder / "home", folder, a={"version": "v1"})
    registry_path = folder / "home" / "registry.json"
    registry = json.loads(registry_path.read_text())
    template = registry["v1"]
    for i in range(999):  # hand-written entries sharing one package folder: list_models only reads them
        version = f"bulk_{i:04d}"
        registry[version] = dict(template, version=version, model_name=f"model-{i % 7}",
                                 created_at=f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00:00Z")
    registry_path.write_text(json.dumps(registry))
    with served(folder) as server:
        page = page_factory(1280)
        ready(page, server.base + "/")
        assert "1000 version(s) registered" in page.locator("#main p[role=status]").inner_text()
        assert len(model_rows(page)) == 50
        assert page.locator(".pager").inner_text().count("Page 1 of 20") == 1
        page.get_by_label("Per page").select_option("100")
        assert len(model_rows(page)) == 100
        page.get_by_role("button", name="Next page").click()
        assert "Page 2 of 10" in page.locator(".pager").inner_text()
        page.get_by_label("Filter").fill("bulk_0998")
        expect(page.locator("#models-table tbody tr[data-version]")).to_have_count(1)
        assert model_rows(page) == ["bulk_0998"]
        assert page.problems == []


def test_upload_with_progress_and_hostile_text_stays_text(server, page_factory, tmp_path):
    package = samples.build_package(tmp_path / "hostile.zip", version="hostile-1", seed=4, model_name=HOSTILE_NAME,
                                    metadata_overrides={"description": HOSTILE_TEXT, "tags": [HOSTILE_NAME, HOSTILE_TEXT]})
    page = page_factory(1280)
    ready(page, server.base + "/")
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_label("Package (.zip)").set_input_files(str(package))
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_selector("#main .notice.ok")
    assert page.locator("#import-progress").evaluate("p => p.value") == 100
    assert "Imported hostile-1" in page.locator("#main .notice.ok").inner_text()
    assert HOSTILE_NAME in page.locator("#main .notice.ok").inner_text()
    page.get_by_role("button", name="Open hostile-1").click()
    page.wait_for_selector("#sec-validation")
    body = page.locator("#main").inner_text()
    assert HOSTILE_NAME in body and HOSTILE_TEXT in body  # shown as the very characters it is made of
    page.get_by_role("button", name="Models", exact=True).click()
    page.wait_for_selector("tr[data-version='hostile-1']")
    assert page.locator("tr[data-version='hostile-1']").inner_text().count(HOSTILE_NAME) == 1
    page.locator("tr[data-version='hostile-1'] td").nth(1).hover()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0 and page.locator("#main b").count() == 0
    assert page.evaluate("document.scripts.length") == 2
    assert page.problems == []


def test_the_page_asks_for_the_token_and_keeps_it_for_the_tab_only(tmp_path, page_factory):
    folder = tmp_path / "token"
    prepare_home(folder / "home", folder, a={"version": "v1"})
    with served(folder, token="s3cret") as server:
        page = page_factory(400)
        page.goto(server.base + "/")
        page.wait_for_selector("#token-dialog[open]")
        page.get_by_label("Token", exact=True).fill("wrong")
        page.get_by_role("button", name="Connect").click()
        page.wait_for_selector("#token-problem:not([hidden])")
        assert "refused that token" in page.locator("#token-problem").inner_text()
        screenshot(page, "browser-token-400")
        page.get_by_label("Token", exact=True).fill("s3cret")
        page.get_by_label("Token", exact=True).press("Enter")
        page.wait_for_selector("body[data-ready=true]")
        assert model_rows(page) == ["v1"]
        assert page.evaluate("sessionStorage.getItem('model-mcp-token')") == "s3cret"
        assert page.evaluate("localStorage.length") == 0
        # Chromium logs each 401 answer itself; nothing else may go wrong.
        assert [p for p in page.problems if "status of 401" not in p] == []
