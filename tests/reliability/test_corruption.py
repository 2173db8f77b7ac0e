"""Corruption: a damaged registry.json at start, and files changed under models/<version>/ after import.

A damaged registry is detected at start (an error in the log), kept byte for byte, and every
changing tool refuses with [registry_corrupt] naming the backup; reading tools (list_models,
get_model, predict) answer from backups/registry.last-good.json, the last registry a server wrote.
A changed file in a version's folder fails validate (the `hashes` check) and deploy
([validation_failed], the old model keeps serving); a changed deployed model is refused at the
next start.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from model_mcp import samples
from model_mcp.core.errors import RegistryCorruptError
from model_mcp.core.manager import ModelManager
from model_mcp.server import build_server
from model_mcp.settings import Settings
from tests.conftest import store_state
from tests.helpers import call, call_error
from tests.reliability.serverproc import NO_PROBE, SINGLE_THREAD_ENV

ROW = [[0.0] * 8]
CHANGING_TOOLS = ["import_zip", "validate", "deploy", "rollback", "delete_model", "discover_models"]


def populated_home(tmp_path: Path) -> tuple[Path, ModelManager]:
    """v1, v2, v3 imported; v1 then v2 deployed (so the registry was written several times)."""
    home = tmp_path / "home"
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    for version, seed in (("v1", 0), ("v2", 5), ("v3", 9)):
        manager.import_zip(path=str(samples.build_package(tmp_path / f"{version}.zip", version=version, seed=seed)))
    manager.deploy(version="v1")
    manager.deploy(version="v2")
    return home, manager


def changing_calls(tmp_path: Path) -> dict[str, dict]:
    v4 = samples.build_package(tmp_path / "v4.zip", version="v4", seed=4)
    return {"import_zip": {"path": str(v4)}, "validate": {"version": "v1"}, "deploy": {"version": "v3"},
            "rollback": {}, "delete_model": {"version": "v3"}, "discover_models": {}}


@pytest.mark.anyio
async def test_a_damaged_registry_is_kept_refuses_changes_and_reading_still_answers(tmp_path: Path) -> None:
    home, _ = populated_home(tmp_path)
    good = (home / "registry.json").read_bytes()
    last_good = home / "backups" / "registry.last-good.json"
    assert last_good.read_bytes() == good
    damaged = good[: len(good) // 2]  # a torn registry, as a disk fault or a bad hand edit leaves it
    (home / "registry.json").write_bytes(damaged)
    before = store_state(home)
    calls = changing_calls(tmp_path)

    errlog_path = tmp_path / "server.log"
    server = StdioServerParameters(command=sys.executable, args=["-m", "model_mcp", "serve", "--home", str(home)],
                                   env={"PYTHONPATH": os.environ.get("PYTHONPATH", ""), **SINGLE_THREAD_ENV, **NO_PROBE})
    with errlog_path.open("w") as errlog:
        async with Client(stdio_client(server, errlog=errlog)) as client:
            for tool in CHANGING_TOOLS:
                code, sentence = await call_error(client, tool, **calls[tool])
                assert code == "registry_corrupt", (tool, code, sentence)
                assert "registry.json does not parse" in sentence
                assert "backups/registry.last-good.json" in sentence
            listing = await call(client, "list_models")
            assert [m["version"] for m in listing["models"]] == ["v3", "v2", "v1"]
            assert listing["deployed_version"] == "v2"
            assert (await call(client, "get_model", version="v1"))["entry"]["status"] == "available"
            assert (await call(client, "predict", rows=ROW))["model_version"] == "v2"

    assert store_state(home) == before  # the damaged bytes, models/ and reports/ as they were
    assert (home / "registry.json").read_bytes() == damaged
    assert last_good.read_bytes() == good
    records = [json.loads(line) for line in errlog_path.read_text().splitlines() if line.startswith("{")]
    damaged_at_start = [r for r in records if r.get("event") == "registry_damaged"]
    assert len(damaged_at_start) == 1 and damaged_at_start[0]["level"] == "error"
    assert "backups/registry.last-good.json" in damaged_at_start[0]["reason"]

    # The operator restores the backup and restarts: changes work again.
    shutil.copyfile(last_good, home / "registry.json")
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    assert manager.deploy(version="v3").previous_version == "v2"


DAMAGES = {
    "empty file": b"",
    "zeros": b"\0" * 512,
    "not utf-8": b"\xff\xfe{}",
    "a list": b"[1, 2]",
    "an entry that is a number": b'{"v1": 5}',
    "an unknown status": b'{"v1": {"version": "v1", "status": "exploded", "path": "models/v1"}}',
    "an old registry without versions": b'{"models": [{"status": "active"}]}',
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_kind_of_damage_is_refused_at_start_and_left_as_it_is(tmp_path: Path, damage: str) -> None:
    home, _ = populated_home(tmp_path)
    (home / "registry.json").write_bytes(DAMAGES[damage])
    # An interrupted publish's journal: with a damaged registry, start must leave it (and staging) alone.
    journal = home / "staging" / "publish-v9.json"
    journal.write_text(json.dumps({"version": "v9", "target": "models/v9"}))
    before = store_state(home)
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    with pytest.raises(RegistryCorruptError) as caught:
        manager.import_zip(path=str(samples.build_package(tmp_path / "v4.zip", version="v4", seed=4)))
    assert caught.value.code == "registry_corrupt"
    with pytest.raises(RegistryCorruptError):
        manager.validate(version="v1")
    assert store_state(home) == before and journal.exists()
    assert manager.list_models().total == 3  # from the last good copy


@pytest.mark.anyio
async def test_a_changed_file_fails_validate_and_deploy_and_the_old_model_keeps_serving(tmp_path: Path) -> None:
    home, manager = populated_home(tmp_path)  # v2 deployed
    model = home / "models" / "v1" / "model.joblib"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    model.write_bytes(bytes(data))
    (home / "models" / "v3" / "README.md").write_text("edited by hand\n")
    async with Client(build_server(manager)) as client:
        before = store_state(home)
        code, sentence = await call_error(client, "deploy", version="v1")
        assert code == "validation_failed" and "hashes" in sentence and "v2 keeps serving" in sentence
        assert store_state(home)["registry"] == before["registry"]
        assert (await call(client, "predict", rows=ROW))["model_version"] == "v2"
        for version, name in (("v1", "model.joblib"), ("v3", "README.md")):
            report = await call(client, "validate", version=version)
            hashes = next(c for c in report["checks"] if c["name"] == "hashes")
            assert report["passed"] is False and hashes["status"] == "fail" and name in hashes["detail"]
            assert (await call(client, "get_model", version=version))["entry"]["status"] == "failed"
            code, _ = await call_error(client, "deploy", version=version)
            assert code == "invalid_state"  # a failed version cannot be deployed
        assert (await call(client, "list_models"))["deployed_version"] == "v2"


@pytest.mark.anyio
async def test_a_changed_deployed_model_is_refused_at_the_next_start(tmp_path: Path) -> None:
    home, _ = populated_home(tmp_path)  # v2 deployed
    model = home / "models" / "v2" / "model.joblib"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    loader = manager.load_deployed_in_background()
    assert loader is not None
    loader.join()
    async with Client(build_server(manager)) as client:
        code, sentence = await call_error(client, "predict", rows=ROW)
        assert code == "no_deployed_model" and "[hash_mismatch]" in sentence and "v2" in sentence
        report = await call(client, "performance_report")
        assert report["alerts"][0]["severity"] == "critical" and "v2" in report["alerts"][0]["message"]
        assert (await call(client, "list_models"))["deployed_load_error"].startswith("v2: [hash_mismatch]")
        # Rolling back to a sound version serves again.
        assert (await call(client, "rollback"))["deployed_version"] == "v1"
        assert (await call(client, "predict", rows=ROW))["model_version"] == "v1"


def test_a_model_replaced_together_with_its_manifest_entry_fails_validation(tmp_path: Path) -> None:
    home, manager = populated_home(tmp_path)
    folder = home / "models" / "v3"
    other = samples.package_files(seed=42)["model.joblib"]
    (folder / "model.joblib").write_bytes(other)
    manifest = json.loads((folder / "deployment_manifest.json").read_text())
    manifest["files"]["model.joblib"] = {"sha256": hashlib.sha256(other).hexdigest(), "size": len(other)}
    (folder / "deployment_manifest.json").write_text(json.dumps(manifest))
    report = manager.validate(version="v3")
    assert report.passed is False
    hashes = next(c for c in report.checks if c.name == "hashes")
    assert hashes.status == "fail" and "since import" in hashes.detail
