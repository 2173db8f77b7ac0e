"""The serving runtime on real scikit-learn models: parsing, scoring, switching, figures, windows."""

from __future__ import annotations

import math
import re
import threading
import time

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM
from sklearn.tree import DecisionTreeClassifier

from model_mcp.core.errors import (
    InvalidInputError,
    NoDeployedModelError,
    NotFoundError,
    VersionMismatchError,
)
from model_mcp.core.footprint import estimate_memory_bytes
from model_mcp.core.runtime import ResidentModel, Runtime, parse_rows

NAMES = ["bytes_in", "bytes_out", "packets", "duration", "port", "flags", "ttl", "window"]
NAMES4 = NAMES[:4]


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(500, 8))


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    # Wider than the training data, so that every detector labels some rows -1 and some 1.
    return np.random.default_rng(1).normal(scale=2.5, size=(300, 8))


@pytest.fixture(scope="module")
def models(train: np.ndarray) -> dict[str, object]:
    return {
        "iforest": IsolationForest(n_estimators=50, random_state=0).fit(train),
        "pipeline": make_pipeline(StandardScaler(), IsolationForest(n_estimators=30, random_state=1)).fit(train),
        "lof": LocalOutlierFactor(novelty=True, n_neighbors=20).fit(train),
        "ocsvm": OneClassSVM(nu=0.05, gamma="scale").fit(train),
    }


@pytest.fixture(scope="module")
def small_forests(train: np.ndarray) -> tuple[IsolationForest, IsolationForest]:
    """Two cheap models with different scores, for the switching tests."""
    return (
        IsolationForest(n_estimators=5, random_state=10).fit(train[:, :4]),
        IsolationForest(n_estimators=5, random_state=20).fit(train[:, :4]),
    )


def resident(version: str, estimator: object, names: list[str] = NAMES) -> ResidentModel:
    return ResidentModel.create(version=version, estimator=estimator, feature_names=names, model_file_bytes=1234)


def serving(estimator: object, version: str = "v1", names: list[str] = NAMES, **kwargs: int) -> Runtime:
    runtime = Runtime(**kwargs)
    runtime.install(resident(version, estimator, names))
    return runtime


# --- parse_rows ---------------------------------------------------------------------------------


def test_parse_rows_reads_list_rows_in_order() -> None:
    rows = [[1, 2.5, 3, 4], [-1.0, 0, 1e30, 7]]
    X = parse_rows(rows, NAMES4, 10)
    assert X.dtype == np.float64
    assert X.tolist() == [[1.0, 2.5, 3.0, 4.0], [-1.0, 0.0, 1e30, 7.0]]


def test_parse_rows_reads_dict_rows_by_name_and_mixed_rows() -> None:
    rows = [
        {"duration": 4, "bytes_in": 1, "packets": 3, "bytes_out": 2},
        [5, 6, 7, 8],
        {"bytes_out": 0.5, "bytes_in": np.float32(0.25), "packets": np.int64(3), "duration": -1},
    ]
    assert parse_rows(rows, NAMES4, 10).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [0.25, 0.5, 3, -1]]


def test_parse_rows_accepts_tuples_and_numpy_arrays() -> None:
    assert parse_rows([(1, 2, 3, 4)], NAMES4, 10).tolist() == [[1, 2, 3, 4]]
    array = np.arange(8, dtype=np.int32).reshape(2, 4)
    assert parse_rows(array, NAMES4, 10).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


def _refusal(rows: object, names: list[str] = NAMES4, max_rows: int = 10) -> str:
    with pytest.raises(InvalidInputError) as caught:
        parse_rows(rows, names, max_rows)
    assert caught.value.code == "invalid_input"
    return str(caught.value)


def test_parse_rows_names_a_row_of_the_wrong_length_and_the_expected_features() -> None:
    rows = [[0.0] * 8 for _ in range(5)]
    rows[3] = [0.0] * 7
    assert _refusal(rows, NAMES) == (
        "row 3 has 7 values; the model expects 8: bytes_in, bytes_out, packets, duration, port, flags, ttl, window."
    )
    assert _refusal([[1, 2, 3, 4], []]) == (
        "row 1 has 0 values; the model expects 4: bytes_in, bytes_out, packets, duration."
    )


def test_parse_rows_names_missing_and_unknown_feature_names() -> None:
    good = {"bytes_in": 1, "bytes_out": 2, "packets": 3, "duration": 4}
    missing = {"bytes_in": 1, "packets": 3}
    unknown = {**good, "colour": 5}
    swapped = {"bytes_in": 1, "bytes_out": 2, "packets": 3, "durat1on": 4}
    expects = "the model expects: bytes_in, bytes_out, packets, duration."
    assert _refusal([good, missing]) == f"row 1 lacks features bytes_out, duration; {expects}"
    assert _refusal([good, good, unknown]) == f"row 2 has unknown feature colour; {expects}"
    assert _refusal([swapped]) == f"row 0 lacks feature duration and has unknown feature durat1on; {expects}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "True is not a number"),
        (False, "False is not a number"),
        ("1.5", "'1.5' is not a number"),
        (None, "None is not a number"),
        ([1], "[1] is not a number"),
        (float("nan"), "nan is not a finite number"),
        (float("inf"), "inf is not a finite number"),
        (float("-inf"), "-inf is not a finite number"),
        (10**400, "1000000000000000000000000000000000000... is too large for a 64-bit float"),
    ],
)
def test_parse_rows_names_the_row_and_feature_of_a_value_that_is_not_a_finite_number(
    value: object, reason: str
) -> None:
    rows = [[1.0, 2.0, 3.0, 4.0] for _ in range(6)]
    rows[4][2] = value
    assert _refusal(rows) == f"row 4, feature 'packets' (position 2): {reason}."
    dict_rows = [dict(zip(NAMES4, row, strict=True)) for row in rows]
    assert _refusal(dict_rows) == f"row 4, feature 'packets' (position 2): {reason}."


@pytest.mark.parametrize("n_rows", [1, 2, 4, 5, 40])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "True is not a number"),
        ("1.5", "'1.5' is not a number"),
        (None, "None is not a number"),
        (float("nan"), "nan is not a finite number"),
        (float("-inf"), "-inf is not a finite number"),
        (10**39, "1" + "0" * 39 + " is beyond the range of a 32-bit float"),
        (-3.5e38, "-3.5e+38 is beyond the range of a 32-bit float"),
    ],
)
def test_few_rows_and_many_rows_refuse_the_same_values_alike(n_rows: int, value: object, reason: str) -> None:
    """A few rows are checked value by value in Python, more in bulk: the same refusals, both."""
    rows = [[1.0, 2, 3.0, 4] for _ in range(n_rows)]
    rows[-1][1] = value
    message = _refusal(rows, max_rows=100)
    assert message.startswith(f"row {n_rows - 1}, feature 'bytes_out' (position 1): {reason}")


@pytest.mark.parametrize("n_rows", [1, 3, 4, 5, 64])
def test_few_rows_and_many_rows_read_the_same_numbers(n_rows: int) -> None:
    """Floats, ints (also beyond 2**53), numpy scalars, tuples, float32's limits: the value of
    float(x) for each, whichever path reads them."""
    f32_max = float(np.finfo(np.float32).max)
    values = [0.1, -0.0, 7, 2**60 + 1, 2**100, -(2**120), np.float32(1.5), np.int64(-3), np.float64(2.5e-300), f32_max, -f32_max, 5e-324]
    rng = np.random.default_rng(n_rows)
    rows: list[object] = [[values[i] for i in rng.integers(0, len(values), size=4)] for _ in range(n_rows)]
    rows[0] = tuple(rows[0])  # type: ignore[arg-type]
    X = parse_rows(rows, NAMES4, 100)
    assert X.dtype == np.float64 and X.shape == (n_rows, 4)
    expected = [[float(v) for v in row] for row in rows]  # type: ignore[union-attr]
    assert X.tolist() == expected
    assert np.signbit(X).tolist() == np.signbit(np.array(expected)).tolist()


def test_parse_rows_refuses_nan_in_a_numpy_array_naming_the_cell() -> None:
    array = np.zeros((3, 4))
    array[2, 1] = np.nan
    assert _refusal(array) == "row 2, feature 'bytes_out' (position 1): nan is not a finite number."
    assert _refusal(np.array([[True, False, True, True]])) == "rows must hold numbers, not values of dtype bool."


def test_parse_rows_refuses_bad_containers_and_counts() -> None:
    assert _refusal("1,2,3,4") == "rows must be a list of rows, not a string."
    assert _refusal({"bytes_in": 1}) == "rows must be a list of rows, not an object."
    assert _refusal([]) == "rows is empty: send at least one row."
    assert _refusal([[1, 2, 3, 4]] * 11, max_rows=10) == (
        "rows has 11 rows; at most 10 are accepted in one predict call."
    )
    assert _refusal([[1, 2, 3, 4], "x"]) == (
        "row 1 is a string; each row must be a list of 4 numbers or an object keyed by feature name."
    )
    assert _refusal([[1, 2, 3, 4], None]).startswith("row 1 is null;")


def test_parse_rows_reports_the_first_bad_row_when_several_are_bad() -> None:
    rows: list[object] = [[1, 2, 3, 4] for _ in range(8)]
    rows[5] = [1, 2, "x", 4]
    rows[2] = [1, 2, 3]
    assert _refusal(rows).startswith("row 2 has 3 values")
    rows = [[1, 2, 3, 4], [1, 2, 3, float("nan")], {"bytes_in": 1}]
    assert _refusal(rows).startswith("row 1, feature 'duration'")


# --- score_and_label ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "score_once"), [("iforest", True), ("pipeline", True), ("lof", True), ("ocsvm", False)]
)
def test_score_and_label_equals_the_estimators_own_predict_and_decision_function(
    models: dict[str, object], probe: np.ndarray, kind: str, score_once: bool
) -> None:
    estimator = models[kind]
    model = resident("v1", estimator)
    assert model.score_once is score_once
    assert model.anomaly_flags is True
    labels, scores = model.score_and_label(probe)
    expected_labels = estimator.predict(probe)
    assert set(expected_labels.tolist()) == {-1, 1}  # the probe exercises both sides of the threshold
    assert labels.dtype == np.int64
    assert np.array_equal(labels, expected_labels)
    assert scores is not None and scores.dtype == np.float64
    assert np.array_equal(scores, estimator.decision_function(probe))


def test_a_subclass_that_overrides_predict_is_not_scored_once(train: np.ndarray, probe: np.ndarray) -> None:
    class Inverted(IsolationForest):
        def predict(self, X):  # type: ignore[no-untyped-def]
            return -super().predict(X)

    estimator = Inverted(n_estimators=10, random_state=0).fit(train)
    model = resident("v1", estimator)
    assert model.score_once is False
    labels, _ = model.score_and_label(probe)
    assert np.array_equal(labels, estimator.predict(probe))


def test_a_pipeline_with_passthrough_steps_is_scored_once_exactly(train: np.ndarray, probe: np.ndarray) -> None:
    estimator = Pipeline(
        [
            ("skip", "passthrough"),
            ("scale", StandardScaler()),
            ("none", None),
            ("iforest", IsolationForest(n_estimators=10, random_state=3)),
        ]
    ).fit(train)
    model = resident("v1", estimator)
    assert model.score_once is True
    labels, scores = model.score_and_label(probe)
    assert np.array_equal(labels, estimator.predict(probe))
    assert np.array_equal(scores, estimator.decision_function(probe))


def test_a_classifier_without_scores_answers_labels_only(train: np.ndarray) -> None:
    y = (train[:, 0] > 0).astype(int)
    runtime = serving(DecisionTreeClassifier(random_state=0, max_depth=3).fit(train, y))
    answer = runtime.predict(train[:5].tolist())
    assert answer["labels"] == y[:5].tolist()
    assert answer["scores"] is None
    assert answer["is_anomaly"] is None
    assert answer["anomaly_count"] is None
    assert runtime.performance()["anomaly_rate"] is None


# --- predict --------------------------------------------------------------------------------------


def test_predict_answers_the_columnar_shape_with_exact_values(models: dict[str, object], probe: np.ndarray) -> None:
    estimator = models["iforest"]
    runtime = serving(estimator, version="20261120_143022")
    rows = probe[:20].tolist()
    answer = runtime.predict(rows, exact_scores=True)
    assert set(answer) == {
        "model_name", "model_version", "request_id", "n_rows", "labels", "scores", "is_anomaly", "anomaly_count", "latency_ms",
        "score_digits", "summary",
    }
    assert answer["score_digits"] is None and answer["summary"] is None
    assert answer["model_version"] == "20261120_143022"
    assert re.fullmatch(r"[0-9a-f]{32}", answer["request_id"])
    assert answer["n_rows"] == 20
    assert answer["labels"] == estimator.predict(probe[:20]).tolist()
    assert all(type(label) is int for label in answer["labels"])
    assert answer["scores"] == estimator.decision_function(probe[:20]).tolist()
    assert all(type(score) is float for score in answer["scores"])
    assert answer["is_anomaly"] == [label == -1 for label in answer["labels"]]
    assert all(type(flag) is bool for flag in answer["is_anomaly"])
    assert answer["anomaly_count"] == answer["labels"].count(-1) > 0
    assert type(answer["latency_ms"]) is float and answer["latency_ms"] > 0
    assert runtime.predict(rows)["request_id"] != answer["request_id"]


def test_predict_accepts_dict_rows_and_gives_the_same_answer(models: dict[str, object], probe: np.ndarray) -> None:
    runtime = serving(models["lof"])
    as_lists = runtime.predict(probe[:3].tolist())
    as_dicts = runtime.predict([dict(zip(NAMES, row, strict=True)) for row in probe[:3].tolist()])
    assert as_dicts["scores"] == as_lists["scores"]
    assert as_dicts["labels"] == as_lists["labels"]


def test_predict_refuses_another_version_and_does_not_count_it_as_an_error(models: dict[str, object]) -> None:
    runtime = serving(models["ocsvm"], version="v2")
    with pytest.raises(VersionMismatchError, match=r"^Version v1 is not deployed; the deployed version is v2\.$"):
        runtime.predict([[0.0] * 8], version="v1")
    assert runtime.predict([[0.0] * 8], version="v2")["model_version"] == "v2"
    assert runtime.performance()["n_errors"] == 0


def test_predict_with_nothing_deployed(models: dict[str, object]) -> None:
    runtime = Runtime()
    with pytest.raises(NoDeployedModelError, match="No model is deployed"):
        runtime.predict([[0.0] * 8])
    with pytest.raises(NoDeployedModelError):
        runtime.predict([[0.0] * 8], version="v1")
    with pytest.raises(NoDeployedModelError):
        runtime.performance()
    runtime.install(resident("v1", models["ocsvm"]))
    runtime.clear()
    assert runtime.current is None
    with pytest.raises(NoDeployedModelError, match="No model is deployed"):
        runtime.predict([[0.0] * 8])


def test_a_failed_start_load_is_remembered_and_explained() -> None:
    runtime = Runtime()
    runtime.begin_loading("v7")
    assert runtime.loading == "v7"
    runtime.load_failed("v7", "model.joblib names an untrusted type os.system")
    assert runtime.loading is None
    assert runtime.load_error == {"version": "v7", "message": "model.joblib names an untrusted type os.system"}
    with pytest.raises(NoDeployedModelError, match=r"version v7 failed to load \(model\.joblib names an untrusted"):
        runtime.predict([[0.0] * 8], wait_s=0.01)


def test_predict_waits_for_the_start_load(small_forests: tuple[IsolationForest, IsolationForest]) -> None:
    runtime = Runtime()
    runtime.begin_loading("v1")
    answers: list[dict] = []
    waiter = threading.Thread(target=lambda: answers.append(runtime.predict([[0.0] * 4], wait_s=10, exact_scores=True)))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive() and answers == []
    runtime.install(resident("v1", small_forests[0], NAMES4))
    waiter.join(5)
    assert not waiter.is_alive()
    assert answers[0]["model_version"] == "v1"
    assert answers[0]["scores"] == small_forests[0].decision_function(np.zeros((1, 4))).tolist()
    assert runtime.load_error is None


def test_predict_gives_up_waiting_after_wait_s() -> None:
    runtime = Runtime()
    runtime.begin_loading("v1")
    started = time.monotonic()
    with pytest.raises(NoDeployedModelError, match=r"version v1\) is still loading"):
        runtime.predict([[0.0] * 4], wait_s=0.1)
    assert 0.09 <= time.monotonic() - started < 2


def test_predicts_during_repeated_switches_never_mix_versions(
    small_forests: tuple[IsolationForest, IsolationForest],
) -> None:
    """8 threads x 100 predicts while another thread installs two versions alternately 50 times."""
    inputs = np.random.default_rng(5).normal(scale=2, size=(100, 4))
    expected = {
        "a": small_forests[0].decision_function(inputs),
        "b": small_forests[1].decision_function(inputs),
    }
    assert not np.array_equal(expected["a"], expected["b"])
    models = {"a": resident("a", small_forests[0], NAMES4), "b": resident("b", small_forests[1], NAMES4)}
    runtime = Runtime()
    runtime.install(models["a"])
    errors: list[BaseException] = []
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()
    go = threading.Barrier(9)

    def client(seed: int) -> None:
        go.wait()
        for k in range(100):
            i = (seed * 13 + k) % 100
            try:
                answer = runtime.predict([inputs[i].tolist()], exact_scores=True)
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)
                continue
            with lock:
                answers.append((i, answer))

    def switcher() -> None:
        go.wait()
        for k in range(50):
            runtime.install(models["b" if k % 2 == 0 else "a"])
            time.sleep(0.001)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(8)] + [threading.Thread(target=switcher)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(answers) == 800
    versions = {answer["model_version"] for _, answer in answers}
    assert versions == {"a", "b"}  # both served, so the switches happened during the load
    for i, answer in answers:
        assert answer["scores"] == [expected[answer["model_version"]][i]]
        assert answer["labels"] == [-1 if expected[answer["model_version"]][i] < 0 else 1]


# --- figures ------------------------------------------------------------------------------------


def test_performance_counts_requests_rows_errors_and_latency_exactly(
    models: dict[str, object], probe: np.ndarray
) -> None:
    runtime = serving(models["pipeline"], version="v3")
    answers = [runtime.predict(probe[i : i + 10].tolist()) for i in range(0, 60, 10)]
    with pytest.raises(InvalidInputError):
        runtime.predict([[1.0] * 7])
    with pytest.raises(InvalidInputError):
        runtime.predict([])
    figures = runtime.performance()
    latencies = [answer["latency_ms"] for answer in answers]
    assert figures["version"] == "v3"
    assert figures["serving"] is True
    assert figures["n_requests"] == 6
    assert figures["n_rows"] == 60
    assert figures["n_errors"] == 2
    assert figures["error_rate"] == 2 / 8
    p50, p95, p99 = (figures["latency_ms"][k] for k in ("p50", "p95", "p99"))
    assert [p50, p95, p99] == np.percentile(latencies, [50, 95, 99]).tolist()
    assert min(latencies) <= p50 <= p95 <= p99 <= max(latencies)
    anomalies = sum(answer["anomaly_count"] for answer in answers)
    assert figures["n_anomalies"] == anomalies
    assert figures["anomaly_rate"] == anomalies / 60
    assert figures["throughput_rows_per_s"] == pytest.approx(60 / (sum(latencies) / 1000))
    assert 0 < figures["rows_per_wall_s"] <= figures["throughput_rows_per_s"]
    assert figures["model_file_bytes"] == 1234
    assert figures["memory_bytes"] == estimate_memory_bytes(models["pipeline"])
    assert figures["deployed_at"].endswith("Z")


def test_latency_percentiles_cover_only_the_last_latency_window_requests(
    small_forests: tuple[IsolationForest, IsolationForest],
) -> None:
    runtime = serving(small_forests[0], names=NAMES4, latency_window=4)
    latencies = [runtime.predict([[0.0] * 4])["latency_ms"] for _ in range(10)]
    figures = runtime.performance()
    assert figures["n_requests"] == 10
    assert figures["latency_window"] == 4
    assert figures["latency_ms"]["p50"] == float(np.percentile(latencies[-4:], 50))


def test_figures_are_per_version_and_a_redeploy_starts_fresh(
    small_forests: tuple[IsolationForest, IsolationForest],
) -> None:
    runtime = serving(small_forests[0], version="a", names=NAMES4)
    assert runtime.performance()["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    for _ in range(3):
        runtime.predict([[0.0] * 4])
    previous = runtime.install(resident("b", small_forests[1], NAMES4))
    assert previous is not None and previous.version == "a"
    runtime.predict([[0.0] * 4, [1.0] * 4])
    assert runtime.performance()["n_requests"] == 1
    assert runtime.performance("b")["n_rows"] == 2
    past = runtime.performance("a")
    assert (past["n_requests"], past["serving"]) == (3, False)
    runtime.install(resident("a", small_forests[0], NAMES4))
    assert runtime.performance("a")["n_requests"] == 0
    with pytest.raises(NotFoundError, match="No serving figures for version zzz"):
        runtime.performance("zzz")


# --- windows and the request map ----------------------------------------------------------------


def test_recent_window_is_bounded_and_holds_the_latest_rows_oldest_first(
    small_forests: tuple[IsolationForest, IsolationForest],
) -> None:
    estimator = small_forests[0]
    runtime = serving(estimator, names=NAMES4, window_rows=50, baseline_rows=30)
    sent = np.random.default_rng(7).normal(size=(91, 4))
    for start in range(0, 91, 13):
        runtime.predict(sent[start : start + 13].tolist())
    X, scores, labels = runtime.recent()
    assert X.shape == (50, 4)
    assert np.array_equal(X, sent[-50:])
    assert np.array_equal(scores, estimator.decision_function(sent[-50:]))
    assert np.array_equal(labels, estimator.predict(sent[-50:]))
    big = np.random.default_rng(8).normal(size=(120, 4))
    runtime.predict(big.tolist())
    X, scores, _ = runtime.recent()
    assert np.array_equal(X, big[-50:])
    assert np.array_equal(scores, estimator.decision_function(big[-50:]))


def test_baseline_keeps_the_first_rows_after_deploy(small_forests: tuple[IsolationForest, IsolationForest]) -> None:
    estimator = small_forests[0]
    runtime = serving(estimator, names=NAMES4, window_rows=50, baseline_rows=30)
    sent = np.random.default_rng(9).normal(size=(91, 4))
    for start in range(0, 91, 13):
        runtime.predict(sent[start : start + 13].tolist())
        if start == 13:  # 26 rows so far: the baseline is still filling
            assert np.array_equal(runtime.baseline()[0], sent[:26])
    X, scores, labels = runtime.baseline()
    assert np.array_equal(X, sent[:30])
    assert np.array_equal(scores, estimator.decision_function(sent[:30]))
    assert np.array_equal(labels, estimator.predict(sent[:30]))


def test_request_lookup_for_feedback_and_its_eviction(small_forests: tuple[IsolationForest, IsolationForest]) -> None:
    estimator = small_forests[0]
    runtime = serving(estimator, version="v1", names=NAMES4, window_rows=10, feedback_requests=5)
    rows = np.random.default_rng(3).normal(scale=3, size=(4, 4))
    first = runtime.predict(rows.tolist(), exact_scores=True)
    found = runtime.request(first["request_id"])
    assert found is not None
    assert found["version"] == "v1"
    assert found["n_rows"] == 4
    assert found["labels"].tolist() == first["labels"]
    assert found["scores"].tolist() == first["scores"]
    assert np.array_equal(found["rows"], rows)
    runtime.predict([[0.0] * 4] * 8)  # pushes the first request's rows out of the 10-row window
    found = runtime.request(first["request_id"])
    assert found is not None and "rows" not in found
    later = [runtime.predict([[0.0] * 4])["request_id"] for _ in range(4)]
    assert runtime.request(first["request_id"]) is None  # 6 requests made, 5 remembered
    assert all(runtime.request(request_id) is not None for request_id in later)
    assert runtime.request("0" * 32) is None


def test_request_map_is_also_bounded_in_rows(small_forests: tuple[IsolationForest, IsolationForest]) -> None:
    runtime = serving(small_forests[0], names=NAMES4, feedback_rows=10)
    first = runtime.predict([[0.0] * 4] * 6)["request_id"]
    second = runtime.predict([[0.0] * 4] * 4)["request_id"]
    assert runtime.request(first) is not None
    runtime.predict([[0.0] * 4])
    assert runtime.request(first) is None
    assert runtime.request(second) is not None


# --- footprint ------------------------------------------------------------------------------------


def test_estimate_memory_bytes_grows_with_the_forest_and_covers_its_tree_arrays(train: np.ndarray) -> None:
    small = IsolationForest(n_estimators=10, random_state=0).fit(train)
    big = IsolationForest(n_estimators=40, random_state=0).fit(train)
    tree_bytes = sum(
        state["nodes"].nbytes + state["values"].nbytes
        for state in (tree.tree_.__getstate__() for tree in big.estimators_)
    )
    assert estimate_memory_bytes(big) > estimate_memory_bytes(small)
    assert estimate_memory_bytes(big) >= tree_bytes
    # Within reason of what pickle writes for the same model (it holds the same arrays).
    import pickle

    assert 0.7 < estimate_memory_bytes(big) / len(pickle.dumps(big)) < 1.5


def test_estimate_memory_bytes_counts_a_shared_array_once_and_survives_cycles() -> None:
    array = np.zeros(100_000)  # 800,000 bytes

    class Holder:
        pass

    holder = Holder()
    holder.a = array
    holder.b = array
    holder.view = array[10:]
    holder.items = [array, {"again": array}]
    holder.me = holder
    estimate = estimate_memory_bytes(holder)
    assert 800_000 <= estimate < 805_000


def test_estimate_memory_bytes_reaches_lof_training_data_through_its_kdtree(models: dict[str, object]) -> None:
    lof = models["lof"]
    assert estimate_memory_bytes(lof) >= lof._fit_X.nbytes + lof._lrd.nbytes
    assert math.isfinite(estimate_memory_bytes(lof))
