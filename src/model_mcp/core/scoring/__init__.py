"""The fast tree scorer, beside scikit-learn's path, chosen per model when it is deployed.

`build_fast_scorer(estimator, n_features)` answers a `FastScorer` for an IsolationForest alone
or ending a Pipeline whose earlier steps are trusted scalers (`transforms.py`), built from the
loaded estimator's own fitted arrays: nothing is generated from package content and nothing new
is unpickled. Every other estimator gets None and keeps scikit-learn's path.

The scorer's scores equal the estimator's `decision_function` bit for bit (see `forest.py` for
why), so labels thresholded at 0 equal its `predict`. Batches go through the numpy walk of all
trees at once; with the dense layout (very large forests), batches above `crossover_rows` rows go
through scikit-learn's compiled per-tree walk with the same summation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from model_mcp.core.scoring.forest import DEFAULT_CROSSOVER_ROWS, FastForest, pack_isolation_forest
from model_mcp.core.scoring.transforms import Transform, transform_for

__all__ = ["DEFAULT_CROSSOVER_ROWS", "FAST_PATH", "SKLEARN_PATH", "FastScorer", "SavedScorerModel", "build_fast_scorer"]

FAST_PATH = "fast_tree"
SKLEARN_PATH = "sklearn"


@dataclass
class FastScorer:
    """Scalers then a packed IsolationForest: decision_function without scikit-learn's dispatch."""

    transforms: tuple[Transform, ...]
    forest: FastForest

    @property
    def crossover_rows(self) -> int | None:
        """Batches above it take scikit-learn's compiled trees; None: none do."""
        return self.forest.crossover_rows

    @property
    def layout(self) -> str:
        """The numpy walk's layout, `heap` or `dense` (`forest.py`)."""
        return self.forest.layout

    def serves(self, n_rows: int) -> bool:
        """Whether a batch of n_rows is scored by the numpy walk (else by the compiled trees)."""
        crossover = self.forest.crossover_rows
        return crossover is None or n_rows <= crossover

    def decision_function(self, X: np.ndarray, *, in_float32_range: bool = False) -> np.ndarray | None:
        """Scores of the finite float64 rows X, or None when the scalers made a NaN (the caller
        then takes scikit-learn's path, which routes missing values its own way).
        `in_float32_range`: the caller checked that |X| fits float32 (see FastForest)."""
        if not self.transforms:
            return self.forest.decision_function(X, in_float32_range=in_float32_range)
        for transform in self.transforms:
            X = transform(X)
        if np.isnan(X).any():
            return None
        return self.forest.decision_function(X)


class SavedScorerModel:
    """A stand-in estimator serving a FastScorer loaded from its saved arrays (`cache.py`), during
    the moments after a start before the full model has loaded; it needs no scikit-learn."""

    def __init__(self, scorer: FastScorer) -> None:
        self.scorer = scorer

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        scores = self.scorer.decision_function(X)
        if scores is None:  # only scalers that made a NaN; without scikit-learn there is no other path
            raise ValueError("the scaled rows hold NaN")
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.where(self.decision_function(X) < 0, -1, 1)


def build_fast_scorer(estimator: Any, n_features: int) -> FastScorer | None:
    """The FastScorer of an eligible model taking n_features columns, else None."""
    from sklearn.pipeline import Pipeline

    transforms: list[Transform] = []
    final = estimator
    if type(estimator) is Pipeline:
        steps = list(getattr(estimator, "steps", None) or [])
        if not steps:
            return None
        for _, step in steps[:-1]:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            transform = transform_for(step, n_features)
            if transform is None:
                return None
            transforms.append(transform)
        final = steps[-1][1]
    forest = pack_isolation_forest(final, n_features)
    if forest is None:
        return None
    return FastScorer(transforms=tuple(transforms), forest=forest)
