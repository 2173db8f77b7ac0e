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

import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError, WithJsonSchema

from model_mcp import __version__
from model_mcp.arguments import accepted_names, describe_argument_errors, forbid_unknown, strict_schema
from model_mcp.core.alerts import AlertsResult
from model_mcp.core.errors import ModelMcpError
from model_mcp.core.manager import ModelManager
from model_mcp.core.predict_answer import answer_text
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
    ScanResult,
    ValidationReport,
)
from model_mcp.listing import lean_schema
from model_mcp.logs import get_logger
from model_mcp.memory_release import OneShot
from model_mcp.ui.mcp_app import dashboard_apps

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
        # OneShot, not functools.partial: a worker thread keeps its last job, and with it the rows.
        return await anyio.to_thread.run_sync(OneShot(fn, **kwargs))
    except ModelMcpError as exc:
        log.info("tool_refused", tool=tool, code=exc.code, message=str(exc))
        count_refusal("mcp", exc.code)
        raise tool_error(exc) from None
    except Exception as exc:
        count_refusal("mcp", "internal_error")
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
    """MCPServer whose tools refuse unknown arguments, whose argument errors answer `[invalid_input]`,
    and whose tool listing is lean (`listing.lean_schema`: the same constraints in fewer bytes).

    Every tool's arguments model is made strict once, where tools are added (`forbid_unknown`):
    the listing then shows `additionalProperties: false` and a call with an undeclared name fails
    validation instead of being silently ignored. The SDK reports arguments that fail the input
    schema as a pydantic dump; an agent acts better on the contract's code and one sentence naming
    each argument.
    """

    def add_tool(self, fn: Callable[..., Any], name: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().add_tool(fn, name, *args, **kwargs)
        tool = self._tool_manager.get_tool(name or fn.__name__)
        if tool is not None:
            strict = forbid_unknown(tool.fn_metadata.arg_model)
            tool.fn_metadata.arg_model = strict  # type: ignore[assignment]
            tool.parameters = strict_schema(tool.parameters)

    async def list_tools(self) -> list[Any]:
        tools = await super().list_tools()
        for tool in tools:
            tool.input_schema = lean_schema(tool.input_schema)
            if tool.output_schema is not None:
                tool.output_schema = lean_schema(tool.output_schema, output=True)
        return tools

    # Called after each tool call (build_server sets it): lets the start's full model load begin.
    after_call: Callable[[], None] | None = None

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                tool = self._tool_manager.get_tool(name)
                accepted = accepted_names(tool.fn_metadata.arg_model) if tool is not None else []
                raise ToolError(f"[invalid_input] {describe_argument_errors(cause, accepted)}") from cause
            raise
        finally:
            if self.after_call is not None:
                self.after_call()


VersionArg = Annotated[str | None, Field(description="Or name@alias. Default: the deployed version.")]
ModelNameArg = Annotated[str | None, Field(description="Its deployed version; needed when several models serve.")]
_ROW = {"anyOf": [{"type": "array", "items": {"type": "number"}},
                  {"type": "object", "additionalProperties": {"type": "number"}}]}
_ROWS_SCHEMA = {"type": "array", "items": _ROW}
# The schema says what rows are; the value stays loosely typed so that a bad row answers
# [invalid_input] naming the row (the contract), not a schema error from the SDK.
RowsArg = Annotated[Any, WithJsonSchema({**_ROWS_SCHEMA, "description": (
    "Rows, each a list of numbers in feature_names order or an object keyed by feature name.")})]
OptionalRowsArg = Annotated[Any, WithJsonSchema({**_ROWS_SCHEMA, "description": "Rows as for predict."})]
LabelsArg = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "integer", "enum": [-1, 1]},
                                           "description": "One per row of that request: -1 anomaly, 1 normal."})]


ALERTS_URI = "models://alerts"


def _alert_notifications(manager: ModelManager, bus: InMemorySubscriptionBus) -> Callable[[Any], Any]:
    """A lifespan relaying alert changes to `models://alerts` subscribers (`subscriptions/listen`).

    Alerts change on other threads (the background check, tools in worker threads); the bus must be
    published to on the event loop. So the listener only counts changes, and a task on the loop
    publishes one ResourceUpdated per half second in which the count moved.
    """
    changes = [0]
    manager.alert_listeners.append(lambda records: changes.__setitem__(0, changes[0] + 1))

    async def relay() -> None:
        seen = changes[0]
        while True:
            await anyio.sleep(0.5)
            if changes[0] != seen:
                seen = changes[0]
                await bus.publish(ResourceUpdated(uri=ALERTS_URI))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as group:
            group.start_soon(relay)
            try:
                yield {}
            finally:
                group.cancel_scope.cancel()

    return lifespan


def build_server(manager: ModelManager) -> MCPServer:
    bus = InMemorySubscriptionBus()
    server = _Server(
        "model-mcp",
        title="model-mcp: anomaly-detection model lifecycle",
        version=__version__,
        instructions=INSTRUCTIONS,
        extensions=[dashboard_apps(manager, call=_call)],  # the MCP App: ui://model-mcp/dashboard, open_dashboard
        subscriptions=bus,
        lifespan=_alert_notifications(manager, bus),
    )
    server.after_call = manager.release_full_load
    read_only = manager.settings.read_only

    # --- import and registry -----------------------------------------------------------------
    if not read_only:

        @server.tool(
            title="Import a model package (ZIP)",
            description=(
                "Import a model package ZIP: safety checks, hashes against the manifest, trusted loading, "
                "validation, registration as `available` (or `failed`). Give `path` (on the server's disk) or "
                "`content_base64`. The same package again changes nothing (already_present). Does not deploy."
            ),
            annotations=_changing(idempotent=True),
        )
        async def import_zip(
            ctx: Context,
            path: Annotated[str | None, Field(description="A .zip on the server's disk.")] = None,
            content_base64: Annotated[str | None, Field(description="The ZIP's bytes, base64.")] = None,
            filename: Annotated[str | None, Field(description="Upload name, for the audit trail.")] = None,
        ) -> ImportResult:
            return await _call("import_zip", manager.import_zip, path=path, content_base64=content_base64,
                               filename=filename, progress=_ProgressRelay(ctx))

    @server.tool(
        title="List registered models",
        description=(
            "The catalog: registered versions (newest created_at first, or `sort`), the deployed version per "
            "model, a summary per model, the total matching. `query` matches name, description, tags, feature "
            "names, versions. Start here to find a version to deploy or inspect."
        ),
        annotations=READ_ONLY,
    )
    async def list_models(
        status: Literal["imported", "available", "deployed", "failed", "archived"] | None = None,
        model_name: str | None = None,
        limit: Annotated[int | None, Field(ge=0, le=10_000)] = None,
        offset: Annotated[int, Field(ge=0)] = 0,
        query: str | None = None,
        tag: str | None = None,
        min_quality_score: float | None = None,
        deployed_only: bool = False,
        sort: Literal["created_at", "imported_at", "quality_score", "semantic_version"] = "created_at",
    ) -> ListModelsResult:
        return await _call("list_models", manager.list_models, status=status, model_name=model_name,
                           limit=limit, offset=offset, query=query, tag=tag, min_quality_score=min_quality_score,
                           deployed_only=deployed_only, sort=sort)

    @server.tool(
        title="Get one model version",
        description=(
            "One version: registry entry, metadata (feature_names, metrics), file hashes, last validation "
            "summary, recent deploy/rollback events. The feature profile and every event: `details` or the "
            "resource models://{version}."
        ),
        annotations=READ_ONLY,
    )
    async def get_model(
        version: VersionArg = None,
        details: Annotated[bool, Field(description="Include the feature profile and every event.")] = False,
    ) -> GetModelResult:
        return await _call("get_model", manager.get_model, version=version, details=details)

    if not read_only:

        @server.tool(
            title="Validate a model version",
            description=(
                "Re-run every check on a version (hashes on disk, trusted loading, probe, quality, resource "
                "limits) and set it `available` or `failed` (deployed stays deployed). Answers checks "
                "pass/warn/fail/skip, a 0-100 score, recommendations, risks; saved as models://{version}/validation."
            ),
            annotations=_changing(idempotent=True),
        )
        async def validate(
            ctx: Context,
            version: VersionArg = None,
            deep: Annotated[bool, Field(description="false: skip loading and probing the model.")] = True,
        ) -> ValidationReport:
            return await _call("validate", manager.validate, version=version, deep=deep,
                               progress=_ProgressRelay(ctx))

    # --- serving -----------------------------------------------------------------------------
    if not read_only:

        @server.tool(
            title="Deploy a model version",
            description=(
                "Make a version serve predict for its model_name: validates it first, then switches atomically; "
                "that model's previous version becomes `available`, other models keep serving. On [validation_failed] (report attached) nothing changes and the old model "
                "keeps serving. `failed`/`archived` versions: [invalid_state]."
            ),
            annotations=_changing(idempotent=True),
        )
        async def deploy(
            ctx: Context,
            version: Annotated[str, Field(description="A registered version or name@alias.")],
            mode: Annotated[Literal["primary", "shadow", "canary"], Field(
                description="shadow: also scores every call, answers none; canary: answers traffic_percent.")
            ] = "primary",
            traffic_percent: Annotated[int | None, Field(ge=1, le=99)] = None,
        ) -> DeployResult:
            return await _call("deploy", manager.deploy, version=version, mode=mode, traffic_percent=traffic_percent,
                               progress=_ProgressRelay(ctx))

        @server.tool(
            title="Roll back the deployed model",
            description=(
                "Serve a model's previously deployed version again (repeated calls walk further back), or "
                "`to_version`. model_name: needed when several models serve. Validated first; on failure nothing "
                "changes. [no_rollback_target] if none."
            ),
            annotations=_changing(idempotent=False),
        )
        async def rollback(
            ctx: Context,
            to_version: str | None = None,
            model_name: str | None = None,
        ) -> DeployResult:
            return await _call("rollback", manager.rollback, to_version=to_version, model_name=model_name,
                               progress=_ProgressRelay(ctx))

        @server.tool(
            title="Set a model alias",
            description=(
                "Point `alias` (champion, candidate...) of a model at one of its versions, moving it from the version "
                "it named. Tools taking a version accept name@alias. 'deployed' is reserved. Audited."
            ),
            annotations=_changing(idempotent=True),
        )
        async def set_alias(model_name: str, alias: str, version: str) -> AliasResult:
            return await _call("set_alias", manager.set_alias, model_name=model_name, alias=alias, version=version)

        @server.tool(
            title="Delete a model alias",
            description=("Remove `alias` of a model; the version it named is unchanged and name@alias stops resolving. "
                         "Audited. An unknown alias: [not_found]."),
            annotations=_changing(idempotent=False),
        )
        async def delete_alias(model_name: str, alias: str) -> AliasResult:
            return await _call("delete_alias", manager.delete_alias, model_name=model_name, alias=alias)

    @server.tool(
        title="Compare a rollout with its primary",
        description=(
            "A shadow or canary against its model's deployed version: rows compared, label agreement, anomaly "
            "rates with a two-proportion test, score rank correlation, latency, errors, drift; verdict promote, "
            "hold or reject, with reasons and rows still needed."
        ),
        annotations=READ_ONLY,
    )
    async def rollout_report(model_name: ModelNameArg = None) -> RolloutReport:
        return await _call("rollout_report", manager.rollout_report, model_name=model_name)

    @server.tool(
        title="A model's rollout policy",
        description=("The stored rollout policy of a model (thresholds for the verdict, automatic promote/abort, "
                     "shadow of watched imports), or null, with the defaults."),
        annotations=READ_ONLY,
    )
    async def get_rollout_policy(model_name: str) -> PolicyResult:
        return await _call("get_rollout_policy", manager.get_rollout_policy, model_name=model_name)

    if not read_only:

        @server.tool(
            title="Promote a rollout",
            description=("Make a model's shadow or canary its deployed version: validated again, switched atomically, "
                         "audited; the old primary becomes available."),
            annotations=_changing(idempotent=False),
        )
        async def promote(ctx: Context, model_name: ModelNameArg = None) -> DeployResult:
            return await _call("promote", manager.promote, model_name=model_name, progress=_ProgressRelay(ctx))

        @server.tool(
            title="Abort a rollout",
            description=("End a model's shadow or canary; its deployed version serves alone. Audited. rollback also "
                         "ends a rollout."),
            annotations=_changing(idempotent=False),
        )
        async def abort_rollout(model_name: ModelNameArg = None) -> DeployResult:
            return await _call("abort_rollout", manager.abort_rollout, model_name=model_name)

        @server.tool(
            title="Set a model's rollout policy",
            description=("Thresholds rollout_report judges with; auto_promote / auto_abort act on the verdict and "
                         "shadow_on_import starts a shadow of watched imports. Opt-in, stored, audited. clear: remove."),
            annotations=_changing(idempotent=True),
        )
        async def set_rollout_policy(
            model_name: str,
            min_compared_rows: int | None = None,
            min_agreement: float | None = None,
            max_anomaly_rate_diff: float | None = None,
            min_quality_score: float | None = None,
            max_error_rate: float | None = None,
            max_latency_p95_ms: float | None = None,
            auto_promote: bool = False,
            auto_abort: bool = False,
            shadow_on_import: bool = False,
            clear: bool = False,
        ) -> PolicyResult:
            return await _call("set_rollout_policy", manager.set_rollout_policy, model_name=model_name, clear=clear,
                               min_compared_rows=min_compared_rows, min_agreement=min_agreement,
                               max_anomaly_rate_diff=max_anomaly_rate_diff, min_quality_score=min_quality_score,
                               max_error_rate=max_error_rate, max_latency_p95_ms=max_latency_p95_ms,
                               auto_promote=auto_promote, auto_abort=auto_abort, shadow_on_import=shadow_on_import)

    @server.tool(
        title="Predict with the deployed model",
        description=(
            "Score rows with the deployed model: labels (-1 anomaly, 1 normal), scores (lower = more "
            "anomalous), is_anomaly, request_id (for record_feedback)."
        ),
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False,
                                    open_world_hint=False),
    )
    async def predict(
        rows: RowsArg,
        model_name: Annotated[str | None, Field(description="Needed when several models serve.")] = None,
        version: Annotated[str | None, Field(description="Refuse ([version_mismatch]) unless this one serves.")] = None,
        exact_scores: bool = False,
        summary_only: bool = False,
        routing_key: Annotated[str | None, Field(description="Canary: the same key, the same side.")] = None,
    ) -> Annotated[CallToolResult, PredictResult]:
        answer = await _call("predict", manager.predict, rows=rows, version=version, model_name=model_name,
                             exact_scores=exact_scores, summary_only=summary_only, routing_key=routing_key)
        # The structured content carries the data; the text block repeats it only for small answers.
        return CallToolResult(content=[TextContent(type="text", text=answer_text(answer))], structured_content=answer)

    @server.tool(
        title="Performance of the deployed model",
        description=(
            "Serving figures of a version since its deploy, all processes, across restarts: requests, errors, "
            "latency p50/p95/p99 ms, throughput, anomaly rate, memory, alerts; a `series` per `bucket_s`."
        ),
        annotations=READ_ONLY,
    )
    async def performance_report(
        version: VersionArg = None,
        model_name: ModelNameArg = None,
        since: Annotated[str | None, Field(description="ISO-8601 UTC; default: the deploy.")] = None,
        until: Annotated[str | None, Field(description="ISO-8601 UTC; default: now.")] = None,
        bucket_s: Annotated[int, Field(description="A multiple of 60.")] = 60,
    ) -> PerformanceReport:
        return await _call("performance_report", manager.performance_report, version=version,
                           model_name=model_name, since=since,
                           until=until, bucket_s=bucket_s)

    @server.tool(
        title="The alert log",
        description=(
            "The alert log: operational and drift alerts with severity, message, action, first and last seen, "
            "count, and whether still active. Newest first."
        ),
        annotations=READ_ONLY,
    )
    async def get_alerts(
        version: Annotated[str | None, Field(description="Only this version's.")] = None,
        model_name: Annotated[str | None, Field(description="Only its deployed version's.")] = None,
        active_only: Annotated[bool, Field(description="Only alerts that still hold.")] = False,
        severity: Literal["info", "warning", "critical"] | None = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> AlertsResult:
        return await _call("get_alerts", manager.get_alerts, version=version, model_name=model_name,
                           active_only=active_only,
                           severity=severity, limit=limit)

    # --- monitoring ----------------------------------------------------------------------------
    @server.tool(
        title="Drift report",
        description=(
            "Has the input data moved away from training? Compares `current` (default: recent inputs) with "
            "`reference` (default: the training profile): per-feature tests, dataset verdict, prediction, "
            "performance and concept drift, alerts."
        ),
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False),
    )
    async def drift_report(
        version: VersionArg = None,
        model_name: ModelNameArg = None,
        current: OptionalRowsArg = None,
        reference: OptionalRowsArg = None,
        window: Annotated[int | None, Field(description="Only the last N recent inputs.")] = None,
    ) -> DriftReport:
        return await _call("drift_report", manager.drift_report, version=version, model_name=model_name,
                           current=current,
                           reference=reference, window=window)

    @server.tool(
        title="Record ground truth for a prediction",
        description=(
            "Give the true labels of an earlier predict call (by request_id), one per row; drift_report then "
            "measures performance and concept drift against evaluation_metrics. Again for the same request "
            "replaces its labels."
        ),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False),
    )
    async def record_feedback(
        request_id: str,
        labels: LabelsArg,
    ) -> FeedbackResult:
        return await _call("record_feedback", manager.record_feedback, request_id=request_id, labels=labels)

    @server.tool(
        title="Scan the training service's folder",
        description=(
            "List the training folder's packages (complete or not, imported or not); import "
            "the newest complete one (`import_latest`) or named versions, with import_zip's checks. Failures "
            "go to `errors`."
        ),
        annotations=_changing(idempotent=True),
    )
    async def scan_training_service(
        ctx: Context,
        import_latest: bool = False,
        import_versions: list[str] = [],  # noqa: B006
    ) -> ScanResult:
        return await _call("scan_training_service", manager.scan_training_service, import_latest=import_latest,
                           import_versions=import_versions, progress=_ProgressRelay(ctx))

    # --- registry housekeeping and the audit trail ------------------------------------------------
    if not read_only:

        @server.tool(
            title="Register hand-placed models",
            description=(
                "Register package folders copied by hand under the store's models/ (source `manual`), validated "
                "like an import. Broken folders are listed in `problems` with their code and left untouched."
            ),
            annotations=_changing(idempotent=True),
        )
        async def discover_models() -> DiscoverResult:
            return await _call("discover_models", manager.discover_models)

        @server.tool(
            title="Delete a model version",
            description=(
                "Remove a version that is not deployed: files, report and registry entry. Cannot be undone. "
                "The deployed one answers [invalid_state]: deploy or roll back first."
            ),
            annotations=_changing(idempotent=False, destructive=True),
        )
        async def delete_model(
            version: str,
        ) -> DeleteResult:
            return await _call("delete_model", manager.delete_model, version=version)

    @server.tool(
        title="Read the audit trail",
        description=(
            "The audit trail, newest first: imports, validations, deploys, rollbacks, deletes, discoveries, "
            "transfers, refused changes too (outcome `failed`). Use it to see who changed what and when."
        ),
        annotations=READ_ONLY,
    )
    async def get_history(
        kind: Literal["deployments", "transfers", "all"] = "all",
        limit: Annotated[int, Field(ge=1, le=10_000)] = 50,
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

    @server.resource(ALERTS_URI, name="alerts", title="The alert log",
                     description=("The 100 most recent alerts, newest first, as get_alerts answers them. Subscribers "
                                  "(subscriptions/listen) are told when an alert is raised, escalates or ends."),
                     mime_type="application/json")
    async def alerts_resource() -> str:
        return await _read_resource(ALERTS_URI, manager.get_alerts, limit=100)

    @server.resource("models://replicas", name="replicas", title="The replicas on this database",
                     description=("Every server on the PostgreSQL database: up or missing, its address, what it "
                                  "serves, whether it has caught up with the registry (on a home: this server alone)."),
                     mime_type="application/json")
    async def replicas_resource() -> str:
        return await _read_resource("models://replicas", manager.replicas)

    @server.resource("models://{version}", name="model", title="One model version",
                     description="get_model with every detail: full metadata, files, validation, all deployments.",
                     mime_type="application/json")
    async def model_resource(version: str) -> str:
        return await _read_resource(f"models://{version}", manager.entry_with_metadata, version=version)

    @server.resource("models://{version}/drift", name="drift_reports", title="A version's last drift reports",
                     description="Summaries of the last 20 drift_report runs on a version's serving inputs, newest "
                                 "first, from the monitoring store.", mime_type="application/json")
    async def drift_reports_resource(version: str) -> str:
        return await _read_resource(f"models://{version}/drift", manager.drift_history, version=version)

    @server.resource("models://{version}/validation", name="validation", title="A version's validation report",
                     description="The latest validation report of a version.", mime_type="application/json")
    async def validation_resource(version: str) -> str:
        return await _read_resource(f"models://{version}/validation", manager.validation_report, version=version)

    return server
