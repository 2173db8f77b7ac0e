"""Structural checks of a loaded estimator, before anything predicts with it.

The trusted-type loader guarantees that `model.joblib` names only scikit-learn and numpy types;
it cannot guarantee that their *state* is sane. scikit-learn's compiled predictors trust the
arrays they are given and skip bounds checks, so a pickle made only of trusted types can still:

- crash the process: a tree node whose child index points outside the node array, a split on a
  feature column the input does not have, a KD-tree `idx_array` entry past the data, an SVM
  whose dual coefficients are shorter than its support vectors (all read out of bounds);
- hang it: a tree whose child points back to an ancestor loops forever, with the GIL released;
- answer garbage: NaN thresholds or NaN support vectors.

`structural_problems(estimator, n_features)` walks the fitted estimator and returns one
sentence per problem (`[]` for a healthy model). It never raises: an attribute of an unexpected
type is itself a problem. It only reads arrays the estimator already holds, so it is safe to run
in the server process; it runs first in the isolated probe too (see `isolated_probe`).

What is walked: Pipeline steps; every estimator found in an estimator's attributes (ensembles'
`estimators_`, `estimator_`, lists, tuples, dicts and object arrays of them); every
`sklearn.tree._tree.Tree`; neighbour trees (`KDTree` / `BallTree`) and their distance metric;
histogram-gradient-boosting `TreePredictor`s; `_fit_X` of neighbour estimators; libsvm state.

Why a tree check needs no walk from the root: scikit-learn numbers nodes depth-first, so every
child has a larger id than its parent. If, among split nodes, each child is in
`(parent, node_count)` and every node but the root is somebody's child exactly once, then
following parents from any node strictly decreases the id and ends at the root: the nodes form
one tree, with no cycle and no unreachable or shared node. That is a few vectorized numpy
operations per tree (a 1,000-tree forest takes milliseconds).

scikit-learn is imported lazily: this module is imported by the validation code, and importing
scikit-learn takes a second; by the time a model is checked it has been imported anyway.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["anomaly_share", "has_method", "output_problems", "probe_outputs", "scorer_name", "structural_problems"]

# How many offending entries a sentence names before summarising the rest.
_EXAMPLES = 3
# Containers nested deeper than this are not walked (no real model comes close).
_MAX_DEPTH = 40

# Fitted float arrays in which a NaN (never legitimate after fitting) makes predictions garbage.
_NAN_FREE_ATTRIBUTES: tuple[str, ...] = (
    "support_vectors_", "dual_coef_", "_dual_coef_", "intercept_", "_intercept_", "coef_",
    "offset_", "_fit_X", "mean_", "scale_", "components_", "cluster_centers_", "location_",
    "precision_", "covariance_", "_lrd", "negative_outlier_factor_", "_distances_fit_X_",
    "_average_path_length_per_tree", "_decision_path_lengths",
)

# Fitted attributes whose estimator sees something other than the parent's input columns.
_OTHER_INPUT = frozenset({"final_estimator_"})

# Names of the libsvm estimators' svm_type, as libsvm numbers them (0 and 1 classify).
_LIBSVM_CLASSIFIERS = frozenset({"c_svc", "nu_svc"})


def structural_problems(estimator: Any, n_features: int) -> list[str]:
    """Return one sentence per structural problem of a fitted estimator; `[]` when healthy.

    `n_features` is the width of the rows the estimator will be given (the metadata's feature
    count): trees splitting on a column at or past it, or past their own estimator's
    `n_features_in_`, are reported. Never raises.
    """
    walker = _Walker()
    width = n_features if _is_count(n_features) and n_features > 0 else None
    walker.visit(estimator, type(estimator).__name__, width, 0)
    return walker.problems


class _Walker:
    """Visits every part of an estimator once, collecting problem sentences."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._seen: set[int] = set()

    def visit(self, obj: Any, where: str, width: int | None, depth: int) -> None:
        if obj is None or id(obj) in self._seen:
            return
        if depth > _MAX_DEPTH:
            self.problems.append(f"{where}: the model nests parts more than {_MAX_DEPTH} levels deep.")
            return
        kind = _kind(obj)
        if kind is None:
            if _is_container(obj):
                self._visit_container(obj, where, width, depth)
            return
        self._seen.add(id(obj))
        try:
            if kind == "tree":
                self.problems.extend(tree_problems(obj, where, width))
            elif kind == "binary_tree":
                self.problems.extend(binary_tree_problems(obj, where, width))
            elif kind == "predictor":
                self.problems.extend(predictor_problems(obj, where, width))
            else:
                self._visit_estimator(obj, where, width, depth)
        except Exception as exc:  # noqa: BLE001 - hostile state: any surprise is a finding
            self.problems.append(f"{where}: its state could not be checked ({type(exc).__name__}: "
                                 f"{str(exc)[:160]}).")

    def _visit_container(self, obj: Any, where: str, width: int | None, depth: int) -> None:
        if id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        if isinstance(obj, dict):
            items: Iterator[tuple[str, Any]] = ((f"[{k!r}]", v) for k, v in obj.items())
        elif isinstance(obj, np.ndarray):
            items = ((f"[{i}]", v) for i, v in enumerate(obj.ravel()))
        else:
            items = ((f"[{i}]", v) for i, v in enumerate(obj))
        for suffix, value in items:
            self.visit(value, where + suffix, width, depth + 1)

    def _visit_estimator(self, est: Any, where: str, width: int | None, depth: int) -> None:
        own = getattr(est, "n_features_in_", None)
        if own is not None and not (_is_count(own) and own > 0):
            self.problems.append(f"{where}: n_features_in_ is {own!r}, not a positive integer.")
            own = None
        bound = _min_known(width, own)
        attrs = vars(est)
        self.problems.extend(_nan_problems(attrs, where))

        steps = attrs.get("steps")
        if isinstance(steps, list) and type(est).__name__ == "Pipeline":
            # Only the first step sees the pipeline's input; later steps check their own width.
            for i, step in enumerate(steps):
                if isinstance(step, tuple) and len(step) == 2:
                    self.visit(step[1], f"{where}.steps[{step[0]!r}]", bound if i == 0 else None, depth + 1)
        if "estimators_features_" in attrs:
            self.problems.extend(_subspace_problems(attrs, where, bound))
            self._visit_subspace_members(attrs, where, bound, depth)
        if "_average_path_length_per_tree" in attrs or "_decision_path_lengths" in attrs:
            self.problems.extend(_isolation_forest_problems(attrs, where))
        if "_fit_X" in attrs:
            self.problems.extend(_neighbors_problems(attrs, where, own))
        if "support_vectors_" in attrs and "_n_support" in attrs:
            self.problems.extend(_libsvm_problems(est, attrs, where, own))

        # Everything else it holds sees (a part of) this estimator's input: ensembles call their
        # members with check_input=False, so a member's own n_features_in_ is not enforced and
        # the parent's width bounds it. A stacking final estimator sees predictions instead.
        for name, value in attrs.items():
            if _kind(value) is None and not _is_container(value):
                continue
            self.visit(value, f"{where}.{name}", None if name in _OTHER_INPUT else bound, depth + 1)

    def _visit_subspace_members(self, attrs: dict[str, Any], where: str, bound: int | None, depth: int) -> None:
        """Bagging and IsolationForest give member i the columns `estimators_features_[i]`,
        or the whole input when they do not subsample features: the narrower bounds it."""
        members, features = attrs.get("estimators_"), attrs.get("estimators_features_")
        if not isinstance(members, (list, tuple)) or not isinstance(features, (list, tuple)):
            return
        for i, (member, cols) in enumerate(zip(members, features, strict=False)):
            width = int(np.size(cols)) if isinstance(cols, np.ndarray) and cols.ndim == 1 else None
            self.visit(member, f"{where}.estimators_[{i}]", _min_known(width, bound), depth + 1)


# --- kinds of parts ------------------------------------------------------------------------------
def _kind(obj: Any) -> str | None:
    """What part `obj` is, by its class's module and name (no scikit-learn import needed)."""
    cls = type(obj)
    module, name = getattr(cls, "__module__", "") or "", cls.__name__
    if module == "sklearn.tree._tree" and name == "Tree":
        return "tree"
    if module in ("sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree") and name in (
        "KDTree", "BallTree", "KDTree64", "BallTree64", "KDTree32", "BallTree32"
    ):
        return "binary_tree"
    if module == "sklearn.ensemble._hist_gradient_boosting.predictor" and name == "TreePredictor":
        return "predictor"
    if module.startswith("sklearn.") and callable(getattr(obj, "get_params", None)) and hasattr(obj, "__dict__"):
        return "estimator"
    return None


def _is_container(obj: Any) -> bool:
    """Lists, tuples, dicts and object arrays may hold estimators (ensembles, pipelines)."""
    return isinstance(obj, (list, tuple, dict)) or (isinstance(obj, np.ndarray) and obj.dtype == object)


def _is_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _min_known(*widths: int | None) -> int | None:
    known = [w for w in widths if w is not None]
    return min(known) if known else None


def _examples(indices: np.ndarray, describe: Any) -> str:
    """'node 3 (...), node 9 (...) and 4 more' for the first offending entries."""
    shown = ", ".join(describe(int(i)) for i in indices[:_EXAMPLES])
    extra = len(indices) - _EXAMPLES
    return shown + (f" and {extra} more" if extra > 0 else "")


def _int_array(value: Any, ndim: int = 1) -> np.ndarray | None:
    if isinstance(value, np.ndarray) and value.ndim == ndim and value.dtype.kind in "iu":
        return value
    return None


def _float_array(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value
    return None


# --- sklearn.tree._tree.Tree ---------------------------------------------------------------------
def tree_problems(tree: Any, where: str, width: int | None) -> list[str]:
    """Child links, feature indices, thresholds, values and sample counts of one Tree."""
    n, capacity = tree.node_count, tree.capacity
    if not (_is_count(n) and _is_count(capacity) and 1 <= n <= capacity):
        # The node arrays are views of node_count entries: do not build them past the allocation.
        return [f"{where}: node_count {n!r} is not between 1 and the tree's allocated {capacity!r} nodes."]
    problems: list[str] = []
    n_features = tree.n_features
    if not (_is_count(n_features) and n_features > 0):
        problems.append(f"{where}: the tree's n_features is {n_features!r}, not a positive integer.")
        n_features = None
    bound = _min_known(n_features, width)

    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    left = nodes["left_child"].astype(np.int64, copy=False)
    right = nodes["right_child"].astype(np.int64, copy=False)
    links = _link_problems(where, left, right, leaf_marker=-1)
    problems += links
    if not links:
        # decision_path() sizes its output by max_depth and writes each path into it unchecked.
        deepest = int(tree.compute_node_depths().max()) - 1  # the root has depth 1 there
        if not (_is_count(tree.max_depth) and deepest <= tree.max_depth):
            problems.append(f"{where}: the tree is {deepest} levels deep but records max_depth {tree.max_depth!r}.")

    split = left != -1
    split_ids = np.flatnonzero(split)
    if bound is not None:
        feature = nodes["feature"][split]
        bad = split_ids[(feature < 0) | (feature >= bound)]
        if bad.size:
            problems.append(f"{where}: split nodes test feature columns outside 0..{bound - 1}: "
                            + _examples(bad, lambda i: f"node {i} uses column {int(nodes['feature'][i])}") + ".")
    bad = split_ids[np.isnan(nodes["threshold"][split])]
    if bad.size:
        problems.append(f"{where}: split nodes have NaN thresholds: " + _examples(bad, lambda i: f"node {i}") + ".")
    bad = np.flatnonzero(nodes["n_node_samples"] < 0)
    if bad.size:
        problems.append(f"{where}: nodes have a negative sample count: " + _examples(bad, lambda i: f"node {i}") + ".")
    expected = (n, tree.n_outputs, tree.max_n_classes)
    if values.shape != expected:
        problems.append(f"{where}: the value array has shape {values.shape}, not {expected}.")
    elif np.isnan(values).any():
        problems.append(f"{where}: the node values contain NaN.")
    return problems


def _link_problems(where: str, left: np.ndarray, right: np.ndarray, *, leaf_marker: int | None,
                   is_leaf: np.ndarray | None = None) -> list[str]:
    """Children of split nodes in (parent, n); every non-root node a child exactly once.

    A leaf is marked either by `leaf_marker` in both child slots (sklearn trees) or by an
    `is_leaf` flag (histogram-boosting predictors, whose leaves' child slots are ignored).
    """
    n = left.shape[0]
    ids = np.arange(n)
    problems: list[str] = []
    if is_leaf is None:
        leaf = left == leaf_marker
        half = np.flatnonzero(leaf != (right == leaf_marker))
        if half.size:
            problems.append(f"{where}: nodes have exactly one child marked as a leaf: "
                            + _examples(half, lambda i: f"node {i} ({int(left[i])}, {int(right[i])})") + ".")
        split = ~leaf  # what predict treats as a split: it follows left_child unless it is -1
    else:
        split = ~is_leaf
    out = np.flatnonzero(split & ((left <= ids) | (left >= n) | (right <= ids) | (right >= n)))
    if out.size:
        problems.append(
            f"{where}: split nodes have children outside (own id, {n}): predicting would read "
            "past the tree or loop back to an ancestor: "
            + _examples(out, lambda i: f"node {i} -> ({int(left[i])}, {int(right[i])})") + "."
        )
        return problems  # the counts below would only repeat it
    counts = np.bincount(np.concatenate([left[split], right[split]]), minlength=n)
    counts[0] += 1  # the root is nobody's child
    orphans, shared = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
    if orphans.size:
        problems.append(f"{where}: nodes are unreachable from the root: " + _examples(orphans, lambda i: f"node {i}") + ".")
    if shared.size:
        problems.append(f"{where}: nodes are the child of more than one split: "
                        + _examples(shared, lambda i: f"node {i}") + ".")
    return problems


# --- histogram gradient boosting ----------------------------------------------------------------
def predictor_problems(predictor: Any, where: str, width: int | None) -> list[str]:
    """A HistGradientBoosting TreePredictor: its node records and categorical bitsets."""
    nodes = getattr(predictor, "nodes", None)
    names = getattr(getattr(nodes, "dtype", None), "names", None) or ()
    needed = {"left", "right", "is_leaf", "feature_idx", "num_threshold", "is_categorical", "bitset_idx"}
    if not (isinstance(nodes, np.ndarray) and nodes.ndim == 1 and nodes.size and needed <= set(names)):
        return [f"{where}: the predictor's nodes are not a non-empty array of node records."]
    is_leaf = nodes["is_leaf"].astype(bool)
    left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
    problems = _link_problems(where, left, right, leaf_marker=None, is_leaf=is_leaf)
    split_ids = np.flatnonzero(~is_leaf)
    if width is not None:
        feature = nodes["feature_idx"][split_ids]
        bad = split_ids[(feature < 0) | (feature >= width)]
        if bad.size:
            problems.append(f"{where}: split nodes test feature columns outside 0..{width - 1}: "
                            + _examples(bad, lambda i: f"node {i} uses column {int(nodes['feature_idx'][i])}") + ".")
    numeric = split_ids[nodes["is_categorical"][split_ids] == 0]
    bad = numeric[np.isnan(nodes["num_threshold"][numeric])]
    if bad.size:
        problems.append(f"{where}: split nodes have NaN thresholds: " + _examples(bad, lambda i: f"node {i}") + ".")
    categorical = split_ids[nodes["is_categorical"][split_ids] != 0]
    if categorical.size:
        bitsets = getattr(predictor, "raw_left_cat_bitsets", None)
        rows = bitsets.shape[0] if isinstance(bitsets, np.ndarray) and bitsets.ndim == 2 else 0
        bad = categorical[nodes["bitset_idx"][categorical] >= rows]
        if bad.size:
            problems.append(f"{where}: categorical splits name bitsets past the {rows} stored: "
                            + _examples(bad, lambda i: f"node {i}") + ".")
    return problems


# --- ensembles on feature subspaces (Bagging, IsolationForest) ----------------------------------
def _subspace_problems(attrs: dict[str, Any], where: str, width: int | None) -> list[str]:
    members, features = attrs.get("estimators_"), attrs.get("estimators_features_")
    if not isinstance(members, (list, tuple)) or not isinstance(features, (list, tuple)):
        return [f"{where}: estimators_ and estimators_features_ are not both lists."]
    problems: list[str] = []
    if len(members) != len(features):
        problems.append(f"{where}: it has {len(members)} estimators_ but {len(features)} estimators_features_.")
    bad: dict[int, str] = {}
    for i, cols in enumerate(features):
        array = _int_array(cols)
        if array is None or array.size == 0:
            bad[i] = f"#{i} is not a non-empty integer vector"
        elif width is not None and (array.min() < 0 or array.max() >= width):
            bad[i] = f"#{i} names columns {int(array.min())}..{int(array.max())}"
    if bad:
        limit = f" (the input has columns 0..{width - 1})" if width is not None else ""
        problems.append(f"{where}: estimators_features_ entries are out of range{limit}: "
                        + _examples(np.fromiter(bad, dtype=np.int64), bad.__getitem__) + ".")
    return problems


def _isolation_forest_problems(attrs: dict[str, Any], where: str) -> list[str]:
    """Per-tree path-length tables are indexed by leaf id: one entry per node of each tree."""
    problems: list[str] = []
    members = attrs.get("estimators_")
    n_members = len(members) if isinstance(members, (list, tuple)) else None
    max_samples = attrs.get("max_samples_")
    if "max_samples_" in attrs and not (_is_count(max_samples) and max_samples > 0):
        problems.append(f"{where}: max_samples_ is {max_samples!r}, not a positive integer.")
    for name in ("_average_path_length_per_tree", "_decision_path_lengths"):
        if name not in attrs:
            continue
        tables = attrs[name]
        if not isinstance(tables, (list, tuple)) or (n_members is not None and len(tables) != n_members):
            size = len(tables) if isinstance(tables, (list, tuple)) else type(tables).__name__
            problems.append(f"{where}: {name} has {size} entries for {n_members} trees.")
            continue
        if n_members is None:
            continue
        bad = []
        for i, (table, member) in enumerate(zip(tables, members, strict=True)):
            tree = getattr(member, "tree_", None)
            count = tree.node_count if _kind(tree) == "tree" else None
            if not isinstance(table, np.ndarray) or table.ndim != 1 or (count is not None and table.shape[0] != count):
                bad.append(i)
        if bad:
            problems.append(f"{where}: {name} does not have one entry per node for trees "
                            + _examples(np.asarray(bad), lambda i: f"#{i}") + ".")
    return problems


# --- neighbours ---------------------------------------------------------------------------------
def _neighbors_problems(attrs: dict[str, Any], where: str, n_features_in: int | None) -> list[str]:
    """LocalOutlierFactor, NearestNeighbors and friends: the fitted sample and its sizes."""
    problems: list[str] = []
    fit_x = attrs.get("_fit_X")
    n_fit = attrs.get("n_samples_fit_")
    if not (_is_count(n_fit) and n_fit > 0):
        problems.append(f"{where}: n_samples_fit_ is {n_fit!r}, not a positive integer.")
        n_fit = None
    if not (isinstance(fit_x, np.ndarray) and fit_x.ndim == 2):
        if fit_x is not None:  # sparse input keeps a scipy matrix: only its shape is checked
            shape = getattr(fit_x, "shape", None)
            if n_fit is not None and shape is not None and shape[0] != n_fit:
                problems.append(f"{where}: _fit_X has {shape[0]} rows, not n_samples_fit_ = {n_fit}.")
        return problems
    expected = (n_fit if n_fit is not None else fit_x.shape[0],
                n_features_in if n_features_in is not None else fit_x.shape[1])
    if fit_x.shape != expected:
        problems.append(f"{where}: _fit_X has shape {fit_x.shape}, not (n_samples_fit_, n_features_in_) = {expected}.")
    k = attrs.get("n_neighbors_")
    if "n_neighbors_" in attrs and n_fit is not None and not (_is_count(k) and 1 <= k <= n_fit):
        problems.append(f"{where}: n_neighbors_ is {k!r}, not between 1 and n_samples_fit_ = {n_fit}.")
    method = attrs.get("_fit_method")
    if method is not None and method not in ("brute", "kd_tree", "ball_tree"):
        problems.append(f"{where}: _fit_method is {method!r}, not brute, kd_tree or ball_tree.")
    tree = attrs.get("_tree")
    if method in ("kd_tree", "ball_tree"):
        if _kind(tree) != "binary_tree":
            problems.append(f"{where}: _fit_method is {method} but _tree is {type(tree).__name__}.")
        else:
            data = tree.__getstate__()[0]
            if getattr(data, "shape", None) != fit_x.shape:
                problems.append(f"{where}: _tree holds data of shape {getattr(data, 'shape', None)}, "
                                f"not _fit_X's {fit_x.shape}.")
    for name, shape in (("_lrd", (expected[0],)), ("negative_outlier_factor_", (expected[0],)),
                        ("_distances_fit_X_", (expected[0], k))):
        value = attrs.get(name)
        if value is not None and _is_count(k) and getattr(value, "shape", None) != shape:
            problems.append(f"{where}: {name} has shape {getattr(value, 'shape', None)}, not {shape}.")
    return problems


def binary_tree_problems(tree: Any, where: str, width: int | None) -> list[str]:
    """A KDTree / BallTree: its index permutation, node ranges, bounds, data and metric."""
    state = tree.__getstate__()
    if not (isinstance(state, tuple) and len(state) >= 12):
        return [f"{where}: the neighbour tree's state is not the expected tuple."]
    data, idx, node_data, node_bounds, leaf_size, _, n_nodes = state[:7]
    metric = state[11]
    sample_weight = state[12] if len(state) > 12 else None
    if not (isinstance(data, np.ndarray) and data.ndim == 2 and data.dtype.kind == "f" and data.shape[0] > 0):
        return [f"{where}: the tree's data is not a non-empty 2-D float array."]
    n_samples, n_columns = data.shape
    problems: list[str] = []
    if width is not None and n_columns != width:
        problems.append(f"{where}: the tree's data has {n_columns} columns, not {width}.")
    if not np.isfinite(data).all():
        problems.append(f"{where}: the tree's data contains NaN or infinite values.")
    if not (_is_count(leaf_size) and leaf_size >= 1):
        problems.append(f"{where}: leaf_size is {leaf_size!r}, not a positive integer.")
    idx_array = _int_array(idx)
    if idx_array is None or idx_array.shape != (n_samples,):
        problems.append(f"{where}: idx_array is not an integer vector of the data's {n_samples} rows.")
    elif idx_array.min() < 0 or idx_array.max() >= n_samples:
        problems.append(f"{where}: idx_array points outside the data's rows 0..{n_samples - 1} "
                        f"(it holds {int(idx_array.min())}..{int(idx_array.max())}).")
    elif not (np.bincount(idx_array, minlength=n_samples) == 1).all():
        problems.append(f"{where}: idx_array is not a permutation of the data's {n_samples} rows.")
    problems += _node_data_problems(where, node_data, n_nodes, n_samples)
    problems += _node_bounds_problems(where, tree, node_bounds, n_nodes, n_columns)
    if sample_weight is not None and getattr(sample_weight, "shape", None) != (n_samples,):
        problems.append(f"{where}: sample_weight has shape {getattr(sample_weight, 'shape', None)}, not ({n_samples},).")
    problems += _metric_problems(where, metric, n_columns)
    return problems


def _node_data_problems(where: str, node_data: Any, n_nodes: Any, n_samples: int) -> list[str]:
    names = getattr(getattr(node_data, "dtype", None), "names", None) or ()
    if not (isinstance(node_data, np.ndarray) and node_data.ndim == 1
            and {"idx_start", "idx_end", "is_leaf"} <= set(names)):
        return [f"{where}: node_data is not an array of node records."]
    if not (_is_count(n_nodes) and n_nodes >= 1 and node_data.shape[0] == n_nodes):
        return [f"{where}: n_nodes is {n_nodes!r} but node_data holds {node_data.shape[0]} nodes."]
    problems: list[str] = []
    start, end = node_data["idx_start"], node_data["idx_end"]
    bad = np.flatnonzero((start < 0) | (end > n_samples) | (start > end))
    if bad.size:
        problems.append(f"{where}: nodes cover index ranges outside 0..{n_samples}: "
                        + _examples(bad, lambda i: f"node {i} [{int(start[i])}, {int(end[i])})") + ".")
    # Queries descend from node i to 2i+1 and 2i+2 until a node says it is a leaf.
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    bad = inner[2 * inner + 2 >= n_nodes]
    if bad.size:
        problems.append(f"{where}: inner nodes have children past the {n_nodes} nodes: "
                        + _examples(bad, lambda i: f"node {i}") + ".")
    if "radius" in names and np.isnan(node_data["radius"]).any():
        problems.append(f"{where}: node radii contain NaN.")
    return problems


def _node_bounds_problems(where: str, tree: Any, bounds: Any, n_nodes: Any, n_columns: int) -> list[str]:
    planes = 2 if type(tree).__name__.startswith("KDTree") else 1  # KD: min and max; Ball: centroid
    expected = (planes, n_nodes, n_columns)
    if not (isinstance(bounds, np.ndarray) and bounds.shape == expected):
        return [f"{where}: node_bounds has shape {getattr(bounds, 'shape', None)}, not {expected}."]
    if np.isnan(bounds).any():
        return [f"{where}: node_bounds contain NaN."]
    return []


def _metric_problems(where: str, metric: Any, n_columns: int) -> list[str]:
    """Weighted and Mahalanobis-type metrics index their vectors by column, unchecked."""
    try:
        p, vec, mat = metric.__getstate__()[:3]
    except Exception:  # noqa: BLE001
        return [f"{where}: the tree's distance metric has no readable state."]
    name = type(metric).__name__
    problems: list[str] = []
    if not (isinstance(p, numbers.Real) and np.isfinite(p) and p > 0):
        problems.append(f"{where}: the distance metric's p is {p!r}, not a positive number.")
    vec, mat = np.asarray(vec), np.asarray(mat)
    if name.startswith("Mahalanobis") and mat.shape != (n_columns, n_columns):
        problems.append(f"{where}: the Mahalanobis matrix has shape {mat.shape}, not ({n_columns}, {n_columns}).")
    if name.startswith(("SEuclidean", "Minkowski")) and vec.ndim == 1 and vec.size > 0 and vec.size != n_columns:
        problems.append(f"{where}: the metric's weight vector has {vec.size} entries, not {n_columns}.")
    if np.isnan(vec).any() or np.isnan(mat).any():
        problems.append(f"{where}: the distance metric's parameters contain NaN.")
    return problems


# --- libsvm (OneClassSVM, SVC, SVR, NuSVC, NuSVR) -----------------------------------------------
def _libsvm_problems(est: Any, attrs: dict[str, Any], where: str, n_features_in: int | None) -> list[str]:
    """Shapes libsvm's C code derives its loops from: support, dual coefficients, intercepts."""
    problems: list[str] = []
    support, n_support = _int_array(attrs.get("support_")), _int_array(attrs.get("_n_support"))
    dual, intercept = attrs.get("_dual_coef_"), attrs.get("_intercept_")
    vectors = attrs.get("support_vectors_")
    if support is None or n_support is None or n_support.size < 2:
        return [f"{where}: support_ and _n_support are not integer vectors (with at least 2 classes)."]
    n_sv, n_class = support.shape[0], n_support.shape[0]
    pairs = n_class * (n_class - 1) // 2
    precomputed = attrs.get("kernel") == "precomputed"
    shape_fit = attrs.get("shape_fit_")
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            problems.append(f"{where}: support_vectors_ is not 2-D.")
        elif not precomputed and vectors.shape[0] != n_sv:
            problems.append(f"{where}: support_vectors_ has {vectors.shape[0]} rows but support_ has {n_sv}.")
        elif not precomputed and n_features_in is not None and vectors.shape[1] != n_features_in:
            problems.append(f"{where}: support_vectors_ has {vectors.shape[1]} columns, not n_features_in_ = {n_features_in}.")
    elif getattr(vectors, "shape", None) is not None and vectors.shape[0] != n_sv and not precomputed:
        problems.append(f"{where}: support_vectors_ has {vectors.shape[0]} rows but support_ has {n_sv}.")
    if precomputed and isinstance(shape_fit, tuple) and shape_fit and _is_count(shape_fit[0]) and n_sv:
        if support.min() < 0 or support.max() >= shape_fit[0]:
            problems.append(f"{where}: support_ indexes training rows outside 0..{shape_fit[0] - 1}.")
    if not isinstance(dual, np.ndarray) or dual.shape != (n_class - 1, n_sv):
        problems.append(f"{where}: _dual_coef_ has shape {getattr(dual, 'shape', None)}, not ({n_class - 1}, {n_sv}).")
    if not isinstance(intercept, np.ndarray) or intercept.shape != (pairs,):
        problems.append(f"{where}: _intercept_ has shape {getattr(intercept, 'shape', None)}, not ({pairs},).")
    if getattr(est, "_impl", None) in _LIBSVM_CLASSIFIERS:
        if n_support.min() < 0 or int(n_support.sum()) != n_sv:
            problems.append(f"{where}: _n_support {n_support.tolist()} does not add up to the {n_sv} support vectors.")
    # Platt-scaling parameters: empty, or one per class pair (libsvm copies `pairs` of them).
    platt = attrs.get("_effective_probability", attrs.get("probability")) is True
    for name in ("_probA", "_probB"):
        value = attrs.get(name)
        allowed = [(pairs,)] if platt else [(0,), (pairs,)]
        if name in attrs and getattr(value, "shape", None) not in allowed:
            problems.append(f"{where}: {name} has shape {getattr(value, 'shape', None)}, not "
                            + " or ".join(str(a) for a in allowed) + ".")
    gamma = attrs.get("_gamma")
    if gamma is not None and not (isinstance(gamma, numbers.Real) and np.isfinite(gamma)):
        problems.append(f"{where}: _gamma is {gamma!r}, not a finite number.")
    return problems


# --- NaN in fitted arrays -----------------------------------------------------------------------
def _nan_problems(attrs: dict[str, Any], where: str) -> list[str]:
    found = []
    for name in _NAN_FREE_ATTRIBUTES:
        value = attrs.get(name)
        arrays = value if isinstance(value, (list, tuple)) else (value,)
        for array in arrays:
            array = _float_array(array)
            if array is not None and np.isnan(array).any():
                found.append(name)
                break
    if not found:
        return []
    return [f"{where}: {', '.join(found)} contain NaN, which makes every prediction meaningless."]


# --- what a probe's predictions must look like ----------------------------------------------------
# The one copy of the rules, used by the isolated probe's child and by validation's in-process probe
# (which used to disagree: boolean labels passed in the child and failed in the server).
SCORE_METHODS = ("decision_function", "score_samples")


def has_method(estimator: Any, name: str) -> bool:
    """Whether `estimator.name` is callable; False when asking raises (available_if on a pipeline
    whose step lacks the method raises AttributeError or worse)."""
    try:
        return callable(getattr(estimator, name, None))
    except Exception:  # noqa: BLE001 - the estimator is untrusted
        return False


def scorer_name(estimator: Any) -> str | None:
    """The method that gives anomaly scores: the first of decision_function, score_samples."""
    return next((name for name in SCORE_METHODS if has_method(estimator, name)), None)


def probe_outputs(estimator: Any, rows: np.ndarray,
                  reach: Any = None) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """(labels, scores, scorer) of a probe: predict, then the scorer when there is one. Raises what the
    estimator raises; `reach(stage)` is told before the scores are computed."""
    labels = np.asarray(estimator.predict(rows))
    scorer = scorer_name(estimator)
    if scorer is None:
        return labels, None, None
    if reach is not None:
        reach(f"computing {scorer}")
    return labels, np.asarray(getattr(estimator, scorer)(rows), dtype=float), scorer


def output_problems(labels: np.ndarray, scores: np.ndarray | None, n_rows: int) -> list[str]:
    """What is wrong with a probe's outputs: one label per row, each a finite number or a boolean
    (serving answers booleans as 0/1), and one finite score per row when there are scores."""
    problems = []
    if labels.shape != (n_rows,):
        problems.append(f"predict returned shape {labels.shape}, not ({n_rows},)")
    elif labels.dtype.kind not in "biuf" or not np.all(np.isfinite(labels.astype(float))):
        problems.append("predict returned values that are not finite numbers")
    if scores is not None:
        if scores.shape != (n_rows,):
            problems.append(f"the scores have shape {scores.shape}, not ({n_rows},)")
        elif not np.all(np.isfinite(scores)):
            problems.append("some scores are not finite")
    return problems


def anomaly_share(labels: np.ndarray) -> float | None:
    """The share of rows labelled -1 when the labels are the detectors' -1/1 (numbers, not booleans)."""
    if labels.dtype.kind not in "iuf" or not set(np.unique(labels).tolist()) <= {-1, 1}:
        return None
    return float(np.mean(labels == -1))
