"""An IsolationForest packed into flat arrays and scored with numpy, every tree at once.

Exactness first. scikit-learn's `IsolationForest.decision_function` (1.9, `ensemble/_iforest.py`):

    X32 = X as float32                                  (validate_data(dtype=np.float32))
    for each tree t, in order:                          (_compute_score_samples, joblib sequential)
        leaf = tree_t.apply(X32[:, features_t])         (go left while x <= threshold, x float32
                                                         widened to float64, threshold float64)
        depths += (decision_path_lengths_t[leaf] + average_path_length_t[leaf]) - 1.0
    scores = 2 ** -(depths / (n_trees * c(max_samples)))   (1 where the denominator is 0)
    decision = -scores - offset_

This module does the same arithmetic on the same values:
- X is rounded to float32 exactly as numpy's astype does (what check_array calls); values beyond
  float32's range become +-inf there too.
- Each threshold t (float64) is replaced by the largest float32 `a <= t`. For a float32 x,
  `x > t` holds exactly when `x > a` (no float32 lies in (a, t]), so comparing in float32 takes
  the same branch as scikit-learn's float64 comparison, at half the memory traffic.
- The per-leaf term `(depth + c(n_leaf)) - 1.0` is computed once per leaf with the same float64
  operations, from the estimator's own arrays.
- The per-row sum runs over the trees in the forest's order, left to right, as `depths +=` does
  (`_tree_sums`: a plain `np.sum` along the fast axis would pair terms and could differ in the
  last bits). The final division, power and offset use the same numpy
  operations as scikit-learn, so the scores are bit for bit equal (tests check <= 1e-12 and find 0).

Speed: all trees walk together, one level per step, for all rows, as (trees x rows) arrays of
node indices, and each row's per-tree terms are then summed along the tree axis. Two layouts:

- The heap (`_Heap`, for forests where `n_trees * 2**depth <= HEAP_MAX_CELLS`): the whole forest as
  one implicit binary heap. Tree t's root sits at slot n_trees + t and the children of slot g at 2g
  and 2g + 1, so the next node is `2g + (x > threshold)`: no child index is read. A leaf above the
  bottom level gets an infinite threshold at its slot and below it (so a row goes left, down to the
  leftmost bottom slot under it, where the leaf's term is kept). Per level: two gathers from the
  node arrays, one from the rows, and four elementwise operations; the roots' level reads the
  rows' columns directly. Measured 30 % faster than the dense layout at 100 rows (100 trees).
- The dense layout, for larger forests: nodes renumbered so that the two children of a node are
  adjacent (`first_child`, `first_child + 1`); a leaf points to itself with an infinite threshold.
  From PACKED_MIN_ROWS rows each node is read as one int64 packing an order-preserving integer key
  of its float32 threshold, its first child and its feature, and the branch is taken by integer
  arithmetic (`_packed_table`): the same comparisons, one gather per level instead of three.

The sum over the trees is `np.add.reduce` along axis 0 of the (trees x rows) terms: along an axis
that is not the fast one in memory numpy adds each tree's row of terms to the running sums in
order (no pairwise summation; that is used only along the fast axis), which is `depths +=` tree
after tree; a single row, where the tree axis would be the fast one, is summed by `np.cumsum`.
For large batches scikit-learn's compiled per-tree walk (`Tree.apply`) may be faster;
`apply_depths` runs it with the same per-row summation and no joblib dispatch, and
`FastForest.crossover_rows` says where the walk hands over.

NaN never reaches here: predict refuses it before scoring; a Pipeline's scalers cannot make one
from finite input, and if they did the caller would take scikit-learn's path, which routes
missing values by each node's `missing_go_to_left`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FastForest", "average_path_length", "pack_isolation_forest"]

# Batches above this many rows are scored with scikit-learn's compiled per-tree walk instead of
# the dense numpy walk: measured on a 2-core machine (100-tree forest, 8 features), the dense walk
# is about 2x faster at 100 rows and 1.2x slower at 1,000 rows. The crossover hardly depends on the
# number of trees (both walks cost the same per tree) and little on the depth. The heap walk has no
# crossover: measured faster than the compiled walk from 1 to 10,000 rows (the default row limit)
# for forests of 20 to 200 trees of depth 6 to 10, and its cost per row is flat beyond (chunks).
DEFAULT_CROSSOVER_ROWS = 512

# Cells (trees x rows) per chunk of the numpy walk: keeps the index arrays within the caches; but
# at least _MIN_CHUNK_ROWS rows, or the per-level numpy calls of many small chunks cost more (1,000
# trees: 16 rows a chunk walked 1.3x slower than 64).
_CHUNK_CELLS = 1 << 14
_MIN_CHUNK_ROWS = 64


def _chunk_rows(n_trees: int) -> int:
    return max(_MIN_CHUNK_ROWS, _CHUNK_CELLS // max(1, n_trees))

# Forests with at most this many bottom cells (n_trees * 2**depth) walk the heap layout (`_Heap`):
# 20 bytes a cell, so at most 5 MB beside the model (a 100-tree forest of depth 8: 0.5 MB).
# Larger ones (deep trees: max_samples in the thousands) keep the dense layout, which grows
# with the nodes that exist rather than with 2**depth.
HEAP_MAX_CELLS = 1 << 18

# From this many rows the dense walk reads each node as one packed int64 (`_packed_table`): one
# gather per level instead of three, measured 8-19 % faster from 50 to 400 rows (even at 600);
# below, the extra integer operations cost more than the gathers they save.
PACKED_MIN_ROWS = 32
_LOW31 = (1 << 31) - 1


def _tree_sums(terms: np.ndarray) -> np.ndarray:
    """Per-row sums of (trees x rows) terms, tree after tree in order (see the module docstring).

    `np.add.reduce` along axis 0 adds row after row of a C-contiguous array; with one row the
    tree axis becomes the fast one, where numpy would sum pairwise, so that case uses cumsum."""
    if terms.shape[1] == 1:
        return np.cumsum(terms[:, 0])[-1:]
    return np.add.reduce(np.ascontiguousarray(terms), axis=0)


def _order_keys(values32: np.ndarray) -> np.ndarray:
    """int64 keys in [0, 2**32) ordered as the float32 values (NaN excepted): key(a) > key(b)
    exactly when a > b. -0.0 is first made +0.0 (adding +0.0 does it), as they compare equal."""
    bits = (values32 + np.float32(0.0)).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, bits ^ 0x7FFFFFFF) + (1 << 31)


def average_path_length(n_samples_leaf: np.ndarray) -> np.ndarray:
    """scikit-learn's `_average_path_length` (c(n) of the paper), the same numpy operations.

    0 for n <= 1, 1 for n == 2, else 2 (ln(n - 1) + gamma) - 2 (n - 1) / n.
    """
    n = np.asarray(n_samples_leaf)
    shape = n.shape
    n = n.reshape((1, -1))
    result = np.zeros(n.shape)
    mask_1 = n <= 1
    mask_2 = n == 2
    not_mask = ~np.logical_or(mask_1, mask_2)
    result[mask_1] = 0.0
    result[mask_2] = 1.0
    result[not_mask] = 2.0 * (np.log(n[not_mask] - 1.0) + np.euler_gamma) - 2.0 * (n[not_mask] - 1.0) / n[not_mask]
    return result.reshape(shape)


def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Depth of every node, the root at 1 (scikit-learn's `Tree.compute_node_depths`)."""
    depths = np.zeros(left.shape[0], dtype=np.int64)
    depths[0] = 1
    frontier = np.array([0])
    while frontier.size:
        internal = frontier[left[frontier] != -1]
        children = np.concatenate([left[internal], right[internal]])
        depths[children] = depths[np.concatenate([internal, internal])] + 1
        frontier = children
    return depths


def _float32_at_most(thresholds: np.ndarray) -> np.ndarray:
    """For each float64 threshold t, the largest float32 a with a <= t."""
    with np.errstate(over="ignore"):
        rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


@dataclass(frozen=True)
class _Tree:
    """One tree's node arrays as scikit-learn keeps them, plus its per-node score term."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray  # global column indices (the tree's feature subset already mapped)
    threshold: np.ndarray
    term: np.ndarray  # (depth + c(n_node_samples)) - 1.0, float64
    features: np.ndarray | None  # the columns the tree sees, None when all in order
    tree: Any  # scikit-learn's Tree, for the compiled walk of large batches


@dataclass(frozen=True)
class _Heap:
    """The forest as one implicit binary heap (see the module docstring).

    Slots: tree t's root at n_trees + t; the children of slot g at 2g and 2g + 1; the bottom
    level (depth `depth` below the roots) at [bottom, 2 * bottom), bottom = n_trees * 2**depth.
    `feature` and `threshold32` cover the slots above the bottom (index < bottom); slots that hold
    no internal node (a leaf above the bottom, or below one) have threshold +inf, so a row goes
    left there, and feature 0. `term[b - bottom]` is the term of the leaf whose leftmost bottom
    slot is b (0 elsewhere; never reached)."""

    depth: int
    bottom: int
    roots: np.ndarray  # (n_trees,) intp: n_trees .. 2 n_trees - 1
    root_feature: np.ndarray  # (n_trees,) intp
    root_threshold: np.ndarray  # (n_trees, 1) float32
    feature: np.ndarray  # (bottom,) intp
    threshold32: np.ndarray  # (bottom,) float32
    term: np.ndarray  # (bottom,) float64


def _heap_layout(forest: FastForest) -> _Heap | None:
    """The heap of a forest's dense arrays, or None when it would exceed HEAP_MAX_CELLS or an
    array is not as the dense layout promises (a damaged saved scorer: the dense walk then runs)."""
    n_trees, depth = forest.n_trees, forest.depth
    if n_trees < 1 or depth < 0 or depth > 40 or n_trees << depth > forest.heap_max_cells:
        return None
    first_child, n_nodes = forest.first_child, forest.n_nodes
    slot = np.full(n_nodes, -1, dtype=np.intp)
    level = np.zeros(n_nodes, dtype=np.intp)
    frontier = np.asarray(forest.roots, dtype=np.intp)
    slot[frontier] = n_trees + np.arange(n_trees, dtype=np.intp)
    for k in range(depth + 1):
        internal = frontier[first_child[frontier] != frontier]
        if k == depth:
            if internal.size:
                return None  # a node below the depth the walk goes: not a forest this layout can hold
            break
        left = first_child[internal]
        if (left + 1 >= n_nodes).any() or (slot[left] != -1).any() or (slot[left + 1] != -1).any():
            return None  # children out of range or reached twice: not a tree
        slot[left], slot[left + 1] = 2 * slot[internal], 2 * slot[internal] + 1
        level[left] = level[left + 1] = k + 1
        frontier = np.concatenate([left, left + 1])
    if (slot < 0).any():
        return None  # a node no root reaches
    bottom = n_trees << depth
    is_leaf = first_child == np.arange(n_nodes)
    feature = np.zeros(bottom, dtype=np.intp)
    threshold = np.full(bottom, np.inf, dtype=np.float32)
    feature[slot[~is_leaf]] = forest.feature[~is_leaf]
    threshold[slot[~is_leaf]] = forest.threshold32[~is_leaf]
    term = np.zeros(bottom, dtype=np.float64)
    term[(slot[is_leaf] << (depth - level[is_leaf])) - bottom] = forest.term[is_leaf]
    roots = np.arange(n_trees, 2 * n_trees, dtype=np.intp)
    above = roots if depth else np.zeros(0, dtype=np.intp)  # with depth 0 the roots are the bottom
    return _Heap(depth=depth, bottom=bottom, roots=roots, root_feature=feature[above],
                 root_threshold=threshold[above][:, None], feature=feature, threshold32=threshold, term=term)


@dataclass
class FastForest:
    """The packed forest: flat node arrays of all trees and the constants of the final score."""

    n_features: int
    n_trees: int
    depth: int  # levels to walk: the deepest leaf's depth - 1
    roots: np.ndarray  # (n_trees,) intp: each tree's root in the flat arrays
    feature: np.ndarray  # (n_nodes,) intp: the column a node tests (0 for leaves)
    threshold32: np.ndarray  # (n_nodes,) float32: go to the second child when x > it; +inf at leaves
    first_child: np.ndarray  # (n_nodes,) intp: the first child; a leaf's own index
    term: np.ndarray  # (n_nodes,) float64: the per-tree depth term of a leaf
    denominator: np.ndarray  # (1,) float64: n_trees * c(max_samples), as scikit-learn computes it
    offset: float
    trees: tuple[_Tree, ...]
    # Batches above this many rows take scikit-learn's compiled walk; None: the numpy walk scores
    # every batch (the heap layout; a saved scorer, which has no compiled trees).
    crossover_rows: int | None = DEFAULT_CROSSOVER_ROWS
    heap_max_cells: int = HEAP_MAX_CELLS
    # (table, feature bits) of the packed dense walk once built, False when the forest does not fit it.
    packed: Any = field(default=None, init=False, repr=False)
    # The heap layout once built (`_Heap`), False when the forest is too large for it.
    heap: Any = field(default=None, init=False, repr=False)

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    @property
    def layout(self) -> str:
        """The numpy walk's layout: `heap` or `dense` (see the module docstring)."""
        return "heap" if self._heap() is not None else "dense"

    def _heap(self) -> _Heap | None:
        if self.heap is None:
            self.heap = _heap_layout(self) or False
        return self.heap or None

    def decision_function(self, X: np.ndarray, *, in_float32_range: bool = False) -> np.ndarray:
        """IsolationForest.decision_function of the float64 rows X (n, n_features), exactly.

        `in_float32_range`: the caller checked |X| <= float32's largest value, so the cast cannot
        overflow and needs no warning filter (the values are the same either way).
        """
        if in_float32_range:
            X32 = np.ascontiguousarray(X, dtype=np.float32)
        else:
            with np.errstate(over="ignore"):
                X32 = np.ascontiguousarray(X, dtype=np.float32)
        if self.crossover_rows is not None and X32.shape[0] > self.crossover_rows:
            depths = self.apply_depths(X32)
        else:
            depths = self.walk_depths(X32)
        return self._finish(depths)

    def _finish(self, depths: np.ndarray) -> np.ndarray:
        # scikit-learn: 2 ** -np.divide(depths, denominator, out=ones, where=denominator != 0); the
        # same values without the masked call when the denominator is not 0 (it is 0 only for
        # forests fitted on a single sample).
        denominator = self.denominator
        ratio = depths / denominator if denominator[0] != 0 else np.ones_like(depths)
        scores = 2 ** (-ratio)
        return -scores - self.offset

    def walk_depths(self, X32: np.ndarray) -> np.ndarray:
        """Summed per-tree depth terms by the level-synchronous numpy walk of all trees."""
        n = X32.shape[0]
        heap = self._heap()
        if n == 1:  # the most common call: no row offsets, no chunks
            x = X32.ravel()
            if heap is not None:
                node = heap.roots
                feature, threshold = heap.feature, heap.threshold32
                for _ in range(heap.depth):
                    go = x.take(feature.take(node)) > threshold.take(node)
                    node = node + node
                    node += go
                return np.cumsum(heap.term.take(node - heap.bottom))[-1:]
            node = self.roots
            feature, threshold, first_child = self.feature, self.threshold32, self.first_child
            for _ in range(self.depth):
                node = first_child.take(node) + (x.take(feature.take(node)) > threshold.take(node))
            return np.cumsum(self.term.take(node))[-1:]
        chunk = _chunk_rows(self.n_trees)
        if n <= chunk:
            return self._walk_chunk(X32, heap)
        return np.concatenate([self._walk_chunk(X32[i : i + chunk], heap) for i in range(0, n, chunk)])

    def _walk_chunk(self, X32: np.ndarray, heap: _Heap | None) -> np.ndarray:
        if heap is not None:
            return self._walk_chunk_heap(X32, heap)
        packed = self._packed_table() if X32.shape[0] >= PACKED_MIN_ROWS else None
        if packed is not None:
            return self._walk_chunk_packed(X32, *packed)
        return self._walk_chunk_plain(X32)

    def _row_starts(self, n: int, d: int) -> np.ndarray:
        """Each cell's offset of its row in the flattened rows, as the (trees x rows) cells lie:
        a full array, since adding a broadcast operand costs numpy twice a full one."""
        starts = np.empty((self.n_trees, n), dtype=np.intp)
        starts[...] = np.arange(0, n * d, d, dtype=np.intp)
        return starts

    def _walk_chunk_heap(self, X32: np.ndarray, heap: _Heap) -> np.ndarray:
        n, d = X32.shape
        if heap.depth == 0:  # every tree a single leaf
            return _tree_sums(np.repeat(heap.term.take(heap.roots - heap.bottom)[:, None], n, axis=1))
        # The roots' level from the rows' columns: (trees x rows) without row offsets.
        go = X32.T.take(heap.root_feature, axis=0) > heap.root_threshold
        node = np.repeat((2 * heap.roots)[:, None], n, axis=1)
        node += go
        flat = X32.ravel()
        row_start = self._row_starts(n, d)
        feature, threshold = heap.feature, heap.threshold32
        for _ in range(heap.depth - 1):
            where = feature.take(node)
            where += row_start
            go = flat.take(where) > threshold.take(node)
            node += node
            node += go
        node -= heap.bottom
        return _tree_sums(heap.term.take(node))

    def _packed_table(self) -> tuple[np.ndarray, int] | None:
        """Each node as one int64: key(threshold) << 31 | first_child << fbits | feature.

        With x's key K_x << 31 beside it, `(node - x) >> 63` is -1 exactly when K_x > K_t, that
        is when x > threshold (the low 31 bits are below one step of the key), so the next node is
        `first_child - ((node - x) >> 63)`: the same branch as the float32 comparison, in integers.
        None when the indices do not fit 31 bits, a threshold is NaN (a damaged saved scorer; the
        plain walk then compares as before) or numpy's index type is not int64."""
        if self.packed is None:
            fbits = max(1, (self.n_features - 1).bit_length())
            fits = (np.dtype(np.intp) == np.dtype(np.int64) and fbits < 31
                    and self.n_nodes <= 1 << (31 - fbits) and not np.isnan(self.threshold32).any())
            if not fits:
                self.packed = False
            else:
                table = (_order_keys(self.threshold32) << 31) | (self.first_child.astype(np.int64) << fbits) \
                    | self.feature.astype(np.int64)
                self.packed = (table, fbits)
        return self.packed or None

    def _walk_chunk_packed(self, X32: np.ndarray, table: np.ndarray, fbits: int) -> np.ndarray:
        n, d = X32.shape
        x_keys = (_order_keys(X32) << 31).ravel()
        row_start = self._row_starts(n, d)
        fmask = (1 << fbits) - 1
        node = np.repeat(self.roots[:, None], n, axis=1)
        for _ in range(self.depth):
            p = table.take(node)
            x = x_keys.take((p & fmask) + row_start)
            node = ((p & _LOW31) >> fbits) - ((p - x) >> 63)
        return _tree_sums(self.term.take(node))

    def _walk_chunk_plain(self, X32: np.ndarray) -> np.ndarray:
        n, d = X32.shape
        flat = X32.ravel()
        row_start = self._row_starts(n, d)
        node = np.repeat(self.roots[:, None], n, axis=1)
        where = np.empty_like(node)
        feature, threshold, first_child = self.feature, self.threshold32, self.first_child
        for _ in range(self.depth):
            np.add(feature.take(node), row_start, out=where)
            go_second = flat.take(where) > threshold.take(node)
            np.add(first_child.take(node), go_second, out=node)
        return _tree_sums(self.term.take(node))

    def apply_depths(self, X32: np.ndarray) -> np.ndarray:
        """Summed per-tree depth terms by scikit-learn's compiled walk, one tree after another."""
        depths = np.zeros(X32.shape[0])
        for tree in self.trees:
            X_tree = X32 if tree.features is None else np.ascontiguousarray(X32[:, tree.features])
            leaves = tree.tree.apply(X_tree)
            depths += tree.term[leaves]
        return depths


def _tree_parts(estimator: Any, index: int, n_features: int, subsample: bool) -> _Tree | None:
    from sklearn.tree import ExtraTreeRegressor
    from sklearn.tree._tree import Tree

    member = estimator.estimators_[index]
    if type(member) is not ExtraTreeRegressor or type(getattr(member, "tree_", None)) is not Tree:
        return None
    tree = member.tree_
    if tree.n_outputs != 1 or tree.node_count < 1:
        return None
    left = np.asarray(tree.children_left, dtype=np.intp)
    right = np.asarray(tree.children_right, dtype=np.intp)
    feature = np.asarray(tree.feature, dtype=np.intp)
    threshold = np.asarray(tree.threshold, dtype=np.float64)
    n_node_samples = np.asarray(tree.n_node_samples)
    n_nodes = left.shape[0]
    internal = left != -1
    if (
        not np.array_equal(right != -1, internal)
        or (internal & ((left <= 0) | (left >= n_nodes) | (right <= 0) | (right >= n_nodes))).any()
    ):
        return None
    features: np.ndarray | None = None
    if subsample:
        features = np.asarray(estimator.estimators_features_[index], dtype=np.intp)
        if features.ndim != 1 or features.size == 0 or (features < 0).any() or (features >= n_features).any():
            return None
    local = feature[internal]
    width = n_features if features is None else features.shape[0]
    if (local < 0).any() or (local >= width).any():
        return None
    mapped = np.zeros(n_nodes, dtype=np.intp)
    mapped[internal] = local if features is None else features[local]

    # The estimator keeps the arrays its own decision_function reads; they must be these trees'.
    depths = _node_depths(left, right)
    path_lengths = average_path_length(n_node_samples)
    stored = getattr(estimator, "_decision_path_lengths", None)
    stored_c = getattr(estimator, "_average_path_length_per_tree", None)
    if stored is not None and stored_c is not None:
        if not (np.array_equal(np.asarray(stored[index]), depths)
                and np.array_equal(np.asarray(stored_c[index]), path_lengths)):
            return None
    term = depths + path_lengths - 1.0
    return _Tree(left=left, right=right, feature=mapped, threshold=threshold, term=term, features=features,
                 tree=tree)


def pack_isolation_forest(estimator: Any, n_features: int) -> FastForest | None:
    """The FastForest of a fitted scikit-learn IsolationForest (exactly that class), or None.

    None when anything is not as scikit-learn's own fit leaves it (another tree class, arrays of
    the wrong shape, stored path lengths that disagree with the trees): such a model keeps
    scikit-learn's path.
    """
    from sklearn.ensemble import IsolationForest

    if type(estimator) is not IsolationForest or getattr(estimator, "n_features_in_", None) != n_features:
        return None
    members = getattr(estimator, "estimators_", None)
    if not members:
        return None
    max_features = getattr(estimator, "_max_features", n_features)
    subsample = max_features != n_features
    trees = []
    for index in range(len(members)):
        parts = _tree_parts(estimator, index, n_features, subsample)
        if parts is None:
            return None
        trees.append(parts)

    # Renumber each tree's nodes so that the children of a node sit side by side, then lay the
    # trees one after another: the k-th internal node's children get slots 1 + 2k and 2 + 2k.
    features_flat, thresholds_flat, children_flat, terms_flat, roots = [], [], [], [], []
    offset = 0
    max_depth = 1
    for tree in trees:
        n_nodes = tree.left.shape[0]
        internal = tree.left != -1
        rank = np.cumsum(internal) - 1
        new_id = np.zeros(n_nodes, dtype=np.intp)
        new_id[tree.left[internal]] = 1 + 2 * rank[internal]
        new_id[tree.right[internal]] = 2 + 2 * rank[internal]
        if sorted(new_id.tolist()) != list(range(n_nodes)):
            return None  # not a binary tree reaching every node once
        feature = np.zeros(n_nodes, dtype=np.intp)
        threshold = np.full(n_nodes, np.inf)
        first_child = np.empty(n_nodes, dtype=np.intp)
        term = np.empty(n_nodes)
        feature[new_id] = tree.feature
        threshold[new_id[internal]] = tree.threshold[internal]
        first_child[new_id] = new_id + offset
        first_child[new_id[internal]] = 1 + 2 * rank[internal] + offset
        term[new_id] = tree.term
        features_flat.append(feature)
        thresholds_flat.append(threshold)
        children_flat.append(first_child)
        terms_flat.append(term)
        roots.append(offset)
        offset += n_nodes
        max_depth = max(max_depth, int(_node_depths(tree.left, tree.right).max()))

    max_samples = getattr(estimator, "_max_samples", None)
    if max_samples is None:
        return None
    denominator = len(members) * average_path_length([max_samples])
    forest = FastForest(
        n_features=n_features,
        n_trees=len(trees),
        depth=max_depth - 1,
        roots=np.asarray(roots, dtype=np.intp),
        feature=np.concatenate(features_flat),
        threshold32=_float32_at_most(np.concatenate(thresholds_flat)),
        first_child=np.concatenate(children_flat),
        term=np.concatenate(terms_flat),
        denominator=np.asarray(denominator, dtype=np.float64),
        offset=float(estimator.offset_),
        trees=tuple(trees),
    )
    if forest._heap() is not None:  # built here, at deploy, rather than by the first predict
        forest.crossover_rows = None
    return forest
