"""The REST API under /api/v1: FastAPI routes over the same ModelManager as the MCP tools.

A route only parses and maps: it reads the request into keyword arguments, calls one
ModelManager method in a worker thread (the use cases block) and returns that method's pydantic
answer (`core/schemas.py`), which is also the response schema in the OpenAPI document. Every rule
(validation, read-only, limits, states) stays in the core, so REST and MCP answer alike.

Bad input is refused with 422 `invalid_input`: unknown query parameters and body fields too (the
request models forbid extra fields; `_refuse_unknown_query` checks the query against the route's
declared parameters). Failures are problem details (`problems.py`).

Two endpoints read their bodies themselves, because they take more than JSON: `POST /models`
(multipart `package`, a raw ZIP, or JSON `{"path"}`/`{"content_base64"}`, streamed with the upload
limit counted as it arrives: `uploads.py`) and `POST /predict` (JSON rows, or `text/csv` with a
header row of feature names). Their request bodies are declared in the document by hand.
"""

from __future__ import annotations

import csv
import functools
import io
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.routing import APIRoute
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from model_mcp import __version__
from model_mcp.core.alerts import AlertsResult
from model_mcp.core.errors import InvalidInputError, ModelMcpError
from model_mcp.core.manager import ModelManager
from model_mcp.core.refusals import count_refusal
from model_mcp.core.schemas import (
    AliasResult,
    PolicyResult,
    RolloutReport,
    DeleteResult,
    DeployResult,
    DiscoverResult,
    DriftReport,
    FeedbackResult,
    GetModelResult,
    HistoryResult,
    ImportResult,
    ListModelsResult,
    PerformanceReport,
    PredictResult,
    ReplicasResult,
    ScanResult,
    ValidationReport,
)
from model_mcp.http.problems import PROBLEM_CONTENT_TYPE, problem_for_error, problem_response
from model_mcp.http.uploads import ZIP_MEDIA_TYPES, media_type, read_json_body, stream_package
from model_mcp.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
API_PREFIX = "/api/v1"
MIB = 1024 * 1024


# --- the problem document in the schema ----------------------------------------------------------
class Problem(BaseModel):
    """RFC 9457 problem details, with the contract's error `code`."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="urn:model-mcp:problem:<code>")
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to do; the core's sentence.")
    code: str = Field(description="The contract's error code, as in `[code]` on /mcp.")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "A problem (RFC 9457): the `code` says which; see the README's table of statuses.",
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
}


# --- request bodies: unknown fields are refused ---------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImportRequest(_Body):
    path: str | None = Field(default=None, description="A .zip on the server's disk (see MODEL_MCP_IMPORT_ROOTS).")
    content_base64: str | None = Field(default=None, description="The ZIP's bytes, base64-encoded.")
    filename: str | None = Field(default=None, description="The upload's file name, for the audit trail.")


class ValidateRequest(_Body):
    deep: bool = Field(default=True, description="Load and probe the model (default true).")


class DeployRequest(_Body):
    """An empty object (or no body) deploys the version in the path as its model's primary."""

    mode: Literal["primary", "shadow", "canary"] = Field(
        default="primary", description="shadow: scores every call beside the primary; canary: answers a share.")
    traffic_percent: int | None = Field(default=None, ge=1, le=99, description="Canary: the share of calls.")


class RolloutRequest(_Body):
    model_name: str | None = Field(default=None, description="Needed when several models have a rollout.")


class PolicyRequest(_Body):
    model_name: str
    min_compared_rows: int | None = None
    min_agreement: float | None = None
    max_anomaly_rate_diff: float | None = None
    min_quality_score: float | None = None
    max_error_rate: float | None = None
    max_latency_p95_ms: float | None = None
    auto_promote: bool = False
    auto_abort: bool = False
    shadow_on_import: bool = False


class RollbackRequest(_Body):
    to_version: str | None = Field(default=None, description="Roll back to this version instead.")
    model_name: str | None = Field(default=None, description="The model to roll back; needed when several serve.")


class AliasRequest(_Body):
    model_name: str
    alias: str
    version: str = Field(description="A version of that model (or name@alias).")


_MODEL_NAME = "The model whose deployed version is meant; needed when several models serve."


class PredictRequest(_Body):
    rows: Any = Field(description="A list of rows: lists of numbers in feature order, or objects keyed by name.")
    routing_key: str | None = Field(default=None, max_length=256,
                                    description="Canary: calls with the same key go to the same side.")
    model_name: str | None = Field(default=None, description=_MODEL_NAME)
    version: str | None = Field(default=None, description="Answer only if this version is deployed.")
    exact_scores: bool = Field(default=False, description="Scores with every digit (default: 6 significant digits).")
    summary_only: bool = Field(default=False, description="`summary` instead of per-row lists (`labels` is []).")


class PredictSummary(BaseModel):
    label_counts: dict[str, int] = Field(description="Rows per label.")
    anomaly_indices: list[int] | None = Field(description="The anomalous rows, from 0.")
    score_quantiles: dict[str, float] | None = Field(description="min, p01, p05, p25, p50, p75, p95, p99, max.")


class DriftHistory(BaseModel):
    """The resource models://{version}/drift: what the monitoring store kept of the last drift reports."""

    version: str
    stored: bool = Field(description="False when the server keeps no monitoring store (then `reports` is empty).")
    reports: list[dict[str, Any]] = Field(
        description="Newest first: at, dataset_drift, share_drifted, drifted_features, n_current, current_source, "
                    "prediction/performance/concept_drifted, alerts (kind and severity).")


class PredictAnswer(PredictResult):
    """The predict tool's answer with its answer-shape fields, which the MCP listing leaves out to save bytes."""

    score_digits: int | None = Field(default=None, description="Significant digits of `scores`; null when exact.")
    summary: PredictSummary | None = Field(default=None, description="With summary_only.")


class DriftRequest(_Body):
    version: str | None = None
    model_name: str | None = Field(default=None, description=_MODEL_NAME)
    current: Any = Field(default=None, description="Rows to judge instead of the recent predict inputs.")
    reference: Any = Field(default=None, description="Rows to compare with instead of the training profile.")
    window: int | None = Field(default=None, description="Use only the last N recent inputs.")


class FeedbackRequest(_Body):
    request_id: str = Field(description="The request_id a predict call answered.")
    labels: Any = Field(description="One label per row of that request: -1 anomaly, 1 normal.")


class TrainingImportRequest(_Body):
    import_latest: bool = Field(default=False, description="Import the newest complete package.")
    import_versions: list[str] = Field(default_factory=list, description="Import the packages giving these versions.")


# --- helpers --------------------------------------------------------------------------------------
async def _run(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """One use case in a worker thread; an unexpected exception becomes internal_error (logged)."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
    except ModelMcpError:
        raise
    except Exception as exc:
        raise _internal(getattr(fn, "__name__", "call"), exc) from None


def _internal(what: str, exc: BaseException) -> ModelMcpError:
    reference = uuid.uuid4().hex[:12]
    log.error("internal_error", endpoint=what, reference=reference, exc_info=exc)
    return ModelMcpError(f"{what} failed unexpectedly; the server log has the details (reference {reference}). "
                         "Nothing was changed.")


def _describe(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for error in list(exc.errors())[:5]:
        loc = [str(p) for p in error.get("loc", ())]
        place = loc.pop(0) if loc and loc[0] in ("body", "query", "path") else "body"
        where = ".".join(loc) or "the body"
        if place != "body":
            where = f"{place} parameter {where}"
        if error.get("type") == "extra_forbidden":
            parts.append(f"`{where}` is not a field this endpoint takes")
        elif error.get("type") == "missing":
            parts.append(f"`{where}` is required")
        else:
            parts.append(f"`{where}`: {error.get('msg')}")
    return "The request does not fit the endpoint: " + "; ".join(parts) + "."


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise InvalidInputError(_describe(exc)) from None


async def _refuse_unknown_query(request: Request) -> None:
    """Query parameters the route does not declare are refused, not silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {param.alias for param in dependant.query_params} if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInputError(
            f"Unknown query parameter(s) {', '.join(repr(u[:64]) for u in unknown[:5])}; this endpoint takes "
            + (", ".join(sorted(known)) if known else "none") + "."
        )


def _rows_from_csv(raw: bytes) -> list[dict[str, Any]]:
    """CSV with a header row of feature names -> rows keyed by name; numbers parsed, the rest left to the core."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError("The CSV body is not UTF-8 text.") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if not header:
            raise InvalidInputError("The CSV body is empty: send a header row of feature names, then rows.")
        rows: list[dict[str, Any]] = []
        for line_no, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise InvalidInputError(f"CSV line {line_no} has {len(record)} values; the header names {len(header)}.")
            rows.append({name: _number(value) for name, value in zip(header, record, strict=True)})
    except csv.Error as exc:
        raise InvalidInputError(f"The CSV body cannot be read ({exc}).") from None
    return rows


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the core names the row and the value


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


# --- the app --------------------------------------------------------------------------------------
def build_rest_app(manager: ModelManager, *, max_json_bytes: int) -> FastAPI:
    """The REST app, to be mounted at /api/v1 (its OpenAPI document is then /api/v1/openapi.json).

    `max_json_bytes` bounds JSON bodies read by hand (imports with `content_base64`, predict).
    """
    app = FastAPI(
        title="model-mcp REST API",
        version=__version__,
        summary="The lifecycle of anomaly-detection models over HTTP: the same core as the MCP tools at /mcp.",
        openapi_url="/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN; the document is what clients need
        redoc_url=None,
        responses=PROBLEM_RESPONSES,
        dependencies=[Depends(_refuse_unknown_query)],
        servers=[{"url": API_PREFIX}],
        root_path_in_servers=False,
    )
    _install_error_handlers(app)
    router = APIRouter(route_class=_RowsRoute)
    limits = manager.limits

    # --- models -------------------------------------------------------------------------------
    @router.get("/models", response_model=ListModelsResult, tags=["models"], summary="List registered versions")
    async def list_models(
        status: Annotated[Literal["imported", "available", "deployed", "failed", "archived"] | None,
                          Query(description="Only versions with this status.")] = None,
        model_name: Annotated[str | None, Query(description="Only versions of this model name.")] = None,
        limit: Annotated[int | None, Query(ge=0, le=10_000, description="At most this many entries.")] = None,
        offset: Annotated[int, Query(ge=0, description="Skip this many entries first.")] = 0,
        query: Annotated[str | None, Query(max_length=500, description=(
            "Words matched (all of them, case-insensitive) against model name, description, tags, feature names "
            "and versions."))] = None,
        tag: Annotated[str | None, Query(description="Only versions carrying this tag.")] = None,
        min_quality_score: Annotated[float | None, Query(description="Only versions scoring at least this.")] = None,
        deployed_only: Annotated[bool, Query(description="Only deployed versions.")] = False,
        sort: Annotated[Literal["created_at", "imported_at", "quality_score", "semantic_version"],
                        Query(description="Newest, highest or greatest first.")] = "created_at",
    ) -> ListModelsResult:
        return await _run(manager.list_models, status=status, model_name=model_name, limit=limit, offset=offset,
                          query=query, tag=tag, min_quality_score=min_quality_score, deployed_only=deployed_only,
                          sort=sort)

    @router.post(
        "/models", response_model=ImportResult, status_code=201, tags=["models"],
        summary="Import a package ZIP (201 imported, 200 already present)",
        description=(
            "Send the ZIP as the multipart field `package`, as the raw body (`application/zip`), or name a file "
            "on the server's disk with JSON `{\"path\": ...}` (or send `{\"content_base64\": ...}`). The upload "
            "is streamed to the store's staging folder with its size counted: over MODEL_MCP_MAX_UPLOAD_BYTES "
            "the read stops with 413 `archive_too_large`."
        ),
        responses={200: {"description": "The very same package was already imported; nothing changed.",
                         "model": ImportResult}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["package"], "additionalProperties": False,
                "properties": {"package": {"type": "string", "format": "binary"}}}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": _schema_ref(ImportRequest)},
        }}},
    )
    async def import_model(request: Request, response: Response) -> ImportResult:
        kind = media_type(request)
        if kind == "application/json":
            body = _parse(ImportRequest, await read_json_body(request, max_json_bytes))
            result = await _run(manager.import_zip, path=body.path, content_base64=body.content_base64,
                                filename=body.filename)
        elif kind == "multipart/form-data" or kind in ZIP_MEDIA_TYPES:
            manager.check_writable("import_zip")  # before reading a body that may be hundreds of MB
            with manager.store.staging() as folder:
                target = folder / "upload.zip"
                filename = await stream_package(request, target, limits.max_upload_bytes)
                result = await _run(manager.import_uploaded, path=target, filename=filename)
        else:
            return problem_response(  # type: ignore[return-value]
                "unsupported_media_type",
                f"POST /models takes multipart/form-data (field `package`), application/zip or application/json, "
                f"not {kind or 'a body without a Content-Type'}.")
        if result.already_present:
            response.status_code = 200
        return result

    @router.get("/models/{version}", response_model=GetModelResult, tags=["models"], summary="One version in full")
    async def get_model(version: str) -> GetModelResult:
        return await _run(manager.get_model, version=version)

    @router.delete("/models/{version}", response_model=DeleteResult, tags=["models"],
                   summary="Delete a version that is not deployed")
    async def delete_model(version: str) -> DeleteResult:
        return await _run(manager.delete_model, version=version)

    @router.post("/models/{version}/validate", response_model=ValidationReport, tags=["models"],
                 summary="Run every validation check and save the report")
    async def validate(version: str, body: ValidateRequest | None = None) -> ValidationReport:
        return await _run(manager.validate, version=version, deep=(body or ValidateRequest()).deep)

    @router.get("/models/{version}/validation", response_model=ValidationReport, tags=["models"],
                summary="The saved validation report")
    async def validation_report(version: str) -> ValidationReport:
        return await _run(manager.validation_report, version=version)

    # --- deployment ---------------------------------------------------------------------------
    @router.post("/models/{version}/deploy", response_model=DeployResult, tags=["deployment"],
                 summary="Deploy a version (validated first; nothing changes when it fails)")
    async def deploy(version: str, body: DeployRequest | None = None) -> DeployResult:
        body = body or DeployRequest()
        return await _run(manager.deploy, version=version, mode=body.mode, traffic_percent=body.traffic_percent)

    @router.get("/rollout", response_model=RolloutReport, tags=["deployment"],
                summary="Compare a model's shadow or canary with its primary; verdict promote, hold or reject")
    async def rollout_report(
        model_name: Annotated[str | None, Query(description="Needed when several models have a rollout.")] = None,
    ) -> RolloutReport:
        return await _run(manager.rollout_report, model_name=model_name)

    @router.post("/rollout/promote", response_model=DeployResult, tags=["deployment"],
                 summary="Make the shadow or canary the model's deployed version (validated again)")
    async def promote(body: RolloutRequest | None = None) -> DeployResult:
        return await _run(manager.promote, model_name=(body or RolloutRequest()).model_name)

    @router.post("/rollout/abort", response_model=DeployResult, tags=["deployment"],
                 summary="End the rollout; the primary serves alone")
    async def abort_rollout(body: RolloutRequest | None = None) -> DeployResult:
        return await _run(manager.abort_rollout, model_name=(body or RolloutRequest()).model_name)

    @router.get("/rollout/policy", response_model=PolicyResult, tags=["deployment"],
                summary="A model's rollout policy (null: none) and the defaults")
    async def get_rollout_policy(model_name: Annotated[str, Query(description="The model.")]) -> PolicyResult:
        return await _run(manager.get_rollout_policy, model_name=model_name)

    @router.put("/rollout/policy", response_model=PolicyResult, tags=["deployment"],
                summary="Set a model's rollout policy (audited; automatic actions are opt-in)")
    async def set_rollout_policy(body: PolicyRequest) -> PolicyResult:
        return await _run(manager.set_rollout_policy, **body.model_dump())

    @router.delete("/rollout/policy", response_model=PolicyResult, tags=["deployment"],
                   summary="Remove a model's rollout policy")
    async def delete_rollout_policy(model_name: Annotated[str, Query(description="The model.")]) -> PolicyResult:
        return await _run(manager.set_rollout_policy, model_name=model_name, clear=True)

    @router.post("/rollback", response_model=DeployResult, tags=["deployment"],
                 summary="Roll back to the previous deployment, or to `to_version`")
    async def rollback(body: RollbackRequest | None = None) -> DeployResult:
        body = body or RollbackRequest()
        return await _run(manager.rollback, to_version=body.to_version, model_name=body.model_name)

    @router.put("/aliases", response_model=AliasResult, tags=["deployment"],
                summary="Point a model's alias at one of its versions (audited)")
    async def set_alias(body: AliasRequest) -> AliasResult:
        return await _run(manager.set_alias, model_name=body.model_name, alias=body.alias, version=body.version)

    @router.delete("/aliases", response_model=AliasResult, tags=["deployment"], summary="Remove a model's alias")
    async def delete_alias(
        model_name: Annotated[str, Query(description="The model.")],
        alias: Annotated[str, Query(description="The alias to remove.")],
    ) -> AliasResult:
        return await _run(manager.delete_alias, model_name=model_name, alias=alias)

    # --- serving and monitoring ---------------------------------------------------------------
    @router.post(
        "/predict", response_model=PredictAnswer, tags=["serving"], summary="Predict with the deployed model",
        description=(
            "JSON `{\"rows\": [...], \"version\": ..., \"exact_scores\": ..., \"summary_only\": ...}`, or "
            "`text/csv` whose header row names the features (then the same options go in the query). Rows are "
            "checked by the core: a bad row is 422 `invalid_input` naming it."
        ),
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": _schema_ref(PredictRequest)},
            "text/csv": {"schema": {"type": "string"}},
        }}},
    )
    async def predict(
        request: Request,
        version: Annotated[str | None, Query(description="With text/csv: answer only if this version is deployed.")]
        = None,
        exact_scores: Annotated[bool | None, Query(description="With text/csv: scores with every digit.")] = None,
        summary_only: Annotated[bool | None, Query(description="With text/csv: a summary, no per-row lists.")]
        = None,
        model_name: Annotated[str | None, Query(description="With text/csv: " + _MODEL_NAME)] = None,
        routing_key: Annotated[str | None, Query(max_length=256, description="With text/csv: a canary's routing key.")]
        = None,
    ) -> PredictAnswer:
        kind = media_type(request)
        options = {"version": version, "model_name": model_name, "exact_scores": exact_scores,
                   "summary_only": summary_only, "routing_key": routing_key}
        if kind == "text/csv":
            rows: Any = _rows_from_csv(await _read_capped(request, max_json_bytes))
            body = PredictRequest(rows=rows, **{k: v for k, v in options.items() if v is not None})
        elif kind == "application/json":
            body = _parse(PredictRequest, await read_json_body(request, max_json_bytes))
            given = [f"`{k}`" for k, v in options.items() if v is not None]
            if given:
                raise InvalidInputError(f"With a JSON body, give {', '.join(given)} in the body, not in the query.")
        else:
            return problem_response(  # type: ignore[return-value]
                "unsupported_media_type",
                f"POST /predict takes application/json or text/csv, not {kind or 'a body without a Content-Type'}.")
        return await _run(manager.predict, rows=body.rows, version=body.version,  # type: ignore[return-value]
                          model_name=body.model_name, exact_scores=body.exact_scores, summary_only=body.summary_only,
                          routing_key=body.routing_key)

    @router.get("/performance", response_model=PerformanceReport, tags=["monitoring"],
                summary="Serving figures of a version since its deploy")
    async def performance(
        version: Annotated[str | None, Query(description="A version; default the deployed one.")] = None,
        model_name: Annotated[str | None, Query(description=_MODEL_NAME)] = None,
        since: Annotated[str | None, Query(description="ISO-8601 UTC start of the span.")] = None,
        until: Annotated[str | None, Query(description="ISO-8601 UTC end of the span.")] = None,
        bucket_s: Annotated[int, Query(ge=60, le=86_400 * 30, description="Width of the series buckets, seconds.")] = 60,
    ) -> PerformanceReport:
        return await _run(manager.performance_report, version=version, model_name=model_name, since=since,
                          until=until, bucket_s=bucket_s)

    @router.get("/alerts", response_model=AlertsResult, tags=["monitoring"], summary="The alert log, newest first")
    async def alerts(
        version: Annotated[str | None, Query(description="Only this version's alerts.")] = None,
        model_name: Annotated[str | None, Query(description="Only its deployed version's alerts.")] = None,
        active_only: Annotated[bool, Query(description="Only alerts still active.")] = False,
        severity: Annotated[Literal["info", "warning", "critical"] | None, Query(description="Only this severity.")]
        = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many alerts.")] = 100,
    ) -> AlertsResult:
        return await _run(manager.get_alerts, version=version, model_name=model_name, active_only=active_only,
                          severity=severity,
                          limit=limit)

    @router.get("/models/{version}/drift", response_model=DriftHistory, tags=["monitoring"],
                summary="The last drift reports on a version's serving inputs, newest first")
    async def drift_history(
        version: str,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many reports.")] = 20,
    ) -> DriftHistory:
        return DriftHistory.model_validate(await _run(manager.drift_history, version=version, limit=limit))

    @router.post("/drift", response_model=DriftReport, tags=["monitoring"], summary="Drift report")
    async def drift(body: DriftRequest | None = None) -> DriftReport:
        body = body or DriftRequest()
        return await _run(manager.drift_report, version=body.version, model_name=body.model_name, current=body.current,
                          reference=body.reference, window=body.window)

    @router.post("/feedback", response_model=FeedbackResult, tags=["monitoring"],
                 summary="Record the true labels of an earlier predict call")
    async def feedback(body: FeedbackRequest) -> FeedbackResult:
        return await _run(manager.record_feedback, request_id=body.request_id, labels=body.labels)

    @router.get("/history", response_model=HistoryResult, tags=["monitoring"], summary="The audit trail")
    async def history(
        kind: Annotated[Literal["deployments", "transfers", "all"], Query(description="Which events.")] = "all",
        limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many events.")] = 50,
    ) -> HistoryResult:
        return await _run(manager.get_history, kind=kind, limit=limit)

    @router.get("/replicas", response_model=ReplicasResult, tags=["monitoring"],
                summary="The servers on this database: up or missing, what each serves, current or behind",
                description=("From the heartbeat each server writes every MODEL_MCP_REPLICA_HEARTBEAT_S seconds. "
                             "On a home's registry.json: this server alone, and `note` says why."))
    async def replicas() -> ReplicasResult:
        return await _run(manager.replicas)

    # --- the training service and discovery ---------------------------------------------------
    @router.get("/training", response_model=ScanResult, tags=["training"],
                summary="List the training service's packages (imports nothing)")
    async def training() -> ScanResult:
        return await _run(manager.scan_training_service)

    @router.post("/training/import", response_model=ScanResult, tags=["training"],
                 summary="Import the newest complete package and/or named versions from the training service")
    async def training_import(body: TrainingImportRequest | None = None) -> ScanResult:
        body = body or TrainingImportRequest()
        return await _run(manager.scan_training_service, import_latest=body.import_latest,
                          import_versions=body.import_versions)

    @router.post("/discover", response_model=DiscoverResult, tags=["training"],
                 summary="Register package folders placed by hand under models/")
    async def discover() -> DiscoverResult:
        return await _run(manager.discover_models)

    app.include_router(router)
    _declare_models(app, (Problem, ImportRequest, PredictRequest))
    return app


async def _read_capped(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidInputError(f"The body is over {limit} bytes; send fewer rows per call.")
        chunks.append(chunk)
    return b"".join(chunks)


def _declare_models(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Add models that only hand-written parts of the document refer to, to its components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = original()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(name, definition)
            schemas[model.__name__] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure as a problem document; counted by code for /metrics."""

    @app.exception_handler(ModelMcpError)
    async def core_error(request: Request, exc: ModelMcpError) -> Response:
        count_refusal("rest", exc.code)
        if exc.code != "internal_error":
            log.info("rest_refused", path=request.url.path, code=exc.code, message=str(exc))
        return problem_for_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        count_refusal("rest", "invalid_input")
        return problem_response("invalid_input", _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}.get(
            exc.status_code, "invalid_input")
        detail = {404: f"No endpoint {request.url.path}; the API's endpoints are listed in /api/v1/openapi.json.",
                  405: f"{request.method} is not a method of {request.url.path}."}.get(exc.status_code, str(exc.detail))
        count_refusal("rest", code)
        return problem_response(code, detail, status=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        count_refusal("rest", "internal_error")
        return problem_for_error(_internal(request.url.path, exc))


class _RowsRequest(Request):
    """A request whose JSON body reads its large matrices of numbers (the rows of /drift) as arrays,
    as stdio lines and read_json_body do (`row_matrices`), not as one float object per number."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            import json

            from model_mcp import row_matrices

            body = await self.body()
            try:
                self._json = row_matrices.loads(body, errors="strict")
            except UnicodeDecodeError:
                self._json = json.loads(body)  # UTF-16 or -32, which Starlette's json.loads detects
        return self._json


class _RowsRoute(APIRoute):
    """FastAPI reads JSON bodies through `request.json()`: give it a `_RowsRequest`."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_RowsRequest(request.scope, request.receive))

        return route
