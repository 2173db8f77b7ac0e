"""The lean predict answer: scores at 6 significant digits by default, an optional summary.

An agent reading a predict answer needs the labels exactly and the scores to a few digits: a
decision_function value printed to 17 digits is mostly noise to it, and costs bytes on every
hop (the structured content, the text block, the client's schema validation). So by default
scores are rounded to `SCORE_DIGITS` significant digits; `exact_scores` gives the float64 values.
Labels and anomaly flags are always computed from the exact scores, before any rounding.

`summary_only` answers, instead of per-row lists, the label counts, the anomaly row indices and
score quantiles: what a caller streaming large batches acts on.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["QUANTILES", "SCORE_DIGITS", "answer_text", "predict_summary", "round_significant", "summary_sentence"]

SCORE_DIGITS = 6

# (name, fraction) of the score quantiles a summary gives.
QUANTILES = (("min", 0.0), ("p01", 0.01), ("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75),
             ("p95", 0.95), ("p99", 0.99), ("max", 1.0))

# Answers up to this many rows repeat the whole answer as compact JSON in the text block; larger
# ones get a summary there (the structured content always carries every row).
TEXT_FULL_ROWS = 100
_INDICES_IN_SENTENCE = 20
# Up to this many scores are rounded in Python (the one-row predict is the common call).
_FEW = 16


def round_significant(values: np.ndarray, digits: int = SCORE_DIGITS) -> np.ndarray:
    """Each value rounded to `digits` significant decimal digits, as the nearest float64.

    Vectorised: x is scaled by 10**k (k = digits - 1 - floor(log10|x|)), rounded to an integer
    and scaled back by an exact power of ten, so the result is the float64 nearest that decimal
    and prints as it (0.123457, not 0.12345700000000001). Zero stays zero.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size <= _FEW:  # a few values: formatting them is cheaper than a dozen numpy calls
        return np.array([float(f"{v:.{digits}g}") for v in values.ravel().tolist()]).reshape(values.shape)
    magnitudes = np.abs(values)
    if magnitudes.min() > 0 and magnitudes.max() < np.inf:  # no zero, NaN or infinity
        k = (digits - 1) - np.floor(np.log10(magnitudes))
        if k.min() >= 0 and k.max() <= 22:
            # The usual scores: every value scales up by an exact power of ten, in one pass (the
            # same arithmetic as below, without the masks).
            power = 10.0**k
            return np.round(values * power) / power
    out = values.copy()
    nonzero = np.isfinite(values) & (values != 0)
    if not nonzero.any():
        return out
    x = values[nonzero]
    k = digits - 1 - np.floor(np.log10(np.abs(x))).astype(np.int64)
    k = np.minimum(np.maximum(k, -300), 300)  # np.clip's wrapper costs more than the two ufuncs
    up = k >= 0
    rounded = np.empty_like(x)
    if up.any():  # |x| < 10**digits: scale up, round, divide by the exact power (for k <= 22)
        power = 10.0 ** k[up]
        rounded[up] = np.round(x[up] * power) / power
    if (~up).any():
        power = 10.0 ** (-k[~up])
        rounded[~up] = np.round(x[~up] / power) * power
    out[nonzero] = rounded
    return out


def predict_summary(labels: np.ndarray, scores: np.ndarray | None, is_anomaly: np.ndarray | None,
                    *, exact_scores: bool) -> dict[str, Any]:
    """Counts per label, the anomaly row indices (from 0) and score quantiles, for summary_only."""
    values, counts = np.unique(labels, return_counts=True)
    quantiles = None
    if scores is not None and scores.size:
        points = np.quantile(scores, [fraction for _, fraction in QUANTILES])
        if not exact_scores:
            points = round_significant(points)
        quantiles = {name: float(value) for (name, _), value in zip(QUANTILES, points, strict=True)}
    return {
        "label_counts": {str(value): int(count) for value, count in zip(values.tolist(), counts.tolist(), strict=True)},
        "anomaly_indices": np.flatnonzero(is_anomaly).tolist() if is_anomaly is not None else None,
        "score_quantiles": quantiles,
    }


def summary_sentence(answer: dict[str, Any]) -> str:
    """A short text for a large predict answer, whose rows are in the structured content only."""
    n = answer["n_rows"]
    parts = [f"{n} rows scored by version {answer['model_version']} (request_id {answer['request_id']})."]
    if answer.get("anomaly_count") is not None:
        parts.append(f"{answer['anomaly_count']} flagged as anomalies (label -1).")
    summary = answer.get("summary")
    indices = summary.get("anomaly_indices") if summary else None
    if indices is None and answer.get("is_anomaly") is not None:
        indices = [i for i, flagged in enumerate(answer["is_anomaly"]) if flagged]
    if indices is not None:
        shown = ", ".join(map(str, indices[:_INDICES_IN_SENTENCE]))
        if indices:
            parts.append(f"Anomalous rows (from 0): {shown}{', ...' if len(indices) > _INDICES_IN_SENTENCE else ''}.")
    if summary and summary.get("score_quantiles"):
        q = summary["score_quantiles"]
        parts.append(f"Scores: min {q['min']}, median {q['p50']}, max {q['max']}.")
    if answer.get("labels") is not None:
        parts.append("The per-row labels, scores and is_anomaly are in the structured content.")
    return " ".join(parts)


def answer_text(answer: dict[str, Any]) -> str:
    """The text block of a predict answer: the compact JSON when small, else a summary sentence."""
    if answer["n_rows"] <= TEXT_FULL_ROWS:
        return json.dumps(answer, separators=(",", ":"), allow_nan=False)
    return summary_sentence(answer)
