"""The fast tree scorer against scikit-learn itself: exact scores and labels on random forests.

Property tests draw forests of random sizes, depths (through max_samples), feature counts and
feature subsampling, fitted on data with repeated values, and rows that land exactly on split
thresholds, just beside them in float32, at float32's limits and far beyond them. Every walk of
the scorer (the numpy walks of all trees over the heap and the dense layouts, packed and plain,
and the compiled per-tree walk for large batches) must give scikit-learn's decision_function to
within 1e-12 (they give it bit for bit) and its predict.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from model_mcp.core.errors import InvalidInputError
from model_mcp.core.runtime import ResidentModel, Runtime
from model_mcp.core.scoring import FAST_PATH, SKLEARN_PATH, build_fast_scorer
from model_mcp.core.scoring.forest import (
    DEFAULT_CROSSOVER_ROWS,
    HEAP_MAX_CELLS,
    PACKED_MIN_ROWS,
    _chunk_rows,
    _tree_sums,
    average_path_length,
)

F32 = np.finfo(np.float32)
# float32's edges and beyond: the largest and smallest normal and subnormal values, values that
# overflow to +-inf when cast, signed zeros.
EDGE_VALUES = [
    0.0, -0.0, float(F32.max), -float(F32.max), float(F32.tiny), -float(F32.tiny), float(F32.smallest_subnormal),
    -float(F32.smallest_subnormal), 3.5e38, -3.5e38, 1e300, -1e300, 1e-300, float(np.finfo(np.float64).max),
    -float(np.finfo(np.float64).max), 2.0**-149 / 2, 16777217.0, -16777217.0,
]

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _thresholds(model: IsolationForest) -> np.ndarray:
    values = [est.tree_.threshold[est.tree_.children_left != -1] for est in model.estimators_]
    return np.concatenate(values) if values else np.zeros(0)


def _rows_near_thresholds(model: IsolationForest, rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Rows whose cells are thresholds, their float32 roundings and float32 neighbours, or edge values."""
    thresholds = _thresholds(model)
    if thresholds.size == 0:
        thresholds = np.zeros(1)
    t32 = thresholds.astype(np.float32)
    candidates = np.concatenate([
        thresholds,
        t32.astype(np.float64),
        np.nextafter(t32, np.float32(np.inf)).astype(np.float64),
        np.nextafter(t32, np.float32(-np.inf)).astype(np.float64),
        # half-way between float32 neighbours: the cast must round exactly as scikit-learn's does
        (t32.astype(np.float64) + np.nextafter(t32, np.float32(np.inf)).astype(np.float64)) / 2,
        np.array(EDGE_VALUES),
    ])
    return rng.choice(candidates, size=(n, d))


def _assert_exact(scorer, model, X: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    expected = model.decision_function(X)
    labels = model.predict(X)
    forest = scorer.forest
    # the heap walk, the dense walk (packed from PACKED_MIN_ROWS rows), the plain dense walk at
    # every size, then scikit-learn's compiled walk
    for crossover, heap, packed in ((10**9, None, None), (10**9, False, None), (10**9, False, False),
                                    (0, None, None)):
        forest.crossover_rows = crossover
        forest.heap, forest.packed = heap, packed
        got = scorer.decision_function(X)
        assert got is not None
        assert np.max(np.abs(got - expected)) <= 1e-12
        assert np.array_equal(got, expected)  # in fact bit for bit
        assert np.array_equal(np.where(got < 0, -1, 1), labels)
    forest.heap = forest.packed = None


forest_params = st.fixed_dictionaries({
    "n_features": st.integers(1, 7),
    "n_train": st.integers(2, 300),
    "n_estimators": st.integers(1, 12),
    "max_samples": st.one_of(st.just("auto"), st.integers(1, 300), st.floats(0.05, 1.0)),
    "max_features": st.one_of(st.just(1.0), st.floats(0.2, 1.0), st.integers(1, 7)),
    "contamination": st.one_of(st.just("auto"), st.floats(0.01, 0.5)),
    "discrete": st.booleans(),
    "scale": st.sampled_from([1e-6, 1.0, 1e6, 1e30]),
    "seed": st.integers(0, 2**31 - 1),
})


def _fit_forest(p: dict) -> tuple[IsolationForest, np.random.Generator]:
    rng = np.random.default_rng(p["seed"])
    X = rng.normal(size=(p["n_train"], p["n_features"])) * p["scale"]
    if p["discrete"]:  # repeated values: thresholds between few distinct points
        X = np.round(X / p["scale"]) * p["scale"]
    max_features = p["max_features"]
    if isinstance(max_features, int):
        max_features = min(max_features, p["n_features"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_samples above n_train is clipped, with a warning
        try:
            model = IsolationForest(
                n_estimators=p["n_estimators"], max_samples=p["max_samples"], max_features=max_features,
                contamination=p["contamination"], random_state=p["seed"] % 1000,
            ).fit(X)
        except ValueError:  # parameters scikit-learn refuses (a float max_samples giving 0 samples)
            reject()
    return model, rng


@SETTINGS
@given(p=forest_params, n_rows=st.one_of(st.integers(1, 40), st.integers(PACKED_MIN_ROWS, 120)))
def test_fast_scorer_equals_decision_function_and_predict_on_random_forests(p: dict, n_rows: int) -> None:
    model, rng = _fit_forest(p)
    scorer = build_fast_scorer(model, p["n_features"])
    assert scorer is not None
    d = p["n_features"]
    normal = rng.normal(size=(n_rows, d)) * p["scale"] * rng.choice([0.5, 1, 4], size=(n_rows, 1))
    on_thresholds = _rows_near_thresholds(model, rng, n_rows, d)
    mixed = np.where(rng.random((n_rows, d)) < 0.5, normal, on_thresholds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own float32 cast overflows to inf, with a warning
        for X in (normal, on_thresholds, mixed):
            _assert_exact(scorer, model, X)


@SETTINGS
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=3, max_size=3 * 30))
def test_any_finite_float64_row_scores_exactly(values: list[float]) -> None:
    """Arbitrary finite doubles (hypothesis favours edge values: huge, tiny, subnormal, -0.0)."""
    model = _any_float_model()
    X = np.array(values[: len(values) // 3 * 3]).reshape(-1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _assert_exact(build_fast_scorer(model, 3), model, X)


_ANY_FLOAT_MODEL: list[IsolationForest] = []


def _any_float_model() -> IsolationForest:
    if not _ANY_FLOAT_MODEL:
        rng = np.random.default_rng(7)
        X = rng.normal(size=(400, 3)) * np.array([1.0, 1e20, 1e-20])
        _ANY_FLOAT_MODEL.append(IsolationForest(n_estimators=25, random_state=3).fit(X))
    return _ANY_FLOAT_MODEL[0]


scaler_strategy = st.one_of(
    st.builds(StandardScaler, with_mean=st.booleans(), with_std=st.booleans()),
    st.builds(MinMaxScaler, feature_range=st.sampled_from([(0, 1), (-1, 1), (-5, 3)]), clip=st.booleans()),
    st.builds(RobustScaler, with_centering=st.booleans(), with_scaling=st.booleans(),
              quantile_range=st.sampled_from([(25.0, 75.0), (10.0, 90.0)])),
    st.builds(MaxAbsScaler, clip=st.booleans()),
)


@SETTINGS
@given(scalers=st.lists(scaler_strategy, min_size=1, max_size=3), seed=st.integers(0, 10_000),
       n_features=st.integers(1, 6))
def test_pipelines_of_trusted_scalers_score_exactly(scalers: list, seed: int, n_features: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, n_features)) * rng.choice([1e-3, 1.0, 1e3], size=n_features) + rng.normal(size=n_features)
    pipeline = make_pipeline(*scalers, IsolationForest(n_estimators=8, random_state=seed)).fit(X)
    scorer = build_fast_scorer(pipeline, n_features)
    assert scorer is not None and len(scorer.transforms) == len(scalers)
    rows = np.concatenate([rng.normal(size=(30, n_features)) * 3, X[:10]])
    expected = pipeline.decision_function(rows)
    got = scorer.decision_function(rows)
    assert np.max(np.abs(got - expected)) <= 1e-12
    assert np.array_equal(np.where(got < 0, -1, 1), pipeline.predict(rows))


@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler(), RobustScaler(), MaxAbsScaler()],
                         ids=lambda s: type(s).__name__)
def test_each_trusted_scaler_is_served_by_the_fast_path(scaler: object) -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, 4)) * 10 + 3
    pipeline = make_pipeline(scaler, IsolationForest(n_estimators=20, random_state=0)).fit(train)
    resident = ResidentModel.create(version="v", estimator=pipeline, feature_names=list("abcd"))
    assert resident.scoring_path == FAST_PATH
    rows = rng.normal(size=(50, 4)) * 30
    labels, scores, path = resident.score(rows)
    assert path == FAST_PATH
    assert np.array_equal(scores, pipeline.decision_function(rows))
    assert np.array_equal(labels, pipeline.predict(rows))


def test_every_walk_takes_the_branch_of_float32_comparisons_at_every_edge() -> None:
    """Thresholds and rows at float32's edges (signed zeros, subnormals, the largest finite value,
    values that overflow to infinity in the cast), in batches walked by the heap, packed dense and
    plain dense walks: the integer keys of the packed walk must order them exactly as float32
    comparisons do, and rows cast to +-inf must pass the heap's padding (+inf thresholds) leftwards."""
    rng = np.random.default_rng(11)
    edges = np.array([v for v in EDGE_VALUES if abs(v) <= float(F32.max)])
    train = rng.choice(np.concatenate([edges, rng.normal(size=50)]), size=(400, 3))
    model = IsolationForest(n_estimators=30, random_state=0).fit(train)
    scorer = build_fast_scorer(model, 3)
    assert scorer is not None and scorer.forest._packed_table() is not None
    X = _rows_near_thresholds(model, rng, 300, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own float32 cast overflows to inf, with a warning
        _assert_exact(scorer, model, X)


def test_a_forest_the_packed_walk_cannot_hold_keeps_the_plain_walk() -> None:
    """A NaN threshold (which only a damaged saved scorer could hold) has no integer key: the walk
    falls back to the float32 comparisons, as it does for indices that do not fit 31 bits."""
    model = IsolationForest(n_estimators=3, random_state=0).fit(np.random.default_rng(5).normal(size=(50, 2)))
    forest = build_fast_scorer(model, 2).forest
    assert forest._packed_table() is not None
    forest.packed = None
    forest.threshold32 = forest.threshold32.copy()
    forest.threshold32[forest.first_child == np.arange(forest.n_nodes)] = np.nan  # as a damaged file could hold
    assert forest._packed_table() is None and forest.packed is False


def test_path_lengths_are_rebuilt_from_the_tree_arrays_as_scikit_learn_stores_them() -> None:
    model = IsolationForest(n_estimators=10, max_samples=100, random_state=0).fit(
        np.random.default_rng(0).normal(size=(300, 5)))
    for index, estimator in enumerate(model.estimators_):
        assert np.array_equal(average_path_length(estimator.tree_.n_node_samples),
                              model._average_path_length_per_tree[index])
    scorer = build_fast_scorer(model, 5)
    assert scorer is not None and scorer.forest.n_trees == 10
    # A model whose stored path lengths disagree with its trees is not trusted to the fast path.
    model._decision_path_lengths = tuple(lengths + 1 for lengths in model._decision_path_lengths)
    assert build_fast_scorer(model, 5) is None


class _SubclassedForest(IsolationForest):
    pass


def test_other_models_keep_scikit_learns_path() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(200, 3))
    others = [
        LocalOutlierFactor(novelty=True).fit(train),
        _SubclassedForest(n_estimators=5, random_state=0).fit(train),
        make_pipeline(PCA(n_components=3), IsolationForest(n_estimators=5, random_state=0)).fit(train),
        Pipeline([("scale", StandardScaler()), ("lof", LocalOutlierFactor(novelty=True))]).fit(train),
    ]
    for model in others:
        resident = ResidentModel.create(version="v", estimator=model, feature_names=["a", "b", "c"])
        assert resident.scoring_path == SKLEARN_PATH and resident.fast_scorer is None
        labels, scores, path = resident.score(train[:7])
        assert path == SKLEARN_PATH
        assert np.array_equal(scores, model.decision_function(train[:7]))
        assert np.array_equal(labels, model.predict(train[:7]))
    # A model expecting another number of columns than its feature names is left to scikit-learn.
    forest = IsolationForest(n_estimators=5, random_state=0).fit(train)
    assert build_fast_scorer(forest, 4) is None


def test_runtime_reports_the_heap_layout_which_scores_every_batch_size() -> None:
    rng = np.random.default_rng(3)
    model = IsolationForest(n_estimators=20, random_state=0).fit(rng.normal(size=(300, 4)))
    runtime = Runtime()
    runtime.install(ResidentModel.create(version="v", estimator=model, feature_names=list("abcd")))
    scorer = runtime.current.fast_scorer
    assert scorer.layout == "heap" and scorer.crossover_rows is None
    for n in (1, 3, 2_000):
        X = rng.normal(size=(n, 4))
        answer = runtime.predict(X.tolist(), exact_scores=True)
        assert answer["scores"] == model.decision_function(X).tolist()
        assert answer["labels"] == model.predict(X).tolist()
    figures = runtime.performance()
    assert figures["scoring_path"] == FAST_PATH and figures["scoring_layout"] == "heap"
    assert figures["scoring_crossover_rows"] is None
    assert figures["requests_by_scoring_path"] == {FAST_PATH: 3}


def test_a_forest_too_large_for_the_heap_walks_dense_and_hands_large_batches_to_compiled_trees() -> None:
    """260 trees of depth 10 need 266,240 bottom cells, above HEAP_MAX_CELLS: the dense layout serves,
    and above its crossover scikit-learn's compiled trees score (with the same exact summation)."""
    rng = np.random.default_rng(8)
    model = IsolationForest(n_estimators=260, max_samples=1024, random_state=0).fit(rng.normal(size=(1100, 4)))
    assert model.n_estimators << 10 > HEAP_MAX_CELLS
    runtime = Runtime()
    runtime.install(ResidentModel.create(version="v", estimator=model, feature_names=list("abcd")))
    scorer = runtime.current.fast_scorer
    assert scorer.layout == "dense" and scorer.crossover_rows == DEFAULT_CROSSOVER_ROWS
    for n in (3, DEFAULT_CROSSOVER_ROWS + 1):
        X = rng.normal(size=(n, 4))
        answer = runtime.predict(X.tolist(), exact_scores=True)
        assert answer["scores"] == model.decision_function(X).tolist()
        assert answer["labels"] == model.predict(X).tolist()
    figures = runtime.performance()
    assert figures["scoring_path"] == FAST_PATH and figures["scoring_layout"] == "dense"
    assert figures["scoring_crossover_rows"] == DEFAULT_CROSSOVER_ROWS
    assert figures["requests_by_scoring_path"] == {FAST_PATH: 1, SKLEARN_PATH: 1}


def test_batches_walk_in_chunks_of_the_heap_exactly_including_a_last_chunk_of_one_row() -> None:
    rng = np.random.default_rng(12)
    model = IsolationForest(n_estimators=200, max_samples=64, random_state=0).fit(rng.normal(size=(500, 3)))
    scorer = build_fast_scorer(model, 3)
    assert scorer is not None and scorer.layout == "heap"
    chunk = _chunk_rows(200)
    for n in (chunk, chunk + 1, 2 * chunk + 1, 2 * chunk + 2):
        X = np.concatenate([_rows_near_thresholds(model, rng, n // 2, 3), rng.normal(size=(n - n // 2, 3))])
        _assert_exact(scorer, model, X)


@SETTINGS
@given(n_trees=st.integers(1, 300), n_rows=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_tree_sums_add_the_trees_in_order(n_trees: int, n_rows: int, seed: int) -> None:
    """The per-row sum over the tree axis is `depths +=` tree after tree, to the last bit; terms of
    very different magnitudes make any other order show."""
    rng = np.random.default_rng(seed)
    terms = rng.normal(size=(n_trees, n_rows)) * 10.0 ** rng.integers(-12, 13, size=(n_trees, n_rows))
    expected = np.zeros(n_rows)
    for row in terms:
        expected += row
    assert np.array_equal(_tree_sums(terms), expected)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_before_scoring(bad: float) -> None:
    model = IsolationForest(n_estimators=5, random_state=0).fit(np.random.default_rng(4).normal(size=(100, 2)))
    runtime = Runtime()
    runtime.install(ResidentModel.create(version="v", estimator=model, feature_names=["a", "b"]))
    for rows in ([[0.0, bad]], np.array([[0.0, 1.0], [bad, 0.0]])):
        with pytest.raises(InvalidInputError, match="not a finite number"):
            runtime.predict(rows)
    figures = runtime.performance()
    assert figures["n_errors"] == 2 and figures["n_requests"] == 0 and figures["requests_by_scoring_path"] == {}
