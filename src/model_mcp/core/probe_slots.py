"""At most N isolated probe children at once, process-wide.

Each probe child imports scikit-learn and loads a model under its own memory limit (4 GiB by
default): 30 concurrent imports ran 31 children at once (4.5 GB). Probes past the limit wait for
a slot (`probe_waiting` in the log); the wait counts against nothing but the caller's patience,
and the probe's own timeout starts when it runs. `MODEL_MCP_MAX_CONCURRENT_PROBES` (default 2).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from model_mcp.logs import get_logger

log = get_logger(__name__)

_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}
_running = 0
_waiting = 0


def _semaphore(limit: int) -> threading.BoundedSemaphore:
    with _lock:
        semaphore = _slots.get(limit)
        if semaphore is None:
            semaphore = _slots[limit] = threading.BoundedSemaphore(max(1, limit))
        return semaphore


@contextlib.contextmanager
def probe_slot(limit: int) -> Iterator[None]:
    """Hold one of `limit` probe slots for the duration of the block (waits for one if needed)."""
    global _running, _waiting
    semaphore = _semaphore(limit)
    if not semaphore.acquire(blocking=False):
        with _lock:
            _waiting += 1
            waiting = _waiting
        log.info("probe_waiting", limit=limit, waiting=waiting)
        semaphore.acquire()
        with _lock:
            _waiting -= 1
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
        semaphore.release()


def probes_running() -> tuple[int, int]:
    """(running, waiting) probes in this process, for logs and metrics."""
    with _lock:
        return _running, _waiting
