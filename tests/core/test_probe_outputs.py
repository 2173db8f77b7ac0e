"""The probe's output rules, one copy for the isolated child and the in-process check.

They used to disagree: a model whose predict answers booleans passed in the probe child and failed
validation's in-process probe ("not finite numbers"). Serving answers booleans (as 0/1), so both
now accept them; both read the same function.
"""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import numpy as np
from sklearn.tree import DecisionTreeClassifier

from model_mcp import samples
from model_mcp.core.isolated_probe import run_isolated_probe
from model_mcp.core.model_checks import anomaly_share, output_problems
from model_mcp.core.package import inspect_package
from model_mcp.core.validation import probe_batch, validate_package
from model_mcp.settings import Settings


def test_the_rules():
    assert output_problems(np.array([True, False, True]), None, 3) == []
    assert output_problems(np.array([-1, 1, 1]), np.array([0.1, 0.2, -0.3]), 3) == []
    assert output_problems(np.array([1.0, np.nan]), None, 2) == ["predict returned values that are not finite numbers"]
    assert output_problems(np.array(["a", "b"]), None, 2) == ["predict returned values that are not finite numbers"]
    assert output_problems(np.array([1, 1, 1]), None, 2) == ["predict returned shape (3,), not (2,)"]
    assert output_problems(np.array([1, 1]), np.array([0.0, np.inf]), 2) == ["some scores are not finite"]
    assert anomaly_share(np.array([-1, 1, 1, 1])) == 0.25
    assert anomaly_share(np.array([True, True])) is None  # booleans are not the detectors' -1/1
    assert anomaly_share(np.array([0, 1])) is None


def _boolean_model_package(folder: Path) -> Path:
    X = samples.training_data(400, 8, seed=2)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, X[:, 0] > 0)
    assert model.predict(X[:5]).dtype == np.bool_
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    files = samples.package_files(version="bools-1", extra_files={"model.joblib": buffer.getvalue()})
    return samples.write_folder(files, folder)


def test_a_model_answering_booleans_gets_one_verdict_in_the_child_and_in_the_server(tmp_path):
    root = _boolean_model_package(tmp_path / "bools")
    contents = inspect_package(root)
    child = run_isolated_probe(root / "model.joblib", probe_batch(contents.metadata))
    assert child.ok, child.detail
    outcome = validate_package(root, version="bools-1", settings=Settings(home=tmp_path / "home"))
    probe = {c.name: c for c in outcome.report.checks}["functional_probe"]
    assert probe.status == "pass", probe.detail
    assert "flagged as anomalies" not in probe.detail and "flagged as anomalies" not in child.detail
