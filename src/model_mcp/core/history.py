"""The append-only audit trail: one JSON object per line in `history.jsonl`.

Each line is written with a single `write` on a file opened with O_APPEND and fsynced, so lines from
several processes never interleave and a crash can at most leave one torn last line, which readers
skip. A line that cannot be written (disk full) is logged as `audit_not_recorded`, never raised:
every event records a change already committed (or a refusal), which the caller must still answer.
Reading walks the file backwards from its end, so `get_history(limit=50)` costs the same on a file
of a year's events as on a new one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from model_mcp.core.schemas import utc_now
from model_mcp.core.store import storage_error
from model_mcp.logs import get_logger

log = get_logger(__name__)

HistoryKind = Literal["deployments", "transfers", "all"]
DEPLOYMENT_EVENTS = frozenset({"deploy", "rollback"})
TRANSFER_EVENTS = frozenset({"transfer"})


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: str, *, version: str | None, outcome: str, detail: str = "",
               **extra: Any) -> dict[str, Any]:
        entry = {"at": utc_now(), "event": event, "version": version, "outcome": outcome, "detail": detail, **extra}
        line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
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
        except OSError as exc:
            # The line is written after the change it records is committed: failing the call now
            # would answer "nothing was changed" about a change that was made. Log it instead.
            log.error("audit_not_recorded", audit_event=event, version=version,
                      reason=str(storage_error(exc, "recording the audit trail")))
        return entry

    def events(self, *, kind: HistoryKind = "all", limit: int | None = 100, version: str | None = None,
               event_names: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """Newest first, filtered by kind, version or event names."""
        wanted = event_names
        if kind == "deployments":
            wanted = DEPLOYMENT_EVENTS
        elif kind == "transfers":
            wanted = TRANSFER_EVENTS
        found: list[dict[str, Any]] = []
        if limit is not None and limit <= 0:
            return found
        for entry in self._newest_first():
            if wanted is not None and entry.get("event") not in wanted:
                continue
            if version is not None and entry.get("version") != version:
                continue
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
        return found

    def tally_from(self, offset: int) -> tuple[int, dict[tuple[str, str], int]]:
        """Events by (event, outcome) in the lines written since byte `offset`; and the new offset.

        For counters that must not reread a year of history at every metrics scrape: the caller
        keeps the offset. A torn or partial last line is left for the next call. A file shorter
        than `offset` (replaced by hand) is counted again from its start.
        """
        counts: dict[tuple[str, str], int] = {}
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < offset:
                    offset = 0
                handle.seek(offset)
                data = handle.read(size - offset)
        except FileNotFoundError:
            return 0, counts
        complete = data.rfind(b"\n") + 1
        for raw in data[:complete].split(b"\n"):
            entry = _parse(raw)
            if entry is not None:
                key = (str(entry.get("event")), str(entry.get("outcome")))
                counts[key] = counts.get(key, 0) + 1
        return offset + complete, counts

    def _newest_first(self, block: int = 64 * 1024) -> Iterator[dict[str, Any]]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed in finally, generator
        except FileNotFoundError:
            return
        try:
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
        finally:
            handle.close()


def _parse(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # a line torn by a crash
    return value if isinstance(value, dict) else None
