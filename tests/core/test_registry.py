"""registry.json: both formats, the migration on the first write, and a damaged file left alone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from model_mcp.core.errors import RegistryCorruptError
from model_mcp.core.registry import Registry, Snapshot, parse_registry
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# Every field a written entry carries (the model's declared fields; None where not given).
BASE_FIELDS = {
    "model_name": None, "status": "imported", "created_at": None, "imported_at": None,
    "source": "manual", "deployed_at": None, "quality_score": None,
}


def written(version: str, **fields: object) -> dict[str, object]:
    """The exact object `update` writes for one entry."""
    return {"version": version, **{**BASE_FIELDS, "path": f"models/{version}", **fields}}


def make_registry(tmp_path: Path) -> Registry:
    return Registry(Store(tmp_path / "home"))


def add_entry(version: str, **fields: object):
    def change(snapshot: Snapshot) -> str:
        snapshot.entries[version] = RegistryEntry(version=version, path=f"models/{version}", **fields)
        return version

    return change


OLD_FORMAT = {
    "models": [
        {"version": "v1", "model_name": "net", "status": "inactive", "path": "models/v1",
         "created_at": "2026-11-01T08:00:00Z", "owner": "team-a", "tags": ["x", "y"]},
        {"version": "v2", "model_name": "net", "status": "active", "path": "models/v2",
         "created_at": "2026-11-02T08:00:00Z", "deployed_at": "2026-11-03T00:00:00Z",
         "owner": "team-b", "nested": {"k": 1}},
        {"version": "v3", "status": "failed", "path": "/srv/legacy/v3"},
    ]
}


def write_old(registry: Registry, content: object = OLD_FORMAT) -> bytes:
    raw = json.dumps(content, indent=4).encode()
    registry.store.home.mkdir(parents=True, exist_ok=True)
    registry.store.registry_path.write_bytes(raw)
    return raw


# --------------------------------------------------------------------------- new format


def test_a_missing_registry_reads_as_empty(tmp_path: Path) -> None:
    snapshot = make_registry(tmp_path).read()
    assert snapshot.entries == {}
    assert snapshot.fmt == "empty"
    assert snapshot.deployed is None


def test_new_format_round_trip(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    assert registry.update(add_entry("v1", model_name="net", status="available", source="zip",
                                     created_at="2026-11-20T14:30:22Z")) == "v1"
    registry.update(add_entry("v2", status="deployed", source="training_service", quality_score=92.5,
                              custom={"a": 1}))

    on_disk = json.loads(registry.store.registry_path.read_bytes())
    assert on_disk == {
        "v1": written("v1", model_name="net", status="available", source="zip", created_at="2026-11-20T14:30:22Z"),
        "v2": written("v2", status="deployed", source="training_service", quality_score=92.5, custom={"a": 1}),
    }
    fresh = make_registry(tmp_path).read()  # a second process sees the same
    assert fresh.fmt == "new"
    assert list(fresh.entries) == ["v1", "v2"]
    assert fresh.deployed is not None and fresh.deployed.version == "v2"
    assert fresh.entries["v2"].model_extra == {"custom": {"a": 1}}
    assert fresh.entries["v1"].model_dump() == registry.read().entries["v1"].model_dump()


def test_read_returns_copies_that_do_not_change_the_registry(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.update(add_entry("v1", status="available"))
    snapshot = registry.read()
    snapshot.entries["v1"].status = "failed"
    del snapshot.entries["v1"]
    assert registry.read().entries["v1"].status == "available"


def test_a_change_that_raises_writes_nothing(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.update(add_entry("v1"))
    before = registry.store.registry_path.read_bytes()

    def failing(snapshot: Snapshot) -> None:
        snapshot.entries.clear()
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        registry.update(failing)
    assert registry.store.registry_path.read_bytes() == before
    assert list(registry.read().entries) == ["v1"]


def test_the_new_format_fixture_reads(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.store.home.mkdir(parents=True)
    shutil.copy(FIXTURES / "registry.new-format.json", registry.store.registry_path)
    snapshot = registry.read()
    assert snapshot.fmt == "new"
    assert {v: e.status for v, e in snapshot.entries.items()} == {
        "20261101_080000": "archived",
        "20261115_080000": "available",
        "20261118_120000": "failed",
        "20261120_143022": "deployed",
    }
    assert snapshot.entries["20261101_080000"].source == "training_service"
    assert snapshot.entries["20261120_143022"].imported_at == "2026-11-20T15:01:47Z"


def test_update_sees_a_change_made_behind_an_identical_stat(tmp_path: Path) -> None:
    """Under the lock, update reads the file's bytes, not a cache keyed by (inode, mtime, size):
    on ext4 the inode freed by one replace is reused by the next and mtime ticks are ~4 ms, so
    another process's write can carry the same key as the one this process cached."""
    home = tmp_path / "home"
    mine, theirs = Registry(Store(home)), Registry(Store(home))
    mine.update(add_entry("v1", status="available"))
    mine.update(add_entry("v2", status="deployed"))
    path = home / "registry.json"
    stat = path.stat()
    assert mine.read().entries["v1"].status == "available"  # cached now

    # Another writer swaps the deployed version: same size, same inode, same mtime.
    data = json.loads(path.read_bytes())
    data["v1"]["status"], data["v2"]["status"] = "deployed", "available"
    swapped = (json.dumps(data, indent=2) + "\n").encode()
    assert len(swapped) == stat.st_size
    with open(path, "r+b") as handle:
        handle.write(swapped)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size) == (
        stat.st_ino, stat.st_mtime_ns, stat.st_size)

    mine.update(add_entry("v3"))
    after = json.loads(path.read_bytes())
    assert {v: e["status"] for v, e in after.items()} == {"v1": "deployed", "v2": "available", "v3": "imported"}
    assert theirs.read().deployed.version == "v1"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- old format


def test_old_format_reads_active_as_deployed_and_keeps_unknown_fields(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    write_old(registry)
    snapshot = registry.read()
    assert snapshot.fmt == "old"
    assert list(snapshot.entries) == ["v1", "v2", "v3"]
    assert {v: e.status for v, e in snapshot.entries.items()} == {
        "v1": "available", "v2": "deployed", "v3": "failed"}
    v2 = snapshot.entries["v2"]
    assert v2.model_extra == {"owner": "team-b", "nested": {"k": 1}, "legacy_status": "active"}
    assert v2.deployed_at == "2026-11-03T00:00:00Z"
    assert snapshot.entries["v1"].model_extra == {"owner": "team-a", "legacy_status": "inactive"}
    assert snapshot.entries["v1"].tags == ["x", "y"]  # a catalog field since several models are served
    assert snapshot.deployed is not None and snapshot.deployed.version == "v2"
    # relative paths are relative to the home; an absolute one stays as it is
    store = registry.store
    assert store.resolve_entry_path(snapshot.entries["v1"].path) == store.home / "models" / "v1"
    assert store.resolve_entry_path(snapshot.entries["v3"].path) == Path("/srv/legacy/v3")


def test_reading_an_old_registry_does_not_rewrite_it(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    original = write_old(registry)
    registry.read()
    assert registry.store.registry_path.read_bytes() == original
    assert not (registry.store.home / "registry.json.old-format.bak").exists()


def test_first_update_migrates_to_the_new_format_and_keeps_a_backup(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    original = write_old(registry)
    registry.update(add_entry("v4", source="zip"))

    backup = registry.store.home / "registry.json.old-format.bak"
    assert backup.read_bytes() == original
    on_disk = json.loads(registry.store.registry_path.read_bytes())
    assert "models" not in on_disk
    assert on_disk == {
        "v1": written("v1", model_name="net", status="available", created_at="2026-11-01T08:00:00Z",
                      owner="team-a", tags=["x", "y"], legacy_status="inactive"),
        "v2": written("v2", model_name="net", status="deployed", created_at="2026-11-02T08:00:00Z",
                      deployed_at="2026-11-03T00:00:00Z", owner="team-b", nested={"k": 1},
                      legacy_status="active"),
        "v3": written("v3", status="failed", path="/srv/legacy/v3"),
        "v4": written("v4", source="zip"),
    }
    assert registry.read().fmt == "new"

    # A later write keeps the first backup: it is the only copy of the original.
    registry.update(add_entry("v5"))
    assert backup.read_bytes() == original
    assert set(json.loads(registry.store.registry_path.read_bytes())) == {"v1", "v2", "v3", "v4", "v5"}


def test_an_old_registry_with_two_active_entries_migrates_to_one_deployed(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    write_old(registry, {"models": [
        {"version": "a", "status": "active", "path": "models/a"},
        {"version": "b", "status": "active", "path": "models/b"},
    ]})
    snapshot = registry.read()
    assert [e.version for e in snapshot.entries.values() if e.status == "deployed"] == ["a"]
    assert snapshot.entries["b"].status == "available"
    registry.update(lambda snapshot: None)
    on_disk = json.loads(registry.store.registry_path.read_bytes())
    assert {v: e["status"] for v, e in on_disk.items()} == {"a": "deployed", "b": "available"}


def test_an_unknown_old_status_becomes_imported_and_is_kept(tmp_path: Path) -> None:
    snapshot = parse_registry(json.dumps({"models": [
        {"version": "x", "status": "staging", "path": "models/x", "source": "ftp"},
    ]}).encode())
    entry = snapshot.entries["x"]
    assert entry.status == "imported"
    assert entry.source == "manual"
    assert entry.model_extra == {"legacy_status": "staging", "legacy_source": "ftp"}


def test_the_old_format_fixture_migrates(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.store.home.mkdir(parents=True)
    original = (FIXTURES / "registry.old-format.json").read_bytes()
    registry.store.registry_path.write_bytes(original)

    registry.update(lambda snapshot: None)

    assert (registry.store.home / "registry.json.old-format.bak").read_bytes() == original
    on_disk = json.loads(registry.store.registry_path.read_bytes())
    assert on_disk == {
        "20261101_080000": written("20261101_080000", model_name="network-anomaly", status="archived",
                                   created_at="2026-11-01T08:00:00Z", trained_by="nightly-job"),
        "20261115_080000": written("20261115_080000", model_name="network-anomaly", status="available",
                                   created_at="2026-11-15T08:00:00Z", trained_by="nightly-job"),
        "20261120_143022": written("20261120_143022", model_name="network-anomaly", status="deployed",
                                   created_at="2026-11-20T14:30:22Z", deployed_at="2026-11-21T09:00:00Z",
                                   trained_by="manual-run", ticket="OPS-1234", legacy_status="active"),
    }


# --------------------------------------------------------------------------- damaged registries

DAMAGED = [
    b'{"v1": {"version": "v1", "path": "models/v1"',  # torn
    b"\xff\xfe not utf-8",
    b"",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"v1": "not an object"}',
    b'{"v1": {"version": "v1", "status": "sideways"}}',
    b'{"models": [{"status": "active"}]}',
]


@pytest.mark.parametrize("damaged", DAMAGED)
def test_a_registry_that_does_not_parse_is_refused_and_left_as_it_is(tmp_path: Path, damaged: bytes) -> None:
    registry = make_registry(tmp_path)
    registry.update(add_entry("good", status="available"))
    registry.store.registry_path.write_bytes(damaged)

    with pytest.raises(RegistryCorruptError) as caught:
        registry.read()
    assert caught.value.code == "registry_corrupt"
    assert "registry.json" in str(caught.value)
    assert "left as it is" in str(caught.value)

    called = []
    with pytest.raises(RegistryCorruptError):
        registry.update(lambda snapshot: called.append(snapshot))
    assert called == []
    assert registry.store.registry_path.read_bytes() == damaged
    assert not (registry.store.home / "registry.json.old-format.bak").exists()

    last_good = registry.read_last_good()
    assert list(last_good.entries) == ["good"]
    assert last_good.entries["good"].status == "available"


def test_read_last_good_follows_the_last_successful_write(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    assert registry.read_last_good().entries == {}
    registry.update(add_entry("v1"))
    registry.update(add_entry("v2", status="deployed"))
    good = registry.store.registry_path.read_bytes()
    registry.store.registry_path.write_bytes(b"{broken")
    last_good = registry.read_last_good()
    assert list(last_good.entries) == ["v1", "v2"]
    assert last_good.deployed is not None and last_good.deployed.version == "v2"
    assert (registry.store.backups_dir / "registry.last-good.json").read_bytes() == good
    assert json.loads(good) == {"v1": written("v1"), "v2": written("v2", status="deployed")}


def test_a_repaired_registry_is_read_again(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.update(add_entry("v1"))
    good = registry.store.registry_path.read_bytes()
    registry.store.registry_path.write_bytes(b"{")
    with pytest.raises(RegistryCorruptError):
        registry.read()
    registry.store.registry_path.write_bytes(good)
    assert list(registry.read().entries) == ["v1"]


def test_the_servers_own_fields_are_typed_and_an_old_shape_is_kept_aside(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    store.ensure()
    digest = "ab" * 32
    store.registry_path.write_text(json.dumps({
        "v1": {"version": "v1", "path": "models/v1", "files": {"model.joblib": {"sha256": digest, "size": 3}},
               "model_type": "IsolationForest", "origin": "pkg.zip", "validated_at": "2026-11-20T14:30:22Z"},
        "v2": {"version": "v2", "path": "models/v2", "files": ["model.joblib"], "model_type": 7},
    }))
    registry = Registry(store)
    entries = registry.read().entries
    assert entries["v1"].files["model.joblib"].sha256 == digest and entries["v1"].files["model.joblib"].size == 3
    assert (entries["v1"].model_type, entries["v1"].origin) == ("IsolationForest", "pkg.zip")
    assert entries["v2"].files is None and entries["v2"].model_type is None
    assert entries["v2"].model_extra == {"legacy_files": ["model.joblib"], "legacy_model_type": 7}

    registry.update(lambda snap: None)
    on_disk = json.loads(store.registry_path.read_bytes())
    assert on_disk["v1"]["files"] == {"model.joblib": {"sha256": digest, "size": 3}}
    assert "files" not in on_disk["v2"] and on_disk["v2"]["legacy_files"] == ["model.joblib"]
