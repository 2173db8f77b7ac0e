"""Drift statistics: pure functions over numpy arrays, no MCP and no registry.

The serving layer supplies the arrays (a reference as a metadata `feature_profile` or as rows,
a current sample, anomaly flags, scores and feedback labels); this module answers per-feature
verdicts, the dataset verdict, prediction, performance and concept drift, and the alerts.

Why the rules look the way they do:

* Large samples make every p-value tiny, so a feature drifts only when its test is significant
  after Holm's correction across features *and* its effect size reaches the moderate band. Either
  alone is not enough: 100,000 rows from the reference distribution flag nothing, while a small
  sample cannot flag a feature on a noisy effect size alone.
* Against a quantile profile the only honest reference is the binned one: the K+1 quantiles give
  K bins of 1/K reference mass (the outer bins open-ended) for PSI, and the reference CDF is known
  only at the quantile points, so the KS distance is taken there (a test on fewer points than the
  whole line is conservative, never anti-conservative).
* With rows on both sides each column is sorted once; the two sorted runs are merged by a stable
  argsort (timsort merges runs in linear time), which gives the KS distance and the Wasserstein
  distance in one pass. p-values follow scipy's ks_2samp: exact up to 10,000 rows a side,
  asymptotic above, where exact ones cost too much (see `_ks_asymptotic_pvalue`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy import stats

# Alerts (their wording too) live in alerts.py: one type for drift and operational alerts.
from model_mcp.core.alerts import build_alerts
from model_mcp.core.errors import InsufficientDataError, InvalidInputError

Severity = Literal["none", "moderate", "significant"]

PROFILE_TEST = "psi+ks_profile"
SAMPLE_TEST = "ks_2samp+wasserstein"

# scipy's own switch between exact and asymptotic two-sample KS p-values (ks_2samp's MAX_AUTO_N).
EXACT_KS_MAX_ROWS = 10_000
# Up to this many effective rows the asymptotic p-value uses scipy's kstwo (see below).
KSTWO_MAX_ROWS = 1_000
# Keeps PSI finite when a bin is empty on one side.
PSI_EPSILON = 1e-4
_SEVERITY_RANK = {"none": 0, "moderate": 1, "significant": 2}


@dataclass(frozen=True)
class DriftThresholds:
    """Every tunable of the drift report, with defaults documented in the README."""

    alpha: float = 0.05  # family-wise error across features (Holm)
    psi_moderate: float = 0.1
    psi_significant: float = 0.25
    # In reference standard deviations. Chosen so the three effect sizes agree: for a normal
    # feature, PSI 0.1 / KS 0.1 / W 0.2 all mean a mean shift of about 0.2-0.3 sd, and
    # PSI 0.25 / KS 0.2 / W 0.5 about 0.5 sd. W 0.1 sits at the noise of a 1,000-row baseline.
    wasserstein_moderate: float = 0.2
    wasserstein_significant: float = 0.5
    ks_moderate: float = 0.1  # KS distance floors (both kinds of reference)
    ks_significant: float = 0.2
    min_current_rows: int = 30  # below: insufficient_data
    min_reference_rows: int = 30
    small_sample_rows: int = 200  # below: the detail says the sample is small
    share_threshold: float = 0.5  # dataset drift when share of drifted features >= this
    anomaly_rate_alpha: float = 0.01
    anomaly_rate_effect_moderate: float = 0.1  # Cohen's h between current and expected rate
    anomaly_rate_effect_significant: float = 0.3
    performance_alpha: float = 0.05
    performance_drop: float = 0.1  # absolute F1 drop: moderate
    performance_drop_significant: float = 0.2
    min_labelled_rows: int = 30
    min_labelled_anomalies: int = 5  # rows that are an anomaly in truth or prediction
    bootstrap_draws: int = 2000

    def __post_init__(self) -> None:
        for name in ("alpha", "anomaly_rate_alpha", "performance_alpha", "share_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidInputError(f"Drift threshold {name} must be in (0, 1], not {value}.")
        for low, high in (
            ("psi_moderate", "psi_significant"),
            ("wasserstein_moderate", "wasserstein_significant"),
            ("ks_moderate", "ks_significant"),
            ("anomaly_rate_effect_moderate", "anomaly_rate_effect_significant"),
            ("performance_drop", "performance_drop_significant"),
        ):
            if not 0.0 < getattr(self, low) <= getattr(self, high):
                raise InvalidInputError(
                    f"Drift thresholds need 0 < {low} <= {high}, "
                    f"not {getattr(self, low)} and {getattr(self, high)}."
                )
        for name in (
            "min_current_rows",
            "min_reference_rows",
            "min_labelled_rows",
            "bootstrap_draws",
        ):
            if getattr(self, name) < 2:
                raise InvalidInputError(f"Drift threshold {name} must be at least 2.")


DEFAULT_THRESHOLDS = DriftThresholds()


@dataclass
class FeatureDrift:
    """One feature's verdict. `statistic` is the KS distance; `drift_score` the effect size
    (PSI against a profile, Wasserstein in reference sd against rows)."""

    feature: str
    test: str
    statistic: float
    p_value: float | None
    drift_score: float
    drifted: bool
    severity: Severity
    n_reference: int | None
    n_current: int
    detail: str
    p_value_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DatasetVerdict(NamedTuple):
    drifted_features: list[str]
    share_drifted: float
    dataset_drift: bool


# --------------------------------------------------------------------------- input checks


def _as_matrix(values: Any, n_features: int, what: str) -> np.ndarray:
    """A float64 (rows, features) view of the input; refuses a wrong shape with a sentence."""
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"The {what} sample is not a numeric matrix: {exc}.") from exc
    if matrix.ndim == 1 and n_features == 1:
        matrix = matrix.reshape(-1, 1)
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise InvalidInputError(
            f"The {what} sample has shape {matrix.shape}; expected (rows, {n_features}) "
            f"for {n_features} feature names."
        )
    return matrix


def _require_rows(n_rows: int, needed: int, what: str) -> None:
    if n_rows < needed:
        raise InsufficientDataError(
            f"The {what} sample has {n_rows} rows; drift needs at least {needed}"
            + (
                " (send more predict calls or pass more rows)."
                if what == "current"
                else " (pass reference rows or wait for the baseline window to fill)."
            )
        )


def _check_sorted_finite(sorted_column: np.ndarray, feature: str, what: str) -> None:
    """NaN sorts last, so the ends of a sorted column tell whether all of it is finite."""
    if sorted_column.size and not (
        np.isfinite(sorted_column[0]) and np.isfinite(sorted_column[-1])
    ):
        raise InvalidInputError(
            f"The {what} values of feature {feature!r} include NaN or infinity."
        )


def _names(feature_names: Sequence[str]) -> list[str]:
    names = [str(name) for name in feature_names]
    if not names:
        raise InvalidInputError("Drift needs at least one feature name.")
    if len(set(names)) != len(names):
        raise InvalidInputError("Feature names must be unique.")
    return names


# --------------------------------------------------------------------------- shared statistics


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values: controls the family-wise error without assuming
    independence between features (which correlated inputs would break)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted


def _band(value: float, moderate: float, significant: float) -> Severity:
    if value >= significant:
        return "significant"
    if value >= moderate:
        return "moderate"
    return "none"


def _worst(*severities: Severity) -> Severity:
    return max(severities, key=lambda s: _SEVERITY_RANK[s])


def _scale(std: float) -> float:
    """Wasserstein is divided by the reference spread; a constant reference falls back to 1
    (raw units), where the KS floor still catches any change."""
    return std if std > 0 and math.isfinite(std) else 1.0


def _ks_asymptotic_pvalue(d: np.ndarray, n_effective: float) -> np.ndarray:
    """Asymptotic KS p-values at n_effective rows (n1*n2/(n1+n2) for two samples), vectorized.

    Up to 1,000 effective rows: scipy's `kstwo.sf(d, n)`, exactly what `ks_2samp(method="asymp")`
    computes (and nearly exact when one sample is tiny against a large one). Above: Kolmogorov's
    limiting distribution with Stephens' correction, sf((sqrt(n) + 0.12 + 0.11/sqrt(n)) * D),
    within 2e-3 of `kstwo`, which costs ~5 ms per feature at that size.
    """
    d = np.asarray(d, dtype=np.float64)
    n = max(1.0, float(np.round(n_effective)))
    if n <= KSTWO_MAX_ROWS:
        return np.clip(stats.kstwo.sf(d, n), 0.0, 1.0)
    root = math.sqrt(n)
    return np.clip(stats.kstwobign.sf((root + 0.12 + 0.11 / root) * d), 0.0, 1.0)


class _MergeScratch:
    """Buffers for one column pair, allocated once per report and reused for every column:
    fresh arrays per column would cost page faults, and the peak stays at one column pair."""

    def __init__(self, n1: int, n2: int) -> None:
        total = n1 + n2
        self.n1, self.n2 = n1, n2
        self.values = np.empty(total)  # sorted reference, then sorted current
        self.merged = np.empty(total)
        self.gap = np.empty(total)
        self.widths = np.empty(max(total - 1, 0))
        self.positive = np.empty(max(total - 1, 0), dtype=bool)
        self.is_reference = np.empty(total, dtype=bool)
        self.reference_so_far = np.empty(total, dtype=np.int32 if total < 2**31 else np.int64)
        self.steps = np.arange(1, total + 1, dtype=np.float64) / n2
        self.per_reference_row = 1.0 / n1 + 1.0 / n2

    def load(
        self, reference_column: np.ndarray, current_column: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        ref, cur = self.values[: self.n1], self.values[self.n1 :]
        ref[:] = reference_column
        cur[:] = current_column
        ref.sort()
        cur.sort()
        return ref, cur

    def reference_std(self) -> float:
        ref = self.values[: self.n1]
        centered = np.subtract(ref, ref.mean(), out=self.gap[: self.n1])
        return math.sqrt(float(np.einsum("i,i->", centered, centered)) / max(1, self.n1 - 1))

    def ks_wasserstein(self) -> tuple[float, float]:
        """KS distance and Wasserstein-1 distance of the loaded pair.

        A stable argsort merges the two sorted runs (timsort: linear time). At each merged
        position the CDF gap is c1/n1 - c2/n2 = c1*(1/n1 + 1/n2) - (p+1)/n2, with c1 the reference
        rows so far. KS is the largest gap at the last position of each run of equal values;
        Wasserstein is the gap integrated over the value axis. Both equal scipy's (ks_2samp,
        wasserstein_distance), ties included.
        """
        if self.values.size < 2:
            return 0.0, 0.0
        order = np.argsort(self.values, kind="stable")
        np.take(self.values, order, out=self.merged)
        np.less(order, self.n1, out=self.is_reference)
        del order
        np.cumsum(self.is_reference, out=self.reference_so_far)
        gap = np.multiply(self.reference_so_far, self.per_reference_row, out=self.gap)
        np.subtract(gap, self.steps, out=gap)
        np.abs(gap, out=gap)
        np.subtract(self.merged[1:], self.merged[:-1], out=self.widths)
        # einsum, not np.dot: a BLAS dot may wake its thread pool, which costs ms on a busy machine.
        wasserstein = float(np.einsum("i,i->", gap[:-1], self.widths))
        # Inside a run of equal values only the last position is a CDF value; the final gap is 0.
        np.greater(self.widths, 0.0, out=self.positive)
        ks = float(np.max(gap[:-1], where=self.positive, initial=0.0))
        return ks, wasserstein


def _two_sample_columns(
    reference: np.ndarray, current: np.ndarray, names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: KS distance, Wasserstein, reference std and two-sample p-value.

    p-values are exact (scipy) up to 10,000 rows a side, as ks_2samp's default does, and
    asymptotic above, where exact ones cost too much.
    """
    n1, n_columns = reference.shape
    n2 = current.shape[0]
    scratch = _MergeScratch(n1, n2)
    ks = np.empty(n_columns)
    wasserstein = np.empty(n_columns)
    std = np.empty(n_columns)
    exact = max(n1, n2) <= EXACT_KS_MAX_ROWS
    p_values = np.empty(n_columns)
    for j in range(n_columns):
        ref, cur = scratch.load(reference[:, j], current[:, j])
        _check_sorted_finite(ref, names[j], "reference")
        _check_sorted_finite(cur, names[j], "current")
        std[j] = scratch.reference_std()
        ks[j], wasserstein[j] = scratch.ks_wasserstein()
        if exact:
            p_values[j] = float(stats.ks_2samp(ref, cur, method="exact").pvalue)
    if not exact:
        p_values = _ks_asymptotic_pvalue(ks, n1 * n2 / (n1 + n2))
    return ks, wasserstein, std, p_values


def _detectable_ks(n_effective: float, alpha: float, n_tests: int) -> float:
    """The smallest KS distance the corrected test could call significant at this size."""
    return float(stats.kstwobign.isf(alpha / max(1, n_tests)) / math.sqrt(max(1.0, n_effective)))


def _verdict(
    adjusted_p: float, effect_bands: Sequence[Severity], alpha: float
) -> tuple[bool, Severity, str]:
    """Drifted = significant after correction AND an effect size over its moderate band."""
    severity = _worst(*effect_bands)
    significant = adjusted_p < alpha
    if significant and severity != "none":
        return True, severity, f"drift ({severity})"
    if significant:
        return False, "none", "no drift: detectable but below the effect-size floor"
    if severity != "none":
        return False, "none", "no drift: the difference is within sampling noise"
    return False, "none", "no drift"


def _small_sample_note(
    n_current: int, n_effective: float, thresholds: DriftThresholds, n_tests: int
) -> str:
    if n_current >= thresholds.small_sample_rows:
        return ""
    floor = _detectable_ks(n_effective, thresholds.alpha, n_tests)
    return (
        f" The current sample is small ({n_current} rows): only KS distances above {floor:.2f} "
        "can be judged drift."
    )


# --------------------------------------------------------------------------- against a profile


def profile_covers(profile: Mapping[str, Any] | None, feature_names: Sequence[str]) -> bool:
    """Whether a metadata feature_profile can serve as reference for all these features
    (the caller falls back to the baseline window when it cannot)."""
    if not profile:
        return False
    try:
        for name in feature_names:
            _profile_quantiles(profile, str(name))
    except InvalidInputError:
        return False
    return True


def _profile_quantiles(profile: Mapping[str, Any], feature: str) -> np.ndarray:
    entry = profile.get(feature)
    quantiles = entry.get("quantiles") if isinstance(entry, Mapping) else None
    try:
        q = np.asarray(quantiles, dtype=np.float64)
    except (TypeError, ValueError):
        q = np.empty(0)
    if q.ndim != 1 or q.size < 3 or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0):
        raise InvalidInputError(
            f"The feature_profile has no usable quantiles for feature {feature!r} "
            "(need at least 3 ascending finite numbers); pass reference rows instead."
        )
    return q


def _profile_column(sorted_column: np.ndarray, q: np.ndarray) -> tuple[float, float, float]:
    """PSI over the profile's bins, KS distance to the binned reference CDF, share outside
    [q0, qK], for one sorted current column against quantiles q_0..q_K.

    What quantiles say about the reference CDF F at each distinct value v, taken as q_a..q_b:
    F(v-) <= a/K and F(v) >= b/K (for continuous data both are k/K; at an atom of a discrete
    feature, F is known only to within 1/K). KS is the largest violation of these facts by the
    current CDF, so identical discrete data is not called drift for the profile's coarseness.
    PSI uses the inner quantiles as bin edges (outer bins open-ended) and, at each edge, the
    reference CDF consistent with the profile that is nearest the current one: pinned to b/K
    unless the current sample has an atom there, then within [b/K, min((b+1)/K, a/K + atom)].
    """
    n = sorted_column.size
    k = q.size - 1
    knots = np.unique(q)
    first = np.searchsorted(q, knots, side="left") / k  # a/K
    last = (np.searchsorted(q, knots, side="right") - 1) / k  # b/K
    at_or_below = np.searchsorted(sorted_column, knots, side="right") / n
    below = np.searchsorted(sorted_column, knots, side="left") / n
    ks = float(max(0.0, np.max(last - at_or_below), np.max(below - first)))

    edges = np.isin(knots, q[1:-1])
    atom = at_or_below[edges] - below[edges]
    upper = np.minimum(np.minimum(last[edges] + 1.0 / k, first[edges] + atom), 1.0)
    reference_cdf = np.maximum(last[edges], np.minimum(at_or_below[edges], upper))
    ref_mass = np.diff(np.concatenate(([0.0], reference_cdf, [1.0])))
    cur_mass = np.diff(np.concatenate(([0.0], at_or_below[edges], [1.0])))
    ratio = np.maximum(cur_mass, PSI_EPSILON) / np.maximum(ref_mass, PSI_EPSILON)
    psi = float(np.sum((cur_mass - ref_mass) * np.log(ratio)))
    outside = float(below[0] + (1.0 - at_or_below[-1]))
    return max(psi, 0.0), ks, outside


def drift_against_profile(
    current: np.ndarray,
    feature_names: Sequence[str],
    profile: Mapping[str, Mapping[str, Any]],
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
    *,
    reference_rows: int | None = None,
) -> list[FeatureDrift]:
    """Each feature of `current` against the training profile (PSI + KS to the binned CDF).

    `reference_rows` (training_info.n_samples) makes the p-value account for the profile's own
    sampling noise (effective size n*m/(n+m)); without it the profile is taken as exact.
    """
    names = _names(feature_names)
    matrix = _as_matrix(current, len(names), "current")
    n = matrix.shape[0]
    _require_rows(n, thresholds.min_current_rows, "current")
    quantiles = [_profile_quantiles(profile, name) for name in names]
    n_effective = n * reference_rows / (n + reference_rows) if reference_rows else float(n)

    psi = np.empty(len(names))
    ks = np.empty(len(names))
    outside = np.empty(len(names))
    means = np.empty(len(names))
    for j, name in enumerate(names):
        column = np.sort(matrix[:, j])
        _check_sorted_finite(column, name, "current")
        psi[j], ks[j], outside[j] = _profile_column(column, quantiles[j])
        means[j] = float(column.mean())
    p_values = _ks_asymptotic_pvalue(ks, n_effective)
    adjusted = holm_adjust(p_values)
    note = _small_sample_note(n, n_effective, thresholds, len(names))

    results = []
    for j, name in enumerate(names):
        bands = (
            _band(psi[j], thresholds.psi_moderate, thresholds.psi_significant),
            _band(ks[j], thresholds.ks_moderate, thresholds.ks_significant),
        )
        drifted, severity, verdict = _verdict(float(adjusted[j]), bands, thresholds.alpha)
        detail = (
            f"{verdict}: PSI {psi[j]:.4f} over {quantiles[j].size - 1} reference bins, KS distance "
            f"{ks[j]:.4f} to the binned reference CDF (Holm-adjusted p={adjusted[j]:.3g})"
            f"{_mean_shift_note(profile.get(name), means[j])}; "
            f"{outside[j]:.1%} of values outside the training range.{note}"
        )
        results.append(
            FeatureDrift(
                feature=name,
                test=PROFILE_TEST,
                statistic=float(ks[j]),
                p_value=float(p_values[j]),
                drift_score=float(psi[j]),
                drifted=drifted,
                severity=severity,
                n_reference=reference_rows,
                n_current=n,
                detail=detail,
                p_value_adjusted=float(adjusted[j]),
            )
        )
    return results


def _mean_shift_note(entry: Any, current_mean: float) -> str:
    if not isinstance(entry, Mapping):
        return ""
    mean, std = entry.get("mean"), entry.get("std")
    if not isinstance(mean, (int, float)) or not isinstance(std, (int, float)):
        return ""
    return f"; mean moved {(current_mean - mean) / _scale(float(std)):+.2f} reference sd"


# --------------------------------------------------------------------------- against rows


def drift_against_sample(
    current: np.ndarray,
    reference: np.ndarray,
    feature_names: Sequence[str],
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> list[FeatureDrift]:
    """Each feature of `current` against reference rows: two-sample KS and the Wasserstein
    distance in reference standard deviations."""
    names = _names(feature_names)
    cur = _as_matrix(current, len(names), "current")
    ref = _as_matrix(reference, len(names), "reference")
    n1, n2 = ref.shape[0], cur.shape[0]
    _require_rows(n2, thresholds.min_current_rows, "current")
    _require_rows(n1, thresholds.min_reference_rows, "reference")

    ks, wasserstein, std, p_values = _two_sample_columns(ref, cur, names)
    normalized = wasserstein / np.array([_scale(s) for s in std])
    adjusted = holm_adjust(p_values)
    method = "exact" if max(n1, n2) <= EXACT_KS_MAX_ROWS else "asymptotic"
    note = _small_sample_note(n2, n1 * n2 / (n1 + n2), thresholds, len(names))

    results = []
    for j, name in enumerate(names):
        bands = (
            _band(
                normalized[j], thresholds.wasserstein_moderate, thresholds.wasserstein_significant
            ),
            _band(ks[j], thresholds.ks_moderate, thresholds.ks_significant),
        )
        drifted, severity, verdict = _verdict(float(adjusted[j]), bands, thresholds.alpha)
        unit = "reference sd" if std[j] > 0 else "raw units (constant reference)"
        detail = (
            f"{verdict}: two-sample KS D={ks[j]:.4f} ({method} p={p_values[j]:.3g}, Holm-adjusted "
            f"{adjusted[j]:.3g}), Wasserstein {normalized[j]:.4f} {unit}.{note}"
        )
        results.append(
            FeatureDrift(
                feature=name,
                test=SAMPLE_TEST,
                statistic=float(ks[j]),
                p_value=float(p_values[j]),
                drift_score=float(normalized[j]),
                drifted=drifted,
                severity=severity,
                n_reference=n1,
                n_current=n2,
                detail=detail,
                p_value_adjusted=float(adjusted[j]),
            )
        )
    return results


def profile_from_sample(
    sample: np.ndarray, feature_names: Sequence[str], n_bins: int = 10
) -> dict[str, dict[str, Any]]:
    """The metadata feature_profile of a training matrix: 0%, 10%, ..., 100% quantiles, mean,
    std, min, max per feature (what the training side writes; also used by tests)."""
    names = _names(feature_names)
    matrix = _as_matrix(sample, len(names), "training")
    levels = np.linspace(0.0, 1.0, n_bins + 1)
    quantiles = np.quantile(matrix, levels, axis=0)
    return {
        name: {
            "mean": float(matrix[:, j].mean()),
            "std": float(matrix[:, j].std(ddof=1)),
            "min": float(quantiles[0, j]),
            "max": float(quantiles[-1, j]),
            "quantiles": [float(v) for v in quantiles[:, j]],
        }
        for j, name in enumerate(names)
    }


# --------------------------------------------------------------------------- dataset verdict


def dataset_verdict(
    features: Sequence[FeatureDrift], share_threshold: float = DEFAULT_THRESHOLDS.share_threshold
) -> DatasetVerdict:
    """Dataset drift when the share of drifted features reaches the threshold (>=)."""
    drifted = [f.feature for f in features if f.drifted]
    share = len(drifted) / len(features) if features else 0.0
    return DatasetVerdict(drifted, share, bool(features) and share >= share_threshold)


# --------------------------------------------------------------------------- prediction drift


def _cohen_h(rate: float, expected: float) -> float:
    """Effect size between two proportions (arcsine scale): the same gap counts more near 0."""
    return 2.0 * math.asin(math.sqrt(rate)) - 2.0 * math.asin(math.sqrt(expected))


def _as_flags(values: Any, what: str) -> np.ndarray:
    flags = np.asarray(values)
    if flags.ndim != 1:
        raise InvalidInputError(f"The {what} flags must be one value per row.")
    return flags.astype(bool)


def _rate_test(
    n_anomalies: int, n: int, expected_rate: float | None, reference_flags: np.ndarray | None
) -> tuple[str | None, float | None, float | None, float | None]:
    """(test name, expected rate, z, p-value) for the current anomaly rate."""
    rate = n_anomalies / n
    if expected_rate is not None:
        result = stats.binomtest(n_anomalies, n, expected_rate)
        spread = math.sqrt(expected_rate * (1 - expected_rate) / n)
        z = (rate - expected_rate) / spread if spread > 0 else None
        return "binomial_exact", expected_rate, z, float(result.pvalue)
    if reference_flags is not None:
        m = reference_flags.size
        base = float(reference_flags.mean())
        pooled = (n_anomalies + reference_flags.sum()) / (n + m)
        spread = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
        if spread == 0:
            return "two_proportion_z", base, 0.0, 1.0
        z = (rate - base) / spread
        return "two_proportion_z", base, z, float(2 * stats.norm.sf(abs(z)))
    return None, None, None, None


def _score_test(
    current_scores: Any, reference_scores: Any, thresholds: DriftThresholds
) -> dict[str, Any] | None:
    cur = np.asarray(current_scores, dtype=np.float64).reshape(-1, 1)
    ref = np.asarray(reference_scores, dtype=np.float64).reshape(-1, 1)
    if ref.shape[0] < thresholds.min_reference_rows or cur.shape[0] < thresholds.min_current_rows:
        return None
    ks, wasserstein, std, p_values = _two_sample_columns(ref, cur, ["score"])
    normalized = float(wasserstein[0] / _scale(float(std[0])))
    bands = (
        _band(normalized, thresholds.wasserstein_moderate, thresholds.wasserstein_significant),
        _band(float(ks[0]), thresholds.ks_moderate, thresholds.ks_significant),
    )
    drifted, severity, _ = _verdict(float(p_values[0]), bands, thresholds.alpha)
    return {
        "test": SAMPLE_TEST,
        "statistic": float(ks[0]),
        "p_value": float(p_values[0]),
        "drift_score": normalized,
        "drifted": drifted,
        "severity": severity,
        "n_reference": int(ref.shape[0]),
        "n_current": int(cur.shape[0]),
    }


def prediction_drift(
    current_is_anomaly: np.ndarray,
    expected_rate: float | None = None,
    current_scores: np.ndarray | None = None,
    reference_scores: np.ndarray | None = None,
    reference_is_anomaly: np.ndarray | None = None,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
    *,
    expected_source: str | None = None,
) -> dict[str, Any]:
    """The current anomaly rate against the expected one, and the score distribution against
    the baseline's scores.

    `expected_rate` (training contamination) is a fixed target: exact binomial test. Without it a
    baseline rate (`reference_is_anomaly`) is itself an estimate: pooled two-proportion z-test.
    Drifted = p < anomaly_rate_alpha AND Cohen's h over its moderate band, or the score test drifts.
    """
    flags = _as_flags(current_is_anomaly, "current anomaly")
    n = flags.size
    _require_rows(n, thresholds.min_current_rows, "current")
    if expected_rate is not None and not 0.0 <= float(expected_rate) <= 1.0:
        raise InvalidInputError(
            f"The expected anomaly rate must be in [0, 1], not {expected_rate}."
        )
    reference_flags = None
    if expected_rate is None and reference_is_anomaly is not None:
        reference_flags = _as_flags(reference_is_anomaly, "baseline anomaly")
        if reference_flags.size < thresholds.min_reference_rows:
            reference_flags = None
    n_anomalies = int(flags.sum())
    rate = n_anomalies / n
    test, expected, z, p_value = _rate_test(
        n_anomalies, n, None if expected_rate is None else float(expected_rate), reference_flags
    )
    source = None
    if expected_rate is not None:
        source = expected_source or "training_contamination"
    elif reference_flags is not None:
        source = expected_source or "baseline"

    effect = _cohen_h(rate, expected) if expected is not None else None
    rate_severity: Severity = "none"
    if effect is not None and p_value is not None and p_value < thresholds.anomaly_rate_alpha:
        rate_severity = _band(
            abs(effect),
            thresholds.anomaly_rate_effect_moderate,
            thresholds.anomaly_rate_effect_significant,
        )
    score = None
    if current_scores is not None and reference_scores is not None:
        score = _score_test(current_scores, reference_scores, thresholds)
    score_severity: Severity = score["severity"] if score else "none"
    severity = _worst(rate_severity, score_severity)

    parts = [f"anomaly rate {rate:.2%} of {n} rows"]
    if expected is not None:
        parts.append(
            f"expected {expected:.2%} ({source}; {test} p={p_value:.3g}, Cohen's h {effect:+.2f})"
        )
    else:
        parts.append("no expected rate (no training contamination and no baseline)")
    if score:
        parts.append(
            f"scores vs baseline: KS D={score['statistic']:.3f}, p={score['p_value']:.3g}, "
            f"Wasserstein {score['drift_score']:.3f} sd"
        )
    elif current_scores is not None:
        parts.append("no score test (no baseline scores, or too few)")
    return {
        "anomaly_rate": rate,
        "n_current": n,
        "expected_rate": expected,
        "expected_source": source,
        "rate_test": test,
        "z": z,
        "p_value": p_value,
        "effect_size": effect,
        "rate_drifted": rate_severity != "none",
        "score_test": score,
        "drifted": severity != "none",
        "severity": severity,
        "detail": "; ".join(parts) + ".",
    }


# --------------------------------------------------------------------------- performance drift


def _labels(values: Any, what: str) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1:
        raise InvalidInputError(f"The {what} labels must be one value per row.")
    if labels.size and not np.isin(labels, (-1, 1)).all():
        raise InvalidInputError(f"The {what} labels must be -1 (anomaly) or 1 (normal).")
    return labels.astype(np.int8)


def _f1(tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def _f1_pvalue(cells: np.ndarray, expected_f1: float, draws: int) -> float:
    """One-sided p-value that the true F1 is not below the expected one: a parametric bootstrap
    of the confusion cells (multinomial at the observed shares), seeded so reports repeat."""
    rng = np.random.default_rng(0)
    resampled = rng.multinomial(int(cells.sum()), cells / cells.sum(), size=draws)
    f1 = _f1(resampled[:, 0], resampled[:, 1], resampled[:, 2])
    at_or_above = int(np.sum(np.nan_to_num(f1, nan=0.0) >= expected_f1))
    return (at_or_above + 1) / (draws + 1)


def _expected_f1(expected: Mapping[str, Any]) -> float | None:
    for key in ("f1_score", "f1"):
        value = expected.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    precision, recall = expected.get("precision"), expected.get("recall")
    if (
        isinstance(precision, (int, float))
        and isinstance(recall, (int, float))
        and precision + recall > 0
    ):
        return 2 * precision * recall / (precision + recall)
    return None


def performance_drift(
    y_true: np.ndarray | None,
    y_pred: np.ndarray | None,
    expected: Mapping[str, Any] | None,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any] | None:
    """Precision, recall and F1 of the anomaly class (-1) on labelled recent predictions, against
    the metadata's evaluation_metrics. None without feedback.

    Drifted = the F1 drop reaches `performance_drop` AND the bootstrap says the observed F1 is
    below the expected one beyond sampling noise. Too few labels answer `insufficient_data: true`
    instead of raising, so the rest of the report still answers.
    """
    if y_true is None or y_pred is None:
        return None
    truth, predicted = _labels(y_true, "feedback"), _labels(y_pred, "predicted")
    if truth.size == 0:
        return None
    if truth.size != predicted.size:
        raise InvalidInputError(
            f"There are {truth.size} feedback labels for {predicted.size} predictions; "
            "they must match."
        )
    tp = int(np.sum((truth == -1) & (predicted == -1)))
    fp = int(np.sum((truth == 1) & (predicted == -1)))
    fn = int(np.sum((truth == -1) & (predicted == 1)))
    tn = int(truth.size - tp - fp - fn)
    observed = {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "f1_score": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        "accuracy": (tp + tn) / truth.size,
    }
    expected_metrics = {
        k: float(v)
        for k, v in (expected or {}).items()
        if k in ("precision", "recall", "f1_score", "accuracy") and isinstance(v, (int, float))
    }
    expected_f1 = _expected_f1(expected or {})
    answer: dict[str, Any] = {
        "n_labelled": int(truth.size),
        "observed": observed,
        "expected": expected_metrics,
        "drops": {
            k: round(expected_metrics[k] - observed[k], 6)
            for k in expected_metrics
            if observed.get(k) is not None
        },
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "p_value": None,
        "insufficient_data": False,
        "drifted": False,
        "severity": "none",
    }
    support = tp + fp + fn
    if truth.size < thresholds.min_labelled_rows or support < thresholds.min_labelled_anomalies:
        answer["insufficient_data"] = True
        answer["detail"] = (
            f"Not judged: {truth.size} labelled rows with {support} anomalies in truth or "
            "prediction; "
            f"performance drift needs {thresholds.min_labelled_rows} rows and "
            f"{thresholds.min_labelled_anomalies} anomalies."
        )
        return answer
    if expected_f1 is None:
        answer["detail"] = (
            "Not judged: the metadata has no evaluation_metrics F1 (or precision and recall)."
        )
        return answer
    f1 = float(observed["f1_score"])  # support > 0, so defined
    drop = expected_f1 - f1
    p_value = _f1_pvalue(
        np.array([tp, fp, fn, tn], dtype=np.float64), expected_f1, thresholds.bootstrap_draws
    )
    severity: Severity = "none"
    if p_value < thresholds.performance_alpha:
        severity = _band(drop, thresholds.performance_drop, thresholds.performance_drop_significant)
    answer.update(
        p_value=p_value,
        drifted=severity != "none",
        severity=severity,
        detail=(
            f"F1 {f1:.3f} on {truth.size} labelled rows vs {expected_f1:.3f} at evaluation "
            f"(drop {drop:+.3f}, bootstrap p={p_value:.3g})."
        ),
    )
    return answer


def concept_drift(
    performance: Mapping[str, Any] | None, dataset_drift: bool
) -> dict[str, Any] | None:
    """Concept drift: performance drifted while the inputs did not, so the relation between
    inputs and anomalies changed. None without feedback."""
    if performance is None:
        return None
    drifted = bool(performance.get("drifted")) and not dataset_drift
    if drifted:
        detail = "Performance dropped while the input distribution did not drift."
    elif performance.get("drifted"):
        detail = (
            "Performance dropped together with input drift: explained by the inputs (data drift)."
        )
    else:
        detail = "Performance holds: no concept drift."
    return {
        "drifted": drifted,
        "severity": performance.get("severity", "none") if drifted else "none",
        "detail": detail,
    }


__all__ = [
    "DEFAULT_THRESHOLDS",
    "DatasetVerdict",
    "DriftThresholds",
    "FeatureDrift",
    "build_alerts",
    "concept_drift",
    "dataset_verdict",
    "drift_against_profile",
    "drift_against_sample",
    "holm_adjust",
    "performance_drift",
    "prediction_drift",
    "profile_covers",
    "profile_from_sample",
]
