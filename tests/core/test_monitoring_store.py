"""The monitoring store and its recorder on a real SQLite file in tmp_path, and the same tests on a real
PostgreSQL database (tests/postgres.py: skipped without MODEL_MCP_TEST_POSTGRES_URL, required in CI).
No MCP, no model."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from model_mcp.core.alerts import Alert
from model_mcp.core.monitoring_store import MonitoringStore, histogram, open_store
from model_mcp.core.monitoring_store.base import HOUR, MINUTE, Batch, BucketRow, Retention, StoreUnavailable
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


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], MonitoringStore]]:
    """Opens another store object on the same data, as another process would: the home's
    monitoring.db, or the test's PostgreSQL database."""
    opened: list[MonitoringStore] = []

    if request.param == "sqlite":
        def make() -> MonitoringStore:
            opened.append(SQLiteMonitoringStore(tmp_path))
            return opened[-1]
    else:
        url = request.getfixturevalue("pg_url")

        def make() -> MonitoringStore:
            opened.append(open_store(tmp_path, url))
            return opened[-1]

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: Callable[[], MonitoringStore]) -> MonitoringStore:
    return make_store()


def test_the_store_is_created_at_first_use_in_wal_mode_with_its_schema_version(tmp_path: Path) -> None:
    store = SQLiteMonitoringStore(tmp_path)
    assert not (tmp_path / "monitoring.db").exists()
    assert store.window_count("v1", "d1", "recent") == 0
    with sqlite3.connect(tmp_path / "monitoring.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_figures_survive_a_restart_and_add_up_across_processes(make_store) -> None:
    first = Recorder(make_store())
    _record(first, 30, seed=1)
    first.record_error("v1", "d1")
    first.close()
    # A second "process" (its own store object and recorder) on the same home, later.
    second_store = make_store()
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


def test_windows_keep_the_last_rows_and_the_first_rows_after_deploy(store) -> None:
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


def test_requests_and_feedback_are_found_by_another_process(make_store) -> None:
    writer = Recorder(make_store())
    ids = _record(writer, 5, rows=4, seed=5)
    writer.close()
    reader = make_store()
    request = reader.request(ids[2])
    assert request is not None and request.n_rows == 4 and request.deployment == "d1"
    assert set(request.labels.tolist()) <= {-1, 1}
    assert reader.request("f" * 32) is None
    truth = np.array([1, -1, 1, 1])
    assert reader.record_feedback(request, truth, now=time.time(), max_rows=100) == 4
    assert reader.record_feedback(request, truth, now=time.time(), max_rows=100) == 4  # replaced, not added
    other = reader.request(ids[3])
    assert reader.record_feedback(other, truth, now=time.time() + 1, max_rows=5) == 4  # the oldest went
    y_true, y_pred = make_store().labelled("v1", "d1")
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


def test_a_full_queue_drops_and_counts_instead_of_waiting(store) -> None:
    recorder = Recorder(store, max_queue_events=5, flush_interval_s=60)
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


# --- PostgreSQL only -------------------------------------------------------------------------------------
def test_postgresql_schema_comes_from_the_versioned_migrations_applied_once(pg_url: str, tmp_path: Path) -> None:
    from model_mcp.core import pg
    from tests.postgres import query

    first, second = open_store(tmp_path, pg_url), open_store(tmp_path, pg_url)
    assert first.window_count("v1", "d1", "recent") == 0 and second.window_count("v1", "d1", "baseline") == 0
    applied = query(pg_url, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(n, name) for n, name, _ in pg.migrations()] == applied and len(applied) >= 1
    first.close()
    second.close()


def test_postgresql_migrations_from_several_processes_at_once_apply_each_file_once(pg_url: str) -> None:
    import subprocess
    import sys

    from tests.postgres import query

    code = "import sys; from model_mcp.core import pg; print(pg.migrate(pg.connect(sys.argv[1], migrate_schema=False)))"
    children = [subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, text=True)
                for _ in range(3)]
    outputs = [child.communicate(timeout=60)[0].strip().splitlines()[-1] for child in children]
    assert all(child.returncode == 0 for child in children)
    from model_mcp.core import pg

    everything = str([n for n, _, _ in pg.migrations()])
    assert sorted(outputs, key=len) == ["[]", "[]", everything], outputs  # one applied them all, the others none
    assert query(pg_url, "SELECT count(*) FROM schema_migrations")[0][0] == len(pg.migrations())


def test_postgresql_alerts_from_replicas_at_once_keep_one_open_episode(pg_url: str, tmp_path: Path) -> None:
    import threading

    stores = [open_store(tmp_path, pg_url) for _ in range(4)]
    alert = Alert(kind="error_rate", severity="warning", message="m", action="a", version="v1")
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def evaluate(s: MonitoringStore) -> None:
        try:
            barrier.wait()
            for i in range(10):
                s.raise_alerts([alert], version="v1", kinds=("error_rate",), now=f"2026-01-01T00:00:{i:02d}Z")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    (episode,) = stores[0].alerts(version="v1")
    assert episode.active and episode.count == 40
    for s in stores:
        s.close()


def test_postgresql_unreachable_is_unavailable_then_recovers_by_itself(pg_relay, tmp_path: Path) -> None:
    relay, url = pg_relay
    store = open_store(tmp_path, url)
    problems: list[str | None] = []
    recorder = Recorder(store, on_problem=problems.append)
    _record(recorder, 2, seed=9)
    recorder.flush()
    assert recorder.status.problem is None
    relay.stop()  # the database goes away: open connections cut, new ones refused
    with pytest.raises(StoreUnavailable, match="unavailable"):
        store.window_count("v1", "d1", "recent")
    _record(recorder, 4, seed=10)
    recorder.flush()
    assert recorder.status.problem is not None and problems[-1] == recorder.status.problem
    relay.start()  # it comes back on the same address
    recorder.flush()
    assert recorder.status.problem is None and problems[-1] is None
    now = time.time()
    assert span_figures(store, "v1", since=now - 600, until=now + 1, bucket_s=60).totals["n_requests"] == 6
    recorder.close()


def test_the_database_url_setting_puts_the_servers_monitoring_store_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from model_mcp.core.manager import ModelManager
    from model_mcp.core.pg.monitoring import PostgresMonitoringStore
    from model_mcp.settings import Settings
    from tests.postgres import query

    settings = Settings.from_env({"MODEL_MCP_HOME": str(tmp_path / "home"), "MODEL_MCP_DATABASE_URL": pg_url})
    assert settings.database_url == pg_url and pg_url not in repr(settings)
    manager = ModelManager(settings)
    manager.start()
    try:
        assert isinstance(manager.monitor, PostgresMonitoringStore)
        _record(manager.recorder, 3, seed=11)
        manager.recorder.flush()
        assert query(pg_url, "SELECT sum(requests) FROM monitoring_buckets WHERE grain = 60")[0][0] == 3
        assert not (tmp_path / "home" / "monitoring.db").exists()
    finally:
        manager.close()
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings.from_env({"MODEL_MCP_HOME": str(tmp_path), "MODEL_MCP_DATABASE_URL": "mysql://x@y/z"})


def test_a_database_url_without_the_driver_installed_is_refused_at_start(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    from pydantic import ValidationError

    from model_mcp.settings import Settings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(ValidationError, match=r"pip install 'model-mcp\[postgresql\]'"):
        Settings.from_env({"MODEL_MCP_HOME": str(tmp_path), "MODEL_MCP_DATABASE_URL": "postgresql://u@h/db"})
