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
    return np.uint16(lo).tobytes() + counts[lo:hi + 1].astype(np.uint32).tobytes()


def add_encoded(into: np.ndarray, blob: bytes | None) -> None:
    """Add a stored histogram into `into` (length N_BINS)."""
    if not blob:
        return
    lo = int(np.frombuffer(blob[:2], dtype=np.uint16)[0])
    counts = np.frombuffer(blob[2:], dtype=np.uint32)
    into[lo:lo + counts.size] += counts


def _edges(index: int) -> tuple[float, float]:
    """(low, high) log10 edges of a bin; the outer bins are given one bin's width."""
    low = _LOG_LOW + (index - 1) / BINS_PER_DECADE
    return low, low + 1 / BINS_PER_DECADE


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
