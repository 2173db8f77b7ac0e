"""Unknown arguments are refused, never silently ignored (issue 18, item 4).

An agent that misspells an argument, or asks an older server for something it does not know
(`deploy(mode="canary")`, `predict(summary_only=true)`), must learn that, not get something else.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio


async def test_every_input_schema_forbids_unknown_arguments(client):
    for tool in (await client.list_tools()).tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name


def test_the_strict_schemas_written_at_start_are_what_pydantic_generates(manager):
    """The server writes each strict arguments schema from the SDK's one (`strict_schema`) instead of
    generating it again at start: it must be exactly the strict model's own JSON schema."""
    from model_mcp.server import build_server

    tools = build_server(manager)._tool_manager.list_tools()
    assert len(tools) > 10
    for tool in tools:
        generated = tool.fn_metadata.arg_model.model_json_schema(by_alias=True)
        assert json.dumps(tool.parameters) == json.dumps(generated), tool.name  # the same keys in the same order


async def test_deploy_with_an_unknown_argument_is_refused_and_deploys_nothing(client, packages, home):
    await call(client, "import_zip", path=str(packages(version="v1")))
    before = store_state(home)
    code, sentence = await call_error(client, "deploy", version="v1", strategy="canary")
    assert code == "invalid_input"
    assert "`strategy`" in sentence and "version" in sentence  # names the stranger and what the tool takes
    assert store_state(home) == before
    assert (await call(client, "list_models"))["deployed_version"] is None


async def test_predict_with_an_unknown_flag_is_refused(client, packages):
    await call(client, "import_zip", path=str(packages(version="v1")))
    await call(client, "deploy", version="v1")
    code, sentence = await call_error(client, "predict", rows=[[0.0] * 8], summary_onyl=True)
    assert code == "invalid_input"
    assert "`summary_onyl`" in sentence


async def test_several_unknown_arguments_are_all_named(client):
    code, sentence = await call_error(client, "list_models", colour="red", sort="asc")
    assert code == "invalid_input"
    assert "`colour`" in sentence and "`sort`" in sentence


async def test_tools_without_arguments_refuse_any(client):
    code, sentence = await call_error(client, "discover_models", force=True)
    assert code == "invalid_input" and "`force`" in sentence
