"""`model-mcp migrate` as a shell sees it (a spawned `python -m model_mcp`), against a real PostgreSQL:
exit codes, the summary and its JSON form, and a database password that never appears in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from model_mcp import samples
from model_mcp.commands import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings

PASSWORD = "s3cret-Pw"


def spawn(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MODEL_MCP_HOME", "MODEL_MCP_DATABASE_URL", "MODEL_MCP_ARTIFACT_ROOT")}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "model_mcp", *args], check=False, capture_output=True, text=True,
                          timeout=180, env=environment)


def with_password(url: str) -> str:
    """The test database's URL with a password in it (the server trusts the connection and ignores it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def secret_free(done: subprocess.CompletedProcess[str]) -> None:
    assert PASSWORD not in done.stdout and PASSWORD not in done.stderr


def test_migrate_into_the_database_and_back_from_the_shell(tmp_path: Path, pg_url: str, packages) -> None:
    home, root, back = tmp_path / "home", tmp_path / "artifacts", tmp_path / "back"
    manager = ModelManager(Settings(home=home, isolated_probe=False, monitor_check_interval_s=0))
    manager.start()
    manager.import_zip(path=str(packages(version="a")))
    manager.import_zip(path=str(packages(version="b", seed=4)))
    manager.deploy(version="a")
    manager.predict(rows=samples.sample_rows(10))
    manager.close()
    url = with_password(pg_url)

    # Without the artifact folder: a usage error naming the flag and the variable.
    done = spawn("migrate", "--to", url, "--home", str(home))
    assert done.returncode == EXIT_USAGE and "--artifact-root" in done.stderr and "MODEL_MCP_ARTIFACT_ROOT" in done.stderr
    secret_free(done)

    done = spawn("migrate", "--to", url, "--home", str(home), "--artifact-root", str(root))
    assert done.returncode == EXIT_OK, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Migrated {home} -> postgresql://root:***@") and "versions: 2 (2 written" in lines[1]
    assert "verified by sha256" in lines[2] and "history:" in done.stdout and "monitoring: processes" in done.stdout
    assert done.stderr == ""
    secret_free(done)
    # A rerun, as JSON, with the artifact folder from the variable: nothing copied, everything verified.
    done = spawn("migrate", "--to", url, "--from", str(home), "--json", MODEL_MCP_ARTIFACT_ROOT=str(root))
    report = json.loads(done.stdout)
    assert done.returncode == EXIT_OK and report["files_copied"] == 0 and report["files_skipped"] > 0
    assert report["registry_written"] == 0 and report["versions"] == 2 and report["direction"] == "home_to_database"
    secret_free(done)

    # Back into a folder, the database from the variable; then a plain home the other commands use.
    done = spawn("migrate", "--to", str(back), "--artifact-root", str(root), MODEL_MCP_DATABASE_URL=url)
    assert done.returncode == EXIT_OK, done.stderr
    secret_free(done)
    listing = json.loads(spawn("list", "--home", str(back), "--json").stdout)
    assert listing["total"] == 2 and listing["deployed_version"] == "a"

    # A refusal: exit 1, the code and the file named.
    with (root / "models" / "b" / "model.joblib").open("ab") as handle:
        handle.write(b"\0")
    done = spawn("migrate", "--to", str(tmp_path / "elsewhere"), "--from", url, "--artifact-root", str(root))
    assert done.returncode == EXIT_REFUSED and done.stderr.startswith("[hash_mismatch]")
    assert "models/b/model.joblib" in done.stderr and done.stdout == ""
    secret_free(done)
    # The database away: storage_error, still no password.
    away = url.rsplit(":", 1)[0].rsplit("@", 1)[0] + "@127.0.0.1:9/" + pg_url.rsplit("/", 1)[1]
    done = spawn("migrate", "--to", str(tmp_path / "elsewhere"), "--from", away, "--artifact-root", str(root), "--json")
    assert done.returncode == EXIT_REFUSED and done.stderr.startswith("[storage_error]")
    assert json.loads(done.stdout)["error"]["code"] == "storage_error"
    secret_free(done)
    # Both sides databases, or neither: usage.
    done = spawn("migrate", "--to", url, "--from", url, "--artifact-root", str(root))
    assert done.returncode == EXIT_USAGE
    secret_free(done)
    done = spawn("migrate", "--to", str(back), "--artifact-root", str(root))
    assert done.returncode == EXIT_USAGE and "MODEL_MCP_DATABASE_URL" in done.stderr
