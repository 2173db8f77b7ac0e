"""scan_training_service through a real MCP client, on a training folder from the fixture builders."""

from __future__ import annotations

import json
import threading
import time

import pytest
from mcp import Client

from model_mcp import samples
from model_mcp.server import build_server
from tests.conftest import store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

OLD, MIDDLE, NEWEST_INCOMPLETE = "20261101_080000", "20261115_080000", "20261116_080000"


@pytest.fixture
def training(tmp_path):
    root = tmp_path / "training"
    samples.write_training_service(root)
    return root


@pytest.fixture
async def tclient(make_started_manager, training):
    manager = make_started_manager(training_dir=training)
    async with Client(build_server(manager)) as client:
        yield client


async def test_scan_lists_packages_newest_first_with_their_state(tclient, training):
    answer = await call(tclient, "scan_training_service")
    assert answer["training_dir"] == str(training)
    assert [p["version"] for p in answer["packages"]] == [NEWEST_INCOMPLETE, MIDDLE, OLD]
    newest, middle, old = answer["packages"]
    assert newest["complete"] is False and "model.joblib" in newest["problems"][0]
    assert middle["kind"] == "zip" and middle["location"].startswith("nightly/") and middle["complete"] is True
    assert old["kind"] == "folder" and old["complete"] is True
    assert all(p["already_imported"] is False for p in answer["packages"])
    assert set(old) >= {"version", "model_name", "created_at", "location", "kind", "complete",
                        "already_imported", "problems"}
    assert answer["imported"] == [] and answer["errors"] == []


async def test_import_latest_takes_the_newest_complete_package_once(tclient, home):
    answer = await call(tclient, "scan_training_service", import_latest=True)
    assert answer["imported"] == [MIDDLE]
    entry = (await call(tclient, "get_model", version=MIDDLE))["entry"]
    assert entry["source"] == "training_service" and entry["status"] == "available"
    flags = {p["version"]: p["already_imported"] for p in answer["packages"]}
    assert flags == {NEWEST_INCOMPLETE: False, MIDDLE: True, OLD: False}
    before = store_state(home)
    again = await call(tclient, "scan_training_service", import_latest=True)
    assert again["imported"] == [] and again["errors"] == []
    assert store_state(home) == before


async def test_import_versions_imports_folders_and_reports_each_failure(tclient):
    answer = await call(tclient, "scan_training_service", import_versions=[OLD, NEWEST_INCOMPLETE, "nope"])
    assert answer["imported"] == [OLD]
    codes = {e["version"]: e["code"] for e in answer["errors"]}
    assert codes == {NEWEST_INCOMPLETE: "invalid_state", "nope": "not_found"}
    listing = await call(tclient, "list_models")
    assert [m["version"] for m in listing["models"]] == [OLD]


async def test_transfers_are_recorded_in_the_history(tclient):
    await call(tclient, "scan_training_service", import_versions=[OLD, NEWEST_INCOMPLETE])
    events = (await call(tclient, "get_history", kind="transfers"))["events"]
    assert [(e["event"], e["version"], e["outcome"]) for e in events] == [
        ("transfer", NEWEST_INCOMPLETE, "failed"),
        ("transfer", OLD, "ok"),
    ]
    assert events[1]["source"].endswith(OLD) and "[invalid_state]" in events[0]["detail"]


async def test_a_package_with_a_bad_hash_fails_with_its_code_and_changes_nothing(make_started_manager, tmp_path, home):
    root = tmp_path / "training"
    files = samples.package_files(version="tampered")
    manifest = json.loads(files["deployment_manifest.json"])
    manifest["files"]["README.md"]["sha256"] = "1" * 64
    files = samples.package_files(version="tampered", manifest_overrides={"files": manifest["files"]})
    samples.write_zip(files, root / "tampered.zip")
    manager = make_started_manager(training_dir=root)
    before = store_state(home)
    async with Client(build_server(manager)) as client:
        answer = await call(client, "scan_training_service", import_latest=True)
    assert answer["imported"] == []
    assert [(e["version"], e["code"]) for e in answer["errors"]] == [("tampered", "hash_mismatch")]
    assert store_state(home) == before


async def test_no_training_folder_is_training_service_unavailable(client, make_started_manager, tmp_path):
    code, message = await call_error(client, "scan_training_service")
    assert code == "training_service_unavailable" and "--training-dir" in message
    manager = make_started_manager(training_dir=tmp_path / "missing")
    async with Client(build_server(manager)) as other:
        code, _ = await call_error(other, "scan_training_service")
        assert code == "training_service_unavailable"


async def test_links_pointing_outside_are_not_followed(make_started_manager, tmp_path):
    root = tmp_path / "training"
    root.mkdir()
    outside = samples.write_folder(samples.package_files(version="outside"), tmp_path / "elsewhere")
    (root / "sneaky").symlink_to(outside, target_is_directory=True)
    manager = make_started_manager(training_dir=root)
    async with Client(build_server(manager)) as client:
        answer = await call(client, "scan_training_service", import_latest=True)
    assert answer["imported"] == []
    (package,) = answer["packages"]
    assert package["complete"] is False and "link" in package["problems"][0]
    assert package["version"] is None


async def test_read_only_scans_but_refuses_imports(make_started_manager, training, home):
    manager = make_started_manager(training_dir=training, read_only=True)
    async with Client(build_server(manager)) as client:
        answer = await call(client, "scan_training_service")
        assert len(answer["packages"]) == 3
        code, _ = await call_error(client, "scan_training_service", import_latest=True)
        assert code == "read_only"
    assert not (home / "registry.json").exists()


async def test_a_package_being_written_is_never_imported_half_written(make_started_manager, tmp_path):
    root = tmp_path / "training"
    folder = root / "growing"
    files = samples.package_files(version="growing")
    manager = make_started_manager(training_dir=root)
    done = threading.Event()

    def writer() -> None:
        folder.mkdir(parents=True)
        (folder / "deployment_manifest.json").write_bytes(files["deployment_manifest.json"])
        for name, data in files.items():
            if name == "deployment_manifest.json":
                continue
            with open(folder / name, "wb") as handle:
                for start in range(0, len(data), max(1, len(data) // 6)):
                    handle.write(data[start:start + max(1, len(data) // 6)])
                    handle.flush()
                    time.sleep(0.01)
        done.set()

    thread = threading.Thread(target=writer)
    async with Client(build_server(manager)) as client:
        thread.start()
        outcomes = []
        while not done.is_set():
            answer = await call(client, "scan_training_service", import_versions=["growing"])
            outcomes.append((answer["imported"], [e["code"] for e in answer["errors"]]))
        thread.join()
        final = await call(client, "scan_training_service", import_versions=["growing"])
        outcomes.append((final["imported"], [e["code"] for e in final["errors"]]))
        model = await call(client, "get_model", version="growing")
    assert any(not imported for imported, _ in outcomes[:-1]), "the writer finished before any scan"
    manifest = json.loads(files["deployment_manifest.json"])
    for name, info in manifest["files"].items():
        assert model["files"][name]["sha256"] == info["sha256"]
    assert model["entry"]["source"] == "training_service"
