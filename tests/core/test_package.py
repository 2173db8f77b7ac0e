"""inspect_package on real sample packages: required and optional files, the version, the hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from model_mcp.core.errors import (
    HashMismatchError,
    InvalidManifestError,
    InvalidMetadataError,
    InvalidVersionError,
    MissingRequiredFilesError,
)
from model_mcp.core.package import FileDigest, inspect_package, package_fingerprint
from model_mcp.samples import package_files, write_folder

OPTIONAL = ["validate_model.py", "inference_example.py", "requirements.txt", "README.md"]
ALL_STANDARD = sorted(["model.joblib", "metadata.json", "deployment_manifest.json", *OPTIONAL])


def folder(tmp_path: Path, name: str = "pkg", **kwargs: Any) -> Path:
    return write_folder(package_files(**kwargs), tmp_path / name)


def rewrite_manifest(root: Path, change: Any) -> None:
    path = root / "deployment_manifest.json"
    manifest = json.loads(path.read_bytes())
    change(manifest)
    path.write_text(json.dumps(manifest))


# --------------------------------------------------------------------------- a good package


def test_a_complete_package_is_inspected(tmp_path: Path) -> None:
    files = package_files()
    root = write_folder(files, tmp_path / "pkg")
    contents = inspect_package(root)
    assert contents.version == "20261120_143022"
    assert contents.root == root
    assert contents.model_path == root / "model.joblib"
    assert contents.metadata.model_name == "network-anomaly"
    assert contents.manifest.model_version == "20261120_143022"
    assert sorted(contents.files) == ALL_STANDARD
    for name, content in files.items():
        assert contents.files[name] == FileDigest(hashlib.sha256(content).hexdigest(), len(content))
    assert contents.missing_optional == []
    assert contents.extra_files == []
    assert contents.unlisted_files == []
    assert contents.warnings == []


def test_given_digests_are_used_instead_of_hashing(tmp_path: Path) -> None:
    files = package_files()
    root = write_folder(files, tmp_path / "pkg")
    digests = {name: FileDigest(hashlib.sha256(c).hexdigest(), len(c)) for name, c in files.items()}
    assert inspect_package(root, digests).files == digests
    wrong = dict(digests, **{"model.joblib": FileDigest("0" * 64, len(files["model.joblib"]))})
    with pytest.raises(HashMismatchError, match="model.joblib does not match its sha256"):
        inspect_package(root, wrong)


def test_the_fingerprint_is_every_file_sha256_by_name(tmp_path: Path) -> None:
    files = package_files()
    contents = inspect_package(write_folder(files, tmp_path / "pkg"))
    assert package_fingerprint(contents.files) == {
        name: hashlib.sha256(files[name]).hexdigest() for name in sorted(files)}
    assert list(package_fingerprint(contents.files)) == ALL_STANDARD


# --------------------------------------------------------------------------- versions


def test_version_comes_from_metadata_version(tmp_path: Path) -> None:
    root = folder(tmp_path, version="v-from-metadata", manifest_version=False)
    assert inspect_package(root).version == "v-from-metadata"


def test_version_comes_from_the_manifest_when_metadata_has_none(tmp_path: Path) -> None:
    root = folder(tmp_path, version=None, manifest_overrides={"model_version": "manifest.v2"})
    contents = inspect_package(root)
    assert contents.metadata.version is None
    assert contents.version == "manifest.v2"


@pytest.mark.parametrize(("created_at", "version"), [
    ("2026-11-20T15:30:22+01:00", "20261120_143022"),
    ("2026-11-20T14:30:22Z", "20261120_143022"),
    ("2026-11-20T14:30:22.999Z", "20261120_143022"),
    ("2026-12-31T23:30:00-01:00", "20270101_003000"),
    ("2026-11-20T14:30:22", "20261120_143022"),
])
def test_version_falls_back_to_created_at_in_utc(tmp_path: Path, created_at: str, version: str) -> None:
    root = folder(tmp_path, version=None, created_at=created_at)
    assert inspect_package(root).version == version


def test_metadata_and_manifest_versions_that_differ_are_invalid_manifest(tmp_path: Path) -> None:
    root = folder(tmp_path, version="v1", metadata_overrides={"version": "v2"})
    with pytest.raises(InvalidManifestError) as caught:
        inspect_package(root)
    assert caught.value.code == "invalid_manifest"
    assert str(caught.value) == (
        "deployment_manifest.json gives model_version 'v1', but metadata.json gives version 'v2'; "
        "they must be equal.")


@pytest.mark.parametrize("bad", ["../x", "", ".hidden", "a/b", "x" * 65, "versión"])
def test_an_invalid_metadata_version_is_invalid_version(tmp_path: Path, bad: str) -> None:
    root = folder(tmp_path, version=bad)
    with pytest.raises(InvalidVersionError) as caught:
        inspect_package(root)
    assert caught.value.code == "invalid_version"


@pytest.mark.parametrize("bad", ["../x", "", ".hidden"])
def test_an_invalid_manifest_version_is_invalid_version(tmp_path: Path, bad: str) -> None:
    root = folder(tmp_path, version=None, manifest_overrides={"model_version": bad})
    with pytest.raises(InvalidVersionError):
        inspect_package(root)


# --------------------------------------------------------------------------- required and optional files


def test_every_missing_required_file_is_named_at_once(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "model.joblib").unlink()
    (root / "metadata.json").unlink()
    with pytest.raises(MissingRequiredFilesError) as caught:
        inspect_package(root)
    assert caught.value.code == "missing_required_files"
    assert str(caught.value) == "The package lacks model.joblib, metadata.json."
    assert caught.value.data == {"missing": ["model.joblib", "metadata.json"]}


def test_an_empty_folder_lacks_all_three(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(MissingRequiredFilesError) as caught:
        inspect_package(root)
    assert str(caught.value) == "The package lacks model.joblib, metadata.json, deployment_manifest.json."


def test_required_files_must_be_at_the_root(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "nested").mkdir()
    (root / "deployment_manifest.json").rename(root / "nested" / "deployment_manifest.json")
    with pytest.raises(MissingRequiredFilesError, match=r"^The package lacks deployment_manifest.json\.$"):
        inspect_package(root)


def test_a_link_does_not_count_as_a_required_file(tmp_path: Path) -> None:
    root = folder(tmp_path)
    real = tmp_path / "elsewhere.joblib"
    (root / "model.joblib").rename(real)
    (root / "model.joblib").symlink_to(real)
    with pytest.raises(MissingRequiredFilesError, match=r"^The package lacks model.joblib\.$"):
        inspect_package(root)


def test_missing_optional_files_are_warnings_naming_each(tmp_path: Path) -> None:
    contents = inspect_package(folder(tmp_path, include_optional=False))
    assert contents.missing_optional == OPTIONAL
    assert contents.warnings == [f"The optional file {name} is missing." for name in OPTIONAL]
    assert contents.version == "20261120_143022"


def test_one_missing_optional_file_is_named(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "README.md").unlink()
    rewrite_manifest(root, lambda m: m["files"].pop("README.md"))
    contents = inspect_package(root)
    assert contents.missing_optional == ["README.md"]
    assert contents.warnings == ["The optional file README.md is missing."]


def test_extra_files_are_kept_and_reported(tmp_path: Path) -> None:
    extra = {"notes.txt": b"hello", "data/sample.csv": b"a,b\n1,2\n"}
    contents = inspect_package(folder(tmp_path, extra_files=extra))
    assert contents.extra_files == ["data/sample.csv", "notes.txt"]
    assert contents.unlisted_files == []
    assert contents.warnings == [
        "The package holds data/sample.csv, which the format does not define; it is kept.",
        "The package holds notes.txt, which the format does not define; it is kept.",
    ]
    assert contents.files["notes.txt"] == FileDigest(hashlib.sha256(b"hello").hexdigest(), 5)


def test_files_the_manifest_does_not_list_are_reported_unverified(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "late.txt").write_bytes(b"added after the manifest")
    rewrite_manifest(root, lambda m: m["files"].pop("requirements.txt"))
    contents = inspect_package(root)
    assert contents.unlisted_files == ["late.txt", "requirements.txt"]
    assert contents.extra_files == ["late.txt"]
    assert contents.warnings[-1] == (
        "The manifest lists no hash for late.txt, requirements.txt; those files were not verified.")


# --------------------------------------------------------------------------- metadata and manifest


def test_bad_metadata_is_invalid_metadata_naming_the_key(tmp_path: Path) -> None:
    root = folder(tmp_path, metadata_overrides={"feature_names": None})
    with pytest.raises(InvalidMetadataError, match="`feature_names` is required"):
        inspect_package(root)


def test_a_manifest_without_files_is_invalid_manifest(tmp_path: Path) -> None:
    root = folder(tmp_path, manifest_overrides={"files": None})
    with pytest.raises(InvalidManifestError, match="`files` is required"):
        inspect_package(root)


def test_required_files_are_checked_before_the_metadata(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "metadata.json").write_bytes(b"{broken")
    (root / "model.joblib").unlink()
    with pytest.raises(MissingRequiredFilesError):
        inspect_package(root)


# --------------------------------------------------------------------------- hashes


def test_a_wrong_sha256_names_the_file(tmp_path: Path) -> None:
    root = folder(tmp_path)
    rewrite_manifest(root, lambda m: m["files"]["inference_example.py"].update(sha256="0" * 64))
    with pytest.raises(HashMismatchError) as caught:
        inspect_package(root)
    assert caught.value.code == "hash_mismatch"
    assert str(caught.value) == "inference_example.py does not match its sha256 in the manifest."


def test_a_changed_file_of_the_same_size_is_a_hash_mismatch(tmp_path: Path) -> None:
    root = folder(tmp_path)
    data = bytearray((root / "model.joblib").read_bytes())
    data[-1] ^= 0x01
    (root / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match=r"^model.joblib does not match its sha256 in the manifest\.$"):
        inspect_package(root)


def test_a_wrong_size_names_the_file(tmp_path: Path) -> None:
    files = package_files()
    root = write_folder(files, tmp_path / "pkg")
    real = len(files["metadata.json"])
    rewrite_manifest(root, lambda m: m["files"]["metadata.json"].update(size=real + 1))
    with pytest.raises(HashMismatchError) as caught:
        inspect_package(root)
    assert str(caught.value) == f"metadata.json is {real} bytes, but the manifest says {real + 1}."


def test_a_listed_file_the_package_lacks_is_a_hash_mismatch(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "requirements.txt").unlink()
    with pytest.raises(HashMismatchError) as caught:
        inspect_package(root)
    assert str(caught.value) == "The manifest lists requirements.txt, but the package has no such file."


def test_a_bare_hex_entry_is_checked_too(tmp_path: Path) -> None:
    files = package_files()
    root = write_folder(files, tmp_path / "pkg")
    good = hashlib.sha256(files["README.md"]).hexdigest()
    rewrite_manifest(root, lambda m: m["files"].update({"README.md": good.upper()}))
    assert inspect_package(root).version == "20261120_143022"
    rewrite_manifest(root, lambda m: m["files"].update({"README.md": "f" * 64}))
    with pytest.raises(HashMismatchError, match=r"^README.md does not match"):
        inspect_package(root)


def test_hashes_are_checked_before_the_version(tmp_path: Path) -> None:
    root = folder(tmp_path, version="../x")
    rewrite_manifest(root, lambda m: m["files"]["model.joblib"].update(sha256="1" * 64))
    with pytest.raises(HashMismatchError):
        inspect_package(root)
