"""`model-mcp migrate`: a file home into PostgreSQL and the shared artifact folder, and back.

- `home_to_database(home, url, artifact_root)`: the package folders of every registered version
  and their validation reports into `<artifact_root>/models/...` and `<artifact_root>/reports/`
  (core/verified_copy.py: every file's sha256 verified), then the registry, the audit trail and
  `monitoring.db` into the database (core/pg/transfer.py). Files before the rows that name them:
  a server on the database never sees a version whose files are not all in place.
- `database_to_home(url, artifact_root, home)`: the package folders and reports from the artifact
  folder into `<home>/models/` and `<home>/reports/`, then `registry.json`, `history.jsonl` and
  `monitoring.db` from the database (core/pg/transfer_out.py). The home is then served by
  `model-mcp serve --home DIR` without the URL.

Both are safe to rerun (what is already there and identical is skipped) and check everything that
could refuse the run (another registry at the target, an audit trail that is not an earlier copy,
a target file with other content) before they write anything. Run them with the servers stopped
(or read-only): a change made meanwhile may be missed by the copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_mcp.core.errors import InvalidStateError, NotFoundError, StorageError
from model_mcp.core.history import History
from model_mcp.core.pg import connect, safe_url
from model_mcp.core.registry import Registry
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store, storage_error
from model_mcp.core.verified_copy import FileTally, PackagePlan, copy_packages, copy_reports, plan_packages


@dataclass
class MigrationReport:
    direction: str  # "home_to_database" or "database_to_home"
    source: str
    target: str
    artifact_root: str
    versions: int = 0
    registry_written: int = 0
    files_copied: int = 0
    files_skipped: int = 0
    files_verified: int = 0
    bytes_copied: int = 0
    reports_copied: int = 0
    reports_skipped: int = 0
    reports_replaced: int = 0
    files_recorded: list[str] = field(default_factory=list)
    paths_rewritten: list[str] = field(default_factory=list)
    history_events: int = 0
    history_already: int = 0
    monitoring_rows: dict[str, int] = field(default_factory=dict)
    policies_copied: int = 0
    notes: list[str] = field(default_factory=list)

    def add_files(self, tally: FileTally) -> None:
        for name in ("files_copied", "files_skipped", "files_verified", "bytes_copied", "reports_copied",
                     "reports_skipped", "reports_replaced", "files_recorded", "paths_rewritten"):
            setattr(self, name, getattr(tally, name))
        self.notes.extend(tally.notes)


def _as_copied(entries: dict[str, RegistryEntry], plans: list[PackagePlan]) -> dict[str, RegistryEntry]:
    """The entries as the target holds them: paths under models/, `files` recorded."""
    copied = {}
    by_version = {plan.version: plan for plan in plans}
    for version, entry in entries.items():
        plan = by_version[version]
        entry = entry.model_copy(deep=True)
        entry.path = plan.target_path
        if not entry.files:
            entry.files = {name: info.model_copy() for name, info in plan.expected.items()}
        copied[version] = entry
    return copied


def _database_error(exc: BaseException | None, doing: str, after: str = "Nothing was copied") -> StorageError:
    reason = " ".join(str(exc).split())[:200] if exc is not None else "no answer"
    return StorageError(f"The database failed while {doing} ({reason}). {after}; rerun once it answers.")


def _read_registry(url: str) -> dict[str, RegistryEntry]:
    from model_mcp.core.pg.registry import PostgresRegistry

    registry = PostgresRegistry(url, listen=False)
    try:
        return registry.read().entries
    except StorageError as exc:  # its sentence is a server's ("retries by itself"): say it for this run
        raise _database_error(exc.__cause__ or exc, "reading the registry") from exc
    finally:
        registry.close()


def _existing_home(home: Path) -> Store:
    if not home.is_dir():
        raise NotFoundError(f"The home {home} does not exist. Nothing was copied.")
    return Store(home)


def home_to_database(home: Path, url: str, artifact_root: Path) -> MigrationReport:
    import psycopg

    from model_mcp.core.pg.transfer import copy_home_to_database

    store = _existing_home(Path(home))
    report = MigrationReport(direction="home_to_database", source=str(store.home), target=safe_url(url),
                             artifact_root=str(artifact_root))
    entries = Registry(store).read().entries  # RegistryCorruptError for a damaged registry.json
    events = list(History(store.history_path).oldest_first())
    # What the database would refuse, asked before any file is copied (transfer.py asks again, in its
    # transactions, for a change made meanwhile).
    foreign = sorted(set(_read_registry(url)) - set(entries))
    if foreign:
        raise InvalidStateError(
            f"The database already holds a registry with versions this home does not have "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}). Nothing was copied: copy a home "
            "into an empty database, or into one holding an earlier copy of it.")
    try:
        with connect(url) as connection:
            from model_mcp.core.pg.transfer_out import database_events

            held = database_events(connection)
    except psycopg.Error as exc:
        raise _database_error(exc, "reading the audit trail") from exc
    if events[:len(held)] != held:
        raise InvalidStateError("The database's audit trail is not an earlier copy of this home's (its events "
                                "differ). Nothing was copied.")

    tally = FileTally()
    plans = plan_packages(entries, store.home, tally)
    # Under the artifact folder's lock, which every server's publish into models/ holds from the rename
    # to the row: a server started meanwhile waits, and never takes a copied folder for one placed by hand.
    with Store(store.home, artifact_root).lock():
        copy_packages(plans, artifact_root, tally)
        copy_reports(list(entries), store.reports_dir, artifact_root / "reports", tally)
        report.add_files(tally)
        copied = copy_home_to_database(store.home, url, entries=_as_copied(entries, plans))
    report.versions, report.registry_written = copied.registry_versions, copied.registry_written
    report.history_events, report.history_already = copied.history_events, copied.history_already
    report.monitoring_rows, report.policies_copied = copied.monitoring_rows, copied.policies_copied
    report.notes.extend(copied.notes)
    return report


def database_to_home(url: str, artifact_root: Path, home: Path) -> MigrationReport:
    import sqlite3

    import psycopg

    from model_mcp.core.pg.transfer_out import (
        HomeCopyReport,
        append_history,
        check_target,
        copy_monitoring,
        copy_policies,
        database_events,
        write_registry,
    )

    store = Store(Path(home))
    report = MigrationReport(direction="database_to_home", source=safe_url(url), target=str(store.home),
                             artifact_root=str(artifact_root))
    if not Path(artifact_root).is_dir():
        raise NotFoundError(f"The artifact folder {artifact_root} does not exist. Nothing was copied.")
    entries = _read_registry(url)
    try:
        connection = connect(url)
    except psycopg.Error as exc:
        raise _database_error(exc, "connecting") from exc
    with connection:
        try:
            events = database_events(connection)
        except psycopg.Error as exc:
            raise _database_error(exc, "reading the audit trail") from exc
        tally = FileTally()
        plans = plan_packages(entries, Path(artifact_root), tally)
        copied = HomeCopyReport()
        with store.lock():  # the home's own lock (the registry's too): a server started meanwhile waits
            held = check_target(store, entries, events)
            store.ensure()
            copy_packages(plans, store.home, tally)
            copy_reports(list(entries), Path(artifact_root) / "reports", store.reports_dir, tally)
            report.add_files(tally)
            write_registry(store, _as_copied(entries, plans), held, copied)
            append_history(store, events, copied)
        after = "The registry, files and audit trail were copied"
        try:
            copy_policies(connection, store, copied)
        except psycopg.Error as exc:
            raise _database_error(exc, "reading the rollout policies", after) from exc
        after = "The registry, files, audit trail and rollout policies were copied"
        try:
            copy_monitoring(connection, store.home, copied)
        except psycopg.Error as exc:
            raise _database_error(exc, "reading the monitoring tables", after) from exc
        except sqlite3.Error as exc:
            raise StorageError(f"monitoring.db could not be written ({exc}). {after}; rerun to copy the "
                               "monitoring figures.") from exc
        except OSError as exc:
            raise storage_error(exc, "writing monitoring.db") from exc
    report.versions, report.registry_written = copied.registry_versions, copied.registry_written
    report.history_events, report.history_already = copied.history_events, copied.history_already
    report.monitoring_rows, report.policies_copied = copied.monitoring_rows, copied.policies_copied
    report.notes.extend(copied.notes)
    return report


def summary_lines(report: MigrationReport) -> list[str]:
    """The report for a terminal."""
    lines = [
        f"Migrated {report.source} -> {report.target} (artifact folder {report.artifact_root}).",
        (f"versions: {report.versions} ({report.registry_written} written, "
         f"{report.versions - report.registry_written} already there)"),
        (f"files: {report.files_verified} verified by sha256 ({report.files_copied} copied, "
         f"{report.bytes_copied} bytes; {report.files_skipped} already there)"),
        (f"reports: {report.reports_copied} copied, {report.reports_replaced} replaced, "
         f"{report.reports_skipped} already there"),
        f"history: {report.history_events} events copied, {report.history_already} already there",
    ]
    rows: Any = report.monitoring_rows
    lines.append("monitoring: " + (", ".join(f"{table} {n}" for table, n in rows.items()) if rows else "nothing copied"))
    lines.append(f"rollout policies: {report.policies_copied} copied")
    if report.files_recorded:
        lines.append("files hashed and recorded (their entries had none): " + ", ".join(report.files_recorded))
    if report.paths_rewritten:
        lines.append("paths set to models/<version>: " + ", ".join(report.paths_rewritten))
    lines += [f"note: {note}" for note in report.notes]
    return lines
