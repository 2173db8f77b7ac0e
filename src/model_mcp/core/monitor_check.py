"""The background check: a thread in the server that watches the deployed version on its own.

Every `interval_s` it evaluates, for each deployed model, the operational alerts of its version (error rate, latency,
resources, over its figures since deploy, from every process on the home) and, once at least
`drift_min_rows` new input rows arrived since its last drift judgement, the drift of the recent
window (the same `drift_report` a client would ask for; its summary and alerts go to the store).
Results go to the log (`background_check`, and one `alert` line per alert raised or ended), so a
drift no one asked about is still found; alert changes also reach the webhook and the subscribers
of `models://alerts`.

Off in read-only mode (nothing is written) and when the interval is 0. One evaluation at a time;
an evaluation that fails is logged and the next one runs on schedule.

One checker per home: several server processes on one home would each evaluate and each count the
same alert once more. So a process runs the check only while it holds `monitor-check.lock` (an
exclusive `flock`, taken without waiting at each tick and kept from then on); the kernel releases it
when that process ends, and the next tick of another process takes over. On PostgreSQL the same rule
holds across every replica of the database, with an advisory lock instead (core/pg/leader.py).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from model_mcp.core import lockfile
from model_mcp.core.alerts import OPERATIONAL_KINDS
from model_mcp.core.errors import InsufficientDataError, ModelMcpError
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    from model_mcp.core.manager import ModelManager

log = get_logger(__name__)


class BackgroundCheck:
    def __init__(self, manager: ModelManager, *, interval_s: float, drift_min_rows: int,
                 lock_path: Path | None = None, leadership: Callable[[], bool] | None = None) -> None:
        self.manager = manager
        self.lock_path = lock_path
        self.leadership = leadership  # on a database: whether this replica leads (instead of the lock file)
        self.evaluations = 0  # ticks this process evaluated (tests: one checker of all)
        self._lock_fd: int | None = None
        self.interval_s = interval_s
        self.drift_min_rows = drift_min_rows
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows_judged: dict[tuple[str, str | None], int] = {}  # (version, deployment) -> n_rows at last drift

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="monitor-check", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._lock_fd is not None:
            lockfile.release(self._lock_fd)  # another process's next tick takes over
            self._lock_fd = None

    def leads(self) -> bool:
        """Whether this process is the home's checker (holds the lock, taking it now if it is free)."""
        if self.leadership is not None:
            return self.leadership()
        if self.lock_path is None or self._lock_fd is not None:
            return True
        try:
            fd = lockfile.try_hold(self.lock_path, {"pid": os.getpid(), "job": "background check",
                                                    "interval_s": self.interval_s})
        except OSError as exc:
            log.warning("background_check_lock_unavailable", reason=str(exc))
            return True  # no lock file possible (a full disk): checking twice beats not checking
        if fd is None:
            return False
        self._lock_fd = fd
        log.info("background_check_leading", pid=os.getpid())
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.leads():
                    self.evaluations += 1
                    self.run_once()
            except Exception:  # the check must keep running whatever one evaluation met
                log.error("background_check_failed", exc_info=True)

    def run_once(self) -> dict[str, Any]:
        """One evaluation of every deployed model now; answers what it found (also logged): the
        finding of the one deployed model, and with several, each under `models`."""
        manager = self.manager
        targets = {name: (r.version, r.deployed_at) for name, r in manager.runtime.residents().items()}
        snapshot, _ = manager.read_registry_for_reading()
        for name, entry in snapshot.deployed_by_model().items():
            targets.setdefault(name, (entry.version, entry.deployed_at))
        for name, rollout in manager.runtime.rollouts().items():  # shadows and canaries have alerts too
            targets[f"{name}\0rollout"] = (rollout.version, rollout.started_at)
        actions = manager.evaluate_rollouts() if hasattr(manager, "evaluate_rollouts") else []
        if not targets:
            return {"version": None, "rollout_actions": actions}
        found = [self._check(version, deployment) for version, deployment in targets.values()]
        answer = found[0] if len(found) == 1 else {"version": None, "models": found}
        answer["rollout_actions"] = actions
        return answer

    def _check(self, version: str, deployment: str | None) -> dict[str, Any]:
        manager = self.manager
        report = manager.performance_report(version=version)
        operational = [a for a in report.alerts if a.kind in OPERATIONAL_KINDS]
        for alert in operational:
            alert.version = alert.version or version
        manager.record_alerts(operational, version=version, kinds=OPERATIONAL_KINDS)
        found: dict[str, Any] = {"version": version, "n_requests": report.n_requests, "n_rows": report.n_rows,
                                 "operational_alerts": [f"{a.kind}:{a.severity}" for a in operational]}
        key = (version, deployment)
        judged = self._rows_judged.get(key, 0)
        if report.n_rows - judged >= self.drift_min_rows:
            try:
                drift = manager.drift_report(version=version)
            except InsufficientDataError as exc:
                found["drift"] = f"insufficient_data: {exc}"
            except ModelMcpError as exc:
                found["drift"] = f"[{exc.code}] {exc}"
            else:
                self._rows_judged[key] = report.n_rows
                found["drift"] = {"dataset_drift": drift.dataset_drift, "drifted_features": drift.drifted_features,
                                  "n_current": drift.n_current, "reference_source": drift.reference_source,
                                  "alerts": [f"{a.kind}:{a.severity}" for a in drift.alerts
                                             if a.kind not in OPERATIONAL_KINDS]}
        log.info("background_check", **found)
        return found
