"""A relative home (or training folder) is resolved once, at start (issue 18, item 4).

The probe child runs in its own folder: a home given as `relhome` made every import fail with
`[model_load_failed] The probe process exited with status 1`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings


def test_a_relative_home_from_the_environment_imports(tmp_path, monkeypatch):
    package = samples.build_package(tmp_path / "a.zip", version="a")
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"MODEL_MCP_HOME": "relhome", "MODEL_MCP_TRAINING_DIR": "exports"})
    assert settings.home == tmp_path / "relhome"
    assert settings.training_dir == tmp_path / "exports"
    manager = ModelManager(settings)
    manager.start()
    monkeypatch.chdir("/")  # what the server's working folder does later must not matter
    result = manager.import_zip(path=str(package))
    assert result.status == "available", result.validation
    assert (tmp_path / "relhome" / "models" / "a" / "model.joblib").is_file()


def test_a_relative_home_flag_imports_through_the_cli(tmp_path):
    package = samples.build_package(tmp_path / "a.zip", version="a")
    done = subprocess.run([sys.executable, "-m", "model_mcp", "import", str(package), "--home", "relhome", "--json"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "available"
    assert (tmp_path / "relhome" / "registry.json").is_file()


def test_settings_built_directly_hold_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(home=Path("h"), import_roots=(Path("drop"),))
    assert settings.home == tmp_path / "h" and settings.import_roots == (tmp_path / "drop",)
