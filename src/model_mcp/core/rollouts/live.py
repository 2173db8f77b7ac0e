"""A rollout in one server process: the candidate beside its model's primary.

- **canary**: `routes_to_candidate` sends `traffic_percent` of the model's predict calls to the
  candidate, which answers them (a `routing_key` hashes to the same side every time).
- **shadow**: `offer` hands the rows the primary just answered to a bounded queue; one worker thread
  scores them on the candidate, off the request path, records the candidate's figures (as its own
  deployment, also in the monitoring store) and compares: rows compared, labels that agree, the
  anomalies of each, and the latest score pairs for a rank correlation. Rows the full queue could not
  take are counted (`dropped_rows`) and logged, never waited for.

The comparison is this process's; it is written to the monitoring store every few seconds under
`rollout/<model>/<started_at>/<process>`, so `rollout_report` adds up every process and restart.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from model_mcp.logs import get_logger

log = get_logger(__name__)

QUEUE_ROWS = 50_000  # rows waiting for the shadow at most; more are dropped (counted)
BATCH_ROWS = 512  # rows the shadow scores per call
PAIRS = 2_000  # latest (primary, candidate) score pairs kept for the rank correlation
SAVE_EVERY_S = 2.0
# The shadow scores what accumulated every FLUSH_S (or at once past BATCH_ROWS): one call per
# batch, not per request, so its work (and its hold on the GIL) stays a small share of the primary's.
FLUSH_S = 0.05
_PROCESS: tuple[int, str] | None = None


def process_key() -> str:
    """This process's part of a state key: host, pid and start, taken in this process (a forked
    child gets its own, not its parent's)."""
    global _PROCESS
    if _PROCESS is None or _PROCESS[0] != os.getpid():
        _PROCESS = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}")
    return _PROCESS[1]


def state_prefix(model_name: str, started_at: str) -> str:
    return f"rollout/{model_name}/{started_at}/"


class LiveRollout:
    def __init__(self, *, model_name: str, mode: str, deployment: Any, primary_version: str, started_at: str,
                 traffic_percent: int | None, recorder: Any = None,
                 save_state: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.model_name = model_name
        self.mode = mode
        self.deployment = deployment  # runtime._Deployment of the candidate: its own figures
        self.version: str = deployment.resident.version
        self.primary_version = primary_version
        self.started_at = started_at
        self.traffic_percent = traffic_percent or 0
        self.recorder = recorder
        self.save_state = save_state
        self._queue: deque[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._saved_at = 0.0
        self._busy = False
        self._flush_now = False
        # The comparison (shadow): counters and the latest score pairs.
        self.compared_rows = 0
        self.agreeing_rows = 0
        self.primary_anomalies = 0
        self.candidate_anomalies = 0
        self.flagged_rows = 0  # compared rows where both give anomaly flags
        self.dropped_rows = 0
        self.shadow_errors = 0
        self._pairs = np.zeros((PAIRS, 2), dtype=np.float64)
        self._n_pairs = 0

    # --- canary ------------------------------------------------------------------------------------
    def routes_to_candidate(self, routing_key: str | None) -> bool:
        if self.traffic_percent <= 0:
            return False
        if routing_key is None:
            return random.random() * 100 < self.traffic_percent
        digest = hashlib.blake2b(f"{self.model_name}\0{routing_key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % 100 < self.traffic_percent

    # --- shadow ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.mode == "shadow" and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"shadow-{self.version}", daemon=True)
            self._thread.start()

    def offer(self, X: np.ndarray, labels: np.ndarray, scores: np.ndarray | None) -> None:
        """Queue rows the primary answered; never blocks (a full queue drops and counts them)."""
        n = X.shape[0]
        with self._lock:
            if self._stop:
                return
            if self._queued_rows + n > QUEUE_ROWS:
                self.dropped_rows += n
                first = self.dropped_rows == n
            else:
                self._queue.append((X, labels, scores))
                self._queued_rows += n
                if self._queued_rows >= BATCH_ROWS:
                    self._wake.notify()  # a full batch; fewer rows wait for the worker's next round
                return
        if first:  # logged once per rollout and process; the count is in rollout_report
            log.warning("shadow_queue_full", model_name=self.model_name, version=self.version, queue_rows=QUEUE_ROWS)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the shadow (rows still queued are scored first, within `timeout`) and save the comparison."""
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self.save(force=True)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until the queue is empty (tests and reports that want every offered row compared)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queue and not self._busy:
                    return
                self._flush_now = True
                self._wake.notify()
            time.sleep(0.005)

    def _take(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None:
        """The next batch; [] after an idle wait (time to save); None once stopped and empty."""
        with self._lock:
            if self._queued_rows < BATCH_ROWS and not self._stop and not self._flush_now:
                # With rows queued, a round every FLUSH_S; idle, every SAVE_EVERY_S (rows offered meanwhile
                # wait at most that long: the shadow is off the request path; a report flushes at once).
                self._wake.wait(FLUSH_S if self._queue else SAVE_EVERY_S)
            self._flush_now = False
            if not self._queue:
                return None if self._stop else []
            batch, rows = [], 0
            while self._queue and rows < BATCH_ROWS:
                item = self._queue.popleft()
                batch.append(item)
                rows += item[0].shape[0]
            self._queued_rows -= rows
            self._busy = True
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                if batch:
                    self._score(batch)
            except Exception:  # the shadow must never stop the primary; its failure is counted
                log.error("shadow_failed", model_name=self.model_name, version=self.version, exc_info=True)
            finally:
                with self._lock:
                    self._busy = False
            self.save()

    def _score(self, batch: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
        X = np.concatenate([item[0] for item in batch])
        primary_labels = np.concatenate([item[1] for item in batch])
        primary_scores = None if any(item[2] is None for item in batch) else np.concatenate([item[2] for item in batch])
        resident = self.deployment.resident
        started = time.perf_counter()
        try:
            labels, scores, path = resident.score(X)
        except Exception:
            self.deployment.record_error()
            self.shadow_errors += 1
            if self.recorder is not None:
                self.recorder.record_error(resident.version, resident.deployed_at)
            raise
        seconds = time.perf_counter() - started
        flagged = resident.anomaly_flags and labels.dtype == np.int64
        anomalies = int(np.count_nonzero(labels == -1)) if flagged else None
        self.deployment.record(X, labels, scores, anomalies, seconds, path)
        if self.recorder is not None:
            self.recorder.record(resident.version, resident.deployed_at, "shadow-" + uuid.uuid4().hex, X, labels,
                                 scores, anomalies, seconds)
        self._compare(primary_labels, primary_scores, labels, scores, both_flag=flagged)

    def _compare(self, p_labels: np.ndarray, p_scores: np.ndarray | None, c_labels: np.ndarray,
                 c_scores: np.ndarray | None, *, both_flag: bool) -> None:
        n = int(c_labels.shape[0])
        same = p_labels.shape == c_labels.shape and p_labels.dtype.kind == c_labels.dtype.kind
        agree = int(np.count_nonzero(p_labels == c_labels)) if same else 0
        with self._lock:
            self.compared_rows += n
            self.agreeing_rows += agree
            if both_flag and p_labels.dtype == np.int64:
                self.flagged_rows += n
                self.primary_anomalies += int(np.count_nonzero(p_labels == -1))
                self.candidate_anomalies += int(np.count_nonzero(c_labels == -1))
            if p_scores is not None and c_scores is not None:
                pairs = np.column_stack([p_scores, c_scores])[-PAIRS:]
                k = pairs.shape[0]
                at = self._n_pairs % PAIRS
                first = min(k, PAIRS - at)
                self._pairs[at:at + first] = pairs[:first]
                self._pairs[:k - first] = pairs[first:]
                self._n_pairs += k

    def comparison(self) -> dict[str, Any]:
        """This process's comparison, JSON-ready (what is saved to the store)."""
        with self._lock:
            n = min(self._n_pairs, PAIRS)
            pairs = self._pairs[:n].tolist()
            return {"version": self.version, "primary_version": self.primary_version, "mode": self.mode,
                    "compared_rows": self.compared_rows, "agreeing_rows": self.agreeing_rows,
                    "flagged_rows": self.flagged_rows, "primary_anomalies": self.primary_anomalies,
                    "candidate_anomalies": self.candidate_anomalies, "dropped_rows": self.dropped_rows,
                    "queued_rows": self._queued_rows, "shadow_errors": self.shadow_errors, "pairs": pairs}

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.save_state is None or self.mode != "shadow" or (not force and now - self._saved_at < SAVE_EVERY_S):
            return
        self._saved_at = now
        try:
            self.save_state(state_prefix(self.model_name, self.started_at) + process_key(), self.comparison())
        except Exception:  # the store may be unavailable; the comparison stays in memory meanwhile
            log.warning("rollout_comparison_not_saved", model_name=self.model_name, exc_info=True)
