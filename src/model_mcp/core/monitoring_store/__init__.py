"""The monitoring store: what the server observed, kept in the home across restarts and processes.

`base.py` is the interface (and the records it speaks in), `sqlite.py` the backend for one machine
(`monitoring.db` in the home), `recorder.py` the queue and writer thread between predict and the
store, `report.py` the figures over a span, `histogram.py` the mergeable latency histogram.
A second backend (PostgreSQL) is a new module implementing `MonitoringStore`, chosen in `open_store`.
"""

from __future__ import annotations

from pathlib import Path

from model_mcp.core.monitoring_store.base import MonitoringStore, Retention, StoreError

__all__ = ["MonitoringStore", "Retention", "StoreError", "open_store"]


def open_store(home: Path) -> MonitoringStore:
    """The store for a home. Opening is lazy: the file is created and migrated at first use."""
    from model_mcp.core.monitoring_store.sqlite import SQLiteMonitoringStore

    return SQLiteMonitoringStore(home)
