"""The registry on PostgreSQL against registry.json, measured in one run (issue 16).

    MODEL_MCP_TEST_POSTGRES_URL=postgresql://root@127.0.0.1:5432/root python benchmarks/bench_registry.py

At 10 and at 10,000 registered versions, for both backends: read() (a full private copy), update()
adding one version, and deployed_versions() (the predict path: the file registry's stat-keyed cache,
the PostgreSQL registry's copy kept current by LISTEN/NOTIFY; the PostgreSQL figure also says how
many database queries the calls made), and its first call after another replica's change. Then deploy propagation between two PostgreSQL registry
objects (two replicas): from the writer's commit returning to the reader's deployed_versions()
answering the new version, p50 and p95 over 40 deploys. A scratch database is created and dropped.

The same measured between server processes (three replicas over HTTP: predict throughput, and deploy
propagation including each replica's load of the new model) is bench_replicas.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.registry import Registry, Snapshot
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store


def _fill(registry: Registry | PostgresRegistry, n: int) -> None:
    def change(snapshot: Snapshot) -> None:
        for i in range(n):
            version = f"v{i:05d}"
            snapshot.entries[version] = RegistryEntry(
                version=version, path=f"models/{version}", model_name=f"model-{i % 10}", status="available",
                created_at="2026-11-01T08:00:00Z", imported_at="2026-11-01T08:00:00Z", source="zip",
                quality_score=0.9, model_type="IsolationForest")
        snapshot.entries["v00000"].status = "deployed"

    registry.update(change)


def _times_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    found = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        found.append((time.perf_counter() - started) * 1000)
    return found


def _p50(values: list[float]) -> float:
    return statistics.median(values)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A database created on `server` (a postgresql:// URL) for one run, dropped afterwards; yields its URL.
    Also used by bench_replicas.py."""
    import psycopg
    from psycopg import sql

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.postgres import with_database

    name = f"model_mcp_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> int:
    server = os.environ.get("MODEL_MCP_TEST_POSTGRES_URL")
    if not server:
        print("set MODEL_MCP_TEST_POSTGRES_URL (for example postgresql://root@127.0.0.1:5432/root)")
        return 2
    with scratch_database(server) as url:
        return _measure(url)


def _measure(url: str) -> int:
    from tests.postgres import reset_database

    rows = []
    for n in (10, 10_000):
        repeats = 50 if n == 10 else 5
        reset_database(url)
        with tempfile.TemporaryDirectory() as folder:
            backends = {"registry.json": Registry(Store(Path(folder) / "home")), "PostgreSQL": PostgresRegistry(url)}
            for label, registry in backends.items():
                _fill(registry, n)
                registry.read()
                time.sleep(0.5)  # the PostgreSQL listener connects
                read = _times_ms(registry.read, repeats)
                counter = iter(range(10**6))

                def add_one(s: Snapshot, counter: Iterator[int] = counter) -> None:
                    version = f"x{next(counter)}"
                    s.entries[version] = RegistryEntry(version=version, path=f"models/{version}")

                update = _times_ms(lambda r=registry: r.update(add_one), repeats)
                queries = getattr(registry, "queries", None)
                # The first predict after a change made by another process or replica.
                other = Registry(Store(Path(folder) / "home")) if label == "registry.json" else PostgresRegistry(url)
                first_after = []
                for _ in range(5):
                    registry.deployed_versions()
                    time.sleep(0.2)
                    other.update(add_one)
                    time.sleep(0.2)  # the NOTIFY arrives
                    first_after += _times_ms(registry.deployed_versions, 1)
                # Following that change: the read-only view a server loads the new entry from
                # (PostgreSQL: the rows written since its copy; registry.json: the file again).
                view_after = []
                for _ in range(5):
                    registry.view()
                    time.sleep(0.2)
                    other.update(add_one)
                    time.sleep(0.2)
                    view_after += _times_ms(registry.view, 1)
                if isinstance(other, PostgresRegistry):
                    other.close()
                before = getattr(registry, "queries", 0)
                calls = 10_000
                started = time.perf_counter()
                for _ in range(calls):
                    registry.deployed_versions()
                per_call_us = (time.perf_counter() - started) / calls * 1e6
                made = (getattr(registry, "queries", 0) - before) if queries is not None else None
                rows.append((n, label, _p50(read), _p50(update), per_call_us, made, _p50(first_after), _p50(view_after)))
                if isinstance(registry, PostgresRegistry):
                    registry.close()

    reset_database(url)
    writer, reader = PostgresRegistry(url), PostgresRegistry(url, poll_s=30.0)
    writer.update(lambda s: [s.entries.__setitem__(v, RegistryEntry(version=v, path="models/" + v,
                                                                    model_name="net", status="available"))
                             for v in ("a", "b")])
    reader.deployed_versions()
    time.sleep(0.5)
    delays = []
    for i in range(40):
        target, other = ("a", "b") if i % 2 == 0 else ("b", "a")

        def deploy(s: Snapshot, target: str = target, other: str = other) -> None:
            s.entries[other].status = "available"
            s.entries[target].status = "deployed"

        writer.update(deploy)
        committed = time.perf_counter()
        while reader.deployed_versions().get("net") != target:
            time.sleep(0.0005)
        delays.append((time.perf_counter() - committed) * 1000)
    writer.close()
    reader.close()

    print("| versions | backend | read() p50 | update() p50 | deployed_versions() per call | queries in 10,000 calls "
          "| first deployed_versions() after another replica's change, p50 | view() after it, p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for n, label, read_ms, update_ms, per_call_us, made, first_ms, view_ms in rows:
        print(f"| {n:,} | {label} | {read_ms:.2f} ms | {update_ms:.2f} ms | {per_call_us:.2f} us | "
              f"{'-' if made is None else made} | {first_ms:.2f} ms | {view_ms:.2f} ms |")
    print()
    print(f"deploy propagation to another replica (LISTEN/NOTIFY), 40 deploys: p50 {_p50(delays):.2f} ms, "
          f"p95 {_p95(delays):.2f} ms, max {max(delays):.2f} ms")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
