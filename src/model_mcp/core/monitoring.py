"""Operational alerts from the serving figures: error rate, latency and resources.

Drift alerts (feature, prediction, performance, concept) come from drift.py; these are the ones a
performance_report can raise from counters alone, against the manifest's limits and the operator's
thresholds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_mcp.core.schemas import Alert, Resources


@dataclass(frozen=True)
class OperationalThresholds:
    error_rate_warning: float = 0.01
    error_rate_critical: float = 0.05
    min_requests_for_error_rate: int = 20
    # Latency is judged on p95 against max_latency_ms (which bounds a 100-row probe; see README).
    latency_critical_factor: float = 2.0
    memory_warning_share: float = 0.9


def operational_alerts(figures: dict[str, Any], limits: Resources | None,
                       thresholds: OperationalThresholds = OperationalThresholds()) -> list[Alert]:
    alerts: list[Alert] = []
    version = figures.get("version")
    attempts = int(figures.get("n_requests", 0)) + int(figures.get("n_errors", 0))
    rate = float(figures.get("error_rate") or 0.0)
    if attempts >= thresholds.min_requests_for_error_rate and rate >= thresholds.error_rate_warning:
        severity = "critical" if rate >= thresholds.error_rate_critical else "warning"
        alerts.append(Alert(kind="error_rate", severity=severity, message=(
            f"{rate:.1%} of the {attempts} predict calls to {version} failed. Inspect the callers' input "
            "(the errors are invalid_input answers); if the model changed what it accepts, roll back.")))
    p95 = (figures.get("latency_ms") or {}).get("p95")
    if limits is not None and limits.max_latency_ms is not None and p95 is not None:
        limit = float(limits.max_latency_ms)
        if p95 > limit:
            severity = "critical" if p95 > thresholds.latency_critical_factor * limit else "warning"
            alerts.append(Alert(kind="latency", severity=severity, message=(
                f"p95 latency of {version} is {p95:.1f} ms, over the manifest's max_latency_ms of {limit:g}. "
                "Send smaller batches, or roll back to a lighter version.")))
    memory = figures.get("memory_bytes")
    if limits is not None and limits.max_memory_mb is not None and memory is not None:
        limit_bytes = float(limits.max_memory_mb) * 1024 * 1024
        if memory > limit_bytes:
            alerts.append(Alert(kind="resource", severity="critical", message=(
                f"{version} holds an estimated {memory / 1048576:.1f} MiB, over max_memory_mb "
                f"{limits.max_memory_mb:g}. Roll back or import a smaller model.")))
        elif memory > thresholds.memory_warning_share * limit_bytes:
            alerts.append(Alert(kind="resource", severity="warning", message=(
                f"{version} holds an estimated {memory / 1048576:.1f} MiB, near max_memory_mb "
                f"{limits.max_memory_mb:g}. Watch memory; plan a smaller model.")))
    return alerts


class FeedbackStore:
    """Ground-truth labels for recent predictions, per version, bounded in rows.

    Keyed by request_id, so recording the same request twice replaces its labels rather than
    counting them twice. When a version holds more than `max_rows` labelled rows, the oldest
    requests are dropped first. Memory: at most 2 x max_rows small integers per version kept.
    """

    def __init__(self, max_rows: int = 100_000) -> None:
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._by_version: dict[str, OrderedDict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._rows: dict[str, int] = {}

    def record(self, version: str, request_id: str, truth: np.ndarray, predicted: np.ndarray) -> int:
        with self._lock:
            requests = self._by_version.setdefault(version, OrderedDict())
            old = requests.pop(request_id, None)
            rows = self._rows.get(version, 0) - (len(old[0]) if old else 0) + len(truth)
            requests[request_id] = (truth, predicted)
            while rows > self.max_rows and len(requests) > 1:
                _, (dropped, _) = requests.popitem(last=False)
                rows -= len(dropped)
            self._rows[version] = rows
            return rows

    def labelled(self, version: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(y_true, y_pred) of every labelled row of a version, oldest first; None without any."""
        with self._lock:
            requests = list(self._by_version.get(version, {}).values())
        if not requests:
            return None
        return (np.concatenate([t for t, _ in requests]), np.concatenate([p for _, p in requests]))

    def forget(self, version: str) -> None:
        with self._lock:
            self._by_version.pop(version, None)
            self._rows.pop(version, None)
