"""The PostgreSQL backend of the monitoring store: the same records and semantics as sqlite.py, in
one database that every replica writes to (`monitoring_*` tables, migrations/0001).

One connection (the manager's `Links.monitoring`, core/pg/__init__.py) for the recorder's writes
and the use cases' reads, behind its lock, so a report never keeps the registry's reads waiting. A
connection that fails is dropped and the next call opens a new one, so the store recovers by itself
when the server returns. Every psycopg error becomes `StoreUnavailable` (the recorder then keeps
figures in memory); there is no damaged file to set aside, so `StoreDamaged` never comes from here.

Where SQLite serialises writers with its file lock, this store takes row locks and, for alerts and
feedback, a transaction-scoped advisory lock, so replicas evaluating at once keep one open episode
per alert and one bounded feedback set per deployment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

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
    StoreUnavailable,
    Which,
)
from model_mcp.core.pg import ALERTS_LOCK, Links, safe_url
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    import psycopg

log = get_logger(__name__)
T = TypeVar("T")

_KIND = {"recent": 0, "baseline": 1}


def _int8(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype=np.int8).tobytes()


class PostgresMonitoringStore(MonitoringStore):
    """The monitoring store in the database at `url`, connected (and migrated) at first use."""

    def __init__(self, url: str, *, links: Links | None = None) -> None:
        self.url = url
        self.link = (links or Links(url)).monitoring

    def __repr__(self) -> str:
        return f"PostgresMonitoringStore({safe_url(self.url)!r})"

    # --- connections -------------------------------------------------------------------------------
    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        return self.link.run(fn, lambda exc: StoreUnavailable(
            f"the monitoring database is unavailable: {str(exc).strip()[:300]}"))

    def close(self) -> None:
        self.link.close()

    # --- writing -------------------------------------------------------------------------------------
    def register_process(self, *, pid: int, host: str, started_at: str) -> int:
        return self._run(lambda c: int(c.execute(
            "INSERT INTO monitoring_processes (pid, host, started_at, last_seen) VALUES (%s, %s, %s, %s) "
            "RETURNING id", (pid, host, started_at, started_at)).fetchone()[0]))

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

        def write(connection: psycopg.Connection[Any]) -> None:
            with connection.cursor() as cursor:
                for b in batch.buckets:
                    self._add_bucket(cursor, b, process)
                if rows:
                    cursor.executemany(
                        "INSERT INTO monitoring_window_rows (version, deployment, kind, at, x, score, label) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
                if requests:
                    cursor.executemany(
                        "INSERT INTO monitoring_requests (request_id, version, deployment, at, n_rows, labels) "
                        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (request_id) DO UPDATE SET "
                        "version = excluded.version, deployment = excluded.deployment, at = excluded.at, "
                        "n_rows = excluded.n_rows, labels = excluded.labels", requests)
                cursor.execute("UPDATE monitoring_processes SET last_seen = %s WHERE id = %s", (now, process))

        self._run(write)

    @staticmethod
    def _add_bucket(cursor: psycopg.Cursor[Any], b: BucketRow, process: int) -> None:
        """Add a bucket's increments to what the process already wrote there (the histogram merged)."""
        key = (b.version, b.grain, b.start, b.deployment, process)
        old = cursor.execute(
            "SELECT latency FROM monitoring_buckets WHERE version = %s AND grain = %s AND start = %s "
            "AND deployment = %s AND process = %s FOR UPDATE", key).fetchone()
        counts = histogram.empty()
        if old is not None and old[0] is not None:
            histogram.add_encoded(counts, bytes(old[0]))
        if b.latency.size:
            counts += b.latency
        cursor.execute(
            "INSERT INTO monitoring_buckets AS b (version, grain, start, deployment, process, requests, rows, errors, "
            "flagged_rows, anomalies, busy_s, cpu_s, rss_bytes, latency) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (version, grain, start, deployment, process) DO UPDATE SET "
            "requests = b.requests + excluded.requests, rows = b.rows + excluded.rows, "
            "errors = b.errors + excluded.errors, flagged_rows = b.flagged_rows + excluded.flagged_rows, "
            "anomalies = b.anomalies + excluded.anomalies, busy_s = b.busy_s + excluded.busy_s, "
            "cpu_s = b.cpu_s + excluded.cpu_s, rss_bytes = GREATEST(b.rss_bytes, excluded.rss_bytes), "
            "latency = excluded.latency",
            (*key, b.requests, b.rows, b.errors, b.flagged_rows, b.anomalies, b.busy_s, b.cpu_s, b.rss_bytes,
             histogram.encode(counts)))

    def prune(self, retention: Retention, *, now: float) -> dict[str, int]:
        cutoff = now - retention.days * 86400

        def prune(connection: psycopg.Connection[Any]) -> dict[str, int]:
            removed: dict[str, int] = {}
            with connection.cursor() as c:
                removed["buckets"] = c.execute(
                    "DELETE FROM monitoring_buckets WHERE start < %s", (int(cutoff),)).rowcount
                windows = c.execute(
                    "SELECT version, deployment, MAX(at) FROM monitoring_window_rows WHERE kind = 0 "
                    "GROUP BY version, deployment").fetchall()
                removed["window_rows"] = 0
                for version, deployment, newest in windows:
                    if newest < cutoff:  # a deployment no one served for the whole retention period
                        removed["window_rows"] += c.execute(
                            "DELETE FROM monitoring_window_rows WHERE version = %s AND deployment = %s",
                            (version, deployment)).rowcount
                        continue
                    removed["window_rows"] += c.execute(
                        "DELETE FROM monitoring_window_rows WHERE version = %s AND deployment = %s AND kind = 0 "
                        "AND id <= (SELECT id FROM monitoring_window_rows WHERE version = %s AND deployment = %s "
                        "AND kind = 0 ORDER BY id DESC LIMIT 1 OFFSET %s)",
                        (version, deployment, version, deployment, retention.window_rows)).rowcount
                removed["requests"] = c.execute(
                    "DELETE FROM monitoring_requests WHERE at < %s", (cutoff,)).rowcount
                for (version,) in c.execute("SELECT DISTINCT version FROM monitoring_requests").fetchall():
                    removed["requests"] += c.execute(
                        "DELETE FROM monitoring_requests WHERE version = %s AND at < (SELECT at FROM "
                        "monitoring_requests WHERE version = %s ORDER BY at DESC LIMIT 1 OFFSET %s)",
                        (version, version, retention.requests - 1)).rowcount
                removed["feedback"] = c.execute(
                    "DELETE FROM monitoring_feedback WHERE at < %s", (cutoff,)).rowcount
                removed["drift_reports"] = c.execute(
                    "DELETE FROM monitoring_drift_reports WHERE at < %s OR id IN (SELECT id FROM (SELECT id, "
                    "ROW_NUMBER() OVER (PARTITION BY version ORDER BY id DESC) AS n FROM monitoring_drift_reports) "
                    "AS ranked WHERE n > %s)", (_iso(cutoff), retention.drift_reports)).rowcount
                removed["alerts"] = c.execute(
                    "DELETE FROM monitoring_alerts WHERE NOT active AND last_seen < %s", (_iso(cutoff),)).rowcount
                removed["processes"] = c.execute(
                    "DELETE FROM monitoring_processes p WHERE last_seen < %s AND NOT EXISTS "
                    "(SELECT 1 FROM monitoring_buckets b WHERE b.process = p.id)", (_iso(cutoff),)).rowcount
            return removed

        return self._run(prune)

    def window_count(self, version: str, deployment: str, which: Which) -> int:
        return self._run(lambda c: int(c.execute(
            "SELECT COUNT(*) FROM monitoring_window_rows WHERE version = %s AND deployment = %s AND kind = %s",
            (version, deployment, _KIND[which])).fetchone()[0]))

    # --- reading ---------------------------------------------------------------------------------------
    def bucket_columns(self, version: str, *, grain: int, since: int, until: int,
                       deployment: str | None = None) -> BucketColumns:
        query = ("SELECT start, process, requests, rows, errors, flagged_rows, anomalies, busy_s, cpu_s, rss_bytes, "
                 "latency FROM monitoring_buckets WHERE version = %s AND grain = %s AND start >= %s AND start < %s")
        params: list[Any] = [version, grain, since, until]
        if deployment is not None:
            query += " AND deployment = %s"
            params.append(deployment)
        found = self._run(lambda c: c.execute(query, params).fetchall())
        n = len(found)
        latency = np.zeros((n, histogram.N_BINS), dtype=np.int64)
        for i, row in enumerate(found):
            blob = row[10]
            if blob:
                blob = bytes(blob)
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
        found = self._run(lambda c: c.execute(
            "SELECT pid, host, started_at, last_seen FROM monitoring_processes WHERE id = ANY(%s) "
            "ORDER BY started_at", ([int(i) for i in ids],)).fetchall())
        return [ProcessInfo(pid=p, host=h, started_at=s, last_seen=last) for p, h, s, last in found]

    def window(self, version: str, deployment: str, which: Which,
               limit: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        order = "DESC" if which == "recent" else "ASC"
        found = self._run(lambda c: c.execute(
            f"SELECT x, score, label FROM monitoring_window_rows WHERE version = %s AND deployment = %s "
            f"AND kind = %s ORDER BY id {order} LIMIT %s", (version, deployment, _KIND[which], limit)).fetchall())
        if which == "recent":
            found.reverse()
        if not found:
            return np.empty((0, 0)), None, None
        X = np.frombuffer(b"".join(bytes(r[0]) for r in found), dtype=np.float64).reshape(len(found), -1).copy()
        scores_list = [r[1] for r in found]
        labels_list = [r[2] for r in found]
        scores = None if any(s is None for s in scores_list) else np.asarray(scores_list, dtype=np.float64)
        labels = None if any(v is None for v in labels_list) else np.asarray(labels_list, dtype=np.int64)
        return X, scores, labels

    def request(self, request_id: str) -> RequestRow | None:
        found = self._run(lambda c: c.execute(
            "SELECT version, deployment, at, n_rows, labels FROM monitoring_requests WHERE request_id = %s",
            (request_id,)).fetchone())
        if found is None:
            return None
        version, deployment, at, n_rows, labels = found
        return RequestRow(request_id=request_id, version=version, deployment=deployment, at=at, n_rows=n_rows,
                          labels=None if labels is None
                          else np.frombuffer(bytes(labels), dtype=np.int8).astype(np.int64))

    # --- feedback, drift reports, alerts ------------------------------------------------------------------
    def record_feedback(self, request: RequestRow, truth: np.ndarray, *, now: float, max_rows: int) -> int:
        predicted = request.labels if request.labels is not None else np.zeros(0)

        def record(connection: psycopg.Connection[Any]) -> int:
            key = (request.version, request.deployment)
            # Replicas recording feedback for one deployment take turns: the bound below stays exact.
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", key)
            connection.execute(
                "INSERT INTO monitoring_feedback (request_id, version, deployment, at, n_rows, truth, predicted) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (request_id) DO UPDATE SET "
                "version = excluded.version, deployment = excluded.deployment, at = excluded.at, "
                "n_rows = excluded.n_rows, truth = excluded.truth, predicted = excluded.predicted",
                (request.request_id, *key, now, int(truth.size), _int8(truth), _int8(predicted)))
            # Oldest requests go first once the deployment holds more than max_rows labelled rows.
            connection.execute(
                "DELETE FROM monitoring_feedback WHERE request_id IN (SELECT request_id FROM (SELECT request_id, "
                "SUM(n_rows) OVER (ORDER BY at DESC, request_id ROWS UNBOUNDED PRECEDING) AS held "
                "FROM monitoring_feedback WHERE version = %s AND deployment = %s) AS running "
                "WHERE held > %s AND request_id != %s)",
                (*key, max_rows, request.request_id))
            return int(connection.execute(
                "SELECT COALESCE(SUM(n_rows), 0) FROM monitoring_feedback WHERE version = %s AND deployment = %s",
                key).fetchone()[0])

        return self._run(record)

    def labelled(self, version: str, deployment: str) -> tuple[np.ndarray, np.ndarray] | None:
        found = self._run(lambda c: c.execute(
            "SELECT truth, predicted FROM monitoring_feedback WHERE version = %s AND deployment = %s ORDER BY at",
            (version, deployment)).fetchall())
        if not found:
            return None
        truth = np.frombuffer(b"".join(bytes(t) for t, _ in found), dtype=np.int8).astype(np.int64)
        predicted = np.frombuffer(b"".join(bytes(p) for _, p in found), dtype=np.int8).astype(np.int64)
        return truth, predicted

    def save_drift_summary(self, version: str, deployment: str, *, at: str, summary: dict[str, Any]) -> None:
        text = json.dumps(summary, default=str)
        self._run(lambda c: c.execute(
            "INSERT INTO monitoring_drift_reports (version, deployment, at, summary) VALUES (%s, %s, %s, %s)",
            (version, deployment, at, text)))

    def drift_summaries(self, version: str, limit: int) -> list[dict[str, Any]]:
        # ::text, so the summary comes back as written (keys in their order), parsed here.
        found = self._run(lambda c: c.execute(
            "SELECT summary::text FROM monitoring_drift_reports WHERE version = %s ORDER BY id DESC LIMIT %s",
            (version, limit)).fetchall())
        return [json.loads(text) for (text,) in found]

    def put_state(self, key: str, value: dict[str, Any], *, now: str) -> None:
        text = json.dumps(value, default=str)
        self._run(lambda c: c.execute(
            "INSERT INTO monitoring_states (key, value, updated_at) VALUES (%s, %s, %s) ON CONFLICT (key) "
            "DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at", (key, text, now)))

    def states(self, prefix: str) -> dict[str, dict[str, Any]]:
        found = self._run(lambda c: c.execute(
            "SELECT key, value FROM monitoring_states WHERE left(key, %s) = %s", (len(prefix), prefix)).fetchall())
        return {key: json.loads(text) for key, text in found}

    def raise_alerts(self, alerts: list[Alert], *, version: str | None, kinds: tuple[str, ...],
                     now: str) -> list[AlertRecord]:
        def raise_(connection: psycopg.Connection[Any]) -> list[int]:
            changed: list[int] = []
            raised: list[str] = []
            # One evaluation at a time across replicas: two must not both open the same episode.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (ALERTS_LOCK,))
            for alert in alerts:
                key = f"{alert.version or ''}|{alert.kind}"
                raised.append(key)
                # One line per episode: an alert that ended and comes back is a new line.
                old = connection.execute("SELECT id, severity FROM monitoring_alerts WHERE key = %s AND active",
                                         (key,)).fetchone()
                if old is None:
                    new_id = connection.execute(
                        "INSERT INTO monitoring_alerts (key, kind, severity, version, message, action, first_seen, "
                        "last_seen, count, active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, true) RETURNING id",
                        (key, alert.kind, alert.severity, alert.version, alert.message, alert.action, now,
                         now)).fetchone()[0]
                    changed.append(int(new_id))
                    continue
                alert_id, severity = old
                connection.execute(
                    "UPDATE monitoring_alerts SET severity = %s, message = %s, action = %s, last_seen = %s, "
                    "count = count + 1 WHERE id = %s", (alert.severity, alert.message, alert.action, now, alert_id))
                if severity != alert.severity:
                    changed.append(int(alert_id))
            ended = connection.execute(
                "SELECT id FROM monitoring_alerts WHERE version IS NOT DISTINCT FROM %s AND active "
                "AND kind = ANY(%s) AND NOT (key = ANY(%s))", (version, list(kinds), raised)).fetchall()
            for (alert_id,) in ended:
                connection.execute("UPDATE monitoring_alerts SET active = false WHERE id = %s", (alert_id,))
                changed.append(int(alert_id))
            return changed

        ids = self._run(raise_)
        if not ids:
            return []
        return self._select_alerts("id = ANY(%s)", [ids], limit=len(ids))

    def alerts(self, *, version: str | None = None, active_only: bool = False, severity: str | None = None,
               limit: int = 100) -> list[AlertRecord]:
        where, params = ["true"], []
        if version is not None:
            where.append("version = %s")
            params.append(version)
        if active_only:
            where.append("active")
        if severity is not None:
            where.append("severity = %s")
            params.append(severity)
        return self._select_alerts(" AND ".join(where), params, limit=limit)

    def _select_alerts(self, where: str, params: list[Any], *, limit: int) -> list[AlertRecord]:
        found = self._run(lambda c: c.execute(
            "SELECT id, kind, severity, version, message, action, first_seen, last_seen, count, active "
            f"FROM monitoring_alerts WHERE {where} ORDER BY last_seen DESC, id DESC LIMIT %s",
            (*params, limit)).fetchall())
        return [AlertRecord(id=i, kind=k, severity=s, version=v, message=m, action=a, first_seen=f, last_seen=last,
                            count=n, active=bool(active))
                for i, k, s, v, m, a, f, last, n, active in found]


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000000Z"
