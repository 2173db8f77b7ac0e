"""Drift statistics on seeded data, with exact expectations (no mocks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.ensemble import IsolationForest

from model_mcp.core.drift import (
    PROFILE_TEST,
    SAMPLE_TEST,
    DriftThresholds,
    build_alerts,
    concept_drift,
    dataset_verdict,
    drift_against_profile,
    drift_against_sample,
    holm_adjust,
    performance_drift,
    prediction_drift,
    profile_covers,
    profile_from_sample,
)
from model_mcp.core.errors import InsufficientDataError, InvalidInputError

NAMES = [f"f{i}" for i in range(8)]
SHIFTED = [1, 4, 6]


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(50_000, 8))


@pytest.fixture(scope="module")
def profile(training: np.ndarray) -> dict:
    return profile_from_sample(training, NAMES)


def shifted_sample(rows: int, seed: int) -> np.ndarray:
    sample = np.random.default_rng(seed).normal(size=(rows, 8))
    sample[:, SHIFTED] += 1.0  # one reference standard deviation
    return sample


# --------------------------------------------------------------------------- feature drift


def test_identical_100k_rows_against_profile_raise_no_drift(profile: dict) -> None:
    current = np.random.default_rng(8).normal(size=(100_000, 8))
    features = drift_against_profile(current, NAMES, profile, reference_rows=50_000)
    verdict = dataset_verdict(features)
    assert [f.drifted for f in features] == [False] * 8
    assert [f.severity for f in features] == ["none"] * 8
    assert verdict == ([], 0.0, False)
    assert build_alerts(features, verdict) == []
    assert all(f.drift_score < 0.01 and f.statistic < 0.02 for f in features)


def test_identical_100k_rows_against_sample_raise_no_drift(training: np.ndarray) -> None:
    current = np.random.default_rng(9).normal(size=(100_000, 8))
    reference = np.random.default_rng(10).normal(size=(100_000, 8))
    features = drift_against_sample(current, reference, NAMES)
    verdict = dataset_verdict(features)
    assert verdict == ([], 0.0, False)
    assert build_alerts(features, verdict) == []
    assert {f.test for f in features} == {SAMPLE_TEST}


def test_one_sigma_shift_on_three_of_eight_flags_exactly_those_against_profile(
    profile: dict,
) -> None:
    features = drift_against_profile(
        shifted_sample(2_000, 11), NAMES, profile, reference_rows=50_000
    )
    verdict = dataset_verdict(features)
    assert verdict.drifted_features == ["f1", "f4", "f6"]
    assert verdict.share_drifted == 0.375
    assert verdict.dataset_drift is False
    assert [f.severity for f in features if f.drifted] == ["significant"] * 3
    assert {f.test for f in features} == {PROFILE_TEST}
    assert "mean moved +0.9" in features[1].detail or "mean moved +1.0" in features[1].detail


def test_one_sigma_shift_on_three_of_eight_flags_exactly_those_against_sample(
    training: np.ndarray,
) -> None:
    reference = training[:1_000]  # the size of the default baseline window
    features = drift_against_sample(shifted_sample(2_000, 12), reference, NAMES)
    assert dataset_verdict(features).drifted_features == ["f1", "f4", "f6"]
    assert [f.severity for f in features if f.drifted] == ["significant"] * 3
    assert all(f.n_reference == 1_000 and f.n_current == 2_000 for f in features)


def test_large_samples_need_an_effect_size_not_only_a_p_value() -> None:
    rng = np.random.default_rng(13)
    reference = rng.normal(size=(100_000, 1))
    current = rng.normal(size=(100_000, 1)) + 0.03  # detectable at this size, but negligible
    (feature,) = drift_against_sample(current, reference, ["x"])
    assert feature.p_value_adjusted < 0.05
    assert feature.drifted is False
    assert feature.severity == "none"
    assert "below the effect-size floor" in feature.detail


@pytest.mark.parametrize(
    ("n1", "n2", "integers", "p_tolerance"),
    [
        (1_500, 2_300, False, 1e-12),
        (900, 1_300, True, 1e-12),
        (20_000, 15_000, False, 2e-3),
        (40, 12_000, False, 1e-12),
    ],
)
def test_two_sample_statistics_match_scipy(
    n1: int, n2: int, integers: bool, p_tolerance: float
) -> None:
    rng = np.random.default_rng(n1)
    if integers:  # ties within and across samples
        reference = rng.integers(0, 6, size=(n1, 3)).astype(float)
        current = rng.integers(0, 7, size=(n2, 3)).astype(float)
    else:
        reference = rng.normal(size=(n1, 3))
        current = rng.normal(size=(n2, 3)) * np.array([1.0, 1.3, 1.0]) + np.array([0.0, 0.0, 0.1])
    features = drift_against_sample(current, reference, ["a", "b", "c"])
    for j, feature in enumerate(features):
        expected = stats.ks_2samp(reference[:, j], current[:, j])
        assert feature.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert feature.p_value == pytest.approx(expected.pvalue, abs=p_tolerance)
        wasserstein = stats.wasserstein_distance(reference[:, j], current[:, j])
        assert feature.drift_score == pytest.approx(
            wasserstein / reference[:, j].std(ddof=1), rel=1e-9
        )


def uniform_profile() -> dict:
    return {
        "x": {
            "mean": 5.0,
            "std": 2.9,
            "min": 0.0,
            "max": 10.0,
            "quantiles": [float(v) for v in range(11)],
        }
    }


def rows_with_bin_counts(counts: list[int]) -> np.ndarray:
    """Rows at the midpoints of the uniform profile's ten bins, in the given numbers."""
    return np.repeat(np.arange(10) + 0.5, counts).reshape(-1, 1)


@pytest.mark.parametrize(
    ("counts", "expected_psi", "severity"),
    [
        ([150, 150, 100, 100, 100, 100, 100, 100, 50, 50], 0.1 * math.log(3.0), "moderate"),
        (
            [200, 200, 100, 100, 100, 100, 100, 50, 25, 25],
            0.2 * math.log(2.0) - 0.05 * math.log(0.5) - 0.15 * math.log(0.25),
            "significant",
        ),
        ([100] * 10, 0.0, "none"),
    ],
)
def test_psi_bands(counts: list[int], expected_psi: float, severity: str) -> None:
    (feature,) = drift_against_profile(rows_with_bin_counts(counts), ["x"], uniform_profile())
    assert feature.drift_score == pytest.approx(expected_psi, abs=1e-12)
    assert feature.severity == severity
    assert feature.drifted is (severity != "none")


def test_profile_counts_values_outside_the_training_range() -> None:
    current = np.concatenate([rows_with_bin_counts([100] * 10), np.full((250, 1), 50.0)])
    (feature,) = drift_against_profile(current, ["x"], uniform_profile())
    assert feature.statistic == pytest.approx(250 / 1_250)
    assert "20.0% of values outside the training range" in feature.detail
    assert feature.drifted is True


def test_discrete_features_against_a_profile_judge_only_what_quantiles_tell() -> None:
    """Tied quantiles know the CDF at an atom only to 1/K: identical discrete data is no drift."""
    rng = np.random.default_rng(30)
    names = ["flag", "count", "constant"]

    def sample(rows: int, p_flag: float, rate: float, constant: float) -> np.ndarray:
        return np.column_stack(
            [
                (rng.random(rows) < p_flag).astype(float),
                rng.poisson(rate, rows).astype(float),
                np.full(rows, constant),
            ]
        )

    profile = profile_from_sample(sample(50_000, 0.45, 3.0, 2.0), names)
    assert profile["flag"]["quantiles"] == [0.0] * 6 + [1.0] * 5
    same = drift_against_profile(
        sample(5_000, 0.45, 3.0, 2.0), names, profile, reference_rows=50_000
    )
    assert [f.drifted for f in same] == [False, False, False]
    moved = drift_against_profile(
        sample(5_000, 0.9, 4.0, 1.0), names, profile, reference_rows=50_000
    )
    assert [f.drifted for f in moved] == [True, True, True]
    assert moved[2].statistic == 1.0  # every value below the constant training value


def test_thresholds_are_configurable(profile: dict) -> None:
    lenient = DriftThresholds(
        psi_moderate=2.0, psi_significant=3.0, ks_moderate=0.5, ks_significant=0.6
    )
    features = drift_against_profile(shifted_sample(2_000, 11), NAMES, profile, lenient)
    assert dataset_verdict(features).drifted_features == []
    strict_share = dataset_verdict(
        drift_against_profile(shifted_sample(2_000, 11), NAMES, profile), share_threshold=0.375
    )
    assert strict_share.dataset_drift is True


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="psi_moderate <= psi_significant"):
        DriftThresholds(psi_moderate=0.3, psi_significant=0.2)


def test_holm_adjustment() -> None:
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx(
        [0.03, 0.06, 0.06, 0.02]
    )


# ----------------------------------------------------------------- too little data, bad input


def test_too_few_current_rows_answer_insufficient_data(profile: dict) -> None:
    with pytest.raises(
        InsufficientDataError, match="current sample has 29 rows; drift needs at least 30"
    ):
        drift_against_profile(np.zeros((29, 8)), NAMES, profile)


def test_too_few_reference_rows_answer_insufficient_data() -> None:
    rng = np.random.default_rng(14)
    with pytest.raises(InsufficientDataError, match="reference sample has 10 rows"):
        drift_against_sample(rng.normal(size=(100, 2)), rng.normal(size=(10, 2)), ["a", "b"])


def test_small_sample_is_said_in_the_detail(profile: dict) -> None:
    features = drift_against_profile(np.random.default_rng(15).normal(size=(50, 8)), NAMES, profile)
    assert all("The current sample is small (50 rows)" in f.detail for f in features)
    assert not any(f.drifted for f in features)


def test_wrong_shape_and_non_finite_values_are_invalid_input(profile: dict) -> None:
    with pytest.raises(InvalidInputError, match=r"shape \(100, 3\)"):
        drift_against_profile(np.zeros((100, 3)), NAMES, profile)
    current = np.random.default_rng(16).normal(size=(100, 8))
    current[5, 2] = np.nan
    with pytest.raises(InvalidInputError, match="'f2' include NaN"):
        drift_against_sample(current, current.copy() + 1, NAMES)


def test_profile_without_a_feature_is_not_usable(profile: dict) -> None:
    partial = {name: entry for name, entry in profile.items() if name != "f3"}
    assert profile_covers(profile, NAMES) is True
    assert profile_covers(partial, NAMES) is False
    with pytest.raises(InvalidInputError, match="'f3'"):
        drift_against_profile(np.zeros((100, 8)), NAMES, partial)


def test_feature_drift_serializes_with_the_contract_fields(profile: dict) -> None:
    (feature, *_) = drift_against_profile(shifted_sample(200, 17), NAMES, profile)
    answer = json.loads(json.dumps(feature.to_dict()))
    assert {"feature", "test", "statistic", "p_value", "drift_score", "drifted"} <= answer.keys()


# --------------------------------------------------------------------------- prediction drift


@pytest.fixture(scope="module")
def detector() -> IsolationForest:
    train = np.random.default_rng(20).normal(size=(4_000, 8))
    return IsolationForest(n_estimators=50, contamination=0.05, random_state=0).fit(train)


@pytest.fixture(scope="module")
def baseline(detector: IsolationForest) -> tuple[np.ndarray, np.ndarray]:
    rows = np.random.default_rng(21).normal(size=(1_000, 8))
    return detector.predict(rows) == -1, detector.decision_function(rows)


def test_same_distribution_raises_no_prediction_drift(
    detector: IsolationForest, baseline: tuple
) -> None:
    rows = np.random.default_rng(22).normal(size=(1_000, 8))
    result = prediction_drift(
        detector.predict(rows) == -1, 0.05, detector.decision_function(rows), baseline[1]
    )
    assert result["drifted"] is False
    assert result["severity"] == "none"
    assert result["rate_test"] == "binomial_exact"
    assert result["score_test"]["drifted"] is False


def test_batch_of_obvious_outliers_raises_prediction_drift(
    detector: IsolationForest, baseline: tuple
) -> None:
    rng = np.random.default_rng(23)
    rows = np.concatenate([rng.normal(size=(600, 8)), rng.uniform(6.0, 8.0, size=(400, 8))])
    flags, scores = detector.predict(rows) == -1, detector.decision_function(rows)
    result = prediction_drift(flags, 0.05, scores, baseline[1])
    assert result["anomaly_rate"] >= 0.4
    assert result["drifted"] is True
    assert result["severity"] == "significant"
    assert result["expected_source"] == "training_contamination"
    assert result["score_test"]["drifted"] is True
    from_baseline = prediction_drift(
        flags, None, scores, baseline[1], reference_is_anomaly=baseline[0]
    )
    assert (from_baseline["expected_source"], from_baseline["rate_test"]) == (
        "baseline",
        "two_proportion_z",
    )
    assert from_baseline["drifted"] is True
    alerts = build_alerts([], dataset_verdict([]), result)
    assert [(a.kind, a.severity) for a in alerts] == [("prediction_drift", "critical")]
    assert "Inspect the flagged rows" in alerts[0].message
    json.dumps(result)


def test_anomaly_rate_test_values() -> None:
    flags = np.zeros(1_000, dtype=bool)
    flags[:400] = True
    result = prediction_drift(flags, 0.05)
    assert result["z"] == pytest.approx(0.35 / math.sqrt(0.05 * 0.95 / 1_000))
    assert result["effect_size"] == pytest.approx(
        2 * math.asin(math.sqrt(0.4)) - 2 * math.asin(math.sqrt(0.05))
    )
    assert result["p_value"] == stats.binomtest(400, 1_000, 0.05).pvalue
    assert result["score_test"] is None
    flags[:400] = False
    flags[:52] = True  # 5.2% against 5%: no drift
    assert prediction_drift(flags, 0.05)["drifted"] is False


def test_prediction_drift_needs_enough_rows() -> None:
    with pytest.raises(InsufficientDataError, match="12 rows"):
        prediction_drift(np.zeros(12, dtype=bool), 0.05)


# ------------------------------------------------------------- performance and concept drift


METRICS = {"accuracy": 0.97, "precision": 0.91, "recall": 0.88, "f1_score": 0.89}


def test_flipped_labels_raise_performance_and_concept_drift(detector: IsolationForest) -> None:
    rng = np.random.default_rng(24)
    rows = np.concatenate([rng.normal(size=(180, 8)), rng.uniform(6.0, 8.0, size=(20, 8))])
    predicted = detector.predict(rows)
    performance = performance_drift(-predicted, predicted, METRICS)
    assert performance["observed"]["f1_score"] == 0.0
    assert performance["drifted"] is True
    assert performance["severity"] == "significant"
    assert performance["n_labelled"] == 200
    assert performance["drops"]["f1_score"] == 0.89
    concept = concept_drift(performance, dataset_drift=False)
    assert concept["drifted"] is True
    assert concept_drift(performance, dataset_drift=True)["drifted"] is False
    alerts = build_alerts([], dataset_verdict([]), None, performance, concept)
    assert [(a.kind, a.severity) for a in alerts] == [
        ("performance_drift", "critical"),
        ("concept_drift", "critical"),
    ]
    assert "Roll back" in alerts[0].message and "import" in alerts[0].message
    assert "import the retrained model" in alerts[1].message
    json.dumps(performance)


def test_correct_labels_raise_no_performance_drift(detector: IsolationForest) -> None:
    rng = np.random.default_rng(25)
    rows = np.concatenate([rng.normal(size=(180, 8)), rng.uniform(6.0, 8.0, size=(20, 8))])
    predicted = detector.predict(rows)
    performance = performance_drift(predicted, predicted, METRICS)
    assert performance["observed"]["f1_score"] == 1.0
    assert performance["drifted"] is False
    assert concept_drift(performance, dataset_drift=False)["drifted"] is False


def test_performance_without_feedback_or_with_too_little() -> None:
    assert performance_drift(None, None, METRICS) is None
    assert concept_drift(None, dataset_drift=False) is None
    few = performance_drift(np.array([-1, 1] * 5), np.array([1, 1] * 5), METRICS)
    assert few["insufficient_data"] is True
    assert few["drifted"] is False
    with pytest.raises(InvalidInputError, match="3 feedback labels for 2 predictions"):
        performance_drift(np.array([1, 1, -1]), np.array([1, 1]), METRICS)


# --------------------------------------------------------------------------- alerts


def test_feature_alerts_name_the_features_and_scale_with_the_share(profile: dict) -> None:
    features = drift_against_profile(shifted_sample(2_000, 11), NAMES, profile)
    (alert,) = build_alerts(features, dataset_verdict(features))
    assert alert.kind == "feature_drift"
    assert alert.severity == "warning"
    assert "3 of 8 features (38%) drifted (significant): f1, f4, f6" in alert.message
    assert "Inspect" in alert.message
    thresholds = DriftThresholds(share_threshold=0.375)
    (critical,) = build_alerts(features, dataset_verdict(features, 0.375), thresholds=thresholds)
    assert critical.severity == "critical"
    assert critical.message.startswith("Dataset drift: 3 of 8 features (38%) drifted")
    assert "import a retrained model" in critical.message
