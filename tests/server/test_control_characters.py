"""Control characters in names are refused at import and escaped in every sentence (issue 18, item 4).

A package could forge an `[ok] Imported ...` line in the operator's terminal, in colour, through
a model name, a feature name or a manifest file name; an agent through the keys of its rows.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from model_mcp import samples
from model_mcp.core.errors import InvalidInputError
from model_mcp.core.text import control_characters, printable
from tests.conftest import store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

FORGED = "net\n[ok] Imported \x1b[32mtrusted\x1b[0m\r"
RAW = ("\n", "\r", "\x1b", "\u202e", "\x00")


def _clean(text: str) -> bool:
    return not any(c in text for c in RAW)


def test_printable_escapes_controls_and_keeps_the_rest():
    assert printable("plain name é ü 東京 a b") == "plain name é ü 東京 a b"
    assert printable(FORGED) == "net\\x0a[ok] Imported \\x1b[32mtrusted\\x1b[0m\\x0d"
    assert printable("a\u202eb\u200bc\x7f\x9b") == "a\\u202eb\\u200bc\\x7f\\x9b"
    assert control_characters(FORGED) == ["\\x0a", "\\x1b", "\\x0d"]
    assert control_characters("fine") == []


def test_every_error_sentence_is_escaped():
    exc = InvalidInputError(f"unknown feature {FORGED}")
    assert _clean(str(exc)) and "\\x1b[32m" in str(exc)


@pytest.mark.parametrize(("overrides", "code", "key"), [
    ({"metadata_overrides": {"model_name": FORGED}}, "invalid_metadata", "model_name"),
    ({"metadata_overrides": {"model_type": "IsolationForest\x1b[2K"}}, "invalid_metadata", "model_type"),
])
async def test_control_characters_in_metadata_names_are_refused(client, packages, home, overrides, code, key):
    before = store_state(home)
    got, sentence = await call_error(client, "import_zip", path=str(packages(version="v1", **overrides)))
    assert got == code and key in sentence and _clean(sentence)
    assert store_state(home) == before


async def test_control_characters_in_feature_names_are_refused(client, home, tmp_path):
    path = samples.build_package(tmp_path / "f.zip", version="v1", metadata_overrides={
        "feature_names": ["f0", "f1\x1b[31m", "f2", "f3", "f4", "f5", "f6", "f7"], "feature_profile": None})
    code, sentence = await call_error(client, "import_zip", path=str(path))
    assert code == "invalid_metadata" and "feature_names" in sentence and _clean(sentence)


async def test_control_characters_in_manifest_file_names_are_refused(client, tmp_path, home):
    files = samples.package_files(version="v1")
    import json

    manifest = json.loads(files["deployment_manifest.json"])
    manifest["files"]["README.md\n[ok] forged\x1b[0m"] = "0" * 64
    files["deployment_manifest.json"] = json.dumps(manifest).encode()
    path = samples.write_zip(files, tmp_path / "m.zip")
    before = store_state(home)
    code, sentence = await call_error(client, "import_zip", path=str(path))
    assert code == "invalid_manifest" and _clean(sentence)
    assert store_state(home) == before


async def test_row_keys_with_control_characters_are_escaped_in_the_error(client, packages):
    await call(client, "import_zip", path=str(packages(version="v1")))
    await call(client, "deploy", version="v1")
    row = {name: 0.0 for name in samples.DEFAULT_FEATURES}
    row["evil\n[ok] \x1b[32mfine"] = 1.0
    code, sentence = await call_error(client, "predict", rows=[row])
    assert code == "invalid_input" and _clean(sentence) and "\\x1b[32m" in sentence


def test_the_cli_prints_no_raw_control_characters(tmp_path):
    package = samples.build_package(tmp_path / "a.zip", version="v1", metadata_overrides={"model_name": FORGED})
    done = subprocess.run([sys.executable, "-m", "model_mcp", "import", str(package), "--home",
                           str(tmp_path / "home")], capture_output=True, text=True, timeout=180)
    assert done.returncode != 0
    assert "[invalid_metadata]" in done.stderr
    assert "\x1b" not in done.stderr + done.stdout and "[ok] Imported" not in done.stderr.splitlines()[-1][:14]
