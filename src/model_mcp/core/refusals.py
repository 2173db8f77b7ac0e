"""Failed calls by error code and interface, counted where the edges map errors (for /metrics).

Process-wide, like the Prometheus registry that reads it: one server process, one set of counts.
Counting is one dict increment under a lock, on the error path only.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_counts: dict[tuple[str, str], int] = {}


def count_refusal(interface: str, code: str) -> None:
    """One failed call on `interface` ("mcp", "rest") answered with the contract's `code`."""
    with _lock:
        key = (interface, code)
        _counts[key] = _counts.get(key, 0) + 1


def refusal_counts() -> dict[tuple[str, str], int]:
    """(interface, code) -> failed calls since the process started."""
    with _lock:
        return dict(_counts)
