"""The home folder: the version-name rule, the one path check, atomic writes, the lock, staging.

The cross-process tests spawn real interpreters that share one home, because the lock exists for
exactly that case (two servers, or a server and an operator command, on the same store).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from model_mcp.core.errors import InvalidVersionError, StorageError
from model_mcp.core.registry import Registry
from model_mcp.core.store import Store, atomic_write_bytes, atomic_write_json, check_version_name

# --------------------------------------------------------------------------- the version rule

VALID_VERSIONS = [
    "a",
    "0",
    "20261120_143022",
    "v1.2.3",
    "A-b_c.d",
    "-leading-dash",
    "_leading_underscore",
    "ends.with.dot.",
    "a..b",
    "x" * 64,
]

INVALID_VERSIONS = [
    "",
    "x" * 65,
    ".",
    "..",
    ".hidden",
    "../x",
    "a/b",
    "/",
    "/abs",
    "a\\b",
    "C:x",
    "a b",
    "tab\there",
    "line\n",
    "nul\x00",
    "café",
    "版本",
    "ß",
    "\u212a",  # KELVIN SIGN, folds to "k" under case-insensitive matching
    "１",  # FULLWIDTH DIGIT ONE
]


@pytest.mark.parametrize("version", VALID_VERSIONS)
def test_check_version_name_accepts_the_contract_alphabet(version: str) -> None:
    assert check_version_name(version) == version


@pytest.mark.parametrize("version", INVALID_VERSIONS)
def test_check_version_name_refuses_everything_else(version: str) -> None:
    with pytest.raises(InvalidVersionError) as caught:
        check_version_name(version)
    assert caught.value.code == "invalid_version"
    assert "1 to 64 ASCII letters, digits, '.', '_' or '-', not starting with '.'" in str(caught.value)


@pytest.mark.parametrize("value", [None, 5, b"v1", ["v1"]])
def test_check_version_name_refuses_non_strings(value: object) -> None:
    with pytest.raises(InvalidVersionError):
        check_version_name(value)


def test_version_name_length_boundary_is_64() -> None:
    assert check_version_name("7" * 64) == "7" * 64
    with pytest.raises(InvalidVersionError):
        check_version_name("7" * 65)


# --------------------------------------------------------------------------- paths


def test_paths_under_the_home(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    home = tmp_path / "home"
    assert store.home == home
    assert store.registry_path == home / "registry.json"
    assert store.lock_path == home / "registry.json.lock"
    assert store.version_dir("v1") == home / "models" / "v1"
    assert store.report_path("v1") == home / "reports" / "v1.json"
    assert store.history_path == home / "history.jsonl"
    assert store.resolve_entry_path("models/v1") == home / "models" / "v1"
    assert store.resolve_entry_path("/srv/elsewhere/v1") == Path("/srv/elsewhere/v1")


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "..", ".", ""])
def test_inside_refuses_escapes(tmp_path: Path, name: str) -> None:
    base = tmp_path / "models"
    base.mkdir()
    with pytest.raises(InvalidVersionError) as caught:
        Store.inside(base, name)
    assert repr(name) in str(caught.value)


def test_inside_refuses_a_link_that_points_out(tmp_path: Path) -> None:
    base = tmp_path / "models"
    base.mkdir()
    (tmp_path / "outside").mkdir()
    (base / "v1").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidVersionError, match="does not stay inside the store"):
        Store.inside(base, "v1")


def test_inside_keeps_names_that_stay_inside(tmp_path: Path) -> None:
    base = tmp_path / "models"
    assert Store.inside(base, "v1") == base / "v1"
    assert Store.inside(base, "a..b") == base / "a..b"


@pytest.mark.parametrize("version", ["../x", "..", ".hidden", "a/b", ""])
def test_version_paths_refuse_bad_versions(tmp_path: Path, version: str) -> None:
    store = Store(tmp_path / "home")
    with pytest.raises(InvalidVersionError):
        store.version_dir(version)
    with pytest.raises(InvalidVersionError):
        store.report_path(version)


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_bytes_replaces_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.json"
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    inode_before = target.stat().st_ino
    atomic_write_bytes(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert target.stat().st_ino != inode_before  # replaced, not rewritten in place
    assert sorted(os.listdir(target.parent)) == ["file.json"]


def test_atomic_write_json_writes_parseable_json(tmp_path: Path) -> None:
    target = tmp_path / "value.json"
    atomic_write_json(target, {"b": [1, 2], "a": None})
    assert json.loads(target.read_bytes()) == {"b": [1, 2], "a": None}
    assert target.read_bytes().endswith(b"\n")
    assert os.listdir(tmp_path) == ["value.json"]


def test_atomic_write_failure_raises_storage_error_and_cleans_its_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "is-a-folder"
    target.mkdir()
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(StorageError) as caught:
        atomic_write_bytes(target, b"data")
    assert caught.value.code == "storage_error"
    assert "writing is-a-folder" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    assert os.listdir(tmp_path) == ["is-a-folder"]
    assert (target / "inside").read_bytes() == b"kept"


# --------------------------------------------------------------------------- leftovers and staging


def test_clean_leftovers_removes_staging_and_temp_files_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    store.ensure()
    home = store.home
    (store.staging_dir / "import-abc" / "sub").mkdir(parents=True)
    (store.staging_dir / "import-abc" / "sub" / "model.joblib").write_bytes(b"partial")
    (store.staging_dir / "stray-file").write_bytes(b"x")
    (home / ".tmp-registry.json.k2j3").write_bytes(b"torn")
    (store.reports_dir / ".tmp-v1.json.zz").write_bytes(b"torn")
    store.backups_dir.mkdir()
    (store.backups_dir / ".tmp-registry.last-good.json.q1").write_bytes(b"torn")
    # What must stay:
    (home / "registry.json").write_bytes(b"{}")
    (store.reports_dir / "v1.json").write_bytes(b"{}")
    (store.backups_dir / "registry.last-good.json").write_bytes(b"{}")
    (store.models_dir / "v1").mkdir()
    (store.models_dir / "v1" / ".tmp-not-ours").write_bytes(b"package file")
    # Temp files of a killed writer are old; a fresh one may belong to a live writer and stays.
    old = time.time() - 3600
    for leftover in (home / ".tmp-registry.json.k2j3", store.reports_dir / ".tmp-v1.json.zz",
                     store.backups_dir / ".tmp-registry.last-good.json.q1"):
        os.utime(leftover, (old, old))
    (store.reports_dir / ".tmp-v2.json.fresh").write_bytes(b"being written")

    removed = store.clean_leftovers()

    assert sorted(removed) == sorted([
        "staging/import-abc",
        "staging/stray-file",
        ".tmp-registry.json.k2j3",
        ".tmp-v1.json.zz",
        ".tmp-registry.last-good.json.q1",
    ])
    assert os.listdir(store.staging_dir) == []
    assert sorted(os.listdir(home)) == ["backups", "models", "registry.json", "registry.json.lock",
                                        "reports", "staging"]
    assert sorted(os.listdir(store.reports_dir)) == [".tmp-v2.json.fresh", "v1.json"]
    assert os.listdir(store.backups_dir) == ["registry.last-good.json"]
    assert os.listdir(store.models_dir / "v1") == [".tmp-not-ours"]
    assert store.clean_leftovers() == []


def test_clean_leftovers_on_a_new_home_does_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "never-created")
    assert store.clean_leftovers() == []
    assert not store.home.exists()


def test_staging_folder_is_removed_after_use(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    with store.staging() as folder:
        assert folder.parent == store.staging_dir
        assert folder.is_dir()
        (folder / "nested").mkdir()
        (folder / "nested" / "file").write_bytes(b"x")
    assert not folder.exists()
    assert os.listdir(store.staging_dir) == []


def test_staging_folder_is_removed_even_on_exception(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    with pytest.raises(RuntimeError, match="boom"), store.staging() as folder:
        (folder / "model.joblib").write_bytes(b"partial")
        raise RuntimeError("boom")
    assert not folder.exists()
    assert os.listdir(store.staging_dir) == []


def test_two_staging_folders_are_distinct(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    with store.staging() as first, store.staging() as second:
        assert first != second
        assert first.is_dir() and second.is_dir()


# --------------------------------------------------------------------------- the lock


def test_lock_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    with store.lock(), store.lock():
        assert store.lock_path.exists()
    with store.lock():  # released fully: can be taken again
        pass


def test_lock_is_exclusive_across_threads(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    acquired = threading.Event()

    def other() -> None:
        with store.lock():
            acquired.set()

    with store.lock():
        thread = threading.Thread(target=other)
        thread.start()
        assert not acquired.wait(0.2)
    assert acquired.wait(5)
    thread.join(5)


HOLD_LOCK_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from model_mcp.core.store import Store
    home, held, release = (Path(a) for a in sys.argv[1:4])
    with Store(home).lock():
        held.touch()
        deadline = time.monotonic() + 10
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
""")


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    held, release = tmp_path / "held", tmp_path / "release"
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK_SCRIPT, str(home), str(held), str(release)])
    try:
        deadline = time.monotonic() + 10
        while not held.exists():
            assert child.poll() is None, "the child exited before taking the lock"
            assert time.monotonic() < deadline, "the child never took the lock"
            time.sleep(0.01)
        acquired = threading.Event()

        def take() -> None:
            with Store(home).lock():
                acquired.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert not acquired.wait(0.3), "the lock was taken while another process held it"
        release.touch()
        assert acquired.wait(10)
        thread.join(5)
    finally:
        release.touch()
        assert child.wait(10) == 0


UPDATE_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from model_mcp.core.registry import Registry
    from model_mcp.core.schemas import RegistryEntry
    from model_mcp.core.store import Store
    home, worker, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    registry = Registry(Store(home))
    (go.parent / f"ready-{worker}").touch()
    deadline = time.monotonic() + 20
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(count):
        version = f"w{worker}-{i:03d}"
        def add(snapshot, version=version):
            snapshot.entries[version] = RegistryEntry(version=version, path=f"models/{version}", source="zip")
        registry.update(add)
""")


def test_concurrent_updates_from_three_processes_lose_nothing(tmp_path: Path) -> None:
    """Three processes, 50 updates each, on one home: every one of the 150 entries survives."""
    home = tmp_path / "home"
    go = tmp_path / "go"
    workers, count = 3, 50
    children = [
        subprocess.Popen([sys.executable, "-c", UPDATE_SCRIPT, str(home), str(w), str(count), str(go)],
                         stderr=subprocess.PIPE)
        for w in range(workers)
    ]
    try:
        deadline = time.monotonic() + 20
        while not all((tmp_path / f"ready-{w}").exists() for w in range(workers)):
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(c.poll() is None for c in children), "a worker exited early"
            time.sleep(0.01)
        go.touch()
        for child in children:
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err.decode()
    finally:
        go.touch()
        for child in children:
            if child.poll() is None:
                child.kill()

    expected = {f"w{w}-{i:03d}" for w in range(workers) for i in range(count)}
    on_disk = json.loads((home / "registry.json").read_bytes())
    assert set(on_disk) == expected
    assert len(on_disk) == workers * count
    assert set(Registry(Store(home)).read().entries) == expected
    assert [n for n in os.listdir(home) if n.startswith(".tmp-")] == []


def test_concurrent_updates_from_threads_lose_nothing(tmp_path: Path) -> None:
    from model_mcp.core.schemas import RegistryEntry

    registry = Registry(Store(tmp_path / "home"))

    def work(worker: int) -> None:
        for i in range(25):
            version = f"t{worker}-{i}"

            def add(snapshot, version: str = version) -> None:
                snapshot.entries[version] = RegistryEntry(version=version, path=f"models/{version}")

            registry.update(add)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert set(registry.read().entries) == {f"t{w}-{i}" for w in range(4) for i in range(25)}


def test_clean_leftovers_keeps_the_staging_of_a_live_process(tmp_path: Path) -> None:
    store = Store(tmp_path / "home")
    store.ensure()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (store.staging_dir / f"import-{live.pid}-abc").mkdir()
        (store.staging_dir / f"import-{dead.pid}-def").mkdir()
        (store.staging_dir / f"trash-{dead.pid}-v1").mkdir()
        (store.staging_dir / "publish-v1.json").write_text("{}")
        removed = store.clean_leftovers()
        assert sorted(removed) == sorted([f"staging/import-{dead.pid}-def", f"staging/trash-{dead.pid}-v1"])
        assert sorted(os.listdir(store.staging_dir)) == sorted([f"import-{live.pid}-abc", "publish-v1.json"])
    finally:
        live.kill()
        live.wait()
