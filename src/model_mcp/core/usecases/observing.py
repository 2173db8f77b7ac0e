"""What the server observed, read back: figures over a span, windows, feedback, the alert log.

With the monitoring store on (the default), figures come from the store: every process serving the
home, before and after restarts. Each read first flushes this process's recorder, so a report
includes the predicts this process answered a moment ago. Without a store (read-only mode, or
MODEL_MCP_MONITOR_STORE=false), or when the store cannot be read, the figures are this process's
own in-memory ones, and `covers` says so. Use cases never ask which backend runs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from model_mcp.core.alerts import Alert, AlertRecord, AlertsResult, dropped_alert, store_alert
from model_mcp.core.errors import InvalidInputError, NotFoundError
from model_mcp.core.monitoring_store import MonitoringStore, StoreError
from model_mcp.core.monitoring_store.recorder import Recorder
from model_mcp.core.monitoring_store.report import check_bucket_s, fitting_bucket_s, iso, span_figures
from model_mcp.core.schemas import RegistryEntry, parse_timestamp, utc_now
from model_mcp.core.usecases.base import UseCaseBase
from model_mcp.logs import get_logger

log = get_logger(__name__)

_STARTED = time.time()
SEVERITIES = ("info", "warning", "critical")


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"`{name}` must be an ISO-8601 UTC time such as 2026-12-01T00:00:00Z.")
    try:
        return parse_timestamp(value).timestamp()
    except ValueError:
        raise InvalidInputError(
            f"`{name}` is {value[:40]!r}, not an ISO-8601 time such as 2026-12-01T00:00:00Z.") from None


class ObservingCases(UseCaseBase):
    """Figures, windows, feedback and alerts through the monitoring store (or this process's memory)."""

    monitor: MonitoringStore | None
    recorder: Recorder | None
    alert_listeners: list[Callable[[list[AlertRecord]], None]]
    _alerts_lock: threading.Lock

    # --- plumbing ---------------------------------------------------------------------------------
    def _flush_recorder(self) -> None:
        if self.recorder is not None and not self.recorder.flush():
            log.warning("monitoring_flush_timeout")

    def deployment_of(self, version: str, entry: RegistryEntry | None) -> str | None:
        """The deployment id (the deploy's timestamp) whose windows and feedback a version's reports read."""
        resident = self.runtime.serving_version(version)
        if resident is not None:
            return resident.deployed_at
        return entry.deployed_at if entry is not None else None

    def record_alerts(self, alerts: list[Alert], *, version: str | None, kinds: tuple[str, ...]) -> list[AlertRecord]:
        """One evaluation's alerts into the log; listeners (notifications, webhook) hear what changed."""
        if self.monitor is None:
            return []
        with self._alerts_lock:
            try:
                changed = self.monitor.raise_alerts(alerts, version=version, kinds=kinds, now=utc_now())
            except StoreError as exc:
                log.warning("alerts_not_logged", reason=str(exc), version=version)
                return []
        for record in changed:
            log.warning("alert", id=record.id, kind=record.kind, severity=record.severity, version=record.version,
                        active=record.active, message=record.message)
        if changed:
            self.tell_alert_listeners(changed)
        return changed

    def tell_alert_listeners(self, changed: list[AlertRecord]) -> None:
        for listener in list(self.alert_listeners):
            try:
                listener(changed)
            except Exception:  # a listener must never fail the evaluation that raised the alert
                log.warning("alert_listener_failed", exc_info=True)

    # --- performance over a span ------------------------------------------------------------------------
    def _performance_figures(self, version: str, entry: RegistryEntry | None, *, since: Any, until: Any,
                             bucket_s: Any) -> dict[str, Any]:
        bucket = check_bucket_s(bucket_s)
        since_s, until_s = _seconds(since, "since"), _seconds(until, "until")
        if since_s is not None and until_s is not None and since_s >= until_s:
            raise InvalidInputError("`since` must be before `until`.")
        if self.monitor is not None:
            try:
                return self._stored_figures(version, entry, since_s=since_s, until_s=until_s, bucket_s=bucket)
            except StoreError as exc:
                log.warning("monitoring_store_unreadable", reason=str(exc))
                return self._memory_figures(version, entry, bucket, reason=f"the monitoring store cannot be read ({exc})")
        reason = "the server is read-only" if self.settings.read_only else "the monitoring store is off"
        return self._memory_figures(version, entry, bucket, reason=reason)

    def _stored_figures(self, version: str, entry: RegistryEntry | None, *, since_s: float | None,
                        until_s: float | None, bucket_s: int) -> dict[str, Any]:
        assert self.monitor is not None
        self._flush_recorder()
        deployed_at = self.deployment_of(version, entry)
        now = time.time()
        until = until_s if until_s is not None else now
        deployment = None
        if since_s is not None:
            since = since_s
        elif deployed_at is not None:
            since, deployment = parse_timestamp(deployed_at).timestamp(), deployed_at
        else:
            since = now - self.settings.monitor_retention_days * 86400
        since = min(since, until - 1)
        used_bucket = fitting_bucket_s(bucket_s, until - since)
        span = span_figures(self.monitor, version, since=since, until=until, bucket_s=used_bucket,
                            deployment=deployment)
        processes = [p.__dict__ for p in self.monitor.processes(span.process_ids)]
        what = f"since its deploy at {deployed_at}" if deployment is not None else f"from {iso(since)} to {iso(until)}"
        covers = (f"Figures of {version} {what}, from the monitoring store: every server process on this home "
                  f"({len(processes)} contributed), across restarts. Latency percentiles come from a histogram "
                  f"(within 6 %); series buckets of {used_bucket} s, empty ones left out.")
        if used_bucket != bucket_s:
            covers += f" bucket_s was widened from {bucket_s} to fit at most 1,440 buckets."
        return {"version": version, "deployed_at": deployed_at, **span.totals, **self._model_sizes(version, entry),
                "since": iso(since), "until": iso(until), "bucket_s": used_bucket, "series": span.series,
                "processes": processes, "covers": covers}

    def _memory_figures(self, version: str, entry: RegistryEntry | None, bucket_s: int, *, reason: str) -> dict[str, Any]:
        try:
            figures = self.runtime.performance(version)
        except NotFoundError:
            figures = {"version": version, "deployed_at": entry.deployed_at if entry else None, "n_requests": 0,
                       "n_rows": 0, "n_errors": 0, "error_rate": 0.0,
                       "latency_ms": {"p50": None, "p95": None, "p99": None}, "throughput_rows_per_s": None,
                       "anomaly_rate": None, **self._model_sizes(version, entry)}
        figures["serving"] = self._serves(version)
        now = time.time()
        figures.update(
            since=iso(_STARTED), until=iso(now), bucket_s=bucket_s, series=[],
            processes=[{"pid": os.getpid(), "host": socket.gethostname(), "started_at": iso(_STARTED),
                        "last_seen": iso(now)}],
            covers=(f"Figures of {version} answered by this server process since it started (or since the "
                    f"version's last deploy in it), not persisted: {reason}."),
        )
        return figures

    def _serves(self, version: str) -> bool:
        return self.runtime.serving_version(version) is not None

    def _model_sizes(self, version: str, entry: RegistryEntry | None) -> dict[str, Any]:
        resident = self.runtime.serving_version(version)
        if resident is not None:
            return {"model_file_bytes": resident.model_file_bytes, "memory_bytes": resident.memory_bytes,
                    "load_ms": resident.load_ms, "serving": True}
        files = getattr(entry, "files", None) or {}
        model = files.get("model.joblib") if isinstance(files, dict) else None
        size = model.get("size") if isinstance(model, dict) else getattr(model, "size", None)  # typed FileInfo
        return {"model_file_bytes": size, "memory_bytes": None, "serving": False}

    # --- windows and feedback -----------------------------------------------------------------------------
    def stored_window(self, version: str, deployment: str | None,
                      which: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None:
        """A window from the store, or None (no store, unreadable, or nothing there)."""
        if self.monitor is None or deployment is None:
            return None
        self._flush_recorder()
        limit = self.settings.recent_window_rows if which == "recent" else self.settings.baseline_rows
        try:
            X, scores, labels = self.monitor.window(version, deployment, which, limit)  # type: ignore[arg-type]
        except StoreError as exc:
            log.warning("monitoring_store_unreadable", reason=str(exc))
            return None
        return (X, scores, labels) if X.shape[0] else None

    # --- the drift reports on the serving inputs -----------------------------------------------------------
    def drift_history(self, *, version: str, limit: int = 20) -> dict[str, Any]:
        """The summaries of the last drift reports on `version`'s serving inputs, newest first.

        drift_report keeps one for each report on the recent window (from any client, the dashboard or
        the background check) in the monitoring store; reports on rows a caller sent are not kept.
        Without a store the list is empty and `stored` is false.
        """
        snapshot, _ = self.read_registry_for_reading()
        self._entry_or_not_found(snapshot, version)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError("`limit` must be a whole number from 1 to 1000.")
        reports: list[dict[str, Any]] = []
        if self.monitor is not None:
            try:
                reports = self.monitor.drift_summaries(version, limit)
            except StoreError as exc:
                log.warning("monitoring_store_unreadable", reason=str(exc))
        return {"version": version, "stored": self.monitor is not None, "reports": reports}

    # --- the alert log --------------------------------------------------------------------------------------
    def get_alerts(self, *, version: str | None = None, model_name: str | None = None, active_only: bool = False,
                   severity: str | None = None, limit: int = 100) -> AlertsResult:
        if version is not None or model_name is not None:
            version = self.resolve_version(version, model_name=model_name)
        if severity is not None and severity not in SEVERITIES:
            raise InvalidInputError(f"`severity` must be one of {', '.join(SEVERITIES)}, not {severity!r}.")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError("`limit` must be a whole number from 1 to 1000.")
        self._flush_recorder()  # a store problem met by this process's last predicts shows at once
        live = self._live_alerts()
        stored: list[AlertRecord] = []
        if self.monitor is not None:
            try:
                stored = self.monitor.alerts(version=version, active_only=active_only, severity=severity,
                                             limit=limit)
            except StoreError as exc:
                log.warning("monitoring_store_unreadable", reason=str(exc))
        else:
            stored = self._current_alerts(version)
        live = [a for a in live if (version is None or a.version == version)
                and (severity is None or a.severity == severity)]
        return AlertsResult(alerts=(live + stored)[:limit])

    def _live_alerts(self) -> list[AlertRecord]:
        """The recorder's own problems, held in memory while the store cannot take them."""
        recorder = self.recorder
        if recorder is None:
            return []
        status = recorder.status
        found = []
        if status.problem is not None:
            alert = store_alert(status.problem)
            found.append(AlertRecord(id=0, **alert.model_dump(), first_seen=iso(status.problem_since or time.time()),
                                     last_seen=iso(status.problem_last or time.time()), count=1, active=True))
        if status.dropped:
            alert = dropped_alert(status.dropped)
            found.append(AlertRecord(id=0, **alert.model_dump(), first_seen=iso(_STARTED), last_seen=iso(time.time()),
                                     count=status.dropped, active=True))
        return found

    def _current_alerts(self, version: str | None) -> list[AlertRecord]:
        """Without a store: the operational alerts of the serving version, evaluated now."""
        from model_mcp.core.alerts import operational_alerts

        now = utc_now()
        records = []
        for resident in self.runtime.residents().values():
            if version is not None and version != resident.version:
                continue
            figures = self.runtime.performance(resident.version)
            records += [AlertRecord(id=0, **a.model_dump(), first_seen=now, last_seen=now, count=1, active=True)
                        for a in operational_alerts(figures, self.manifest_resources(resident.version))]  # type: ignore[attr-defined]
        return records
