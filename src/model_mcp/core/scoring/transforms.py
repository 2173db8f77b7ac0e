"""The trusted scikit-learn scalers of a Pipeline, applied with numpy from their fitted arrays.

Each function repeats the arithmetic of the scaler's own `transform` on a dense float64 array,
operation for operation and in the same order (read in scikit-learn 1.9's
`sklearn/preprocessing/_data.py`), so the result is bit for bit what scikit-learn returns:

    StandardScaler   X -= mean_ (if with_mean); X /= scale_ (if with_std)
    MinMaxScaler     X *= scale_; X += min_; clip to feature_range (if clip)
    RobustScaler     X -= center_ (if with_centering); X /= scale_ (if with_scaling)
    MaxAbsScaler     X /= scale_; clip to [-1, 1] (if clip)

Only these exact classes are taken (a subclass may override `transform`); anything else makes
the model ineligible for the fast scorer, and it keeps scikit-learn's path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Transform", "transform_for"]

Transform = Callable[[np.ndarray], np.ndarray]


def _vector(values: Any, n_features: int) -> np.ndarray | None:
    """A fitted per-feature array as float64 of length n_features, or None when it is not one."""
    if values is None:
        return None
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.shape != (n_features,):
        return None
    return np.ascontiguousarray(array, dtype=np.float64)


def _standard(step: Any, n: int) -> Transform | None:
    mean = _vector(step.mean_, n) if step.with_mean else None
    scale = _vector(step.scale_, n) if step.with_std else None
    if (step.with_mean and mean is None) or (step.with_std and scale is None):
        return None

    def apply(X: np.ndarray) -> np.ndarray:
        X = X.copy()
        if mean is not None:
            X -= mean
        if scale is not None:
            X /= scale
        return X

    return apply


def _minmax(step: Any, n: int) -> Transform | None:
    scale, shift = _vector(step.scale_, n), _vector(step.min_, n)
    if scale is None or shift is None:
        return None
    low, high = (float(v) for v in step.feature_range)
    clip = bool(getattr(step, "clip", False))

    def apply(X: np.ndarray) -> np.ndarray:
        X = X * scale
        X += shift
        if clip:
            np.clip(X, low, high, out=X)
        return X

    return apply


def _robust(step: Any, n: int) -> Transform | None:
    center = _vector(step.center_, n) if step.with_centering else None
    scale = _vector(step.scale_, n) if step.with_scaling else None
    if (step.with_centering and center is None) or (step.with_scaling and scale is None):
        return None

    def apply(X: np.ndarray) -> np.ndarray:
        X = X.copy()
        if center is not None:
            X -= center
        if scale is not None:
            X /= scale
        return X

    return apply


def _maxabs(step: Any, n: int) -> Transform | None:
    scale = _vector(step.scale_, n)
    if scale is None:
        return None
    clip = bool(getattr(step, "clip", False))

    def apply(X: np.ndarray) -> np.ndarray:
        X = X / scale
        if clip:
            np.clip(X, -1.0, 1.0, out=X)
        return X

    return apply


def transform_for(step: Any, n_features: int) -> Transform | None:
    """The numpy twin of a fitted trusted scaler taking n_features columns, or None."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    builders = {StandardScaler: _standard, MinMaxScaler: _minmax, RobustScaler: _robust, MaxAbsScaler: _maxabs}
    builder = builders.get(type(step))
    if builder is None or getattr(step, "n_features_in_", None) != n_features:
        return None
    try:
        return builder(step, n_features)
    except (AttributeError, TypeError, ValueError):  # a scaler whose fitted state is not the usual one
        return None
