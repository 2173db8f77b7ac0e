"""Several `model-mcp serve` processes on one home, as when two MCP hosts run the server at once.

- Concurrent imports through three servers lose no entry (every write is a read-modify-write of
  registry.json under one flock), and the same package imported through two servers at once is
  registered once.
- A deploy or rollback made through one server is what the other answers its next predict with
  (each predict checks the registry's deployed version and loads it when it changed).
- A reader of registry.json never sees a torn file while two servers keep rewriting it.
- A server starting on the home while another one imports leaves that import's staging alone.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.core.registry import parse_registry
from model_mcp.settings import Settings
from tests.helpers import call
from tests.reliability.invariants import check_store
from tests.reliability.serverproc import NO_PROBE, SINGLE_THREAD_ENV, ServerProcess

ROW = [[0.0] * 8]
ROUNDS = 24  # of the torn-read test: 2 validations and every 4th round a deploy, 54 registry writes


def params(home: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "model_mcp", "serve", "--home", str(home)],
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", ""), **SINGLE_THREAD_ENV, **NO_PROBE},
    )


def build(folder: Path, version: str, **kwargs: Any) -> Path:
    return samples.build_package(folder / f"{version}.zip", version=version, **kwargs)


@pytest.mark.anyio
async def test_three_servers_importing_at_once_lose_no_entry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    zips = {name: [build(tmp_path, f"{name}-{i}", seed=i) for i in range(4)] for name in ("a", "b", "c")}
    shared = build(tmp_path, "shared", seed=99)
    answers: dict[str, list[dict[str, Any]]] = {}

    async def host(name: str) -> None:
        with open(tmp_path / f"{name}.log", "w") as errlog:
            async with Client(stdio_client(params(home), errlog=errlog)) as client:
                got = [await call(client, "import_zip", path=str(path)) for path in zips[name]]
                got.append(await call(client, "import_zip", path=str(shared)))
                listing = await call(client, "list_models")
                answers[name] = got + [listing]

    async with anyio.create_task_group() as group:
        for name in zips:
            group.start_soon(host, name)

    expected = sorted([f"{n}-{i}" for n in zips for i in range(4)] + ["shared"])
    snapshot = check_store(home)
    assert sorted(snapshot.entries) == expected
    for name in zips:
        assert [a["version"] for a in answers[name][:4]] == [f"{name}-{i}" for i in range(4)]
        assert all(a["status"] == "available" and a["already_present"] is False for a in answers[name][:4])
        assert answers[name][5]["total"] >= 5  # its own four and the shared one, at least
    # The shared package: registered by exactly one server; the others found it already present.
    assert sorted(answers[n][4]["already_present"] for n in zips) == [False, True, True]
    imports = [json.loads(line) for line in (home / "history.jsonl").read_text().splitlines()]
    assert sorted(e["version"] for e in imports if e["event"] == "import" and e["outcome"] == "ok") == expected


@pytest.mark.anyio
async def test_a_deploy_through_one_server_is_what_the_other_predicts_with(tmp_path: Path) -> None:
    home = tmp_path / "home"
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    for version, seed in (("v1", 1), ("v2", 2), ("v3", 3)):
        manager.import_zip(path=str(build(tmp_path, version, seed=seed)))
    with open(tmp_path / "a.log", "w") as log_a, open(tmp_path / "b.log", "w") as log_b:
        async with Client(stdio_client(params(home), errlog=log_a)) as a, \
                Client(stdio_client(params(home), errlog=log_b)) as b:
            # Alternate which host changes the deployment; the other answers with it at once.
            steps = [(a, "deploy", {"version": "v1"}, "v1"), (b, "deploy", {"version": "v2"}, "v2"),
                     (a, "deploy", {"version": "v3"}, "v3"), (b, "rollback", {}, "v2"),
                     (a, "rollback", {"to_version": "v1"}, "v1"), (b, "deploy", {"version": "v3"}, "v3")]
            for changer, tool, arguments, version in steps:
                other = b if changer is a else a
                answer = await call(changer, tool, **arguments)
                assert answer["deployed_version"] == version
                assert (await call(other, "predict", rows=ROW))["model_version"] == version
                assert (await call(changer, "predict", rows=ROW))["model_version"] == version
                assert (await call(other, "list_models"))["deployed_version"] == version
            # Both serve v3 since b's last deploy of it; the report counts both processes' predicts.
            # Another process's figures reach the store within a second; a report writes its own
            # process's at once: one in each, and both see both.
            await call(a, "performance_report")
            assert (await call(b, "performance_report"))["n_requests"] == 2
            report = await call(a, "performance_report")
            assert report["version"] == "v3" and report["n_requests"] == 2
            assert len(report["processes"]) == 2
    check_store(home)


def test_a_registry_reader_never_sees_a_torn_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    versions = [f"v{i}" for i in range(6)]
    for i, version in enumerate(versions):
        manager.import_zip(path=str(build(tmp_path, version, seed=i)))
    registry_path = home / "registry.json"
    stop = threading.Event()
    reads = {"n": 0, "sizes": set()}
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            raw = registry_path.read_bytes()
            try:
                snapshot = parse_registry(raw)
                assert sorted(snapshot.entries) == versions
                json.loads(raw)
            except Exception as exc:  # noqa: BLE001 - every failure is collected and reported
                failures.append(f"{type(exc).__name__}: {exc} ({len(raw)} bytes)")
            reads["n"] += 1
            reads["sizes"].add(len(raw))

    servers = [ServerProcess.spawn(home, env=NO_PROBE) for _ in range(2)]
    threads = [threading.Thread(target=reader) for _ in range(2)]
    try:
        for server in servers:
            server.initialize()
        for thread in threads:
            thread.start()
        # Each server rewrites the registry on every shallow validation and every deploy.
        writes = 0
        for i in range(ROUNDS):
            ids = [(s, s.send_call("validate", {"version": versions[i % 6], "deep": False})) for s in servers]
            if i % 4 == 0:
                ids.append((servers[i % 2], servers[i % 2].send_call("deploy", {"version": versions[i % 3]})))
            for server, request_id in ids:
                answer = server.answer(request_id)
                assert answer is not None and not answer.is_error, answer and answer.text
            writes += len(ids)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for server in servers:
            server.close()
    print(f"\n{writes} registry writes by two servers, {reads['n']} reads, {len(failures)} torn")
    assert failures == []
    assert writes == 2 * ROUNDS + ROUNDS // 4 and reads["n"] >= writes, (writes, reads["n"])
    assert len(reads["sizes"]) >= 2  # the readers did see the file change (statuses, timestamps)
    check_store(home)


def test_a_server_starting_during_an_import_leaves_that_import_alone(tmp_path: Path) -> None:
    """A start cleans staging, but only what dead processes left: a live import keeps its folder."""
    home = tmp_path / "home"
    ModelManager(Settings(home=home)).start()
    big = build(tmp_path, "big")
    # A fresh server with the default settings: its first import runs the isolated probe (a child
    # interpreter, ~1.2 s) and imports scikit-learn (~1 s), so the import is long under way.
    server = ServerProcess.spawn(home)
    try:
        server.initialize()
        request_id = server.send_call("import_zip", {"path": str(big)})
        staging = home / "staging"
        deadline = time.monotonic() + 30
        while not any(p.name.startswith("import-") for p in staging.iterdir()):
            assert time.monotonic() < deadline, "the import never staged anything"
            time.sleep(0.001)
        in_use = sorted(p.name for p in staging.iterdir())
        ModelManager(Settings(home=home)).start()  # a second host's server starting now
        still_there = [name for name in in_use if (staging / name).exists()]
        print(f"\nstaging during the import: {in_use}; after another start: {still_there}")
        assert still_there == in_use or request_id in server.received_at  # (unless already done)
        answer = server.answer(request_id)
        assert answer is not None and not answer.is_error, answer and answer.text
        assert answer.structured["version"] == "big" and answer.structured["already_present"] is False
    finally:
        server.close()
    check_store(home)
