"""The serving runtime: the resident deployed model, predict, and the figures monitoring reads.

Loading a model from disk is not done here: the manager loads and probes an estimator, wraps it
in a `ResidentModel`, and hands it to `Runtime.install`, which switches atomically.

How the pieces fit:

    Runtime
      _serving: _Deployment | None        the one object predict reads, replaced in one assignment
      _history: version -> _Deployment    the last few deployments, for reports on past versions
      _requests: request_id -> record     the last N predict calls, for record_feedback
    _Deployment                           one installation of one version, with its own figures
      resident: ResidentModel             the estimator, its feature names, sizes, scoring plan
      counters, latency ring, recent-input ring, baseline (the first rows after deploy)

Why a predict never mixes versions: it reads `self._serving` once (a single attribute read is
atomic in CPython) and uses only that `_Deployment` from then on, for the version check, the
feature names, the estimator and the figures. An install during the call replaces the attribute
for later calls and leaves this one alone. Figures live on the `_Deployment`, so a redeploy of
the same version starts from zero while requests still running on the old installation finish
counting into the old one.

Threads: `predict` is blocking and meant to run on worker threads, many at once. Inference holds
no lock; only the bookkeeping afterwards takes the deployment's lock (microseconds: counters, one
latency slot, a copy of the rows into the ring) and then the request map's lock.

Memory bound, per retained deployment with d features (float64 everywhere):
  recent window    window_rows x (d + 2) x 8 bytes    (inputs, scores, labels)
  baseline         baseline_rows x (d + 2) x 8 bytes
  latencies        latency_window x 8 bytes
e.g. 5,000 + 1,000 rows of 8 features with the defaults: 480 KB, plus 80 KB of latencies.
At most `keep_deployments` deployments are retained (the serving one included). The request map
holds at most `feedback_requests` requests and `feedback_rows` rows of labels and scores
(16 bytes a row); input rows are not copied there: `request()` returns them while they are still
in the recent window.
"""

from __future__ import annotations

import bisect
import inspect
import itertools
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from model_mcp.core.errors import (
    InvalidInputError,
    NoDeployedModelError,
    NotFoundError,
    VersionMismatchError,
)
from model_mcp.core.footprint import estimate_memory_bytes
from model_mcp.core.predict_answer import SCORE_DIGITS, predict_summary, round_significant
from model_mcp.core.scoring import FAST_PATH, SKLEARN_PATH, FastScorer, SavedScorerModel, build_fast_scorer
from model_mcp.logs import get_logger

log = get_logger(__name__)

__all__ = ["ResidentModel", "Runtime", "parse_rows", "utc_now_iso"]

# Upper bounds (ms) of the predict latency histogram that /metrics exposes (counts since install).
LATENCY_BUCKETS_MS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)

# The largest magnitude scikit-learn's float32 cast keeps finite.
FLOAT32_MAX = float(np.finfo(np.float32).max)

# Batches up to this many rows are checked value by value in Python rather than in bulk.
_FEW_ROWS = 4

# How many feature names an error message lists before "...".
_NAMES_IN_MESSAGE = 12


# ---------------------------------------------------------------------------------------------
# Input rows
# ---------------------------------------------------------------------------------------------


def parse_rows(rows: Any, feature_names: Sequence[str], max_rows: int) -> np.ndarray:
    """Turn predict's `rows` into a float64 array of shape (n, d), or raise InvalidInputError.

    Each row is a list of numbers in `feature_names` order or a dict keyed by feature name (both
    kinds may be mixed). Numbers are int or float (numpy integer and floating scalars too); bool,
    strings and None are refused, and so are NaN and infinities. Row indices in the messages
    count from 0, like the list the caller sent.

    Speed matters at 1 row (the common call) and at 10,000 rows. A few rows of floats and ints
    are checked value by value in Python (cheaper than any numpy call) and read by one
    `np.array`; more rows are checked in bulk: the row types, the row lengths and the element
    types as sets built in C, then one `np.fromiter` and two reductions for the range (flattening
    to a list first, or `np.array(rows, dtype=float)`, measured no faster at 10,000 rows). Only
    when that fails are the rows walked one by one, to name the first bad row. A 2-D numeric
    numpy array is accepted as is (callers in Python).
    """
    names = list(feature_names)
    if isinstance(rows, np.ndarray):
        return _parse_array(rows, names, max_rows)
    if not isinstance(rows, list):
        raise InvalidInputError(f"rows must be a list of rows, not {_kind(rows)}.")
    if not rows:
        raise InvalidInputError("rows is empty: send at least one row.")
    if len(rows) > max_rows:
        raise InvalidInputError(
            f"rows has {len(rows)} rows; at most {max_rows} are accepted in one predict call."
        )
    if not set(map(type, rows)) <= {list, tuple}:
        rows = _rows_as_lists(rows, names)
    X = _few_rows_array(rows, len(names)) if len(rows) <= _FEW_ROWS else None
    if X is None:
        X = _bulk_array(rows, len(names))
    if X is None:
        _raise_first_bad_row(rows, names)
        raise InvalidInputError("rows could not be read as numbers.")  # unreachable in practice
    return X


def _parse_array(rows: np.ndarray, names: list[str], max_rows: int) -> np.ndarray:
    """The numpy-array form of `parse_rows`: same checks, no per-element type walk."""
    if rows.dtype.kind not in "iuf":
        raise InvalidInputError(f"rows must hold numbers, not values of dtype {rows.dtype}.")
    if rows.ndim != 2:
        raise InvalidInputError(f"rows must be 2-dimensional (rows x features), not {rows.ndim}-dimensional.")
    if rows.shape[0] == 0:
        raise InvalidInputError("rows is empty: send at least one row.")
    if rows.shape[0] > max_rows:
        raise InvalidInputError(
            f"rows has {rows.shape[0]} rows; at most {max_rows} are accepted in one predict call."
        )
    if rows.shape[1] != len(names):
        raise InvalidInputError(
            f"row 0 has {rows.shape[1]} values; the model expects {len(names)}: {_list_names(names)}."
        )
    X = np.ascontiguousarray(rows, dtype=np.float64)
    _check_finite(X, names)
    return X


def _few_rows_array(rows: list[Any], d: int) -> np.ndarray | None:
    """The (n, d) float64 array when every row is a list of d floats or ints within float32's
    range (NaN fails the comparison), else None (the bulk check then decides, and names the
    problem). For a few rows only: a Python loop over the values."""
    for row in rows:
        if (type(row) is not list and type(row) is not tuple) or len(row) != d:
            return None
        for value in row:
            kind = type(value)
            if (kind is not float and kind is not int) or not -FLOAT32_MAX <= value <= FLOAT32_MAX:
                return None
    return np.array(rows, dtype=np.float64)


def _bulk_array(rows: list[Any], d: int) -> np.ndarray | None:
    """The (n, d) float64 array when every row is a list of d finite numbers, else None."""
    if not set(map(type, rows)) <= {list, tuple}:
        return None
    if set(map(len, rows)) != {d}:
        return None
    value_types = set(map(type, itertools.chain.from_iterable(rows)))
    if not all(_is_number_type(t) for t in value_types):
        return None
    try:  # every value is a number (checked above): fromiter converts them twice as fast as asarray
        X = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * d)
    except (OverflowError, ValueError, TypeError):
        return None
    X = X.reshape(len(rows), d)
    if not _within_float32(X):
        return None
    return X


def _is_number_type(t: type) -> bool:
    """int, float and numpy numbers are numbers; bool (a subclass of int) is not."""
    if t is float or t is int:
        return True
    if issubclass(t, bool) or issubclass(t, np.bool_):
        return False
    return issubclass(t, (int, float, np.integer, np.floating))


def _rows_as_lists(rows: list[Any], names: list[str]) -> list[Any]:
    """Dict rows turned into lists in feature order; other rows left for the checks that follow.

    A bad dict row is reported only after the rows before it were checked, so that the message
    always names the first bad row.
    """
    converted: list[Any] = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            try:
                row = _dict_row_to_list(i, row, names)
            except InvalidInputError:
                _raise_first_bad_row(converted, names)
                raise
        converted.append(row)
    return converted


def _dict_row_to_list(index: int, row: dict[Any, Any], names: list[str]) -> list[Any]:
    """A dict row as a list in feature order; missing or unknown names are refused here."""
    if len(row) == len(names):
        try:
            return [row[name] for name in names]
        except KeyError:
            pass
    missing = [name for name in names if name not in row]
    known = set(names)
    unknown = [repr(key) if not isinstance(key, str) else key for key in row if key not in known]
    problems = []
    if missing:
        problems.append(f"lacks {_plural('feature', len(missing))} {_list_names(missing)}")
    if unknown:
        problems.append(f"has unknown {_plural('feature', len(unknown))} {_list_names(unknown)}")
    raise InvalidInputError(
        f"row {index} {' and '.join(problems)}; the model expects: {_list_names(names)}."
    )


def _raise_first_bad_row(rows: list[Any], names: list[str]) -> None:
    """Walk the rows in order and raise for the first one that is not d finite numbers."""
    d = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)):
            raise InvalidInputError(
                f"row {i} is {_kind(row)}; each row must be a list of {d} numbers or an object keyed by feature name."
            )
        if len(row) != d:
            raise InvalidInputError(
                f"row {i} has {len(row)} {_plural('value', len(row))}; the model expects {d}: {_list_names(names)}."
            )
        for j, value in enumerate(row):
            problem = _value_problem(value)
            if problem:
                raise InvalidInputError(f"row {i}, feature {names[j]!r} (position {j}): {problem}.")


def _value_problem(value: Any) -> str | None:
    """Why `value` is not a usable number, or None when it is one."""
    if not _is_number_type(type(value)):
        return f"{_short_repr(value)} is not a number"
    try:
        as_float = float(value)
    except OverflowError:
        return f"{_short_repr(value)} is too large for a 64-bit float"
    if not math.isfinite(as_float):
        return f"{_short_repr(value)} is not a finite number"
    if abs(as_float) > FLOAT32_MAX:
        return f"{_short_repr(value)} is beyond the range of a 32-bit float (±{FLOAT32_MAX:.4g}), in which scikit-learn computes"
    return None


def _within_float32(X: np.ndarray) -> bool:
    """Every value finite and within float32's range: scikit-learn's trees cast inputs to float32,
    and 1e308 overflows there (to inf, with a RuntimeWarning). Two reductions and no temporary
    array; NaN fails the comparisons too."""
    if X.size == 0:
        return True
    return bool(X.max() <= FLOAT32_MAX and X.min() >= -FLOAT32_MAX)


def _check_finite(X: np.ndarray, names: list[str]) -> None:
    """Refuse NaN, infinities and values beyond float32's range, naming the first bad cell."""
    if _within_float32(X):
        return
    bad = ~(np.abs(X) <= FLOAT32_MAX)
    i, j = (int(k) for k in np.argwhere(bad)[0])
    problem = _value_problem(float(X[i, j])) or "is not a usable number"
    raise InvalidInputError(f"row {i}, feature {names[j]!r} (position {j}): {problem}.")


def _kind(value: Any) -> str:
    """A short phrase for a value's JSON-ish type, for messages."""
    kinds = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in kinds:
        return kinds[type(value)]
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return f"a {type(value).__name__}"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _named(model_name: str) -> str:
    return f"{model_name} " if model_name else ""


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMES_IN_MESSAGE])
    return shown + (", ..." if len(names) > _NAMES_IN_MESSAGE else "")


def _plural(word: str, n: int) -> str:
    return word if n == 1 else word + "s"


# ---------------------------------------------------------------------------------------------
# The resident model and its scoring plan
# ---------------------------------------------------------------------------------------------


def utc_now_iso() -> str:
    """Now, as ISO-8601 UTC with a Z (the format of the registry's timestamps)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _same_method(cls: type, base: type, name: str) -> bool:
    """Whether `cls` uses `base`'s own `name` (no override). Static lookup: scikit-learn's
    `available_if` descriptors hand out a new function object on each class attribute access."""
    return inspect.getattr_static(cls, name, None) is inspect.getattr_static(base, name)


def _score_once_final(estimator: Any) -> tuple[list[Any], Any] | None:
    """(transformers, detector) when predict is provably `where(decision_function < 0, -1, 1)`.

    True for scikit-learn's IsolationForest and LocalOutlierFactor(novelty=True), whose `predict`
    calls `decision_function` and thresholds it at 0 (read in their source, checked by tests),
    and for a Pipeline ending in one of them: Pipeline.predict and Pipeline.decision_function
    both transform through the earlier steps (None and "passthrough" skipped) and then call the
    final step. The methods are compared by identity with scikit-learn's own, so a subclass that
    overrides any of them takes the general path. With metadata routing on, Pipeline routes
    parameters differently; we pass none, but stay on the general path to be safe.
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.pipeline import Pipeline

    transformers: list[Any] = []
    final = estimator
    if isinstance(estimator, Pipeline):
        import sklearn

        if (
            not _same_method(type(estimator), Pipeline, "predict")
            or not _same_method(type(estimator), Pipeline, "decision_function")
            or sklearn.get_config().get("enable_metadata_routing", False)
            or not estimator.steps
        ):
            return None
        for _, step in estimator.steps[:-1]:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            if not hasattr(step, "transform"):
                return None
            transformers.append(step)
        final = estimator.steps[-1][1]
    cls = type(final)
    if isinstance(final, IsolationForest) and all(
        _same_method(cls, IsolationForest, name) for name in ("predict", "decision_function")
    ):
        return transformers, final
    if (
        isinstance(final, LocalOutlierFactor)
        and getattr(final, "novelty", False) is True
        and all(_same_method(cls, LocalOutlierFactor, name) for name in ("predict", "_predict", "decision_function"))
    ):
        return transformers, final
    return None


def _gives_anomaly_flags(estimator: Any) -> bool:
    """Whether labels of this model mean -1 anomaly / 1 normal (outlier detectors, {-1,1} classes)."""
    from sklearn.base import is_outlier_detector

    try:
        if is_outlier_detector(estimator):
            return True
    except Exception:  # an estimator without scikit-learn tags
        pass
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return False
    classes = np.asarray(classes).ravel()
    return classes.dtype.kind in "iuf" and set(classes.tolist()) <= {-1, 1}


@dataclass
class ResidentModel:
    """One loaded, deployable estimator with what serving and reporting need to know about it.

    Build it with `ResidentModel.create(...)`, which fills `deployed_at` and `memory_bytes`, or
    directly when those are known. The scoring plan (score once or call predict separately) is
    decided once here, not per request.
    """

    version: str
    estimator: Any
    feature_names: list[str]
    deployed_at: str  # ISO-8601 UTC
    load_ms: float
    model_file_bytes: int
    memory_bytes: int  # estimate_memory_bytes(estimator)
    model_name: str = ""  # the serving slot (metadata's model_name)
    anomaly_flags: bool = field(init=False)
    score_once: bool = field(init=False)
    _plan: tuple[list[Any], Any] | None = field(init=False, repr=False)
    fast_scorer: FastScorer | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.feature_names = list(self.feature_names)
        if isinstance(self.estimator, SavedScorerModel):  # the saved scorer after a start: no scikit-learn
            self._plan, self.score_once, self.anomaly_flags = None, True, True
            self.fast_scorer = self.estimator.scorer
            return
        self._plan = _score_once_final(self.estimator)
        self.score_once = self._plan is not None
        self.anomaly_flags = _gives_anomaly_flags(self.estimator)
        # The fast tree scorer, for an IsolationForest alone or after trusted scalers (else None).
        self.fast_scorer = build_fast_scorer(self.estimator, len(self.feature_names)) if self.score_once else None

    @property
    def scoring_path(self) -> str:
        """`fast_tree` when the fast scorer serves this model (up to its crossover), else `sklearn`."""
        return FAST_PATH if self.fast_scorer is not None else SKLEARN_PATH

    @classmethod
    def create(
        cls,
        *,
        version: str,
        estimator: Any,
        feature_names: Sequence[str],
        load_ms: float = 0.0,
        model_file_bytes: int = 0,
        deployed_at: str | None = None,
        model_name: str = "",
    ) -> ResidentModel:
        """A ResidentModel deployed now, its memory estimated from the estimator's arrays."""
        return cls(
            model_name=model_name,
            version=version,
            estimator=estimator,
            feature_names=list(feature_names),
            deployed_at=deployed_at or utc_now_iso(),
            load_ms=load_ms,
            model_file_bytes=model_file_bytes,
            memory_bytes=estimate_memory_bytes(estimator),
        )

    def score_and_label(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels, scores) for the rows of X; scores are None when the model gives none.

        Labels are int64 where the model's labels are integers (-1/1 for outlier detectors);
        other labels (strings of a classifier) are returned as the model gave them. Scores are
        `decision_function`, else `score_samples`, else None; a score that is not one number per
        row (a multi-class decision_function) falls back the same way.

        IsolationForest and LOF(novelty) (alone or ending a Pipeline) are scored once and
        thresholded, which is exactly their own `predict`: at 1 row that halves the time, since
        an IsolationForest call is mostly joblib dispatch over the trees. An IsolationForest
        alone or after trusted scalers is scored by the fast tree scorer (`core/scoring/`),
        whose scores equal its decision_function bit for bit.
        """
        labels, scores, _ = self.score(X)
        return labels, scores

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str]:
        """`score_and_label` plus the path that scored: `fast_tree` or `sklearn`."""
        fast = self.fast_scorer
        if fast is not None:
            # X comes checked by parse_rows (|x| within float32's range); another caller's X at
            # worst gets a RuntimeWarning from the cast, with the same values.
            scores = fast.decision_function(X, in_float32_range=True)
            if scores is not None:  # above the crossover, scikit-learn's compiled tree walk ran
                path = FAST_PATH if fast.serves(X.shape[0]) else SKLEARN_PATH
                return np.where(scores < 0, -1, 1).astype(np.int64, copy=False), scores, path
        labels, scores = self._sklearn_score_and_label(X)
        return labels, scores, SKLEARN_PATH

    def _sklearn_score_and_label(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._plan is not None:
            transformers, detector = self._plan
            Xt = X
            for step in transformers:
                Xt = step.transform(Xt)
            scores = np.asarray(detector.decision_function(Xt), dtype=np.float64)
            return np.where(scores < 0, -1, 1).astype(np.int64), scores
        labels = _as_int_labels(np.asarray(self.estimator.predict(X)))
        return labels, self._general_scores(X)

    def _general_scores(self, X: np.ndarray) -> np.ndarray | None:
        for method in ("decision_function", "score_samples"):
            if hasattr(self.estimator, method):
                scores = np.asarray(getattr(self.estimator, method)(X))
                if scores.ndim == 1 and scores.dtype.kind in "iuf":
                    return scores.astype(np.float64, copy=False)
        return None


def _as_int_labels(labels: np.ndarray) -> np.ndarray:
    """Integer labels as int64 (floats that are whole numbers too); anything else unchanged."""
    labels = labels.ravel() if labels.ndim > 1 and labels.shape[1:] == (1,) * (labels.ndim - 1) else labels
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64, copy=False)
    if labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels == np.round(labels)).all():
        return labels.astype(np.int64)
    return labels


# ---------------------------------------------------------------------------------------------
# One deployment's figures and windows
# ---------------------------------------------------------------------------------------------


class _Rows:
    """A preallocated block of rows with their scores and labels: a ring, or an append-only prefix.

    Scores are NaN and labels 0 where the model gave none (the `has_*` flags say so).
    """

    def __init__(self, capacity: int, n_features: int, *, ring: bool) -> None:
        self.capacity = capacity
        self.ring = ring
        self.X = np.empty((capacity, n_features), dtype=np.float64)
        self.scores = np.full(capacity, np.nan, dtype=np.float64)
        self.labels = np.zeros(capacity, dtype=np.int64)
        self.written = 0  # rows ever offered to the ring (or stored in the prefix)
        self.has_scores = True
        self.has_labels = True

    def add(self, X: np.ndarray, scores: np.ndarray | None, labels: np.ndarray | None) -> int:
        """Store rows; returns the running index of X[0] (for locating them later)."""
        start = self.written
        n = X.shape[0]
        self.has_scores &= scores is not None
        self.has_labels &= labels is not None
        if not self.ring:
            take = min(n, self.capacity - self.written)
            if take > 0:
                self._put(slice(self.written, self.written + take), X[:take], scores, labels, 0, take)
                self.written += take
            return start
        self.written += n
        if n >= self.capacity:  # only the last `capacity` rows survive; they land in order
            skip = n - self.capacity
            positions = (np.arange(self.capacity) + start + skip) % self.capacity
            self._put(positions, X[skip:], scores, labels, skip, n)
            return start
        first = start % self.capacity
        head = min(n, self.capacity - first)
        self._put(slice(first, first + head), X[:head], scores, labels, 0, head)
        if head < n:
            self._put(slice(0, n - head), X[head:], scores, labels, head, n)
        return start

    def _put(self, where: Any, X: np.ndarray, scores: Any, labels: Any, lo: int, hi: int) -> None:
        self.X[where] = X
        if scores is not None:
            self.scores[where] = scores[lo:hi]
        if labels is not None:
            self.labels[where] = labels[lo:hi]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Copies of the stored rows, oldest first."""
        n = min(self.written, self.capacity)
        if self.ring and self.written > self.capacity:
            order = (np.arange(n) + self.written) % self.capacity
        else:
            order = slice(0, n)
        X = self.X[order].copy()
        scores = self.scores[order].copy() if self.has_scores else None
        labels = self.labels[order].copy() if self.has_labels else None
        return X, scores, labels

    def rows_at(self, start: int, n: int) -> np.ndarray | None:
        """Copies of the rows with running indices [start, start + n), if still all stored."""
        if not self.ring or start < self.written - self.capacity or start + n > self.written:
            return None
        positions = (np.arange(start, start + n)) % self.capacity
        return self.X[positions].copy()


class _Deployment:
    """One installation of one version: the model and its figures since that install."""

    def __init__(self, resident: ResidentModel, runtime: Runtime) -> None:
        d = len(resident.feature_names)
        self.resident = resident
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.n_requests = 0
        self.n_rows = 0
        self.n_errors = 0
        self.n_flagged_rows = 0  # rows whose labels are anomaly flags
        self.n_anomalies = 0
        self.busy_s = 0.0
        self.latencies_ms = np.zeros(runtime.latency_window, dtype=np.float64)
        self.n_latencies = 0
        # Cumulative, unlike the latency ring: a Prometheus histogram never forgets (+Inf last).
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0
        self.requests_by_path: dict[str, int] = {}  # answered requests per scoring path
        self.window = _Rows(runtime.window_rows, d, ring=True)
        self.baseline = _Rows(runtime.baseline_rows, d, ring=False)

    def record_error(self) -> None:
        with self.lock:
            self.n_errors += 1

    def record(
        self,
        X: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray | None,
        anomalies: int | None,
        seconds: float,
        path: str = SKLEARN_PATH,
    ) -> int:
        """Count one answered request and keep its rows; returns the running index of its first row."""
        int_labels = labels if labels.dtype == np.int64 else None
        with self.lock:
            self.n_requests += 1
            self.requests_by_path[path] = self.requests_by_path.get(path, 0) + 1
            self.n_rows += X.shape[0]
            self.busy_s += seconds
            if anomalies is not None:
                self.n_flagged_rows += X.shape[0]
                self.n_anomalies += anomalies
            self.latencies_ms[self.n_latencies % self.latencies_ms.shape[0]] = seconds * 1000.0
            self.n_latencies += 1
            self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, seconds * 1000.0)] += 1
            self.latency_sum_ms += seconds * 1000.0
            self.baseline.add(X, scores, int_labels)
            return self.window.add(X, scores, int_labels)

    def counters(self) -> dict[str, Any]:
        """The running totals only (no percentiles): cheap enough for every metrics scrape."""
        with self.lock:
            counts = {"n_requests": self.n_requests, "n_rows": self.n_rows, "n_errors": self.n_errors,
                      "n_flagged_rows": self.n_flagged_rows, "n_anomalies": self.n_anomalies,
                      "latency_buckets": list(self.latency_buckets), "latency_sum_ms": self.latency_sum_ms}
        resident = self.resident
        return {**counts, "version": resident.version, "deployed_at": resident.deployed_at,
                "model_file_bytes": resident.model_file_bytes, "memory_bytes": resident.memory_bytes,
                "load_ms": resident.load_ms}

    def figures(self) -> dict[str, Any]:
        with self.lock:
            n_lat = min(self.n_latencies, self.latencies_ms.shape[0])
            latencies = self.latencies_ms[:n_lat].copy()
            counts = (self.n_requests, self.n_rows, self.n_errors, self.n_flagged_rows, self.n_anomalies, self.busy_s)
            by_path = dict(self.requests_by_path)
        n_requests, n_rows, n_errors, n_flagged, n_anomalies, busy_s = counts
        wall_s = max(time.monotonic() - self.started, 1e-9)
        attempts = n_requests + n_errors
        if n_lat:
            p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
            latency = {"p50": p50, "p95": p95, "p99": p99}
        else:
            latency = {"p50": None, "p95": None, "p99": None}
        resident = self.resident
        return {
            "version": resident.version,
            "deployed_at": resident.deployed_at,
            "n_requests": n_requests,
            "n_rows": n_rows,
            "n_errors": n_errors,
            "error_rate": n_errors / attempts if attempts else 0.0,
            "latency_ms": latency,
            "latency_window": n_lat,
            "throughput_rows_per_s": n_rows / busy_s if busy_s > 0 else 0.0,
            "rows_per_wall_s": n_rows / wall_s,
            "busy_s": busy_s,
            "uptime_s": wall_s,
            "n_anomalies": n_anomalies if n_flagged else None,
            "anomaly_rate": n_anomalies / n_flagged if n_flagged else None,
            "model_file_bytes": resident.model_file_bytes,
            "memory_bytes": resident.memory_bytes,
            "load_ms": resident.load_ms,
            "scoring_path": resident.scoring_path,
            "scoring_crossover_rows": resident.fast_scorer.crossover_rows if resident.fast_scorer else None,
            "scoring_layout": resident.fast_scorer.layout if resident.fast_scorer else None,
            "requests_by_scoring_path": by_path,
        }


# ---------------------------------------------------------------------------------------------
# The runtime
# ---------------------------------------------------------------------------------------------


class Runtime:
    """The resident deployed model, predict, and the per-version figures and input windows.

    Thread-safe: `predict` may run on many threads while another installs a new model.
    """

    def __init__(
        self,
        *,
        max_predict_rows: int = 10_000,
        window_rows: int = 5000,
        baseline_rows: int = 1000,
        latency_window: int = 10_000,
        feedback_requests: int = 1000,
        feedback_rows: int = 1_000_000,
        keep_deployments: int = 4,
    ) -> None:
        """Bounds (see the module docstring for the memory they imply).

        window_rows: recent input rows kept per deployment, for drift_report's `current`.
        baseline_rows: the first rows after deploy kept per deployment, drift's fallback reference.
        latency_window: the last requests whose latencies give p50/p95/p99.
        feedback_requests / feedback_rows: the request map's bounds, in requests and in rows.
        keep_deployments: deployments whose figures stay readable (the serving one included).
        """
        for name, value in (
            ("max_predict_rows", max_predict_rows),
            ("window_rows", window_rows),
            ("baseline_rows", baseline_rows),
            ("latency_window", latency_window),
            ("feedback_requests", feedback_requests),
            ("feedback_rows", feedback_rows),
            ("keep_deployments", keep_deployments),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.max_predict_rows = max_predict_rows
        self.window_rows = window_rows
        self.baseline_rows = baseline_rows
        self.latency_window = latency_window
        self.feedback_requests = feedback_requests
        self.feedback_rows = feedback_rows
        self.keep_deployments = keep_deployments

        # model name -> its serving installation. Replaced as a whole under _switch_lock (copy on
        # write), so predict reads one consistent dict without taking a lock.
        self._serving: dict[str, _Deployment] = {}
        self._switch_lock = threading.Lock()
        self._changed = threading.Condition(self._switch_lock)  # notified when a slot or a load changes
        self._history: OrderedDict[str, _Deployment] = OrderedDict()
        self._loading: dict[str, str] = {}  # model name -> version whose start load is in progress
        self._load_errors: dict[str, dict[str, str]] = {}  # model name -> {"version", "message"}
        # model name -> its rollout (core/rollouts/live.py): a shadow or canary beside the primary.
        # Copy on write like _serving.
        self._rollouts: dict[str, Any] = {}
        self._requests: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._requests_rows = 0
        self._requests_lock = threading.Lock()
        # The monitoring store's recorder (monitoring_store.recorder.Recorder), or None: predict only
        # hands it references to what it answered; the recorder's thread does the writing.
        self.recorder: Any = None

    # -- switching -----------------------------------------------------------------------------

    def begin_loading(self, version: str, model_name: str = "") -> None:
        """Mark the start load of `version` (of `model_name`) in progress: predicts for that model
        with nothing serving wait for it.

        Meant for server start, where initialize is answered before the model is loaded. A deploy
        while a model is serving need not call it: the old model serves until `install`.
        """
        with self._switch_lock:
            self._loading[model_name] = version
            self._load_errors.pop(model_name, None)

    def install(self, resident: ResidentModel) -> ResidentModel | None:
        """Make `resident` the serving model of its model name in one step; returns the one it
        replaced. Other models keep serving.

        Figures for this installation start at zero, even when the same version served before.
        Ends a load in progress for that model.
        """
        deployment = _Deployment(resident, self)
        name = resident.model_name
        with self._switch_lock:
            previous = self._serving.get(name)
            self._serving = {**self._serving, name: deployment}
            self._history.pop(resident.version, None)
            self._history[resident.version] = deployment
            serving = {id(d) for d in self._serving.values()}
            while len(self._history) > max(self.keep_deployments, len(self._serving)):
                oldest = next((v for v, d in self._history.items() if id(d) not in serving), None)
                if oldest is None:
                    break
                del self._history[oldest]
            self._loading.pop(name, None)
            self._load_errors.pop(name, None)
            self._changed.notify_all()
        return previous.resident if previous is not None else None

    def upgrade(self, stand_in: ResidentModel, resident: ResidentModel) -> bool:
        """Replace `stand_in` by `resident` (same version) inside the serving installation, keeping
        its figures; False (nothing done) when `stand_in` no longer serves."""
        with self._switch_lock:
            serving = self._serving.get(stand_in.model_name)
            if serving is None or serving.resident is not stand_in or resident.version != stand_in.version:
                return False
            resident.model_name = stand_in.model_name
            serving.resident = resident
            return True

    def load_failed(self, version: str, message: str, model_name: str = "") -> None:
        """End a load in progress as failed; `load_errors` and NoDeployedModelError say why."""
        log.error("deployed_load_failed", version=version, model_name=model_name, reason=message)
        with self._switch_lock:
            self._load_errors[model_name] = {"version": version, "message": message}
            self._loading.pop(model_name, None)
            serving = self._serving.get(model_name)
            if serving is not None and serving.resident.version == version and isinstance(
                serving.resident.estimator, SavedScorerModel
            ):
                # the saved scorer stood in for a model that does not load: stop serving it
                self._serving = {k: v for k, v in self._serving.items() if k != model_name}
            self._changed.notify_all()

    def clear(self, model_name: str | None = None) -> None:
        """Nothing deployed any more for `model_name` (None: for any model); past figures stay readable."""
        with self._switch_lock:
            if model_name is None:
                self._serving, self._loading = {}, {}
            else:
                self._serving = {k: v for k, v in self._serving.items() if k != model_name}
                self._loading.pop(model_name, None)
            self._changed.notify_all()

    def residents(self) -> dict[str, ResidentModel]:
        """{model name: its serving model}."""
        return {name: d.resident for name, d in self._serving.items()}

    def resident_of(self, model_name: str) -> ResidentModel | None:
        serving = self._serving.get(model_name)
        return serving.resident if serving is not None else None

    def serving_version(self, version: str) -> ResidentModel | None:
        """The serving model whose version is `version` (a rollout's shadow or canary included), if one serves."""
        found = next((d.resident for d in self._serving.values() if d.resident.version == version), None)
        if found is None:
            found = next((r.deployment.resident for r in self._rollouts.values() if r.version == version), None)
        return found

    def new_deployment(self, resident: ResidentModel) -> _Deployment:
        """A fresh installation of `resident` with its own figures, kept readable like a deployment's."""
        deployment = _Deployment(resident, self)
        with self._switch_lock:
            self._history.pop(resident.version, None)
            self._history[resident.version] = deployment
        return deployment

    def attach_rollout(self, rollout: Any) -> Any | None:
        """Set the rollout of its model (answers the one it replaced, which the caller stops)."""
        with self._switch_lock:
            previous = self._rollouts.get(rollout.model_name)
            self._rollouts = {**self._rollouts, rollout.model_name: rollout}
        return previous

    def detach_rollout(self, model_name: str) -> Any | None:
        """End the rollout of `model_name` here (the caller stops it); answers it, or None."""
        with self._switch_lock:
            previous = self._rollouts.get(model_name)
            if previous is not None:
                self._rollouts = {k: v for k, v in self._rollouts.items() if k != model_name}
        return previous

    def rollout_of(self, model_name: str) -> Any | None:
        return self._rollouts.get(model_name)

    def rollouts(self) -> dict[str, Any]:
        """{model name: its rollout}; the runtime's own dict (replaced on change, never mutated): read only."""
        return self._rollouts

    @property
    def current(self) -> ResidentModel | None:
        """The serving model when exactly one model serves (the single-model view), else None."""
        serving = self._serving
        if len(serving) != 1:
            return None
        return next(iter(serving.values())).resident

    @property
    def loading(self) -> str | None:
        """A version whose start load is in progress (any model), or None."""
        return next(iter(self._loading.values()), None)

    def loading_versions(self) -> dict[str, str]:
        return dict(self._loading)

    @property
    def load_error(self) -> dict[str, str] | None:
        """{"version", "message"} of a failed start load (any model), until that model is installed."""
        return next((dict(e) for e in self._load_errors.values()), None)

    def load_errors(self) -> dict[str, dict[str, str]]:
        """{model name: {"version", "message"}} of failed start loads."""
        return {name: dict(e) for name, e in self._load_errors.items()}

    def memory_in_use(self, *, except_model: str | None = None) -> int:
        """Summed memory estimate of the resident models, rollouts' shadows and canaries included (one
        model left out when asked: a deploy replaces its primary and ends its rollout)."""
        primaries = sum(d.resident.memory_bytes for name, d in self._serving.items() if name != except_model)
        return primaries + sum(r.deployment.resident.memory_bytes for name, r in self._rollouts.items()
                               if name != except_model)

    # -- inference -----------------------------------------------------------------------------

    def predict(
        self,
        rows: Any,
        *,
        version: str | None = None,
        model_name: str | None = None,
        wait_s: float = 60.0,
        exact_scores: bool = False,
        summary_only: bool = False,
        routing_key: str | None = None,
    ) -> dict[str, Any]:
        """Score `rows` on the serving model of `model_name`; blocking, for a worker thread.

        `model_name` may be left out when one model serves, or when `version` names a serving
        version. Waits up to `wait_s` while that model's start load is in progress. Raises
        NoDeployedModelError, VersionMismatchError (`version` given and not the one serving),
        InvalidInputError (several models serve and none is named; or bad rows, also counted as
        an error of the serving version). The answer is the contract's columnar one plus
        `model_name`; `latency_ms` covers parsing, inference and building the answer (not the wait
        for a load). Scores are rounded to 6 significant digits unless `exact_scores` (labels,
        flags and the figures always use the exact ones); `summary_only` answers `summary` (label
        counts, anomaly indices, score quantiles) instead of the per-row lists.
        """
        deployment = self._serving_or_wait(model_name, version, wait_s)
        started = time.perf_counter()
        rollout = self._rollouts.get(deployment.resident.model_name) if self._rollouts else None
        if rollout is not None and rollout.mode == "canary" and (
                version == rollout.version or (version is None and rollout.routes_to_candidate(routing_key))):
            deployment = rollout.deployment  # this call is answered by the canary
        resident = deployment.resident
        if version is not None and version != resident.version:
            raise VersionMismatchError(
                f"Version {version} is not deployed"
                + (f" for {resident.model_name}" if resident.model_name else "")
                + f"; the deployed version is {resident.version}."
            )
        try:
            X = parse_rows(rows, resident.feature_names, self.max_predict_rows)
            labels, scores, path = resident.score(X)
        except Exception:
            deployment.record_error()
            if self.recorder is not None:
                self.recorder.record_error(resident.version, resident.deployed_at)
            raise
        flagged = resident.anomaly_flags and labels.dtype == np.int64
        is_anomaly = labels == -1 if flagged else None
        anomaly_count = int(np.count_nonzero(is_anomaly)) if is_anomaly is not None else None
        shown = scores if scores is None or exact_scores else round_significant(scores)
        answer: dict[str, Any] = {
            "model_name": resident.model_name or None,
            "model_version": resident.version,
            "request_id": os.urandom(16).hex(),  # 32 hex digits, as uuid4().hex, without the UUID object
            "n_rows": int(X.shape[0]),
            "labels": [] if summary_only else labels.tolist(),
            "scores": None if summary_only or shown is None else shown.tolist(),
            "is_anomaly": None if summary_only or is_anomaly is None else is_anomaly.tolist(),
            "anomaly_count": anomaly_count,
            "latency_ms": 0.0,
            "score_digits": None if exact_scores or scores is None else SCORE_DIGITS,
            "summary": predict_summary(labels, scores, is_anomaly, exact_scores=exact_scores) if summary_only else None,
        }
        seconds = time.perf_counter() - started
        answer["latency_ms"] = seconds * 1000.0
        first_row = deployment.record(X, labels, scores, anomaly_count, seconds, path)
        if self.recorder is not None:
            self.recorder.record(resident.version, resident.deployed_at, answer["request_id"], X, labels, scores,
                                 anomaly_count, seconds)
        self._remember(answer["request_id"], deployment, labels, scores, first_row)
        if rollout is not None and rollout.mode == "shadow":
            rollout.offer(X, labels, scores)  # scored again by the shadow, off this thread
        return answer

    def _serving_or_wait(self, model_name: str | None, version: str | None, wait_s: float) -> _Deployment:
        serving = self._serving
        if model_name is None:
            if len(serving) == 1 and not self._loading:
                return next(iter(serving.values()))  # the single-model fast path
            model_name = self._which_model(version)
        deployment = serving.get(model_name)
        if deployment is not None:
            return deployment
        deadline = time.monotonic() + wait_s
        with self._changed:
            while model_name not in self._serving and model_name in self._loading:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NoDeployedModelError(
                        f"The deployed model {_named(model_name)}(version {self._loading[model_name]}) is still "
                        "loading; try again in a moment."
                    )
                self._changed.wait(left)
            deployment = self._serving.get(model_name)
            error = self._load_errors.get(model_name)
        if deployment is not None:
            return deployment
        if error:
            raise NoDeployedModelError(
                f"No model {_named(model_name)}is serving: version {error['version']} failed to load "
                f"({error['message']}). Deploy a version to serve predictions."
            )
        if model_name and self._serving:
            raise NoDeployedModelError(
                f"No version of model {model_name} is deployed; deployed models: {', '.join(sorted(self._serving))}."
            )
        raise NoDeployedModelError("No model is deployed; deploy a version first.")

    def _which_model(self, version: str | None) -> str:
        """The model a predict without `model_name` means: the only one serving or loading, or the
        one serving `version`; several and no way to tell: InvalidInputError naming them."""
        names = set(self._serving) | set(self._loading) | set(self._load_errors)
        if version is not None:
            for name, deployment in self._serving.items():
                if deployment.resident.version == version:
                    return name
        if len(names) <= 1:
            return next(iter(names), "")
        raise InvalidInputError(
            f"Several models are deployed ({', '.join(sorted(n or '(unnamed)' for n in names))}); name one with "
            "`model_name`."
        )

    def _remember(
        self, request_id: str, deployment: _Deployment, labels: np.ndarray, scores: np.ndarray | None, first_row: int
    ) -> None:
        """Keep what record_feedback needs about this request, within the map's bounds."""
        n = int(labels.shape[0])
        record = {
            "version": deployment.resident.version,
            "labels": labels,
            "scores": scores,
            "n_rows": n,
            "first_row": first_row,
            "deployment": weakref.ref(deployment),
        }
        with self._requests_lock:
            self._requests[request_id] = record
            self._requests_rows += n
            while self._requests and (
                len(self._requests) > self.feedback_requests or self._requests_rows > self.feedback_rows
            ):
                _, old = self._requests.popitem(last=False)
                self._requests_rows -= old["n_rows"]

    # -- figures -------------------------------------------------------------------------------

    def _deployment(self, version: str | None) -> _Deployment:
        serving = self._serving
        if version is None:
            if len(serving) != 1:
                raise NoDeployedModelError("No single model is deployed; name a version to see its figures.")
            return next(iter(serving.values()))
        for deployment in serving.values():
            if deployment.resident.version == version:
                return deployment
        for rollout in self._rollouts.values():
            if rollout.version == version:
                return rollout.deployment
        with self._switch_lock:
            found = self._history.get(version)
        if found is None:
            raise NotFoundError(
                f"No serving figures for version {version}: it has not been deployed since the server started."
            )
        return found

    def performance(self, version: str | None = None) -> dict[str, Any]:
        """Figures of `version` (default: the serving one) since its last install.

        Fields: version, deployed_at, n_requests (answered), n_rows, n_errors (failed calls,
        invalid input included), error_rate (errors / all calls), latency_ms {p50, p95, p99} over
        the last `latency_window` answered requests (None before the first), throughput_rows_per_s
        = rows / summed request time (the rate the model sustains while busy; it does not fall
        when the server is idle), rows_per_wall_s = rows / seconds since deploy (the load it
        actually saw), anomaly_rate (flagged rows / rows, None for models without anomaly
        flags), n_anomalies, model_file_bytes, memory_bytes, load_ms, plus `serving` (whether
        this is the serving installation). NotFoundError for a version not deployed recently.
        """
        deployment = self._deployment(version)
        figures = deployment.figures()
        figures["serving"] = deployment in self._serving.values()
        return figures

    def counters(self) -> list[dict[str, Any]]:
        """Running totals of every retained deployment (see `_Deployment.counters`), plus `serving`."""
        with self._switch_lock:
            deployments = list(self._history.values())
        serving = list(self._serving.values())
        return [{**d.counters(), "serving": any(d is s for s in serving)} for d in deployments]

    def recent(self, version: str | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(inputs (n, d), scores, labels) of the recent window, oldest first, as copies.

        At most `window_rows` rows: the latest ones. Scores / labels are None for models that
        give none (or non-integer labels).
        """
        deployment = self._deployment(version)
        with deployment.lock:
            return deployment.window.snapshot()

    def baseline(self, version: str | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(inputs, scores, labels) of the first `baseline_rows` rows after deploy, as copies."""
        deployment = self._deployment(version)
        with deployment.lock:
            return deployment.baseline.snapshot()

    def request(self, request_id: str) -> dict[str, Any] | None:
        """What record_feedback needs about a recent request, or None when unknown or expired.

        {"version", "labels" (ndarray), "scores" (ndarray or None), "n_rows", "deployed_at",
        "rows" (ndarray (n, d), only while still in the recent window)}.
        """
        with self._requests_lock:
            record = self._requests.get(request_id)
        if record is None:
            return None
        answer = {key: record[key] for key in ("version", "labels", "scores", "n_rows")}
        deployment = record["deployment"]()
        if deployment is not None:
            answer["deployed_at"] = deployment.resident.deployed_at
            with deployment.lock:
                rows = deployment.window.rows_at(record["first_row"], record["n_rows"])
            if rows is not None:
                answer["rows"] = rows
        return answer
