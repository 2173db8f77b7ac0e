"""Monitoring use cases: drift_report and record_feedback over the runtime windows and drift.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from model_mcp.core.errors import (
    InsufficientDataError,
    InvalidInputError,
    NotFoundError,
)
from model_mcp.core.monitoring import operational_alerts
from model_mcp.core.runtime import parse_rows
from model_mcp.core.schemas import (
    Alert,
    DriftReport,
    FeedbackResult,
    utc_now,
)
from model_mcp.core.usecases.base import UseCaseBase

DRIFT_MAX_ROWS = 1_000_000  # rows a drift_report may be given per side


class MonitoringCases(UseCaseBase):
    """drift_report and record_feedback."""

    # --- monitoring: feedback and drift ---------------------------------------------------------
    def record_feedback(self, *, request_id: str, labels: Any) -> FeedbackResult:
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInputError("`request_id` must be the request_id a predict call answered.")
        request = self.runtime.request(request_id)
        if request is None:
            raise NotFoundError(
                f"No recent predict request has the id {request_id[:64]!r}: it is unknown, or too old "
                f"(the last {self.settings.feedback_max_requests} requests are kept)."
            )
        truth = _feedback_labels(labels, request["n_rows"])
        predicted = np.asarray(request["labels"], dtype=np.int64)
        total = self.feedback.record(request["version"], request_id, truth, predicted)
        return FeedbackResult(request_id=request_id, n_labels=int(truth.size), n_labelled_total=total,
                              version=request["version"])

    def drift_report(self, *, version: str | None = None, current: Any = None, reference: Any = None,
                     window: int | None = None) -> DriftReport:
        # Imported here: scipy.stats costs half a second, which the server's start-up need not pay.
        from model_mcp.core.drift import (
            DriftThresholds,
            build_alerts,
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
        resident = self.runtime.current
        version = self.resolve_version(version, snapshot)
        entry = self._entry_or_not_found(snapshot, version)
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
            X_cur = parse_rows(current, names, DRIFT_MAX_ROWS)
            current_source = "rows"
            if serving is not None:
                cur_labels, cur_scores = serving.score_and_label(X_cur)
        else:
            X_cur, cur_scores, cur_labels = self._window(version, "recent")
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
        base_X, base_scores, base_labels = self._window(version, "baseline")
        profile = metadata.get("feature_profile")
        training = metadata.get("training_info") or {}
        if reference is not None:
            X_ref = parse_rows(reference, names, DRIFT_MAX_ROWS)
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
        labelled = self.feedback.labelled(version)
        performance = None
        if labelled is not None:
            performance = performance_drift(labelled[0], labelled[1], metadata.get("evaluation_metrics"),
                                            thresholds)
        concept = concept_drift(performance, verdict.dataset_drift)
        alerts = [Alert(**a) for a in build_alerts(features, verdict, prediction, performance, concept,
                                                   thresholds)]
        try:
            figures = self.runtime.performance(version)
            alerts += operational_alerts(figures, self.manifest_resources(version))
        except NotFoundError:
            pass
        return DriftReport(
            version=version, reference_source=reference_source, n_reference=n_reference,
            current_source=current_source, n_current=int(X_cur.shape[0]),
            features=[f.to_dict() for f in features], drifted_features=list(verdict.drifted_features),
            share_drifted=float(verdict.share_drifted), dataset_drift=bool(verdict.dataset_drift),
            prediction_drift=prediction, performance_drift=performance, concept_drift=concept,
            alerts=alerts, generated_at=utc_now(),
        )

    def _window(self, version: str, which: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        try:
            return self.runtime.recent(version) if which == "recent" else self.runtime.baseline(version)
        except NotFoundError:
            return np.empty((0, 0)), None, None


def _feedback_labels(labels: Any, n_rows: int) -> np.ndarray:
    if not isinstance(labels, list):
        raise InvalidInputError("`labels` must be a list with one label (-1 anomaly, 1 normal) per row.")
    for index, label in enumerate(labels):
        if isinstance(label, bool) or label not in (-1, 1):
            raise InvalidInputError(f"label {index} is {label!r}; use -1 for an anomaly and 1 for normal.")
    if len(labels) != n_rows:
        raise InvalidInputError(f"The request had {n_rows} rows, but {len(labels)} labels were given.")
    return np.asarray(labels, dtype=np.int64)
