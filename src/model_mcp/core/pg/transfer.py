"""Copy a home's registry, audit trail, monitoring store and rollout policies into a PostgreSQL database.

The database half of `model-mcp migrate --to postgresql://...` (core/pg/move.py copies the package
files and reports into the shared artifact folder first, then calls this). Safe to rerun:

- registry: the database's registry is made equal to the home's (either format, read as the
  server reads it) in one transaction. A database holding versions the home does not have is
  refused (`invalid_state`), nothing written: it is another registry, not an earlier copy.
- audit trail: the home's events oldest first; the database's events must be a beginning of them
  (an earlier copy), and only the rest are appended, in one transaction. Otherwise refused.
- monitoring: every table of `monitoring.db` (states too), process ids renumbered, in one transaction, when
  the database holds no monitoring rows yet; a rerun finds them there and skips (an earlier copy,
  or replicas already writing).
- rollout policies: each of `rollout-policies.json`'s the database lacks, in one transaction; one the
  database holds already (an earlier copy, or set since through a replica) is kept as it is.

The home is only read.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_mcp.core.errors import InvalidStateError, StorageError
from model_mcp.core.history import History
from model_mcp.core.pg import connect
from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.registry import Registry, Snapshot
from model_mcp.core.rollouts.policy import read_policies
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store

if TYPE_CHECKING:
    import psycopg

HISTORY_LOCK = 0x6D6D6370_00000004


@dataclass
class CopyReport:
    registry_versions: int = 0  # versions in the database's registry after the copy
    registry_written: int = 0  # of which written by this run
    history_events: int = 0  # events appended by this run
    history_already: int = 0  # events found copied by an earlier run
    monitoring_rows: dict[str, int] = field(default_factory=dict)  # rows copied per table (empty: skipped)
    policies_copied: int = 0  # rollout policies written by this run
    notes: list[str] = field(default_factory=list)


def copy_home_to_database(home: Path, url: str, *, entries: dict[str, RegistryEntry] | None = None) -> CopyReport:
    """Copy the home's registry, audit trail, monitoring store and rollout policies into the database at `url`.

    `entries`: the registry to copy instead of the home's as it reads (`model-mcp migrate` gives the
    home's entries with their paths and files as the artifact folder holds them)."""
    import psycopg

    report = CopyReport()
    store = Store(home)
    _copy_registry(store, url, report, entries)
    try:
        connection = connect(url)
    except psycopg.Error as exc:
        raise StorageError(f"The database is unreachable ({str(exc).strip()[:200]}). The registry was copied; "
                           "rerun to copy the rest.") from exc
    with connection:
        try:
            _copy_history(store, connection, report)
            _copy_monitoring(home / "monitoring.db", connection, report)
            _copy_policies(home, connection, report)
        except psycopg.Error as exc:
            raise StorageError(f"The copy into the database failed ({str(exc).strip()[:200]}). What was "
                               "copied before stays; rerun to copy the rest.") from exc
    return report


def _copy_registry(store: Store, url: str, report: CopyReport, entries: dict[str, RegistryEntry] | None) -> None:
    # RegistryCorruptError for a damaged registry.json: nothing copied.
    source = Snapshot(entries=entries) if entries is not None else Registry(store).read()
    target = PostgresRegistry(url, listen=False)
    written: list[int] = []

    def change(snapshot: Snapshot) -> None:
        foreign = [version for version in snapshot.entries if version not in source.entries]
        if foreign:
            raise InvalidStateError(
                f"The database already holds a registry with versions this home does not have "
                f"({', '.join(sorted(foreign)[:5])}{', ...' if len(foreign) > 5 else ''}). Nothing was copied: "
                "copy a home into an empty database, or into one holding an earlier copy of it.")
        written.append(sum(1 for version, entry in source.entries.items()
                           if version not in snapshot.entries
                           or snapshot.entries[version].registry_json() != entry.registry_json()))
        # The home's entries replace the database's (update() writes only those that differ).
        snapshot.entries.clear()
        snapshot.entries.update(source.entries)

    try:
        target.update(change)
    finally:
        target.close()
    report.registry_versions = len(source.entries)
    report.registry_written = written[0] if written else 0


def _copy_history(store: Store, connection: psycopg.Connection[Any], report: CopyReport) -> None:
    events = list(History(store.history_path).oldest_first())
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (HISTORY_LOCK,))
        held = [json.loads(text) for (text,) in connection.execute(
            "SELECT entry::text FROM history_events ORDER BY id").fetchall()]
        if events[:len(held)] != held:
            raise InvalidStateError(
                "The database's audit trail is not an earlier copy of this home's (its events differ). "
                "The registry was copied; the audit trail and monitoring were not.")
        rest = events[len(held):]
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO history_events (at, event, version, outcome, entry) VALUES (%s, %s, %s, %s, %s)",
                [(str(e.get("at", "")), str(e.get("event", "")), e.get("version"), str(e.get("outcome", "")),
                  json.dumps(e, default=str, separators=(",", ":"))) for e in rest])
    report.history_events, report.history_already = len(rest), len(held)


_TABLES = {  # monitoring.db table -> (PostgreSQL table, columns in both, order)
    "buckets": ("monitoring_buckets", ("version, deployment, grain, start, process, requests, rows, errors, "
                                       "flagged_rows, anomalies, busy_s, cpu_s, rss_bytes, latency"),
                "version, grain, start"),
    "window_rows": ("monitoring_window_rows", "version, deployment, kind, at, x, score, label", "id"),
    "requests": ("monitoring_requests", "request_id, version, deployment, at, n_rows, labels", "at"),
    "feedback": ("monitoring_feedback", "request_id, version, deployment, at, n_rows, truth, predicted", "at"),
    "drift_reports": ("monitoring_drift_reports", "version, deployment, at, summary", "id"),
    "alerts": ("monitoring_alerts", ("key, kind, severity, version, message, action, first_seen, last_seen, "
                                     "count, active"), "id"),
    "states": ("monitoring_states", "key, value, updated_at", "key"),  # keys name no process id
}


def _copy_monitoring(path: Path, connection: psycopg.Connection[Any], report: CopyReport) -> None:
    if not path.exists():
        report.notes.append("no monitoring.db in the home: no monitoring to copy")
        return
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        report.notes.append(f"monitoring.db could not be opened ({exc}): monitoring not copied")
        return
    with contextlib.closing(source), connection.transaction():
        connection.execute("LOCK TABLE monitoring_processes IN EXCLUSIVE MODE")
        if connection.execute("SELECT EXISTS (SELECT 1 FROM monitoring_processes)").fetchone()[0]:
            report.notes.append("the database already holds monitoring figures: monitoring not copied again")
            return
        try:
            processes = source.execute("SELECT id, pid, host, started_at, last_seen FROM processes ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            report.notes.append(f"monitoring.db could not be read ({exc}): monitoring not copied")
            return
        new_id: dict[int, int] = {}
        for old, pid, host, started_at, last_seen in processes:
            new_id[old] = connection.execute(
                "INSERT INTO monitoring_processes (pid, host, started_at, last_seen) VALUES (%s, %s, %s, %s) "
                "RETURNING id", (pid, host, started_at, last_seen)).fetchone()[0]
        copied = {"processes": len(processes)}
        present = {name for (name,) in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, (target, columns, order) in _TABLES.items():
            if table not in present:
                continue  # a monitoring.db of an older schema (no states yet)
            names = [c.strip() for c in columns.split(",")]
            rows = source.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()
            if table == "buckets":
                at = names.index("process")
                rows = [(*row[:at], new_id.get(row[at], row[at]), *row[at + 1:]) for row in rows]
            elif table == "alerts":
                rows = [(*row[:-1], bool(row[-1])) for row in rows]
            marks = ", ".join(["%s"] * len(names))
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {target} ({columns}) VALUES ({marks})", rows)
            copied[table] = len(rows)
        report.monitoring_rows = copied


def _copy_policies(home: Path, connection: psycopg.Connection[Any], report: CopyReport) -> None:
    try:
        policies = read_policies(home)
    except StorageError as exc:
        report.notes.append(f"{exc} The rollout policies were not copied.")
        return
    with connection.transaction():
        for name, policy in sorted(policies.items()):
            value = json.dumps(policy.model_dump())
            written = connection.execute(
                "INSERT INTO rollout_policies (model_name, policy) VALUES (%s, %s) ON CONFLICT (model_name) DO NOTHING",
                (name, value)).rowcount
            if written:
                report.policies_copied += 1
            elif not connection.execute("SELECT policy = %s::jsonb FROM rollout_policies WHERE model_name = %s",
                                        (value, name)).fetchone()[0]:
                report.notes.append(f"the database's rollout policy of {name!r} differs from the home's: kept")
