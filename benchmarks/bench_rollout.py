"""The primary's one-row predict with a shadow attached vs without (issue: safe rollout; target: p50
grows by at most 5 %).

    python benchmarks/bench_rollout.py [--calls 2000] [--blocks 6]

IsolationForest(n_estimators=100) as primary and as shadow (another fit), 8 features, Runtime.predict
with rows as Python lists (what a JSON request gives). Blocks of `calls` one-row predicts alternate
between the shadow detached and attached (the same Runtime; the shadow's worker thread scores the
queued rows off the request path, batching what accumulated), so a slow moment of the machine hits
both alike. Prints the p50 and p95 of each, their ratio, and the shadow's accounting (rows offered,
compared, dropped) at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402

from model_mcp.core.rollouts.live import LiveRollout  # noqa: E402
from model_mcp.core.runtime import ResidentModel, Runtime  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 8))
    names = [f"f{i}" for i in range(8)]
    primary = ResidentModel.create(version="v1", model_name="m", feature_names=names,
                                   estimator=IsolationForest(n_estimators=100, random_state=0).fit(X))
    shadow = ResidentModel.create(version="v2", model_name="m", feature_names=names,
                                  estimator=IsolationForest(n_estimators=100, random_state=1).fit(X))
    runtime = Runtime()
    runtime.install(primary)
    rows = [rng.normal(size=(1, 8)).tolist() for _ in range(256)]
    live = LiveRollout(model_name="m", mode="shadow", deployment=runtime.new_deployment(shadow),
                       primary_version="v1", started_at="bench", traffic_percent=None)
    live.start()
    for i in range(500):  # warm both paths
        runtime.predict(rows[i % 256])
        live.offer(np.asarray(rows[i % 256]), np.ones(1, dtype=np.int64), np.zeros(1))
    live.drain()
    samples: dict[str, list[float]] = {"without shadow": [], "with shadow": []}
    for block in range(args.blocks * 2):
        attached = block % 2 == 1
        if attached:
            runtime.attach_rollout(live)
        else:
            runtime.detach_rollout("m")
            live.drain()
        key = "with shadow" if attached else "without shadow"
        for i in range(args.calls):
            started = time.perf_counter()
            runtime.predict(rows[i % 256])
            samples[key].append((time.perf_counter() - started) * 1e6)
    runtime.detach_rollout("m")
    live.drain()
    live.stop()
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    print(f"2 CPUs, load average {load}; Python {platform.python_version()}; {args.blocks} blocks of {args.calls} "
          "one-row predicts each way, interleaved")
    p50 = {}
    for key, values in samples.items():
        p50[key] = statistics.median(values)
        print(f"{key:15} p50 {p50[key]:8.1f} us   p95 {np.percentile(values, 95):8.1f} us")
    ratio = p50["with shadow"] / p50["without shadow"]
    print(f"p50 with / without: {ratio:.3f} (target <= 1.05)")
    comparison = live.comparison()
    offered = args.blocks * args.calls + 500
    print(f"shadow: {comparison['compared_rows']} rows compared of {offered} offered, "
          f"{comparison['dropped_rows']} dropped, agreement {comparison['agreeing_rows'] / max(1, comparison['compared_rows']):.3f}")


if __name__ == "__main__":
    main()
