"""Replica heartbeats in PostgreSQL: the `replicas` table (migrations/0007).

Each server process on the database writes its own row (`beat`, an upsert keyed by its replica id)
from its heartbeat thread (core/replicas.py); `read` answers every row with its age by the
database's clock (replicas on other machines may disagree about the time; `now() - last_seen` on
one server cannot) and the registry's generation, in one statement.

Both run on the manager's monitoring connection (`Links.monitoring`), shared with the monitoring
store: nothing on the predict path waits for that one (the registry's reads and changes have their own), and a
beat is one small statement. Every statement is bounded (`statement_timeout`), so a database that
stalls delays the heartbeat thread, never a request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from model_mcp.core.errors import StorageError
from model_mcp.core.pg import Link, Links, safe_url

if TYPE_CHECKING:
    import psycopg

    from model_mcp.core.replicas import ReplicaBeat, ReplicaIdentity

T = TypeVar("T")
STATEMENT_TIMEOUT_MS = 5000
PRUNE_AFTER = "1 day"
PRUNE_EVERY_S = 3600.0

_COLUMNS = ("replica_id", "host_name", "pid", "address", "started_at", "interval_s", "applied_generation",
            "serves", "note", "server_version", "artifact_root")


class PostgresReplicas:
    def __init__(self, url: str, *, links: Links | None = None) -> None:
        self.url = url
        self._owned = links is None  # a link of its own is closed with it; a shared one by its manager
        self.link: Link = (links or Links(url)).monitoring
        self._pruned_at = float("-inf")

    def __repr__(self) -> str:
        return f"PostgresReplicas({safe_url(self.url)!r})"

    def _run(self, doing: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        def bounded(connection: psycopg.Connection[Any]) -> T:
            connection.execute("SELECT set_config('statement_timeout', %s, true)", (str(STATEMENT_TIMEOUT_MS),))
            return fn(connection)

        # A failed call drops the connection (Link): the next beat opens a new one, so beats resume
        # by themselves when the database returns.
        return self.link.run(bounded, lambda exc: StorageError(
            f"The database is unreachable while {doing} ({str(exc).strip()[:200]}). "
            "The replicas' heartbeats resume by themselves when it returns."))

    def beat(self, identity: ReplicaIdentity, state: ReplicaBeat) -> int:
        """Write this replica's row (last_seen = the database's now); about once an hour also delete
        the rows unseen for a day (replicas long gone). Answers the rows pruned."""
        prune = time.monotonic() - self._pruned_at >= PRUNE_EVERY_S
        values = (identity.replica_id, identity.host_name, identity.pid, identity.address, identity.started_at,
                  identity.interval_s, state.applied_generation, json.dumps(state.serves), state.note,
                  identity.server_version, identity.artifact_root)

        def write(connection: psycopg.Connection[Any]) -> int:
            connection.execute(
                f"INSERT INTO replicas ({', '.join(_COLUMNS)}, last_seen) "
                f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}, now()) "
                "ON CONFLICT (replica_id) DO UPDATE SET last_seen = now(), "
                + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:]), values)
            if not prune:
                return 0
            return connection.execute(f"DELETE FROM replicas WHERE last_seen < now() - interval '{PRUNE_AFTER}'"
                                      ).rowcount

        pruned = self._run("writing this replica's heartbeat", write)
        if prune:
            self._pruned_at = time.monotonic()
        return pruned

    def read(self) -> tuple[int, list[dict[str, Any]]]:
        """(the registry's generation, every replica's row with `seen_s_ago` and `last_seen`), the
        rows in the order replicas started."""

        def fetch(connection: psycopg.Connection[Any]) -> tuple[int, list[dict[str, Any]]]:
            cursor = connection.execute(
                f"SELECT {', '.join(_COLUMNS)}, last_seen, EXTRACT(EPOCH FROM now() - last_seen)::float8, "
                "(SELECT generation FROM registry_state) FROM replicas ORDER BY started_at, replica_id")
            rows = cursor.fetchall()
            if rows:
                generation = rows[0][-1]
            else:
                found = connection.execute("SELECT generation FROM registry_state").fetchone()
                generation = found[0] if found else 0
            names = [*_COLUMNS, "last_seen", "seen_s_ago"]
            return int(generation), [dict(zip(names, row[:-1], strict=True)) for row in rows]

        return self._run("reading the replicas' heartbeats", fetch)

    def close(self) -> None:
        if self._owned:
            self.link.close()


__all__ = ["PostgresReplicas"]
