"""Lean tool schemas for `tools/list`: the same constraints in fewer bytes.

An agent pays for the tool listing in context on every session, so the listing carries what the
agent acts on (types, required fields, descriptions, defaults of arguments) and drops what pydantic
adds for humans reading generated docs:

- `title` keywords (`"title": "Model Version"` beside the property `model_version`);
- an optional argument's `anyOf: [X, {"type": "null"}]` with `default: null` becomes X: leaving the
  argument out is how a client says "none" (the server still accepts an explicit null). Answers keep
  their `anyOf` with null, and no type is written as a list: the MCP Inspector's --strict mode
  flags `"type": [X, "null"]` as unportable (some clients map schemas onto a one-type dialect);
- `default` and `required` in output schemas: every answer carries every field its schema lists
  (answers are pydantic models dumped whole), so `required` would only repeat the property names;
- `additionalProperties: true` and empty `items: {}`, which say what their absence says;
- an answer's shapes: an output schema names the answer's fields (with their descriptions where
  they say more than the name) and nothing else: no types, no nested fields, no `$defs`. The whole
  listing must stay under 24 KB with every tool of the server (about 25); the fields' types and
  nested shapes are in docs/reference.md, generated from the full schemas, and a client validating
  against the outline accepts every answer the full schema does.
"""

from __future__ import annotations

from typing import Any

# Keywords whose value maps names to schemas (the names themselves are not keywords).
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
# Keywords whose value is one schema or a list of schemas.
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def lean_schema(schema: dict[str, Any], *, output: bool = False) -> dict[str, Any]:
    """A lean copy of `schema`; `output=True` for an output schema (see the module docstring)."""
    if output:
        schema = _shallow(schema)
    return _lean(schema, output=output)


def _shallow(schema: dict[str, Any]) -> dict[str, Any]:
    """The answer's own fields, each with its description only (see the module docstring)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    top = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    top["properties"] = {name: _outline(sub) for name, sub in properties.items()}
    return top


def _outline(node: Any) -> Any:
    """A field's schema reduced to its description (an empty schema: any value)."""
    if not isinstance(node, dict):
        return node
    return {"description": node["description"]} if "description" in node else {}


def _lean(node: Any, *, output: bool) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" or (output and key in ("default", "required")):
            continue
        if key == "additionalProperties" and value is True:
            continue  # says what leaving it out says
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _lean(sub, output=output) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES:
            out[key] = _lean(value, output=output)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_lean(sub, output=output) for sub in value]
        else:
            out[key] = value
    if out.get("items") == {}:
        del out["items"]  # an empty schema accepts anything: saying nothing says the same
    if not output and out.get("default", ...) is None and "anyOf" in out:
        return _optional_argument(out)
    return out


def _optional_argument(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` with `default: null` on an argument becomes X: leaving the argument out says it."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    if not isinstance(other, dict) or set(other) & (set(node) - {"anyOf", "default"}):
        return node
    return {**{k: v for k, v in node.items() if k not in ("anyOf", "default")}, **other}
