"""Text from packages reaches the operator's terminal escaped, and the core's advice in CLI words."""

from __future__ import annotations

import pytest

from model_mcp.commands import render
from model_mcp.commands.wording import for_the_shell
from model_mcp.terminal import printable


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain name", "plain name"),
    ("évaluation 日本", "évaluation 日本"),
    ("red\x1b[31malert", "red\\x1b[31malert"),
    ("over\rwrite", "over\\x0dwrite"),
    ("bell\x07", "bell\\x07"),
    ("c1\x9bcsi", "c1\\x9bcsi"),
    ("abc\u202edcba", "abc\\u202edcba"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("two\nlines", "two\\x0alines"),
])
def test_printable_escapes_what_a_terminal_would_obey(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_keeps_newlines_only_when_asked() -> None:
    assert printable("a\nb\r", keep_newlines=True) == "a\nb\\x0d"


def test_answers_from_a_hostile_package_print_no_control_characters() -> None:
    hostile = "net\x1b]0;owned\x07work\x1b[2J\u202e"
    answers = {
        render.listed: {"models": [{"version": "v1", "model_name": hostile, "status": "available"}], "total": 1,
                        "deployed_version": None},
        render.shown: {"entry": {"version": "v1", "model_name": hostile}, "files": {hostile: {"size": 1, "sha256": "0"}},
                       "metadata": {"feature_names": [hostile], "evaluation_metrics": {hostile: 1.0}},
                       "validation": None, "deployments": []},
        render.validated: {"version": "v1", "passed": False, "quality_score": 10, "checks": [
            {"name": "metadata", "status": "fail", "detail": hostile}], "recommendations": [hostile], "risks": []},
        render.imported: {"version": "v1", "model_name": hostile, "status": "failed", "warnings": [hostile],
                          "validation": {"passed": False, "quality_score": 0, "failed_checks": [hostile]}},
        render.scanned: {"training_dir": "/t", "packages": [{"version": "v", "model_name": hostile,
                                                             "problems": [hostile]}],
                         "imported": [], "errors": [{"location": hostile, "code": "x", "message": hostile}]},
        render.drift: {"version": "v1", "features": [{"feature": hostile}], "alerts": [
            {"severity": "warning", "kind": "feature_drift", "message": hostile}]},
        render.history: {"events": [{"at": "t", "event": "import", "version": "v", "detail": hostile}]},
        render.discovered: {"registered": [], "problems": [{"folder": hostile, "code": "c", "message": hostile}]},
    }
    for function, answer in answers.items():
        text = "\n".join(function(answer))
        assert not any(ch in text for ch in "\x1b\x07\u202e"), function.__name__
        assert "\\x1b" in text, function.__name__


@pytest.mark.parametrize(("core", "shell"), [
    ("No version x is registered; list_models shows the registered versions.",
     "No version x is registered; `model-mcp list` shows the registered versions."),
    ("name one with to_version.", "name one with `--to`."),
    ("Give `rows` as a list; see `get_model`.", "Give `--input` as a list; see `model-mcp show`."),
    ("call record_feedback with the true labels", "call `model-mcp feedback` with the true labels"),
    ("deploy or roll back to another version first", "deploy or roll back to another version first"),
    ("scan_training_service can list but not import.", "`model-mcp scan` can list but not import."),
])
def test_the_core_advice_names_cli_commands_and_flags(core: str, shell: str) -> None:
    assert for_the_shell(core) == shell
