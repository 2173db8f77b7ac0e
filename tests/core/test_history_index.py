"""get_model, rollback and get_history(kind=deployments) read what they need, not the whole trail,
and the trail rotates into segments without losing an event (issue 18, item 4).

With a 294 MB history.jsonl each of those calls took 2.4-3.6 s: they walked the whole file
backwards looking for deployment events. The check here is on bytes read (the kernel's `rchar`
count for this process), not on time.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from model_mcp.core.history import History
from model_mcp.core.manager import ModelManager

IO = Path("/proc/self/io")
pytestmark = pytest.mark.skipif(not IO.exists(), reason="needs Linux's /proc/self/io")


def bytes_read() -> int:
    for line in IO.read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def measured(fn):
    before = bytes_read()
    value = fn()
    return value, bytes_read() - before


def pad_trail(path: Path, megabytes: int) -> int:
    """Append about `megabytes` MB of validate events (no deployment among them)."""
    line = json.dumps({"at": "2026-12-01T00:00:00.000000Z", "event": "validate", "version": "other",
                       "outcome": "passed", "detail": "x" * 400}) + "\n"
    count = megabytes * 1024 * 1024 // len(line)
    with path.open("a") as handle:
        handle.write(line * count)
    return path.stat().st_size


def test_deployment_reads_do_not_walk_a_big_trail(make_settings, packages, home):
    manager = ModelManager(make_settings())
    manager.start()
    manager.import_zip(path=str(packages(version="a")))
    manager.import_zip(path=str(packages(version="b", seed=4)))
    manager.deploy(version="a")
    manager.deploy(version="b")
    trail_bytes = pad_trail(home / "history.jsonl", 40)
    # A home from before the index: the index is rebuilt once, at start.
    (home / "history-index.jsonl").unlink(missing_ok=True)
    manager = ModelManager(make_settings())
    manager.start()
    budget = 2 * 1024 * 1024  # registry, metadata, reports, the index: far below the trail's 40 MB

    model, read = measured(lambda: manager.get_model(version="a"))
    assert [e["event"] for e in model.deployments] == ["deploy"] and read < budget, read
    history, read = measured(lambda: manager.get_history(kind="deployments", limit=50))
    assert [e["version"] for e in history.events] == ["b", "a"] and read < budget, read
    result, read = measured(lambda: manager.rollback())
    assert result.deployed_version == "a" and read < budget + 4 * 1024 * 1024, read  # + the model file
    assert trail_bytes > 40 * 1000 * 1000
    assert (home / "history-index.jsonl").exists()


def test_the_trail_rotates_and_get_history_reads_every_segment(tmp_path):
    history = History(tmp_path / "history.jsonl", segment_bytes=2000)
    history.ensure_index()
    for i in range(60):
        history.record("deploy" if i % 10 == 0 else "validate", version=f"v{i}", outcome="ok", detail="y" * 50)
    segments = history.segments()
    assert len(segments) > 3 and segments[-1].name == "history.jsonl"
    assert all(p.stat().st_size < 2000 + 200 for p in segments)
    assert [e["version"] for e in history.events(limit=None)] == [f"v{i}" for i in reversed(range(60))]
    assert [e["version"] for e in history.events(kind="deployments", limit=None)] == \
        [f"v{i}" for i in reversed(range(0, 60, 10))]


def test_concurrent_writers_lose_no_event_across_rotations(tmp_path):
    path = tmp_path / "history.jsonl"
    History(path).ensure_index()

    def write(worker: int) -> None:
        history = History(path, segment_bytes=3000)  # each thread its own object, like processes
        for i in range(40):
            history.record("rollback" if i % 8 == 0 else "import", version=f"w{worker}-{i}", outcome="ok")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = History(path)
    versions = [e["version"] for e in history.events(limit=None)]
    assert sorted(versions) == sorted(f"w{w}-{i}" for w in range(4) for i in range(40))
    assert len(history.events(kind="deployments", limit=None)) == 4 * 5


def test_a_trail_without_index_is_still_read_in_full(tmp_path):
    history = History(tmp_path / "history.jsonl")
    history.record("deploy", version="v1", outcome="ok")  # no index yet: not created by a write
    assert not history.index_path.exists()
    assert [e["version"] for e in history.events(kind="deployments")] == ["v1"]
    history.ensure_index()
    assert [e["version"] for e in history.events(kind="deployments")] == ["v1"]
