"""The isolated probe: healthy models pass; crashes, hangs and memory hogs fail it, not this process.

Genuine hostile scikit-learn models (a tree child index far past the node array: SIGSEGV; a
root whose children are itself: an endless loop in compiled code) are probed with the
structural check turned off, to show the process isolation alone contains them. Test-only
classes (written to a module in a temporary folder, trusted through `extra_trusted` and found
through `extra_sys_path`) misbehave in the other ways: abort while loading, allocate too much,
return bad outputs, leave a worker process behind.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from model_mcp.core.isolated_probe import run_isolated_probe

N_FEATURES = 4
HELPERS = "probe_hostile_parts"

HELPER_SOURCE = '''
"""Test-only model parts for the isolated probe, each misbehaving in one way."""
import os
import subprocess

import numpy as np


class AbortOnLoad:
    def __init__(self):
        self.armed = True

    def __setstate__(self, state):
        os.abort()


class Hog:
    def predict(self, X):
        block = np.ones(1 << 30, dtype=np.uint8)  # 1 GiB: fine without the limit
        return np.ones(X.shape[0]) * block[-1]


class BadOutputs:
    def predict(self, X):
        return np.ones(X.shape[0] + 1)

    def decision_function(self, X):
        return np.full(X.shape[0], np.nan)


class LeavesAWorker:
    def __init__(self, pid_file):
        self.pid_file = pid_file

    def predict(self, X):
        worker = subprocess.Popen(["sleep", "60"])
        with open(self.pid_file, "w") as handle:
            handle.write(str(worker.pid))
        return np.ones(X.shape[0])
'''


@pytest.fixture(scope="module")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, str]]:
    folder = tmp_path_factory.mktemp("helpers")
    (folder / f"{HELPERS}.py").write_text(HELPER_SOURCE, encoding="utf-8")
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(HELPERS), str(folder)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(HELPERS, None)


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(300, N_FEATURES))


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(4).normal(size=(100, N_FEATURES))


def dump(model: Any, folder: Path, name: str = "model.joblib") -> Path:
    path = folder / name
    joblib.dump(model, path)
    return path


def forest_with_root_children(train: np.ndarray, child: int) -> IsolationForest:
    """Every row takes the root's edited link in every tree: a crash or a loop for sure."""
    forest = IsolationForest(n_estimators=3, random_state=0).fit(train)
    for member in forest.estimators_:
        state = member.tree_.__getstate__()
        nodes = state["nodes"].copy()
        nodes["left_child"][0] = nodes["right_child"][0] = child
        member.tree_.__setstate__(dict(state, nodes=nodes))
    return forest


def trusted(*names: str) -> list[tuple[str, str]]:
    return [(HELPERS, name) for name in names]


# --- healthy ------------------------------------------------------------------------------------
HEALTHY = {
    "iforest": lambda: IsolationForest(n_estimators=20, random_state=0),
    "pipeline": lambda: make_pipeline(StandardScaler(), IsolationForest(n_estimators=20, random_state=0)),
    "lof": lambda: LocalOutlierFactor(n_neighbors=10, novelty=True),
    "ocsvm": lambda: OneClassSVM(nu=0.1),
}


def test_healthy_models_pass_the_isolated_probe(tmp_path: Path, train: np.ndarray, rows: np.ndarray) -> None:
    # Probed concurrently, as server threads may: each probe has its own folder and process.
    models = {name: build().fit(train) for name, build in HEALTHY.items()}
    paths = {name: dump(model, tmp_path, f"{name}.joblib") for name, model in models.items()}
    with ThreadPoolExecutor(len(paths)) as pool:
        results = dict(zip(paths, pool.map(lambda p: run_isolated_probe(p, rows), paths.values()), strict=True))
    for name, result in results.items():
        assert result.ok, f"{name}: {result.detail}"
        assert (result.problems, result.code) == ([], None)
        rate = float(np.mean(models[name].predict(rows) == -1))
        assert result.detail == (
            f"In a separate process the model loaded in {result.load_ms:.0f} ms and predicted 100 rows in "
            f"{result.probe_ms:.1f} ms, with finite labels and decision_function scores of the right shape; "
            f"{rate:.0%} flagged as anomalies."
        ), name
        assert result.duration_ms > result.load_ms + result.probe_ms > 0


# --- hostile scikit-learn state -----------------------------------------------------------------
def test_structural_problems_fail_the_probe_before_predicting(tmp_path: Path, train: np.ndarray,
                                                              rows: np.ndarray) -> None:
    forest = forest_with_root_children(train, 10**12)
    n_nodes = [m.tree_.node_count for m in forest.estimators_]
    result = run_isolated_probe(dump(forest, tmp_path), rows)
    assert not result.ok
    assert result.problems == [
        f"IsolationForest.estimators_[{i}].tree_: split nodes have children outside (own id, {n}): predicting "
        "would read past the tree or loop back to an ancestor: node 0 -> (1000000000000, 1000000000000)."
        for i, n in enumerate(n_nodes)
    ]
    assert result.detail == "The model's structure is unsafe to predict with: " + "; ".join(result.problems)
    assert result.probe_ms is None


def test_segfaulting_model_fails_the_probe_and_this_process_survives(tmp_path: Path, train: np.ndarray,
                                                                    rows: np.ndarray) -> None:
    path = dump(forest_with_root_children(train, 10**12), tmp_path)
    result = run_isolated_probe(path, rows, check_structure=False)
    assert not result.ok
    assert result.detail == (
        "The probe process crashed with SIGSEGV while predicting: the model's state makes compiled code "
        "fail outside Python (for example an index past the end of an array)."
    )


def test_looping_tree_is_stopped_at_the_timeout(tmp_path: Path, train: np.ndarray, rows: np.ndarray) -> None:
    # 10 s: loading scikit-learn and the model in a fresh child takes 2-5 s on a busy 2-core machine,
    # and the point is a child stopped while *predicting*, not one still loading.
    path = dump(forest_with_root_children(train, 0), tmp_path)
    result = run_isolated_probe(path, rows, timeout_s=10, check_structure=False)
    assert not result.ok
    assert result.detail == (
        "The probe process did not finish within 10 s (it was predicting) and was stopped: a model whose "
        "tree loops, or one far too slow to serve."
    )
    assert 10000 <= result.duration_ms < 14000


# --- test-only classes ----------------------------------------------------------------------------
def test_abort_while_loading_is_reported_with_its_signal(tmp_path: Path, helpers: tuple[ModuleType, str],
                                                         rows: np.ndarray) -> None:
    module, folder = helpers
    path = dump(module.AbortOnLoad(), tmp_path)
    result = run_isolated_probe(path, rows, extra_trusted=trusted("AbortOnLoad"), extra_sys_path=[folder])
    assert not result.ok
    assert result.detail == (
        "The probe process crashed with SIGABRT while loading the model: the model's state makes compiled code "
        "fail outside Python (for example an index past the end of an array)."
    )


def test_untrusted_class_fails_with_its_code_and_nothing_runs(tmp_path: Path, helpers: tuple[ModuleType, str],
                                                              rows: np.ndarray) -> None:
    module, folder = helpers
    path = dump(module.AbortOnLoad(), tmp_path)  # would abort if its __setstate__ ever ran
    result = run_isolated_probe(path, rows, extra_sys_path=[folder])
    assert not result.ok
    assert result.code == "untrusted_model"
    assert result.detail.startswith("[untrusted_model] ")
    assert f"{HELPERS}.AbortOnLoad" in result.detail


def test_memory_hog_is_stopped_by_the_memory_limit(tmp_path: Path, helpers: tuple[ModuleType, str],
                                                   rows: np.ndarray) -> None:
    module, folder = helpers
    path = dump(module.Hog(), tmp_path)
    result = run_isolated_probe(path, rows, extra_trusted=trusted("Hog"), extra_sys_path=[folder], memory_mb=768)
    assert not result.ok
    assert result.detail.startswith("Predicting 100 rows in the probe process raised MemoryError: ")
    assert result.detail.endswith(" The probe's memory limit is 768 MiB.")


def test_bad_outputs_are_named(tmp_path: Path, helpers: tuple[ModuleType, str], rows: np.ndarray) -> None:
    module, folder = helpers
    path = dump(module.BadOutputs(), tmp_path)
    result = run_isolated_probe(path, rows, extra_trusted=trusted("BadOutputs"), extra_sys_path=[folder])
    assert not result.ok
    assert result.detail == "The probe process found: predict returned shape (101,), not (100,); some scores are not finite."


def test_worker_processes_left_behind_are_killed(tmp_path: Path, helpers: tuple[ModuleType, str],
                                                 rows: np.ndarray) -> None:
    module, folder = helpers
    pid_file = tmp_path / "worker.pid"
    path = dump(module.LeavesAWorker(str(pid_file)), tmp_path)
    result = run_isolated_probe(path, rows, extra_trusted=trusted("LeavesAWorker"), extra_sys_path=[folder])
    assert result.ok, result.detail
    assert result.detail.endswith("with finite labels of the right shape (no scores); 0% flagged as anomalies.")
    worker = int(pid_file.read_text())
    assert _gone(worker)


def _gone(pid: int, within_s: float = 3.0) -> bool:
    """Dead, or a zombie waiting for init to reap it."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_rows_must_be_a_2d_numeric_array(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-empty 2-D numeric array"):
        run_isolated_probe(tmp_path / "model.joblib", np.zeros(4))
    with pytest.raises(ValueError, match="non-empty 2-D numeric array"):
        run_isolated_probe(tmp_path / "model.joblib", np.array([["a", "b"]]))
    assert os.listdir(tmp_path) == []  # refused before any file or process
