"""The comparison of a rollout's candidate with its primary, and the verdict.

Statistics (each on what the rollout saw since it started, from every process):
- label agreement: compared rows with the same label (shadow: both score the same rows);
- anomaly rates of both and a two-sided two-proportion z-test (pooled), whose p-value says whether
  the difference is more than chance;
- Spearman rank correlation of the scores (shadow; the latest pairs of each process);
- latency p50/p95 and error rates of both, from the monitoring figures;
- drift of each against the training profile (drift_report's dataset verdict).

The verdict: `reject` as soon as a limit is broken (the candidate errors or is slow, or, once enough
rows are in, disagrees or flags a significantly different share of anomalies); `promote` once
enough rows are in and nothing is broken; `hold` otherwise, with the rows still needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from model_mcp.core.rollouts.policy import RolloutPolicy

SIGNIFICANCE = 0.05
MIN_ATTEMPTS_FOR_ERROR_RATE = 20  # the candidate's calls before its error rate can reject it


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of H0: p1 == p2 (pooled z-test); None when a side has no rows."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0 if x1 * n2 == x2 * n1 else 0.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def rank_correlation(pairs: list[list[float]]) -> float | None:
    """Spearman's rho of (primary, candidate) scores; None with fewer than 3 pairs or a constant side."""
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr  # imported here: the report is rare, start-up must stay light

    values = np.asarray(pairs, dtype=np.float64)
    if np.ptp(values[:, 0]) == 0 or np.ptp(values[:, 1]) == 0:
        return None
    rho = spearmanr(values[:, 0], values[:, 1]).statistic
    return float(rho) if np.isfinite(rho) else None


def verdict(policy: RolloutPolicy, *, mode: str, rows: int, agreement: float | None,
            anomaly_rates: tuple[float | None, float | None], anomaly_p: float | None,
            candidate_error_rate: float, candidate_attempts: int, candidate_p95_ms: float | None,
            quality_score: float | None) -> tuple[str, list[str], int]:
    """(verdict, reasons, rows still needed)."""
    broken: list[str] = []
    if policy.min_quality_score is not None and (quality_score is None or quality_score < policy.min_quality_score):
        broken.append(f"quality score {quality_score} is under the policy's {policy.min_quality_score}")
    if candidate_attempts >= MIN_ATTEMPTS_FOR_ERROR_RATE and candidate_error_rate > policy.max_error_rate:
        broken.append(f"the candidate's error rate {candidate_error_rate:.1%} is over {policy.max_error_rate:.1%}")
    if policy.max_latency_p95_ms is not None and candidate_p95_ms is not None \
            and candidate_p95_ms > policy.max_latency_p95_ms:
        broken.append(f"the candidate's latency p95 {candidate_p95_ms:.2f} ms is over {policy.max_latency_p95_ms} ms")
    needed = max(0, policy.min_compared_rows - rows)
    if not needed:
        if mode == "shadow" and agreement is not None and agreement < policy.min_agreement:
            broken.append(f"label agreement {agreement:.1%} is under {policy.min_agreement:.1%}")
        primary_rate, candidate_rate = anomaly_rates
        if primary_rate is not None and candidate_rate is not None and anomaly_p is not None:
            diff = abs(candidate_rate - primary_rate)
            if diff > policy.max_anomaly_rate_diff and anomaly_p < SIGNIFICANCE:
                broken.append(f"anomaly rates differ by {diff:.1%} (p = {anomaly_p:.3g}), more than "
                              f"{policy.max_anomaly_rate_diff:.1%}")
    if broken:
        return "reject", broken, needed
    if needed:
        what = "compared" if mode == "shadow" else "answered by the canary"
        return "hold", [f"{needed} more rows {what} are needed (policy: {policy.min_compared_rows})"], needed
    return "promote", ["every limit of the policy holds over "
                       f"{rows} rows {'compared' if mode == 'shadow' else 'answered by the canary'}"], 0


def add_comparisons(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Every process's saved comparison of one rollout, added up (pairs pooled)."""
    total: dict[str, Any] = {key: 0 for key in ("compared_rows", "agreeing_rows", "flagged_rows", "primary_anomalies",
                                                "candidate_anomalies", "dropped_rows", "queued_rows", "shadow_errors")}
    pairs: list[list[float]] = []
    for state in states:
        for key in total:
            total[key] += int(state.get(key) or 0)
        pairs.extend(state.get("pairs") or [])
    total["pairs"] = pairs
    return total
