"""The core's sentences, reworded for a person at a shell.

The core writes its errors for agents, naming MCP tools and their arguments ("list_models shows the
registered versions", "`to_version`"). At the shell the same advice must name CLI commands and flags.
The rules themselves stay in the core; this module only swaps names, using the table of which command
stands for which tool.
"""

from __future__ import annotations

import re

# tool -> the CLI command that calls it
COMMAND_OF_TOOL = {
    "import_zip": "model-mcp import",
    "list_models": "model-mcp list",
    "get_model": "model-mcp show",
    "validate": "model-mcp validate",
    "deploy": "model-mcp deploy",
    "rollback": "model-mcp rollback",
    "predict": "model-mcp predict",
    "performance_report": "model-mcp performance",
    "drift_report": "model-mcp drift",
    "record_feedback": "model-mcp feedback",
    "scan_training_service": "model-mcp scan",
    "discover_models": "model-mcp discover",
    "delete_model": "model-mcp delete",
    "get_history": "model-mcp history",
    "get_alerts": "model-mcp alerts",
}

# tool argument -> the CLI's way to give it (whatever the command)
FLAG_OF_ARGUMENT = {
    "to_version": "--to",
    "import_versions": "--import",
    "import_latest": "--import-latest",
    "model_name": "--model-name",
    "rows": "--input",
    "labels": "--labels",
    "window": "--window",
    "current": "--current",
    "reference": "--reference",
    "limit": "--limit",
    "offset": "--offset",
    "status": "--status",
    "kind": "--kind",
    "request_id": "REQUEST_ID",
    "deep=false": "--shallow",
    "deep": "--shallow",
    "details": "--details",
}

# Only names with an underscore are unambiguous as bare words; "deploy" or "predict" are also English.
_BARE_TOOL = re.compile(r"(?<![\w`/.-])(" + "|".join(sorted((t for t in COMMAND_OF_TOOL if "_" in t), key=len,
                                                           reverse=True)) + r")(?:\(\))?(?![\w`])")
_QUOTED_TOOL = re.compile(r"`(" + "|".join(sorted(COMMAND_OF_TOOL, key=len, reverse=True)) + r")(?:\(\))?`")
_QUOTED_ARGUMENT = re.compile(r"`(" + "|".join(re.escape(a) for a in sorted(FLAG_OF_ARGUMENT, key=len, reverse=True))
                              + r")`")
_CALL = re.compile(r"\bimport_zip\(path=\.\.\.\)")
# Bare argument names that cannot be English words.
_BARE_ARGUMENT = re.compile(r"(?<![\w`-])(to_version|import_versions|import_latest)(?![\w`])")


def for_the_shell(message: str) -> str:
    """Swap tool names for CLI commands and quoted tool arguments for flags."""
    message = _CALL.sub("`model-mcp import ZIP`", message)
    message = _QUOTED_TOOL.sub(lambda m: f"`{COMMAND_OF_TOOL[m.group(1)]}`", message)
    message = _BARE_TOOL.sub(lambda m: f"`{COMMAND_OF_TOOL[m.group(1)]}`", message)
    message = _QUOTED_ARGUMENT.sub(lambda m: f"`{FLAG_OF_ARGUMENT[m.group(1)]}`", message)
    message = _BARE_ARGUMENT.sub(lambda m: f"`{FLAG_OF_ARGUMENT[m.group(1)]}`", message)
    return message
