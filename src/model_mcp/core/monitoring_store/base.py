"""The monitoring store's interface: what the recorder writes and the use cases read.

A backend (sqlite.py today; PostgreSQL later) implements `MonitoringStore`. Nothing above this
interface knows which backend runs: the recorder hands over `Batch`es, the use cases ask for
bucket rows, windows, requests, feedback, drift summaries and alerts.

Keys. A *deployment* is one deploy of one version, named by the deploy's timestamp from the
registry (`deployed_at`): a redeploy of the same version starts new windows and new feedback,
while figures of every process serving that deployment, before and after restarts, add up.
A *process* is one server process (its row: pid, host, start time, last write).

Failures. Backends raise `StoreUnavailable` when the store cannot be used now but may be later
(disk full, locked, a read-only folder) and `StoreDamaged` when the file is not a usable database;
the recorder keeps figures in memory meanwhile and the use cases fall back to this process's own
in-memory figures. Neither is a ModelMcpError: no tool fails because monitoring cannot be written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from model_mcp.core.alerts import Alert, AlertRecord

Which = Literal["recent", "baseline"]
MINUTE = 60
HOUR = 3600


class StoreError(Exception):
    """The monitoring store could not do what was asked."""


class StoreUnavailable(StoreError):
    """Cannot be used now (disk full, locked, not writable); retry later."""


class StoreDamaged(StoreError):
    """The database file is damaged or not a database."""


@dataclass
class BucketRow:
    """One process's figures for one deployment over one minute or one hour (`grain` seconds)."""

    grain: int
    start: int  # unix seconds, a multiple of grain
    version: str
    deployment: str
    process: int = 0
    requests: int = 0
    rows: int = 0
    errors: int = 0
    flagged_rows: int = 0  # rows whose labels are anomaly flags
    anomalies: int = 0
    busy_s: float = 0.0  # summed request time
    cpu_s: float = 0.0  # the process's CPU time spent in this bucket
    rss_bytes: int = 0  # the process's largest resident memory seen in this bucket
    latency: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # histogram counts


@dataclass
class BucketColumns:
    """Bucket rows read back, as columns (one entry per row; `latency` is rows x histogram bins)."""

    start: np.ndarray  # int64
    process: np.ndarray  # int64
    requests: np.ndarray
    rows: np.ndarray
    errors: np.ndarray
    flagged_rows: np.ndarray
    anomalies: np.ndarray
    busy_s: np.ndarray  # float64
    cpu_s: np.ndarray
    rss_bytes: np.ndarray
    latency: np.ndarray  # int64 (n, histogram.N_BINS)

    @classmethod
    def concat(cls, parts: list[BucketColumns]) -> BucketColumns:
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts])
                      for name in cls.__dataclass_fields__})

    def __len__(self) -> int:
        return int(self.start.shape[0])


@dataclass
class WindowRows:
    """Input rows with their scores and labels, for a deployment's recent or baseline window."""

    version: str
    deployment: str
    which: Which
    at: float
    X: np.ndarray
    scores: np.ndarray | None
    labels: np.ndarray | None  # int64 labels, or None


@dataclass
class RequestRow:
    """What record_feedback needs about one answered predict."""

    request_id: str
    version: str
    deployment: str
    at: float
    n_rows: int
    labels: np.ndarray | None  # int64 predicted labels, None when the model's labels are not integers


@dataclass
class Batch:
    """What the recorder writes in one transaction."""

    buckets: list[BucketRow] = field(default_factory=list)
    rows: list[WindowRows] = field(default_factory=list)
    requests: list[RequestRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.buckets or self.rows or self.requests)


@dataclass(frozen=True)
class Retention:
    """How much the store keeps (see the README's store table)."""

    days: float = 30.0
    window_rows: int = 5000  # recent input rows per deployment
    baseline_rows: int = 1000  # first input rows per deployment
    requests: int = 10_000  # request map entries per version
    feedback_rows: int = 100_000  # labelled rows per deployment
    drift_reports: int = 1000  # summaries per version


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    host: str
    started_at: str
    last_seen: str


class MonitoringStore(ABC):
    """A durable store of serving figures, input windows, feedback, drift summaries and alerts."""

    read_only: bool = False

    # --- writing (the recorder's thread) ---------------------------------------------------------
    @abstractmethod
    def register_process(self, *, pid: int, host: str, started_at: str) -> int:
        """Add this process; returns its id for bucket rows."""

    @abstractmethod
    def write(self, batch: Batch, *, process: int, now: str) -> None:
        """Write a batch in one transaction; bucket rows are increments, added to the process's earlier ones."""

    @abstractmethod
    def prune(self, retention: Retention, *, now: float) -> dict[str, int]:
        """Drop what retention no longer keeps; answers how many rows of each kind went."""

    @abstractmethod
    def window_count(self, version: str, deployment: str, which: Which) -> int:
        """Rows held in a deployment's window."""

    # --- reading ---------------------------------------------------------------------------------
    @abstractmethod
    def bucket_columns(self, version: str, *, grain: int, since: int, until: int,
                       deployment: str | None = None) -> BucketColumns:
        """Bucket rows of `grain` whose start is in [since, until), every process, any order."""

    @abstractmethod
    def processes(self, ids: list[int]) -> list[ProcessInfo]:
        """The processes with these ids, oldest start first."""

    @abstractmethod
    def window(self, version: str, deployment: str, which: Which,
               limit: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(X, scores, labels) of a window, oldest first: the last `limit` recent rows or the first baseline ones."""

    @abstractmethod
    def request(self, request_id: str) -> RequestRow | None:
        """A predict request by id, or None when unknown or pruned."""

    # --- feedback, drift reports, alerts -----------------------------------------------------------
    @abstractmethod
    def record_feedback(self, request: RequestRow, truth: np.ndarray, *, now: float, max_rows: int) -> int:
        """Keep the true labels of a request (replacing earlier ones); answers the deployment's labelled rows."""

    @abstractmethod
    def labelled(self, version: str, deployment: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(y_true, y_pred) of a deployment's labelled rows, oldest first; None without any."""

    @abstractmethod
    def save_drift_summary(self, version: str, deployment: str, *, at: str, summary: dict[str, Any]) -> None: ...

    @abstractmethod
    def drift_summaries(self, version: str, limit: int) -> list[dict[str, Any]]:
        """The latest drift report summaries of a version, newest first."""

    @abstractmethod
    def put_state(self, key: str, value: dict[str, Any], *, now: str) -> None:
        """Keep a small JSON state under `key`, replacing what was there (rollout comparisons)."""

    @abstractmethod
    def states(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every state whose key starts with `prefix`, by key."""

    @abstractmethod
    def raise_alerts(self, alerts: list[Alert], *, version: str | None, kinds: tuple[str, ...],
                     now: str) -> list[AlertRecord]:
        """Record one evaluation: `alerts` are raised (new, or seen again), every other active alert of
        `version` among `kinds` ends. Answers the records that changed (new, escalated, or ended)."""

    @abstractmethod
    def alerts(self, *, version: str | None = None, active_only: bool = False, severity: str | None = None,
               limit: int = 100) -> list[AlertRecord]:
        """The alert log, newest last_seen first."""

    @abstractmethod
    def close(self) -> None: ...

    # --- file-level recovery (a backend without files keeps these defaults) --------------------------
    def check_file(self) -> None:
        """Notice when another process replaced the store (a damaged one set aside)."""

    def quick_check(self) -> None:
        """Raise StoreDamaged when the store is damaged."""

    def set_aside_damaged(self) -> str | None:
        """Keep a damaged store aside and start afresh; answers where it went (None: nothing to move)."""
        return None
