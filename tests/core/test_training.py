"""The training service's folder: what is found, how it is judged, and that nothing half-written or
outside the folder is ever taken. Real packages from model_mcp.samples, real files in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_mcp.core.archive import ArchiveLimits, extract_zip
from model_mcp.core.errors import TrainingServiceUnavailableError
from model_mcp.core.package import inspect_package, package_fingerprint
from model_mcp.core.training import (
    NOT_A_ZIP_YET,
    TrainingPackage,
    latest_complete,
    scan_package,
    scan_training_dir,
    stable_copy_check,
)
from model_mcp.samples import (
    TRAINING_GROUP,
    package_files,
    write_folder,
    write_training_service,
    write_zip,
)

V1, V2, V3 = "20261101_080000", "20261115_080000", "20261116_080000"
CONTRACT_FIELDS = ["version", "model_name", "created_at", "location", "kind", "complete", "already_imported", "problems"]


def summary(packages: list[TrainingPackage]) -> list[tuple[str, str, str | None, bool]]:
    return [(p.location, p.kind, p.version, p.complete) for p in packages]


# --------------------------------------------------------------------------- what an audit hook sees
# Every path the process opens or lists while a scan runs, to prove nothing outside is read.

_SEEN: list[str] | None = None
_HOOKED = False


def _audit(event: str, args: tuple) -> None:
    if _SEEN is not None and event in ("open", "os.scandir", "os.listdir") and args:
        target = args[0]
        if isinstance(target, (str, bytes, os.PathLike)):
            _SEEN.append(os.fsdecode(target))


@pytest.fixture
def opened_paths() -> Iterator[list[str]]:
    global _SEEN, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    _SEEN = []
    try:
        yield _SEEN
    finally:
        _SEEN = None


# --------------------------------------------------------------------------- the sample folder


def test_the_sample_training_service_is_found_newest_first(tmp_path: Path) -> None:
    root = tmp_path / "training"
    written = write_training_service(root)
    packages = scan_training_dir(root)

    assert summary(packages) == [
        (f"network-anomaly_{V3}", "folder", V3, False),
        (f"{TRAINING_GROUP}/network-anomaly_{V2}.zip", "zip", V2, True),
        (f"network-anomaly_{V1}", "folder", V1, True),
    ]
    assert [p.path for p in packages] == [written[2], written[1], written[0]]
    assert all(p.path.is_absolute() for p in packages)
    assert [p.created_at for p in packages] == ["2026-11-16T08:00:00Z", "2026-11-15T08:00:00Z", "2026-11-01T08:00:00Z"]
    assert {p.model_name for p in packages} == {"network-anomaly"}
    assert packages[1].problems == [] and packages[2].problems == []

    as_dict = packages[1].to_dict(already_imported=True)
    assert list(as_dict) == CONTRACT_FIELDS
    assert as_dict == {
        "version": V2, "model_name": "network-anomaly", "created_at": "2026-11-15T08:00:00Z",
        "location": f"{TRAINING_GROUP}/network-anomaly_{V2}.zip", "kind": "zip", "complete": True,
        "already_imported": True, "problems": [],
    }
    assert latest_complete(packages) is packages[1]  # the newer, incomplete one is passed over


def test_the_incomplete_package_names_its_reason(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_training_service(root)
    listed = json.loads((root / f"network-anomaly_{V3}" / "deployment_manifest.json").read_bytes())
    full = listed["files"]["model.joblib"]["size"]
    newest = scan_training_dir(root)[0]
    assert newest.complete is False
    assert newest.problems == [
        f"model.joblib is {full // 2} bytes; the manifest lists {full} (still being written?)"
    ]
    assert newest.fingerprint is None
    assert newest.to_dict(False)["problems"] == newest.problems


def test_a_zipped_folder_in_a_group_is_found(tmp_path: Path) -> None:
    root = tmp_path / "training"
    files = package_files(version="zf-1", created_at="2026-12-01T00:00:00Z")
    write_zip(files, root / "weekly" / "zf.zip", layout="folder")
    write_zip(package_files(version="flat-1"), root / "top.ZIP")
    packages = scan_training_dir(root)
    assert summary(packages) == [("weekly/zf.zip", "zip", "zf-1", True), ("top.ZIP", "zip", "flat-1", True)]


def test_only_two_levels_are_looked_at_and_hidden_entries_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "training"
    files = package_files(version="kept")
    write_folder(files, root / "group" / "pkg")
    write_folder(package_files(version="deep-folder"), root / "group" / "sub" / "pkg")
    write_zip(package_files(version="deep-zip"), root / "group" / "sub" / "deep.zip")
    write_folder(package_files(version="hidden-folder"), root / ".partial")
    write_zip(package_files(version="hidden-zip"), root / "group" / ".upload.zip")
    write_folder(package_files(version="hidden-group"), root / ".cache" / "pkg")
    (root / "notes.txt").write_text("not a package")
    (root / "group" / "model.joblib.bak").write_bytes(b"x")

    assert summary(scan_training_dir(root)) == [("group/pkg", "folder", "kept", True)]


def test_a_folder_with_any_marker_file_is_a_package_not_a_group(tmp_path: Path) -> None:
    root = tmp_path / "training"
    (root / "starting").mkdir(parents=True)
    (root / "starting" / "model.joblib").write_bytes(b"partial")
    (root / "starting" / "inner").mkdir()
    write_folder(package_files(version="inside"), root / "starting" / "inner" / "pkg")

    [pkg] = scan_training_dir(root)
    assert (pkg.location, pkg.kind, pkg.version, pkg.complete) == ("starting", "folder", None, False)
    assert pkg.problems == [
        "deployment_manifest.json is missing (still being written?)",
        "metadata.json is missing (still being written?)",
    ]


def test_an_empty_training_folder_answers_no_packages(tmp_path: Path) -> None:
    (tmp_path / "training").mkdir()
    assert scan_training_dir(tmp_path / "training") == []


# --------------------------------------------------------------------------- links


def test_links_are_reported_and_never_followed(tmp_path: Path, opened_paths: list[str]) -> None:
    outside = tmp_path / "outside"
    write_folder(package_files(version="outside-folder"), outside / "pkg")
    write_zip(package_files(version="outside-zip"), outside / "pkg.zip")
    write_folder(package_files(version="outside-grouped"), outside / "group" / "pkg")
    secret = outside / "secret.bin"
    secret.write_bytes(b"s" * 10)

    root = tmp_path / "training"
    root.mkdir()
    os.symlink(outside / "pkg", root / "linked-folder")
    os.symlink(outside / "pkg.zip", root / "linked.zip")
    os.symlink(outside / "group", root / "linked-group")
    (root / "real-group").mkdir()
    os.symlink(outside / "pkg", root / "real-group" / "deep-link")
    # A package whose listed model.joblib is a link to a file outside.
    files = package_files(version="inner-link", extra_files={"model.joblib": secret.read_bytes()})
    write_folder({k: v for k, v in files.items() if k != "model.joblib"}, root / "pkg")
    os.symlink(secret, root / "pkg" / "model.joblib")

    opened_paths.clear()  # only what the scan touches
    packages = scan_training_dir(root)

    link = "is a symbolic link; links are not followed."
    assert [(p.location, p.kind, p.version, p.model_name, p.created_at, p.complete, p.problems) for p in packages] == [
        ("pkg", "folder", "inner-link", "network-anomaly", "2026-11-20T14:30:22Z", False, [f"model.joblib {link}"]),
        ("linked-folder", "folder", None, None, None, False, [f"linked-folder {link}"]),
        ("linked-group", "folder", None, None, None, False, [f"linked-group {link}"]),
        ("linked.zip", "zip", None, None, None, False, [f"linked.zip {link}"]),
        ("real-group/deep-link", "folder", None, None, None, False, [f"deep-link {link}"]),
    ]
    outside_real = os.path.realpath(outside)
    touched = [p for p in opened_paths if os.path.realpath(p).startswith(outside_real)]
    assert touched == []
    assert any(p.startswith(str(root)) for p in opened_paths)  # the hook did see the scan


def test_a_manifest_naming_a_path_outside_the_package_is_a_problem(tmp_path: Path, opened_paths: list[str]) -> None:
    root = tmp_path / "training"
    (tmp_path / "elsewhere.bin").write_bytes(b"e" * 5)
    files = package_files(version="escape", manifest_overrides={"files": {
        **json.loads(package_files(version="escape")["deployment_manifest.json"])["files"],
        "../../elsewhere.bin": {"size": 5},
    }})
    write_folder(files, root / "pkg")
    opened_paths.clear()  # only what the scan touches
    [pkg] = scan_training_dir(root)
    assert pkg.complete is False
    assert pkg.problems == [
        "The manifest lists '../../elsewhere.bin', which is not a plain relative path inside the package."
    ]
    assert not any("elsewhere" in p for p in opened_paths)


# --------------------------------------------------------------------------- the folder itself


def test_no_training_folder_configured_is_unavailable() -> None:
    with pytest.raises(TrainingServiceUnavailableError) as caught:
        scan_training_dir(None)
    assert caught.value.code == "training_service_unavailable"
    assert str(caught.value) == (
        "No training directory is configured: start the server with --training-dir or MODEL_MCP_TRAINING_DIR."
    )


def test_a_missing_training_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TrainingServiceUnavailableError, match="does not exist"):
        scan_training_dir(tmp_path / "nope")


def test_a_file_as_training_folder_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingServiceUnavailableError, match="is not a folder"):
        scan_training_dir(tmp_path / "file")


def _skip_unless_permissions_apply(tmp_path: Path) -> None:
    """Root (with CAP_DAC_OVERRIDE) lists any folder; probe rather than trust the uid."""
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0)
    try:
        os.listdir(probe)
    except PermissionError:
        return
    finally:
        probe.chmod(0o755)
    pytest.skip("this process reads folders whatever their permissions (root)")


def test_an_unreadable_training_folder_is_unavailable(tmp_path: Path) -> None:
    _skip_unless_permissions_apply(tmp_path)
    root = tmp_path / "training"
    write_training_service(root, incomplete=False)
    root.chmod(0)
    try:
        with pytest.raises(TrainingServiceUnavailableError, match="cannot be read"):
            scan_training_dir(root)
    finally:
        root.chmod(0o755)


def test_an_unreadable_group_is_reported_and_the_rest_scanned(tmp_path: Path) -> None:
    _skip_unless_permissions_apply(tmp_path)
    root = tmp_path / "training"
    write_training_service(root, incomplete=False)
    (root / "locked").mkdir()
    (root / "locked").chmod(0)
    try:
        packages = scan_training_dir(root)
    finally:
        (root / "locked").chmod(0o755)
    assert [p.location for p in packages] == [f"{TRAINING_GROUP}/network-anomaly_{V2}.zip", f"network-anomaly_{V1}", "locked"]
    assert packages[2].complete is False
    assert packages[2].problems[0].startswith("The folder cannot be listed")


# --------------------------------------------------------------------------- metadata and versions


def test_unreadable_metadata_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_folder(package_files(version="a", extra_files={"metadata.json": b"{not json"}), root / "broken-json")
    write_folder(package_files(version="b", metadata_overrides={"model_type": None}), root / "missing-key")
    write_zip(package_files(version="c", extra_files={"metadata.json": b"[1, 2]"}), root / "list.zip")

    packages = {p.location: p for p in scan_training_dir(root)}
    broken = packages["broken-json"]
    assert (broken.complete, broken.version, broken.model_name, broken.created_at) == (False, None, None, None)
    assert len(broken.problems) == 1
    assert broken.problems[0].startswith("metadata.json is not readable JSON: ")

    missing = packages["missing-key"]
    assert (missing.complete, missing.version) == (False, None)
    assert missing.problems == ["metadata.json is not valid: `model_type` is required."]
    # What can still be shown is shown.
    assert (missing.model_name, missing.created_at) == ("network-anomaly", "2026-11-20T14:30:22Z")

    listed = packages["list.zip"]
    assert (listed.complete, listed.version) == (False, None)
    assert listed.problems == ["metadata.json must hold a JSON object, not list."]
    # Unknown created_at sorts last.
    assert [p.location for p in scan_training_dir(root)][0] == "missing-key"


@pytest.mark.parametrize(
    ("kwargs", "version"),
    [
        ({"version": "meta-1"}, "meta-1"),
        ({"version": "man-1", "metadata_overrides": {"version": None}}, "man-1"),
        ({"version": None, "created_at": "2026-11-20T16:30:22+02:00"}, "20261120_143022"),
    ],
    ids=["metadata", "manifest", "created_at"],
)
def test_the_version_follows_the_contract_rules(tmp_path: Path, kwargs: dict[str, Any], version: str) -> None:
    root = tmp_path / "training"
    write_folder(package_files(**kwargs), root / "folder")
    write_zip(package_files(**kwargs), root / "pkg.zip")
    assert {(p.kind, p.version, p.complete) for p in scan_training_dir(root)} == {
        ("folder", version, True), ("zip", version, True)
    }


def test_version_problems_leave_the_version_unknown(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_folder(package_files(version="one", metadata_overrides={"version": "two"}), root / "mismatch")
    write_folder(package_files(version=".hidden"), root / "bad-name")
    packages = {p.location: p for p in scan_training_dir(root)}
    assert packages["mismatch"].version is None
    assert packages["mismatch"].problems == [
        "deployment_manifest.json gives model_version 'one', but metadata.json gives version 'two'; "
        "they must be equal."
    ]
    assert packages["bad-name"].version is None
    assert packages["bad-name"].problems == [
        "The version '.hidden' is not valid: use 1 to 64 ASCII letters, digits, '.', '_' or '-', not starting with '.'."
    ]


# --------------------------------------------------------------------------- zips


def test_a_zip_still_being_written_is_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "training"
    whole = write_zip(package_files(version="z"), tmp_path / "whole.zip").read_bytes()
    root.mkdir()
    for cut in (0, 100, len(whole) // 2, len(whole) - 10):
        (root / "pkg.zip").write_bytes(whole[:cut])
        [pkg] = scan_training_dir(root)
        assert (pkg.complete, pkg.version, pkg.problems) == (False, None, [NOT_A_ZIP_YET]), cut
    (root / "pkg.zip").write_bytes(whole)
    [pkg] = scan_training_dir(root)
    assert (pkg.complete, pkg.version, pkg.problems) == (True, "z", [])


def test_a_zip_lacking_files_or_with_wrong_sizes_is_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "training"
    files = package_files(version="lacks")
    write_zip({k: v for k, v in files.items() if k != "model.joblib"}, root / "lacks.zip")
    readme = package_files(version="sizes")["README.md"]
    write_zip(package_files(version="sizes", manifest_overrides={"files": {
        **json.loads(package_files(version="sizes")["deployment_manifest.json"])["files"],
        "README.md": {"size": len(readme) + 7},
    }}), root / "sizes.zip")

    packages = {p.location: p for p in scan_training_dir(root)}
    assert packages["lacks.zip"].problems == ["The archive lacks model.joblib."]
    assert packages["lacks.zip"].version == "lacks"  # metadata and manifest were still read
    assert packages["sizes.zip"].problems == [
        f"README.md is {len(readme)} bytes in the archive; the manifest lists {len(readme) + 7}."
    ]
    assert not packages["lacks.zip"].complete and not packages["sizes.zip"].complete


def test_zip_limits_are_problems(tmp_path: Path) -> None:
    root = tmp_path / "training"
    path = write_zip(package_files(version="big"), root / "big.zip")
    size = path.stat().st_size
    [pkg] = scan_training_dir(root, max_zip_bytes=size - 1)
    assert pkg.problems == [f"It is {size} bytes; the upload limit is {size - 1} bytes."]
    [pkg] = scan_training_dir(root, max_members=3)
    assert pkg.problems == ["It holds 7 members; the limit is 3."]
    assert scan_training_dir(root, max_zip_bytes=size, max_members=7)[0].complete is True


def test_a_fifo_named_zip_is_reported_without_blocking(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_training_service(root, incomplete=False)
    os.mkfifo(root / "pipe.zip")
    packages = scan_training_dir(root)
    assert packages[-1].location == "pipe.zip"
    assert packages[-1].problems == ["It is a FIFO, not a regular .zip file."]
    assert [p.complete for p in packages] == [True, True, False]


# --------------------------------------------------------------------------- fingerprints


def test_the_fingerprint_equals_what_the_import_registers(tmp_path: Path) -> None:
    root = tmp_path / "training"
    paths = write_training_service(root, incomplete=False)
    folder_pkg, zip_pkg = sorted(scan_training_dir(root), key=lambda p: p.kind)

    assert folder_pkg.fingerprint == package_fingerprint(inspect_package(paths[0]).files)
    staged = tmp_path / "staged"
    staged.mkdir()
    extracted = extract_zip(paths[1], staged, ArchiveLimits())
    assert zip_pkg.fingerprint == package_fingerprint(inspect_package(staged).files)
    assert set(zip_pkg.fingerprint or {}) == {n.name for n in staged.iterdir()}


def test_a_file_the_manifest_does_not_vouch_for_leaves_no_fingerprint(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_folder(package_files(version="unlisted"), root / "pkg")
    (root / "pkg" / "notes.txt").write_text("not in the manifest")
    [pkg] = scan_training_dir(root)
    assert (pkg.complete, pkg.problems, pkg.fingerprint) == (True, [], None)


# --------------------------------------------------------------------------- half-written packages


def test_a_partly_written_manifest_is_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "training"
    files = package_files(version="m")
    manifest = files.pop("deployment_manifest.json")
    write_folder(files, root / "pkg")
    (root / "pkg" / "deployment_manifest.json").write_bytes(manifest[: len(manifest) // 2])
    [pkg] = scan_training_dir(root)
    assert pkg.complete is False
    assert len(pkg.problems) == 1
    assert pkg.problems[0].startswith("deployment_manifest.json is not readable JSON: ")
    assert pkg.problems[0].endswith(" (still being written?)")
    assert pkg.version == "m"  # from metadata.version, for display


def _matches_manifest(folder: Path, manifest: dict[str, Any]) -> bool:
    """Hash every listed file now: sizes and sha256 as the manifest says."""
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            return False
    return True


def test_a_package_being_written_is_never_seen_complete_too_early(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    folder = root / "pkg"
    files = package_files(version="live", created_at="2026-12-24T00:00:00Z")
    manifest_bytes = files.pop("deployment_manifest.json")
    manifest = json.loads(manifest_bytes)
    order = sorted(files, key=lambda n: n == "model.joblib")  # the model last, as training writes it
    release = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            folder.mkdir()
            (folder / "deployment_manifest.json").write_bytes(manifest_bytes)
            for name in order:
                data = files[name]
                step = max(1, len(data) // 8)
                with open(folder / name, "wb") as out:
                    for start in range(0, len(data), step):
                        if name == order[-1] and start + step >= len(data):
                            release.wait(5)  # the last chunk waits until some scans have run
                        out.write(data[start : start + step])
                        out.flush()
                        time.sleep(0.002)
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    scans: list[bool] = []
    incomplete_before_release = 0
    deadline = time.monotonic() + 8
    while thread.is_alive() and time.monotonic() < deadline:
        for pkg in scan_training_dir(root):
            scans.append(pkg.complete)
            if pkg.complete:
                assert _matches_manifest(folder, manifest), "a scan said complete before every file was written"
            elif not release.is_set():
                incomplete_before_release += 1
        if incomplete_before_release >= 5:
            release.set()
    release.set()
    thread.join(5)
    assert not failures
    assert incomplete_before_release >= 5
    [final] = scan_training_dir(root)
    assert (final.complete, final.version, final.problems) == (True, "live", [])
    assert _matches_manifest(folder, manifest)
    assert stable_copy_check(final).complete is True


# --------------------------------------------------------------------------- right before import


def test_stable_copy_check_passes_an_unchanged_package(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_training_service(root, incomplete=False)
    for pkg in scan_training_dir(root):
        again = stable_copy_check(pkg)
        assert again.to_dict(False) == pkg.to_dict(False)
        assert again.fingerprint == pkg.fingerprint and again.complete is True


def test_stable_copy_check_refuses_a_package_that_changed_since_the_scan(tmp_path: Path) -> None:
    root = tmp_path / "training"
    paths = write_training_service(root, incomplete=False)
    folder_pkg, zip_pkg = sorted(scan_training_dir(root), key=lambda p: p.kind)

    readme = paths[0] / "README.md"
    readme.write_bytes(readme.read_bytes())  # same size, rewritten: the training service is at work
    os.utime(readme, ns=(1, 1))
    zip_bytes = paths[1].read_bytes()
    paths[1].unlink()
    paths[1].write_bytes(zip_bytes)  # replaced by a new file

    for pkg in (folder_pkg, zip_pkg):
        assert scan_package(pkg.path, pkg.location, pkg.kind).complete is True  # a fresh scan alone is fine
        checked = stable_copy_check(pkg)
        assert checked.complete is False
        assert checked.problems == ["It changed since it was scanned (still being written?); scan again."]
        assert checked.fingerprint is None


def test_stable_copy_check_sees_a_package_that_became_incomplete_or_a_link(tmp_path: Path) -> None:
    root = tmp_path / "training"
    paths = write_training_service(root, incomplete=False)
    folder_pkg, zip_pkg = sorted(scan_training_dir(root), key=lambda p: p.kind)
    (paths[0] / "model.joblib").unlink()
    paths[1].rename(tmp_path / "moved.zip")
    os.symlink(tmp_path / "moved.zip", paths[1])

    gone = stable_copy_check(folder_pkg)
    assert gone.complete is False
    assert gone.problems == ["model.joblib is missing (still being written?)"]
    linked = stable_copy_check(zip_pkg)
    assert linked.problems == [f"network-anomaly_{V2}.zip is a symbolic link; links are not followed."]


def test_stable_copy_check_with_a_settle_time_sees_a_writer(tmp_path: Path) -> None:
    root = tmp_path / "training"
    write_folder(package_files(version="settle"), root / "pkg")
    [pkg] = scan_training_dir(root)
    assert stable_copy_check(pkg, settle_seconds=0.05).complete is True

    readme = root / "pkg" / "README.md"
    toucher = threading.Timer(0.05, lambda: os.utime(readme, ns=(2, 2)))
    toucher.start()
    checked = stable_copy_check(pkg, settle_seconds=0.4)
    toucher.join()
    assert checked.complete is False
    assert checked.problems == ["It changed within 0.4 s (still being written?)"]


def test_zip_members_come_from_the_central_directory_only(tmp_path: Path) -> None:
    """A zip is judged without extracting: nothing is written next to it or anywhere in the folder."""
    root = tmp_path / "training"
    write_zip(package_files(version="ro"), root / "pkg.zip")
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    [pkg] = scan_training_dir(root)
    assert pkg.complete is True
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before == ["pkg.zip"]
    with zipfile.ZipFile(root / "pkg.zip") as archive:
        assert len(archive.infolist()) == 7
