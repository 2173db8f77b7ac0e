"""The use cases on ModelManager itself, without MCP or HTTP: what every edge (the MCP tools, REST,
the CLI) calls, on real packages built from the fixture models.

Each use case answers a model from core/schemas.py or raises a ModelMcpError carrying its code; a
call that fails leaves the store as it was and, for a change, one `failed` line in the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from model_mcp import samples
from model_mcp.core.errors import (
    HashMismatchError,
    InvalidStateError,
    ModelMcpError,
    NotFoundError,
    ReadOnlyError,
    VersionMismatchError,
)
from model_mcp.core.manager import ModelManager
from tests.conftest import store_state


@pytest.fixture
def use_cases(make_started_manager: Callable[..., ModelManager]) -> Callable[..., ModelManager]:
    """use_cases(**settings) -> a started ModelManager over the test's home, closed at the end."""
    return make_started_manager


def test_import_list_get_validate_delete_and_the_audit_trail(use_cases, packages, home: Path) -> None:
    manager = use_cases()
    imported = manager.import_zip(path=str(packages(version="v1")))
    assert (imported.version, imported.status, imported.source, imported.already_present) == (
        "v1", "available", "zip", False)
    assert imported.validation is not None and imported.validation.passed
    again = manager.import_zip(path=str(packages(version="v1")))
    assert again.already_present and again.version == "v1"
    folder = manager.import_folder(packages(fmt="folder", version="v2", kind="lof"), source="training_service",
                                   origin="nightly/v2")
    assert (folder.version, folder.source) == ("v2", "training_service")

    listed = manager.list_models()
    assert listed.total == 2 and listed.deployed_version is None and listed.warnings == []
    assert {m["version"]: m["status"] for m in listed.models} == {"v1": "available", "v2": "available"}
    assert "files" not in listed.models[0]  # per-file hashes are get_model's
    assert manager.list_models(model_name="nobody").total == 0

    model = manager.get_model(version="v2")
    assert model.entry["origin"] == "nightly/v2" and model.entry["model_type"]
    assert set(model.files) >= {"model.joblib", "metadata.json", "deployment_manifest.json"}
    assert model.metadata is not None and "feature_profile" not in model.metadata
    assert model.omitted == ["metadata.feature_profile"] and model.details_uri == "models://v2"

    report = manager.validate(version="v1")
    assert report.passed and report.version == "v1"
    assert manager.validation_report("v1").generated_at == report.generated_at

    deleted = manager.delete_model(version="v2")
    assert deleted.deleted and deleted.files_removed
    assert not (home / "models" / "v2").exists() and not (home / "reports" / "v2.json").exists()
    with pytest.raises(NotFoundError):
        manager.get_model(version="v2")

    trail = [(e["event"], e["version"], e["outcome"]) for e in reversed(manager.get_history(limit=10).events)]
    # The import that found v1 already present changed nothing and left no line.
    assert trail == [("import", "v1", "ok"), ("import", "v2", "ok"), ("validate", "v1", "passed"),
                     ("delete", "v2", "ok")]


def test_a_refused_import_changes_nothing_and_is_audited(use_cases, packages, home: Path) -> None:
    manager = use_cases()
    manager.import_zip(path=str(packages(version="kept")))
    manifest = json.loads(samples.package_files(version="tampered")["deployment_manifest.json"])
    manifest["files"]["model.joblib"]["sha256"] = "0" * 64
    tampered = packages(version="tampered", manifest_overrides={"files": manifest["files"]})
    before = store_state(home)
    with pytest.raises(HashMismatchError) as refused:
        manager.import_zip(path=str(tampered))
    assert refused.value.code == "hash_mismatch" and "model.joblib" in str(refused.value)
    assert store_state(home) == before
    last = manager.get_history(limit=1).events[0]
    assert (last["event"], last["outcome"]) == ("import", "failed")
    assert last["detail"].startswith("[hash_mismatch]")


def test_deploy_predict_feedback_drift_rollback(use_cases, packages) -> None:
    manager = use_cases()
    for version in ("a", "b"):
        manager.import_zip(path=str(packages(version=version)))
    deployed = manager.deploy(version="a")
    assert (deployed.deployed_version, deployed.previous_version) == ("a", None)

    rows = samples.sample_rows(50)
    answer = manager.predict(rows=rows)
    assert answer["model_version"] == "a" and len(answer["labels"]) == 50
    assert len(answer["scores"]) == 50 and answer["anomaly_count"] == sum(answer["is_anomaly"])
    with pytest.raises(VersionMismatchError):
        manager.predict(rows=rows, version="b")
    with pytest.raises(ModelMcpError) as bad:
        manager.predict(rows=[[1.0, 2.0]])
    assert bad.value.code == "invalid_input"

    figures = manager.performance_report()
    assert (figures.version, figures.n_requests, figures.n_rows) == ("a", 1, 50)

    feedback = manager.record_feedback(request_id=answer["request_id"], labels=answer["labels"])
    assert (feedback.version, feedback.n_labels) == ("a", 50)
    drift = manager.drift_report(current=samples.outliers(200).tolist())
    assert drift.version == "a" and drift.n_current == 200 and drift.dataset_drift
    assert drift.reference_source == "feature_profile"

    assert manager.deploy(version="b").previous_version == "a"
    rolled = manager.rollback()
    assert (rolled.deployed_version, rolled.rolled_back) == ("a", True)
    assert manager.list_models().deployed_version == "a"
    with pytest.raises(InvalidStateError):
        manager.delete_model(version="a")


def test_a_read_only_manager_answers_reads_and_refuses_changes(use_cases, packages, home: Path) -> None:
    use_cases().import_zip(path=str(packages(version="seen")))
    reader = use_cases(read_only=True)
    assert [m["version"] for m in reader.list_models().models] == ["seen"]
    before = store_state(home)
    for change in (lambda: reader.import_zip(path=str(packages(version="new"))),
                   lambda: reader.validate(version="seen"), lambda: reader.delete_model(version="seen"),
                   lambda: reader.discover_models()):
        with pytest.raises(ReadOnlyError):
            change()
    assert store_state(home) == before


def test_scan_imports_the_newest_complete_package_once(use_cases, tmp_path: Path) -> None:
    training = tmp_path / "training"
    samples.write_training_service(training)
    manager = use_cases(training_dir=training)
    scan = manager.scan_training_service()
    assert [p["complete"] for p in scan.packages] == [False, True, True] and scan.imported == []
    first = manager.scan_training_service(import_latest=True)
    assert first.imported == ["20261115_080000"] and first.errors == []
    again = manager.scan_training_service(import_latest=True, import_versions=["20261115_080000", "nope"])
    assert again.imported == [] and again.already_present == ["20261115_080000"]
    assert [(e.version, e.code) for e in again.errors] == [("nope", "not_found")]
    entry = manager.get_model(version="20261115_080000").entry
    assert entry["source"] == "training_service" and entry["origin"].startswith("nightly/")
    transfers = manager.get_history(kind="transfers").events
    assert [e["outcome"] for e in transfers][:2] == ["already_present", "ok"]
