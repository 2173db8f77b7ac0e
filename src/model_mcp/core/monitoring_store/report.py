"""Serving figures over a span, from a store's bucket rows: totals, the series, the processes.

Pure over the `MonitoringStore` interface, so every backend answers the same way. Minute rows
serve spans and buckets under an hour; where the report's buckets are whole hours, hour rows serve
every whole hour inside the span and minute rows only its ragged edges, so thirty days cost about
720 + 120 rows instead of 43,200.

A series has at most `MAX_POINTS` buckets: a longer span widens `bucket_s` to the next of
`WIDER_BUCKETS` that fits (the answer says which it used). Buckets without traffic are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from model_mcp.core.errors import InvalidInputError
from model_mcp.core.monitoring_store import histogram
from model_mcp.core.monitoring_store.base import HOUR, MINUTE, BucketRow, MonitoringStore

MAX_POINTS = 1440
WIDER_BUCKETS = (300, 900, 3600, 6 * 3600, 86400, 7 * 86400)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_bucket_s(bucket_s: Any) -> int:
    if isinstance(bucket_s, bool) or not isinstance(bucket_s, int) or bucket_s < MINUTE or bucket_s % MINUTE:
        raise InvalidInputError(f"`bucket_s` must be a whole number of minutes in seconds (60, 300, 3600...), "
                                f"not {bucket_s!r}.")
    if bucket_s > HOUR and bucket_s % HOUR:
        raise InvalidInputError(f"`bucket_s` over an hour must be whole hours (7200, 86400...), not {bucket_s}.")
    return bucket_s


def fitting_bucket_s(bucket_s: int, span_s: float) -> int:
    """`bucket_s`, or the next wider one when the span would need more than MAX_POINTS buckets."""
    if span_s / bucket_s <= MAX_POINTS:
        return bucket_s
    for wider in WIDER_BUCKETS:
        if wider > bucket_s and span_s / wider <= MAX_POINTS:
            return wider
    return max(bucket_s, math.ceil(span_s / MAX_POINTS / 86400) * 86400)


@dataclass
class _Sum:
    requests: int = 0
    rows: int = 0
    errors: int = 0
    flagged_rows: int = 0
    anomalies: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    rss_bytes: int = 0
    latency: np.ndarray = field(default_factory=histogram.empty)

    def add(self, row: BucketRow) -> None:
        self.requests += row.requests
        self.rows += row.rows
        self.errors += row.errors
        self.flagged_rows += row.flagged_rows
        self.anomalies += row.anomalies
        self.busy_s += row.busy_s
        self.cpu_s += row.cpu_s
        self.rss_bytes = max(self.rss_bytes, row.rss_bytes)
        self.latency += row.latency


@dataclass
class SpanFigures:
    since: float
    until: float
    bucket_s: int
    totals: dict[str, Any]
    series: list[dict[str, Any]]
    process_ids: list[int]


def span_rows(store: MonitoringStore, version: str, *, since: float, until: float, bucket_s: int,
              deployment: str | None) -> list[BucketRow]:
    """The bucket rows covering [since, until): hour rows for whole hours when the buckets are hours."""
    lo = int(since) // MINUTE * MINUTE
    hi = int(math.ceil(until))
    if bucket_s % HOUR:
        return store.bucket_rows(version, grain=MINUTE, since=lo, until=hi, deployment=deployment)
    first_hour = -(-lo // HOUR) * HOUR
    last_hour = hi // HOUR * HOUR
    if last_hour <= first_hour:
        return store.bucket_rows(version, grain=MINUTE, since=lo, until=hi, deployment=deployment)
    return (store.bucket_rows(version, grain=MINUTE, since=lo, until=first_hour, deployment=deployment)
            + store.bucket_rows(version, grain=HOUR, since=first_hour, until=last_hour, deployment=deployment)
            + store.bucket_rows(version, grain=MINUTE, since=last_hour, until=hi, deployment=deployment))


def span_figures(store: MonitoringStore, version: str, *, since: float, until: float, bucket_s: int,
                 deployment: str | None = None) -> SpanFigures:
    rows = span_rows(store, version, since=since, until=until, bucket_s=bucket_s, deployment=deployment)
    total = _Sum()
    by_start: dict[int, _Sum] = {}
    processes: set[int] = set()
    for row in rows:
        total.add(row)
        start = row.start // bucket_s * bucket_s
        by_start.setdefault(start, _Sum()).add(row)
        processes.add(row.process)
    series = [_point(start, s) for start, s in sorted(by_start.items()) if s.requests or s.errors]
    return SpanFigures(since=since, until=until, bucket_s=bucket_s, totals=_totals(total, until - since),
                       series=series, process_ids=sorted(processes))


def _point(start: int, s: _Sum) -> dict[str, Any]:
    p50, p95 = histogram.percentiles(s.latency, (50, 95))
    return {
        "start": iso(start), "requests": s.requests, "rows": s.rows, "errors": s.errors,
        "latency_p50_ms": p50, "latency_p95_ms": p95,
        "anomaly_rate": s.anomalies / s.flagged_rows if s.flagged_rows else None,
        "cpu_s": round(s.cpu_s, 6), "rss_mb": round(s.rss_bytes / 2**20, 3) if s.rss_bytes else None,
    }


def _totals(s: _Sum, span_s: float) -> dict[str, Any]:
    p50, p95, p99 = histogram.percentiles(s.latency)
    attempts = s.requests + s.errors
    return {
        "n_requests": s.requests, "n_rows": s.rows, "n_errors": s.errors,
        "error_rate": s.errors / attempts if attempts else 0.0,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        "throughput_rows_per_s": s.rows / s.busy_s if s.busy_s > 0 else 0.0,
        "rows_per_wall_s": s.rows / span_s if span_s > 0 else 0.0,
        "busy_s": s.busy_s,
        "cpu_s": s.cpu_s,
        "n_anomalies": s.anomalies if s.flagged_rows else None,
        "anomaly_rate": s.anomalies / s.flagged_rows if s.flagged_rows else None,
    }
