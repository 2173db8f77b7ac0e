"""The monitoring store through real MCP clients: restarts, a second server process, alerts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mcp import Client

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.core.monitor_check import BackgroundCheck
from model_mcp.server import build_server
from model_mcp.settings import Settings
from tests.helpers import call, call_error
from tests.reliability.serverproc import NO_PROBE, ServerProcess

pytestmark = pytest.mark.anyio


def _manager(home: Path, **overrides) -> ModelManager:
    manager = ModelManager(Settings(home=home, isolated_probe=False, **overrides))
    manager.start()
    return manager


async def _deploy(client, packages, version: str = "v1", **kwargs) -> None:
    await call(client, "import_zip", path=str(packages(version=version, n_samples=5000, **kwargs)))
    await call(client, "deploy", version=version)


async def test_every_monitoring_tool_answers_from_the_store_after_a_restart(home, packages):
    first = _manager(home)
    async with Client(build_server(first)) as client:
        await _deploy(client, packages)
        answers = [await call(client, "predict", rows=samples.sample_rows(50, seed=s)) for s in range(3)]
        await call_error(client, "predict", rows=[[1.0]])
    first.close()

    second = _manager(home)  # a fresh server on the same home: nothing in its memory
    assert second.runtime.current is None
    async with Client(build_server(second)) as client:
        report = await call(client, "performance_report")
        assert (report["n_requests"], report["n_rows"], report["n_errors"]) == (3, 150, 1)
        assert report["latency_ms"]["p50"] > 0 and len(report["processes"]) == 1
        assert "monitoring store" in report["covers"] and "since its deploy" in report["covers"]
        assert sum(point["requests"] for point in report["series"]) == 3
        drift = await call(client, "drift_report")
        assert drift["current_source"] == "recent_window" and drift["n_current"] == 150
        feedback = await call(client, "record_feedback", request_id=answers[0]["request_id"], labels=[1] * 50)
        assert feedback["n_labels"] == 50 and feedback["n_labelled_total"] == 50
        alerts = await call(client, "get_alerts")
        assert isinstance(alerts["alerts"], list)
    second.close()
    # The labels too survive a restart.
    third = _manager(home)
    async with Client(build_server(third)) as client:
        feedback = await call(client, "record_feedback", request_id=answers[1]["request_id"], labels=[-1] * 50)
        assert feedback["n_labelled_total"] == 100
    third.close()


async def test_a_second_server_process_shares_figures_windows_and_requests(home, packages, tmp_path):
    ours = _manager(home)
    async with Client(build_server(ours)) as client:
        await _deploy(client, packages)
        mine = await call(client, "predict", rows=samples.sample_rows(40, seed=1))
        # Our recorder writes about once a second; on a loaded machine the other process may read
        # before that tick, so our request is written now (the other's report flushes its own).
        assert ours.recorder.flush()
        log = open(tmp_path / "other.log", "wb")
        other = ServerProcess.spawn(home, stderr=log, env=NO_PROBE)
        try:
            other.initialize()
            theirs = [other.call("predict", rows=samples.sample_rows(40, seed=10 + i)) for i in range(2)]
            assert not any(answer.is_error for answer in theirs)
            # The other process answered before its last write: performance_report there flushes it.
            assert other.call("performance_report").structured["n_requests"] == 3
            report = await call(client, "performance_report")
            assert report["n_requests"] == 3 and report["n_rows"] == 120
            assert {p["pid"] for p in report["processes"]} == {other.pid, __import__("os").getpid()}
            drift = await call(client, "drift_report")
            assert drift["n_current"] == 120
            # Feedback for a request the other process answered, and the other way round.
            request_id = theirs[0].structured["request_id"]
            assert (await call(client, "record_feedback", request_id=request_id, labels=[1] * 40))["n_labels"] == 40
            answer = other.call("record_feedback", request_id=mine["request_id"], labels=[1] * 40)
            assert not answer.is_error and answer.structured["n_labelled_total"] == 80
        finally:
            other.close()
            log.close()
    ours.close()


async def test_the_span_arguments_choose_what_the_report_covers(client, packages):
    await _deploy(client, packages)
    for seed in range(4):
        await call(client, "predict", rows=samples.sample_rows(5, seed=seed))
    report = await call(client, "performance_report", bucket_s=300)
    assert report["bucket_s"] == 300 and report["n_requests"] == 4
    (point,) = report["series"] if len(report["series"]) == 1 else report["series"][-1:]
    assert set(point) == {"start", "requests", "rows", "errors", "latency_p50_ms", "latency_p95_ms", "anomaly_rate",
                          "cpu_s", "rss_mb"}
    empty = await call(client, "performance_report", since="2020-01-01T00:00:00Z", until="2020-01-02T00:00:00Z")
    assert empty["n_requests"] == 0 and empty["series"] == [] and empty["processes"] == []
    wide = await call(client, "performance_report", since="2020-01-01T00:00:00Z")
    assert wide["n_requests"] == 4 and wide["bucket_s"] > 60 and "widened" in wide["covers"]
    for arguments in ({"bucket_s": 90}, {"bucket_s": 0}, {"since": "yesterday"},
                      {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}):
        code, _ = await call_error(client, "performance_report", **arguments)
        assert code == "invalid_input", arguments


async def test_the_background_check_keeps_alerts_with_memory(manager, packages):
    async with Client(build_server(manager)) as client:
        await _deploy(client, packages)
        for _ in range(19):
            await call(client, "predict", rows=samples.sample_rows(2))
        for _ in range(3):
            await call_error(client, "predict", rows=[["x"] * 8])
        check = BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000)
        found = check.run_once()
        assert found["operational_alerts"] == ["error_rate:critical"]
        check.run_once()
        (alert,) = (await call(client, "get_alerts", active_only=True))["alerts"]
        assert alert["kind"] == "error_rate" and alert["severity"] == "critical" and alert["version"] == "v1"
        assert alert["count"] == 2 and alert["active"] is True and alert["action"]
        assert alert["first_seen"] <= alert["last_seen"]
        assert (await call(client, "get_alerts", severity="info"))["alerts"] == []
        assert (await call(client, "get_alerts", version="v2"))["alerts"] == []
        code, _ = await call_error(client, "get_alerts", limit=0)
        assert code == "invalid_input"
        resource = await client.read_resource("models://alerts")
        listed = json.loads(resource.contents[0].text)
        assert [a["id"] for a in listed["alerts"]] == [alert["id"]]


async def test_the_background_check_finds_a_drift_no_one_asked_about(manager, packages):
    async with Client(build_server(manager)) as client:
        await _deploy(client, packages)
        X = samples.training_data(n_samples=1000, seed=5)
        X[:, :6] += 1.5
        for start in range(0, 1000, 250):
            await call(client, "predict", rows=X[start:start + 250].tolist())
        found = BackgroundCheck(manager, interval_s=3600, drift_min_rows=500).run_once()
        assert found["drift"]["dataset_drift"] is True
        alerts = (await call(client, "get_alerts", active_only=True))["alerts"]
        assert "feature_drift" in {a["kind"] for a in alerts}
    summaries = manager.monitor.drift_summaries("v1", 10)
    assert summaries and summaries[0]["dataset_drift"] is True and summaries[0]["n_current"] == 1000
    manager.close()


def test_a_stdio_server_exiting_normally_writes_what_it_recorded(home, packages, tmp_path):
    writer = _manager(home)
    writer.import_zip(path=str(packages(version="v1")))
    writer.deploy(version="v1")
    writer.close()
    server = ServerProcess.spawn(home, env={**NO_PROBE, "MODEL_MCP_MONITOR_CHECK_INTERVAL_S": "0"},
                                 stderr=subprocess.DEVNULL)
    server.initialize()
    for seed in range(5):
        assert not server.call("predict", rows=samples.sample_rows(3, seed=seed)).is_error
    assert server.close() == 0
    reader = _manager(home)
    assert reader.performance_report().n_requests == 5
    X, _, _ = reader.monitor.window("v1", reader.read_registry().deployed.deployed_at, "recent", 100)
    assert X.shape == (15, 8) and np.isfinite(X).all()


async def test_subscribers_of_the_alert_resource_hear_of_a_new_alert(manager, packages):
    import anyio

    async with Client(build_server(manager)) as client:
        await _deploy(client, packages)
        for _ in range(19):
            await call(client, "predict", rows=samples.sample_rows(2))
        for _ in range(3):
            await call_error(client, "predict", rows=[["x"] * 8])
        async with client.listen(resource_subscriptions=["models://alerts"]) as subscription:
            await anyio.to_thread.run_sync(BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000).run_once)
            with anyio.fail_after(30):
                event = await subscription.__anext__()
        assert event.uri == "models://alerts"
        listed = json.loads((await client.read_resource("models://alerts")).contents[0].text)
        assert listed["alerts"][0]["kind"] == "error_rate"


async def test_the_alert_log_is_read_after_a_restart_and_from_another_process(home, packages, tmp_path):
    first = _manager(home)
    async with Client(build_server(first)) as client:
        await _deploy(client, packages)
        for _ in range(19):
            await call(client, "predict", rows=samples.sample_rows(2))
        for _ in range(3):
            await call_error(client, "predict", rows=[["x"] * 8])
        BackgroundCheck(first, interval_s=3600, drift_min_rows=10_000).run_once()
    first.close()
    second = _manager(home)
    async with Client(build_server(second)) as client:
        (alert,) = (await call(client, "get_alerts"))["alerts"]
        assert alert["kind"] == "error_rate" and alert["active"]
    second.close()
    other = ServerProcess.spawn(home, env=NO_PROBE, stderr=subprocess.DEVNULL)
    try:
        other.initialize()
        answer = other.call("get_alerts", active_only=True)
        assert [a["id"] for a in answer.structured["alerts"]] == [alert["id"]], answer.text
    finally:
        other.close()


async def test_the_drift_reports_resource_keeps_the_reports_on_the_serving_inputs(make_settings, packages):
    manager = ModelManager(make_settings(isolated_probe=False, monitor_check_interval_s=0))  # either store backend
    manager.start()
    async with Client(build_server(manager)) as client:
        await _deploy(client, packages)
        await call(client, "predict", rows=samples.sample_rows(200, seed=3))
        first = await call(client, "drift_report")
        await call(client, "drift_report", current=samples.sample_rows(50, seed=4))  # rows sent: not kept
        shifted = (samples.training_data(200, seed=9) + 3.0).tolist()
        await call(client, "predict", rows=shifted)
        second = await call(client, "drift_report")
        read = json.loads((await client.read_resource("models://v1/drift")).contents[0].text)
        assert read["version"] == "v1" and read["stored"] is True
        kept = read["reports"]
        assert [r["at"] for r in kept] == [second["generated_at"], first["generated_at"]]  # newest first
        for summary, report in zip(kept, (second, first), strict=True):
            assert summary["drifted_features"] == report["drifted_features"]
            assert (summary["dataset_drift"], summary["share_drifted"], summary["n_current"]) == (
                report["dataset_drift"], report["share_drifted"], report["n_current"])
            assert summary["alerts"] == [{"kind": a["kind"], "severity": a["severity"]} for a in report["alerts"]]
        assert kept[0]["dataset_drift"] and not kept[1]["dataset_drift"]
        with pytest.raises(Exception) as caught:
            await client.read_resource("models://nope/drift")
        assert "[not_found]" in str(caught.value)
    manager.close()

    without_store = ModelManager(make_settings(isolated_probe=False, monitor_store=False))
    without_store.start()
    async with Client(build_server(without_store)) as client:
        read = json.loads((await client.read_resource("models://v1/drift")).contents[0].text)
        assert read == {"version": "v1", "stored": False, "reports": []}
    without_store.close()


async def test_a_server_ended_by_its_host_writes_its_last_figures(home, packages, tmp_path):
    """A stdio server ends when its host closes stdin: the figures its recorder still held (written
    about once a second) are written before it exits (serve closes the manager; the recorder's exit
    hook is the second line of defence), not lost with the process."""
    setup = _manager(home)
    async with Client(build_server(setup)) as client:
        await _deploy(client, packages)
    setup.close()
    with open(tmp_path / "server.log", "wb") as log:
        server = ServerProcess.spawn(home, stderr=log, env=NO_PROBE)
        server.initialize()
        answers = [server.call("predict", rows=samples.sample_rows(7, seed=i)) for i in range(5)]
        assert not any(answer.is_error for answer in answers)
        assert server.close() == 0  # at once: no tick of the recorder's writer need have come
    reader = _manager(home)
    async with Client(build_server(reader)) as client:
        report = await call(client, "performance_report")
        assert (report["n_requests"], report["n_rows"]) == (5, 35)
    reader.close()
