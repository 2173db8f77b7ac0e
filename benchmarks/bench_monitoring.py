"""The monitoring store's cost and capacity, measured in one run.

    python benchmarks/bench_monitoring.py [--sustain-s 60] [--rate 2000]

1. One-row predict through the core, store on vs off, interleaved blocks (a slow moment of the
   machine hits both alike). Two models: a stand-in whose inference costs nothing (so the figure is
   the core's own work, where the recording hook shows most) and a real IsolationForest (100 trees).
   Target: at most +20 microseconds at p50.
2. Sustained one-row predicts at `--rate` a second for `--sustain-s` seconds (stand-in model, one
   thread pacing the calls) with the store on: resident memory sampled every 5 s, the writer's
   queue length at each sample, dropped records, and whether every predict reached the store.
3. performance_report's figures over 30 days of buckets (one version, one process, traffic every
   minute: 43,200 minute rows and 720 hour rows): the default span (since the deploy, 30 days ago;
   bucket_s widened to 3600) and one day at bucket_s=60. Target: under 50 ms.
4. Size on disk per version at the defaults, when full: 30 days of buckets, 5,000 recent and 1,000
   baseline rows of 8 features, 10,000 requests in the request map, 100,000 labelled rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from model_mcp.core.monitoring_store import histogram
from model_mcp.core.monitoring_store.base import HOUR, MINUTE, Batch, BucketRow, RequestRow, WindowRows
from model_mcp.core.monitoring_store.recorder import Recorder, rss_bytes
from model_mcp.core.monitoring_store.report import fitting_bucket_s, span_figures
from model_mcp.core.monitoring_store.sqlite import SQLiteMonitoringStore
from model_mcp.core.runtime import ResidentModel, Runtime

N_FEATURES = 8
ROW = [[0.1] * N_FEATURES]


class FreeModel:
    """A stand-in estimator whose inference costs nothing, to time the core's own work."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.ones(X.shape[0], dtype=np.int64)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(X.shape[0])


def _runtime(estimator: object) -> Runtime:
    runtime = Runtime()
    runtime.install(ResidentModel.create(version="v1", estimator=estimator,
                                         feature_names=[f"f{i}" for i in range(N_FEATURES)]))
    return runtime


def _p50_us(runtime: Runtime, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        runtime.predict(ROW)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def predict_on_off(folder: Path, blocks: int) -> None:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=100, random_state=0).fit(np.random.default_rng(0).normal(size=(2000, 8)))
    print("1. one-row predict through the core, store off vs on (p50 over interleaved blocks)")
    print(f"   {'model':<16}{'off p50 us':>12}{'on p50 us':>12}{'on - off':>10}")
    for name, estimator, per_block in (("stand-in (free)", FreeModel(), 2000), ("IsolationForest", forest, 200)):
        off = _runtime(estimator)
        on = _runtime(estimator)
        store = SQLiteMonitoringStore(folder / name.split()[0])
        on.recorder = Recorder(store)
        _p50_us(off, per_block // 4)
        _p50_us(on, per_block // 4)
        times_off: list[float] = []
        times_on: list[float] = []
        for _ in range(blocks):
            times_off += _p50_us(off, per_block)
            times_on += _p50_us(on, per_block)
        p_off, p_on = statistics.median(times_off), statistics.median(times_on)
        print(f"   {name:<16}{p_off:>12.1f}{p_on:>12.1f}{p_on - p_off:>+10.1f}")
        on.recorder.close()
        store.close()


def sustained(folder: Path, rate: int, seconds: float) -> None:
    runtime = _runtime(FreeModel())
    store = SQLiteMonitoringStore(folder / "sustained")
    recorder = Recorder(store)
    runtime.recorder = recorder
    print(f"\n2. {rate} one-row predicts/s for {seconds:.0f} s (stand-in model), store on")
    print(f"   {'t s':>5}{'rss MB':>9}{'queued':>8}{'dropped':>9}{'behind s':>10}")
    started = time.perf_counter()
    sent = 0
    next_sample = 0.0
    samples = []
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while sent < due:
            runtime.predict(ROW)
            sent += 1
        if elapsed >= next_sample:
            queued = len(recorder._queue)
            last = recorder.status.last_write
            behind = time.time() - last if last else float("nan")
            samples.append(rss_bytes() / 2**20)
            print(f"   {elapsed:>5.0f}{samples[-1]:>9.1f}{queued:>8}{recorder.status.dropped:>9}{behind:>10.2f}")
            next_sample += 5.0
        time.sleep(0.0005)
    achieved = sent / (time.perf_counter() - started)
    flush_started = time.perf_counter()
    recorder.flush()
    flush_s = time.perf_counter() - flush_started
    now = time.time()
    stored = span_figures(store, "v1", since=now - seconds - 120, until=now + 1, bucket_s=60).totals["n_requests"]
    print(f"   sent {sent} ({achieved:.0f}/s), stored {stored}, dropped {recorder.status.dropped}, "
          f"final flush {flush_s * 1000:.0f} ms; rss first/last sample {samples[0]:.1f} / {samples[-1]:.1f} MB")
    recorder.close()
    store.close()


def thirty_days(folder: Path) -> SQLiteMonitoringStore:
    store = SQLiteMonitoringStore(folder / "thirty")
    process = store.register_process(pid=1, host="bench", started_at="2026-01-01T00:00:00Z")
    now = int(time.time())
    deployed = now - 30 * 86400
    rng = np.random.default_rng(1)
    latency = histogram.empty()
    for value in rng.lognormal(0, 0.5, 2000):
        latency[histogram.bin_of(float(value))] += 1
    rows = []
    for start in range(deployed // MINUTE * MINUTE, now, MINUTE):
        rows.append(BucketRow(grain=MINUTE, start=start, version="v1", deployment="d", requests=2000, rows=2000,
                              errors=1, flagged_rows=2000, anomalies=90, busy_s=2.0, cpu_s=1.5,
                              rss_bytes=200 * 2**20, latency=latency.copy()))
    for start in range(deployed // HOUR * HOUR, now, HOUR):
        rows.append(BucketRow(grain=HOUR, start=start, version="v1", deployment="d", requests=120_000,
                              rows=120_000, errors=60, flagged_rows=120_000, anomalies=5400, busy_s=120.0,
                              cpu_s=90.0, rss_bytes=200 * 2**20, latency=latency * 60))
    for i in range(0, len(rows), 5000):
        store.write(Batch(buckets=rows[i:i + 5000]), process=process, now="2026-01-01T00:00:00Z")
    print(f"\n3. performance figures over 30 days of buckets ({len(rows)} rows)")
    for label, since, bucket in (("since deploy (30 days), bucket_s 60", deployed, 60),
                                 ("last day, bucket_s 60", now - 86400, 60)):
        used = fitting_bucket_s(bucket, now - since)
        times = []
        for _ in range(7):
            started = time.perf_counter()
            figures = span_figures(store, "v1", since=since, until=now, bucket_s=used, deployment="d")
            times.append((time.perf_counter() - started) * 1000)
        print(f"   {label:<38} used bucket_s {used:>5}: {statistics.median(times):6.1f} ms median of 7 "
              f"({len(figures.series)} points, {figures.totals['n_requests']} requests)")
    return store


def size_on_disk(store: SQLiteMonitoringStore) -> None:
    process = store.register_process(pid=2, host="bench", started_at="2026-01-01T00:00:00Z")
    rng = np.random.default_rng(2)
    now = time.time()
    X = rng.normal(size=(6000, N_FEATURES))
    blocks = [WindowRows("v1", "d", "recent", now, X[:5000], rng.normal(size=5000), np.ones(5000, dtype=np.int64)),
              WindowRows("v1", "d", "baseline", now, X[5000:], rng.normal(size=1000), np.ones(1000, dtype=np.int64))]
    requests = [RequestRow(uuid.uuid4().hex, "v1", "d", now + i * 1e-3, 1, np.ones(1, dtype=np.int64))
                for i in range(10_000)]
    store.write(Batch(rows=blocks, requests=requests), process=process, now="2026-01-01T00:00:00Z")
    labelled = [RequestRow(uuid.uuid4().hex, "v1", "d", now, 100, np.ones(100, dtype=np.int64)) for _ in range(1000)]
    for i, request in enumerate(labelled):
        store.record_feedback(request, np.ones(100, dtype=np.int64), now=now + i, max_rows=100_000)

    def size(table: str) -> int:
        return store._run("read", lambda c: c.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name = ? OR name IN (SELECT name FROM sqlite_master "
            "WHERE tbl_name = ? AND type = 'index')", (table, table)).fetchone()[0] or 0)

    print("\n4. size on disk per version at the defaults, full")
    total = 0
    for table in ("buckets", "window_rows", "requests", "feedback"):
        found = size(table)
        total += found
        print(f"   {table:<12}{found / 2**20:8.1f} MiB")
    print(f"   {'total':<12}{total / 2**20:8.1f} MiB  (file: {store.path.stat().st_size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sustain-s", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        predict_on_off(root, args.blocks)
        sustained(root, args.rate, args.sustain_s)
        size_on_disk(thirty_days(root))


if __name__ == "__main__":
    main()
