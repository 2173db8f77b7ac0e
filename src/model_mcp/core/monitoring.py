"""The in-memory feedback store (used when the monitoring store is off or read-only).

Operational alerts moved to alerts.py (one Alert type for operational and drift alerts); they are
re-exported here for callers of the old name.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from model_mcp.core.alerts import OperationalThresholds, operational_alerts

__all__ = ["FeedbackStore", "OperationalThresholds", "operational_alerts"]


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
