"""What an agent pays for the tool listing, and what the lean schemas still say.

The listing is measured as a client receives it: `tools/list` through a real MCP client, as compact
JSON. The budget leaves room for the tools later issues add.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from model_mcp.listing import lean_schema
from tests.conftest import b64
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

LISTING_BUDGET_BYTES = 24 * 1024
GET_MODEL_BUDGET_BYTES = 4 * 1024


def _compact(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def _listing(client) -> dict:
    result = await client.list_tools()
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_the_whole_tool_listing_fits_the_budget(client):
    listing = await _listing(client)
    size = _compact(listing)
    per_tool = {t["name"]: _compact(t) for t in listing["tools"]}
    assert size <= LISTING_BUDGET_BYTES, f"tools/list is {size} bytes (budget {LISTING_BUDGET_BYTES}): {per_tool}"


async def test_every_tool_still_says_when_to_use_it_and_what_it_answers(client):
    for tool in (await _listing(client))["tools"]:
        assert len(tool["description"]) >= 100, tool["name"]
        assert tool["outputSchema"]["properties"], tool["name"]
        for schema in (tool["inputSchema"], tool["outputSchema"]):
            assert '"title":' not in json.dumps(schema), tool["name"]  # pydantic's titles repeat the names


async def test_rows_arguments_say_what_a_row_is(client):
    tools = {t["name"]: t for t in (await _listing(client))["tools"]}
    schemas = {
        "predict.rows": tools["predict"]["inputSchema"]["properties"]["rows"],
        "drift_report.current": tools["drift_report"]["inputSchema"]["properties"]["current"],
        "drift_report.reference": tools["drift_report"]["inputSchema"]["properties"]["reference"],
    }
    for where, schema in schemas.items():
        jsonschema.validate([[1.0, 2], {"bytes_in": 0.5}], schema)
        for wrong in ("rows", [["a"]], [{"bytes_in": "x"}], [3]):
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(wrong, schema)
        assert schema["description"], where
    labels = tools["record_feedback"]["inputSchema"]["properties"]["labels"]
    jsonschema.validate([-1, 1, 1], labels)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([0], labels)


async def test_a_bad_row_still_answers_invalid_input_naming_the_row(client, packages):
    await call(client, "import_zip", content_base64=b64(packages(version="v1")))
    await call(client, "deploy", version="v1")
    code, sentence = await call_error(client, "predict", rows=[[0.0] * 8, ["x"] * 8])
    assert code == "invalid_input" and "row 1" in sentence


def test_lean_schema_drops_titles_and_states_optional_arguments_simply():
    full = {
        "title": "toolArguments",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},  # a property named `title` stays
            "kind": {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}], "default": None,
                     "description": "Which."},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": 5},
            "free": {"type": "object", "additionalProperties": True, "title": "Free"},
        },
        "required": ["title"],
    }
    lean = lean_schema(full)
    assert lean == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "kind": {"description": "Which.", "enum": ["a", "b"], "type": "string"},
            "limit": full["properties"]["limit"],  # a non-null default keeps its union
            "free": {"type": "object"},
        },
        "required": ["title"],
    }


def test_lean_output_schemas_accept_every_answer_the_full_ones_do():
    full = {
        "title": "Answer",
        "type": "object",
        "properties": {
            "kind": {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]},
            "scores": {"anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}]},
            "ref": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}]},
            "flag": {"type": "boolean", "default": False},
        },
        "required": ["kind", "scores", "ref"],
        "$defs": {"Inner": {"title": "Inner", "type": "object", "properties": {"n": {"type": "integer"}}}},
    }
    lean = lean_schema(full, output=True)
    assert "required" not in lean and "$defs" not in lean
    assert lean["properties"] == {"kind": {}, "scores": {}, "ref": {}, "flag": {}}  # the answer's fields, outlined
    answers = [
        {"kind": "a", "scores": [1.0], "ref": {"n": 1}, "flag": True},
        {"kind": None, "scores": None, "ref": None, "flag": False},
        {"kind": "c", "scores": None, "ref": None, "flag": False},
        {"kind": "a", "scores": ["x"], "ref": None, "flag": False},
        {"kind": "a", "scores": None, "ref": {"n": "x"}, "flag": 1},
    ]
    for answer in answers:
        assert _valid(lean, answer) or not _valid(full, answer), answer  # the outline accepts all the full one does
    assert [_valid(full, a) for a in answers] == [True, True, False, False, False]  # and the full one refuses


def _valid(schema: dict, value) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


async def test_get_model_is_lean_by_default_and_the_details_are_one_read_away(client, packages):
    await call(client, "import_zip", content_base64=b64(packages(version="v1", n_features=40)))
    await call(client, "import_zip", content_base64=b64(packages(version="v2", n_features=40)))
    for _ in range(6):
        await call(client, "deploy", version="v1")
        await call(client, "deploy", version="v2")
    answer = await call(client, "get_model", version="v2")
    assert _compact(answer) <= GET_MODEL_BUDGET_BYTES, _compact(answer)
    assert len(answer["metadata"]["feature_names"]) == 40
    assert "feature_profile" not in answer["metadata"]
    assert len(answer["deployments"]) == 5
    assert "metadata.feature_profile" in answer["omitted"] and answer["details_uri"] == "models://v2"

    full = await call(client, "get_model", version="v2", details=True)
    assert len(full["metadata"]["feature_profile"]) == 40 and len(full["deployments"]) == 6
    assert full["omitted"] == []
    resource = await client.read_resource(answer["details_uri"])
    read = json.loads(resource.contents[0].text)
    assert read["metadata"]["feature_profile"] == full["metadata"]["feature_profile"]
    assert read["deployments"] == full["deployments"] and read["files"] == full["files"]
