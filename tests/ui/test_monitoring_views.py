"""The dashboard's monitoring views in Chromium, against a real server fed real traffic.

One `model-mcp serve --transport http` process serves a deployed fixture model. The test sends it
normal rows, rows with two features shifted, and one refused request, through a real MCP client,
so the monitoring store holds real figures, the recent window really drifted and the alert log
holds what drift_report raised. Each view is then checked against what the server itself answers
to the same question (drift_report, get_alerts, performance_report, scan_training_service), never
against figures written into the test. The training view imports a package through its button
and the models list shows it. Screenshots at 1280 and 400 px go to `screenshots/`.

The server's background check is off here (MODEL_MCP_MONITOR_CHECK_INTERVAL_S=0): it would add
its own drift judgements to the alert log between the client's question and the page's.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails where a browser is required
    expect = None

from model_mcp import samples
from tests.ui.conftest import ThreadClient, prepare_home, screenshot, served

NAMES = samples.feature_names_for(8)
SHIFTED = {"bytes_in": 3.0, "error_rate": -2.5}  # training sd is 1: a plain shift of the mean


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("monitored")
    training = folder / "training"
    samples.write_training_service(training)
    prepare_home(folder / "home", folder, a={"version": "v1"})
    with served(folder, "--training-dir", str(training),
                env={"MODEL_MCP_MONITOR_CHECK_INTERVAL_S": "0"}) as server:
        client = ThreadClient(server.base + "/mcp")
        try:
            assert not client.call_tool("deploy", {"version": "v1"}).is_error
            normal = samples.sample_rows(300, seed=5)
            offset = np.array([SHIFTED.get(name, 0.0) for name in NAMES])
            shifted = (samples.training_data(200, seed=9) + offset).tolist()
            # Ground truth, given as feedback: the shifted rows are anomalies, the normal ones are not.
            chunks = [(normal[i:i + 50], 1) for i in range(0, 300, 50)] + [(shifted[i:i + 50], -1) for i in range(0, 200, 50)]
            for rows, truth in chunks:
                answer = client.call_tool("predict", {"rows": rows})
                assert not answer.is_error
                assert not client.call_tool("record_feedback", {"request_id": answer.structured_content["request_id"],
                                                                "labels": [truth] * len(rows)}).is_error
            assert client.call_tool("predict", {"rows": [[1.0, 2.0, 3.0]]}).is_error  # counted as an error
            server.client = client
            yield server
        finally:
            client.close()


def opened(page_factory, server, view: str, width: int = 1280) -> Any:
    page = page_factory(width)
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_role("button", name=view, exact=True).click()
    return page


def number(cell: str) -> float | None:
    """A figure as the page prints it (en-US grouping, '—' or uPlot's '--' for none)."""
    cell = cell.strip().rstrip("%").strip()
    return None if cell in ("—", "--", "") else float(cell.replace(",", ""))


def no_overflow_at(page, width: int) -> None:
    """At `width` px the view fits: nothing makes the page scroll sideways."""
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_drift_view_shows_what_drift_report_computed(monitored, page_factory):
    expected = monitored.client.call_tool("drift_report", {}).structured_content
    # The traffic really drifted: the shifted features, and the rows the model flags.
    assert set(SHIFTED) <= set(expected["drifted_features"]), expected["drifted_features"]
    assert expected["prediction_drift"]["drifted"] and expected["alerts"]

    page = opened(page_factory, monitored, "Drift")
    page.wait_for_selector("#drift-features")
    rows = page.locator("#drift-features tbody tr")
    features = expected["features"]
    assert rows.count() == len(features) == 8
    for i, feature in enumerate(features):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[0] == feature["feature"]
        assert number(cells[1]) == pytest.approx(feature["drift_score"], abs=5e-4)
        assert cells[2].split()[0] == feature["severity"]
        assert ("drifted" in cells[2]) == feature["drifted"]
        assert number(cells[3]) == pytest.approx(feature["p_value_adjusted"], rel=6e-3)  # what `drifted` rests on
        assert cells[4] == feature["test"] and cells[5] == feature["detail"]
    verdict = page.locator("#drift-verdict").inner_text()
    assert verdict.startswith("Dataset drift" if expected["dataset_drift"] else "No dataset drift")
    assert f"{len(expected['drifted_features'])} of {len(features)} features drifted" in verdict
    assert f"current {expected['current_source']} ({expected['n_current']:,})" in verdict
    # Some features drifted without a dataset verdict: a warning, not an all-clear.
    assert "warn" in page.locator("#drift-verdict").get_attribute("class")
    # Prediction, performance (from the feedback) and concept drift: the verdict and the server's sentence.
    for part, key in (("Predictions", "prediction_drift"), ("Performance", "performance_drift"),
                      ("Concept", "concept_drift")):
        judged = expected[key]
        assert judged is not None, key
        verdict = "not judged" if judged.get("insufficient_data") else "drifted" if judged["drifted"] else "no drift"
        shown = page.locator(f"#{key.replace('_', '-')}").inner_text()
        assert shown == f"{part}: {verdict} {judged['detail']}", key
    shown = page.locator("#drift-alerts li").all_inner_texts()
    assert shown == [f"{a['severity']} {a['kind']} {a['message']}" for a in expected["alerts"]]
    # The last reports, as the monitoring store keeps them: the client's report and the page's own.
    page.wait_for_selector("#drift-history")
    kept = json.loads(monitored.client.read_resource("models://v1/drift").contents[0].text)["reports"]
    assert len(kept) >= 2 and kept[1]["at"] == expected["generated_at"]
    history = page.locator("#drift-history tbody tr")
    assert history.count() == len(kept)
    for i, report in enumerate(kept):
        cells = history.nth(i).locator("td").all_inner_texts()
        assert cells[0] == report["at"][:16].replace("T", " ") + "Z"
        assert cells[1] == ("drift" if report["dataset_drift"] else "no drift")
        assert cells[2] == (f"{len(report['drifted_features'])} ({100 * report['share_drifted']:g} %): "
                            + ", ".join(report["drifted_features"]))
        assert cells[3] == ("drifted" if report["prediction_drifted"] else "no drift")
        assert number(cells[4]) == report["n_current"]
        assert cells[5] == ", ".join(f"{a['severity']} {a['kind']}" for a in report["alerts"])
    screenshot(page, "browser-drift-1280")
    no_overflow_at(page, 400)
    for table, column in (("#drift-features", 3), ("#drift-history", 3)):
        cell = page.locator(f"{table} tbody tr").first.locator("td").nth(column).bounding_box()
        assert cell["x"] + cell["width"] <= 400, f"{table}: the first {column + 1} columns fit 400 px"
    screenshot(page, "browser-drift-400")
    assert page.problems == []


def test_the_alerts_view_lists_what_get_alerts_answers(monitored, page_factory):
    monitored.client.call_tool("drift_report", {})  # the log holds the drift alerts, whatever ran before
    expected = monitored.client.call_tool("get_alerts", {"active_only": True, "limit": 200}).structured_content["alerts"]
    assert {a["kind"] for a in expected} >= {"feature_drift", "prediction_drift"}
    page = opened(page_factory, monitored, "Alerts")
    page.wait_for_selector("#main table")
    rows = page.locator("#main tbody tr")
    assert rows.count() == len(expected)
    def seen(alert: dict[str, Any]) -> str:
        text = alert["last_seen"][:16].replace("T", " ") + "Z"
        if alert["first_seen"] != alert["last_seen"]:
            text += " (since " + alert["first_seen"][:16].replace("T", " ") + "Z)"
        return text

    for i, alert in enumerate(expected):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[0].split() == [alert["severity"], alert["kind"], alert["version"]]
        assert cells[1:] == [alert["message"], alert["action"], seen(alert), str(alert["count"]),
                             "yes" if alert["active"] else "no"]
    page.get_by_label("Severity").select_option("critical")
    critical = [a for a in expected if a["severity"] == "critical"]
    expect(page.locator("#main tbody tr")).to_have_count(len(critical))
    screenshot(page, "browser-alerts-1280")
    no_overflow_at(page, 400)
    # At 400 px each alert shows whole: its message, and when, how often and whether active below it.
    message = page.locator("#main tbody tr").first.locator("td").nth(1)
    box = message.bounding_box()
    assert box["x"] + box["width"] <= 400
    alert = critical[0]
    assert message.inner_text() == (f"{alert['message']}\nLast seen {seen(alert)} · {alert['count']} time(s) · "
                                    + ("active" if alert["active"] else "ended"))
    screenshot(page, "browser-alerts-400")
    assert page.problems == []


def test_the_serving_view_charts_the_performance_series(monitored, page_factory):
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = monitored.client.call_tool("performance_report", {"since": since, "bucket_s": 60}).structured_content
    series = report["series"]  # the buckets that saw requests or errors
    assert sum(b["requests"] for b in series) == report["n_requests"] == 10  # the answered predicts
    assert sum(b["errors"] for b in series) == report["n_errors"] == 1  # the refused one

    page = opened(page_factory, monitored, "Serving")
    expect(page.locator("#chart-1")).to_have_attribute("data-points", re.compile(r"^[1-9][0-9]*$"))
    cards = {page.locator(".card .label").nth(i).inner_text(): page.locator(".card .value").nth(i).inner_text()
             for i in range(page.locator(".card").count())}
    assert number(cards["Requests"]) == report["n_requests"] and number(cards["Rows"]) == report["n_rows"]
    assert cards["Errors"] == f"{report['n_errors']} ({100 * report['error_rate']:.2f} %)".replace(".00 %", " %")
    assert number(cards["Anomaly rate"]) == pytest.approx(100 * report["anomaly_rate"], abs=5e-3)
    # Rows over the hour's wall-clock time, and the rate while busy: two figures, each labelled as what it is.
    assert number(cards["Rows per minute"]) == pytest.approx(60 * report["rows_per_wall_s"], rel=1e-2, abs=0.05)
    assert number(cards["Throughput while busy"].split()[0]) == pytest.approx(report["throughput_rows_per_s"], abs=0.5)
    assert number(cards["Model memory (estimate)"].split()[0]) == pytest.approx(report["memory_bytes"] / 1024, abs=0.05)
    peak = max(b["rss_mb"] for b in series if b["rss_mb"] is not None)
    assert number(cards["Server memory (peak RSS)"].split()[0]) == pytest.approx(peak, abs=0.05)

    screenshot(page, "browser-serving-1280")
    # The charts' data tables, read in one go: the view refreshes itself every 10 s.
    page.locator("#chart-1 summary").click()
    tables = page.evaluate("""[0, 1, 2].map(i => Array.from(document.querySelectorAll('#chart-' + i + ' details tbody tr'))
                                .map(tr => Array.from(tr.cells).map(td => td.textContent)))""")
    latency, traffic, rates = ({row[0]: [number(c) for c in row[1:]] for row in rows} for rows in tables)
    # The chart covers the hour asked for, one point a bucket; an idle bucket is 0 requests, not a gap.
    assert 59 <= len(traffic) <= 62 and set(traffic) == set(latency) == set(rates)
    busy = {when: values for when, values in traffic.items() if values[0] or rates[when][0]}
    assert sorted(busy) == [b["start"][:16].replace("T", " ") + "Z" for b in series]
    for bucket in series:
        when = bucket["start"][:16].replace("T", " ") + "Z"
        assert busy[when] == [bucket["requests"], bucket["rows"]]  # per minute: the buckets are 60 s
        assert latency[when] == [pytest.approx(bucket["latency_p50_ms"], abs=5e-3),
                                 pytest.approx(bucket["latency_p95_ms"], abs=5e-3)]
        # errors over every attempt (answered and refused), as performance_report's error_rate
        assert rates[when][0] == pytest.approx(100 * bucket["errors"] / (bucket["requests"] + bucket["errors"]), abs=5e-3)
        assert rates[when][1] == (None if bucket["anomaly_rate"] is None
                                  else pytest.approx(100 * bucket["anomaly_rate"], abs=5e-3))
    idle = [values for when, values in traffic.items() if when not in busy]
    assert idle and all(values == [0, 0] for values in idle)
    assert all(latency[when] == [None, None] for when in traffic if when not in busy)
    # Each plot fits its own box (they were once sized before their neighbours existed).
    for i in range(3):
        box = page.locator(f"#chart-{i}").bounding_box()
        plot = page.locator(f"#chart-{i} .uplot").bounding_box()
        assert plot["x"] >= box["x"] and plot["x"] + plot["width"] <= box["x"] + box["width"] + 0.5

    # The last 24 hours come in 900 s buckets: each drawn as requests and rows per minute.
    day = (datetime.now(UTC) - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ")
    wide = monitored.client.call_tool("performance_report", {"since": day, "bucket_s": 900}).structured_content
    assert wide["bucket_s"] == 900 and wide["n_requests"] == report["n_requests"]
    page.get_by_label("Range").select_option(label="last 24 hours")
    expect(page.locator("#main p.muted").last).to_contain_text("Buckets of 900 s")
    rows = page.evaluate("""Array.from(document.querySelectorAll('#chart-1 details tbody tr'))
                            .map(tr => Array.from(tr.cells).map(td => td.textContent))""")
    traffic = {row[0]: [number(c) for c in row[1:]] for row in rows}
    assert 96 <= len(traffic) <= 97
    for bucket in wide["series"]:
        when = bucket["start"][:16].replace("T", " ") + "Z"
        assert traffic[when] == [pytest.approx(bucket["requests"] * 60 / 900, abs=5e-3),
                                 pytest.approx(bucket["rows"] * 60 / 900, abs=5e-3)]
    assert sum(v[1] for v in traffic.values()) * 15 == pytest.approx(report["n_rows"], abs=0.5)
    no_overflow_at(page, 400)
    screenshot(page, "browser-serving-400")
    assert page.problems == []


def test_the_training_view_scans_and_imports_through_the_page(monitored, page_factory):
    scan = monitored.client.call_tool("scan_training_service", {}).structured_content
    page = opened(page_factory, monitored, "Training")
    page.wait_for_selector("#training-packages")
    rows = page.locator("#training-packages tbody tr")
    assert rows.count() == len(scan["packages"]) == 3
    for i, package in enumerate(scan["packages"]):
        row = rows.nth(i)
        assert row.get_attribute("data-version") == package["version"]
        assert row.locator("td").first.inner_text().split() == [package["version"], package["model_name"]]
        state = row.locator("td").nth(2).inner_text()
        assert state.startswith("complete" if package["complete"] else "incomplete")
        assert ("not imported" in state) != package["already_imported"]
        for problem in package.get("problems") or []:
            assert problem in state
        importable = package["complete"] and not package["already_imported"]
        assert row.get_by_role("button", name=f"Import {package['version']}").count() == int(importable)
    assert page.locator("#training-packages th").all_inner_texts()[-1] == "Action"
    no_overflow_at(page, 400)
    button = page.get_by_role("button", name=re.compile("^Import [0-9]")).first.bounding_box()
    assert button["x"] + button["width"] <= 400, "the import button is reachable without scrolling at 400 px"
    screenshot(page, "browser-training-400")
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "browser-training-1280")

    target = next(p["version"] for p in scan["packages"] if p["complete"] and not p["already_imported"])
    page.get_by_role("button", name=f"Import {target}").click()
    assert f"Import {target}?" in page.locator("#confirm").inner_text()
    page.locator("#confirm-ok").click()
    page.wait_for_selector(".notice.ok")
    assert f"Imported {target}." in page.locator(".notice.ok").inner_text()
    listing = monitored.client.call_tool("list_models", {}).structured_content
    assert target in [m["version"] for m in listing["models"]]
    # The list refreshed: imported now, with no button; and the models view lists the version.
    expect(page.locator(f"#training-packages tr[data-version='{target}']")).not_to_contain_text("not imported")
    assert page.get_by_role("button", name=f"Import {target}").count() == 0
    page.get_by_role("button", name="Models", exact=True).click()
    page.wait_for_selector(f"tr[data-version='{target}']")
    assert page.locator(f"tr[data-version='{target}']").inner_text().count("available") == 1
    assert page.problems == []
