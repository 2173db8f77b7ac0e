"""Prometheus metrics at /metrics, read from the runtime's own figures at scrape time.

Nothing is added to the predict path for them: the runtime already counts requests, rows, errors,
anomalies and a cumulative latency histogram per deployment (`Runtime.counters()`); this collector
turns those into metric families when Prometheus scrapes. Errors by code come from
`core/refusals.py` (counted where the MCP and REST edges map errors). Lifecycle events (imports,
validations, deploys, rollbacks, deletes, transfers) are counted from the audit trail, reading only
the lines added since the last scrape (also across the trail's rotation into `history-<n>.jsonl`
segments), so they cover every process sharing the home. A restart counts from the current segment.

Families (all prefixed `model_mcp_`):
  predict_latency_seconds{version}            histogram, since that version's install
  predict_requests_total / predict_rows_total / predict_errors_total / predict_anomalies_total{version}
  anomaly_rate{version}                       anomalies / flagged rows since the install
  model_info{version, serving}                1 per retained deployment ("true" for the one serving)
  model_memory_bytes / model_file_bytes / model_load_seconds{version}
  ready{state}                                1 when /readyz would answer 200
  errors_total{interface, code}               failed calls (interface mcp or rest) by error code
  lifecycle_events_total{event, outcome}      from the audit trail
plus the `process_*` figures of prometheus_client's ProcessCollector (RSS, CPU, open files).

A redeploy of the same version starts its counters at zero: Prometheus treats that as a counter
reset, which rate() and increase() handle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from model_mcp.core.history import TallyCursor
from model_mcp.core.manager import ModelManager
from model_mcp.core.refusals import refusal_counts
from model_mcp.core.runtime import LATENCY_BUCKETS_MS


class ModelMcpCollector(Collector):
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self._lock = threading.Lock()
        self._history_position: TallyCursor | int = 0  # History's cursor, or the last id PostgresHistory counted
        self._events: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        yield from self._serving()
        readiness = self.manager.readiness()
        ready = GaugeMetricFamily("model_mcp_ready", "1 when the deployed model serves (or none is deployed).",
                                  labels=["state"])
        ready.add_metric([readiness.state], 1.0 if readiness.ready else 0.0)
        yield ready
        errors = CounterMetricFamily("model_mcp_errors", "Failed calls by interface and error code.",
                                     labels=["interface", "code"])
        for (interface, code), count in sorted(refusal_counts().items()):
            errors.add_metric([interface, code], count)
        yield errors
        events = CounterMetricFamily("model_mcp_lifecycle_events",
                                     "Audit-trail events (import, validate, deploy, rollback, delete, transfer, "
                                     "discover) by outcome.", labels=["event", "outcome"])
        for (event, outcome), count in sorted(self._lifecycle().items()):
            events.add_metric([event, outcome], count)
        yield events

    def _lifecycle(self) -> dict[tuple[str, str], int]:
        with self._lock:  # two scrapes at once must not count the same lines twice
            # Across rotations of the trail: the rest of the rotated segment, then the new one.
            position, counts = self.manager.history.tally_from(self._history_position)
            if _counted_afresh(self._history_position, position):  # the trail was replaced by hand
                self._events = {}
            self._history_position = position
            for key, count in counts.items():
                self._events[key] = self._events.get(key, 0) + count
            return dict(self._events)

    def _serving(self) -> Iterator[Metric]:
        deployments = self.manager.runtime.counters()
        latency = HistogramMetricFamily("model_mcp_predict_latency_seconds",
                                        "Predict latency (parse, inference, answer) since the version's install.",
                                        labels=["version"])
        requests = CounterMetricFamily("model_mcp_predict_requests", "Answered predict calls.", labels=["version"])
        rows = CounterMetricFamily("model_mcp_predict_rows", "Rows scored.", labels=["version"])
        failed = CounterMetricFamily("model_mcp_predict_errors", "Failed predict calls (bad rows included).",
                                     labels=["version"])
        anomalies = CounterMetricFamily("model_mcp_predict_anomalies", "Rows flagged as anomalies.",
                                        labels=["version"])
        rate = GaugeMetricFamily("model_mcp_anomaly_rate", "Anomalies per flagged row since the install.",
                                 labels=["version"])
        info = GaugeMetricFamily("model_mcp_model_info", "Resident deployments (serving=true for the one serving).",
                                 labels=["version", "serving"])
        memory = GaugeMetricFamily("model_mcp_model_memory_bytes", "Estimated memory of the loaded model.",
                                   labels=["version"])
        file_bytes = GaugeMetricFamily("model_mcp_model_file_bytes", "Size of model.joblib.", labels=["version"])
        load = GaugeMetricFamily("model_mcp_model_load_seconds", "Time the model took to load.", labels=["version"])
        for d in deployments:
            version = [d["version"]]
            cumulative, buckets = 0, []
            for bound_ms, count in zip(LATENCY_BUCKETS_MS, d["latency_buckets"], strict=False):
                cumulative += count
                buckets.append((repr(bound_ms / 1000.0), cumulative))
            buckets.append(("+Inf", cumulative + d["latency_buckets"][-1]))
            latency.add_metric(version, buckets, sum_value=d["latency_sum_ms"] / 1000.0)
            requests.add_metric(version, d["n_requests"])
            rows.add_metric(version, d["n_rows"])
            failed.add_metric(version, d["n_errors"])
            anomalies.add_metric(version, d["n_anomalies"])
            if d["n_flagged_rows"]:
                rate.add_metric(version, d["n_anomalies"] / d["n_flagged_rows"])
            info.add_metric([d["version"], "true" if d["serving"] else "false"], 1.0)
            for family, key, scale in ((memory, "memory_bytes", 1.0), (file_bytes, "model_file_bytes", 1.0),
                                       (load, "load_ms", 0.001)):
                if d.get(key) is not None:
                    family.add_metric(version, float(d[key]) * scale)
        yield from (latency, requests, rows, failed, anomalies, rate, info, memory, file_bytes, load)


def _counted_afresh(before: TallyCursor | int, after: TallyCursor | int) -> bool:
    """Whether a tally started the trail again from its beginning: the file trail's cursor says so;
    a table's last id went down."""
    if isinstance(after, TallyCursor):
        return after.afresh
    return isinstance(before, int) and after < before


def build_registry(manager: ModelManager) -> CollectorRegistry:
    """A registry of its own per app (not the process-wide default), so apps in one process don't clash."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ModelMcpCollector(manager))
    ProcessCollector(registry=registry)
    return registry
