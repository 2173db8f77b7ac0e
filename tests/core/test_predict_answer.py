"""Scores rounded to 6 significant digits: the one-pass path of the usual scores gives exactly
what the masked path gives, for every magnitude, sign, zero and non-finite value."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model_mcp.core.predict_answer import SCORE_DIGITS, round_significant


def _masked(values: np.ndarray, digits: int = SCORE_DIGITS) -> np.ndarray:
    """The general path of round_significant, written out: scale each finite non-zero value by
    10**k (k = digits - 1 - floor(log10|x|)), round, scale back by the exact power of ten."""
    out = values.copy()
    nonzero = np.isfinite(values) & (values != 0)
    x = values[nonzero]
    k = np.clip(digits - 1 - np.floor(np.log10(np.abs(x))).astype(np.int64), -300, 300)
    up = k >= 0
    rounded = np.empty_like(x)
    rounded[up] = np.round(x[up] * 10.0 ** k[up]) / 10.0 ** k[up]
    rounded[~up] = np.round(x[~up] / 10.0 ** (-k[~up])) * 10.0 ** (-k[~up])
    out[nonzero] = rounded
    return out


@settings(max_examples=200, deadline=None, derandomize=True)
@given(exponents=st.lists(st.integers(-20, 8), min_size=17, max_size=120), seed=st.integers(0, 2**32 - 1),
       specials=st.lists(st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1e300, -1e-300]), max_size=3))
def test_the_one_pass_rounding_equals_the_masked_one(exponents: list[int], seed: int, specials: list[float]) -> None:
    rng = np.random.default_rng(seed)
    values = rng.uniform(-10, 10, size=len(exponents)) * 10.0 ** np.array(exponents)
    for value in (values, np.concatenate([values, specials])):
        got, expected = round_significant(value), _masked(value)
        assert np.array_equal(got, expected, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_typical_scores_print_at_six_digits() -> None:
    scores = np.random.default_rng(1).normal(scale=0.1, size=500)
    assert [repr(v) for v in round_significant(scores).tolist()] == [repr(float(f"{v:.6g}")) for v in scores]
