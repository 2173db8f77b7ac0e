"""Recording off the request path: predict appends to a bounded queue, a writer thread flushes it.

The predict path does one thing: `record()` appends a tuple to an in-memory deque under a lock held
for well under a microsecond (no copy of the rows, no store call). When the queue is full (events or
rows over their bounds) the record is dropped and counted, never waited for.

The writer thread wakes at least once a second (`flush_interval_s`), swaps the queue for an empty
one, folds the events into per-minute and per-hour increments (requests, rows, errors, anomalies,
busy time, a latency histogram, the process's CPU time and resident memory), the recent and
baseline window rows and the request map, and writes them in one transaction. Only a committed
write clears what was pending, so a store that cannot be written (disk full, locked, read-only)
loses nothing until the pending bounds are reached: the problem is logged once, shown as an alert,
and the next cycle tries again, so it recovers by itself. A damaged database file is set aside and
a fresh one started (`monitoring_store_damaged` in the log, naming where the old file went).

A SIGKILL loses what was not yet written: at most the last `flush_interval_s` of figures.

`flush()` makes the writer run a full cycle now and waits for it: reports read their own process's
latest predicts. The thread starts with the first record and ends after `idle_exit_s` without any.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from model_mcp.core.monitoring_store import histogram
from model_mcp.core.monitoring_store.base import (
    HOUR,
    MINUTE,
    Batch,
    BucketRow,
    MonitoringStore,
    RequestRow,
    Retention,
    StoreDamaged,
    StoreError,
    WindowRows,
)
from model_mcp.logs import get_logger

log = get_logger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rss_bytes() -> int:
    """This process's resident memory now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class RecorderStatus:
    problem: str | None = None  # why the store cannot be written now
    problem_since: float | None = None
    problem_last: float | None = None
    dropped: int = 0  # predict records dropped because the queue was full
    dropped_pending: int = 0  # pending items dropped while the store could not be written
    written_events: int = 0
    cycles: int = 0
    last_write: float | None = None
    damaged_moved_to: list[str] = field(default_factory=list)


class Recorder:
    """The bounded queue between predict and the monitoring store, and its writer thread."""

    def __init__(
        self,
        store: MonitoringStore,
        *,
        retention: Retention = Retention(),
        flush_interval_s: float = 1.0,
        max_queue_events: int = 100_000,
        max_queue_rows: int = 500_000,
        max_pending_requests: int = 50_000,
        prune_interval_s: float = 10.0,
        idle_exit_s: float = 10.0,
        on_problem: Callable[[str | None], None] | None = None,
    ) -> None:
        self.store = store
        self.retention = retention
        self.flush_interval_s = flush_interval_s
        self.max_queue_events = max_queue_events
        self.max_queue_rows = max_queue_rows
        self.max_pending_requests = max_pending_requests
        self.prune_interval_s = prune_interval_s
        self.idle_exit_s = idle_exit_s
        self.on_problem = on_problem
        self.status = RecorderStatus()

        self._lock = threading.Lock()
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queued_rows = 0
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._cycle = threading.Condition()
        self._started_cycles = 0
        self._finished_cycles = 0
        self._closed = False

        # Writer-thread state: increments not yet committed.
        self._buckets: dict[tuple[str, str, int, int], BucketRow] = {}
        self._rows: deque[WindowRows] = deque()
        self._requests: deque[RequestRow] = deque()
        self._baseline_have: dict[tuple[str, str], int] = {}
        self._process: int | None = None
        self._started_at = _iso(time.time())
        self._cpu_mark = time.process_time()
        self._last_prune = 0.0
        _LIVE.add(self)

    # --- the predict path ---------------------------------------------------------------------------
    def record(self, version: str, deployment: str, request_id: str, X: np.ndarray, labels: np.ndarray,
               scores: np.ndarray | None, anomalies: int | None, seconds: float) -> None:
        """One answered predict. Never blocks on the store; drops (counted) when the queue is full."""
        n = X.shape[0]
        with self._lock:
            if len(self._queue) >= self.max_queue_events or self._queued_rows + n > self.max_queue_rows:
                self.status.dropped += 1
                return
            self._queue.append((time.time(), version, deployment, request_id, X, labels, scores, anomalies, seconds))
            self._queued_rows += n
            if self._thread is None:
                self._start()

    def record_error(self, version: str, deployment: str) -> None:
        """One predict that failed (invalid input)."""
        with self._lock:
            if len(self._queue) >= self.max_queue_events:
                self.status.dropped += 1
                return
            self._queue.append((time.time(), version, deployment, None, None, None, None, None, None))
            if self._thread is None:
                self._start()

    def _start(self) -> None:  # under self._lock
        if self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="monitoring-writer", daemon=True)
        self._thread.start()

    # --- flushing on demand ---------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Write what was recorded so far; True when a whole writer cycle ran after this call."""
        with self._lock:
            if self._thread is None:
                if not self._queue and not self._pending():
                    return True
                self._start()
        with self._cycle:
            target = self._started_cycles + 1
            self._wake.set()
            return self._cycle.wait_for(lambda: self._finished_cycles >= target, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending and stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    # --- the writer thread ------------------------------------------------------------------------------
    def _pending(self) -> bool:
        return bool(self._buckets or self._rows or self._requests)

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            with self._cycle:
                self._started_cycles += 1
            try:
                with self._lock:
                    events, self._queue = self._queue, deque()
                    self._queued_rows = 0
                if events:
                    idle_since = time.monotonic()
                    self._fold(events)
                self._write()
            except Exception:  # the writer must survive anything; the log says what
                log.error("monitoring_writer_failed", exc_info=True)
            finally:
                with self._cycle:
                    self._finished_cycles += 1
                    self.status.cycles += 1
                    self._cycle.notify_all()
            with self._lock:
                idle = time.monotonic() - idle_since > self.idle_exit_s
                if (self._closed or idle) and not self._queue and (not self._pending() or self._closed):
                    self._thread = None
                    return

    def _fold(self, events: deque[tuple[Any, ...]]) -> None:
        """Turn queued events into bucket increments, window rows and request rows."""
        window_rows = self.retention.window_rows
        for at, version, deployment, request_id, X, labels, scores, anomalies, seconds in events:
            minute = int(at) // MINUTE * MINUTE
            hour = minute // HOUR * HOUR
            buckets = (self._bucket(version, deployment, MINUTE, minute), self._bucket(version, deployment, HOUR, hour))
            if X is None:
                for b in buckets:
                    b.errors += 1
                continue
            n = X.shape[0]
            latency_bin = histogram.bin_of(seconds * 1000.0)
            for b in buckets:
                b.requests += 1
                b.rows += n
                b.busy_s += seconds
                if anomalies is not None:
                    b.flagged_rows += n
                    b.anomalies += anomalies
                b.latency[latency_bin] += 1
            int_labels = labels if labels.dtype == np.int64 else None
            self._requests.append(RequestRow(request_id=request_id, version=version, deployment=deployment, at=at,
                                             n_rows=n, labels=int_labels))
            tail = slice(max(0, n - window_rows), n)
            self._rows.append(WindowRows(version, deployment, "recent", at, X[tail],
                                         None if scores is None else scores[tail],
                                         None if int_labels is None else int_labels[tail]))
            need = self._baseline_needed(version, deployment)
            if need > 0:
                head = slice(0, min(need, n))
                self._rows.append(WindowRows(version, deployment, "baseline", at, X[head],
                                             None if scores is None else scores[head],
                                             None if int_labels is None else int_labels[head]))
                self._baseline_have[(version, deployment)] += head.stop
        self.status.written_events += len(events)
        self._bound_pending()

    def _bucket(self, version: str, deployment: str, grain: int, start: int) -> BucketRow:
        key = (version, deployment, grain, start)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = BucketRow(grain=grain, start=start, version=version, deployment=deployment,
                                                    latency=histogram.empty())
        return bucket

    def _baseline_needed(self, version: str, deployment: str) -> int:
        key = (version, deployment)
        if key not in self._baseline_have:
            try:
                self._baseline_have[key] = self.store.window_count(version, deployment, "baseline")
            except StoreError:
                self._baseline_have[key] = 0
        return self.retention.baseline_rows - self._baseline_have[key]

    def _bound_pending(self) -> None:
        """While the store cannot be written, keep at most the bounds; drop the oldest, counted."""
        rows = sum(block.X.shape[0] for block in self._rows)
        limit = 2 * (self.retention.window_rows + self.retention.baseline_rows)
        while rows > limit and len(self._rows) > 1:
            rows -= self._rows.popleft().X.shape[0]
            self.status.dropped_pending += 1
        while len(self._requests) > self.max_pending_requests:
            self._requests.popleft()
            self.status.dropped_pending += 1
        minutes = [key for key in self._buckets if key[2] == MINUTE]
        if len(minutes) > 2 * 24 * 60:  # two days of minutes held in memory at most
            for key in sorted(minutes, key=lambda k: k[3])[: len(minutes) - 2 * 24 * 60]:
                del self._buckets[key]
                self.status.dropped_pending += 1

    def _write(self) -> None:
        now = time.time()
        for attempt in range(2):  # a damaged file is set aside, and the write goes to the fresh one at once
            try:
                self._write_once(now)
            except StoreDamaged as exc:
                self._damaged(str(exc))
                if attempt:
                    self._unwritable(f"damaged again after a fresh start: {exc}", now)
                continue
            except StoreError as exc:
                self._unwritable(str(exc), now)
            else:
                if self.status.problem is not None:
                    self._recovered(now)
            return

    def _write_once(self, now: float) -> None:
        self.store.check_file()
        if self._process is None and (self._pending() or self.status.problem):
            self.store.quick_check()  # once per store this process writes to: damage found before writing
            self._process = self.store.register_process(pid=os.getpid(), host=socket.gethostname(),
                                                        started_at=self._started_at)
        if self._pending():
            self._attribute_resources()
            batch = Batch(buckets=list(self._buckets.values()), rows=list(self._rows), requests=list(self._requests))
            assert self._process is not None
            self.store.write(batch, process=self._process, now=_iso(now))
            self._buckets.clear()
            self._rows.clear()
            self._requests.clear()
            self.status.last_write = now
        if now - self._last_prune >= self.prune_interval_s:
            removed = self.store.prune(self.retention, now=now)
            self._last_prune = now
            if any(removed.values()):
                log.debug("monitoring_store_pruned", **removed)

    def _attribute_resources(self) -> None:
        """The process's CPU time since the last write and its resident memory, to this write's newest buckets."""
        cpu = time.process_time()
        spent, self._cpu_mark = cpu - self._cpu_mark, cpu
        rss = rss_bytes()
        for grain in (MINUTE, HOUR):
            newest = max((b for b in self._buckets.values() if b.grain == grain), key=lambda b: (b.start, b.requests),
                         default=None)
            if newest is not None:
                newest.cpu_s += spent
                newest.rss_bytes = max(newest.rss_bytes, rss)

    def _unwritable(self, problem: str, now: float) -> None:
        status = self.status
        if status.problem is None:
            status.problem_since = now
            log.error("monitoring_store_unwritable", problem=problem, path=str(getattr(self.store, "path", "")),
                      detail="predicts go on; figures wait in memory (bounded) and are written when it recovers")
            if self.on_problem is not None:
                self.on_problem(problem)
        status.problem = problem
        status.problem_last = now

    def _damaged(self, problem: str) -> None:
        try:
            moved_to = self.store.set_aside_damaged()
        except OSError as exc:
            self._unwritable(f"damaged ({problem}) and could not be set aside: {exc}", time.time())
            return
        self._process = None
        self._baseline_have.clear()
        if moved_to:
            self.status.damaged_moved_to.append(moved_to)
        log.error("monitoring_store_damaged", problem=problem, moved_to=moved_to,
                  detail="the damaged file was kept aside and a fresh monitoring store is started")

    def _recovered(self, now: float) -> None:
        status = self.status
        log.info("monitoring_store_recovered", problem=status.problem,
                 unwritable_s=round(now - (status.problem_since or now), 1))
        problem, status.problem = status.problem, None
        if self.on_problem is not None:
            self.on_problem(None)
        self._log_episode(problem or "", status.problem_since or now, status.problem_last or now)
        status.problem_since = status.problem_last = None

    def _log_episode(self, problem: str, since: float, last: float) -> None:
        """Write the ended unwritable episode to the alert log, now that the store takes writes again."""
        from model_mcp.core.alerts import store_alert

        try:
            self.store.raise_alerts([store_alert(problem)], version=None, kinds=("monitoring_store",), now=_iso(since))
            if last > since:
                self.store.raise_alerts([store_alert(problem)], version=None, kinds=("monitoring_store",),
                                        now=_iso(last))
            self.store.raise_alerts([], version=None, kinds=("monitoring_store",), now=_iso(time.time()))
        except StoreError:
            log.warning("monitoring_alert_not_logged", exc_info=True)


# Recorders still alive at interpreter exit write what they hold (the writer is a daemon thread,
# which exit would otherwise cut off): an operator command or a stdio server ending normally loses
# nothing. Weak, so that a recorder nobody uses any more is not kept alive for this.
_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for recorder in list(_LIVE):
        try:
            recorder.close(timeout=5.0)
        except Exception:  # exit must go on
            pass
