"""/metrics: the runtime's figures in Prometheus format, read at scrape time."""

from __future__ import annotations

import pytest
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from model_mcp import samples
from model_mcp.server import build_server
from tests.helpers import call_error
from tests.rest.conftest import API
from tests.rest.test_endpoints import imported

pytestmark = pytest.mark.anyio


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_predicts_rows_anomalies_errors_and_lifecycle_events(api, packages):
    await imported(api, packages, "v1")
    await api.post(f"{API}/models/v1/deploy")
    normal = samples.sample_rows(40)
    odd = samples.outliers(10).tolist()
    for rows in (normal, odd, normal[:5]):
        assert (await api.post(f"{API}/predict", json={"rows": rows})).status_code == 200
    assert (await api.post(f"{API}/predict", json={"rows": [[1.0]]})).status_code == 422
    async with Client(build_server(api.manager)) as mcp:  # the same manager over MCP, in memory
        code, _ = await call_error(mcp, "get_model", version="nope")
        assert code == "not_found"
    response = await api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = samples_of(response.text)
    v1 = (("version", "v1"),)
    assert got[("model_mcp_predict_requests_total", v1)] == 3
    assert got[("model_mcp_predict_rows_total", v1)] == 55
    assert got[("model_mcp_predict_errors_total", v1)] == 1
    assert got[("model_mcp_predict_latency_seconds_count", v1)] == 3
    assert got[("model_mcp_predict_latency_seconds_bucket", (("le", "+Inf"), ("version", "v1")))] == 3
    assert got[("model_mcp_predict_latency_seconds_sum", v1)] > 0
    flagged = got[("model_mcp_predict_anomalies_total", v1)]
    assert flagged >= 5  # most of the 10 outliers
    assert got[("model_mcp_anomaly_rate", v1)] == pytest.approx(flagged / 55)
    assert got[("model_mcp_model_info", (("serving", "true"), ("version", "v1")))] == 1
    assert got[("model_mcp_model_memory_bytes", v1)] > 0
    assert got[("model_mcp_ready", (("state", "serving"),))] == 1
    assert got[("model_mcp_lifecycle_events_total", (("event", "import"), ("outcome", "ok")))] == 1
    assert got[("model_mcp_lifecycle_events_total", (("event", "deploy"), ("outcome", "ok")))] == 1
    assert got[("model_mcp_errors_total", (("code", "invalid_input"), ("interface", "rest")))] >= 1
    assert got[("model_mcp_errors_total", (("code", "not_found"), ("interface", "mcp")))] >= 1
    assert any(name == "process_resident_memory_bytes" for name, _ in got)
    # a second scrape reads only new audit lines and keeps the totals
    await api.post(f"{API}/models/v1/validate", json={"deep": False})
    again = samples_of((await api.get("/metrics")).text)
    assert again[("model_mcp_lifecycle_events_total", (("event", "import"), ("outcome", "ok")))] == 1
    assert again[("model_mcp_lifecycle_events_total", (("event", "validate"), ("outcome", "passed")))] == 1


async def test_lifecycle_counters_miss_no_audit_line_across_rotations(make_api, packages):
    """The trail rotates into history-<n>.jsonl segments (4 KiB each here): the lines written before a
    rotation that the last scrape had not read, and every segment rotated in between, are counted."""
    lifecycle = "model_mcp_lifecycle_events_total"
    async with make_api(history_segment_bytes=4096) as api:
        home = api.manager.settings.home
        await imported(api, packages, "v1")
        await api.post(f"{API}/models/v1/deploy")
        first = samples_of((await api.get("/metrics")).text)
        assert first[(lifecycle, (("event", "import"), ("outcome", "ok")))] == 1
        validated = 0
        for expected_segments in (1, 3):  # one rotation, then two more between two scrapes
            while len(list(home.glob("history-[0-9]*.jsonl"))) < expected_segments:
                assert (await api.post(f"{API}/models/v1/validate", json={"deep": False})).status_code == 200
                validated += 1
            await api.post(f"{API}/models/v1/validate", json={"deep": False})  # one line in the new segment
            validated += 1
            got = samples_of((await api.get("/metrics")).text)
            assert got[(lifecycle, (("event", "validate"), ("outcome", "passed")))] == validated
            assert got[(lifecycle, (("event", "import"), ("outcome", "ok")))] == 1
            assert got[(lifecycle, (("event", "deploy"), ("outcome", "ok")))] == 1
        assert validated > 30
        # What the trail holds, read whole, agrees with the counters.
        on_disk = sum(p.read_text().count('"event":"validate"') for p in api.manager.history.segments())
        assert on_disk == validated
        # A trail replaced by hand is counted afresh (a counter reset to Prometheus), not added on top.
        for segment in api.manager.history.segments():
            segment.unlink()
        api.manager.history.record("delete", version="v0", outcome="ok")
        got = samples_of((await api.get("/metrics")).text)
        assert {k: v for k, v in got.items() if k[0] == lifecycle} == {
            (lifecycle, (("event", "delete"), ("outcome", "ok"))): 1}
