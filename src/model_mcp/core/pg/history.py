"""The audit trail in PostgreSQL: the same public interface as core/history.py's `History`.

One row per event in `history_events` (migrations/0002), the event kept as written (json, keys in
order) beside the columns the filters use. Reading is one indexed query newest first, so the
index file and the segments of the file trail have no counterpart here (`ensure_index` does
nothing, `segments` lists no files).

As with the file trail, an event that cannot be written (the database unreachable) is logged as
`audit_not_recorded`, never raised: it records a change already committed, which the caller must
still answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_mcp.core.errors import StorageError
from model_mcp.core.history import HistoryKind, events_of_kind
from model_mcp.core.pg import Link, Links, safe_url
from model_mcp.core.schemas import utc_now
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    import psycopg

log = get_logger(__name__)


class PostgresHistory:
    def __init__(self, url: str, *, links: Links | None = None) -> None:
        self.url = url
        self.links = links or Links(url)  # events written on `write`, read on `read`

    def __repr__(self) -> str:
        return f"PostgresHistory({safe_url(self.url)!r})"

    def _run(self, link: Link, doing: str, statement: str, params: Any) -> list[tuple[Any, ...]]:
        def run(connection: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

        return link.run(run, lambda exc: StorageError(
            f"The audit trail's database is unreachable while {doing} ({str(exc).strip()[:200]})."))

    def close(self) -> None:
        self.links.write.close()
        self.links.read.close()

    # --- writing -------------------------------------------------------------------------------
    def record(self, event: str, *, version: str | None, outcome: str, detail: str = "",
               **extra: Any) -> dict[str, Any]:
        entry = {"at": utc_now(), "event": event, "version": version, "outcome": outcome, "detail": detail, **extra}
        try:
            self._run(self.links.write, "recording the audit trail",
                      "INSERT INTO history_events (at, event, version, outcome, entry) VALUES (%s, %s, %s, %s, %s)",
                      (entry["at"], event, version, outcome, json.dumps(entry, default=str, separators=(",", ":"))))
        except StorageError as exc:
            # Written after the change it records is committed: failing the call now would answer
            # "nothing was changed" about a change that was made. Log it instead.
            log.error("audit_not_recorded", audit_event=event, version=version, reason=str(exc))
        return entry

    def ensure_index(self) -> None:
        """Nothing to build: the table's indexes are part of the schema."""

    # --- reading -------------------------------------------------------------------------------
    def events(self, *, kind: HistoryKind = "all", limit: int | None = 100, version: str | None = None,
               event_names: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """Newest first, filtered by kind, version or event names. Raises StorageError when unreachable."""
        wanted = events_of_kind(kind, event_names)
        if limit is not None and limit <= 0:
            return []
        where, params = ["true"], []
        if wanted is not None:
            where.append("event = ANY(%s)")
            params.append(sorted(wanted))
        if version is not None:
            where.append("version = %s")
            params.append(version)
        query = f"SELECT entry::text FROM history_events WHERE {' AND '.join(where)} ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT %s"
            params.append(limit)
        rows = self._run(self.links.read, "reading the audit trail", query, params)
        return [json.loads(text) for (text,) in rows]

    def tally_from(self, offset: int) -> tuple[int, dict[tuple[str, str], int]]:
        """Events by (event, outcome) with an id above `offset` (the last id counted); and the new offset.

        An offset above every id (the table emptied by hand) counts again from the start. An event
        whose transaction commits after a later id was counted is missed by the counters (never by
        `events`); counters are for rates, not for the record.
        """
        top = self._run(self.links.read, "counting the audit trail",
                        "SELECT COALESCE(MAX(id), 0) FROM history_events", None)[0][0]
        if top < offset:
            offset = 0
        rows = self._run(self.links.read, "counting the audit trail",
                         "SELECT event, outcome, count(*) FROM history_events WHERE id > %s AND id <= %s "
                         "GROUP BY event, outcome", (offset, top))
        return int(top), {(str(event), str(outcome)): int(n) for event, outcome, n in rows}

    def segments(self) -> list[Path]:
        """No files: the trail is one table."""
        return []


__all__ = ["PostgresHistory"]
