"""Monitoring use cases: drift_report and record_feedback over the monitoring store and drift.py.

Windows, request map and feedback come from the monitoring store (every process, across restarts);
without one (read-only, store off or unreadable) from this process's memory.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from model_mcp.core.errors import (
    InsufficientDataError,
    InvalidInputError,
    NotFoundError,
)
from model_mcp.core.alerts import DRIFT_KINDS, Alert, build_alerts, operational_alerts
from model_mcp.core.monitoring_store import StoreError
from model_mcp.core.runtime import parse_rows
from model_mcp.core.schemas import (
    DriftReport,
    FeedbackResult,
    utc_now,
)
from model_mcp.core.usecases.observing import ObservingCases
from model_mcp.logs import get_logger

log = get_logger(__name__)


class MonitoringCases(ObservingCases):
    """drift_report and record_feedback."""

    # --- monitoring: feedback and drift ---------------------------------------------------------
    def record_feedback(self, *, request_id: str, labels: Any) -> FeedbackResult:
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInputError("`request_id` must be the request_id a predict call answered.")
        if self.monitor is not None:
            result = self._record_stored_feedback(request_id, labels)
            if result is not None:
                return result
        request = self.runtime.request(request_id)
        if request is None:
            kept = (f"the last {self.settings.monitor_requests} requests of each version are kept"
                    if self.monitor is not None else f"the last {self.settings.feedback_max_requests} requests are kept")
            raise NotFoundError(
                f"No recent predict request has the id {request_id[:64]!r}: it is unknown, or too old ({kept})."
            )
        truth = _feedback_labels(labels, request["n_rows"])
        predicted = np.asarray(request["labels"], dtype=np.int64)
        total = self.feedback.record(request["version"], request_id, truth, predicted)
        return FeedbackResult(request_id=request_id, n_labels=int(truth.size), n_labelled_total=total,
                              version=request["version"])

    def _record_stored_feedback(self, request_id: str, labels: Any) -> FeedbackResult | None:
        """Labels of a request any process answered, kept in the store; None when the store has no such request."""
        assert self.monitor is not None
        self._flush_recorder()
        try:
            stored = self.monitor.request(request_id)
        except StoreError as exc:
            log.warning("monitoring_store_unreadable", reason=str(exc))
            return None
        if stored is None:
            return None
        if stored.labels is None:
            raise InvalidInputError(f"Version {stored.version} answers labels that are not -1/1, so feedback "
                                    "cannot be compared with them.")
        truth = _feedback_labels(labels, stored.n_rows)
        try:
            total = self.monitor.record_feedback(stored, truth, now=time.time(),
                                                 max_rows=self.settings.monitor_feedback_rows)
        except StoreError as exc:
            log.warning("feedback_not_stored", reason=str(exc), request_id=request_id)
            return None  # kept in memory instead, when this process answered the request
        return FeedbackResult(request_id=request_id, n_labels=int(truth.size), n_labelled_total=total,
                              version=stored.version)

    def drift_report(self, *, version: str | None = None, model_name: str | None = None, current: Any = None,
                     reference: Any = None, window: int | None = None) -> DriftReport:
        # Imported here: scipy.stats costs half a second, which the server's start-up need not pay.
        from model_mcp.core.drift import (
            DriftThresholds,
            concept_drift,
            dataset_verdict,
            drift_against_profile,
            drift_against_sample,
            performance_drift,
            prediction_drift,
            profile_covers,
        )

        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise InvalidInputError("`window` must be a positive number of rows.")
        snapshot, _ = self.read_registry_for_reading()
        version = self.resolve_version(version, snapshot, model_name=model_name)
        resident = self.runtime.serving_version(version)
        entry = self._entry_or_not_found(snapshot, version)
        deployment = self.deployment_of(version, entry)
        metadata = self._read_metadata(entry) or {}
        names = [str(n) for n in metadata.get("feature_names") or []]
        if not names:
            raise NotFoundError(f"Version {version} has no readable feature_names in metadata.json.")
        settings = self.settings
        thresholds = DriftThresholds(
            share_threshold=settings.drift_share_threshold, alpha=settings.drift_alpha,
            psi_moderate=settings.drift_psi_moderate, psi_significant=settings.drift_psi_significant,
        )
        serving = resident if resident is not None and resident.version == version else None

        # Current: rows given, else the recent predict inputs (the last `window` rows).
        cur_labels = cur_scores = None
        if current is not None:
            X_cur = parse_rows(current, names, settings.max_drift_rows)
            current_source = "rows"
            if serving is not None:
                cur_labels, cur_scores = serving.score_and_label(X_cur)
        else:
            X_cur, cur_scores, cur_labels = self._window(version, "recent", deployment)
            if window is not None:
                X_cur = X_cur[-window:]
                cur_scores = None if cur_scores is None else cur_scores[-window:]
                cur_labels = None if cur_labels is None else cur_labels[-window:]
            current_source = "recent_window"
            if X_cur.shape[0] == 0:
                raise InsufficientDataError(
                    f"Version {version} has received no predict inputs since its deploy; call predict first, "
                    "or give `current` rows."
                )

        # Reference: rows given, else the training profile, else the first inputs after deploy.
        base_X, base_scores, base_labels = self._window(version, "baseline", deployment)
        profile = metadata.get("feature_profile")
        training = metadata.get("training_info") or {}
        if reference is not None:
            X_ref = parse_rows(reference, names, settings.max_drift_rows)
            reference_source, n_reference = "rows", int(X_ref.shape[0])
            features = drift_against_sample(X_cur, X_ref, names, thresholds)
        elif isinstance(profile, dict) and profile_covers(profile, names):
            reference_rows = training.get("n_samples")
            reference_rows = reference_rows if isinstance(reference_rows, int) and reference_rows > 0 else None
            reference_source, n_reference = "feature_profile", int(reference_rows or 0)
            features = drift_against_profile(X_cur, names, profile, thresholds, reference_rows=reference_rows)
        else:
            reference_source, n_reference = "baseline_window", int(base_X.shape[0])
            if n_reference == 0:
                raise InsufficientDataError(
                    f"Version {version} has no feature_profile and no inputs since its deploy to compare with; "
                    "give `reference` rows."
                )
            features = drift_against_sample(X_cur, base_X, names, thresholds)
        verdict = dataset_verdict(features, thresholds.share_threshold)

        prediction = None
        if cur_labels is not None and np.isin(cur_labels, (-1, 1)).all() and cur_labels.size:
            contamination = training.get("contamination")
            expected = float(contamination) if isinstance(contamination, int | float) and not isinstance(
                contamination, bool) and 0 < contamination < 1 else None
            prediction = prediction_drift(
                cur_labels == -1, expected_rate=expected, current_scores=cur_scores,
                reference_scores=base_scores if base_scores is not None and base_scores.size else None,
                reference_is_anomaly=(base_labels == -1) if base_labels is not None and base_labels.size else None,
                thresholds=thresholds,
            )
        labelled = self._labelled(version, deployment)
        performance = None
        if labelled is not None:
            performance = performance_drift(labelled[0], labelled[1], metadata.get("evaluation_metrics"),
                                            thresholds)
        concept = concept_drift(performance, verdict.dataset_drift)
        drift_alerts = build_alerts(features, verdict, prediction, performance, concept, thresholds, version=version)
        figures = self._performance_figures(version, entry, since=None, until=None, bucket_s=60)
        alerts = drift_alerts + operational_alerts(figures, self.manifest_resources(version))
        report = DriftReport(
            version=version, reference_source=reference_source, n_reference=n_reference,
            current_source=current_source, n_current=int(X_cur.shape[0]),
            features=[f.to_dict() for f in features], drifted_features=list(verdict.drifted_features),
            share_drifted=float(verdict.share_drifted), dataset_drift=bool(verdict.dataset_drift),
            prediction_drift=prediction, performance_drift=performance, concept_drift=concept,
            alerts=alerts, generated_at=utc_now(),
        )
        if current_source == "recent_window" and self.monitor is not None and deployment is not None:
            self._remember_drift(report, deployment, drift_alerts)
        return report

    def _remember_drift(self, report: DriftReport, deployment: str, drift_alerts: list[Alert]) -> None:
        """Keep the report's summary, and its drift alerts in the alert log (a report on the serving inputs)."""
        assert self.monitor is not None
        summary = {
            "at": report.generated_at, "version": report.version, "deployment": deployment,
            "current_source": report.current_source, "n_current": report.n_current,
            "reference_source": report.reference_source, "n_reference": report.n_reference,
            "dataset_drift": report.dataset_drift, "share_drifted": report.share_drifted,
            "drifted_features": report.drifted_features,
            "prediction_drifted": bool(report.prediction_drift and report.prediction_drift.get("drifted")),
            "performance_drifted": bool(report.performance_drift and report.performance_drift.get("drifted")),
            "concept_drifted": bool(report.concept_drift and report.concept_drift.get("drifted")),
            "alerts": [{"kind": a.kind, "severity": a.severity} for a in drift_alerts],
        }
        try:
            self.monitor.save_drift_summary(report.version, deployment, at=report.generated_at, summary=summary)
        except StoreError as exc:
            log.warning("drift_summary_not_stored", reason=str(exc))
        self.record_alerts(drift_alerts, version=report.version, kinds=DRIFT_KINDS)

    def _window(self, version: str, which: str,
                deployment: str | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        stored = self.stored_window(version, deployment, which)
        if stored is not None:
            return stored
        try:
            return self.runtime.recent(version) if which == "recent" else self.runtime.baseline(version)
        except NotFoundError:
            return np.empty((0, 0)), None, None

    def _labelled(self, version: str, deployment: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        if self.monitor is not None and deployment is not None:
            try:
                stored = self.monitor.labelled(version, deployment)
            except StoreError as exc:
                log.warning("monitoring_store_unreadable", reason=str(exc))
            else:
                if stored is not None:
                    return stored
        return self.feedback.labelled(version)


def _feedback_labels(labels: Any, n_rows: int) -> np.ndarray:
    if not isinstance(labels, list):
        raise InvalidInputError("`labels` must be a list with one label (-1 anomaly, 1 normal) per row.")
    for index, label in enumerate(labels):
        if isinstance(label, bool) or label not in (-1, 1):
            raise InvalidInputError(f"label {index} is {label!r}; use -1 for an anomaly and 1 for normal.")
    if len(labels) != n_rows:
        raise InvalidInputError(f"The request had {n_rows} rows, but {len(labels)} labels were given.")
    return np.asarray(labels, dtype=np.int64)
