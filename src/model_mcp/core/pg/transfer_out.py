"""Copy a PostgreSQL database's registry, audit trail and monitoring store into a home: the reverse
of transfer.py, the database half of `model-mcp migrate --to DIR` (core/pg/move.py copies the
package files and reports first). Safe to rerun:

- registry: `registry.json` (the current format) is made equal to the database's registry, in the
  database's order. A home whose registry holds versions the database lacks is refused
  (`invalid_state`) by `check_target`, before anything is written: it is another home, not an
  earlier copy. A registry.json already equal is not rewritten.
- audit trail: the home's events must be a beginning of the database's (an earlier copy); the rest
  is appended to `history.jsonl` in order, every field kept. Otherwise refused, by `check_target`.
- monitoring: every monitoring table into `monitoring.db`, process ids kept, in one SQLite
  transaction, when it holds no monitoring rows yet; a rerun finds them there and skips.
- rollout policies: each the home's `rollout-policies.json` lacks, under the home's lock; one the
  home holds already is kept as it is (and named in the notes when it differs).

The database is only read.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_mcp.core.errors import InvalidStateError
from model_mcp.core.history import History
from model_mcp.core.pg.transfer import _TABLES
from model_mcp.core.registry import Registry, Snapshot
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store

if TYPE_CHECKING:
    import psycopg


@dataclass
class HomeCopyReport:
    registry_versions: int = 0
    registry_written: int = 0  # entries that differ from (or are missing in) the home's registry.json
    history_events: int = 0
    history_already: int = 0
    monitoring_rows: dict[str, int] = field(default_factory=dict)
    policies_copied: int = 0
    notes: list[str] = field(default_factory=list)


def database_events(connection: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The database's audit trail, oldest first."""
    return [json.loads(text) for (text,) in connection.execute(
        "SELECT entry::text FROM history_events ORDER BY id").fetchall()]


def check_target(store: Store, entries: dict[str, RegistryEntry], events: list[dict[str, Any]]) -> Snapshot:
    """Refuse a home that is not empty nor an earlier copy of this database; answers its registry."""
    held = Registry(store).read()  # RegistryCorruptError for a damaged registry.json: nothing written
    foreign = sorted(set(held.entries) - set(entries))
    if foreign:
        raise InvalidStateError(
            f"{store.registry_path.name} in {store.home} holds versions the database does not "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}). Nothing was copied: copy into an "
            "empty folder, or into one holding an earlier copy of this database.")
    trail = list(History(store.history_path).oldest_first())
    if events[:len(trail)] != trail:
        raise InvalidStateError(
            f"The audit trail in {store.home} is not an earlier copy of the database's (its events differ). "
            "Nothing was copied: copy into an empty folder, or into one holding an earlier copy.")
    return held


def write_registry(store: Store, entries: dict[str, RegistryEntry], held: Snapshot, report: HomeCopyReport) -> None:
    """registry.json equal to `entries`, in their order; untouched when it already is."""
    wanted = [(version, entry.registry_json()) for version, entry in entries.items()]
    present = [(version, entry.registry_json()) for version, entry in held.entries.items()]
    report.registry_versions = len(wanted)
    report.registry_written = sum(1 for version, data in wanted if dict(present).get(version) != data)
    if held.fmt == "new" and wanted == present:
        return

    def replace(snapshot: Snapshot) -> None:
        snapshot.entries.clear()
        snapshot.entries.update({version: entry.model_copy(deep=True) for version, entry in entries.items()})

    Registry(store).update(replace)


def append_history(store: Store, events: list[dict[str, Any]], report: HomeCopyReport) -> None:
    history = History(store.history_path)
    held = sum(1 for _ in history.oldest_first())
    history.append_events(events[held:])
    report.history_events, report.history_already = len(events) - held, held


def copy_monitoring(connection: psycopg.Connection[Any], home: Path, report: HomeCopyReport) -> None:
    """Every monitoring table into the home's monitoring.db, in one transaction, unless it holds figures."""
    from model_mcp.core.monitoring_store.base import StoreError
    from model_mcp.core.monitoring_store.sqlite import SQLiteMonitoringStore

    processes = connection.execute(
        "SELECT id, pid, host, started_at, last_seen FROM monitoring_processes ORDER BY id").fetchall()
    if not processes:
        report.notes.append("the database holds no monitoring figures: no monitoring.db written")
        return
    store = SQLiteMonitoringStore(home)
    try:
        store.quick_check()  # creates monitoring.db with the current schema (or finds it damaged)
    except StoreError as exc:
        report.notes.append(f"monitoring.db could not be opened ({exc}): monitoring not copied")
        return
    finally:
        store.close()
    target = sqlite3.connect(store.path, isolation_level=None, timeout=10)
    with contextlib.closing(target):
        target.execute("BEGIN IMMEDIATE")
        try:
            if target.execute("SELECT EXISTS (SELECT 1 FROM processes)").fetchone()[0]:
                target.execute("ROLLBACK")
                report.notes.append("monitoring.db already holds monitoring figures: monitoring not copied again")
                return
            target.executemany("INSERT INTO processes (id, pid, host, started_at, last_seen) VALUES (?, ?, ?, ?, ?)",
                               processes)
            copied = {"processes": len(processes)}
            for table, (source, columns, order) in _TABLES.items():
                names = [c.strip() for c in columns.split(",")]
                # json columns as their text (psycopg would parse them); booleans as SQLite's integers.
                selected = ", ".join("summary::text" if n == "summary" else "active::int" if n == "active" else n
                                     for n in names)
                rows = connection.execute(f"SELECT {selected} FROM {source} ORDER BY {order}").fetchall()
                marks = ", ".join(["?"] * len(names))
                target.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
                copied[table] = len(rows)
            target.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                target.execute("ROLLBACK")
            raise
    report.monitoring_rows = copied


def copy_policies(connection: psycopg.Connection[Any], store: Store, report: HomeCopyReport) -> None:
    """The database's rollout policies into the home's rollout-policies.json (those it lacks)."""
    from model_mcp.core.pg.policies import policies_in
    from model_mcp.core.rollouts.policy import read_policies, write_policies

    wanted = policies_in(connection)
    with store.lock():
        held = read_policies(store.home)  # StorageError for a damaged file: nothing written
        added = {name: policy for name, policy in wanted.items() if name not in held}
        report.notes += [f"the home's rollout policy of {name!r} differs from the database's: kept"
                         for name, policy in wanted.items() if name in held and held[name] != policy]
        if added:
            write_policies(store.home, {**held, **added})
    report.policies_copied = len(added)
