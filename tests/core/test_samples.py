"""The sample-package builders: real models, consistent manifests, reproducible bytes.

joblib.load appears here only on packages these tests just built (trusted content), to check
that the serialized model is the real, working estimator.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pytest

from model_mcp import samples
from model_mcp.samples import (
    DEFAULT_FEATURES,
    MODEL_KINDS,
    build_model,
    build_package,
    feature_profile,
    outliers,
    package_files,
    sample_rows,
    training_data,
    write_folder,
    write_training_service,
    write_zip,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
PACKAGE_NAMES = {
    "model.joblib",
    "metadata.json",
    "deployment_manifest.json",
    "validate_model.py",
    "inference_example.py",
    "requirements.txt",
    "README.md",
}


def _load_model(files: dict[str, bytes]):
    return joblib.load(io.BytesIO(files["model.joblib"]))


def _manifest(files: dict[str, bytes]) -> dict:
    return json.loads(files["deployment_manifest.json"])


def _metadata(files: dict[str, bytes]) -> dict:
    return json.loads(files["metadata.json"])


# --------------------------------------------------------------------------- data


def test_training_data_is_deterministic_float64_standard_normal():
    X = training_data(2000, 8, seed=0)
    assert X.shape == (2000, 8)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, training_data(2000, 8, seed=0))
    assert not np.array_equal(X, training_data(2000, 8, seed=1))
    assert np.all(np.abs(X.mean(axis=0)) < 0.1)
    assert np.all(np.abs(X.std(axis=0) - 1.0) < 0.1)


def test_outliers_are_far_from_training_data():
    O = outliers(30, 8)
    assert O.shape == (30, 8)
    assert np.all(np.abs(O) > 4.5)  # every coordinate at least 4.5 sigma out
    np.testing.assert_array_equal(O, outliers(30, 8))


def test_sample_rows_as_lists_and_dicts():
    rows = sample_rows(3)
    assert len(rows) == 3
    assert all(len(r) == 8 and all(type(v) is float for v in r) for r in rows)
    dicts = sample_rows(3, as_dicts=True)
    assert [list(d) for d in dicts] == [list(DEFAULT_FEATURES)] * 3
    assert [list(d.values()) for d in dicts] == rows
    named = sample_rows(2, n_features=2, as_dicts=True, feature_names=["a", "b"])
    assert [list(d) for d in named] == [["a", "b"], ["a", "b"]]


def test_more_features_than_defaults_get_generated_names():
    files = package_files(n_features=10, n_samples=300)
    assert _metadata(files)["feature_names"] == [*DEFAULT_FEATURES, "feature_8", "feature_9"]


# --------------------------------------------------------------------------- profile


def test_feature_profile_has_correct_statistics_and_eleven_ascending_quantiles():
    X = training_data(500, 3, seed=4)
    profile = feature_profile(X, ["a", "b", "c"])
    assert list(profile) == ["a", "b", "c"]
    for j, name in enumerate(["a", "b", "c"]):
        entry = profile[name]
        col = X[:, j]
        assert set(entry) == {"mean", "std", "min", "max", "quantiles"}
        assert entry["mean"] == pytest.approx(float(np.mean(col)), abs=1e-12)
        assert entry["std"] == pytest.approx(float(np.std(col)), abs=1e-12)
        assert entry["min"] == float(col.min())
        assert entry["max"] == float(col.max())
        q = entry["quantiles"]
        assert len(q) == 11
        assert q == sorted(q)
        assert q[0] == entry["min"] and q[-1] == entry["max"]
        assert q[5] == pytest.approx(float(np.median(col)), abs=1e-12)
        stats = [entry["mean"], entry["std"], entry["min"], entry["max"], *q]
        assert all(type(v) is float for v in stats)
    json.dumps(profile, allow_nan=False)  # plain floats, JSON-ready


def test_feature_profile_rejects_wrong_number_of_names():
    with pytest.raises(ValueError, match="3 feature names"):
        feature_profile(training_data(10, 2), ["a", "b", "c"])


# --------------------------------------------------------------------------- packages


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_kind_trains_a_working_detector_with_matching_manifest(kind):
    files = package_files(kind=kind)
    assert set(files) == PACKAGE_NAMES

    manifest = _manifest(files)
    assert manifest["model_version"] == "20261120_143022"
    assert sorted(manifest["files"]) == sorted(PACKAGE_NAMES - {"deployment_manifest.json"})
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": hashlib.sha256(files[name]).hexdigest(), "size": len(files[name])}

    metadata = _metadata(files)
    expected_type = {
        "iforest": "IsolationForest",
        "pipeline": "Pipeline",
        "ocsvm": "OneClassSVM",
        "lof": "LocalOutlierFactor",
    }[kind]
    assert metadata["model_type"] == expected_type
    assert metadata["feature_names"] == list(DEFAULT_FEATURES)
    assert metadata["version"] == "20261120_143022"
    assert metadata["created_at"] == "2026-11-20T14:30:22Z"
    assert metadata["training_info"] == {
        "n_samples": 2000,
        "contamination": 0.05,
        "dataset": "synthetic-gaussian",
        "seed": 0,
    }
    assert metadata["evaluation_metrics"]["f1_score"] == 0.89
    assert metadata["evaluation_metrics"]["roc_auc"] == 0.95
    assert metadata["feature_profile"] == feature_profile(training_data(), DEFAULT_FEATURES)

    model = _load_model(files)
    assert type(model).__name__ == expected_type
    assert np.all(model.predict(outliers(40)) == -1)
    normal_rate = float(np.mean(model.predict(training_data()) == -1))
    assert 0.0 < normal_rate < 0.12


def test_metadata_framework_names_installed_scikit_learn():
    import sklearn

    assert _metadata(package_files())["framework"] == {"name": "scikit-learn", "version": sklearn.__version__}


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_package_files_is_deterministic(kind):
    first = package_files(kind=kind)
    samples._model_bytes.cache_clear()
    samples._trained.cache_clear()
    second = package_files(kind=kind)  # retrained from scratch
    assert first == second
    rows = np.asarray(sample_rows(50))
    np.testing.assert_array_equal(_load_model(first).predict(rows), _load_model(second).predict(rows))
    np.testing.assert_array_equal(
        _load_model(first).decision_function(rows), _load_model(second).decision_function(rows)
    )


def test_pipeline_is_scaler_then_isolation_forest():
    model = _load_model(package_files(kind="pipeline"))
    assert [type(step).__name__ for _, step in model.steps] == ["StandardScaler", "IsolationForest"]


def test_build_model_sizes_and_unknown_kind():
    X = training_data(1500, 8)
    assert build_model("iforest", X).n_estimators == 50
    assert build_model("ocsvm", X).support_vectors_.shape[0] <= 1000  # trained on 1000 rows at most
    lof = build_model("lof", X)
    assert lof.novelty is True and lof.n_neighbors == 20
    assert not hasattr(build_model("iforest", X, feature_names=DEFAULT_FEATURES), "feature_names_in_")
    with pytest.raises(ValueError, match="unknown model kind 'svm'"):
        build_model("svm", X)
    with pytest.raises(ValueError, match="unknown model kind"):
        package_files(kind="svm")


def test_version_none_leaves_version_out_of_metadata_and_manifest():
    files = package_files(version=None)
    assert "version" not in _metadata(files)
    assert "model_version" not in _manifest(files)


def test_manifest_version_false_keeps_metadata_version_only():
    files = package_files(manifest_version=False)
    assert _metadata(files)["version"] == "20261120_143022"
    assert "model_version" not in _manifest(files)


def test_without_optional_files_only_required_files_remain():
    files = package_files(include_optional=False)
    assert set(files) == {"model.joblib", "metadata.json", "deployment_manifest.json"}
    assert set(_manifest(files)["files"]) == {"model.joblib", "metadata.json"}


def test_metadata_overrides_merge_and_delete_before_hashing():
    overrides = {"model_name": None, "owner": "team-x", "feature_profile": None}
    files = package_files(metadata_overrides=overrides)
    metadata = _metadata(files)
    assert "model_name" not in metadata and "feature_profile" not in metadata
    assert metadata["owner"] == "team-x"
    listed = _manifest(files)["files"]["metadata.json"]
    assert listed["sha256"] == hashlib.sha256(files["metadata.json"]).hexdigest()


def test_metrics_replace_the_defaults():
    assert _metadata(package_files(metrics={"f1_score": 0.4}))["evaluation_metrics"] == {"f1_score": 0.4}


def test_manifest_overrides_apply_after_hashing():
    bad = {"model.joblib": {"sha256": "0" * 64, "size": 1}}
    files = package_files(manifest_overrides={"files": bad, "model_version": "other"})
    assert _manifest(files) == {"model_version": "other", "files": bad}


def test_extra_files_and_resources_are_listed():
    files = package_files(extra_files={"notes/extra.txt": b"hello"}, resources={"max_memory_mb": 64})
    manifest = _manifest(files)
    assert files["notes/extra.txt"] == b"hello"
    hello = {"sha256": hashlib.sha256(b"hello").hexdigest(), "size": 5}
    assert manifest["files"]["notes/extra.txt"] == hello
    assert manifest["resources"] == {"max_memory_mb": 64}


def test_extra_file_replaces_a_standard_file_with_a_matching_hash():
    files = package_files(extra_files={"model.joblib": b"not a pickle"})
    assert files["model.joblib"] == b"not a pickle"
    assert _manifest(files)["files"]["model.joblib"]["size"] == 12


def test_compressed_model_is_smaller_and_loads_the_same():
    plain, packed = package_files(), package_files(compress=3)
    assert len(packed["model.joblib"]) < len(plain["model.joblib"]) // 2
    rows = np.asarray(sample_rows(20))
    np.testing.assert_array_equal(
        _load_model(plain).decision_function(rows), _load_model(packed).decision_function(rows)
    )


def test_compress_true_and_compress_one_are_not_confused_by_the_cache():
    level_one = package_files(compress=1)["model.joblib"]
    assert package_files(compress=True)["model.joblib"] == package_files(compress=3)["model.joblib"]
    assert package_files(compress=True)["model.joblib"] != level_one


def test_manifest_cannot_be_given_as_an_extra_file():
    with pytest.raises(ValueError, match="manifest_overrides"):
        package_files(extra_files={"deployment_manifest.json": b"{}"})


# --------------------------------------------------------------------------- writers


def test_write_zip_flat_and_folder_layouts(tmp_path):
    files = package_files()
    flat = write_zip(files, tmp_path / "pkg.zip")
    with zipfile.ZipFile(flat) as archive:
        assert archive.namelist() == sorted(files)
        assert {name: archive.read(name) for name in archive.namelist()} == files
        assert archive.testzip() is None

    folder = write_zip(files, tmp_path / "pkg-folder.zip", layout="folder")
    with zipfile.ZipFile(folder) as archive:
        assert archive.namelist() == ["pkg-folder/"] + [f"pkg-folder/{n}" for n in sorted(files)]
        assert archive.getinfo("pkg-folder/").is_dir()

    named = write_zip(files, tmp_path / "x.zip", layout="folder", folder_name="model_v1")
    with zipfile.ZipFile(named) as archive:
        assert archive.namelist()[0] == "model_v1/"
        assert archive.read("model_v1/metadata.json") == files["metadata.json"]

    with pytest.raises(ValueError, match="unknown layout"):
        write_zip(files, tmp_path / "y.zip", layout="nested")


def test_write_zip_gives_equal_bytes_for_equal_content(tmp_path):
    files = package_files()
    reordered = dict(reversed(list(files.items())))
    a = write_zip(files, tmp_path / "a.zip").read_bytes()
    b = write_zip(reordered, tmp_path / "b.zip").read_bytes()
    assert a == b
    c = write_zip(files, tmp_path / "one" / "pkg.zip", layout="folder").read_bytes()
    d = write_zip(files, tmp_path / "two" / "pkg.zip", layout="folder").read_bytes()
    assert c == d


def test_zip_members_are_regular_files_with_fixed_time(tmp_path):
    with zipfile.ZipFile(write_zip({"a.txt": b"a"}, tmp_path / "a.zip")) as archive:
        info = archive.getinfo("a.txt")
    assert info.date_time == (1980, 1, 1, 0, 0, 0)
    assert info.external_attr >> 16 == 0o100644
    assert info.compress_type == zipfile.ZIP_DEFLATED


def test_write_folder_and_build_package_formats(tmp_path):
    files = package_files(extra_files={"sub/x.txt": b"x"})
    out = write_folder(files, tmp_path / "pkg")
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files

    built = build_package(tmp_path / "b.zip").read_bytes()
    assert built == write_zip(package_files(), tmp_path / "c.zip").read_bytes()
    with zipfile.ZipFile(build_package(tmp_path / "d.zip", fmt="zip-folder", kind="lof")) as archive:
        assert "d/model.joblib" in archive.namelist()
    folder = build_package(tmp_path / "e", fmt="folder", include_optional=False)
    required = ["deployment_manifest.json", "metadata.json", "model.joblib"]
    assert sorted(p.name for p in folder.iterdir()) == required
    with pytest.raises(ValueError, match="unknown package format"):
        build_package(tmp_path / "f", fmt="tar")


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "a/../../b", "dir\\x"])
def test_write_folder_refuses_names_outside_the_folder(tmp_path, name):
    with pytest.raises(ValueError, match="refusing"):
        write_folder({name: b"x"}, tmp_path / "pkg")
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- training service


def _folder_complete(folder: Path) -> bool:
    manifest = json.loads((folder / "deployment_manifest.json").read_text())
    return all(
        (folder / name).is_file() and (folder / name).stat().st_size == entry["size"]
        for name, entry in manifest["files"].items()
    )


def test_write_training_service_layout_with_one_incomplete_package(tmp_path):
    paths = write_training_service(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "network-anomaly_20261101_080000",
        "nightly/network-anomaly_20261115_080000.zip",
        "network-anomaly_20261116_080000",
    ]
    complete_folder, zipped, incomplete = paths
    assert _folder_complete(complete_folder)
    assert not _folder_complete(incomplete)
    incomplete_manifest = json.loads((incomplete / "deployment_manifest.json").read_text())
    model_size = incomplete_manifest["files"]["model.joblib"]["size"]
    assert (incomplete / "model.joblib").stat().st_size == model_size // 2

    with zipfile.ZipFile(zipped) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    manifest = _manifest(members)
    assert all(hashlib.sha256(members[n]).hexdigest() == e["sha256"] for n, e in manifest["files"].items())

    created = []
    for metadata_bytes in [
        (complete_folder / "metadata.json").read_bytes(),
        members["metadata.json"],
        (incomplete / "metadata.json").read_bytes(),
    ]:
        metadata = json.loads(metadata_bytes)
        created.append(metadata["created_at"])
        assert datetime.strptime(metadata["created_at"], "%Y-%m-%dT%H:%M:%SZ").strftime(
            "%Y%m%d_%H%M%S"
        ) == metadata["version"]
    assert created == ["2026-11-01T08:00:00Z", "2026-11-15T08:00:00Z", "2026-11-16T08:00:00Z"]


def test_write_training_service_without_incomplete_and_more_versions(tmp_path):
    versions = ("20260101_000000", "20260201_000000", "20260301_000000")
    paths = write_training_service(tmp_path, versions=versions, incomplete=False)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "network-anomaly_20260101_000000",
        "network-anomaly_20260201_000000",
        "nightly/network-anomaly_20260301_000000.zip",
    ]
    assert all(_folder_complete(p) for p in paths[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "network-anomaly_20260101_000000",
        "network-anomaly_20260201_000000",
        "nightly",
    ]


# --------------------------------------------------------------------------- fixtures/


@pytest.mark.parametrize(
    "name",
    [
        "metadata.example.json",
        "deployment_manifest.example.json",
        "registry.old-format.json",
        "registry.new-format.json",
    ],
)
def test_fixture_json_files_parse(name):
    assert isinstance(json.loads((FIXTURES / name).read_text()), dict)


def test_fixture_examples_match_the_contract_shapes():
    metadata_bytes = (FIXTURES / "metadata.example.json").read_bytes()
    metadata = json.loads(metadata_bytes)
    assert {"model_name", "created_at", "model_type", "feature_names"} <= set(metadata)
    assert list(metadata["feature_profile"]) == metadata["feature_names"]
    for entry in metadata["feature_profile"].values():
        assert len(entry["quantiles"]) == 11 and entry["quantiles"] == sorted(entry["quantiles"])

    manifest = json.loads((FIXTURES / "deployment_manifest.example.json").read_text())
    assert manifest["model_version"] == metadata["version"]
    assert manifest["files"]["metadata.json"] == {
        "sha256": hashlib.sha256(metadata_bytes).hexdigest(),
        "size": len(metadata_bytes),
    }
    assert isinstance(manifest["files"]["README.md"], str) and len(manifest["files"]["README.md"]) == 64

    old = json.loads((FIXTURES / "registry.old-format.json").read_text())
    statuses = [m["status"] for m in old["models"]]
    assert "active" in statuses
    assert all(not Path(m["path"]).is_absolute() for m in old["models"])
    assert any("trained_by" in m for m in old["models"])

    new = json.loads((FIXTURES / "registry.new-format.json").read_text())
    assert all(key == entry["version"] for key, entry in new.items())
    assert [e["status"] for e in new.values()].count("deployed") == 1


def test_make_samples_script_writes_every_kind_and_a_training_service(tmp_path):
    result = subprocess.run(
        [sys.executable, str(FIXTURES / "make_samples.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    printed = [Path(line) for line in result.stdout.splitlines()]
    expected = []
    for kind in MODEL_KINDS:
        expected += [f"packages/{kind}.zip", f"packages/{kind}-folder.zip", f"packages/{kind}"]
    expected += [
        "training-service/network-anomaly_20261101_080000",
        "training-service/nightly/network-anomaly_20261115_080000.zip",
        "training-service/network-anomaly_20261116_080000",
    ]
    assert [p.relative_to(tmp_path).as_posix() for p in printed] == expected
    assert all(p.exists() for p in printed)
    versions = set()
    for kind in MODEL_KINDS:
        with zipfile.ZipFile(tmp_path / "packages" / f"{kind}-folder.zip") as archive:
            assert f"{kind}-folder/model.joblib" in archive.namelist()
        versions.add(json.loads((tmp_path / "packages" / kind / "metadata.json").read_text())["version"])
    assert len(versions) == len(MODEL_KINDS)
