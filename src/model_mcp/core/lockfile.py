""""One process on this home does this": a non-blocking flock on a file in the home, held for as long
as the process does the job, released by the kernel when the process ends (even by SIGKILL).

Used by the training-folder watch (`training-watch.lock`) and the background check
(`monitor-check.lock`, so that two servers on a home do not count each alert twice). The holder writes a
short note into the file (JSON: its pid and what it does) so that others, and an operator with
`cat`, can tell who holds it; the note is information only, the flock is the lock.

`store.py`'s registry lock is a different thing: it blocks until free and is held only around one
change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

_FLAGS = getattr(os, "O_CLOEXEC", 0)


def try_hold(path: Path, note: dict[str, Any] | None = None) -> int | None:
    """Take the lock without waiting: its file descriptor (keep it open to keep holding), or None
    when another holder has it. Raises OSError when the file cannot be created or opened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _FLAGS, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    if note is not None:
        with contextlib.suppress(OSError):  # the note is for people; the flock is what counts
            data = (json.dumps(note, separators=(",", ":")) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
    return fd


def release(fd: int) -> None:
    """Give the lock up (closing the descriptor releases the flock)."""
    with contextlib.suppress(OSError):
        os.close(fd)


def holder_note(path: Path) -> dict[str, Any] | None:
    """The note of whoever holds the lock now (`{}` if it wrote none), or None when nobody holds it.

    Reads only: a missing file means no holder, and nothing is created (a read-only server may ask).
    The probe takes a shared lock for an instant; a holder trying to take it at that instant fails
    and tries again at its next attempt.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _FLAGS)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                note = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except (OSError, ValueError):
                note = {}
            return note if isinstance(note, dict) else {}
        except OSError:
            return None
        return None  # we got it: nobody holds it (closing below releases it)
    finally:
        os.close(fd)
