"""docs/reference.md is the server's own listing: regenerated in memory, it must match the file."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_matches_the_running_server() -> None:
    gen_docs = _generator()
    expected = gen_docs.render_reference()
    current = gen_docs.REFERENCE.read_text(encoding="utf-8") if gen_docs.REFERENCE.exists() else ""
    if current != expected:
        diff = "".join(list(difflib.unified_diff(current.splitlines(True), expected.splitlines(True),
                                                 "docs/reference.md (committed)", "docs/reference.md (server)"))[:60])
        raise AssertionError(f"docs/reference.md no longer matches the server's listing; run "
                             f"`{gen_docs.COMMAND}` and commit the result.\n{diff}")


def test_the_reference_names_every_tool_resource_and_argument(tmp_path) -> None:
    import anyio

    from model_mcp.core.manager import ModelManager
    from model_mcp.settings import Settings

    gen_docs = _generator()
    text = gen_docs.REFERENCE.read_text(encoding="utf-8")
    manager = ModelManager(Settings(home=tmp_path / "home"))
    tools, resources, templates = anyio.run(gen_docs._listing, manager)
    assert len(tools) >= 14
    for tool in tools:
        assert f"### `{tool.name}`" in text, tool.name
        for argument in (tool.input_schema or {}).get("properties", {}):
            assert f"| `{argument}` |" in text, (tool.name, argument)
        for field in (tool.output_schema or {}).get("properties", {}):
            assert f"| `{field}` |" in text, (tool.name, field)
    for resource in resources:
        assert f"`{resource.uri}`" in text
    for template in templates:
        assert f"`{template.uri_template}`" in text


def test_a_changed_listing_is_reported_with_the_command_to_run(tmp_path, monkeypatch, capsys) -> None:
    gen_docs = _generator()
    stale = tmp_path / "reference.md"
    stale.write_text(gen_docs.render_reference().replace("### `predict`", "### `predict_old`"))
    monkeypatch.setattr(gen_docs, "REFERENCE", stale)
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    assert gen_docs.main(["--check"]) == 1
    assert "run `python scripts/gen_docs.py`" in capsys.readouterr().err
    assert gen_docs.main([]) == 0
    assert gen_docs.main(["--check"]) == 0
