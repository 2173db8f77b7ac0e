"""Give memory back to the system after large calls.

A large message (a drift_report with 100,000 rows a side) becomes millions of small Python objects
and a few large arrays. When the call is over they are freed, but glibc keeps the freed heap pages
(its heap only shrinks from the top, and its mmap threshold grows after the first large free), so
the process stayed gigabytes larger after one call. `release_soon()` asks for a collection and a
`malloc_trim(0)`, which returns every free page of every arena; they run once on a background
thread, a short moment after the last request for it, when the call's objects are gone.

On systems without glibc (musl, macOS) the trim is skipped and only the collection runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from collections.abc import Callable
from typing import Any

from model_mcp.logs import get_logger

log = get_logger(__name__)

# Messages at least this large ask for a release once their call is answered.
RELEASE_ABOVE_BYTES = 4 * 1024 * 1024
# Wait this long after the last request before releasing: the answer is written just before the
# request's objects are dropped, and calls in a burst need one release, not one each.
QUIET_S = 0.3


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _rss_bytes() -> int | None:
    """Resident set size from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / (1024 * 1024), 1)


class MemoryReleaser:
    """Runs gc + malloc_trim on one daemon thread, debounced by `quiet_s`."""

    def __init__(self, quiet_s: float = QUIET_S) -> None:
        self._quiet_s = quiet_s
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._trim = _load_malloc_trim()
        self.releases = 0  # how many releases ran (for logs and tests)

    def release_soon(self) -> None:
        with self._lock:
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="memory-release", daemon=True)
                self._thread.start()

    def release_now(self) -> None:
        before = _rss_bytes()
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        self.releases += 1
        after = _rss_bytes()
        log.info("memory_released", rss_before_mb=_mb(before), rss_after_mb=_mb(after),
                 malloc_trim=self._trim is not None)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            # Debounce: wait until no new request came for quiet_s.
            while True:
                self._wanted.clear()
                if not self._wanted.wait(self._quiet_s):
                    break
            try:
                self.release_now()
            except Exception:  # never let a failed trim take the thread down
                log.exception("memory_release_failed")


_releaser = MemoryReleaser()


def release_soon() -> None:
    """Ask for gc + malloc_trim a moment from now (cheap to call; calls in a burst run it once)."""
    _releaser.release_soon()


class OneShot:
    """`fn(**kwargs)` as a callable that lets go of its arguments when it runs.

    anyio's worker threads keep the last job (function and arguments) in their locals until the
    next job arrives; a job holding a request's rows kept them, ~100 MB after a large drift_report,
    until some later call happened to use the same thread. This one keeps only itself.
    """

    __slots__ = ("_fn", "_kwargs")

    def __init__(self, fn: Callable[..., Any], /, **kwargs: Any) -> None:
        self._fn = fn
        self._kwargs: dict[str, Any] | None = kwargs

    def __call__(self) -> Any:
        fn, kwargs = self._fn, self._kwargs
        self._kwargs = None
        if kwargs is None:
            raise RuntimeError("a OneShot job runs once")
        return fn(**kwargs)
