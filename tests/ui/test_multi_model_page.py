"""The dashboard with several models deployed, in Chromium against a real HTTP server: the per-model
summary, serving badges and aliases in the models list, and the Serving view's model picker whose
figures are those the server answers for the model picked."""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where a browser is required
    expect = None

from model_mcp import samples
from tests.ui.conftest import ThreadClient, prepare_home, screenshot, served

NET, PAY = "network-anomaly", "payments"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    prepare_home(folder / "home", folder,
                 n1={"version": "n1", "model_name": NET},
                 n2={"version": "n2", "model_name": NET, "seed": 1, "created_at": "2026-11-21T00:00:00Z"},
                 p1={"version": "p1", "model_name": PAY, "seed": 2, "n_features": 5})
    with served(folder) as running:
        yield running


def test_several_models_show_side_by_side(server, page_factory):
    client = ThreadClient(server.base + "/mcp")
    try:
        for version in ("n1", "p1"):
            assert not client.call_tool("deploy", {"version": version}).is_error
        assert not client.call_tool("set_alias", {"model_name": NET, "alias": "candidate", "version": "n2"}).is_error
        for _ in range(3):
            assert not client.call_tool("predict", {"rows": samples.sample_rows(20, 8, seed=1), "model_name": NET}).is_error
        assert not client.call_tool("predict", {"rows": samples.sample_rows(7, 5, seed=2), "model_name": PAY}).is_error
        listing = client.call_tool("list_models", {}).structured_content

        page = page_factory(1280)
        page.goto(server.base + "/")
        page.wait_for_selector("body[data-ready=true]")
        summary = page.locator("#main table").filter(has_text="one deployed version per model name")
        expect(summary).to_be_visible()
        text = summary.inner_text()
        for item in listing["model_summaries"]:
            assert item["model_name"] in text and item["deployed_version"] in text
        status = page.locator("#main p[role=status]").inner_text()
        assert f"{NET} n1" in status and f"{PAY} p1" in status
        serving_rows = page.locator("#models-table tbody tr").filter(has=page.locator(".badge.deployed"))
        expect(serving_rows).to_have_count(2)
        assert "@candidate" in page.locator("#models-table tr[data-version=n2]").inner_text()
        screenshot(page, "browser-multi-models-1280")

        # Serving: a model picker; each model's figures are that model's.
        page.get_by_role("button", name="Serving", exact=True).click()
        picker = page.get_by_label("Model")
        expect(picker).to_be_visible()
        for name, version in ((NET, "n1"), (PAY, "p1")):
            picker.select_option(name)
            report = client.call_tool("performance_report", {"model_name": name}).structured_content
            expect(page.locator("#main strong").filter(has_text=version)).to_be_visible()
            expect(page.locator(".card").filter(has_text="Requests").locator(".value")).to_have_text(
                str(report["n_requests"]))
        screenshot(page, "browser-multi-serving-1280")

        # Roll back the payments model from the page: only its slot changes.
        assert not client.call_tool("deploy", {"version": "n2"}).is_error
        page.get_by_role("button", name="Refresh").click()
        page.get_by_role("button", name="Roll back").click()
        page.locator("#confirm-ok").click()
        page.wait_for_selector("#main .notice")
        assert server.registry()["p1"]["status"] == "deployed"  # payments has nothing to roll back to
        picker.select_option(NET)
        page.get_by_role("button", name="Roll back").click()
        assert NET in page.locator("#confirm").inner_text()
        page.locator("#confirm-ok").click()
        expect(page.locator("#main .notice.ok")).to_contain_text("Now serving n1")
        registry = server.registry()
        assert (registry["n1"]["status"], registry["n2"]["status"], registry["p1"]["status"]) == (
            "deployed", "available", "deployed")
        assert page.problems == []
    finally:
        client.close()
