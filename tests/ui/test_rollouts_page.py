"""The dashboard's Rollouts view in Chromium against a real HTTP server: a canary started from a
version's page, the report as the server computes it after real traffic, and promotion through the
button and its confirmation (the registry on disk changes)."""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where a browser is required
    expect = None

from model_mcp import samples
from tests.ui.conftest import ThreadClient, prepare_home, screenshot, served


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rollouts")
    prepare_home(folder / "home", folder, v1={"version": "v1", "seed": 1},
                 v2={"version": "v2", "seed": 1, "created_at": "2026-11-21T00:00:00Z"})
    with served(folder) as running:
        yield running


def test_a_canary_from_the_version_page_to_promotion(server, page_factory):
    client = ThreadClient(server.base + "/mcp")
    try:
        assert not client.call_tool("deploy", {"version": "v1"}).is_error
        page = page_factory(1280)
        page.goto(server.base + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_role("button", name="Rollouts", exact=True).click()
        expect(page.locator("#main")).to_contain_text("No rollout is in progress")

        page.get_by_role("button", name="Models", exact=True).click()
        page.get_by_role("button", name="Open version v2").click()
        page.get_by_label("Canary %").fill("40")
        page.get_by_role("button", name="Start canary").click()
        assert "answers 40 % of the calls" in page.locator("#confirm").inner_text()
        page.locator("#confirm-ok").click()
        page.wait_for_selector(".action-result .notice.ok")
        assert server.registry()["v2"]["rollout"]["traffic_percent"] == 40

        for i in range(30):
            assert not client.call_tool("predict", {"rows": samples.sample_rows(5, 8, seed=i)}).is_error
        report = client.call_tool("rollout_report", {}).structured_content
        page.get_by_role("button", name="Rollouts", exact=True).click()
        section = page.locator("section.rollout[data-model=network-anomaly]")
        expect(section).to_be_visible()
        assert "canary of v2" in section.inner_text() and report["verdict"] in section.inner_text()
        requests = section.locator("tr").filter(has_text="Requests").locator("td").all_inner_texts()
        assert requests == [str(report["requests"]["primary"]), str(report["requests"]["candidate"])]
        screenshot(page, "browser-rollouts-1280")

        section.get_by_role("button", name="Promote v2").click()
        assert "validated again first" in page.locator("#confirm").inner_text()
        page.locator("#confirm-ok").click()
        expect(page.locator(".action-result .notice.ok")).to_contain_text("Now serving v2")
        registry = server.registry()
        assert (registry["v2"]["status"], registry["v1"]["status"]) == ("deployed", "available")
        assert "rollout" not in registry["v2"]
        expect(page.locator("#main")).to_contain_text("No rollout is in progress")
        assert page.problems == []
    finally:
        client.close()
