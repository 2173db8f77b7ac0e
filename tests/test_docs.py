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


# --- the hand-written pages stay complete ------------------------------------------------------------
DOCS = ROOT / "docs"


def test_errors_md_explains_every_error_code() -> None:
    from model_mcp.core.errors import all_error_classes

    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines() if line.startswith("| `")}
    codes = {cls.code for cls in all_error_classes()}
    assert codes <= rows, f"docs/errors.md lacks a row for {sorted(codes - rows)}: say when it happens and what to do"
    for line in text.splitlines():
        if line.startswith("| `"):
            when, todo = line.split("|")[2:4]
            assert len(when.strip()) > 20 and len(todo.strip()) > 20, line


def test_operations_md_documents_every_setting_and_serve_flag() -> None:
    import re

    from model_mcp.cli import build_parser
    from model_mcp.settings import Settings

    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    variables = {f"MODEL_MCP_{name.upper()}" for name in Settings.model_fields}
    for path in (ROOT / "src").rglob("*.py"):  # variables read outside Settings too
        variables |= set(re.findall(r"MODEL_MCP_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    missing = sorted(v for v in variables if f"`{v}`" not in text)
    assert not missing, f"docs/operations.md (Configuration) lacks {missing}"

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    flags = {option for action in serve._actions for option in action.option_strings if option.startswith("--")}
    flags -= {"--help"}
    missing = sorted(flag for flag in flags if f"`{flag}" not in text)
    assert not missing, f"docs/operations.md (Configuration) lacks the serve flags {missing}"


def test_package_format_md_documents_every_key_and_file() -> None:
    from model_mcp.core.package import OPTIONAL_FILES, REQUIRED_FILES
    from model_mcp.core.schemas import FeatureProfile, Manifest, ManifestFile, Metadata, Resources

    text = (DOCS / "package-format.md").read_text(encoding="utf-8")
    for name in (*REQUIRED_FILES, *OPTIONAL_FILES):
        assert f"| `{name}` |" in text, name
    for model in (Metadata, FeatureProfile, Manifest, ManifestFile, Resources):
        for key in model.model_fields:
            assert f"`{key}`" in text or f"`resources.{key}`" in text, (model.__name__, key)


def test_the_package_example_builds_a_package_that_imports(tmp_path) -> None:
    import subprocess
    import sys

    from model_mcp.core.manager import ModelManager
    from model_mcp.settings import Settings

    out = tmp_path / "example.zip"
    done = subprocess.run([sys.executable, str(DOCS / "examples" / "build_package.py"), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    manager = ModelManager(Settings(home=tmp_path / "home"))
    manager.start()
    answer = manager.import_zip(path=str(out))
    report = manager.load_report(answer.version)
    failed = [(c.name, c.detail) for c in report.checks if c.status == "fail"] if report else None
    assert answer.status == "available", failed
    assert not [w for w in answer.warnings if "not verified" in w]
    deployed = manager.deploy(version=answer.version)
    assert deployed.deployed_version == answer.version


def test_every_table_row_in_the_docs_has_its_header_s_cells() -> None:
    """A bar inside a cell (an enum `"a" | "b"`) must be escaped, or Markdown splits the cell."""
    import re

    bar = re.compile(r"(?<!\\)(?:\\\\)*\|")  # a bar after an even number of backslashes splits cells
    for page in sorted(DOCS.glob("*.md")):
        width = None
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.startswith("|"):
                width = None
                continue
            cells = len(bar.findall(line))
            if width is None:
                width = cells
            assert cells == width, f"{page.name}:{number} has {cells - 1} cells, its header {width - 1}"
