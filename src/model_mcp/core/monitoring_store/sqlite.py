"""The SQLite backend of the monitoring store: `monitoring.db` in the home, WAL mode.

Why SQLite: one file, no server to install, safe for several processes on one machine (WAL lets
readers run beside the one writer; each process's recorder is a writer, taking turns through
SQLite's own lock, waiting up to `busy_timeout_s`). Committed transactions survive a SIGKILL of
the process (they are in the WAL file); `synchronous=NORMAL` trades the last transactions before a
power cut for not syncing every second.

Schema versions: `schema_version` holds one number; `MIGRATIONS[n]` takes a store from n - 1 to n,
run in one transaction at first use. A file written by a newer server (a higher version) is left
alone: it is read and written only by that server's schema.

Errors are translated once (`_translate`): a full disk, a lock held too long, a read-only file or
folder become `StoreUnavailable`; "not a database" and "malformed" become `StoreDamaged`, after
which `set_aside_damaged` moves the files aside and the next use starts a fresh store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from model_mcp.core.alerts import Alert, AlertRecord
from model_mcp.core.monitoring_store import histogram
from model_mcp.core.monitoring_store.base import (
    Batch,
    BucketColumns,
    BucketRow,
    MonitoringStore,
    ProcessInfo,
    RequestRow,
    Retention,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    Which,
)
from model_mcp.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")

FILE_NAME = "monitoring.db"
_KIND = {"recent": 0, "baseline": 1}

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE processes (
               id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL,
               started_at TEXT NOT NULL, last_seen TEXT NOT NULL)""",
        """CREATE TABLE buckets (
               version TEXT NOT NULL, deployment TEXT NOT NULL, grain INTEGER NOT NULL, start INTEGER NOT NULL,
               process INTEGER NOT NULL, requests INTEGER NOT NULL, rows INTEGER NOT NULL, errors INTEGER NOT NULL,
               flagged_rows INTEGER NOT NULL, anomalies INTEGER NOT NULL, busy_s REAL NOT NULL, cpu_s REAL NOT NULL,
               rss_bytes INTEGER NOT NULL, latency BLOB,
               PRIMARY KEY (version, grain, start, deployment, process)) WITHOUT ROWID""",
        """CREATE TABLE window_rows (
               id INTEGER PRIMARY KEY, version TEXT NOT NULL, deployment TEXT NOT NULL, kind INTEGER NOT NULL,
               at REAL NOT NULL, x BLOB NOT NULL, score REAL, label INTEGER)""",
        "CREATE INDEX window_rows_key ON window_rows (version, deployment, kind, id)",
        """CREATE TABLE requests (
               request_id TEXT PRIMARY KEY, version TEXT NOT NULL, deployment TEXT NOT NULL, at REAL NOT NULL,
               n_rows INTEGER NOT NULL, labels BLOB)""",
        "CREATE INDEX requests_version ON requests (version, at)",
        """CREATE TABLE feedback (
               request_id TEXT PRIMARY KEY, version TEXT NOT NULL, deployment TEXT NOT NULL, at REAL NOT NULL,
               n_rows INTEGER NOT NULL, truth BLOB NOT NULL, predicted BLOB NOT NULL)""",
        "CREATE INDEX feedback_deployment ON feedback (version, deployment, at)",
        """CREATE TABLE drift_reports (
               id INTEGER PRIMARY KEY, version TEXT NOT NULL, deployment TEXT NOT NULL, at TEXT NOT NULL,
               summary TEXT NOT NULL)""",
        "CREATE INDEX drift_reports_version ON drift_reports (version, id)",
        """CREATE TABLE alerts (
               id INTEGER PRIMARY KEY, key TEXT NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
               version TEXT, message TEXT NOT NULL, action TEXT, first_seen TEXT NOT NULL,
               last_seen TEXT NOT NULL, count INTEGER NOT NULL, active INTEGER NOT NULL)""",
        "CREATE INDEX alerts_last_seen ON alerts (last_seen)",
        "CREATE INDEX alerts_key ON alerts (key, active)",
    ],
    2: [
        """CREATE TABLE states (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID""",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)


def _translate(exc: sqlite3.Error) -> StoreError:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "malformed" not in message:
        return StoreUnavailable(message)
    if isinstance(exc, sqlite3.DatabaseError):
        return StoreDamaged(message)
    return StoreUnavailable(message)


def _int8(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype=np.int8).tobytes()


class SQLiteMonitoringStore(MonitoringStore):
    """monitoring.db in `home`, opened (and created, migrated) at first use."""

    def __init__(self, home: Path, *, busy_timeout_s: float = 1.0) -> None:
        self.path = Path(home) / FILE_NAME
        self.busy_timeout_s = busy_timeout_s
        self._connections: dict[str, sqlite3.Connection] = {}
        self._locks = {"write": threading.RLock(), "read": threading.RLock()}
        self._inode: int | None = None

    # --- connections -------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                     check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        with contextlib.suppress(OSError):
            self._inode = self.path.stat().st_ino
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        row = connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
        current = connection.execute("SELECT version FROM schema_version").fetchone()[0] if row else 0
        if current >= SCHEMA_VERSION:
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            if not row:
                connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = (connection.execute("SELECT version FROM schema_version").fetchone() or (0,))[0]
            for number in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number]:
                    connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        log.info("monitoring_store_migrated", path=str(self.path), from_version=current, to_version=SCHEMA_VERSION)

    def _run(self, role: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._locks[role]:
            try:
                connection = self._connections.get(role)
                if connection is None:
                    connection = self._connections[role] = self._open()
                return fn(connection)
            except sqlite3.Error as exc:
                self._drop(role)
                raise _translate(exc) from exc
            except OSError as exc:  # creating the folder
                raise StoreUnavailable(str(exc)) from exc

    def _drop(self, role: str) -> None:
        connection = self._connections.pop(role, None)
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    @contextlib.contextmanager
    def _transaction(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def check_file(self) -> None:
        """Reopen when the file was replaced under us (another process set a damaged one aside)."""
        try:
            inode = self.path.stat().st_ino
        except OSError:
            inode = None
        if self._inode is not None and inode != self._inode:
            for role in ("write", "read"):
                with self._locks[role]:
                    self._drop(role)
            self._inode = None

    def set_aside_damaged(self) -> str | None:
        """Move a damaged monitoring.db (with its -wal and -shm) aside; the next use starts afresh."""
        for role in ("write", "read"):
            with self._locks[role]:
                self._drop(role)
        if not self.path.exists():
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{FILE_NAME}.damaged-{stamp}-{os.getpid()}")
        os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(FILE_NAME + suffix)
            with contextlib.suppress(OSError):
                os.replace(side, target.with_name(target.name + suffix))
        self._inode = None
        return str(target)

    def quick_check(self) -> None:
        """Raise StoreDamaged when SQLite finds the file damaged."""
        def check(connection: sqlite3.Connection) -> None:
            result = connection.execute("PRAGMA quick_check").fetchone()
            if not result or result[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result[0] if result else 'no answer'}")

        self._run("write", check)

    def close(self) -> None:
        for role in ("write", "read"):
            with self._locks[role]:
                self._drop(role)

    # --- writing -------------------------------------------------------------------------------------
    def register_process(self, *, pid: int, host: str, started_at: str) -> int:
        def register(connection: sqlite3.Connection) -> int:
            with self._transaction(connection):
                cursor = connection.execute(
                    "INSERT INTO processes (pid, host, started_at, last_seen) VALUES (?, ?, ?, ?)",
                    (pid, host, started_at, started_at))
                return int(cursor.lastrowid or 0)

        return self._run("write", register)

    def write(self, batch: Batch, *, process: int, now: str) -> None:
        rows: list[tuple[Any, ...]] = []
        for block in batch.rows:
            kind = _KIND[block.which]
            X = np.ascontiguousarray(block.X, dtype=np.float64)
            scores = block.scores.tolist() if block.scores is not None else [None] * X.shape[0]
            labels = block.labels.tolist() if block.labels is not None else [None] * X.shape[0]
            rows.extend((block.version, block.deployment, kind, block.at, X[i].tobytes(), scores[i], labels[i])
                        for i in range(X.shape[0]))
        requests = [
            (r.request_id, r.version, r.deployment, r.at, r.n_rows,
             None if r.labels is None else _int8(r.labels))
            for r in batch.requests
        ]

        def write(connection: sqlite3.Connection) -> None:
            with self._transaction(connection):
                for b in batch.buckets:
                    self._add_bucket(connection, b, process)
                if rows:
                    connection.executemany(
                        "INSERT INTO window_rows (version, deployment, kind, at, x, score, label) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                if requests:
                    connection.executemany(
                        "INSERT OR REPLACE INTO requests (request_id, version, deployment, at, n_rows, labels) "
                        "VALUES (?, ?, ?, ?, ?, ?)", requests)
                connection.execute("UPDATE processes SET last_seen = ? WHERE id = ?", (now, process))

        self._run("write", write)

    @staticmethod
    def _add_bucket(connection: sqlite3.Connection, b: BucketRow, process: int) -> None:
        """Add a bucket's increments to what the process already wrote there (the histogram merged)."""
        key = (b.version, b.grain, b.start, b.deployment, process)
        old = connection.execute(
            "SELECT latency FROM buckets WHERE version = ? AND grain = ? AND start = ? AND deployment = ? "
            "AND process = ?", key).fetchone()
        counts = histogram.empty()
        if old is not None:
            histogram.add_encoded(counts, old[0])
        if b.latency.size:
            counts += b.latency
        connection.execute(
            "INSERT INTO buckets (version, grain, start, deployment, process, requests, rows, errors, flagged_rows, "
            "anomalies, busy_s, cpu_s, rss_bytes, latency) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (version, grain, start, deployment, process) DO UPDATE SET "
            "requests = requests + excluded.requests, rows = rows + excluded.rows, errors = errors + excluded.errors, "
            "flagged_rows = flagged_rows + excluded.flagged_rows, anomalies = anomalies + excluded.anomalies, "
            "busy_s = busy_s + excluded.busy_s, cpu_s = cpu_s + excluded.cpu_s, "
            "rss_bytes = MAX(rss_bytes, excluded.rss_bytes), latency = excluded.latency",
            (*key, b.requests, b.rows, b.errors, b.flagged_rows, b.anomalies, b.busy_s, b.cpu_s, b.rss_bytes,
             histogram.encode(counts)))

    def prune(self, retention: Retention, *, now: float) -> dict[str, int]:
        cutoff = now - retention.days * 86400

        def prune(connection: sqlite3.Connection) -> dict[str, int]:
            removed: dict[str, int] = {}
            with self._transaction(connection):
                removed["buckets"] = connection.execute(
                    "DELETE FROM buckets WHERE start < ?", (int(cutoff),)).rowcount
                windows = connection.execute(
                    "SELECT version, deployment, MAX(at) FROM window_rows WHERE kind = 0 "
                    "GROUP BY version, deployment").fetchall()
                removed["window_rows"] = 0
                for version, deployment, newest in windows:
                    if newest < cutoff:  # a deployment no one served for the whole retention period
                        removed["window_rows"] += connection.execute(
                            "DELETE FROM window_rows WHERE version = ? AND deployment = ?",
                            (version, deployment)).rowcount
                        continue
                    removed["window_rows"] += connection.execute(
                        "DELETE FROM window_rows WHERE version = ? AND deployment = ? AND kind = 0 AND id <= "
                        "(SELECT id FROM window_rows WHERE version = ? AND deployment = ? AND kind = 0 "
                        " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (version, deployment, version, deployment, retention.window_rows)).rowcount
                removed["requests"] = connection.execute(
                    "DELETE FROM requests WHERE at < ?", (cutoff,)).rowcount
                for (version,) in connection.execute("SELECT DISTINCT version FROM requests").fetchall():
                    removed["requests"] += connection.execute(
                        "DELETE FROM requests WHERE version = ? AND at < "
                        "(SELECT at FROM requests WHERE version = ? ORDER BY at DESC LIMIT 1 OFFSET ?)",
                        (version, version, retention.requests - 1)).rowcount
                removed["feedback"] = connection.execute("DELETE FROM feedback WHERE at < ?", (cutoff,)).rowcount
                removed["drift_reports"] = connection.execute(
                    "DELETE FROM drift_reports WHERE at < ? OR id IN (SELECT id FROM (SELECT id, ROW_NUMBER() "
                    "OVER (PARTITION BY version ORDER BY id DESC) AS n FROM drift_reports) WHERE n > ?)",
                    (_iso(cutoff), retention.drift_reports)).rowcount
                removed["alerts"] = connection.execute(
                    "DELETE FROM alerts WHERE active = 0 AND last_seen < ?", (_iso(cutoff),)).rowcount
                removed["processes"] = connection.execute(
                    "DELETE FROM processes WHERE last_seen < ? AND id NOT IN (SELECT DISTINCT process FROM buckets)",
                    (_iso(cutoff),)).rowcount
            return removed

        return self._run("write", prune)

    def window_count(self, version: str, deployment: str, which: Which) -> int:
        return self._run("write", lambda c: int(c.execute(
            "SELECT COUNT(*) FROM window_rows WHERE version = ? AND deployment = ? AND kind = ?",
            (version, deployment, _KIND[which])).fetchone()[0]))

    # --- reading ---------------------------------------------------------------------------------------
    def bucket_columns(self, version: str, *, grain: int, since: int, until: int,
                       deployment: str | None = None) -> BucketColumns:
        query = ("SELECT start, process, requests, rows, errors, flagged_rows, anomalies, busy_s, cpu_s, rss_bytes, "
                 "latency FROM buckets WHERE version = ? AND grain = ? AND start >= ? AND start < ?")
        params: list[Any] = [version, grain, since, until]
        if deployment is not None:
            query += " AND deployment = ?"
            params.append(deployment)
        found = self._run("read", lambda c: c.execute(query, params).fetchall())
        n = len(found)
        latency = np.zeros((n, histogram.N_BINS), dtype=np.int64)
        for i, row in enumerate(found):
            blob = row[10]
            if blob:
                lo = int.from_bytes(blob[:2], "little")
                counts = np.frombuffer(blob, dtype="<u4", offset=2)
                latency[i, lo:lo + counts.size] = counts
        numbers = np.array([row[:10] for row in found], dtype=np.float64).reshape(n, 10)
        ints = numbers.astype(np.int64)
        return BucketColumns(start=ints[:, 0], process=ints[:, 1], requests=ints[:, 2], rows=ints[:, 3],
                             errors=ints[:, 4], flagged_rows=ints[:, 5], anomalies=ints[:, 6], busy_s=numbers[:, 7],
                             cpu_s=numbers[:, 8], rss_bytes=ints[:, 9], latency=latency)

    def processes(self, ids: list[int]) -> list[ProcessInfo]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        found = self._run("read", lambda c: c.execute(
            f"SELECT pid, host, started_at, last_seen FROM processes WHERE id IN ({marks}) ORDER BY started_at",
            ids).fetchall())
        return [ProcessInfo(pid=p, host=h, started_at=s, last_seen=last) for p, h, s, last in found]

    def window(self, version: str, deployment: str, which: Which,
               limit: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        order = "DESC" if which == "recent" else "ASC"
        found = self._run("read", lambda c: c.execute(
            f"SELECT x, score, label FROM window_rows WHERE version = ? AND deployment = ? AND kind = ? "
            f"ORDER BY id {order} LIMIT ?", (version, deployment, _KIND[which], limit)).fetchall())
        if which == "recent":
            found.reverse()
        if not found:
            return np.empty((0, 0)), None, None
        X = np.frombuffer(b"".join(r[0] for r in found), dtype=np.float64).reshape(len(found), -1).copy()
        scores_list = [r[1] for r in found]
        labels_list = [r[2] for r in found]
        scores = None if any(s is None for s in scores_list) else np.asarray(scores_list, dtype=np.float64)
        labels = None if any(v is None for v in labels_list) else np.asarray(labels_list, dtype=np.int64)
        return X, scores, labels

    def request(self, request_id: str) -> RequestRow | None:
        found = self._run("read", lambda c: c.execute(
            "SELECT version, deployment, at, n_rows, labels FROM requests WHERE request_id = ?",
            (request_id,)).fetchone())
        if found is None:
            return None
        version, deployment, at, n_rows, labels = found
        return RequestRow(request_id=request_id, version=version, deployment=deployment, at=at, n_rows=n_rows,
                          labels=None if labels is None else np.frombuffer(labels, dtype=np.int8).astype(np.int64))

    # --- feedback, drift reports, alerts ------------------------------------------------------------------
    def record_feedback(self, request: RequestRow, truth: np.ndarray, *, now: float, max_rows: int) -> int:
        predicted = request.labels if request.labels is not None else np.zeros(0)

        def record(connection: sqlite3.Connection) -> int:
            key = (request.version, request.deployment)
            with self._transaction(connection):
                connection.execute(
                    "INSERT OR REPLACE INTO feedback (request_id, version, deployment, at, n_rows, truth, predicted) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (request.request_id, *key, now, int(truth.size), _int8(truth), _int8(predicted)))
                # Oldest requests go first once the deployment holds more than max_rows labelled rows.
                connection.execute(
                    "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM (SELECT request_id, "
                    "SUM(n_rows) OVER (ORDER BY at DESC, request_id ROWS UNBOUNDED PRECEDING) AS held "
                    "FROM feedback WHERE version = ? AND deployment = ?) WHERE held > ? AND request_id != ?)",
                    (*key, max_rows, request.request_id))
                return int(connection.execute(
                    "SELECT COALESCE(SUM(n_rows), 0) FROM feedback WHERE version = ? AND deployment = ?",
                    key).fetchone()[0])

        return self._run("write", record)

    def labelled(self, version: str, deployment: str) -> tuple[np.ndarray, np.ndarray] | None:
        found = self._run("read", lambda c: c.execute(
            "SELECT truth, predicted FROM feedback WHERE version = ? AND deployment = ? ORDER BY at",
            (version, deployment)).fetchall())
        if not found:
            return None
        truth = np.frombuffer(b"".join(t for t, _ in found), dtype=np.int8).astype(np.int64)
        predicted = np.frombuffer(b"".join(p for _, p in found), dtype=np.int8).astype(np.int64)
        return truth, predicted

    def save_drift_summary(self, version: str, deployment: str, *, at: str, summary: dict[str, Any]) -> None:
        text = json.dumps(summary, default=str)

        def save(connection: sqlite3.Connection) -> None:
            with self._transaction(connection):
                connection.execute("INSERT INTO drift_reports (version, deployment, at, summary) VALUES (?, ?, ?, ?)",
                                   (version, deployment, at, text))

        self._run("write", save)

    def drift_summaries(self, version: str, limit: int) -> list[dict[str, Any]]:
        found = self._run("read", lambda c: c.execute(
            "SELECT summary FROM drift_reports WHERE version = ? ORDER BY id DESC LIMIT ?",
            (version, limit)).fetchall())
        return [json.loads(text) for (text,) in found]

    def put_state(self, key: str, value: dict[str, Any], *, now: str) -> None:
        text = json.dumps(value, default=str)

        def save(connection: sqlite3.Connection) -> None:
            with self._transaction(connection):
                connection.execute("INSERT INTO states (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) "
                                   "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                                   (key, text, now))

        self._run("write", save)

    def states(self, prefix: str) -> dict[str, dict[str, Any]]:
        found = self._run("read", lambda c: c.execute(
            "SELECT key, value FROM states WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)).fetchall())
        return {key: json.loads(text) for key, text in found}

    def raise_alerts(self, alerts: list[Alert], *, version: str | None, kinds: tuple[str, ...],
                     now: str) -> list[AlertRecord]:
        def raise_(connection: sqlite3.Connection) -> list[int]:
            changed: list[int] = []
            raised: list[str] = []
            with self._transaction(connection):
                for alert in alerts:
                    key = f"{alert.version or ''}|{alert.kind}"
                    raised.append(key)
                    # One line per episode: an alert that ended and comes back is a new line.
                    old = connection.execute("SELECT id, severity FROM alerts WHERE key = ? AND active = 1",
                                             (key,)).fetchone()
                    if old is None:
                        cursor = connection.execute(
                            "INSERT INTO alerts (key, kind, severity, version, message, action, first_seen, last_seen, "
                            "count, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 1)",
                            (key, alert.kind, alert.severity, alert.version, alert.message, alert.action, now, now))
                        changed.append(int(cursor.lastrowid or 0))
                        continue
                    alert_id, severity = old
                    connection.execute(
                        "UPDATE alerts SET severity = ?, message = ?, action = ?, last_seen = ?, count = count + 1 "
                        "WHERE id = ?", (alert.severity, alert.message, alert.action, now, alert_id))
                    if severity != alert.severity:
                        changed.append(alert_id)
                kind_marks = ",".join("?" * len(kinds))
                key_marks = ",".join("?" * len(raised))
                ended = connection.execute(
                    f"SELECT id FROM alerts WHERE version IS ? AND active = 1 AND kind IN ({kind_marks})"
                    + (f" AND key NOT IN ({key_marks})" if raised else ""),
                    (version, *kinds, *raised)).fetchall()
                for (alert_id,) in ended:
                    connection.execute("UPDATE alerts SET active = 0 WHERE id = ?", (alert_id,))
                    changed.append(alert_id)
            return changed

        ids = self._run("write", raise_)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return self._select_alerts(f"id IN ({marks})", ids, limit=len(ids), role="write")

    def alerts(self, *, version: str | None = None, active_only: bool = False, severity: str | None = None,
               limit: int = 100) -> list[AlertRecord]:
        where, params = ["1 = 1"], []
        if version is not None:
            where.append("version = ?")
            params.append(version)
        if active_only:
            where.append("active = 1")
        if severity is not None:
            where.append("severity = ?")
            params.append(severity)
        return self._select_alerts(" AND ".join(where), params, limit=limit, role="read")

    def _select_alerts(self, where: str, params: list[Any], *, limit: int, role: str) -> list[AlertRecord]:
        found = self._run(role, lambda c: c.execute(
            "SELECT id, kind, severity, version, message, action, first_seen, last_seen, count, active FROM alerts "
            f"WHERE {where} ORDER BY last_seen DESC, id DESC LIMIT ?", (*params, limit)).fetchall())
        return [AlertRecord(id=i, kind=k, severity=s, version=v, message=m, action=a, first_seen=f, last_seen=last,
                            count=n, active=bool(active))
                for i, k, s, v, m, a, f, last, n, active in found]


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000000Z"
