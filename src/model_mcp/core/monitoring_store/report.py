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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from model_mcp.core.errors import InvalidInputError
from model_mcp.core.monitoring_store import histogram
from model_mcp.core.monitoring_store.base import HOUR, MINUTE, BucketColumns, MonitoringStore

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
class SpanFigures:
    since: float
    until: float
    bucket_s: int
    totals: dict[str, Any]
    series: list[dict[str, Any]]
    process_ids: list[int]


def span_columns(store: MonitoringStore, version: str, *, since: float, until: float, bucket_s: int,
                 deployment: str | None) -> BucketColumns:
    """The bucket rows covering [since, until): hour rows for whole hours when the buckets are hours."""
    lo = int(since) // MINUTE * MINUTE
    hi = int(math.ceil(until))
    first_hour = -(-lo // HOUR) * HOUR
    last_hour = hi // HOUR * HOUR
    if bucket_s % HOUR or last_hour <= first_hour:
        return store.bucket_columns(version, grain=MINUTE, since=lo, until=hi, deployment=deployment)
    return BucketColumns.concat([
        store.bucket_columns(version, grain=MINUTE, since=lo, until=first_hour, deployment=deployment),
        store.bucket_columns(version, grain=HOUR, since=first_hour, until=last_hour, deployment=deployment),
        store.bucket_columns(version, grain=MINUTE, since=last_hour, until=hi, deployment=deployment),
    ])


def span_figures(store: MonitoringStore, version: str, *, since: float, until: float, bucket_s: int,
                 deployment: str | None = None) -> SpanFigures:
    """Totals and series over a span, vectorized: grouping by bucket and percentiles in numpy."""
    c = span_columns(store, version, since=since, until=until, bucket_s=bucket_s, deployment=deployment)
    keys = c.start // bucket_s * bucket_s
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if keys.size else np.zeros(0, dtype=np.int64)
    starts = keys[first]
    k = starts.shape[0]

    def per_bucket(values: np.ndarray, op: Any = np.add) -> np.ndarray:
        return op.reduceat(values[order], first) if k else np.zeros((0,) + values.shape[1:], dtype=values.dtype)

    sums = {name: per_bucket(getattr(c, name).astype(np.float64))
            for name in ("requests", "rows", "errors", "flagged_rows", "anomalies", "busy_s", "cpu_s")}
    rss = per_bucket(c.rss_bytes.astype(np.float64), np.maximum)
    latency = per_bucket(c.latency)
    p50, p95 = histogram.percentiles_of_rows(latency, (50, 95)).T if k else (np.zeros(0), np.zeros(0))
    labels = np.datetime_as_string(starts.astype("datetime64[s]"), unit="s").tolist() if k else []
    flagged = sums["flagged_rows"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(flagged > 0, sums["anomalies"] / np.maximum(flagged, 1), np.nan)
    columns = zip(labels, sums["requests"].astype(np.int64).tolist(), sums["rows"].astype(np.int64).tolist(),
                  sums["errors"].astype(np.int64).tolist(), _floats(p50), _floats(p95), _floats(rate),
                  np.round(sums["cpu_s"], 6).tolist(), _floats(np.where(rss > 0, np.round(rss / 2**20, 3), np.nan)),
                  strict=True)
    series = [
        {"start": f"{label}Z", "requests": requests, "rows": rows, "errors": errors, "latency_p50_ms": q50,
         "latency_p95_ms": q95, "anomaly_rate": anomaly_rate, "cpu_s": cpu, "rss_mb": rss_mb}
        for label, requests, rows, errors, q50, q95, anomaly_rate, cpu, rss_mb in columns
        if requests or errors
    ]
    totals = _totals({name: float(v.sum()) for name, v in sums.items()}, latency.sum(axis=0), until - since)
    return SpanFigures(since=since, until=until, bucket_s=bucket_s, totals=totals, series=series,
                       process_ids=sorted({int(p) for p in np.unique(c.process)}))


def _floats(values: np.ndarray) -> list[float | None]:
    """A float column as a list, NaN as None."""
    return [None if v != v else v for v in values.tolist()]


def _totals(s: dict[str, float], latency: np.ndarray, span_s: float) -> dict[str, Any]:
    p50, p95, p99 = histogram.percentiles(latency)
    requests, rows, errors = int(s["requests"]), int(s["rows"]), int(s["errors"])
    flagged, anomalies = int(s["flagged_rows"]), int(s["anomalies"])
    attempts = requests + errors
    return {
        "n_requests": requests, "n_rows": rows, "n_errors": errors,
        "error_rate": errors / attempts if attempts else 0.0,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        "throughput_rows_per_s": rows / s["busy_s"] if s["busy_s"] > 0 else 0.0,
        "rows_per_wall_s": rows / span_s if span_s > 0 else 0.0,
        "busy_s": s["busy_s"],
        "cpu_s": s["cpu_s"],
        "n_anomalies": anomalies if flagged else None,
        "anomaly_rate": anomalies / flagged if flagged else None,
    }
