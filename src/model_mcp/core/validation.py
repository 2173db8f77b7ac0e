"""The validation checks and the quality score.

`validate_package` never raises for a bad package: every finding becomes a check (pass, warn, fail
or skip, with a sentence). The import path runs the strict checks first (package.inspect_package,
which raises the contract's codes) and hands over what it already has, so nothing is loaded twice.

Quality score: 100, minus 30 per failed check, minus 10 per warning from the `quality` check (each
low metric, small training set or old model counts once), minus 5 per other warning; never below 0.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model_mcp.core.errors import ModelLoadError, ModelMcpError
from model_mcp.core.footprint import estimate_memory_bytes
from model_mcp.core.isolated_probe import ProbeResult, run_isolated_probe
from model_mcp.core.model_checks import (
    anomaly_share,
    has_method,
    output_problems,
    probe_outputs,
    scorer_name,
    structural_problems,
)
from model_mcp.core.package import (
    OPTIONAL_FILES,
    REQUIRED_FILES,
    FileDigest,
    PackageContents,
    inspect_package,
)
from model_mcp.core.probe_slots import probe_slot
from model_mcp.core.schemas import Check, FileInfo, Metadata, ValidationReport, utc_now
from model_mcp.core.script_runner import run_validation_script
from model_mcp.core.unpickler import load_trusted
from model_mcp.settings import Settings

PROBE_ROWS = 100
FAIL_PENALTY = 30
QUALITY_WARNING_PENALTY = 10
OTHER_WARNING_PENALTY = 5


@dataclass
class ValidationOutcome:
    report: ValidationReport
    contents: PackageContents | None
    estimator: Any = None
    load_ms: float | None = None
    probe_ms: float | None = None
    memory_bytes: int | None = None
    model_file_bytes: int | None = None


@dataclass
class _Findings:
    checks: list[Check] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    quality_warnings: int = 0
    measurements: dict[str, float | int | None] = field(default_factory=dict)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name=name, status=status, detail=detail))  # type: ignore[arg-type]


def validate_package(
    root: Path,
    *,
    version: str,
    settings: Settings,
    deep: bool = True,
    contents: PackageContents | None = None,
    estimator: Any = None,
    load_ms: float | None = None,
    digests: dict[str, FileDigest] | None = None,
    probe: ProbeResult | None = None,
    recorded: dict[str, FileInfo] | None = None,
) -> ValidationOutcome:
    """Run every check on the package at `root`.

    `recorded` is the registry's `files` map (name -> sha256, size) taken at import: every file
    must still match it, so a model.joblib swapped together with its manifest entry (or a changed
    manifest) is caught, not only a file that disagrees with the manifest.
    """
    findings = _Findings()
    outcome = ValidationOutcome(report=None, contents=contents)  # type: ignore[arg-type]

    # Structure, metadata, manifest, hashes: the strict import checks, re-run on disk.
    if contents is None:
        try:
            contents = inspect_package(root, digests)
            if recorded:
                check_recorded(contents.files, recorded)
        except ModelMcpError as exc:
            _record_structural_failure(findings, exc)
            outcome.report = _report(version, findings, deep)
            return outcome
    outcome.contents = contents
    _structure_checks(findings, contents)

    if deep:
        # The first load and predict of a model file happen in a child process: a model that
        # crashes or hangs there fails validation instead of taking the server down.
        probe = probe or isolated_probe(contents, settings)
        if probe is not None and not probe.ok and estimator is None:
            # The child did not find a sound estimator: the file is never loaded in this process.
            _probe_failure(findings, probe)
        else:
            estimator, load_ms = _load_check(findings, contents, settings, estimator, load_ms)
        outcome.estimator, outcome.load_ms = estimator, load_ms
        if estimator is not None:
            _interface_check(findings, estimator)
            _feature_check(findings, estimator, contents.metadata)
            outcome.probe_ms = _probe_check(findings, estimator, contents.metadata, probe)
            outcome.memory_bytes = estimate_memory_bytes(estimator)
        outcome.model_file_bytes = contents.files["model.joblib"].size
        _resource_check(findings, contents, outcome)
    else:
        for name in ("model_load", "interface", "feature_compatibility", "functional_probe", "resources"):
            findings.add(name, "skip", "Skipped: a shallow validation (deep=false) does not load the model.")

    _quality_check(findings, contents.metadata, settings)
    _script_check(findings, contents, settings, deep)
    outcome.report = _report(version, findings, deep)
    return outcome


# --- structure ---------------------------------------------------------------------------------
def check_recorded(files: dict[str, FileDigest], recorded: dict[str, FileInfo]) -> None:
    """Every file recorded at import is still there with the same sha256 and size, and no new one."""
    from model_mcp.core.errors import HashMismatchError

    for name, info in sorted(recorded.items()):
        actual = files.get(name)
        if actual is None:
            raise HashMismatchError(f"{name} was part of this version at import and is gone.")
        if info.sha256 != actual.sha256 or info.size != actual.size:
            raise HashMismatchError(f"{name} changed on disk since import (its sha256 differs from the registry's).")
    added = sorted(set(files) - set(recorded))
    if added:
        raise HashMismatchError(f"{', '.join(added)} appeared in the version's folder after import.")



def _record_structural_failure(findings: _Findings, exc: ModelMcpError) -> None:
    check = {
        "missing_required_files": "structure",
        "invalid_metadata": "metadata",
        "invalid_manifest": "manifest",
        "hash_mismatch": "hashes",
        "invalid_version": "manifest",
    }.get(exc.code, "structure")
    order = ["structure", "metadata", "manifest", "hashes"]
    for name in order[: order.index(check)]:
        findings.add(name, "pass", "Checked before the failure below.")
    findings.add(check, "fail", f"[{exc.code}] {exc}")
    findings.risks.append("The stored package no longer matches what was imported; do not deploy it.")
    findings.recommendations.append("Re-import the package from its source, or delete this version.")


def _structure_checks(findings: _Findings, contents: PackageContents) -> None:
    if contents.missing_optional:
        findings.add("structure", "warn",
                     f"All required files are present ({', '.join(REQUIRED_FILES)}); "
                     f"optional files missing: {', '.join(contents.missing_optional)}.")
        if "README.md" in contents.missing_optional:
            findings.recommendations.append("Ship a README.md with the package so operators know what it does.")
    else:
        findings.add("structure", "pass",
                     f"All required and optional files are present ({', '.join(REQUIRED_FILES + OPTIONAL_FILES)}).")
    meta = contents.metadata
    findings.add("metadata", "pass",
                 f"metadata.json describes {meta.model_name!r} ({meta.model_type}) with "
                 f"{len(meta.feature_names)} features.")
    if contents.unlisted_files:
        findings.add("manifest", "warn",
                     "The manifest lists no hash for " + ", ".join(contents.unlisted_files)
                     + "; those files are not verified.")
        if "model.joblib" in contents.unlisted_files:
            findings.risks.append("model.joblib has no hash in the manifest: tampering cannot be detected.")
    else:
        findings.add("manifest", "pass", "The manifest lists every file of the package.")
    hashed = [n for n, f in contents.manifest.files.items() if f.sha256 is not None]
    findings.add("hashes", "pass", f"{len(hashed)} file(s) match their sha256 (and size where given).")


# --- the model ---------------------------------------------------------------------------------
def _probe_failure(findings: _Findings, probe: ProbeResult) -> None:
    """The checks of a model the child process found unsound, which this process never loads."""
    if probe.load_ms is None:
        findings.add("model_load", "fail", probe.detail)
        if probe.code == "untrusted_model":
            findings.risks.append("The model file references code outside the trusted set; it may be hostile.")
        skipped = "Skipped: the model did not load."
        for name in ("interface", "feature_compatibility", "functional_probe"):
            findings.add(name, "skip", skipped)
        return
    if probe.problems:
        findings.add("model_load", "fail",
                     "model.joblib loaded in a separate process, but its structure is unsafe to predict with: "
                     + "; ".join(probe.problems[:5])
                     + (f" (and {len(probe.problems) - 5} more)" if len(probe.problems) > 5 else ""))
        findings.risks.append("The model's internal structure is inconsistent; predicting with it could crash "
                              "or hang the server. It may be hostile.")
        for name in ("interface", "feature_compatibility", "functional_probe"):
            findings.add(name, "skip", "Skipped: the model's structure is unsafe.")
        return
    findings.add("model_load", "pass", f"model.joblib loaded in a separate process in {probe.load_ms:.0f} ms; "
                                       "it is not loaded in the server because its probe failed.")
    for name in ("interface", "feature_compatibility"):
        findings.add(name, "skip", "Skipped: the probe in a separate process failed.")
    findings.add("functional_probe", "fail", f"In a separate process: {probe.detail}")


def _load_check(findings: _Findings, contents: PackageContents, settings: Settings,
                estimator: Any, load_ms: float | None) -> tuple[Any, float | None]:
    if estimator is None:
        started = time.perf_counter()
        try:
            estimator = load_trusted(contents.model_path, settings.trusted_pairs,
                                     max_bytes=settings.max_unpacked_bytes)
        except ModelLoadError as exc:
            findings.add("model_load", "fail", f"[{exc.code}] {exc}")
            if exc.code == "untrusted_model":
                findings.risks.append("The model file references code outside the trusted set; it may be hostile.")
            for name in ("interface", "feature_compatibility", "functional_probe"):
                findings.add(name, "skip", "Skipped: the model did not load.")
            return None, None
        load_ms = (time.perf_counter() - started) * 1000
    problems = structural_problems(estimator, len(contents.metadata.feature_names))
    if problems:
        findings.add("model_load", "fail",
                     "model.joblib loaded, but its structure is unsafe to predict with: " + "; ".join(problems[:5])
                     + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
        findings.risks.append("The model's internal structure is inconsistent; predicting with it could crash "
                              "or hang the server. It may be hostile.")
        for name in ("interface", "feature_compatibility", "functional_probe"):
            findings.add(name, "skip", "Skipped: the model's structure is unsafe.")
        return None, load_ms
    findings.measurements["load_ms"] = round(load_ms or 0.0, 3)
    findings.add("model_load", "pass",
                 f"model.joblib loaded through the trusted-type loader as {type(estimator).__name__} "
                 f"in {load_ms or 0:.1f} ms.")
    return estimator, load_ms


def _interface_check(findings: _Findings, estimator: Any) -> None:
    if not has_method(estimator, "predict"):
        findings.add("interface", "fail", f"{type(estimator).__name__} has no predict method.")
        return
    scorer = scorer_name(estimator)
    if scorer is None:
        findings.add("interface", "warn",
                     f"{type(estimator).__name__} has predict but neither decision_function nor score_samples; "
                     "predict will answer without scores.")
        findings.recommendations.append("Use an estimator that exposes decision_function for anomaly scores.")
    else:
        findings.add("interface", "pass", f"{type(estimator).__name__} has predict and {scorer}.")


def _feature_check(findings: _Findings, estimator: Any, metadata: Metadata) -> None:
    expected = list(metadata.feature_names)
    n_in = getattr(estimator, "n_features_in_", None)
    names_in = getattr(estimator, "feature_names_in_", None)
    if n_in is None:
        findings.add("feature_compatibility", "warn",
                     "The model does not record n_features_in_; its input width cannot be checked before a probe.")
        return
    if int(n_in) != len(expected):
        findings.add("feature_compatibility", "fail",
                     f"The model expects {int(n_in)} features, but metadata.json names {len(expected)}.")
        return
    if names_in is not None and [str(n) for n in names_in] != expected:
        findings.add("feature_compatibility", "fail",
                     "The model was fitted on features named " + ", ".join(map(str, names_in))
                     + ", which differ from metadata.json's feature_names.")
        return
    detail = f"The model expects {int(n_in)} features, as metadata.json names them"
    detail += " (names match feature_names_in_)." if names_in is not None else "."
    findings.add("feature_compatibility", "pass", detail)


def isolated_probe(contents: PackageContents, settings: Settings) -> ProbeResult | None:
    """The child-process probe of a model file, once per file content (cached by sha256).

    None when the operator turned it off (`MODEL_MCP_ISOLATED_PROBE=false`). Only successes are
    cached: a failure is worth re-checking (a timeout on a busy machine).
    """
    if not settings.isolated_probe:
        return None
    key = (contents.files["model.joblib"].sha256, settings.trusted_pairs, settings.max_unpacked_bytes,
           tuple(contents.metadata.feature_names))
    with _PROBE_CACHE_LOCK:
        cached = _PROBE_CACHE.get(key)
    if cached is not None:
        return cached
    staging = settings.home / "staging"
    with probe_slot(settings.max_concurrent_probes):  # at most N children at once, process-wide
        with _PROBE_CACHE_LOCK:  # probed by another caller while this one waited for a slot?
            cached = _PROBE_CACHE.get(key)
        if cached is not None:
            return cached
        result = run_isolated_probe(
            contents.model_path, probe_batch(contents.metadata), extra_trusted=settings.trusted_pairs,
            timeout_s=settings.probe_timeout_s, memory_mb=settings.probe_memory_mb,
            max_bytes=settings.max_unpacked_bytes, scratch_parent=staging if staging.is_dir() else None,
        )
    if result.ok:
        with _PROBE_CACHE_LOCK:
            _PROBE_CACHE[key] = result
            while len(_PROBE_CACHE) > 512:
                _PROBE_CACHE.popitem(last=False)
    return result


_PROBE_CACHE: OrderedDict[tuple[Any, ...], ProbeResult] = OrderedDict()
_PROBE_CACHE_LOCK = threading.Lock()


def probe_batch(metadata: Metadata, n_rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that look like the training data: drawn through each feature's quantiles when the
    profile has them, else from its mean and std, else standard normal."""
    rng = np.random.default_rng(seed)
    columns = []
    profile = metadata.feature_profile or {}
    for name in metadata.feature_names:
        entry = profile.get(name)
        if entry is not None and entry.quantiles:
            u = rng.random(n_rows)
            columns.append(np.interp(u, np.linspace(0.0, 1.0, 11), np.asarray(entry.quantiles, dtype=float)))
        elif entry is not None and entry.mean is not None and entry.std is not None:
            columns.append(rng.normal(float(entry.mean), max(float(entry.std), 1e-12), n_rows))
        else:
            columns.append(rng.standard_normal(n_rows))
    return np.column_stack(columns).astype(np.float64)


def _probe_check(findings: _Findings, estimator: Any, metadata: Metadata,
                 isolated: ProbeResult | None = None) -> float | None:
    batch = probe_batch(metadata)
    source = "feature_profile" if metadata.feature_profile else "the feature count"
    if isolated is not None and not isolated.ok:
        # Not predicted here: the child process crashed, hung or found bad output.
        findings.add("functional_probe", "fail", f"In a separate process: {isolated.detail}")
        return None
    started = time.perf_counter()
    try:
        labels, scores, _scorer = probe_outputs(estimator, batch)
    except Exception as exc:  # the model is untrusted: any failure here is a finding
        findings.add("functional_probe", "fail",
                     f"Predicting {PROBE_ROWS} rows built from {source} failed: {type(exc).__name__}: "
                     f"{str(exc)[:200]}")
        return None
    probe_ms = (time.perf_counter() - started) * 1000
    findings.measurements["probe_ms"] = round(probe_ms, 3)
    problems = output_problems(labels, scores, PROBE_ROWS)
    if problems:
        findings.add("functional_probe", "fail", "The probe found: " + "; ".join(problems) + ".")
        return probe_ms
    rate = anomaly_share(labels)
    detail = f"{PROBE_ROWS} rows built from {source} gave finite outputs of the right shape in {probe_ms:.1f} ms"
    detail += f"; {rate:.0%} flagged as anomalies." if rate is not None else "."
    findings.add("functional_probe", "pass", detail)
    return probe_ms


def _resource_check(findings: _Findings, contents: PackageContents, outcome: ValidationOutcome) -> None:
    limits = contents.manifest.resources
    file_bytes = outcome.model_file_bytes or 0
    findings.measurements.update(model_file_bytes=file_bytes, memory_bytes=outcome.memory_bytes)
    parts = [f"model file {file_bytes / 1e6:.2f} MB"]
    if outcome.memory_bytes is not None:
        parts.append(f"estimated memory {outcome.memory_bytes / 1e6:.2f} MB")
    if outcome.load_ms is not None:
        parts.append(f"load {outcome.load_ms:.1f} ms")
    if outcome.probe_ms is not None:
        parts.append(f"probe of {PROBE_ROWS} rows {outcome.probe_ms:.1f} ms")
    over = []
    if limits is not None and limits.max_memory_mb is not None and outcome.memory_bytes is not None:
        limit_bytes = float(limits.max_memory_mb) * 1024 * 1024
        if outcome.memory_bytes > limit_bytes:
            over.append(f"memory {outcome.memory_bytes / 1048576:.1f} MiB over max_memory_mb {limits.max_memory_mb}")
    if limits is not None and limits.max_latency_ms is not None and outcome.probe_ms is not None:
        if outcome.probe_ms > float(limits.max_latency_ms):
            over.append(f"probe latency {outcome.probe_ms:.1f} ms over max_latency_ms {limits.max_latency_ms}")
    if over:
        findings.add("resources", "fail", "Over the manifest's limits: " + "; ".join(over) + ".")
        findings.recommendations.append("Shrink the model (fewer or shallower trees) or raise the manifest's limits.")
    elif limits is None or (limits.max_memory_mb is None and limits.max_latency_ms is None):
        findings.add("resources", "pass", "Measured " + ", ".join(parts) + "; the manifest sets no limits.")
    else:
        findings.add("resources", "pass", "Within the manifest's limits: " + ", ".join(parts) + ".")


# --- quality -----------------------------------------------------------------------------------
def _quality_check(findings: _Findings, metadata: Metadata, settings: Settings) -> None:
    problems: list[str] = []
    metrics = metadata.evaluation_metrics or {}
    for key, floor in (("f1_score", settings.min_f1), ("roc_auc", settings.min_roc_auc)):
        value = metrics.get(key)
        if value is not None and math.isfinite(value) and value < floor:
            problems.append(f"{key} {value:.2f} is under {floor:.2f}")
    if not metrics:
        problems.append("metadata.json gives no evaluation_metrics")
    n_samples = (metadata.training_info or {}).get("n_samples")
    if isinstance(n_samples, int | float) and not isinstance(n_samples, bool):
        if n_samples < settings.min_training_samples:
            problems.append(f"training used {int(n_samples)} samples, fewer than {settings.min_training_samples}")
    age_days = (datetime.now(UTC) - metadata.created).total_seconds() / 86400
    if age_days > settings.max_model_age_days:
        problems.append(f"the model is {int(age_days)} days old, over {settings.max_model_age_days}")
    findings.measurements["age_days"] = round(age_days, 1)
    if problems:
        findings.quality_warnings += len(problems)
        findings.add("quality", "warn", "Quality concerns: " + "; ".join(problems) + ".")
        findings.recommendations.append("Retrain or re-evaluate the model and import the new package.")
        findings.risks.append("The model's quality figures are weak or missing; watch it closely after deploy.")
    else:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, int | float))
        findings.add("quality", "pass", f"Evaluation metrics are above the floors ({shown}).")


def _script_check(findings: _Findings, contents: PackageContents, settings: Settings, deep: bool) -> None:
    if "validate_model.py" not in contents.files:
        findings.add("custom_script", "skip", "The package has no validate_model.py.")
    elif not settings.enable_custom_script:
        findings.add("custom_script", "skip",
                     "validate_model.py is present but not run: custom scripts are disabled (the default).")
    elif not deep:
        findings.add("custom_script", "skip", "Skipped: a shallow validation does not run the custom script.")
    else:
        result = run_validation_script(contents.root, timeout_s=settings.custom_script_timeout_s,
                                       memory_mb=settings.custom_script_memory_mb)
        findings.add("custom_script", result.status, result.detail)  # type: ignore[arg-type]


def _report(version: str, findings: _Findings, deep: bool) -> ValidationReport:
    fails = sum(1 for c in findings.checks if c.status == "fail")
    warns = sum(1 for c in findings.checks if c.status == "warn")
    other_warns = warns - (1 if findings.quality_warnings else 0)
    score = 100 - FAIL_PENALTY * fails - QUALITY_WARNING_PENALTY * findings.quality_warnings
    score -= OTHER_WARNING_PENALTY * other_warns
    if fails:
        failed = [c.name for c in findings.checks if c.status == "fail"]
        findings.recommendations.insert(0, "Fix the failed checks (" + ", ".join(failed) + ") before deploying.")
    return ValidationReport(
        version=version,
        passed=fails == 0,
        quality_score=float(max(0, min(100, score))),
        checks=findings.checks,
        recommendations=_unique(findings.recommendations),
        risks=_unique(findings.risks),
        generated_at=utc_now(),
        deep=deep,
        measurements=findings.measurements,
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
