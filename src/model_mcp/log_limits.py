"""Rate-limited logs: a record repeated many times a second is written a bounded number of times.

Running out of file descriptors made asyncio's accept loop log the same `accept()` error 471,039
times (247 MB of stderr) in 40 s. `RepeatLimitFilter` lets `burst` records with the same key
through per `window_s`; the rest of that window are counted, not written, and the next record of
that key written carries `repeats_suppressed` (how many were dropped before it).

The key is the logger, the level and the message: for structlog records the `event` name (their
other fields, such as the timestamp or a client's port, differ on every line); for standard
records the message template before its arguments are filled in, cut to 200 characters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

SUPPRESSED_FIELD = "repeats_suppressed"


class RepeatLimitFilter(logging.Filter):
    def __init__(self, burst: int = 10, window_s: float = 1.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self.burst = burst
        self.window_s = window_s
        self.max_keys = max_keys
        self._lock = threading.Lock()
        # key -> [window start, records written in it, records suppressed since the last written]
        self._seen: dict[tuple[Any, ...], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, _message_key(record))
        now = self._clock()
        with self._lock:
            state = self._seen.get(key)
            if state is None:
                if len(self._seen) >= self.max_keys:
                    self._seen.clear()  # bounded memory; at worst a few extra lines
                state = self._seen[key] = [now, 0, 0]
            if now - state[0] >= self.window_s:
                state[0], state[1] = now, 0
            if state[1] >= self.burst:
                state[2] += 1
                return False
            state[1] += 1
            suppressed, state[2] = int(state[2]), 0
        if suppressed:
            _attach(record, suppressed)
        return True


def _message_key(record: logging.LogRecord) -> str:
    msg = record.msg
    if isinstance(msg, dict):  # a structlog event dict
        return str(msg.get("event"))
    return str(msg)[:200]


def _attach(record: logging.LogRecord, suppressed: int) -> None:
    if isinstance(record.msg, dict):
        record.msg = {**record.msg, SUPPRESSED_FIELD: suppressed}
    else:
        setattr(record, SUPPRESSED_FIELD, suppressed)
