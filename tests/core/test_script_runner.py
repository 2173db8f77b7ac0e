"""validate_model.py runs in a limited, separate process, and only when the operator enables it.

Each script here is written to show one property by its outcome: it exits 0 only when the
property holds, or prints what it saw and fails so that the detail carries it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model_mcp import samples
from model_mcp.core.script_runner import MAX_OUTPUT_BYTES, run_validation_script
from model_mcp.settings import Settings
from tests.helpers import call

FAST = {"timeout_s": 10, "memory_mb": 256}


def package_with_script(root: Path, script: str, name: str = "pkg") -> Path:
    """A complete package folder whose validate_model.py is `script`."""
    files = samples.package_files(extra_files={"validate_model.py": script.encode()})
    return samples.write_folder(files, root / name)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_a_script_that_exits_0_passes(tmp_path: Path) -> None:
    outcome = run_validation_script(package_with_script(tmp_path, "print('all good')\n"), **FAST)
    assert outcome.status == "pass"
    assert re.fullmatch(r"validate_model\.py exited 0 in \d+\.\d s\.", outcome.detail)


def test_a_script_that_fails_reports_its_status_and_output(tmp_path: Path) -> None:
    script = "import sys\nprint('labels outside {-1, 1}')\nsys.exit(3)\n"
    outcome = run_validation_script(package_with_script(tmp_path, script), **FAST)
    assert outcome.status == "fail"
    assert outcome.detail == "validate_model.py exited with status 3. Output: labels outside {-1, 1}"


def test_a_script_that_loops_forever_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    outcome = run_validation_script(package_with_script(tmp_path, "while True:\n    pass\n"),
                                    timeout_s=2, memory_mb=256)
    assert outcome.status == "fail"
    assert outcome.detail == "validate_model.py did not finish within 2 s and was stopped."


def test_a_script_that_allocates_without_end_fails_on_the_memory_limit(tmp_path: Path) -> None:
    script = "chunks = []\nwhile True:\n    chunks.append(bytearray(32 * 1024 * 1024))\n"
    outcome = run_validation_script(package_with_script(tmp_path, script), timeout_s=20, memory_mb=256)
    assert outcome.status == "fail"
    assert outcome.detail.startswith("validate_model.py exited with status 1 (memory limit of 256 MiB). Output: ")
    assert outcome.detail.endswith("MemoryError")


def test_importing_the_numeric_stack_over_the_memory_limit_fails_quickly(tmp_path: Path) -> None:
    """Under an address-space limit, multi-threaded OpenBLAS made this spin until the timeout."""
    outcome = run_validation_script(package_with_script(tmp_path, "import sklearn.ensemble\n"),
                                    timeout_s=20, memory_mb=256)
    assert outcome.status == "fail"
    assert "(memory limit of 256 MiB)" in outcome.detail
    assert "did not finish" not in outcome.detail


def test_the_sample_packages_own_script_passes_at_the_default_limits(tmp_path: Path) -> None:
    """The shipped example script (loads the model with joblib, predicts 100 rows) fits the defaults."""
    defaults = Settings(home=tmp_path / "home")
    folder = samples.write_folder(samples.package_files(), tmp_path / "pkg")
    outcome = run_validation_script(folder, timeout_s=defaults.custom_script_timeout_s,
                                    memory_mb=defaults.custom_script_memory_mb)
    assert outcome.status == "pass", outcome.detail


def test_the_script_does_not_see_the_servers_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_MCP_TOKEN", "s3cret-token")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    script = "import json, os, sys\nprint(json.dumps(sorted(os.environ)))\nsys.exit(1)\n"
    outcome = run_validation_script(package_with_script(tmp_path, script), **FAST)
    shown = outcome.detail.split("Output: ", 1)[1]
    assert json.loads(shown) == [
        "HOME", "LANG", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PATH", "TMPDIR",
    ]
    assert "s3cret-token" not in outcome.detail


def test_the_script_runs_in_an_isolated_interpreter(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "ok = sys.flags.isolated == 1 and sys.flags.no_user_site == 1 and sys.flags.ignore_environment == 1\n"
        "ok = ok and '' not in sys.path and os.getcwd() not in sys.path\n"
        "sys.exit(0 if ok else 9)\n"
    )
    outcome = run_validation_script(package_with_script(tmp_path, script), **FAST)
    assert outcome.status == "pass", outcome.detail


def test_the_script_works_on_a_copy_and_the_package_is_unchanged(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "open('model.joblib', 'wb').write(b'overwritten')\n"
        "open('new_file.txt', 'w').write('added')\n"
        "os.remove('README.md')\n"
        "print(os.getcwd())\n"
        "sys.exit(1)\n"
    )
    folder = package_with_script(tmp_path, script)
    before = tree_hashes(folder)
    outcome = run_validation_script(folder, **FAST)
    assert tree_hashes(folder) == before
    workdir = Path(outcome.detail.split("Output: ", 1)[1])
    assert workdir != folder and workdir.name == "package"
    assert not workdir.exists()  # the scratch copy is removed afterwards


def test_links_in_the_package_are_not_copied(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("server-side secret")
    script = "import os, sys\nsys.exit(0 if not os.path.lexists('leak.txt') else 4)\n"
    folder = package_with_script(tmp_path, script)
    (folder / "leak.txt").symlink_to(secret)
    outcome = run_validation_script(folder, **FAST)
    assert outcome.status == "pass", outcome.detail


def test_processes_the_script_leaves_behind_are_killed(tmp_path: Path) -> None:
    """Also: a leftover holding the output open no longer makes a finished script wait for the timeout
    (it used to answer 'did not finish')."""
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print('pid', child.pid, flush=True)\n"
        "sys.exit(1)\n"
    )
    outcome = run_validation_script(package_with_script(tmp_path, script), **FAST)
    assert outcome.detail.startswith("validate_model.py exited with status 1. Output: pid ")
    pid = int(outcome.detail.rsplit("pid ", 1)[1])
    assert _is_gone(pid)


def test_a_script_that_prints_without_end_is_stopped_at_the_output_limit(tmp_path: Path) -> None:
    """Output read through a pipe once grew the server to 4 GB in a 6 s timeout; now it is a bounded file."""
    script = "import sys\nwhile True:\n    sys.stdout.write('x' * 1_000_000)\n"
    outcome = run_validation_script(package_with_script(tmp_path, script), timeout_s=20, memory_mb=256)
    assert outcome.status == "fail"
    limit_mib = MAX_OUTPUT_BYTES // (1024 * 1024)
    # Python ignores SIGXFSZ, so the write fails with EFBIG and the interpreter exits on its own.
    assert f"(its output reached the limit of {limit_mib} MiB). Output: xxxx" in outcome.detail
    assert len(outcome.detail) < 600


def _is_gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for its new parent to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status or "State:\tX" in status


# --------------------------------------------------------------------------- through MCP

FAILING_SCRIPT = "import sys\nprint('custom check: recall too low')\nsys.exit(3)\n"


async def _client_for(settings: Settings) -> Any:
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    manager = ModelManager(settings)
    manager.start()
    return Client(build_server(manager))


def _custom_check(report: dict[str, Any]) -> dict[str, Any]:
    (check,) = [c for c in report["checks"] if c["name"] == "custom_script"]
    return check


@pytest.mark.anyio
async def test_an_enabled_failing_script_imports_the_version_as_failed(
    make_settings: Callable[..., Settings], packages: Callable[..., Path]
) -> None:
    settings = make_settings(enable_custom_script=True, custom_script_timeout_s=10)
    async with await _client_for(settings) as client:
        path = packages(extra_files={"validate_model.py": FAILING_SCRIPT.encode()})
        answer = await call(client, "import_zip", path=str(path))
        assert answer["status"] == "failed"
        assert answer["validation"]["passed"] is False
        assert answer["validation"]["failed_checks"] == ["custom_script"]
        check = _custom_check(await call(client, "validate", version=answer["version"]))
        assert check["status"] == "fail"
        assert check["detail"] == "validate_model.py exited with status 3. Output: custom check: recall too low"


@pytest.mark.anyio
async def test_an_enabled_passing_script_is_a_passed_check(
    make_settings: Callable[..., Settings], packages: Callable[..., Path]
) -> None:
    settings = make_settings(enable_custom_script=True, custom_script_timeout_s=10)
    async with await _client_for(settings) as client:
        path = packages(extra_files={"validate_model.py": b"print('ok')\n"})
        answer = await call(client, "import_zip", path=str(path))
        assert answer["status"] == "available"
        check = _custom_check(await call(client, "validate", version=answer["version"]))
        assert check["status"] == "pass"


@pytest.mark.anyio
async def test_by_default_the_script_is_skipped_and_never_run(
    settings: Settings, packages: Callable[..., Path], tmp_path: Path
) -> None:
    marker = tmp_path / "script-ran"
    script = f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n"
    assert settings.enable_custom_script is False
    async with await _client_for(settings) as client:
        path = packages(extra_files={"validate_model.py": script.encode()})
        answer = await call(client, "import_zip", path=str(path))
        assert answer["status"] == "available"
        check = _custom_check(await call(client, "validate", version=answer["version"]))
        assert check["status"] == "skip"
        assert "disabled" in check["detail"]
    assert not marker.exists()

