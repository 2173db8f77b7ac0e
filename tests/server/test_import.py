"""import_zip through a real MCP client: success paths, every error code, and the store unchanged."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from model_mcp import samples
from tests.conftest import b64, store_state, stored_registry
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: D105
        return (os.system, (f"touch {self.marker}",))


async def test_import_by_path_registers_an_available_version(client, packages, home, manager):
    path = packages(fmt="zip")
    answer = await call(client, "import_zip", path=str(path))
    assert answer["version"] == "20261120_143022"
    assert answer["model_name"] == "network-anomaly"
    assert answer["status"] == "available"
    assert answer["already_present"] is False
    assert answer["missing_optional_files"] == []
    assert answer["extra_files"] == []
    assert answer["validation"]["passed"] is True
    assert answer["validation"]["failed_checks"] == []
    entry = stored_registry(manager)["20261120_143022"]
    assert entry["status"] == "available"
    assert entry["path"] == "models/20261120_143022"
    assert entry["source"] == "zip"
    assert entry["created_at"] == "2026-11-20T14:30:22Z"
    stored = home / "models" / "20261120_143022"
    files = samples.package_files()
    for name, data in files.items():
        assert (stored / name).read_bytes() == data
    assert os.listdir(home / "staging") == []


async def test_import_by_base64_of_a_zipped_folder(client, packages):
    path = packages(fmt="zip-folder", version="v2-folder")
    answer = await call(client, "import_zip", content_base64=b64(path), filename="upload.zip")
    assert answer["version"] == "v2-folder"
    assert answer["status"] == "available"


@pytest.mark.parametrize("kind", samples.MODEL_KINDS)
async def test_every_fixture_kind_imports_and_validates(client, packages, kind):
    answer = await call(client, "import_zip", path=str(packages(kind=kind, version=f"v-{kind}")))
    assert answer["status"] == "available", answer
    assert answer["validation"]["passed"] is True


async def test_reimport_of_the_same_content_zipped_differently_is_a_no_op(client, packages, home):
    first = await call(client, "import_zip", path=str(packages(fmt="zip")))
    before = store_state(home)
    again = await call(client, "import_zip", path=str(packages(fmt="zip-folder")))
    assert again["already_present"] is True
    assert again["version"] == first["version"]
    assert again["status"] == "available"
    assert store_state(home) == before


async def test_different_content_under_an_existing_version_is_a_conflict(client, packages, home):
    await call(client, "import_zip", path=str(packages(seed=0)))
    before = store_state(home)
    code, message = await call_error(client, "import_zip", path=str(packages(seed=7)))
    assert code == "version_conflict"
    assert "20261120_143022" in message
    assert store_state(home) == before


async def test_missing_optional_files_are_warnings_that_name_them(client, packages):
    answer = await call(client, "import_zip", path=str(packages(include_optional=False)))
    assert sorted(answer["missing_optional_files"]) == sorted(
        ["validate_model.py", "inference_example.py", "requirements.txt", "README.md"]
    )
    for name in answer["missing_optional_files"]:
        assert any(name in warning for warning in answer["warnings"])
    assert answer["status"] == "available"


async def test_extra_files_are_kept_and_reported(client, packages, home):
    answer = await call(client, "import_zip", path=str(packages(extra_files={"notes/train.log": b"epoch 1\n"})))
    assert answer["extra_files"] == ["notes/train.log"]
    assert any("notes/train.log" in w for w in answer["warnings"])
    assert (home / "models" / answer["version"] / "notes" / "train.log").read_bytes() == b"epoch 1\n"


async def test_version_from_created_at_when_none_is_given(client, packages):
    path = packages(version=None, metadata_overrides={"version": None}, created_at="2026-11-21T09:08:07+02:00")
    answer = await call(client, "import_zip", path=str(path))
    assert answer["version"] == "20261121_070807"


def _zip_without(files: dict[str, bytes], path: Path, *names: str) -> Path:
    return samples.write_zip({k: v for k, v in files.items() if k not in names}, path)


async def test_missing_required_files_names_each_and_changes_nothing(client, tmp_path, home):
    before = store_state(home)
    path = _zip_without(samples.package_files(), tmp_path / "p.zip", "model.joblib", "metadata.json")
    code, message = await call_error(client, "import_zip", path=str(path))
    assert code == "missing_required_files"
    assert "model.joblib" in message and "metadata.json" in message
    assert "deployment_manifest.json" not in message
    assert store_state(home) == before


@pytest.mark.parametrize(
    ("overrides", "code", "named"),
    [
        ({"metadata_overrides": {"feature_names": None}}, "invalid_metadata", "feature_names"),
        ({"metadata_overrides": {"model_name": 42}}, "invalid_metadata", "model_name"),
        ({"metadata_overrides": {"created_at": "yesterday"}}, "invalid_metadata", "created_at"),
        ({"manifest_overrides": {"files": "not a map"}}, "invalid_manifest", "files"),
        ({"metadata_overrides": {"version": "other"}}, "invalid_manifest", "model_version"),
        ({"version": "../escape"}, "invalid_version", "../escape"),
        ({"version": ".hidden"}, "invalid_version", ".hidden"),
        ({"version": "x" * 65}, "invalid_version", "x" * 65),
    ],
)
async def test_bad_package_json_answers_its_code_naming_the_key(client, packages, home, overrides, code, named):
    before = store_state(home)
    got, message = await call_error(client, "import_zip", path=str(packages(**overrides)))
    assert got == code
    assert named in message
    assert store_state(home) == before


async def test_unreadable_metadata_json_is_invalid_metadata(client, tmp_path, home):
    files = samples.package_files(extra_files={"metadata.json": b"{not json"})
    got, message = await call_error(client, "import_zip", path=str(samples.write_zip(files, tmp_path / "p.zip")))
    assert got == "invalid_metadata"
    assert "not readable JSON" in message
    assert store_state(home)["models"] == {}


async def test_a_wrong_hash_is_a_hash_mismatch_naming_the_file(client, packages, home):
    files = samples.package_files()
    manifest = json.loads(files["deployment_manifest.json"])
    manifest["files"]["model.joblib"]["sha256"] = "0" * 64
    before = store_state(home)
    code, message = await call_error(client, "import_zip", path=str(packages(manifest_overrides={"files": manifest["files"]})))
    assert code == "hash_mismatch"
    assert "model.joblib" in message
    assert store_state(home) == before


async def test_a_listed_file_missing_from_the_package_is_a_hash_mismatch(client, tmp_path, home):
    path = _zip_without(samples.package_files(), tmp_path / "p.zip", "README.md")
    code, message = await call_error(client, "import_zip", path=str(path))
    assert code == "hash_mismatch"
    assert "README.md" in message


async def test_a_pickle_calling_os_system_is_untrusted_and_never_runs(client, packages, tmp_path, home):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(marker), protocol=4)
    before = store_state(home)
    code, message = await call_error(client, "import_zip", path=str(packages(extra_files={"model.joblib": evil})))
    assert code == "untrusted_model"
    assert "system" in message
    assert not marker.exists()
    assert store_state(home) == before


async def test_a_model_file_that_is_not_a_pickle_is_model_load_failed(client, packages, home):
    before = store_state(home)
    code, _ = await call_error(client, "import_zip", path=str(packages(extra_files={"model.joblib": b"\x00" * 64})))
    assert code == "model_load_failed"
    assert store_state(home) == before


async def test_random_bytes_are_not_a_zip(client, tmp_path, home):
    path = tmp_path / "junk.zip"
    path.write_bytes(os.urandom(4096))
    before = store_state(home)
    code, _ = await call_error(client, "import_zip", path=str(path))
    assert code == "not_a_zip"
    assert store_state(home) == before


async def test_bad_base64_is_not_a_zip(client, home):
    code, _ = await call_error(client, "import_zip", content_base64="%%% not base64 %%%")
    assert code == "not_a_zip"


async def test_a_member_with_dotdot_is_an_unsafe_archive_and_nothing_is_written(client, tmp_path, home):
    files = samples.package_files()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("../escaped.txt", b"boom")
    path = tmp_path / "evil.zip"
    path.write_bytes(buffer.getvalue())
    before = store_state(home)
    code, message = await call_error(client, "import_zip", path=str(path))
    assert code == "unsafe_archive"
    assert "escaped.txt" in message
    assert not (home / "escaped.txt").exists() and not (home / "staging" / "escaped.txt").exists()
    assert store_state(home) == before


async def test_too_many_members_is_archive_too_large(make_settings, packages, home):
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    manager = ModelManager(make_settings(max_members=5))
    manager.start()
    async with Client(build_server(manager)) as client:
        before = store_state(home)
        code, _ = await call_error(client, "import_zip", path=str(packages()))
        assert code == "archive_too_large"
        assert store_state(home) == before


async def test_a_missing_path_is_not_found_and_a_directory_is_refused(client, tmp_path):
    code, _ = await call_error(client, "import_zip", path=str(tmp_path / "nope.zip"))
    assert code == "not_found"
    code, _ = await call_error(client, "import_zip", path=str(tmp_path))
    assert code == "unsafe_archive"


async def test_neither_or_both_sources_is_invalid_input(client, packages):
    code, _ = await call_error(client, "import_zip")
    assert code == "invalid_input"
    path = packages()
    code, _ = await call_error(client, "import_zip", path=str(path), content_base64=b64(path))
    assert code == "invalid_input"


async def test_a_package_over_its_memory_limit_imports_as_failed(client, packages, manager):
    answer = await call(client, "import_zip", path=str(packages(resources={"max_memory_mb": 0.001})))
    assert answer["status"] == "failed"
    assert answer["validation"]["passed"] is False
    assert answer["validation"]["failed_checks"] == ["resources"]
    assert stored_registry(manager)[answer["version"]]["status"] == "failed"


async def test_weak_metrics_and_small_training_set_warn_and_lower_the_score(client, packages):
    good = await call(client, "import_zip", path=str(packages(version="good")))
    weak = await call(client, "import_zip", path=str(packages(
        version="weak", metrics={"f1_score": 0.4, "roc_auc": 0.55}, n_samples=500)))
    assert weak["status"] == "available"
    assert "quality" in weak["validation"]["warning_checks"]
    assert weak["validation"]["quality_score"] < good["validation"]["quality_score"]


async def test_import_and_validate_report_progress(client, packages):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await client.call_tool("import_zip", {"path": str(packages())}, progress_callback=on_progress)
    assert not result.is_error
    messages = [m for _, _, m in seen]
    assert "extracting" in messages and "validating" in messages and messages[-1] == "imported"
    seen.clear()
    result = await client.call_tool("validate", {"version": "20261120_143022"}, progress_callback=on_progress)
    assert not result.is_error
    assert [m for _, _, m in seen][-1] == "validated"


async def test_import_roots_limit_which_paths_import_zip_reads(make_settings, packages, tmp_path, home):
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server
    from model_mcp.settings import Settings

    inside = packages(version="inside")
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    outside = samples.build_package(outside_dir / "p.zip", version="outside")
    sneaky = inside.parent / "link-out.zip"
    sneaky.symlink_to(outside)
    settings = Settings.from_env({"MODEL_MCP_IMPORT_ROOTS": str(inside.parent)}, home=home)
    assert settings.import_roots == (inside.parent,)
    manager = ModelManager(settings)
    manager.start()
    async with Client(build_server(manager)) as client:
        before = store_state(home)
        code, message = await call_error(client, "import_zip", path=str(outside))
        assert code == "invalid_input" and "MODEL_MCP_IMPORT_ROOTS" in message
        code, _ = await call_error(client, "import_zip", path=str(inside.parent / ".." / "elsewhere" / "p.zip"))
        assert code == "invalid_input"
        code, _ = await call_error(client, "import_zip", path=str(sneaky))
        assert code == "invalid_input"  # resolved through the link: outside
        assert store_state(home) == before
        assert (await call(client, "import_zip", path=str(inside)))["version"] == "inside"
        assert (await call(client, "import_zip", content_base64=b64(outside)))["version"] == "outside"
