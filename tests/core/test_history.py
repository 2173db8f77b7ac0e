"""The audit trail: newest first, filters, a torn last line, and files larger than one read block."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from model_mcp.core.history import History

BLOCK = 64 * 1024
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def trail(tmp_path: Path) -> History:
    return History(tmp_path / "home" / "history.jsonl")


def record_sample(history: History) -> None:
    history.record("import", version="v1", outcome="ok", detail="from zip")
    history.record("deploy", version="v1", outcome="ok")
    history.record("transfer", version="v2", outcome="ok", detail="from training service")
    history.record("validate", version="v2", outcome="passed")
    history.record("deploy", version="v2", outcome="ok", previous="v1")
    history.record("rollback", version="v1", outcome="ok", previous="v2")
    history.record("deploy", version="v3", outcome="failed", detail="validation failed")


def test_record_returns_the_entry_and_writes_one_line(tmp_path: Path) -> None:
    history = trail(tmp_path)
    entry = history.record("deploy", version="v1", outcome="ok", detail="first", load_ms=12.5)
    assert TIMESTAMP.match(entry["at"])
    assert {k: v for k, v in entry.items() if k != "at"} == {
        "event": "deploy", "version": "v1", "outcome": "ok", "detail": "first", "load_ms": 12.5}
    lines = history.path.read_bytes().split(b"\n")
    assert lines[1:] == [b""]
    assert json.loads(lines[0]) == entry


def test_an_empty_or_missing_trail_has_no_events(tmp_path: Path) -> None:
    history = trail(tmp_path)
    assert history.events() == []
    history.path.parent.mkdir(parents=True)
    history.path.write_bytes(b"")
    assert history.events() == []


def test_events_come_newest_first(tmp_path: Path) -> None:
    history = trail(tmp_path)
    record_sample(history)
    assert [(e["event"], e["version"]) for e in history.events()] == [
        ("deploy", "v3"), ("rollback", "v1"), ("deploy", "v2"), ("validate", "v2"),
        ("transfer", "v2"), ("deploy", "v1"), ("import", "v1"),
    ]


def test_kind_deployments_is_deploys_and_rollbacks(tmp_path: Path) -> None:
    history = trail(tmp_path)
    record_sample(history)
    assert [(e["event"], e["version"], e["outcome"]) for e in history.events(kind="deployments")] == [
        ("deploy", "v3", "failed"), ("rollback", "v1", "ok"), ("deploy", "v2", "ok"), ("deploy", "v1", "ok"),
    ]


def test_kind_transfers(tmp_path: Path) -> None:
    history = trail(tmp_path)
    record_sample(history)
    events = history.events(kind="transfers")
    assert [(e["event"], e["version"], e["detail"]) for e in events] == [
        ("transfer", "v2", "from training service")]


def test_limit_and_version_filters(tmp_path: Path) -> None:
    history = trail(tmp_path)
    record_sample(history)
    assert [e["event"] for e in history.events(limit=2)] == ["deploy", "rollback"]
    assert [e["version"] for e in history.events(kind="deployments", limit=3)] == ["v3", "v1", "v2"]
    assert [e["event"] for e in history.events(version="v1")] == ["rollback", "deploy", "import"]
    assert [e["event"] for e in history.events(kind="deployments", version="v1")] == ["rollback", "deploy"]
    assert len(history.events(limit=None)) == 7
    assert len(history.events(limit=100)) == 7
    assert history.events(limit=0) == []
    assert [e["event"] for e in history.events(event_names=frozenset({"import", "validate"}))] == [
        "validate", "import"]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    history = trail(tmp_path)
    history.record("deploy", version="v1", outcome="ok")
    history.record("deploy", version="v2", outcome="ok")
    with open(history.path, "ab") as handle:
        handle.write(b'{"at": "2026-11-20T14:30:22Z", "event": "dep')  # a crash mid-write
    assert [e["version"] for e in history.events()] == ["v2", "v1"]


def test_an_event_recorded_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    history = trail(tmp_path)
    history.record("deploy", version="v1", outcome="ok")
    with open(history.path, "ab") as handle:
        handle.write(b'{"at": "2026-11-20T14:30:22Z", "ev')
    history.record("rollback", version="v0", outcome="ok")
    assert [(e["event"], e["version"]) for e in history.events()] == [("rollback", "v0"), ("deploy", "v1")]
    assert history.path.read_bytes().endswith(b"\n")


def test_lines_that_are_not_objects_are_skipped(tmp_path: Path) -> None:
    history = trail(tmp_path)
    history.record("deploy", version="v1", outcome="ok")
    with open(history.path, "ab") as handle:
        handle.write(b"[1, 2]\n\n   \n42\nnot json\n")
    history.record("deploy", version="v2", outcome="ok")
    assert [e["version"] for e in history.events()] == ["v2", "v1"]


def _line(i: int) -> bytes:
    # Line lengths vary so that block boundaries fall at many different places inside a line.
    entry = {"at": f"2026-11-20T14:{i // 60 % 60:02d}:{i % 60:02d}.000000Z", "event": "deploy" if i % 3 else "transfer",
             "version": f"v{i:05d}", "outcome": "ok", "detail": "x" * (i % 97)}
    return json.dumps(entry, separators=(",", ":")).encode() + b"\n"


def test_a_file_larger_than_one_block_reads_in_order(tmp_path: Path) -> None:
    history = trail(tmp_path)
    history.path.parent.mkdir(parents=True)
    n = 3000
    history.path.write_bytes(b"".join(_line(i) for i in range(n)))
    assert history.path.stat().st_size > 3 * BLOCK

    events = history.events(limit=None)
    assert len(events) == n
    assert [e["version"] for e in events] == [f"v{i:05d}" for i in reversed(range(n))]
    assert all(e["detail"] == "x" * (int(e["version"][1:]) % 97) for e in events)

    transfers = history.events(kind="transfers", limit=None)
    assert [e["version"] for e in transfers] == [f"v{i:05d}" for i in reversed(range(0, n, 3))]
    assert [e["version"] for e in history.events(limit=5)] == ["v02999", "v02998", "v02997", "v02996", "v02995"]


def _padded_lines(total: int) -> bytes:
    """Lines v00000, v00001, ... of exactly `total` bytes (the last line's detail is the padding)."""
    lines = [_line(i) for i in range(200)]
    body = b"".join(lines[:-1])
    last = {"event": "deploy", "version": "v00199", "outcome": "ok", "detail": ""}
    overhead = len(json.dumps(last, separators=(",", ":")).encode()) + 1
    last["detail"] = "p" * (total - len(body) - overhead)
    tail = body + json.dumps(last, separators=(",", ":")).encode() + b"\n"
    assert len(tail) == total
    return tail


@pytest.mark.parametrize("big_length", [1000, BLOCK + 500])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_a_block_boundary_next_to_a_line_end_reads_whole_lines(tmp_path: Path, big_length: int, delta: int) -> None:
    """Blocks are read from the end, so the boundaries sit at size - k * 64 KiB. With the lines
    after the first one totalling 2 blocks + delta, a boundary falls one byte before the first
    line's newline, just after it, or one byte later; the long variant also spans a whole block."""
    history = trail(tmp_path)
    history.path.parent.mkdir(parents=True)
    big = {"event": "deploy", "version": "big", "outcome": "ok", "detail": ""}
    overhead = len(json.dumps(big, separators=(",", ":")).encode()) + 1
    big["detail"] = "y" * (big_length - overhead)
    first = json.dumps(big, separators=(",", ":")).encode() + b"\n"
    assert len(first) == big_length
    history.path.write_bytes(first + _padded_lines(2 * BLOCK + delta))

    events = history.events(limit=None)
    assert len(events) == 201
    assert events[-1]["version"] == "big"
    assert events[-1]["detail"] == "y" * (big_length - overhead)
    assert [e["version"] for e in events[:-1]] == [f"v{i:05d}" for i in reversed(range(200))]


def test_tally_follows_the_trail_across_rotations_and_leaves_a_partial_line(tmp_path: Path) -> None:
    history = History(tmp_path / "home" / "history.jsonl", segment_bytes=4096)
    position, counts = history.tally_from(0)
    assert counts == {} and not position.afresh
    total = 0
    for burst in (3, 40, 5, 60):
        for _ in range(burst):
            history.record("validate", version="v1", outcome="passed", detail="x" * 100)
        with open(history.path, "ab") as handle:  # a writer caught mid-line: counted once complete
            handle.write(b'{"event":"import","outco')
        position, counts = history.tally_from(position)
        total += burst
        assert counts == {("validate", "passed"): burst}, burst
        assert not position.afresh
        with open(history.path, "ab") as handle:
            handle.write(b'me":"ok"}\n')
        position, counts = history.tally_from(position)
        assert counts == {("import", "ok"): 1}
    assert len(history.segments()) > 3  # it did rotate, several times within one burst
    history.path.write_bytes(b'{"event":"delete","outcome":"ok"}\n')  # shortened by hand
    position, counts = history.tally_from(position)
    assert counts == {("delete", "ok"): 1} and position.afresh


def test_events_appended_as_they_are_keep_order_fields_rotation_and_the_index(tmp_path: Path) -> None:
    """`append_events` (model-mcp migrate copying a database's trail into a home): every field kept,
    `at` included; the current file rotates between blocks; indexed events reach the index."""
    home = tmp_path / "home"
    history = History(home / "history.jsonl", segment_bytes=4096)
    history.record("import", version="v0", outcome="ok")
    history.ensure_index()
    copied = [{"at": f"2026-01-01T00:00:{i % 60:02d}.000000Z", "event": "deploy" if i % 10 == 0 else "import",
               "version": f"v{i}", "outcome": "ok", "detail": "x" * 50, "previous": None} for i in range(1, 301)]
    history.append_events(copied)
    assert list(history.oldest_first())[1:] == copied
    assert len(history.segments()) > 2, "the current file rotated between blocks"
    assert history.events(kind="deployments", limit=None) == [e for e in reversed(copied) if e["event"] == "deploy"]
    index = [json.loads(line) for line in history.index_path.read_text().splitlines()]
    assert index == [e for e in copied if e["event"] == "deploy"]
