"""A whole drift report against a bare loop of scipy.stats.ks_2samp, measured in the same run.

    python benchmarks/bench_drift.py [--rows 100000] [--columns 50] [--repeats 3]

Builds seeded reference and current matrices (current has a 1-sigma shift on a few columns),
then times, best of N, interleaved so both sides see the same machine state:
  ours:     drift_against_sample + dataset_verdict + build_alerts
  baseline: for each column pair, scipy.stats.ks_2samp(ref[:, j], cur[:, j]) (default method)
and measures the peak memory our report allocates (tracemalloc, which numpy reports to) against
the size of the data. Targets: time ratio <= 0.5, peak extra memory < 2x the data. The exit
status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy import stats

from model_mcp.core.drift import (
    build_alerts,
    dataset_verdict,
    drift_against_profile,
    drift_against_sample,
    profile_from_sample,
)

TIME_RATIO_TARGET = 0.5
MEMORY_RATIO_TARGET = 2.0


def make_data(rows: int, columns: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(rows, columns))
    current = rng.normal(size=(rows, columns))
    current[:, : max(1, columns // 10)] += 1.0  # a few drifted columns, so alerts are built too
    return reference, current, [f"x{j}" for j in range(columns)]


def our_report(
    reference: np.ndarray, current: np.ndarray, names: list[str]
) -> list[dict[str, str]]:
    features = drift_against_sample(current, reference, names)
    verdict = dataset_verdict(features)
    return build_alerts(features, verdict)


def ks_loop(reference: np.ndarray, current: np.ndarray) -> list[float]:
    return [
        stats.ks_2samp(reference[:, j], current[:, j]).pvalue for j in range(reference.shape[1])
    ]


def best_of(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """Best wall time of each callable, alternating them so neither gets a warmer machine."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def peak_memory(run: Callable[[], object]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    reference, current, names = make_data(args.rows, args.columns)
    data_bytes = reference.nbytes + current.nbytes

    # Same answers first: our KS p-values are scipy's for every column.
    features = drift_against_sample(current, reference, names)
    scipy_p = ks_loop(reference, current)
    max_p_gap = max(abs(f.p_value - p) for f, p in zip(features, scipy_p, strict=True))

    ours_s, loop_s = best_of(
        args.repeats,
        lambda: our_report(reference, current, names),
        lambda: ks_loop(reference, current),
    )
    peak = peak_memory(lambda: our_report(reference, current, names))
    profile = profile_from_sample(reference, names)
    (profile_s,) = best_of(args.repeats, lambda: drift_against_profile(current, names, profile))
    time_ratio = ours_s / loop_s
    memory_ratio = peak / data_bytes

    print(
        f"drift report on {args.rows:,} x {args.columns} reference and current "
        f"(best of {args.repeats})"
    )
    print(f"{'measure':<44}{'value':>14}")
    print(f"{'ours: drift_against_sample+verdict+alerts':<44}{ours_s * 1e3:>11.1f} ms")
    print(f"{'baseline: loop of scipy.stats.ks_2samp':<44}{loop_s * 1e3:>11.1f} ms")
    print(f"{'time ratio (target <= 0.5)':<44}{time_ratio:>14.3f}")
    print(f"{'info: drift_against_profile, same current':<44}{profile_s * 1e3:>11.1f} ms")
    print(f"{'data size (reference + current)':<44}{data_bytes / 2**20:>11.1f} MiB")
    print(f"{'peak memory allocated by our report':<44}{peak / 2**20:>11.1f} MiB")
    print(f"{'memory ratio (target < 2.0)':<44}{memory_ratio:>14.3f}")
    print(f"{'largest p-value gap to ks_2samp':<44}{max_p_gap:>14.2e}")
    print(f"{'features flagged':<44}{sum(f.drifted for f in features):>14d}")

    ok = time_ratio <= TIME_RATIO_TARGET and memory_ratio < MEMORY_RATIO_TARGET
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
