"""The dashboard as an MCP App: the `ui://model-mcp/dashboard` resource and the `open_dashboard` tool.

Built with the SDK's `mcp.server.apps.Apps` extension and passed to the server's constructor by
`server.build_server`. Hosts that speak MCP Apps render the resource next to the conversation;
the page then calls the server's ordinary tools through the host (`tools/call`), so no tool is
needed only by the UI and none is hidden from the model.

`open_dashboard` answers for every host: the structured summary the page starts from, and a text
for hosts without Apps (what is registered, what serves, and where the browser page is).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.apps import Apps
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from model_mcp.core.manager import ModelManager
from model_mcp.ui import DASHBOARD_URI, dashboard_page

NEWEST_SHOWN = 5


class DashboardModel(BaseModel):
    """A list_models entry's summary: its fields mean what they mean there (no descriptions repeated
    in the tool listing, whose size agents pay for)."""

    version: str
    model_name: str | None
    status: str
    quality_score: float | None
    created_at: str | None


class DashboardResult(BaseModel):
    view: str = Field(description="models (the list) or version (one in detail).")
    version: str | None = Field(description="The version asked for.")
    deployed_version: str | None = Field(description="The version serving predict.")
    deployed_versions: dict[str, str] = Field(default_factory=dict, description="Per model name.")
    total: int = Field(description="Registered versions.")
    by_status: dict[str, int] = Field(description="How many versions have each status.")
    newest: list[DashboardModel] = Field(description="The newest versions, newest first.")
    read_only: bool = Field(description="True when the server offers no changing tools.")
    training_service: bool = Field(description="True when a training service folder is configured.")
    browser_url: str | None = Field(description="The page, over HTTP.")


Call = Callable[..., Awaitable[Any]]


def _summary_text(result: DashboardResult, focus: dict[str, Any] | None) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.by_status.items())) or "none"
    deployed = (", ".join(f"{name} {version}" for name, version in result.deployed_versions.items())
                if len(result.deployed_versions) > 1 else result.deployed_version or "nothing")
    lines = [f"model-mcp dashboard: {result.total} version(s) registered ({counts}); deployed: {deployed}."]
    if focus is not None:
        entry, validation = focus["entry"], focus["validation"]
        verdict = "not validated yet"
        if validation:
            verdict = (f"validation {'passed' if validation['passed'] else 'failed'}, quality "
                       f"{validation['quality_score']:.0f}/100")
            if validation["failed_checks"]:
                verdict += f", failed: {', '.join(validation['failed_checks'])}"
            if validation["warning_checks"]:
                verdict += f", warnings: {', '.join(validation['warning_checks'])}"
        lines.append(f"Version {entry['version']} ({entry.get('model_name')}): {entry['status']}, {verdict}; "
                     f"created {entry.get('created_at')}, imported {entry.get('imported_at')}.")
    elif result.newest:
        lines.append("Newest: " + "; ".join(
            f"{m.version} {m.model_name} {m.status}" + (f" {m.quality_score:.0f}" if m.quality_score is not None else "")
            for m in result.newest) + ".")
    where = "An MCP Apps host shows the interactive dashboard here"
    if result.browser_url:
        where += f"; in a browser, open {result.browser_url}"
    else:
        where += "; for a browser, run `model-mcp serve --transport http` and open its address"
    lines.append(where + ". Ask for list_models, get_model or performance_report for the details.")
    return "\n".join(lines)


def _browser_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def dashboard_apps(manager: ModelManager, *, call: Call) -> Apps:
    """The Apps extension for `build_server`: the HTML resource and the tool that opens it.

    `call(tool, fn, **kwargs)` is the server's runner (worker thread, error mapping), passed in so
    this module needs nothing else from `server.py`.
    """
    settings = manager.settings
    apps = Apps()
    apps.add_html_resource(
        DASHBOARD_URI,
        dashboard_page("mcp-app").html,
        name="dashboard",
        title="model-mcp dashboard",
        description="The model dashboard: registry, one version, actions, import, serving, drift, alerts, "
                    "history and the training service.",
        prefers_border=True,
    )

    @apps.tool(
        resource_uri=DASHBOARD_URI,
        name="open_dashboard",
        title="Open the model dashboard",
        description=(
            "Show the model dashboard: every registered version with its status and quality score, one "
            "version's validation checks, files and history, deploy/rollback/delete with confirmation, "
            "imports, serving charts, drift and alerts. Hosts with MCP Apps render it interactively; others "
            "get a short text summary. Give `version` to open on that version."
        ),
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False),
    )
    async def open_dashboard(
        version: Annotated[str | None, Field(description="Open the dashboard on this registered version.")] = None,
    ) -> Annotated[CallToolResult, DashboardResult]:
        focus = None
        if version is not None:
            model = await call("open_dashboard", manager.get_model, version=version)
            focus = model.model_dump(mode="json")
        listing = await call("open_dashboard", manager.list_models, limit=None)
        models = listing.models
        result = DashboardResult(
            view="version" if version is not None else "models",
            version=version,
            deployed_version=listing.deployed_version,
            deployed_versions=listing.deployed_versions,
            total=listing.total,
            by_status=dict(Counter(str(m.get("status")) for m in models)),
            newest=[DashboardModel(version=m["version"], model_name=m.get("model_name"), status=m["status"],
                                   quality_score=m.get("quality_score"), created_at=m.get("created_at"))
                    for m in models[:NEWEST_SHOWN]],
            read_only=settings.read_only,
            training_service=settings.training_dir is not None,
            browser_url=_browser_url(settings.host, settings.port) if settings.transport == "http" else None,
        )
        return CallToolResult(content=[TextContent(type="text", text=_summary_text(result, focus))],
                              structured_content=result.model_dump(mode="json"))

    return apps
