"""The packed scorer saved beside the home, so that a restart serves before scikit-learn loads.

Importing scikit-learn and unpickling a model take most of a second; the packed arrays of a
FastScorer load in milliseconds with numpy alone. At deploy (and at the first start that lacks
it) the scorer is written to `scoring/<version>.npz` with a sidecar `scoring/<version>.json`
naming the sha256 of the model.joblib it was built from and of the .npz itself. At start the
cache is used only when both digests match the files on disk; the full model still loads right
after, in the same background thread, and takes over (for large batches and everything else).

The .npz holds plain numeric arrays and is read with `allow_pickle=False`: nothing in it is code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from model_mcp.core.scoring.forest import FastForest
from model_mcp.core.scoring.transforms import OPERATIONS, Transform

__all__ = ["FOLDER", "FORMAT", "load_scorer", "remove_scorer", "save_scorer"]

FOLDER = "scoring"  # under the home
FORMAT = 1
_FOREST_ARRAYS = ("roots", "feature", "threshold32", "first_child", "term", "denominator")


def _paths(folder: Path, version: str) -> tuple[Path, Path]:
    return folder / f"{version}.npz", folder / f"{version}.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_scorer(scorer: Any, folder: Path, version: str, model_sha256: str) -> Path:
    """Write the scorer's arrays and its sidecar (atomically, each through a temp file)."""
    folder.mkdir(parents=True, exist_ok=True)
    npz_path, meta_path = _paths(folder, version)
    forest: FastForest = scorer.forest
    arrays = {name: getattr(forest, name) for name in _FOREST_ARRAYS}
    transforms = []
    for i, transform in enumerate(scorer.transforms):
        steps = []
        for j, (name, operand) in enumerate(transform.steps):
            key = f"t{i}_{j}"
            arrays[key] = operand
            steps.append([name, key])
        transforms.append({"kind": transform.kind, "steps": steps})
    tmp_npz = npz_path.with_name(f".{npz_path.name}.{os.getpid()}.tmp")
    with tmp_npz.open("wb") as handle:
        np.savez(handle, **arrays)
    meta = {
        "format": FORMAT, "version": version, "model_sha256": model_sha256, "npz_sha256": _sha256(tmp_npz),
        "n_features": forest.n_features, "n_trees": forest.n_trees, "depth": forest.depth,
        "offset": forest.offset.hex(), "transforms": transforms,
    }
    os.replace(tmp_npz, npz_path)
    tmp_meta = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(meta))
    os.replace(tmp_meta, meta_path)
    return npz_path


def remove_scorer(folder: Path, version: str) -> None:
    """Remove a version's saved scorer (when the version is deleted)."""
    for path in _paths(folder, version):
        path.unlink(missing_ok=True)


def load_scorer(folder: Path, version: str, model_sha256: str) -> Any | None:
    """The saved scorer of `version` when it was built from a model.joblib with this sha256, else None."""
    from model_mcp.core.scoring import FastScorer

    npz_path, meta_path = _paths(folder, version)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("model_sha256") != model_sha256:
            return None
        if _sha256(npz_path) != meta["npz_sha256"]:
            return None
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        transforms = []
        for spec in meta["transforms"]:
            steps = []
            for name, key in spec["steps"]:
                if name not in OPERATIONS:
                    return None
                steps.append((name, arrays[key]))
            transforms.append(Transform(kind=str(spec["kind"]), steps=tuple(steps)))
        forest = FastForest(
            n_features=int(meta["n_features"]), n_trees=int(meta["n_trees"]), depth=int(meta["depth"]),
            offset=float.fromhex(meta["offset"]), trees=(), crossover_rows=None,
            **{name: arrays[name] for name in _FOREST_ARRAYS},
        )
        if not _consistent(forest):
            return None
        forest._heap()  # laid out now, in the loading thread, rather than by the first predict
        return FastScorer(transforms=tuple(transforms), forest=forest)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None


def _consistent(forest: FastForest) -> bool:
    """Shapes, dtypes and index ranges that the walk relies on (a damaged file must not index out of range)."""
    n = forest.feature.shape[0]
    if not all(a.ndim == 1 for a in (forest.roots, forest.feature, forest.threshold32, forest.first_child, forest.term)):
        return False
    if not (forest.threshold32.shape[0] == forest.first_child.shape[0] == forest.term.shape[0] == n) or n == 0:
        return False
    if forest.roots.shape[0] != forest.n_trees or forest.denominator.shape != (1,):
        return False
    if forest.threshold32.dtype != np.float32 or forest.term.dtype != np.float64:
        return False
    for index_array, bound in ((forest.roots, n), (forest.first_child, n), (forest.feature, forest.n_features)):
        if index_array.dtype.kind not in "iu" or (index_array < 0).any() or (index_array >= bound).any():
            return False
    forest.roots = forest.roots.astype(np.intp)
    forest.feature = forest.feature.astype(np.intp)
    forest.first_child = forest.first_child.astype(np.intp)
    return True
