"""Pydantic models: the package's JSON files, registry entries and every tool's answer.

The package models (`Metadata`, `Manifest`) are strict: a number where a string belongs is a
wrong type, not something to coerce, because a package is untrusted input. Unknown keys are kept.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from model_mcp.core.alerts import Alert  # noqa: F401  (one Alert type; answers below carry it)
from model_mcp.core.errors import InvalidManifestError, InvalidMetadataError
from model_mcp.core.text import control_characters, printable

Status = Literal["imported", "available", "deployed", "failed", "archived"]
Source = Literal["zip", "training_service", "manual"]
CheckStatus = Literal["pass", "warn", "fail", "skip"]
Number = StrictInt | StrictFloat
_Doc = TypeVar("_Doc", bound=BaseModel)
SHA256_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_timestamp(value: str) -> datetime:
    """ISO-8601 to an aware UTC datetime; a time without a zone is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the package ---------------------------------------------------------------------------
class FeatureProfile(BaseModel):
    model_config = ConfigDict(extra="allow")
    mean: Number | None = None
    std: Number | None = None
    min: Number | None = None
    max: Number | None = None
    quantiles: list[Number] | None = None

    @field_validator("quantiles")
    @classmethod
    def _eleven_ascending(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        if len(value) != 11:
            raise ValueError(f"must hold 11 numbers (0%, 10%, ..., 100%), not {len(value)}")
        if any(not math.isfinite(v) for v in value):
            raise ValueError("must hold finite numbers")
        if any(b < a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("must be ascending")
        return value


def _plain(name: str) -> str:
    """Names end up in sentences and terminals: no control characters (newlines, ANSI escapes)."""
    found = control_characters(name)
    if found:
        raise ValueError(f"{printable(name)!s} contains control characters ({', '.join(found[:5])})")
    return name


class Metadata(BaseModel):
    # `model_` names are the package's, not pydantic's.
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_name: StrictStr = Field(min_length=1)
    created_at: StrictStr
    model_type: StrictStr = Field(min_length=1)
    feature_names: list[StrictStr] = Field(min_length=1)
    version: StrictStr | None = None
    framework: dict[str, Any] | None = None
    training_info: dict[str, Any] | None = None
    evaluation_metrics: dict[str, Number | None] | None = None
    feature_profile: dict[str, FeatureProfile] | None = None
    # Catalog fields (optional): searchable by list_models; semantic_version is SemVer 2.0.0.
    description: StrictStr | None = Field(default=None, max_length=2000)
    tags: list[StrictStr] | None = Field(default=None, max_length=64)
    semantic_version: StrictStr | None = None

    @field_validator("semantic_version")
    @classmethod
    def _semver(cls, value: str | None) -> str | None:
        if value is not None:
            from model_mcp.core.semver import parse_semver

            parse_semver(value)
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        for tag in value or []:
            if not tag or len(tag) > 256:
                raise ValueError("tags must be non-empty strings of at most 256 characters")
            _plain(tag)
        return value

    @field_validator("created_at")
    @classmethod
    def _iso(cls, value: str) -> str:
        try:
            parse_timestamp(value)
        except (ValueError, OverflowError):  # "0001-01-01T00:00:00+01:00" overflows in UTC
            raise ValueError("must be an ISO-8601 date and time, such as 2026-11-20T14:30:22Z") from None
        return value

    @field_validator("model_name", "model_type")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return _plain(value)

    @field_validator("feature_names")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in value:
            if not name:
                raise ValueError("must not contain an empty name")
            _plain(name)
            if name in seen:
                raise ValueError(f"names {name!r} twice")
            seen.add(name)
        return value

    @property
    def created(self) -> datetime:
        return parse_timestamp(self.created_at)


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    sha256: StrictStr | None = None
    size: StrictInt | None = Field(default=None, ge=0)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not SHA256_PATTERN.fullmatch(value):
            raise ValueError("must be 64 hexadecimal characters")
        return value.lower() if value else value


class Resources(BaseModel):
    model_config = ConfigDict(extra="allow")
    max_memory_mb: Number | None = Field(default=None, gt=0)
    max_latency_ms: Number | None = Field(default=None, gt=0)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_version: StrictStr | None = None
    files: dict[str, ManifestFile]
    resources: Resources | None = None

    @field_validator("files", mode="before")
    @classmethod
    def _bare_hex(cls, value: Any) -> Any:
        # A bare hex string stands for {"sha256": "<hex>"}.
        if isinstance(value, dict):
            for name in value:
                if isinstance(name, str):
                    _plain(name)
            return {k: ({"sha256": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value


# `Number` is StrictInt | StrictFloat: pydantic reports a wrong type once per branch, under a tag
# that is not a key of the document (`f1_score.int`, `f1_score.float`); say it once, as the key.
_NUMBER_BRANCHES = {("int", "int_type"), ("float", "float_type")}


def _describe_errors(document: str, exc: ValidationError) -> str:
    described: dict[str, None] = {}  # an ordered set of sentences
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) > 1 and (loc[-1], error["type"]) in _NUMBER_BRANCHES:
            key = ".".join(str(p) for p in loc[:-1])
            described[f"`{key}`: Input should be a number"] = None
            continue
        key = ".".join(str(p) for p in loc) or "(the document)"
        if error["type"] == "missing":
            described[f"`{key}` is required"] = None
        else:
            message = error["msg"].removeprefix("Value error, ")
            described[f"`{key}`: {message}"] = None
    parts = list(described)[:5]
    more = len(described) - 5
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"{document} is not valid: " + "; ".join(parts) + suffix + "."


def _load_json(document: str, raw: bytes, error: type[Exception]) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(f"{document} is not readable JSON: {str(exc)[:200]}.") from None
    if not isinstance(value, dict):
        raise error(f"{document} must hold a JSON object, not {type(value).__name__}.")
    return value


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    # `1e400` would otherwise become inf, the value `_refuse_constant` refuses as `Infinity`.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range for a number")
    return value


def _parse_document(document: str, raw: bytes, model: type[_Doc], error: type[Exception]) -> _Doc:
    data = _load_json(document, raw, error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(_describe_errors(document, exc)) from None


def parse_metadata(raw: bytes) -> Metadata:
    return _parse_document("metadata.json", raw, Metadata, InvalidMetadataError)


def parse_manifest(raw: bytes) -> Manifest:
    return _parse_document("deployment_manifest.json", raw, Manifest, InvalidManifestError)


# --- the registry ----------------------------------------------------------------------------
class FileInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    sha256: str
    size: int


# Fields this server writes beside the contract's; an older registry may hold them in another
# shape, which is kept under `legacy_<name>` rather than refusing the whole registry.
_TYPED_EXTRAS = ("model_type", "origin", "validated_at", "files", "aliases", "semantic_version", "tags",
                 "description", "feature_names", "rollout")


class RegistryEntry(BaseModel):
    """One version in registry.json. Unknown fields (from older registries or later versions) are kept."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    version: str
    model_name: str | None = None
    status: Status = "imported"
    path: str
    created_at: str | None = None
    imported_at: str | None = None
    source: Source = "manual"
    deployed_at: str | None = Field(default=None, description="When it started serving; null unless deployed.")
    quality_score: float | None = None
    model_type: str | None = None
    origin: str | None = Field(default=None, description="The ZIP, upload or training-folder place it came from.")
    validated_at: str | None = None
    files: dict[str, FileInfo] | None = Field(default=None, description="sha256 and size of each file at import.")
    # The catalog (issue: several models): aliases name this version within its model; the rest is
    # copied from metadata.json at registration so that a search reads no package file.
    aliases: list[str] | None = None
    semantic_version: str | None = None
    tags: list[str] | None = None
    description: str | None = None
    feature_names: list[str] | None = None
    # A rollout in progress with this version as the candidate: {"mode": "shadow" | "canary", "primary",
    # "traffic_percent", "started_at"}; its model's deployed version is the primary.
    rollout: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("status") == "active":
            data["status"] = "deployed"
        for name in _TYPED_EXTRAS:
            if name in data and not _fits(name, data[name]):
                data[f"legacy_{name}"] = data.pop(name)
        return data

    def registry_json(self) -> dict[str, Any]:
        """The entry as registry.json holds it: the typed extras only when known."""
        data = self.model_dump(mode="json")
        for name in _TYPED_EXTRAS:
            if data.get(name) is None or data.get(name) == []:
                data.pop(name, None)
        return data


def _fits(name: str, value: Any) -> bool:
    try:
        _EXTRA_ADAPTERS[name].validate_python(value)
    except ValidationError:
        return False
    return True


_EXTRA_ADAPTERS = {name: TypeAdapter(RegistryEntry.model_fields[name].annotation) for name in _TYPED_EXTRAS}


# --- validation ------------------------------------------------------------------------------
class Check(BaseModel):
    name: str
    status: CheckStatus
    detail: str = Field(description="What was checked and found.")


class ValidationSummary(BaseModel):
    passed: bool
    quality_score: float = Field(description="0-100.")
    failed_checks: list[str]
    warning_checks: list[str]
    generated_at: str | None = None


class ValidationReport(BaseModel):
    version: str
    passed: bool = Field(description="False when a check failed; warnings pass.")
    quality_score: float = Field(description="0-100, lowered per warning and failure.")
    checks: list[Check]
    recommendations: list[str]
    risks: list[str]
    generated_at: str
    deep: bool = True
    measurements: dict[str, float | int | None] = Field(default_factory=dict)

    def summary(self) -> ValidationSummary:
        return ValidationSummary(
            passed=self.passed,
            quality_score=self.quality_score,
            failed_checks=[c.name for c in self.checks if c.status == "fail"],
            warning_checks=[c.name for c in self.checks if c.status == "warn"],
            generated_at=self.generated_at,
        )


# --- tool answers ----------------------------------------------------------------------------
class ImportResult(BaseModel):
    version: str
    model_name: str
    status: Status
    already_present: bool = Field(description="Imported before with the same content; nothing changed.")
    warnings: list[str]
    missing_optional_files: list[str]
    extra_files: list[str]
    validation: ValidationSummary | None
    source: Source = "zip"
    path: str | None = None


class ModelSummary(BaseModel):
    model_name: str
    deployed_version: str | None
    versions: int = Field(description="Registered versions of this model.")
    latest_version: str = Field(description="By created_at.")
    memory_bytes: int | None = Field(description="Estimated memory of its resident model in this process.")


class ListModelsResult(BaseModel):
    models: list[dict[str, Any]] = Field(description="The matching versions, in `sort` order.")
    deployed_version: str | None = Field(description="With several models: the most recently deployed.")
    deployed_versions: dict[str, str] = Field(default_factory=dict, description="Per model name.")
    model_summaries: list[ModelSummary] = Field(default_factory=list, description="Per model name (all).")
    total: int = Field(description="Matches before limit/offset.")
    deployed_load_error: str | None = Field(
        default=None, description="Why the deployed version failed to load at start."
    )
    registry_problem: str | None = Field(
        default=None,
        description="The registry is damaged or unreachable: this answer is the last good copy; changes refuse.",
    )
    warnings: list[str] = Field(default_factory=list, description="Set-up problems: training folder, placed folders.")


class RolloutReport(BaseModel):
    model_name: str
    mode: Literal["shadow", "canary"]
    primary_version: str
    candidate_version: str
    started_at: str
    traffic_percent: int | None
    rows: int = Field(description="Shadow: rows compared; canary: rows the canary answered.")
    label_agreement: float | None = Field(description="Shadow: share of compared rows with the same label.")
    anomaly_rate_primary: float | None
    anomaly_rate_candidate: float | None
    anomaly_rate_p_value: float | None = Field(description="Two-proportion z-test, two-sided.")
    score_rank_correlation: float | None = Field(description="Shadow: Spearman's rho of the scores.")
    latency_p50_ms: dict[str, float | None] = Field(description="primary, candidate.")
    latency_p95_ms: dict[str, float | None]
    error_rate: dict[str, float | None]
    requests: dict[str, int]
    dataset_drift: dict[str, bool | None] = Field(description="Each against the training profile; null: too few rows.")
    dropped_rows: int = Field(description="Shadow rows the full queue could not take.")
    verdict: Literal["promote", "hold", "reject"]
    reasons: list[str]
    rows_needed: int
    policy: dict[str, Any] = Field(description="The thresholds used (the model's policy, else the defaults).")
    policy_set: bool


class PolicyResult(BaseModel):
    model_name: str
    policy: dict[str, Any] | None = Field(description="The stored policy; null: none (defaults judge, nothing automatic).")
    defaults: dict[str, Any]


class AliasResult(BaseModel):
    model_name: str
    alias: str
    version: str | None = Field(description="The version the alias names now; null once deleted.")
    previous_version: str | None = Field(description="The version it named before.")


class GetModelResult(BaseModel):
    entry: dict[str, Any]
    metadata: dict[str, Any] | None
    files: dict[str, FileInfo]
    validation: ValidationSummary | None
    deployments: list[dict[str, Any]] = Field(description="Deploy and rollback events, newest first.")
    omitted: list[str] = Field(default_factory=list, description="Left out here; read details_uri for them.")
    details_uri: str | None = Field(default=None, description="The resource with every detail.")


class DeployResult(BaseModel):
    deployed_version: str
    model_name: str | None = None
    mode: Literal["primary", "shadow", "canary"] = "primary"
    traffic_percent: int | None = None
    previous_version: str | None
    load_ms: float
    probe_ms: float | None = Field(description="A probe predict of 100 rows.")
    validation: ValidationSummary
    already_deployed: bool = Field(default=False, description="It was already serving.")
    rolled_back: bool = False


class PredictResult(BaseModel):
    model_name: str | None = None
    model_version: str = Field(description="The one version that answered.")
    request_id: str = Field(description="For record_feedback.")
    n_rows: int
    labels: list[int | float | str | bool] = Field(description="-1 anomaly, 1 normal.")
    scores: list[float] | None = Field(description="Lower = more anomalous.")
    is_anomaly: list[bool] | None
    anomaly_count: int | None
    latency_ms: float


class LatencyFigures(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


# One bucket of performance_report's series: start (ISO-8601 UTC), counts, latency percentiles, the
# anomaly rate, the CPU seconds the serving processes spent and the largest RSS one reported (README).
class SeriesPoint(BaseModel):
    start: str
    requests: int
    rows: int
    errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    anomaly_rate: float | None
    cpu_s: float
    rss_mb: float | None


class ServingProcess(BaseModel):  # last_seen: its last write to the monitoring store
    pid: int
    host: str
    started_at: str
    last_seen: str


class PerformanceReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str
    deployed_at: str | None
    n_requests: int
    n_rows: int
    n_errors: int
    error_rate: float
    latency_ms: LatencyFigures
    throughput_rows_per_s: float | None
    anomaly_rate: float | None
    model_file_bytes: int | None
    memory_bytes: int | None
    alerts: list[Alert]
    serving: bool = Field(default=True, description="False once it no longer serves.")
    since: str | None = None
    until: str | None = None
    bucket_s: int | None = None
    series: list[SeriesPoint] = Field(default_factory=list, description="Buckets with traffic, oldest first.")
    processes: list[ServingProcess] = Field(default_factory=list, description="The processes counted.")
    covers: str | None = Field(default=None, description="What the figures cover.")


class Readiness(BaseModel):
    ready: bool = Field(description="True when predict is served as the registry says (or nothing is deployed).")
    state: Literal["serving", "nothing_deployed", "loading", "load_failed"]
    version: str | None = Field(description="The version serving, loading or failed to load.")
    detail: str


class ReplicaInfo(BaseModel):
    """One server process on the database, as its heartbeat last wrote it (core/replicas.py)."""

    replica_id: str = Field(description="Generated by the process at start; a restart is a new replica.")
    this_process: bool = Field(description="True for the server that answered this call.")
    host_name: str
    pid: int
    address: str = Field(description="host:port of its HTTP transport, or 'stdio'.")
    state: Literal["up", "missing"] = Field(
        description="up: seen within 3 heartbeat intervals (the database's clock); missing: not since.")
    current: bool | None = Field(description="True when it serves the registry's latest generation; false: behind "
                                             "(still loading a deploy, or failed to: see note); null: unknown.")
    applied_generation: int | None = Field(description="The registry generation whose deployed versions it serves.")
    serves: dict[str, str] = Field(description="{model name: the version resident in it}.")
    note: str | None = Field(default=None, description="Why it does not serve what is deployed, when it says.")
    started_at: str | None
    last_seen: str | None
    seen_s_ago: float
    interval_s: float = Field(description="Its heartbeat interval, seconds.")
    server_version: str = Field(description="The model-mcp version it runs.")
    artifact_root: bool = Field(description="Whether it loads package files from a shared artifact folder.")


class ReplicasResult(BaseModel):
    replicas: list[ReplicaInfo] = Field(description="Up first, then missing; rows unseen for a day are pruned.")
    registry_generation: int | None = Field(
        description="The registry's generation (bumped by every registry change); null on a home's registry.json.")
    database: bool = Field(description="True on PostgreSQL, where every replica writes a heartbeat.")
    up: int
    missing: int
    behind: int = Field(description="Replicas up but not serving the latest registry generation.")
    note: str | None = Field(default=None, description="What the list can and cannot show here.")


class DiscoveryProblem(BaseModel):
    folder: str
    code: str
    message: str


class DiscoverResult(BaseModel):
    registered: list[str] = Field(description="Registered by this call.")
    problems: list[DiscoveryProblem] = Field(description="Folders left unregistered, with the reason.")


class DeleteResult(BaseModel):
    version: str
    deleted: bool
    files_removed: bool = Field(default=True, description="False: its folder was outside models/, kept.")


class HistoryResult(BaseModel):
    events: list[dict[str, Any]] = Field(description="Newest first: at, event, version, outcome, detail.")


class FeedbackResult(BaseModel):
    request_id: str
    n_labels: int
    n_labelled_total: int = Field(description="Labelled rows held for this version.")
    version: str


class DriftReport(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str
    reference_source: str = Field(description="feature_profile, baseline_window or rows.")
    n_reference: int
    current_source: str = Field(description="recent_window or rows.")
    n_current: int
    features: list[dict[str, Any]] = Field(
        description="Per feature: test, statistic, p_value, drift_score, drifted."
    )
    drifted_features: list[str]
    share_drifted: float
    dataset_drift: bool
    prediction_drift: dict[str, Any] | None
    performance_drift: dict[str, Any] | None
    concept_drift: dict[str, Any] | None
    alerts: list[Alert]
    generated_at: str


class ScanError(BaseModel):
    location: str | None = Field(description="Null if no package matched.")
    code: str
    message: str
    version: str | None = None


class ScanResult(BaseModel):
    training_dir: str
    packages: list[dict[str, Any]] = Field(
        description="Newest first: version, model_name, created_at, location, kind, complete, "
                    "already_imported, problems."
    )
    imported: list[str] = Field(description="Imported by this call.")
    already_present: list[str] = Field(default_factory=list, description="Asked for, already there.")
    errors: list[ScanError] = Field(description="Failed imports, with codes.")
    health: dict[str, Any] = Field(
        default_factory=dict, description="reachable, readable, last_scan, last_error, watching, interval_s.")
