"""Structural checks on real fitted models, healthy and edited into hostile shapes.

Hostile models are built the way an attacker would: a fitted estimator whose compiled state is
replaced through the same `__setstate__` the unpickler calls. None of them is ever predicted
with here (several would crash or hang this process); test_isolated_probe.py does that in a
child process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from model_mcp.core.model_checks import structural_problems

N_FEATURES = 4


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(300, N_FEATURES))


def fit_forest(train: np.ndarray, **params: Any) -> IsolationForest:
    return IsolationForest(n_estimators=5, random_state=0, **params).fit(train)


def edit_nodes(tree: Any, **changes: dict[int, Any]) -> None:
    """Rewrite node fields (`left_child={0: 10**6}`) through Tree.__setstate__."""
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    for field, by_node in changes.items():
        for node, value in by_node.items():
            nodes[field][node] = value
    tree.__setstate__(dict(state, nodes=nodes))


def first_split_after_root(tree: Any) -> int:
    return int(np.flatnonzero(tree.children_left[1:] != -1)[0]) + 1


OUTSIDE = "split nodes have children outside (own id, {n}): predicting would read past the tree or loop back to an ancestor: "


# --- healthy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("build", [
    lambda: IsolationForest(n_estimators=20, random_state=0),
    lambda: make_pipeline(StandardScaler(), IsolationForest(n_estimators=20, random_state=0)),
    lambda: IsolationForest(n_estimators=10, max_features=2, random_state=0),
    lambda: LocalOutlierFactor(n_neighbors=10, novelty=True),
    lambda: LocalOutlierFactor(n_neighbors=10, novelty=True, algorithm="ball_tree"),
    lambda: OneClassSVM(nu=0.1),
], ids=["iforest", "pipeline", "iforest-subspace", "lof-kdtree", "lof-balltree", "ocsvm"])
def test_healthy_models_have_no_structural_problems(train: np.ndarray, build: Any) -> None:
    assert structural_problems(build().fit(train), N_FEATURES) == []


# --- trees --------------------------------------------------------------------------------------
def test_child_index_out_of_range_is_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    tree = forest.estimators_[0].tree_
    right = int(tree.children_right[0])
    edit_nodes(tree, left_child={0: 10**6})
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest.estimators_[0].tree_: " + OUTSIDE.format(n=tree.node_count)
        + f"node 0 -> (1000000, {right})."
    ]


def test_child_pointing_back_to_the_root_is_a_cycle(train: np.ndarray) -> None:
    forest = fit_forest(train)
    tree = forest.estimators_[1].tree_
    node = first_split_after_root(tree)
    right = int(tree.children_right[node])
    edit_nodes(tree, left_child={node: 0})
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest.estimators_[1].tree_: " + OUTSIDE.format(n=tree.node_count)
        + f"node {node} -> (0, {right})."
    ]


def test_shared_child_and_unreachable_node_are_named(train: np.ndarray) -> None:
    # Both links in range and increasing: only the counting catches a node reached twice.
    forest = fit_forest(train)
    tree = forest.estimators_[0].tree_
    left, right = int(tree.children_left[0]), int(tree.children_right[0])
    edit_nodes(tree, right_child={0: left})
    assert structural_problems(forest, N_FEATURES) == [
        f"IsolationForest.estimators_[0].tree_: nodes are unreachable from the root: node {right}.",
        f"IsolationForest.estimators_[0].tree_: nodes are the child of more than one split: node {left}.",
    ]


def test_leaf_with_one_child_is_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    tree = forest.estimators_[0].tree_
    leaf = int(np.flatnonzero(tree.children_left == -1)[0])
    edit_nodes(tree, right_child={leaf: leaf + 1})
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest.estimators_[0].tree_: nodes have exactly one child marked as a leaf: "
        f"node {leaf} (-1, {leaf + 1})."
    ]


def test_max_depth_below_the_real_depth_is_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    tree = forest.estimators_[0].tree_
    depth = tree.max_depth
    tree.__setstate__(dict(tree.__getstate__(), max_depth=1))
    assert structural_problems(forest, N_FEATURES) == [
        f"IsolationForest.estimators_[0].tree_: the tree is {depth} levels deep but records max_depth 1."
    ]


def test_feature_index_out_of_range_is_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    edit_nodes(forest.estimators_[2].tree_, feature={0: 7})
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest.estimators_[2].tree_: split nodes test feature columns outside 0..3: node 0 uses column 7."
    ]


def test_feature_index_is_bounded_by_the_columns_the_tree_receives(train: np.ndarray) -> None:
    # With max_features=2 each tree sees 2 columns; column 3 exists in the input but not in X[:, features].
    forest = fit_forest(train, max_features=2)
    edit_nodes(forest.estimators_[0].tree_, feature={0: 3})
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest.estimators_[0].tree_: split nodes test feature columns outside 0..1: node 0 uses column 3."
    ]


def test_nan_threshold_and_negative_sample_count_are_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    edit_nodes(forest.estimators_[0].tree_, threshold={0: np.nan}, n_node_samples={0: -5})
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest.estimators_[0].tree_: split nodes have NaN thresholds: node 0.",
        "IsolationForest.estimators_[0].tree_: nodes have a negative sample count: node 0.",
    ]


def test_pipeline_step_is_named_in_the_path(train: np.ndarray) -> None:
    pipeline = make_pipeline(StandardScaler(), IsolationForest(n_estimators=3, random_state=0)).fit(train)
    edit_nodes(pipeline[-1].estimators_[0].tree_, feature={0: 9})
    assert structural_problems(pipeline, N_FEATURES) == [
        "Pipeline.steps['isolationforest'].estimators_[0].tree_: split nodes test feature columns outside 0..3: "
        "node 0 uses column 9."
    ]


def test_narrower_input_than_the_trees_use_is_named(train: np.ndarray) -> None:
    # Rows of 2 columns: the forest's column selection and every tree's splits go past them.
    problems = structural_problems(fit_forest(train), 2)
    assert problems[0] == (
        "IsolationForest: estimators_features_ entries are out of range (the input has columns 0..1): "
        "#0 names columns 0..3, #1 names columns 0..3, #2 names columns 0..3 and 2 more."
    )
    assert [p.split(": ")[:2] for p in problems[1:]] == [
        [f"IsolationForest.estimators_[{i}].tree_", "split nodes test feature columns outside 0..1"] for i in range(5)
    ]


# --- IsolationForest's own tables ---------------------------------------------------------------
def test_estimators_features_out_of_range_is_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    forest.estimators_features_[3] = np.array([0, 1, 2, 11])
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest: estimators_features_ entries are out of range (the input has columns 0..3): "
        "#3 names columns 0..11."
    ]


def test_estimators_features_count_mismatch_is_named(train: np.ndarray) -> None:
    forest = fit_forest(train)
    forest.estimators_features_ = forest.estimators_features_[:4]
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest: it has 5 estimators_ but 4 estimators_features_."
    ]


def test_path_length_tables_must_match_the_trees(train: np.ndarray) -> None:
    forest = fit_forest(train)
    lengths = list(forest._decision_path_lengths)
    lengths[1] = lengths[1][:-1]
    forest._decision_path_lengths = lengths
    forest._average_path_length_per_tree = forest._average_path_length_per_tree[:3]
    forest.max_samples_ = 0
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest: max_samples_ is 0, not a positive integer.",
        "IsolationForest: _average_path_length_per_tree has 3 entries for 5 trees.",
        "IsolationForest: _decision_path_lengths does not have one entry per node for trees #1.",
    ]


def test_state_of_the_wrong_type_is_a_problem_not_an_exception(train: np.ndarray) -> None:
    forest = fit_forest(train)
    forest.estimators_features_ = "all of them"
    forest.n_features_in_ = -3
    assert structural_problems(forest, N_FEATURES) == [
        "IsolationForest: n_features_in_ is -3, not a positive integer.",
        "IsolationForest: estimators_ and estimators_features_ are not both lists.",
    ]


# --- neighbours ---------------------------------------------------------------------------------
def fit_lof(train: np.ndarray) -> LocalOutlierFactor:
    lof = LocalOutlierFactor(n_neighbors=10, novelty=True, algorithm="kd_tree").fit(train)
    return lof


def test_kdtree_index_out_of_range_is_named(train: np.ndarray) -> None:
    lof = fit_lof(train)
    state = lof._tree.__getstate__()
    idx = state[1].copy()
    idx[0] = 10**6
    lof._tree.__setstate__((state[0], idx, *state[2:]))
    assert structural_problems(lof, N_FEATURES) == [
        f"LocalOutlierFactor._tree: idx_array points outside the data's rows 0..299 (it holds {idx.min()}..1000000)."
    ]


def test_kdtree_index_that_is_not_a_permutation_is_named(train: np.ndarray) -> None:
    lof = fit_lof(train)
    state = lof._tree.__getstate__()
    idx = state[1].copy()
    idx[0] = idx[1]
    lof._tree.__setstate__((state[0], idx, *state[2:]))
    assert structural_problems(lof, N_FEATURES) == [
        "LocalOutlierFactor._tree: idx_array is not a permutation of the data's 300 rows."
    ]


def test_kdtree_inner_node_without_children_is_named(train: np.ndarray) -> None:
    lof = fit_lof(train)
    state = lof._tree.__getstate__()
    node_data = state[2].copy()
    last = node_data.shape[0] - 1
    node_data["is_leaf"][last] = 0
    node_data["idx_end"][0] = 301
    lof._tree.__setstate__((state[0], state[1], node_data, *state[3:]))
    assert structural_problems(lof, N_FEATURES) == [
        "LocalOutlierFactor._tree: nodes cover index ranges outside 0..300: node 0 [0, 301).",
        f"LocalOutlierFactor._tree: inner nodes have children past the {last + 1} nodes: node {last}.",
    ]


def test_lof_sizes_must_agree(train: np.ndarray) -> None:
    lof = fit_lof(train)
    lof.n_neighbors_ = 400
    lof._fit_X = lof._fit_X[:, :3]
    assert structural_problems(lof, N_FEATURES) == [
        "LocalOutlierFactor: _fit_X has shape (300, 3), not (n_samples_fit_, n_features_in_) = (300, 4).",
        "LocalOutlierFactor: n_neighbors_ is 400, not between 1 and n_samples_fit_ = 300.",
        "LocalOutlierFactor: _tree holds data of shape (300, 4), not _fit_X's (300, 3).",
        "LocalOutlierFactor: _distances_fit_X_ has shape (300, 10), not (300, 400).",
    ]


# --- OneClassSVM --------------------------------------------------------------------------------
def test_svm_coefficients_shorter_than_support_vectors_are_named(train: np.ndarray) -> None:
    svm = OneClassSVM(nu=0.1).fit(train)
    n_sv = svm.support_vectors_.shape[0]
    svm._dual_coef_ = svm._dual_coef_[:, :-1]
    svm.support_vectors_[0, 0] = np.nan
    assert structural_problems(svm, N_FEATURES) == [
        "OneClassSVM: support_vectors_ contain NaN, which makes every prediction meaningless.",
        f"OneClassSVM: _dual_coef_ has shape (1, {n_sv - 1}), not (1, {n_sv}).",
    ]


def test_svm_support_vectors_of_the_wrong_width_are_named(train: np.ndarray) -> None:
    svm = OneClassSVM(nu=0.1).fit(train)
    svm.support_vectors_ = np.ascontiguousarray(svm.support_vectors_[:, :2])
    svm._intercept_ = np.zeros(3)
    assert structural_problems(svm, N_FEATURES) == [
        "OneClassSVM: support_vectors_ has 2 columns, not n_features_in_ = 4.",
        "OneClassSVM: _intercept_ has shape (3,), not (1,).",
    ]
