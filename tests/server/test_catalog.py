"""The tool catalog as a client sees it: a change to the contract must be deliberate."""

from __future__ import annotations

import pytest
from mcp import Client

from model_mcp.core.manager import ModelManager
from model_mcp.server import build_server
from tests.conftest import store_state
from tests.helpers import call

pytestmark = pytest.mark.anyio

# name: (readOnlyHint, destructiveHint, idempotentHint, required arguments)
CATALOG = {
    "import_zip": (False, False, True, []),
    "list_models": (True, False, True, []),
    "get_model": (True, False, True, []),
    "validate": (False, False, True, []),
    "deploy": (False, False, True, ["version"]),
    "rollback": (False, False, False, []),
    "predict": (True, False, False, ["rows"]),
    "performance_report": (True, False, True, []),
    "drift_report": (True, False, True, []),
    "record_feedback": (False, False, True, ["labels", "request_id"]),
    "scan_training_service": (False, False, True, []),
    "discover_models": (False, False, True, []),
    "delete_model": (False, True, False, ["version"]),
    "get_history": (True, False, True, []),
    "open_dashboard": (True, False, True, []),
    "get_alerts": (True, False, True, []),
    "set_alias": (False, False, True, ["alias", "model_name", "version"]),
    "delete_alias": (False, False, False, ["alias", "model_name"]),
    "rollout_report": (True, False, True, []),
    "get_rollout_policy": (True, False, True, ["model_name"]),
    "promote": (False, False, False, []),
    "abort_rollout": (False, False, False, []),
    "set_rollout_policy": (False, False, True, ["model_name"]),
}
CHANGING = {"import_zip", "validate", "deploy", "rollback", "discover_models", "delete_model", "set_alias",
            "delete_alias", "promote", "abort_rollout", "set_rollout_policy"}


def _catalog(tools) -> dict:
    return {
        t.name: (t.annotations.read_only_hint, t.annotations.destructive_hint, t.annotations.idempotent_hint,
                 sorted(t.input_schema.get("required", [])))
        for t in tools
    }


async def test_the_catalog_is_the_contracts(client):
    tools = (await client.list_tools()).tools
    assert _catalog(tools) == CATALOG
    for tool in tools:
        assert tool.title, tool.name
        assert len(tool.description or "") > 80, tool.name
        assert tool.output_schema and tool.output_schema.get("type") == "object", tool.name


async def test_the_resources_are_listed(client):
    static = {str(r.uri) for r in (await client.list_resources()).resources}
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert static == {"models://registry", "models://history", "ui://model-mcp/dashboard", "models://alerts",
                      "models://replicas"}
    assert templates == {"models://{version}", "models://{version}/validation", "models://{version}/drift"}


async def test_read_only_offers_only_tools_that_change_nothing(make_settings, packages, home):
    writer = ModelManager(make_settings())
    writer.start()
    writer.import_zip(path=str(packages(version="v1")))
    writer.deploy(version="v1")
    before = store_state(home)
    history_before = (home / "history.jsonl").read_bytes()
    manager = ModelManager(make_settings(read_only=True))
    manager.start()
    manager.load_deployed_in_background().join(timeout=60)
    async with Client(build_server(manager)) as client:
        tools = (await client.list_tools()).tools
        assert set(_catalog(tools)) == set(CATALOG) - CHANGING
        listing = await call(client, "list_models")
        assert listing["deployed_version"] == "v1"
        answer = await call(client, "predict", rows=[[0.0] * 8] * 40)
        await call(client, "record_feedback", request_id=answer["request_id"], labels=[1] * 40)
        await call(client, "performance_report")
        await call(client, "drift_report")
        await call(client, "get_history")
        result = await client.call_tool("deploy", {"version": "v1"})
        assert result.is_error
    assert store_state(home) == before
    assert (home / "history.jsonl").read_bytes() == history_before


@pytest.mark.parametrize(
    ("tool", "arguments", "named"),
    [
        ("list_models", {"limit": -1}, "`limit`"),
        ("list_models", {"status": "weird"}, "`status`"),
        ("validate", {"deep": "maybe"}, "`deep`"),
        ("get_model", {"version": 5}, "`version`"),
        ("deploy", {}, "`version` is required"),
        ("get_history", {"kind": "everything"}, "`kind`"),
        ("record_feedback", {"request_id": "x"}, "`labels` is required"),
    ],
)
async def test_arguments_that_fail_the_schema_answer_invalid_input(client, home, tool, arguments, named):
    from tests.helpers import call_error

    before = store_state(home)
    code, message = await call_error(client, tool, **arguments)
    assert code == "invalid_input"
    assert named in message
    assert store_state(home) == before
