"""drift_report and record_feedback through a real MCP client, with exact expectations."""

from __future__ import annotations

import numpy as np
import pytest

from model_mcp import samples
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

FEATURES = list(samples.DEFAULT_FEATURES)


async def _deployed(client, packages, version="v1", **kwargs):
    await call(client, "import_zip", path=str(packages(version=version, n_samples=20_000, **kwargs)))
    await call(client, "deploy", version=version)


async def _predict_in_batches(client, X: np.ndarray, batch: int = 1000) -> list[dict]:
    answers = []
    for start in range(0, X.shape[0], batch):
        answers.append(await call(client, "predict", rows=X[start:start + batch].tolist()))
    return answers


async def test_identically_distributed_inputs_raise_no_alert(client, packages):
    await _deployed(client, packages)
    await _predict_in_batches(client, samples.training_data(n_samples=5000, seed=101))
    report = await call(client, "drift_report")
    assert report["reference_source"] == "feature_profile"
    assert report["n_reference"] == 20_000
    assert report["current_source"] == "recent_window"
    assert report["n_current"] == 5000
    assert [f["feature"] for f in report["features"]] == FEATURES
    assert report["drifted_features"] == []
    assert report["dataset_drift"] is False
    assert report["prediction_drift"]["drifted"] is False
    assert report["performance_drift"] is None and report["concept_drift"] is None
    assert report["alerts"] == []


async def test_twenty_thousand_identical_rows_given_as_current_raise_no_alert(client, packages):
    await _deployed(client, packages)
    current = samples.training_data(n_samples=20_000, seed=202).tolist()
    report = await call(client, "drift_report", current=current)
    assert report["current_source"] == "rows" and report["n_current"] == 20_000
    assert report["drifted_features"] == [] and report["alerts"] == []


async def test_a_one_sigma_shift_on_three_features_flags_exactly_those(client, packages):
    await _deployed(client, packages)
    X = samples.training_data(n_samples=2000, seed=303)
    shifted = [1, 4, 6]
    X[:, shifted] += 1.0
    await _predict_in_batches(client, X)
    report = await call(client, "drift_report")
    assert report["drifted_features"] == [FEATURES[i] for i in shifted]
    assert report["share_drifted"] == pytest.approx(3 / 8)
    assert report["dataset_drift"] is False
    by_name = {f["feature"]: f for f in report["features"]}
    for i, name in enumerate(FEATURES):
        assert by_name[name]["drifted"] is (i in shifted)
        assert by_name[name]["test"] == "psi+ks_profile"
    feature_alerts = [a for a in report["alerts"] if a["kind"] == "feature_drift"]
    assert len(feature_alerts) == 1
    for name in report["drifted_features"]:
        assert name in feature_alerts[0]["message"]


async def test_sample_against_sample_when_reference_rows_are_given(client, packages):
    await _deployed(client, packages)
    reference = samples.training_data(n_samples=2000, seed=404)
    current = samples.training_data(n_samples=2000, seed=405)
    current[:, [0, 7]] += 1.0
    report = await call(client, "drift_report", current=current.tolist(), reference=reference.tolist())
    assert report["reference_source"] == "rows" and report["n_reference"] == 2000
    assert report["drifted_features"] == [FEATURES[0], FEATURES[7]]
    assert {f["test"] for f in report["features"]} == {"ks_2samp+wasserstein"}


async def test_a_batch_of_obvious_outliers_raises_prediction_drift(client, packages):
    await _deployed(client, packages)
    normal = samples.training_data(n_samples=600, seed=505)
    odd = samples.outliers(400, seed=506)
    await _predict_in_batches(client, np.vstack([normal, odd]))
    report = await call(client, "drift_report")
    prediction = report["prediction_drift"]
    assert prediction["drifted"] is True
    assert prediction["anomaly_rate"] >= 0.4
    assert prediction["expected_rate"] == pytest.approx(0.05)
    kinds = {a["kind"]: a["severity"] for a in report["alerts"]}
    assert kinds["prediction_drift"] == "critical"


async def test_flipped_labels_raise_performance_and_concept_drift(client, packages):
    await _deployed(client, packages)
    X = np.vstack([samples.training_data(n_samples=900, seed=606), samples.outliers(100, seed=607)])
    answers = await _predict_in_batches(client, X, batch=250)
    for answer in answers:
        flipped = [-label for label in answer["labels"]]
        fed = await call(client, "record_feedback", request_id=answer["request_id"], labels=flipped)
        assert fed["n_labels"] == answer["n_rows"]
    assert fed["n_labelled_total"] == 1000
    report = await call(client, "drift_report")
    assert report["drifted_features"] == [] and report["dataset_drift"] is False
    performance = report["performance_drift"]
    assert performance["drifted"] is True and performance["n_labelled"] == 1000
    assert performance["observed"]["f1_score"] == 0.0
    assert report["concept_drift"]["drifted"] is True
    kinds = {a["kind"]: a["severity"] for a in report["alerts"]}
    assert kinds["performance_drift"] == "critical" and kinds["concept_drift"] == "critical"


async def test_true_labels_raise_no_performance_drift(client, packages):
    await _deployed(client, packages)
    X = np.vstack([samples.training_data(n_samples=900, seed=616), samples.outliers(100, seed=617)])
    truth = [1] * 900 + [-1] * 100
    answer = await call(client, "predict", rows=X.tolist())
    await call(client, "record_feedback", request_id=answer["request_id"], labels=truth)
    report = await call(client, "drift_report")
    assert report["performance_drift"]["drifted"] is False
    assert report["concept_drift"]["drifted"] is False
    assert not any(a["kind"] in ("performance_drift", "concept_drift") for a in report["alerts"])


async def test_feedback_errors(client, packages):
    await _deployed(client, packages)
    answer = await call(client, "predict", rows=samples.sample_rows(3))
    code, _ = await call_error(client, "record_feedback", request_id="no-such-request", labels=[1])
    assert code == "not_found"
    code, message = await call_error(client, "record_feedback", request_id=answer["request_id"], labels=[1, 1])
    assert code == "invalid_input" and "3" in message
    code, _ = await call_error(client, "record_feedback", request_id=answer["request_id"], labels=[1, 0, 1])
    assert code == "invalid_input"
    again = await call(client, "record_feedback", request_id=answer["request_id"], labels=[1, -1, 1])
    again = await call(client, "record_feedback", request_id=answer["request_id"], labels=[1, 1, 1])
    assert again["n_labelled_total"] == 3  # the same request recorded twice counts once


async def test_too_little_data_is_insufficient_data(client, packages):
    code, _ = await call_error(client, "drift_report")
    assert code == "no_deployed_model"
    await _deployed(client, packages)
    code, _ = await call_error(client, "drift_report")
    assert code == "insufficient_data"
    await call(client, "predict", rows=samples.sample_rows(10))
    code, message = await call_error(client, "drift_report")
    assert code == "insufficient_data" and "10" in message
    code, _ = await call_error(client, "drift_report", current=samples.sample_rows(5))
    assert code == "insufficient_data"


async def test_without_a_profile_the_baseline_window_is_the_reference(client, packages):
    await _deployed(client, packages, metadata_overrides={"feature_profile": None})
    await _predict_in_batches(client, samples.training_data(n_samples=1000, seed=707))
    shifted = samples.training_data(n_samples=1000, seed=708)
    shifted[:, 2] += 1.5
    await _predict_in_batches(client, shifted)
    report = await call(client, "drift_report", window=1000)
    assert report["reference_source"] == "baseline_window"
    assert report["n_reference"] == 1000 and report["n_current"] == 1000
    assert report["drifted_features"] == [FEATURES[2]]
    assert report["prediction_drift"]["score_test"] is not None


async def test_bad_drift_arguments_are_invalid_input(client, packages):
    await _deployed(client, packages)
    code, _ = await call_error(client, "drift_report", current=[[1.0, 2.0]])
    assert code == "invalid_input"
    code, _ = await call_error(client, "drift_report", window=0)
    assert code == "invalid_input"


async def test_the_dataset_threshold_is_configurable(make_settings, packages):
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    manager = ModelManager(make_settings(drift_share_threshold=0.25))
    manager.start()
    async with Client(build_server(manager)) as client:
        await _deployed(client, packages)
        X = samples.training_data(n_samples=2000, seed=303)
        X[:, [1, 4, 6]] += 1.0
        await _predict_in_batches(client, X)
        report = await call(client, "drift_report")
    assert report["share_drifted"] == pytest.approx(3 / 8)
    assert report["dataset_drift"] is True
    assert {a["kind"]: a["severity"] for a in report["alerts"]}["feature_drift"] == "critical"
