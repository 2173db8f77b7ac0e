"""The trusted scikit-learn scalers of a Pipeline, applied with numpy from their fitted arrays.

Each scaler becomes a `Transform`: a short list of elementwise operations with its fitted
per-feature arrays, which repeat the arithmetic of the scaler's own `transform` on a dense float64
array, operation for operation and in the same order (read in scikit-learn 1.9's
`sklearn/preprocessing/_data.py`), so the result is bit for bit what scikit-learn returns:

    StandardScaler   X - mean_ (if with_mean); / scale_ (if with_std)
    MinMaxScaler     X * scale_; + min_; clip to feature_range (if clip)
    RobustScaler     X - center_ (if with_centering); / scale_ (if with_scaling)
    MaxAbsScaler     X / scale_; clip to [-1, 1] (if clip)

(scikit-learn works in place on a copy; a new array per operation gives the same values.) Only
these exact classes are taken (a subclass may override `transform`); anything else makes the
model ineligible for the fast scorer, and it keeps scikit-learn's path. A Transform is plain
data (operation names and arrays), so the scorer can be saved and loaded without scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["OPERATIONS", "Transform", "transform_for"]

# name -> (X, operand) -> new X. "clip" takes an operand of two values (low, high).
OPERATIONS = {
    "sub": lambda X, v: X - v,
    "div": lambda X, v: X / v,
    "mul": lambda X, v: X * v,
    "add": lambda X, v: X + v,
    "clip": lambda X, v: np.clip(X, v[0], v[1]),
}


@dataclass(frozen=True)
class Transform:
    """One scaler as its operations, in order: ((name, float64 operand), ...)."""

    kind: str
    steps: tuple[tuple[str, np.ndarray], ...]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        for name, operand in self.steps:
            X = OPERATIONS[name](X, operand)
        return X


def _vector(values: Any, n_features: int) -> np.ndarray:
    """A fitted per-feature array as float64 of length n_features, or ValueError."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.shape != (n_features,):
        raise ValueError("not a per-feature numeric array")
    return np.ascontiguousarray(array, dtype=np.float64)


def _bounds(low: Any, high: Any) -> np.ndarray:
    return np.array([float(low), float(high)], dtype=np.float64)


def _standard(step: Any, n: int) -> list[tuple[str, np.ndarray]]:
    steps = []
    if step.with_mean:
        steps.append(("sub", _vector(step.mean_, n)))
    if step.with_std:
        steps.append(("div", _vector(step.scale_, n)))
    return steps


def _minmax(step: Any, n: int) -> list[tuple[str, np.ndarray]]:
    steps = [("mul", _vector(step.scale_, n)), ("add", _vector(step.min_, n))]
    if getattr(step, "clip", False):
        steps.append(("clip", _bounds(*step.feature_range)))
    return steps


def _robust(step: Any, n: int) -> list[tuple[str, np.ndarray]]:
    steps = []
    if step.with_centering:
        steps.append(("sub", _vector(step.center_, n)))
    if step.with_scaling:
        steps.append(("div", _vector(step.scale_, n)))
    return steps


def _maxabs(step: Any, n: int) -> list[tuple[str, np.ndarray]]:
    steps = [("div", _vector(step.scale_, n))]
    if getattr(step, "clip", False):
        steps.append(("clip", _bounds(-1.0, 1.0)))
    return steps


def transform_for(step: Any, n_features: int) -> Transform | None:
    """The numpy twin of a fitted trusted scaler taking n_features columns, or None."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    builders = {StandardScaler: _standard, MinMaxScaler: _minmax, RobustScaler: _robust, MaxAbsScaler: _maxabs}
    builder = builders.get(type(step))
    if builder is None or getattr(step, "n_features_in_", None) != n_features:
        return None
    try:
        return Transform(kind=type(step).__name__, steps=tuple(builder(step, n_features)))
    except (AttributeError, TypeError, ValueError):  # a scaler whose fitted state is not the usual one
        return None
