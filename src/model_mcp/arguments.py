"""Tool arguments: unknown names are refused, and argument errors read as one sentence.

Shared by every edge that takes named arguments (the MCP tools in `server.py`, the REST routes):

- `forbid_unknown(model)` turns a pydantic arguments model into one that refuses names it does not
  declare (`extra="forbid"`), which also publishes `additionalProperties: false` in its JSON
  schema. An agent that misspells an argument, or asks an older server for something it does not
  offer (`deploy(mode="canary")`), then learns that instead of getting something else.
- `describe_argument_errors(exc, accepted)` is the sentence after `[invalid_input]`: every
  unknown argument named, with the ones the tool takes, then the other problems.

Nothing here knows MCP or HTTP; it needs only pydantic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from model_mcp.core.text import printable

# For models written by hand (a REST body): `class Body(BaseModel): model_config = STRICT`.
STRICT = ConfigDict(extra="forbid")

_MAX_PROBLEMS = 5


def forbid_unknown(model: type[BaseModel]) -> type[BaseModel]:
    """A subclass of `model` (same name, same fields) that refuses undeclared arguments."""
    if model.model_config.get("extra") == "forbid":
        return model
    config = ConfigDict(**{**model.model_config, "extra": "forbid"})  # type: ignore[typeddict-item]
    strict = type(model.__name__, (model,), {"model_config": config, "__module__": model.__module__,
                                             "__doc__": model.__doc__})
    return strict


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of `forbid_unknown(model)` from the schema of `model`, without generating it
    again: pydantic adds `additionalProperties: false` and sorts the keys (a test checks that this is
    exactly what `model_json_schema` gives for every tool). Generating it again for each tool cost
    about 10 % of building the server at start."""
    return dict(sorted({**schema, "additionalProperties": False}.items()))


def unknown_arguments(exc: ValidationError) -> list[str]:
    """The undeclared argument names a strict model refused, in the order given."""
    return [str(error["loc"][0]) for error in exc.errors() if error["type"] == "extra_forbidden" and error["loc"]]


def describe_argument_errors(exc: ValidationError, accepted: Iterable[str] = ()) -> str:
    """One sentence for arguments that do not fit: unknown names first, then each other problem."""
    unknown = unknown_arguments(exc)
    parts: list[str] = []
    if unknown:
        names = ", ".join(f"`{printable(name)}`" for name in unknown)
        takes = sorted(accepted)
        offer = ("it takes " + ", ".join(f"`{n}`" for n in takes)) if takes else "it takes no arguments"
        parts.append(f"unknown argument{'s' if len(unknown) > 1 else ''} {names} ({offer})")
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            continue
        if len(parts) >= _MAX_PROBLEMS:
            break
        where = printable(".".join(str(p) for p in error["loc"])) or "arguments"
        parts.append(f"`{where}` is required" if error["type"] == "missing" else f"`{where}`: {error['msg']}")
    return "The arguments do not fit the tool's input schema: " + "; ".join(parts) + "."


def accepted_names(model: type[BaseModel]) -> list[str]:
    """The argument names a model declares, as a caller spells them (aliases win)."""
    return [field.alias or name for name, field in model.model_fields.items()]

