"""The MCP edge: tools, resources and the one place where core errors become tool errors.

`build_server(manager)` returns an MCPServer over a ModelManager. This is the only module that
imports `mcp`. Every tool runs the (blocking) use case in a worker thread, so the event loop keeps
answering other requests, and maps failures once:

- a ModelMcpError becomes `ToolError("[code] sentence")`, plus the attached report for
  `validation_failed`;
- anything else is logged with its traceback and answered as `[internal_error]`, with a reference
  to find the log line, and no path or traceback in the answer.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from model_mcp import __version__
from model_mcp.core.errors import ModelMcpError
from model_mcp.core.manager import ModelManager
from model_mcp.core.schemas import (
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
    ScanResult,
    ValidationReport,
)
from model_mcp.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")

INSTRUCTIONS = """\
model-mcp manages anomaly-detection models: import a package (ZIP), validate it, deploy it, predict
with the deployed model, and watch its performance and drift. Typical flow: import_zip -> list_models
-> validate -> deploy -> predict. Errors start with a code in brackets, such as [hash_mismatch];
act on the sentence that follows. Nothing changes when a call fails."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def _changing(*, idempotent: bool, destructive: bool = False) -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=False, destructive_hint=destructive, idempotent_hint=idempotent,
                           open_world_hint=False)


def tool_error(exc: ModelMcpError) -> ToolError:
    message = f"[{exc.code}] {exc}"
    report = exc.data.get("report") if exc.data else None
    if report is not None:
        message += "\nReport: " + json.dumps(report, default=str)
    return ToolError(message)


def internal_error(tool: str, exc: BaseException) -> ToolError:
    reference = uuid.uuid4().hex[:12]
    log.error("internal_error", tool=tool, reference=reference, exc_info=exc)
    return ToolError(f"[internal_error] {tool} failed unexpectedly; the server log has the details "
                     f"(reference {reference}). Nothing was changed.")


class _ProgressRelay:
    """Progress from a worker thread to the client, at most a few notifications a second."""

    def __init__(self, ctx: Context | None) -> None:
        self.ctx = ctx
        self.last_sent = 0.0
        self.last_message = ""

    def __call__(self, done: float, total: float | None, message: str) -> None:
        if self.ctx is None:
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if message == self.last_message and now - self.last_sent < 0.2 and not finished:
            return
        self.last_sent, self.last_message = now, message
        try:
            anyio.from_thread.run(self.ctx.report_progress, float(done), total, message)
        except Exception:  # progress is best effort: a client gone away must not fail the import
            log.debug("progress_not_sent", exc_info=True)


async def _call(tool: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
    except ModelMcpError as exc:
        log.info("tool_refused", tool=tool, code=exc.code, message=str(exc))
        raise tool_error(exc) from None
    except Exception as exc:
        raise internal_error(tool, exc) from None


async def _read_resource(uri: str, fn: Callable[..., Any], /, **kwargs: Any) -> str:
    try:
        value = await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
    except ModelMcpError as exc:
        raise ResourceError(f"[{exc.code}] {exc}") from None
    except Exception as exc:
        reference = uuid.uuid4().hex[:12]
        log.error("internal_error", resource=uri, reference=reference, exc_info=exc)
        raise ResourceError(f"[internal_error] reading {uri} failed (reference {reference}).") from None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, default=str, indent=2)


class _Server(MCPServer):
    """MCPServer whose argument-schema errors answer `[invalid_input]` like every other bad input.

    The SDK reports arguments that fail the input schema as a pydantic dump; an agent acts better on
    the contract's code and one sentence naming each argument.
    """

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(f"[invalid_input] {_describe_arguments(cause)}") from cause
            raise


def _describe_arguments(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"`{where}` is required" if error["type"] == "missing" else f"`{where}`: {error['msg']}")
    return "The arguments do not fit the tool's input schema: " + "; ".join(parts) + "."


VersionArg = Annotated[
    str | None,
    Field(description="A registered version (see list_models). Omit it to mean the deployed version."),
]


def build_server(manager: ModelManager) -> MCPServer:
    server = _Server(
        "model-mcp",
        title="model-mcp: anomaly-detection model lifecycle",
        version=__version__,
        instructions=INSTRUCTIONS,
    )
    read_only = manager.settings.read_only

    # --- import and registry -----------------------------------------------------------------
    if not read_only:

        @server.tool(
            title="Import a model package (ZIP)",
            description=(
                "Import an anomaly-detection model package from a ZIP file: safety checks, extraction, "
                "hash verification against deployment_manifest.json, trusted-type loading of model.joblib, "
                "validation and registration. Give `path` (a .zip on the server's disk) or `content_base64` "
                "(the ZIP's bytes, base64) with an optional `filename`. Answers the new version, its status "
                "(`available`, or `failed` when a validation check failed), warnings, and whether the very same "
                "package was already present (then nothing changes). The version is not deployed: call deploy."
            ),
            annotations=_changing(idempotent=True),
        )
        async def import_zip(
            ctx: Context,
            path: Annotated[str | None, Field(description="Path of a .zip file on the server's disk.")] = None,
            content_base64: Annotated[str | None, Field(description="The ZIP file's bytes, base64-encoded.")] = None,
            filename: Annotated[str | None, Field(description="The upload's file name, for the audit trail.")] = None,
        ) -> ImportResult:
            return await _call("import_zip", manager.import_zip, path=path, content_base64=content_base64,
                               filename=filename, progress=_ProgressRelay(ctx))

    @server.tool(
        title="List registered models",
        description=(
            "List the registered model versions, newest created_at first, with the deployed version and the "
            "total count matching the filters. Filter by `status` (imported, available, deployed, failed, "
            "archived) or `model_name`; page with `limit` and `offset`."
        ),
        annotations=READ_ONLY,
    )
    async def list_models(
        status: Annotated[Literal["imported", "available", "deployed", "failed", "archived"] | None,
                          Field(description="Only versions with this status.")] = None,
        model_name: Annotated[str | None, Field(description="Only versions of this model name.")] = None,
        limit: Annotated[int | None, Field(ge=0, le=10_000, description="At most this many entries.")] = None,
        offset: Annotated[int, Field(ge=0, description="Skip this many entries first.")] = 0,
    ) -> ListModelsResult:
        return await _call("list_models", manager.list_models, status=status, model_name=model_name,
                           limit=limit, offset=offset)

    @server.tool(
        title="Get one model version",
        description=(
            "One registered version in full: its registry entry, metadata.json, the sha256 and size of each "
            "file, the summary of its last validation, and its deploy and rollback events. Without `version`, "
            "the deployed version."
        ),
        annotations=READ_ONLY,
    )
    async def get_model(version: VersionArg = None) -> GetModelResult:
        return await _call("get_model", manager.get_model, version=version)

    if not read_only:

        @server.tool(
            title="Validate a model version",
            description=(
                "Run every validation check on a registered version: structure, metadata, manifest, file hashes "
                "on disk, trusted loading, interface, feature compatibility, a functional probe, quality "
                "(metrics, training size, age), resource limits and (if enabled by the operator) the package's "
                "validate_model.py. Saves the report (resource models://{version}/validation) and sets the "
                "status to `available` or `failed` (a deployed version stays deployed). `deep=false` skips "
                "loading the model. Answers the report: checks with pass/warn/fail/skip, a 0-100 quality "
                "score, recommendations and risks."
            ),
            annotations=_changing(idempotent=True),
        )
        async def validate(
            ctx: Context,
            version: VersionArg = None,
            deep: Annotated[bool, Field(description="Load and probe the model (default true).")] = True,
        ) -> ValidationReport:
            return await _call("validate", manager.validate, version=version, deep=deep,
                               progress=_ProgressRelay(ctx))

    # --- serving -----------------------------------------------------------------------------
    if not read_only:

        @server.tool(
            title="Deploy a model version",
            description=(
                "Make a registered version the one that serves predict. Runs pre-deployment validation first "
                "(file hashes re-checked on disk, trusted loading, functional probe, feature compatibility, the "
                "manifest's resource limits), then switches the resident model atomically; the previously "
                "deployed version becomes `available`. If validation fails, nothing changes, the old model keeps "
                "serving, and the answer is [validation_failed] with the report. Deploying the version that "
                "already serves is a no-op (already_deployed=true). `failed` or `archived` versions answer "
                "[invalid_state]."
            ),
            annotations=_changing(idempotent=True),
        )
        async def deploy(
            ctx: Context,
            version: Annotated[str, Field(description="The registered version to deploy (see list_models).")],
        ) -> DeployResult:
            return await _call("deploy", manager.deploy, version=version, progress=_ProgressRelay(ctx))

        @server.tool(
            title="Roll back the deployed model",
            description=(
                "Go back to the version deployed before the current one (walking back through the deployment "
                "history on repeated calls), or to `to_version`. The target is validated before it serves; if it "
                "fails, nothing changes. [no_rollback_target] when there is no earlier deployable version."
            ),
            annotations=_changing(idempotent=False),
        )
        async def rollback(
            ctx: Context,
            to_version: Annotated[str | None, Field(description="Roll back to this version instead.")] = None,
        ) -> DeployResult:
            return await _call("rollback", manager.rollback, to_version=to_version, progress=_ProgressRelay(ctx))

    @server.tool(
        title="Predict with the deployed model",
        description=(
            "Score rows with the deployed model, which stays loaded in memory. `rows` is a list of rows, each a "
            "list of numbers in the model's feature order or an object keyed by feature name (get_model shows "
            "feature_names). Answers labels (-1 anomaly, 1 normal), scores (decision_function: lower is more "
            "anomalous), is_anomaly, anomaly_count, the model_version that answered and a request_id for "
            "record_feedback. Give `version` to make sure that exact version answers ([version_mismatch] "
            "otherwise). Bad rows answer [invalid_input] naming the row (counted from 0) and the reason."
        ),
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False,
                                    open_world_hint=False),
    )
    async def predict(
        rows: Annotated[Any, Field(description="A list of rows: lists of numbers, or objects keyed by feature name.")],
        version: Annotated[str | None, Field(description="Answer only if this version is deployed.")] = None,
    ) -> PredictResult:
        return await _call("predict", manager.predict, rows=rows, version=version)

    @server.tool(
        title="Performance of the deployed model",
        description=(
            "Serving figures of a version since its deploy (default: the deployed one): requests, rows, "
            "errors and error rate, latency p50/p95/p99 in ms, throughput, anomaly rate, model file size and "
            "estimated memory, and active alerts (error rate, latency against the manifest's max_latency_ms, "
            "memory against max_memory_mb, a failed start load)."
        ),
        annotations=READ_ONLY,
    )
    async def performance_report(version: VersionArg = None) -> PerformanceReport:
        return await _call("performance_report", manager.performance_report, version=version)

    # --- monitoring ----------------------------------------------------------------------------
    @server.tool(
        title="Drift report",
        description=(
            "Compare what the model sees now with what it was trained on. `current` defaults to the recent "
            "predict inputs (the last `window` rows); `reference` defaults to the training feature_profile in "
            "metadata.json, else the first inputs after deploy; either can be given as rows (lists in feature "
            "order or objects keyed by name). Answers per-feature tests with p-values and effect sizes, the "
            "drifted features and the dataset verdict, prediction drift (anomaly rate and score distribution), "
            "performance and concept drift when record_feedback gave labels, and alerts with a severity and "
            "what to do. [insufficient_data] when there are too few rows (under 30) to judge."
        ),
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False),
    )
    async def drift_report(
        version: VersionArg = None,
        current: Annotated[Any, Field(description="Rows to judge instead of the recent predict inputs.")] = None,
        reference: Annotated[Any, Field(description="Rows to compare with instead of the training profile.")] = None,
        window: Annotated[int | None, Field(description="Use only the last N recent inputs.")] = None,
    ) -> DriftReport:
        return await _call("drift_report", manager.drift_report, version=version, current=current,
                           reference=reference, window=window)

    @server.tool(
        title="Record ground truth for a prediction",
        description=(
            "Give the true labels (-1 anomaly, 1 normal, one per row) of an earlier predict call, named by its "
            "request_id. drift_report then compares precision, recall and F1 on the labelled predictions with "
            "the model's evaluation_metrics (performance drift) and reports concept drift when performance "
            "drops while the inputs do not. Recording the same request again replaces its labels. "
            "[not_found] for an unknown or expired request_id; [invalid_input] when the count differs."
        ),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False),
    )
    async def record_feedback(
        request_id: Annotated[str, Field(description="The request_id a predict call answered.")],
        labels: Annotated[Any, Field(description="One label per row of that request: -1 anomaly, 1 normal.")],
    ) -> FeedbackResult:
        return await _call("record_feedback", manager.record_feedback, request_id=request_id, labels=labels)

    @server.tool(
        title="Scan the training service's folder",
        description=(
            "List the model packages the training service left in its folder (folders or .zip files, up to "
            "two levels down), newest created_at first: the version each would get, model name, created_at, "
            "location, kind, whether it is complete (a package still being written is not) and already "
            "imported, and problems found. With `import_latest`, import the newest complete package unless it "
            "is already imported; with `import_versions`, import those versions. Imports go through the same "
            "checks as import_zip, are registered with source `training_service` and recorded as transfers; "
            "per-package failures are listed in `errors`. [training_service_unavailable] when no training "
            "folder is configured or it cannot be read."
        ),
        annotations=_changing(idempotent=True),
    )
    async def scan_training_service(
        ctx: Context,
        import_latest: Annotated[bool, Field(description="Import the newest complete package.")] = False,
        import_versions: Annotated[list[str], Field(description="Import the packages giving these versions.")] = [],  # noqa: B006
    ) -> ScanResult:
        return await _call("scan_training_service", manager.scan_training_service, import_latest=import_latest,
                           import_versions=import_versions, progress=_ProgressRelay(ctx))

    # --- registry housekeeping and the audit trail ------------------------------------------------
    if not read_only:

        @server.tool(
            title="Register hand-placed models",
            description=(
                "Find package folders placed by hand under the store's models/ folder that have no registry "
                "entry, validate them like an import and register them with source `manual` under the version "
                "their package gives. Broken folders are reported with the reason (the contract's error code) "
                "and left untouched. Answers the registered versions and the problems."
            ),
            annotations=_changing(idempotent=True),
        )
        async def discover_models() -> DiscoverResult:
            return await _call("discover_models", manager.discover_models)

        @server.tool(
            title="Delete a model version",
            description=(
                "Remove a registered version that is not deployed: its files under models/, its validation "
                "report and its registry entry (recorded in the audit trail). The deployed version is refused "
                "with [invalid_state]: deploy or roll back to another version first. This cannot be undone."
            ),
            annotations=_changing(idempotent=False, destructive=True),
        )
        async def delete_model(
            version: Annotated[str, Field(description="The version to delete (see list_models).")],
        ) -> DeleteResult:
            return await _call("delete_model", manager.delete_model, version=version)

    @server.tool(
        title="Read the audit trail",
        description=(
            "The audit trail, newest first: imports, validations, deploys, rollbacks, deletes, discoveries and "
            "transfers from the training service, each with time, event, version, outcome and detail. Refused "
            "changes are recorded too (outcome `failed`). `kind`: deployments (deploys and rollbacks), "
            "transfers, or all."
        ),
        annotations=READ_ONLY,
    )
    async def get_history(
        kind: Annotated[Literal["deployments", "transfers", "all"], Field(description="Which events.")] = "all",
        limit: Annotated[int, Field(ge=1, le=10_000, description="At most this many events.")] = 50,
    ) -> HistoryResult:
        return await _call("get_history", manager.get_history, kind=kind, limit=limit)

    # --- resources ---------------------------------------------------------------------------
    @server.resource("models://registry", name="registry", title="The model registry",
                     description="Every registered version, as list_models sees it.", mime_type="application/json")
    async def registry_resource() -> str:
        return await _read_resource("models://registry", manager.list_models)

    @server.resource("models://history", name="history", title="The audit trail",
                     description="The 100 most recent audit events, newest first.", mime_type="application/json")
    async def history_resource() -> str:
        return await _read_resource("models://history", manager.get_history, kind="all", limit=100)

    @server.resource("models://{version}", name="model", title="One model version",
                     description="A registry entry with its metadata and last validation summary.",
                     mime_type="application/json")
    async def model_resource(version: str) -> str:
        return await _read_resource(f"models://{version}", manager.entry_with_metadata, version=version)

    @server.resource("models://{version}/validation", name="validation", title="A version's validation report",
                     description="The latest validation report of a version.", mime_type="application/json")
    async def validation_resource(version: str) -> str:
        return await _read_resource(f"models://{version}/validation", manager.validation_report, version=version)

    return server
