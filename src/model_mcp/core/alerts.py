"""One Alert type for every alert the server raises, and their wording.

Operational alerts (error rate, latency, resources, the monitoring store itself) come from serving
figures; the training-folder watch raises `training_service` while the folder cannot be scanned; drift alerts (feature, prediction, performance, concept) from a drift report's verdicts.
Both are the same `Alert`: a kind, a severity, a message saying what was seen and what to do, and
the action on its own (for a pager line or a button). `AlertRecord` is an alert with memory, as the
monitoring store keeps it: when it was first and last seen, how often, and whether it still holds.

An alert's identity in the log is (version, kind): raising the same kind for the same version again
updates the record (last_seen, count, severity, message) instead of adding a line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # drift.py imports scipy; only its types are needed here
    from model_mcp.core.drift import DatasetVerdict, DriftThresholds, FeatureDrift
    from model_mcp.core.schemas import Resources

Severity = Literal["info", "warning", "critical"]
AlertKind = Literal["feature_drift", "prediction_drift", "performance_drift", "concept_drift", "error_rate",
                    "latency", "resource", "monitoring_store", "training_service"]

# Which evaluation raises which kinds: an evaluation that no longer raises one of its kinds ends it.
OPERATIONAL_KINDS: tuple[str, ...] = ("error_rate", "latency", "resource")
DRIFT_KINDS: tuple[str, ...] = ("feature_drift", "prediction_drift", "performance_drift", "concept_drift")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Alert(BaseModel):
    kind: AlertKind
    severity: Severity
    message: str = Field(description="What was seen and what to do.")
    action: str | None = None  # what to do, on its own
    version: str | None = None  # the model version it is about; None: the server itself


# An alert with memory, one line of the alert log: first_seen and last_seen (ISO-8601 UTC), how many
# evaluations raised it (count), and whether the latest evaluation still raised it (active).
class AlertRecord(Alert):
    id: int
    first_seen: str
    last_seen: str
    count: int
    active: bool


class AlertsResult(BaseModel):
    alerts: list[AlertRecord] = Field(description="Newest first.")


def _alert(kind: str, severity: Severity, seen: str, action: str, version: str | None = None) -> Alert:
    return Alert(kind=kind, severity=severity, message=f"{seen} {action}", action=action,  # type: ignore[arg-type]
                 version=version)


# --------------------------------------------------------------------------- operational


@dataclass(frozen=True)
class OperationalThresholds:
    error_rate_warning: float = 0.01
    error_rate_critical: float = 0.05
    min_requests_for_error_rate: int = 20
    # Latency is judged on p95 against max_latency_ms (which bounds a 100-row probe; see README).
    latency_critical_factor: float = 2.0
    memory_warning_share: float = 0.9


def operational_alerts(figures: Mapping[str, Any], limits: Resources | None,
                       thresholds: OperationalThresholds = OperationalThresholds()) -> list[Alert]:
    """Error-rate, latency and memory alerts from a performance report's figures."""
    alerts: list[Alert] = []
    version = figures.get("version")
    attempts = int(figures.get("n_requests", 0)) + int(figures.get("n_errors", 0))
    rate = float(figures.get("error_rate") or 0.0)
    if attempts >= thresholds.min_requests_for_error_rate and rate >= thresholds.error_rate_warning:
        severity: Severity = "critical" if rate >= thresholds.error_rate_critical else "warning"
        alerts.append(_alert(
            "error_rate", severity, f"{rate:.1%} of the {attempts} predict calls to {version} failed.",
            "Inspect the callers' input (the errors are invalid_input answers); if the model changed what "
            "it accepts, roll back.", version))
    p95 = (figures.get("latency_ms") or {}).get("p95")
    if limits is not None and limits.max_latency_ms is not None and p95 is not None:
        limit = float(limits.max_latency_ms)
        if p95 > limit:
            severity = "critical" if p95 > thresholds.latency_critical_factor * limit else "warning"
            alerts.append(_alert(
                "latency", severity,
                f"p95 latency of {version} is {p95:.1f} ms, over the manifest's max_latency_ms of {limit:g}.",
                "Send smaller batches, or roll back to a lighter version.", version))
    memory = figures.get("memory_bytes")
    if limits is not None and limits.max_memory_mb is not None and memory is not None:
        limit_bytes = float(limits.max_memory_mb) * 1024 * 1024
        if memory > limit_bytes:
            alerts.append(_alert(
                "resource", "critical",
                f"{version} holds an estimated {memory / 1048576:.1f} MiB, over max_memory_mb "
                f"{limits.max_memory_mb:g}.", "Roll back or import a smaller model.", version))
        elif memory > thresholds.memory_warning_share * limit_bytes:
            alerts.append(_alert(
                "resource", "warning",
                f"{version} holds an estimated {memory / 1048576:.1f} MiB, near max_memory_mb "
                f"{limits.max_memory_mb:g}.", "Watch memory; plan a smaller model.", version))
    return alerts


def load_failed_alert(version: str, message: str) -> Alert:
    return _alert("resource", "critical",
                  f"The deployed version {version} could not be loaded at start ({message}); nothing serves.",
                  "Deploy or roll back to a version that validates.", version)


def store_alert(problem: str) -> Alert:
    """The monitoring store cannot be written: serving goes on, figures wait in memory."""
    return _alert("monitoring_store", "warning",
                  f"The monitoring store cannot be written ({problem}); predicts are answered and figures are "
                  "kept in memory (bounded) until it can.",
                  "Free disk space or fix the permissions of the home's monitoring.db; it recovers by itself.")


def dropped_alert(dropped: int) -> Alert:
    return _alert("monitoring_store", "warning",
                  f"The monitoring recorder dropped {dropped} predict records because its queue was full.",
                  "The store cannot keep up: check the disk's speed, or lower the predict rate.")


def training_service_alert(problem: str) -> Alert:
    """The training-folder watch cannot scan the folder: nothing new is imported until it can."""
    return _alert("training_service", "warning",
                  f"The training-folder watch cannot scan the folder: {problem} New packages are not imported "
                  "meanwhile.",
                  "Check the folder's mount and permissions; the alert ends at the first scan that works.")


# --------------------------------------------------------------------------- drift


def _worst(*severities: str) -> str:
    rank = {"none": 0, "moderate": 1, "significant": 2}
    return max(severities, key=lambda s: rank[s], default="none")


def _feature_alert(features: Sequence[FeatureDrift], dataset: DatasetVerdict, share_threshold: float,
                   version: str | None) -> Alert | None:
    drifted = [f for f in features if f.drifted]
    if not drifted:
        return None
    names = ", ".join(f.feature for f in drifted)
    counted = f"{len(drifted)} of {len(features)} features ({dataset.share_drifted:.0%})"
    if dataset.dataset_drift:
        return _alert(
            "feature_drift", "critical",
            f"Dataset drift: {counted} drifted, at or over the {share_threshold:.0%} threshold: {names}.",
            "Inspect the input pipeline for a change of source or units; if the new data is genuine, retrain "
            "on it and import a retrained model.", version)
    worst = _worst(*(f.severity for f in drifted))
    return _alert(
        "feature_drift", "warning" if worst == "significant" else "info",
        f"{counted} drifted ({worst}): {names}.",
        "Inspect these inputs upstream; if the shift persists and grows, plan to import a retrained model.",
        version)


def build_alerts(
    features: Sequence[FeatureDrift],
    dataset: DatasetVerdict,
    prediction: Mapping[str, Any] | None = None,
    performance: Mapping[str, Any] | None = None,
    concept: Mapping[str, Any] | None = None,
    thresholds: DriftThresholds | None = None,
    version: str | None = None,
) -> list[Alert]:
    """Drift alerts: moderate -> warning, significant -> critical; a feature drift short of dataset
    drift is info/warning. Each message says what to do."""
    if thresholds is None:
        from model_mcp.core.drift import DEFAULT_THRESHOLDS

        thresholds = DEFAULT_THRESHOLDS
    alerts = []
    feature_alert = _feature_alert(features, dataset, thresholds.share_threshold, version)
    if feature_alert:
        alerts.append(feature_alert)
    if prediction and prediction.get("drifted"):
        severity: Severity = "critical" if prediction["severity"] == "significant" else "warning"
        expected = prediction.get("expected_rate")
        rate_text = f"The anomaly rate is {prediction['anomaly_rate']:.1%}"
        if expected is not None:
            rate_text += f" against an expected {expected:.1%} ({prediction.get('expected_source')})"
        score = prediction.get("score_test")
        if score and score.get("drifted"):
            rate_text += f"; the score distribution shifted (KS D={score['statistic']:.2f})"
        alerts.append(_alert(
            "prediction_drift", severity, rate_text + ".",
            "Inspect the flagged rows: an attack or an upstream fault shows here first; if the inputs drifted "
            "too and the model misjudges them, roll back or import a retrained model.", version))
    if performance and performance.get("drifted"):
        severity = "critical" if performance["severity"] == "significant" else "warning"
        alerts.append(_alert(
            "performance_drift", severity, performance.get("detail", "F1 dropped."),
            "Roll back to the previous version if it performed better, or import a model retrained on recent "
            "labelled data.", version))
    if concept and concept.get("drifted"):
        severity = "critical" if concept["severity"] == "significant" else "warning"
        alerts.append(_alert(
            "concept_drift", severity,
            "Concept drift: performance dropped while the inputs did not drift, so what counts as an anomaly "
            "has changed.",
            "Retrain on recent labelled data and import the retrained model; a rollback helps only if an older "
            "version matches the new pattern.", version))
    return alerts
