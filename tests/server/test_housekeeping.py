"""discover_models, delete_model, get_history and models://history through a real MCP client."""

from __future__ import annotations

import json
import os

import pytest
from mcp import Client

from model_mcp import samples
from model_mcp.core.errors import NotFoundError
from model_mcp.core.store import Store
from model_mcp.server import build_server
from tests.conftest import store_state, stored_registry
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio


async def test_discover_registers_a_hand_placed_folder_under_its_package_version(client, home):
    samples.write_folder(samples.package_files(version="hand-1"), home / "models" / "placed-by-ops")
    answer = await call(client, "discover_models")
    assert answer == {"registered": ["hand-1"], "problems": []}
    entry = (await call(client, "get_model", version="hand-1"))["entry"]
    assert entry["source"] == "manual"
    assert entry["path"] == "models/placed-by-ops"
    assert entry["status"] == "available"
    again = await call(client, "discover_models")
    assert again == {"registered": [], "problems": []}
    # The version it registered deploys and serves from the folder as placed.
    await call(client, "deploy", version="hand-1")
    assert (await call(client, "predict", rows=samples.sample_rows(2)))["model_version"] == "hand-1"


async def test_discover_reports_broken_folders_and_leaves_them_alone(client, home):
    broken = home / "models" / "broken"
    files = samples.package_files(version="broken-1")
    files.pop("model.joblib")
    samples.write_folder(files, broken)
    tampered = home / "models" / "tampered"
    files = samples.package_files(version="tampered-1")
    samples.write_folder(files, tampered)
    (tampered / "README.md").write_bytes(b"changed")
    before = {p.relative_to(home).as_posix(): p.read_bytes() for p in (home / "models").rglob("*") if p.is_file()}
    answer = await call(client, "discover_models")
    assert answer["registered"] == []
    problems = {p["folder"]: p["code"] for p in answer["problems"]}
    assert problems == {"models/broken": "missing_required_files", "models/tampered": "hash_mismatch"}
    after = {p.relative_to(home).as_posix(): p.read_bytes() for p in (home / "models").rglob("*") if p.is_file()}
    assert after == before
    assert (await call(client, "list_models"))["total"] == 0


async def test_discover_refuses_a_second_folder_with_a_registered_version(client, packages, home):
    await call(client, "import_zip", path=str(packages(version="dup")))
    samples.write_folder(samples.package_files(version="dup", seed=4), home / "models" / "copy-of-dup")
    answer = await call(client, "discover_models")
    assert answer["registered"] == []
    assert answer["problems"][0]["code"] == "version_conflict"
    assert (home / "models" / "copy-of-dup" / "model.joblib").exists()


async def test_discovery_runs_at_start(make_started_manager, home):
    samples.write_folder(samples.package_files(version="at-start"), home / "models" / "at-start")
    manager = make_started_manager()
    thread = manager.discover_in_background()
    assert thread is not None
    thread.join(timeout=60)
    assert [m["version"] for m in manager.list_models().models] == ["at-start"]


async def test_a_placed_folder_is_listed_from_the_first_answer_while_discovery_validates_it(make_started_manager, home):
    samples.write_folder(samples.package_files(version="placed-1"), home / "models" / "by-hand")
    broken = samples.package_files(version="placed-2")
    broken.pop("model.joblib")
    samples.write_folder(broken, home / "models" / "half")
    manager = make_started_manager()
    # Another process (an operator's CLI) holds the store lock: discovery validates, then waits to register.
    with Store(home).lock():
        thread = manager.discover_in_background()
        first = manager.list_models()
        assert sorted((m["version"], m["status"], m["path"], m["source"]) for m in first.models) == [
            ("placed-1", "imported", "models/by-hand", "manual"), ("placed-2", "imported", "models/half", "manual")
        ]
        assert first.total == 2 and first.warnings == []
        assert manager.list_models(status="imported").total == 2
        with pytest.raises(NotFoundError, match="discovery at start is validating it"):
            manager.get_model(version="placed-1")
    thread.join(timeout=120)
    assert not thread.is_alive()
    after = manager.list_models()
    assert [(m["version"], m["status"]) for m in after.models] == [("placed-1", "available")]
    # The folder discovery could not register is said in the answer, not only in the log.
    assert len(after.warnings) == 1
    assert after.warnings[0].startswith("models/half is not registered: [missing_required_files]")
    # Removed by the operator, it is no longer warned about.
    import shutil

    shutil.rmtree(home / "models" / "half")
    assert manager.list_models().warnings == []


async def test_a_missing_or_unreadable_training_folder_is_said_by_list_models(make_started_manager, client, tmp_path):
    missing = tmp_path / "nowhere"
    manager = make_started_manager(training_dir=missing)
    async with Client(build_server(manager)) as other:
        answer = await call(other, "list_models")
    assert answer["warnings"] == [f"The training directory {str(missing)!r} does not exist. scan_training_service "
                                  "answers [training_service_unavailable] until it is fixed."]
    missing.write_text("a file, not a folder")
    assert "is not a folder" in manager.list_models().warnings[0]
    missing.unlink()
    missing.mkdir()
    assert manager.list_models().warnings == []
    if os.geteuid() != 0:  # root reads any folder
        missing.chmod(0)
        try:
            assert "cannot be read" in manager.list_models().warnings[0]
        finally:
            missing.chmod(0o755)
    # Without a training folder configured there is nothing to warn about.
    assert (await call(client, "list_models"))["warnings"] == []


async def test_delete_removes_files_report_and_entry(client, packages, home, manager):
    await call(client, "import_zip", path=str(packages(version="gone")))
    answer = await call(client, "delete_model", version="gone")
    assert answer["version"] == "gone" and answer["deleted"] is True
    assert not (home / "models" / "gone").exists()
    assert not (home / "reports" / "gone.json").exists()
    assert "gone" not in stored_registry(manager)
    code, _ = await call_error(client, "get_model", version="gone")
    assert code == "not_found"
    assert os_listdir(home / "staging") == []


def os_listdir(path):
    import os

    return sorted(os.listdir(path))


async def test_delete_refuses_the_deployed_version_and_unknown_ones(client, packages, home):
    await call(client, "import_zip", path=str(packages(version="live")))
    await call(client, "deploy", version="live")
    before = store_state(home)
    code, message = await call_error(client, "delete_model", version="live")
    assert code == "invalid_state" and "deployed" in message
    code, _ = await call_error(client, "delete_model", version="never")
    assert code == "not_found"
    code, _ = await call_error(client, "delete_model", version="../x")
    assert code == "invalid_version"
    assert store_state(home) == before
    assert (await call(client, "predict", rows=samples.sample_rows(1)))["model_version"] == "live"


async def test_an_interrupted_delete_is_undone_at_start(make_started_manager, packages, home):
    manager = make_started_manager()
    manager.import_zip(path=str(packages(version="half")))
    # What a crash right after the rename leaves: the journal and the trashed folder, entry still there.
    (home / "staging" / "delete-half.json").write_text(json.dumps({"version": "half", "folder": "models/half"}))
    (home / "models" / "half").rename(home / "staging" / "trash-half")
    restarted = make_started_manager()
    assert (home / "models" / "half" / "model.joblib").exists()
    assert os_listdir(home / "staging") == []
    assert restarted.validate(version="half").passed


async def test_history_lists_every_kind_of_event_newest_first(client, packages, tmp_path):
    await call(client, "import_zip", path=str(packages(version="h1")))
    await call(client, "import_zip", path=str(packages(version="h2", seed=3)))
    await call(client, "validate", version="h1")
    await call(client, "deploy", version="h1")
    await call(client, "deploy", version="h2")
    await call(client, "rollback")
    await call(client, "delete_model", version="h2")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    await call_error(client, "import_zip", path=str(bad))
    events = (await call(client, "get_history"))["events"]
    assert [(e["event"], e["version"], e["outcome"]) for e in events] == [
        ("import", None, "failed"),
        ("delete", "h2", "ok"),
        ("rollback", "h1", "ok"),
        ("deploy", "h2", "ok"),
        ("deploy", "h1", "ok"),
        ("validate", "h1", "passed"),
        ("import", "h2", "ok"),
        ("import", "h1", "ok"),
    ]
    assert "[not_a_zip]" in events[0]["detail"]
    assert all(e["at"] and isinstance(e["detail"], str) for e in events)
    deployments = (await call(client, "get_history", kind="deployments"))["events"]
    assert [(e["event"], e["version"]) for e in deployments] == [("rollback", "h1"), ("deploy", "h2"),
                                                                 ("deploy", "h1")]
    assert len((await call(client, "get_history", limit=2))["events"]) == 2
    resource = json.loads((await client.read_resource("models://history")).contents[0].text)
    assert resource["events"][0] == events[0]


async def test_history_is_kept_across_restarts(make_started_manager, packages):
    first = make_started_manager()
    first.import_zip(path=str(packages(version="kept")))
    second = make_started_manager()
    async with Client(build_server(second)) as client:
        events = (await call(client, "get_history"))["events"]
    assert [(e["event"], e["version"]) for e in events] == [("import", "kept")]
