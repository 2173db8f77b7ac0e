"""The append-only audit trail: JSON lines in `history.jsonl`, rotated into numbered segments.

Files under the home:

    history.jsonl            the current segment; every event is appended here
    history-<n>.jsonl        older segments (1 the oldest): `history.jsonl` renamed once it
                             passed `segment_bytes` (64 MiB by default); never changed again
    history-index.jsonl      a copy of the events that deploys, rollbacks and transfers leave
                             (what get_model, rollback and get_history(kind=deployments|transfers)
                             read), so those never walk the whole trail
    history.lock             the lock file for rotation and the index

Each line is written with a single `write` on a file opened with O_APPEND and fsynced, so lines from
several processes never interleave and a crash can at most leave one torn last line, which readers
skip. A line that cannot be written (disk full) is logged as `audit_not_recorded`, never raised:
every event records a change already committed (or a refusal), which the caller must still answer.

Reading walks the segments backwards from the newest line, so `get_history(limit=50)` costs the
same on a year of events as on a new trail; filtered reads of indexed events read the index only.
Rotation renames a whole file, so nothing is lost: `get_history` reads every segment.

The index is built once from the whole trail when it is missing (a home from an older version),
at start, under the lock; from then on every indexed event is appended to both files under that
lock. An index line is written before the trail's line: after a crash in between, the index may
hold an event the trail lacks, never the other way round.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from model_mcp.core.schemas import utc_now
from model_mcp.core.store import atomic_write_bytes, storage_error
from model_mcp.logs import get_logger

log = get_logger(__name__)

HistoryKind = Literal["deployments", "transfers", "all"]
# Deploys, rollbacks and rollouts (a promotion makes its version the primary, as a deploy does).
DEPLOYMENT_EVENTS = frozenset({"deploy", "rollback", "promote", "rollout_start", "abort_rollout"})
PRIMARY_EVENTS = frozenset({"deploy", "rollback", "promote"})  # those that change what serves
TRANSFER_EVENTS = frozenset({"transfer"})
INDEXED_EVENTS = DEPLOYMENT_EVENTS | TRANSFER_EVENTS
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_SEGMENT = re.compile(r"^history-(\d+)\.jsonl$")
_BLOCK = 64 * 1024


def events_of_kind(kind: HistoryKind, event_names: frozenset[str] | None = None) -> frozenset[str] | None:
    """The events a `kind` filter keeps (None: every event); with kind `all`, `event_names` if given.
    The one definition for both trails (this file's and core/pg/history.py's table)."""
    if kind == "deployments":
        return DEPLOYMENT_EVENTS
    if kind == "transfers":
        return TRANSFER_EVENTS
    return event_names


class History:
    def __init__(self, path: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.path = path
        self.segment_bytes = segment_bytes
        self.index_path = path.with_name(path.stem + "-index.jsonl")
        self.lock_path = path.with_name(path.stem + ".lock")

    # --- writing -------------------------------------------------------------------------------
    def record(self, event: str, *, version: str | None, outcome: str, detail: str = "",
               **extra: Any) -> dict[str, Any]:
        entry = {"at": utc_now(), "event": event, "version": version, "outcome": outcome, "detail": detail, **extra}
        line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                if event in INDEXED_EVENTS and self.index_path.exists():
                    _append(self.index_path, line)
                self._rotate_if_full()
                _append(self.path, line)
        except OSError as exc:
            # The line is written after the change it records is committed: failing the call now
            # would answer "nothing was changed" about a change that was made. Log it instead.
            log.error("audit_not_recorded", audit_event=event, version=version,
                      reason=str(storage_error(exc, "recording the audit trail")))
        return entry

    def append_events(self, entries: list[dict[str, Any]]) -> None:
        """Append events recorded elsewhere, in order and as they are (`at` and every field kept):
        `model-mcp migrate` copying a database's trail into a home. Written in large blocks, each
        fsynced, indexed events to the index first (as `record` does); the current segment rotates
        between blocks. Unlike `record` this raises StorageError: nothing is committed yet that the
        caller must still answer for."""
        lines = [(entry, (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()) for entry in entries]
        if not lines:
            return
        block_bytes = max(4096, min(self.segment_bytes, 4 * 1024 * 1024))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                indexed = [line for entry, line in lines if entry.get("event") in INDEXED_EVENTS]
                if indexed and self.index_path.exists():
                    _append(self.index_path, b"".join(indexed))
                block: list[bytes] = []
                size = 0
                for _, line in lines:
                    block.append(line)
                    size += len(line)
                    if size >= block_bytes:
                        self._rotate_if_full()
                        _append(self.path, b"".join(block))
                        block, size = [], 0
                if block:
                    self._rotate_if_full()
                    _append(self.path, b"".join(block))
        except OSError as exc:
            raise storage_error(exc, "writing the audit trail") from exc

    def _rotate_if_full(self) -> None:
        """Under the lock: the current segment becomes `history-<n>.jsonl` once it is full."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self.segment_bytes:
            return
        numbers = [n for n, _ in self._segments()]
        target = self.path.with_name(f"{self.path.stem}-{(max(numbers) if numbers else 0) + 1}.jsonl")
        os.rename(self.path, target)
        log.info("history_rotated", segment=target.name, bytes=size)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def ensure_index(self) -> None:
        """Build `history-index.jsonl` from the whole trail when it is missing (once per home)."""
        if self.index_path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if self.index_path.exists():
                return
            lines = [raw for entry, raw in self._oldest_first_raw() if entry.get("event") in INDEXED_EVENTS]
            atomic_write_bytes(self.index_path, b"".join(line + b"\n" for line in lines))
            if lines:
                log.info("history_index_built", events=len(lines))

    # --- reading -------------------------------------------------------------------------------
    def events(self, *, kind: HistoryKind = "all", limit: int | None = 100, version: str | None = None,
               event_names: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """Newest first, filtered by kind, version or event names."""
        wanted = events_of_kind(kind, event_names)
        found: list[dict[str, Any]] = []
        if limit is not None and limit <= 0:
            return found
        indexed = wanted is not None and wanted <= INDEXED_EVENTS and self.index_path.exists()
        source = _newest_first(self.index_path) if indexed else self._newest_first()
        for entry in source:
            if wanted is not None and entry.get("event") not in wanted:
                continue
            if version is not None and entry.get("version") != version:
                continue
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
        return found

    def tally_from(self, position: TallyCursor | int) -> tuple[TallyCursor, dict[tuple[str, str], int]]:
        """Events by (event, outcome) in the lines written since `position`; and the new position.

        For counters that must not reread a year of history at every metrics scrape: the caller keeps
        the position, a cursor naming the file (by inode) and the offset in it (an int is an offset in
        the current file: 0 counts the current segment, as a first call does). When that file was
        rotated into `history-<n>.jsonl` since, the rest of it, any segment rotated after it and the
        new current file are read, so no line is missed or counted twice across rotations. A torn or
        partial last line of the current file is left for the next call. When the trail was replaced
        by hand (the cursor's file is gone, or the file is shorter than the offset), the current file
        is counted from its start and the new cursor says `afresh`: the caller drops its totals.
        """
        cursor = position if isinstance(position, TallyCursor) else TallyCursor(inode=None, offset=position)
        counts: dict[tuple[str, str], int] = {}
        try:
            current = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return TallyCursor(afresh=cursor.inode is not None), counts
        with current:
            stat = os.fstat(current.fileno())
            start, afresh = cursor.offset, False
            if cursor.inode is not None and cursor.inode != stat.st_ino:
                start, rotated = 0, self._rotated_since(cursor.inode, skip=stat.st_ino)
                if rotated is None:
                    afresh = True  # the file the cursor was in is gone: not a rotation
                for index, path in enumerate(rotated or []):
                    _tally(path, cursor.offset if index == 0 else 0, counts, whole=True)
            if stat.st_size < start:  # shortened in place: count it afresh
                start, afresh = 0, True
            end = _tally_handle(current, start, stat.st_size, counts, whole=False)
        return TallyCursor(inode=stat.st_ino, offset=end, afresh=afresh), counts

    def _rotated_since(self, inode: int, *, skip: int) -> list[Path] | None:
        """The segment whose inode is `inode` and every segment rotated after it, oldest first
        (the current file, `skip`, left out if it was rotated while we read); None when none is."""
        found: list[Path] | None = None
        for _, path in sorted(self._segments()):
            try:
                segment_inode = path.stat().st_ino
            except FileNotFoundError:
                continue
            if found is None and segment_inode == inode:
                found = [path]
            elif found is not None and segment_inode != skip:
                found.append(path)
        return found

    def segments(self) -> list[Path]:
        """Every file of the trail, oldest first (the current one last)."""
        return [path for _, path in sorted(self._segments())] + ([self.path] if self.path.exists() else [])

    def _segments(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.path.parent)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = _SEGMENT.match(name)
            if match and name.startswith(self.path.stem + "-"):
                found.append((int(match.group(1)), self.path.with_name(name)))
        return found

    def _newest_first(self) -> Iterator[dict[str, Any]]:
        """The current segment, then the older ones, each backwards; a segment renamed while we
        read is recognised by its inode and not read twice."""
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed in finally, generator
        except FileNotFoundError:
            handle = None
        try:
            current_inode = os.fstat(handle.fileno()).st_ino if handle is not None else None
            if handle is not None:
                yield from _backwards(handle)
        finally:
            if handle is not None:
                handle.close()
        for _, path in sorted(self._segments(), reverse=True):
            try:
                if current_inode is not None and path.stat().st_ino == current_inode:
                    continue
            except FileNotFoundError:
                continue
            yield from _newest_first(path)

    def oldest_first(self) -> Iterator[dict[str, Any]]:
        """Every event, oldest first (copying the trail elsewhere: `model-mcp migrate`)."""
        for entry, _ in self._oldest_first_raw():
            yield entry

    def _oldest_first_raw(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        for path in self.segments():
            try:
                with open(path, "rb") as handle:
                    for raw in handle:
                        entry = _parse(raw)
                        if entry is not None:
                            yield entry, raw.rstrip(b"\n")
            except FileNotFoundError:
                continue


@dataclass(frozen=True)
class TallyCursor:
    """Where `History.tally_from` stopped: the file (by inode) and the byte offset in it; `afresh`
    when that call counted the trail from its start again (it had been replaced)."""

    inode: int | None = None
    offset: int = 0
    afresh: bool = False


def _tally(path: Path, offset: int, counts: dict[tuple[str, str], int], *, whole: bool) -> None:
    try:
        with open(path, "rb") as handle:
            _tally_handle(handle, offset, os.fstat(handle.fileno()).st_size, counts, whole=whole)
    except FileNotFoundError:
        return


def _tally_handle(handle: Any, offset: int, size: int, counts: dict[tuple[str, str], int], *,
                  whole: bool) -> int:
    """Count the lines from `offset` to `size` (a rotated segment `whole`: its last line too); answers
    the offset after the last complete line. Read in blocks, so a large segment costs no large buffer."""
    handle.seek(offset)
    position, pending = offset, b""
    while position < size:
        block = handle.read(min(_BLOCK * 16, size - position))
        if not block:
            break
        position += len(block)
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        for raw in lines:
            _count(raw, counts)
    if whole:
        _count(pending, counts)
        return position
    return position - len(pending)


def _count(raw: bytes, counts: dict[tuple[str, str], int]) -> None:
    entry = _parse(raw)
    if entry is not None:
        key = (str(entry.get("event")), str(entry.get("outcome")))
        counts[key] = counts.get(key, 0) + 1


def _append(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # After a crash the last line may be torn (no newline): start on a fresh line,
        # or this event would be glued onto the torn one and skipped with it.
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _newest_first(path: Path) -> Iterator[dict[str, Any]]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed in finally, generator
    except FileNotFoundError:
        return
    try:
        yield from _backwards(handle)
    finally:
        handle.close()


def _backwards(handle: Any, block: int = _BLOCK) -> Iterator[dict[str, Any]]:
    handle.seek(0, os.SEEK_END)
    position = handle.tell()
    tail = b""
    while position > 0:
        step = min(block, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + tail
        lines = chunk.split(b"\n")
        tail = lines.pop(0)  # maybe a partial line; completed by the next block
        for raw in reversed(lines):
            entry = _parse(raw)
            if entry is not None:
                yield entry
    entry = _parse(tail)
    if entry is not None:
        yield entry


def _parse(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # a line torn by a crash
    return value if isinstance(value, dict) else None
