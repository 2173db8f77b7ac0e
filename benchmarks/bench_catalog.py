"""Catalog search over 10,000 registered versions (issue: several models at once; target < 100 ms).

    python benchmarks/bench_catalog.py [--versions 10000] [--repeats 20]

Builds a home whose registry.json holds N entries across 50 model names, each with tags, a
description, a semantic version and 8 feature names (as entries registered by this server carry
them), then times `ModelManager.list_models` in-process, medians in ms:

  plain        list_models(limit=20): the registry read (cached by its stat), sort, first page.
  query        list_models(query="payments edge", limit=20): two words against every entry's text.
  tag+quality  list_models(tag="prod", min_quality_score=80, limit=20).
  semver sort  list_models(model_name=..., sort="semantic_version").
  cold query   the first query after a fresh manager (search text built from the entries).

The first call of a fresh process parses registry.json (about 6 MB here); that is the `cold` row.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings


def build_home(home: Path, n: int) -> None:
    entries = {}
    for i in range(n):
        name = ("payments", "network", "web", "fraud", "iot")[i % 5] + f"-{i % 50:02d}"
        version = f"v{i:06d}"
        entries[version] = {
            "version": version, "model_name": name, "status": "available", "path": f"models/{version}",
            "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:{i % 60:02d}Z",
            "imported_at": "2026-12-01T00:00:00Z", "source": "zip", "quality_score": float(50 + i % 50),
            "semantic_version": f"{i // 1000}.{(i // 10) % 100}.{i % 10}" + ("-rc.1" if i % 7 == 0 else ""),
            "tags": ["prod" if i % 3 == 0 else "staging", "edge" if i % 4 == 0 else "core"],
            "description": f"Detector {i} for {name} traffic",
            "feature_names": [f"f{j}_{name}" for j in range(8)],
        }
    home.mkdir(parents=True, exist_ok=True)
    (home / "registry.json").write_text(json.dumps(entries))


def median_ms(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        build_home(home, args.versions)
        manager = ModelManager(Settings(home=home))
        started = time.perf_counter()
        cold = manager.list_models(query="payments edge", limit=20)
        cold_ms = (time.perf_counter() - started) * 1000
        rows = {
            "plain": lambda: manager.list_models(limit=20),
            "query": lambda: manager.list_models(query="payments edge", limit=20),
            "tag+quality": lambda: manager.list_models(tag="prod", min_quality_score=80, limit=20),
            "semver sort": lambda: manager.list_models(model_name="payments-00", sort="semantic_version"),
        }
        with open("/proc/loadavg") as handle:
            load = handle.read().split()[0]
        print(f"{args.versions} versions, Python {platform.python_version()}, load average {load}")
        print(f"cold query (fresh manager: parse registry.json, build search text): {cold_ms:.1f} ms, "
              f"{cold.total} matches")
        for name, fn in rows.items():
            print(f"{name:12} {median_ms(fn, args.repeats):8.2f} ms (median of {args.repeats})")


if __name__ == "__main__":
    main()
