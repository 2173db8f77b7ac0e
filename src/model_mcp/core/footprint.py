"""How much memory a fitted estimator holds, estimated from its numpy arrays.

The contract's `max_memory_mb` (deployment_manifest.json) bounds the loaded model's resident size,
and `performance_report` shows it. Measuring the process RSS before and after a load is noisy
(allocator caches, other threads), so we estimate instead: a fitted scikit-learn model is
almost all numpy arrays (tree nodes, support vectors, the training set of a LOF), reachable from
the estimator through attributes, lists, tuples and dicts. Walking that graph and adding up each
array once gives a figure within a few percent of the true size for the models this server
serves, in milliseconds, with nothing executed but `__getstate__` of scikit-learn's own
extension types.

What the walk follows:
- `__dict__` of ordinary objects (estimators, Pipelines and their steps, ensembles' `estimators_`);
- lists, tuples, sets, dicts, and numpy object arrays (their elements);
- scikit-learn's Cython types that have no `__dict__` (`sklearn.tree._tree.Tree`, `KDTree`,
  `BallTree`, distance metrics), through their `__getstate__()`: a Tree's `nodes` and `values`
  arrays, a KDTree's data, index and node arrays.

Each array is counted once (by identity, and a view counts its base array instead of itself).
Every other object adds `sys.getsizeof` (its "small per-object overhead"). Classes, modules and
functions are not followed: they belong to the program, not to the model. The walk is iterative
with a depth limit and a node budget, so a deep or cyclic graph cannot exhaust the stack or hang.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np

#: How deep the walk follows references from the estimator. Real models are < 15 deep.
MAX_DEPTH = 64
#: How many objects the walk visits at most; beyond it, the estimate is a lower bound.
MAX_OBJECTS = 2_000_000
#: Added for an object whose size `sys.getsizeof` cannot tell.
DEFAULT_OBJECT_BYTES = 64

# Program objects, not model state: never followed, never counted.
_SKIPPED_TYPES: tuple[type, ...] = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.CodeType,
)
_SCALAR_TYPES: tuple[type, ...] = (int, float, complex, bool, str, bytes, bytearray, type(None), np.generic)


def estimate_memory_bytes(obj: Any) -> int:
    """Resident size of a fitted estimator in bytes, estimated from the arrays it holds.

    Counts each numpy array's buffer once, plus `sys.getsizeof` of every other object reached
    (see the module docstring for what is followed). Never raises for an odd attribute: an
    object that cannot be inspected counts as `DEFAULT_OBJECT_BYTES`.
    """
    total = 0
    seen: set[int] = set()
    # Temporaries (arrays made by `__getstate__`) stay referenced here until the walk ends, so
    # that a freed object's id cannot be reused by a later one and wrongly count as seen.
    keep_alive: list[Any] = []
    stack: list[tuple[Any, int]] = [(obj, 0)]
    visited = 0
    while stack and visited < MAX_OBJECTS:
        item, depth = stack.pop()
        if id(item) in seen or isinstance(item, _SKIPPED_TYPES):
            continue
        seen.add(id(item))
        keep_alive.append(item)
        visited += 1
        total += _own_bytes(item)
        if depth < MAX_DEPTH:
            stack.extend((child, depth + 1) for child in _children(item))
    return total


def _own_bytes(item: Any) -> int:
    """Bytes an object holds itself, not counting what it refers to."""
    if isinstance(item, np.ndarray):
        # A view of another array owns no buffer: the base array is counted when it is walked.
        # An array over a foreign buffer (a Tree's nodes, a memory map) counts its own bytes.
        return 0 if isinstance(item.base, np.ndarray) else item.nbytes
    try:
        return int(sys.getsizeof(item))
    except TypeError:
        return DEFAULT_OBJECT_BYTES


def _children(item: Any) -> list[Any]:
    """The objects `item` refers to that may hold model state."""
    if isinstance(item, np.ndarray):
        if isinstance(item.base, np.ndarray):
            return [item.base]
        return item.ravel().tolist() if item.dtype == object else []
    if isinstance(item, _SCALAR_TYPES):
        return []
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, (list, tuple, set, frozenset)):
        return list(item)
    state = getattr(item, "__dict__", None)
    if isinstance(state, dict):
        return [state]
    if type(item).__module__.startswith("sklearn."):
        return _extension_state(item)
    return []


def _extension_state(item: Any) -> list[Any]:
    """The state of a scikit-learn Cython object (Tree, KDTree, BallTree, a distance metric).

    These keep their arrays in C buffers without a `__dict__`; `__getstate__` hands them out as
    numpy arrays (a Tree's `nodes` and `values` wrap its own buffers without copying).
    """
    try:
        state = item.__getstate__()
    except Exception:  # an extension type without usable state: count it as one object
        return []
    return [state] if state is not None else []
