"""Builders for sample model packages and training-service folders.

Tests and `model-mcp demo` both need real packages in the contract's format (docs/package-format.md): a `model.joblib` holding a real, fitted scikit-learn outlier detector, a
`metadata.json` with a full `feature_profile`, and a `deployment_manifest.json` listing the
sha256 and size of every other file. Committing such binaries would tie the repository to
one scikit-learn version, so they are built here, on demand, from fixed seeds.

Everything is deterministic: equal arguments give equal bytes (within one installed
scikit-learn), and `write_zip` uses fixed timestamps and member order so that equal content
gives equal archives. Training is cached per (kind, size, seed, contamination) because tests
build many packages from the same model.

This module trains and *writes* models; it never loads one. Loading belongs to the trusted
unpickler in `core/unpickler.py`.

Not done here: fitting on named columns (`feature_names_in_`). That needs a pandas DataFrame
and pandas is not a dependency, so every model is fitted on a plain ndarray and the names live
only in `metadata.json`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import joblib
import numpy as np

DEFAULT_FEATURES: tuple[str, ...] = (
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "duration_s",
    "dst_port_entropy",
    "conn_rate",
    "error_rate",
)
MODEL_KINDS = ("iforest", "pipeline", "ocsvm", "lof")

DEFAULT_METRICS: dict[str, float] = {
    "accuracy": 0.97,
    "precision": 0.91,
    "recall": 0.88,
    "f1_score": 0.89,
    "roc_auc": 0.95,
}
OPTIONAL_FILES = ("validate_model.py", "inference_example.py", "requirements.txt", "README.md")
MANIFEST_NAME = "deployment_manifest.json"
QUANTILE_LEVELS = tuple(i / 10 for i in range(11))

# 1980-01-01 is the earliest time a ZIP header can hold; any fixed value makes archives
# reproducible, this one also says plainly that it is not a real time.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_ZIP_FILE_ATTR = 0o100644 << 16  # regular file, rw-r--r--, as `zip -r` writes it
_ZIP_DIR_ATTR = (0o040755 << 16) | 0x10  # directory + MS-DOS directory flag
_ZIP_UNIX = 3  # create_system: fixed so the bytes do not depend on the host OS

_OCSVM_MAX_ROWS = 1000  # OneClassSVM is quadratic in rows; this keeps it under ~0.1 s
TRAINING_GROUP = "nightly"


# --------------------------------------------------------------------------- data


def feature_names_for(n_features: int) -> list[str]:
    """The first `n_features` of DEFAULT_FEATURES, then `feature_8`, `feature_9`, ... if more are asked."""
    names = list(DEFAULT_FEATURES[:n_features])
    names += [f"feature_{i}" for i in range(len(names), n_features)]
    return names


def training_data(n_samples: int = 2000, n_features: int = 8, seed: int = 0) -> np.ndarray:
    """Standard normal data, float64 of shape (n_samples, n_features); equal arguments, equal array."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, n_features))


def outliers(n: int, n_features: int = 8, seed: int = 1, scale: float = 6.0) -> np.ndarray:
    """Rows that every sample model flags as anomalies.

    Each coordinate is `±scale` plus a little noise, so with the default scale every row sits
    about 6 standard deviations from the training data on *every* axis.
    """
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n, n_features))
    return signs * scale + rng.normal(0.0, 0.25, size=(n, n_features))


def sample_rows(
    n: int,
    n_features: int = 8,
    seed: int = 2,
    as_dicts: bool = False,
    feature_names: Sequence[str] | None = None,
) -> list:
    """Rows for `predict`, drawn like the training data: lists of floats, or dicts keyed by feature name."""
    data = training_data(n, n_features, seed)
    rows = [[float(v) for v in row] for row in data]
    if not as_dicts:
        return rows
    names = list(feature_names) if feature_names is not None else feature_names_for(n_features)
    if len(names) != n_features:
        raise ValueError(f"{len(names)} feature names given for {n_features} features")
    return [dict(zip(names, row, strict=True)) for row in rows]


def feature_profile(X: np.ndarray, feature_names: Sequence[str]) -> dict[str, dict]:
    """The contract's `feature_profile`: per column mean, std (population, ddof=0), min, max and
    the 0%, 10%, ..., 100% quantiles (numpy's default linear interpolation), as plain floats
    so the result goes straight into JSON."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"data of shape {X.shape} does not match {len(feature_names)} feature names")
    profile: dict[str, dict] = {}
    for j, name in enumerate(feature_names):
        col = X[:, j]
        profile[name] = {
            "mean": float(col.mean()),
            "std": float(col.std()),
            "min": float(col.min()),
            "max": float(col.max()),
            "quantiles": [float(q) for q in np.quantile(col, QUANTILE_LEVELS)],
        }
    return profile


# --------------------------------------------------------------------------- models


def build_model(
    kind: str,
    X: np.ndarray,
    *,
    seed: int = 0,
    contamination: float = 0.05,
    feature_names: Sequence[str] | None = None,
):
    """A fitted, small outlier detector of the given kind (one of MODEL_KINDS).

    - `iforest`: IsolationForest(n_estimators=50)
    - `pipeline`: StandardScaler -> IsolationForest(n_estimators=50)
    - `ocsvm`: OneClassSVM(nu=contamination, gamma="scale") on the first 1000 rows at most
    - `lof`: LocalOutlierFactor(novelty=True, n_neighbors=20)

    `feature_names` is accepted for symmetry with the metadata but not used for fitting: naming
    columns at fit time needs pandas, which is not installed, so `feature_names_in_` is absent.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    del feature_names  # documented above: names are metadata only
    X = np.asarray(X, dtype=np.float64)
    if kind == "iforest":
        model = IsolationForest(n_estimators=50, contamination=contamination, random_state=seed)
    elif kind == "pipeline":
        forest = IsolationForest(n_estimators=50, contamination=contamination, random_state=seed)
        model = Pipeline([("scaler", StandardScaler()), ("detector", forest)])
    elif kind == "ocsvm":
        model = OneClassSVM(nu=contamination, gamma="scale")
        X = X[:_OCSVM_MAX_ROWS]
    elif kind == "lof":
        model = LocalOutlierFactor(novelty=True, n_neighbors=20, contamination=contamination)
    else:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    return model.fit(X)


@functools.lru_cache(maxsize=64)
def _trained(kind: str, n_samples: int, n_features: int, seed: int, contamination: float):
    """The cached fitted model. Callers must not mutate it; package_files only serializes it."""
    X = training_data(n_samples, n_features, seed)
    return build_model(kind, X, seed=seed, contamination=contamination)


# typed=True: compress=True (zlib level 3) and compress=1 (level 1) compare equal as keys.
@functools.lru_cache(maxsize=128, typed=True)
def _model_bytes(
    kind: str, n_samples: int, n_features: int, seed: int, contamination: float, compress: int | bool
) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(_trained(kind, n_samples, n_features, seed, contamination), buffer, compress=compress)
    return buffer.getvalue()


@functools.lru_cache(maxsize=64)
def _cached_profile(n_samples: int, n_features: int, seed: int) -> dict[str, dict]:
    return feature_profile(training_data(n_samples, n_features, seed), feature_names_for(n_features))


def _model_type(kind: str) -> str:
    return {
        "iforest": "IsolationForest",
        "pipeline": "Pipeline",
        "ocsvm": "OneClassSVM",
        "lof": "LocalOutlierFactor",
    }[kind]


# --------------------------------------------------------------------------- package content


def _json_bytes(obj: Any) -> bytes:
    """Stable JSON: insertion order kept, 2-space indent, trailing newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _merge(base: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Shallow merge where a value of None deletes the key (so tests can drop required keys)."""
    merged = dict(base)
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def file_entry(content: bytes) -> dict[str, Any]:
    """A manifest `files` entry for these bytes: {"sha256": hex, "size": n}."""
    return {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}


def _optional_files(model_name: str, model_type: str, feature_names: Sequence[str]) -> dict[str, bytes]:
    import sklearn

    example_row = ", ".join("0.0" for _ in feature_names)
    validate = f'''"""Custom validation for {model_name}: load, predict on random rows, check the labels.

Exit status 0 means the model passed. Runs only where the operator enables custom scripts.
"""
import sys
from pathlib import Path

import joblib
import numpy as np

model = joblib.load(Path(__file__).resolve().parent / "model.joblib")
rows = np.random.default_rng(0).standard_normal((100, {len(feature_names)}))
labels = model.predict(rows)
if not set(np.unique(labels)) <= {{-1, 1}}:
    sys.exit("labels outside {{-1, 1}}")
print("ok: 100 rows, anomaly rate", float(np.mean(labels == -1)))
'''
    inference = f'''"""Example: score rows with {model_name} ({model_type}).

Through model-mcp, call the `predict` tool with
    {{"rows": [[{example_row}]]}}
or with rows keyed by feature name. Locally, with the package extracted:
"""
from pathlib import Path

import joblib

FEATURES = {list(feature_names)!r}

model = joblib.load(Path(__file__).resolve().parent / "model.joblib")
row = [[{example_row}]]
print("label:", model.predict(row)[0], "score:", model.decision_function(row)[0])
'''
    requirements = (
        f"scikit-learn=={sklearn.__version__}\njoblib=={joblib.__version__}\nnumpy=={np.__version__}\n"
    )
    readme = (
        f"# {model_name}\n\n"
        f"A {model_type} outlier detector trained on synthetic Gaussian data by `model_mcp.samples`.\n"
        f"Inputs, in order: {', '.join(feature_names)}.\n"
        "Labels: -1 anomaly, 1 normal.\n"
    )
    return {
        "validate_model.py": validate.encode(),
        "inference_example.py": inference.encode(),
        "requirements.txt": requirements.encode(),
        "README.md": readme.encode(),
    }


def package_files(
    *,
    kind: str = "iforest",
    version: str | None = "20261120_143022",
    model_name: str = "network-anomaly",
    created_at: str = "2026-11-20T14:30:22Z",
    n_samples: int = 2000,
    n_features: int = 8,
    seed: int = 0,
    contamination: float = 0.05,
    metrics: dict | None = None,
    include_optional: bool = True,
    manifest_version: bool = True,
    metadata_overrides: dict | None = None,
    manifest_overrides: dict | None = None,
    extra_files: dict[str, bytes] | None = None,
    resources: dict | None = None,
    compress: int | bool = 0,
) -> dict[str, bytes]:
    """A complete, consistent package as name -> bytes.

    - `version=None` leaves the version out of metadata and manifest (it then comes from `created_at`).
    - `metrics` replaces the default (good) `evaluation_metrics`.
    - `metadata_overrides` is merged last into metadata; a value of None deletes the key. The
      manifest's `model_version` still comes from `version`, so overriding metadata's version
      makes the two disagree on purpose.
    - `extra_files` are added and hashed like the rest; a name equal to a standard file replaces
      it (for example an untrusted `model.joblib` whose hash is nonetheless right).
    - `manifest_overrides` is merged into the manifest *after* hashing (same None rule), to build
      wrong hashes or a bad `model_version`. The manifest itself cannot come from `extra_files`.

    The manifest lists the sha256 and size of every file except itself, sorted by name.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    names = feature_names_for(n_features)
    model_type = _model_type(kind)
    files: dict[str, bytes] = {
        "model.joblib": _model_bytes(kind, n_samples, n_features, seed, contamination, compress),
        "metadata.json": _json_bytes(
            _merge(
                _metadata(
                    kind=kind,
                    version=version,
                    model_name=model_name,
                    created_at=created_at,
                    n_samples=n_samples,
                    n_features=n_features,
                    seed=seed,
                    contamination=contamination,
                    metrics=metrics,
                ),
                metadata_overrides,
            )
        ),
    }
    if include_optional:
        files.update(_optional_files(model_name, model_type, names))
    files.update(extra_files or {})
    if MANIFEST_NAME in files:
        raise ValueError(f"{MANIFEST_NAME} is built here; change it with manifest_overrides")

    manifest: dict[str, Any] = {}
    if manifest_version and version is not None:
        manifest["model_version"] = version
    manifest["files"] = {name: file_entry(files[name]) for name in sorted(files)}
    if resources is not None:
        manifest["resources"] = dict(resources)
    files[MANIFEST_NAME] = _json_bytes(_merge(manifest, manifest_overrides))
    return files


def _metadata(
    *,
    kind: str,
    version: str | None,
    model_name: str,
    created_at: str,
    n_samples: int,
    n_features: int,
    seed: int,
    contamination: float,
    metrics: dict | None,
) -> dict[str, Any]:
    import sklearn

    metadata: dict[str, Any] = {
        "model_name": model_name,
        "created_at": created_at,
        "model_type": _model_type(kind),
        "feature_names": feature_names_for(n_features),
    }
    if version is not None:
        metadata["version"] = version
    metadata["framework"] = {"name": "scikit-learn", "version": sklearn.__version__}
    metadata["training_info"] = {
        "n_samples": n_samples,
        "contamination": contamination,
        "dataset": "synthetic-gaussian",
        "seed": seed,
    }
    metadata["evaluation_metrics"] = dict(DEFAULT_METRICS if metrics is None else metrics)
    metadata["feature_profile"] = copy.deepcopy(_cached_profile(n_samples, n_features, seed))
    return metadata


# --------------------------------------------------------------------------- writers


def _zip_info(name: str, compression: int, *, is_dir: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    info.create_system = _ZIP_UNIX
    info.compress_type = zipfile.ZIP_STORED if is_dir else compression
    info.external_attr = _ZIP_DIR_ATTR if is_dir else _ZIP_FILE_ATTR
    return info


def write_zip(
    files: Mapping[str, bytes],
    path: str | Path,
    *,
    layout: str = "flat",
    folder_name: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a package as a ZIP: members at the root (`flat`) or all inside one folder (`folder`).

    The folder is `folder_name`, else the archive's stem; like `zip -r`, the archive also holds
    the folder's own directory entry (`name/`), which an importer must accept. Members go in
    sorted order with a fixed timestamp and mode, so equal content gives equal bytes. Names are
    written as given, unchecked, so tests can also build hostile archives with this.
    """
    path = Path(path)
    if layout not in ("flat", "folder"):
        raise ValueError(f"unknown layout {layout!r}; expected 'flat' or 'folder'")
    prefix = ""
    if layout == "folder":
        folder = (folder_name or path.stem).strip("/")
        if not folder:
            raise ValueError("a zipped-folder layout needs a non-empty folder name")
        prefix = folder + "/"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        if prefix:
            archive.writestr(_zip_info(prefix, compression, is_dir=True), b"")
        for name in sorted(files):
            archive.writestr(_zip_info(prefix + name, compression), files[name])
    return path


def _safe_relative(name: str) -> PurePosixPath:
    """Refuse names that would land outside the target folder: this writer touches the real disk."""
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or "\\" in name or any(part in ("", "..") for part in name.split("/")):
        raise ValueError(f"refusing to write file name {name!r} outside the package folder")
    return rel


def write_folder(files: Mapping[str, bytes], path: str | Path) -> Path:
    """Write a package as a plain folder (created if needed); names may contain `/` subfolders."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in sorted(files):
        target = path.joinpath(*_safe_relative(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[name])
    return path


def build_package(path: str | Path, *, fmt: str = "zip", **package_kwargs: Any) -> Path:
    """`package_files(**package_kwargs)` written as `zip` (flat), `zip-folder` (folder named after
    the archive's stem) or `folder`."""
    files = package_files(**package_kwargs)
    if fmt == "zip":
        return write_zip(files, path)
    if fmt == "zip-folder":
        return write_zip(files, path, layout="folder")
    if fmt == "folder":
        return write_folder(files, path)
    raise ValueError(f"unknown package format {fmt!r}; expected 'zip', 'zip-folder' or 'folder'")


# --------------------------------------------------------------------------- training service


def _created_at_for(version: str, index: int) -> datetime:
    """The version read as `YYYYMMDD_HHMMSS` (UTC); other versions get 2026-11-01 plus `index` days."""
    try:
        return datetime.strptime(version, "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return datetime(2026, 11, 1, 8, 0, 0, tzinfo=UTC) + timedelta(days=index)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_training_service(
    root: str | Path,
    *,
    versions: Sequence[str] = ("20261101_080000", "20261115_080000"),
    incomplete: bool = True,
) -> list[Path]:
    """A sample training-service folder (docs/operations.md, "The training service's folder"), returning the package paths.

    With the defaults:

        root/network-anomaly_20261101_080000/          folder package, complete
        root/nightly/network-anomaly_20261115_080000.zip   zip package, in a group folder
        root/network-anomaly_20261116_080000/          folder package, incomplete

    Every version but the last is a folder package at the top level; the last is a flat ZIP in
    the group folder `nightly/`. With `incomplete`, one more folder package follows, newest of
    all by `created_at` (one day after the last), whose `model.joblib` is cut to half the size
    the manifest lists, as if training were still writing it: `import_latest` must skip it.
    `created_at` increases with the position in `versions`. Paths come back in that order, the
    incomplete package last.
    """
    if not versions:
        raise ValueError("write_training_service needs at least one version")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    moments = [_created_at_for(v, i) for i, v in enumerate(versions)]
    for i, (version, moment) in enumerate(zip(versions, moments, strict=True)):
        files = package_files(version=version, created_at=_iso(moment))
        stem = f"network-anomaly_{version}"
        if i == len(versions) - 1:
            written.append(write_zip(files, root / TRAINING_GROUP / f"{stem}.zip"))
        else:
            written.append(write_folder(files, root / stem))
    if incomplete:
        moment = max(moments) + timedelta(days=1)
        version = moment.strftime("%Y%m%d_%H%M%S")
        files = package_files(version=version, created_at=_iso(moment))
        model = files["model.joblib"]
        files["model.joblib"] = model[: len(model) // 2]
        written.append(write_folder(files, root / f"network-anomaly_{version}"))
    return written
