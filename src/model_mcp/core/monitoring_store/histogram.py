"""A mergeable latency histogram: fixed log-spaced bins, so buckets add up across minutes and processes.

40 bins per decade from 1 microsecond to 100 seconds (each bin 5.9 % wide), plus one bin below and
one above. A percentile is interpolated inside its bin on the log scale, so it is within one bin
width (under 6 %) of the exact percentile of the same latencies, and usually much closer.

Stored trimmed: the index of the first non-empty bin (uint16) followed by the uint32 counts up to
the last non-empty bin. One-row predicts fill a decade or so: 100 to 200 bytes a bucket.
"""

from __future__ import annotations

import math

import numpy as np

BINS_PER_DECADE = 40
LOW_MS = 1e-3
DECADES = 8  # 1 us .. 100 s
N_BINS = BINS_PER_DECADE * DECADES + 2  # + underflow and overflow
_LOG_LOW = math.log10(LOW_MS)


def bin_of(latency_ms: float) -> int:
    """The bin index of one latency in milliseconds."""
    if latency_ms <= LOW_MS:
        return 0
    index = int((math.log10(latency_ms) - _LOG_LOW) * BINS_PER_DECADE) + 1
    return index if index < N_BINS else N_BINS - 1


def empty() -> np.ndarray:
    return np.zeros(N_BINS, dtype=np.int64)


def encode(counts: np.ndarray) -> bytes | None:
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return None
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    return lo.to_bytes(2, "little") + counts[lo:hi + 1].astype("<u4").tobytes()


def add_encoded(into: np.ndarray, blob: bytes | None) -> None:
    """Add a stored histogram into `into` (length N_BINS)."""
    if not blob:
        return
    lo = int.from_bytes(blob[:2], "little")
    counts = np.frombuffer(blob, dtype="<u4", offset=2)
    into[lo:lo + counts.size] += counts


def _edges(index: int) -> tuple[float, float]:
    """(low, high) log10 edges of a bin; the outer bins are given one bin's width."""
    low = _LOG_LOW + (index - 1) / BINS_PER_DECADE
    return low, low + 1 / BINS_PER_DECADE


def percentiles_of_rows(counts: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """`percentiles` for every row of a (n, N_BINS) array at once: (n, len(levels)), NaN for empty rows."""
    counts = np.asarray(counts, dtype=np.int64)
    cumulative = np.cumsum(counts, axis=1)
    total = cumulative[:, -1]
    answers = np.full((counts.shape[0], len(levels)), np.nan)
    filled = total > 0
    if not filled.any():
        return answers
    cumulative, counts_f, total_f = cumulative[filled], counts[filled], total[filled]
    rows = np.arange(cumulative.shape[0])
    for j, level in enumerate(levels):
        rank = level / 100 * (total_f - 1)
        index = np.minimum((cumulative <= rank[:, None]).sum(axis=1), N_BINS - 1)
        before = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0)
        inside = counts_f[rows, index]
        fraction = np.clip(np.where(inside > 0, (rank - before + 0.5) / np.maximum(inside, 1), 0.5), 0.0, 1.0)
        low = _LOG_LOW + (index - 1) / BINS_PER_DECADE
        answers[filled, j] = 10 ** (low + fraction / BINS_PER_DECADE)
    return answers


def percentiles(counts: np.ndarray, levels: tuple[float, ...] = (50, 95, 99)) -> list[float | None]:
    """Percentiles in milliseconds (None for an empty histogram), log-interpolated inside a bin.

    The rank convention is numpy's default (linear): the q-th percentile of n values sits at rank
    q/100 * (n - 1) counting from 0.
    """
    total = int(counts.sum())
    if total == 0:
        return [None for _ in levels]
    cumulative = np.cumsum(counts)
    answers: list[float | None] = []
    for level in levels:
        rank = level / 100 * (total - 1)  # 0-based
        index = int(np.searchsorted(cumulative, rank, side="right"))
        index = min(index, N_BINS - 1)
        before = int(cumulative[index - 1]) if index > 0 else 0
        inside = int(counts[index])
        fraction = (rank - before + 0.5) / inside if inside else 0.5
        low, high = _edges(index)
        answers.append(10 ** (low + min(max(fraction, 0.0), 1.0) * (high - low)))
    return answers
