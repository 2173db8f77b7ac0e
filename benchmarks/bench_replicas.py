"""Three replicas as server processes on one PostgreSQL database and one shared artifact folder (issue 16).

    MODEL_MCP_TEST_POSTGRES_URL=postgresql://root@127.0.0.1:5432/root python benchmarks/bench_replicas.py \
        [--seconds 8] [--rounds 3] [--deploys 36]

Three `model-mcp serve --transport http` processes (tests/reliability/replicas.py: each its own home,
MODEL_MCP_DATABASE_URL on a scratch database, MODEL_MCP_ARTIFACT_ROOT on one folder), serving the
samples' IsolationForest (50 trees, 8 features). Two measurements:

1. Predict throughput, one replica against three, under the same client load: 3 client processes x 2
   threads, each thread sending one-row REST predicts back to back over its own keep-alive
   connection for `--seconds`; "one" sends every thread to replica a, "three" spreads the six threads
   over the three replicas (two each). The three processes run in both cases (the idle ones idle);
   the two take turns for `--rounds` rounds, in alternating order, so that load from elsewhere falls
   on both. Everything (servers, clients, PostgreSQL) shares this machine's cores: on 2 cores the
   figure shows what running three processes costs or saves on the same CPU, not scaling.
2. Deploy propagation: `--deploys` deploys alternating between two versions, each through the next
   replica in turn; from the deploy's answer, the other two replicas are polled with one-row predicts
   until each answers the new version. The time covers the NOTIFY, the follower's registry read, its
   copy of the version into its package cache (the first time) or the hash of its copy, and the
   model's load; p50, p95 and max over all (deploy, follower) pairs.

Prints the figures with the load average (1 min) before and after each, the versions, and exits.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.reliability.replicas

from bench_registry import _p50, _p95, scratch_database

CLIENT_PROCESSES = 3
THREADS_PER_PROCESS = 2
ROW = [[0.1, -0.2, 0.3, 0.0, 1.1, -0.7, 0.4, 0.2]]
MODEL = "network-anomaly"


def _client(ports: list[int], start_at: float, seconds: float) -> tuple[int, list[float], int]:
    """One client process: a thread per port in `ports`, one-row predicts back to back from `start_at`
    (wall clock) for `seconds`. Answers (calls, latencies in ms, errors)."""
    import httpx2

    latencies: list[float] = []
    counts = {"calls": 0, "errors": 0}
    lock = threading.Lock()

    def run(port: int) -> None:
        mine: list[float] = []
        errors = 0
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as http:
            http.post("/predict", json={"rows": ROW, "model_name": MODEL})  # connect before the clock
            time.sleep(max(0.0, start_at - time.time()))
            end = time.perf_counter() + seconds
            while (now := time.perf_counter()) < end:
                response = http.post("/predict", json={"rows": ROW, "model_name": MODEL})
                mine.append((time.perf_counter() - now) * 1000)
                errors += response.status_code != 200
        with lock:
            latencies.extend(mine)
            counts["calls"] += len(mine)
            counts["errors"] += errors

    threads = [threading.Thread(target=run, args=(port,)) for port in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["calls"], latencies, counts["errors"]


def _load() -> float:
    return os.getloadavg()[0]


def throughput(pool: ProcessPoolExecutor, ports: list[int], spread: bool, seconds: float) -> dict[str, float]:
    """Six client threads in three processes, to replica a only or two per replica."""
    plan = []
    for p in range(CLIENT_PROCESSES):
        indexes = [p * THREADS_PER_PROCESS + t for t in range(THREADS_PER_PROCESS)]
        plan.append([ports[i % len(ports)] if spread else ports[0] for i in indexes])
    start_at = time.time() + 1.5  # every process connected and waiting
    load_before = _load()
    results = list(pool.map(_client, plan, [start_at] * len(plan), [seconds] * len(plan)))
    calls = sum(r[0] for r in results)
    latencies = [value for r in results for value in r[1]]
    return {"rps": calls / seconds, "p50": _p50(latencies), "p95": _p95(latencies),
            "errors": sum(r[2] for r in results), "load_before": load_before, "load_after": _load()}


def propagation(replicas: list, deploys: int) -> tuple[list[float], list[float], float, float]:
    from tests.reliability.replicas import ok, wait_serving

    load_before = _load()
    delays: list[float] = []
    deploy_ms: list[float] = []
    for i in range(deploys):
        deployer = replicas[i % 3]
        version = "bench2" if i % 2 == 0 else "bench1"
        started = time.perf_counter()
        answer = ok(deployer.deploy(version), deployer)
        answered = time.perf_counter()
        deploy_ms.append((answered - started) * 1000)
        assert answer["deployed_version"] == version
        followers = [r for r in replicas if r is not deployer]
        with ThreadPoolExecutor(len(followers)) as threads:
            delays += [s * 1000 for s in threads.map(
                lambda r, v=version, t=answered: wait_serving(r, ROW, MODEL, v, since=t, timeout=30), followers)]
        time.sleep(0.2)
    return delays, deploy_ms, load_before, _load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deploys", type=int, default=36)
    args = parser.parse_args()
    server = os.environ.get("MODEL_MCP_TEST_POSTGRES_URL")
    if not server:
        print("set MODEL_MCP_TEST_POSTGRES_URL (for example postgresql://root@127.0.0.1:5432/root)")
        return 2
    import psycopg

    from model_mcp import samples
    from tests.postgres import query
    from tests.reliability.replicas import Replica, ok, replica_env, start_all, wait_serving

    with scratch_database(server) as url, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = replica_env(url, root / "shared", {"MODEL_MCP_LOG_LEVEL": "WARNING"})
        replicas = [Replica(name, root / name, env) for name in ("a", "b", "c")]
        try:
            start_all(replicas)
            for version, seed in (("bench1", 1), ("bench2", 2)):
                data = samples.build_package(root / f"{version}.zip", version=version, model_name=MODEL, seed=seed)
                ok(replicas[0].import_zip(data.read_bytes()), replicas[0])
            ok(replicas[0].deploy("bench1"), replicas[0])
            for replica in replicas:
                wait_serving(replica, ROW, MODEL, "bench1")
            ports = [r.port for r in replicas]

            runs: dict[str, list[dict[str, float]]] = {"one": [], "three": []}
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=context) as pool:
                throughput(pool, ports, True, 2.0)  # warm-up: client imports, every replica's connections
                for r in range(args.rounds):
                    for label in (("one", "three") if r % 2 == 0 else ("three", "one")):
                        runs[label].append(throughput(pool, ports, label == "three", args.seconds))
            delays, deploy_ms, prop_before, prop_after = propagation(replicas, args.deploys)
            pg_version = query(url, "SHOW server_version")[0][0]
        finally:
            for replica in replicas:
                replica.stop()

    print(f"Python {sys.version.split()[0]}, PostgreSQL {pg_version}, psycopg {psycopg.__version__}, "
          f"{os.cpu_count()} CPUs; servers, clients and PostgreSQL on this machine")
    print()
    print(f"one-row REST predicts, {CLIENT_PROCESSES * THREADS_PER_PROCESS} client threads in "
          f"{CLIENT_PROCESSES} processes, {args.seconds:g} s per run:")
    print("| replicas | run | predicts/s | p50 ms | p95 ms | errors | load before / after |")
    print("|---|---|---|---|---|---|---|")
    for label in ("one", "three"):
        for i, run in enumerate(runs[label], 1):
            print(f"| {label} | {i} | {run['rps']:.0f} | {run['p50']:.2f} | {run['p95']:.2f} | {run['errors']:.0f} "
                  f"| {run['load_before']:.2f} / {run['load_after']:.2f} |")
    median = {label: statistics.median(run["rps"] for run in runs[label]) for label in runs}
    print(f"median predicts/s: one {median['one']:.0f}, three {median['three']:.0f} "
          f"(three / one = {median['three'] / median['one']:.2f})")
    print()
    print(f"deploy propagation, {args.deploys} deploys x 2 followers ({len(delays)} samples), from the deploy's "
          f"answer to the follower's first predict answering the new version: p50 {_p50(delays):.1f} ms, "
          f"p95 {_p95(delays):.1f} ms, max {max(delays):.1f} ms; the deploy call itself p50 "
          f"{_p50(deploy_ms):.1f} ms; load {prop_before:.2f} / {prop_after:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
