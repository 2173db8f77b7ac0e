"""The monitoring store and its recorder on a real SQLite file in tmp_path: no MCP, no model."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from model_mcp.core.alerts import Alert
from model_mcp.core.monitoring_store import histogram
from model_mcp.core.monitoring_store.base import HOUR, MINUTE, Batch, BucketRow, Retention
from model_mcp.core.monitoring_store.recorder import Recorder
from model_mcp.core.monitoring_store.report import check_bucket_s, fitting_bucket_s, span_figures
from model_mcp.core.monitoring_store.sqlite import SCHEMA_VERSION, SQLiteMonitoringStore
from model_mcp.core.errors import InvalidInputError

D = 3


def _record(recorder: Recorder, n_requests: int, *, version: str = "v1", deployment: str = "d1",
            rows: int = 2, seed: int = 0, latency_s: float = 0.001) -> list[str]:
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n_requests):
        X = rng.normal(size=(rows, D))
        labels = np.where(rng.random(rows) < 0.1, -1, 1).astype(np.int64)
        scores = rng.normal(size=rows)
        request_id = f"{seed:04d}{i:028d}"
        recorder.record(version, deployment, request_id, X, labels, scores, int((labels == -1).sum()),
                        latency_s * (1 + i % 5))
        ids.append(request_id)
    return ids


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteMonitoringStore(tmp_path)
    yield s
    s.close()


def test_the_store_is_created_at_first_use_in_wal_mode_with_its_schema_version(tmp_path: Path, store) -> None:
    assert not (tmp_path / "monitoring.db").exists()
    assert store.window_count("v1", "d1", "recent") == 0
    with sqlite3.connect(tmp_path / "monitoring.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_figures_survive_a_restart_and_add_up_across_processes(tmp_path: Path) -> None:
    first = Recorder(SQLiteMonitoringStore(tmp_path))
    _record(first, 30, seed=1)
    first.record_error("v1", "d1")
    first.close()
    # A second "process" (its own store object and recorder) on the same home, later.
    second_store = SQLiteMonitoringStore(tmp_path)
    second = Recorder(second_store)
    _record(second, 20, seed=2)
    second.close()
    now = time.time()
    figures = span_figures(second_store, "v1", since=now - 600, until=now + 1, bucket_s=60)
    assert figures.totals["n_requests"] == 50 and figures.totals["n_rows"] == 100
    assert figures.totals["n_errors"] == 1
    assert len(figures.process_ids) == 2
    assert sum(p["requests"] for p in figures.series) == 50
    assert 0 <= figures.totals["anomaly_rate"] <= 1
    # Another deployment of the same version is kept apart when asked for.
    assert span_figures(second_store, "v1", since=now - 600, until=now + 1, bucket_s=60,
                        deployment="other").totals["n_requests"] == 0


def test_histogram_percentiles_are_within_one_bin_of_the_exact_ones() -> None:
    rng = np.random.default_rng(3)
    latencies = rng.lognormal(mean=0.0, sigma=1.0, size=20_000)  # ms
    counts = histogram.empty()
    for value in latencies:
        counts[histogram.bin_of(float(value))] += 1
    merged = histogram.empty()
    histogram.add_encoded(merged, histogram.encode(counts))
    assert (merged == counts).all()
    for level, found in zip((50, 95, 99), histogram.percentiles(merged), strict=True):
        exact = float(np.percentile(latencies, level))
        assert abs(found / exact - 1) < 10 ** (1 / histogram.BINS_PER_DECADE) - 1


def test_windows_keep_the_last_rows_and_the_first_rows_after_deploy(tmp_path: Path) -> None:
    store = SQLiteMonitoringStore(tmp_path)
    recorder = Recorder(store, retention=Retention(window_rows=50, baseline_rows=30), prune_interval_s=0)
    _record(recorder, 40, rows=3, seed=4)  # 120 rows
    recorder.flush()
    recorder.flush()  # the prune runs after the write
    X, scores, labels = store.window("v1", "d1", "recent", 50)
    assert X.shape == (50, D) and scores.shape == (50,) and labels.shape == (50,)
    assert store.window_count("v1", "d1", "recent") == 50
    base, _, _ = store.window("v1", "d1", "baseline", 1000)
    assert base.shape == (30, D)
    rng = np.random.default_rng(4)
    first_rows = []
    for _ in range(40):
        first_rows.append(rng.normal(size=(3, D)))
        rng.random(3)
        rng.normal(size=3)
    assert np.array_equal(base, np.vstack(first_rows)[:30])
    assert np.array_equal(X, np.vstack(first_rows)[-50:])
    recorder.close()


def test_requests_and_feedback_are_found_by_another_process(tmp_path: Path) -> None:
    writer = Recorder(SQLiteMonitoringStore(tmp_path))
    ids = _record(writer, 5, rows=4, seed=5)
    writer.close()
    reader = SQLiteMonitoringStore(tmp_path)
    request = reader.request(ids[2])
    assert request is not None and request.n_rows == 4 and request.deployment == "d1"
    assert set(request.labels.tolist()) <= {-1, 1}
    assert reader.request("f" * 32) is None
    truth = np.array([1, -1, 1, 1])
    assert reader.record_feedback(request, truth, now=time.time(), max_rows=100) == 4
    assert reader.record_feedback(request, truth, now=time.time(), max_rows=100) == 4  # replaced, not added
    other = reader.request(ids[3])
    assert reader.record_feedback(other, truth, now=time.time() + 1, max_rows=5) == 4  # the oldest went
    y_true, y_pred = SQLiteMonitoringStore(tmp_path).labelled("v1", "d1")
    assert y_true.tolist() == truth.tolist() and y_pred.tolist() == other.labels.tolist()


def test_alerts_have_memory_and_end_when_no_longer_raised(store) -> None:
    def alert(severity: str) -> Alert:
        return Alert(kind="error_rate", severity=severity, message="m", action="a", version="v1")

    (new,) = store.raise_alerts([alert("warning")], version="v1", kinds=("error_rate",), now="2026-01-01T00:00:00Z")
    assert new.active and new.count == 1
    assert store.raise_alerts([alert("warning")], version="v1", kinds=("error_rate",),
                              now="2026-01-01T00:01:00Z") == []  # seen again: nothing new to tell
    (escalated,) = store.raise_alerts([alert("critical")], version="v1", kinds=("error_rate",),
                                      now="2026-01-01T00:02:00Z")
    assert escalated.id == new.id and escalated.count == 3 and escalated.severity == "critical"
    assert escalated.first_seen == "2026-01-01T00:00:00Z" and escalated.last_seen == "2026-01-01T00:02:00Z"
    (ended,) = store.raise_alerts([], version="v1", kinds=("error_rate",), now="2026-01-01T00:03:00Z")
    assert ended.id == new.id and not ended.active
    (again,) = store.raise_alerts([alert("warning")], version="v1", kinds=("error_rate",),
                                  now="2026-01-01T00:04:00Z")
    assert again.id != new.id and again.count == 1  # a new episode is a new line
    assert [a.id for a in store.alerts(active_only=True)] == [again.id]
    assert len(store.alerts(version="v1")) == 2 and store.alerts(version="v2") == []
    assert [a.id for a in store.alerts(severity="critical")] == [new.id]


def test_retention_prunes_old_buckets_requests_and_ended_alerts(store) -> None:
    now = time.time()
    old = int(now - 40 * 86400) // HOUR * HOUR
    process = store.register_process(pid=1, host="h", started_at="2026-01-01T00:00:00Z")
    batch = Batch(buckets=[BucketRow(grain=g, start=s, version="v1", deployment="d", requests=1,
                                     latency=histogram.empty()) for g, s in ((MINUTE, old), (HOUR, old),
                                                                               (MINUTE, int(now) // 60 * 60))])
    store.write(batch, process=process, now="2026-01-01T00:00:00Z")
    store.raise_alerts([Alert(kind="latency", severity="warning", message="m", version="v1")], version="v1",
                       kinds=("latency",), now="2020-01-01T00:00:00Z")
    store.raise_alerts([], version="v1", kinds=("latency",), now="2020-01-01T00:00:00Z")
    removed = store.prune(Retention(days=30), now=now)
    assert removed["buckets"] == 2 and removed["alerts"] == 1
    assert len(store.bucket_columns("v1", grain=MINUTE, since=0, until=int(now) + 60)) == 1


def test_a_damaged_file_is_set_aside_and_a_fresh_store_started(tmp_path: Path, capsys) -> None:
    (tmp_path / "monitoring.db").write_bytes(b"this is not a database" * 200)
    store = SQLiteMonitoringStore(tmp_path)
    recorder = Recorder(store)
    _record(recorder, 3, seed=6)
    recorder.flush()
    recorder.flush()
    assert recorder.status.damaged_moved_to, "the damaged file was not set aside"
    kept = Path(recorder.status.damaged_moved_to[0])
    assert kept.read_bytes().startswith(b"this is not a database")
    now = time.time()
    assert span_figures(store, "v1", since=now - 600, until=now + 1, bucket_s=60).totals["n_requests"] == 3
    recorder.close()


def test_an_unopenable_store_keeps_figures_in_memory_and_recovers_by_itself(tmp_path: Path) -> None:
    blocker = tmp_path / "monitoring.db"
    blocker.mkdir()  # a folder where the file belongs: SQLite cannot open it
    store = SQLiteMonitoringStore(tmp_path)
    problems: list[str | None] = []
    recorder = Recorder(store, on_problem=problems.append)
    _record(recorder, 4, seed=7)
    recorder.flush()
    assert recorder.status.problem is not None and problems == [recorder.status.problem]
    blocker.rmdir()
    recorder.flush()
    assert recorder.status.problem is None and problems[-1] is None
    now = time.time()
    assert span_figures(store, "v1", since=now - 600, until=now + 1, bucket_s=60).totals["n_requests"] == 4
    (episode,) = store.alerts(version=None)
    assert episode.kind == "monitoring_store" and not episode.active
    recorder.close()


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    recorder = Recorder(SQLiteMonitoringStore(tmp_path), max_queue_events=5, flush_interval_s=60)
    with recorder._lock:  # hold the writer off so that the queue fills
        pass
    recorder._thread = object()  # type: ignore[assignment]  # no writer: nothing drains the queue
    _record(recorder, 8, seed=8)
    assert recorder.status.dropped == 3 and len(recorder._queue) == 5


def test_bucket_widths_are_checked_and_widened_to_fit() -> None:
    assert check_bucket_s(60) == 60 and check_bucket_s(7200) == 7200
    for bad in (0, 30, 90, 5400, True, "60"):
        with pytest.raises(InvalidInputError):
            check_bucket_s(bad)
    assert fitting_bucket_s(60, 86400) == 60
    assert fitting_bucket_s(60, 30 * 86400) == 3600
