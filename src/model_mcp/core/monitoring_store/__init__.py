"""The monitoring store: what the server observed, kept in the home across restarts and processes.

`base.py` is the interface (and the records it speaks in), `sqlite.py` the backend for one machine
(`monitoring.db` in the home), `recorder.py` the queue and writer thread between predict and the
store, `report.py` the figures over a span, `histogram.py` the mergeable latency histogram.
The PostgreSQL backend (`core/pg/monitoring.py`) is chosen by `open_store` when a database URL is set.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from model_mcp.core.monitoring_store.base import MonitoringStore, Retention, StoreError

if TYPE_CHECKING:
    from model_mcp.core.pg import Links

__all__ = ["MonitoringStore", "Retention", "StoreError", "open_store"]


def open_store(home: Path, database_url: str | None = None, *, links: Links | None = None) -> MonitoringStore:
    """The store for a home, or for the database at `database_url` when one is given (replicas
    share it; `links`: the connections the manager's other stores use). Opening is lazy: the file
    or the tables are created and migrated at first use."""
    if database_url:
        from model_mcp.core.pg.monitoring import PostgresMonitoringStore

        return PostgresMonitoringStore(database_url, links=links)
    from model_mcp.core.monitoring_store.sqlite import SQLiteMonitoringStore

    return SQLiteMonitoringStore(home)
