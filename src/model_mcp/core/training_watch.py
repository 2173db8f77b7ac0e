"""The training-folder watch: a thread in the server that imports new complete packages as they appear.

`model-mcp serve --watch-training [SECONDS]` (MODEL_MCP_WATCH_TRAINING_S; 0 = off, the default; off
in read-only mode). Every interval it scans the training folder (core/training.py) and imports, oldest
`created_at` first, each package that is

- complete by the scan's rules: never one still being written (a ZIP without its end record yet, a
  folder whose manifest is missing or lists a file not yet at its size);
- not in the registry (same version, and same files when the manifest lists their hashes);
- never transferred before (no `transfer` with outcome ok/already_present for its version in the
  audit trail): a version an operator deleted is not brought back; import it by hand if wanted;
- not a package that already failed in this process, unless its files changed since.

At most `MAX_IMPORTS_PER_TICK` imports per tick (the rest wait for the next one). Each goes through
`TrainingCases._transfer`, the path `scan_training_service` takes: `stable_copy_check` right before,
import_zip's/import_folder's checks, every hash verified after the copy, and a `transfer` line in the
audit trail. After each successful import the manager's `after_watch_import(version)` is called when
it has one (rollouts: it decides from the model's policy whether to start a shadow).

One watcher per home: a watcher imports only while it holds the flock on `training-watch.lock` in the
home; another server on the same home keeps trying at each tick and takes over when the holder ends.

Health (reachable, readable, last successful scan, last error) is kept in this process's memory and
shown by `scan_training_service`. While the folder cannot be scanned the watcher raises a
`training_service` alert (warning, server-level: version null), ended by the first scan that works.
Nothing a tick meets stops the thread: failures are logged and counted.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_mcp.core import lockfile
from model_mcp.core.alerts import training_service_alert
from model_mcp.core.errors import ModelMcpError, TrainingServiceUnavailableError
from model_mcp.core.schemas import ScanError, utc_now
from model_mcp.core.training import TrainingPackage, scan_training_dir, sort_newest_first
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    from model_mcp.core.manager import ModelManager

log = get_logger(__name__)

LOCK_NAME = "training-watch.lock"
MAX_IMPORTS_PER_TICK = 5
ALERT_KINDS = ("training_service",)
DEFAULT_INTERVAL_S = 30.0  # `--watch-training` without a value

_UNREACHABLE = (FileNotFoundError, NotADirectoryError)
_UNREACHABLE_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.ENODEV, errno.EHOSTDOWN,
                       errno.EHOSTUNREACH, errno.ENOTCONN, errno.ETIMEDOUT}


class TrainingHealth:
    """What this process last learned about the training folder (by the watch or an explicit scan)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reachable: bool | None = None  # None: not scanned yet by this process
        self.readable: bool | None = None
        self.last_scan: str | None = None  # the last scan that worked, ISO-8601 UTC
        self.last_error: str | None = None  # the latest scan's error; None when it worked
        self.interval_s = 0.0  # this process's watch interval (0: it runs no watch)
        self.watch_running = False

    def scanned(self) -> None:
        with self._lock:
            self.reachable = self.readable = True
            self.last_scan, self.last_error = utc_now(), None

    def failed(self, exc: TrainingServiceUnavailableError) -> None:
        reachable = not _is_unreachable(exc.__cause__)
        with self._lock:
            self.reachable, self.readable, self.last_error = reachable, False, str(exc)

    def answer(self, lock_path: Path | None) -> dict[str, Any]:
        """The `health` object of scan_training_service. `watching`: a watch holds this home's lock
        (this server's or another's); `interval_s`: the holder's interval (else this server's)."""
        holder = lockfile.holder_note(lock_path) if lock_path is not None else None
        with self._lock:
            interval = self.interval_s
            if holder is not None and isinstance(holder.get("interval_s"), int | float):
                interval = float(holder["interval_s"])
            return {"reachable": self.reachable, "readable": self.readable, "last_scan": self.last_scan,
                    "last_error": self.last_error, "watching": holder is not None, "interval_s": interval}


def _is_unreachable(cause: BaseException | None) -> bool:
    """Missing, not a folder, or a mount gone away: not there. Anything else (permissions): not readable."""
    if cause is None or isinstance(cause, _UNREACHABLE):  # None: no folder configured
        return True
    return isinstance(cause, OSError) and cause.errno in _UNREACHABLE_ERRNOS


class TrainingWatch:
    def __init__(self, manager: ModelManager, *, interval_s: float,
                 max_per_tick: int = MAX_IMPORTS_PER_TICK) -> None:
        self.manager = manager
        self.interval_s = interval_s
        self.max_per_tick = max_per_tick
        self.lock_path = manager.store.coordination_dir / LOCK_NAME
        self.health: TrainingHealth = manager.training_health()
        self.imported = 0  # counts since start (also in each tick's log line)
        self.failed = 0
        self.ticks = 0
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # location -> the files' signature when its import failed: not tried again until they change
        self._failed_at: dict[str, tuple | None] = {}
        # (location, version) the audit trail shows as transferred before: not looked up again
        self._transferred: set[tuple[str, str]] = set()
        self._alert_may_be_active = True  # a watcher before us may have left one: the first good scan ends it

    @property
    def holds_lock(self) -> bool:
        return self._fd is not None

    def start(self) -> threading.Thread:
        with self.health._lock:
            self.health.interval_s, self.health.watch_running = self.interval_s, True
        self._thread = threading.Thread(target=self._run, name="training-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the import in progress (if any); then give the lock up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self.health._lock:
            self.health.interval_s, self.health.watch_running = 0.0, False
        if self._fd is not None:
            lockfile.release(self._fd)
            self._fd = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the watch must keep running whatever one tick met
                self.failed += 1
                log.error("training_watch_failed", exc_info=True)
            if self._stop.wait(self.interval_s):
                return

    # --- one tick --------------------------------------------------------------------------------
    def run_once(self) -> dict[str, Any]:
        """One scan and at most `max_per_tick` imports, now. Answers what it did (also logged when
        something happened)."""
        self.ticks += 1
        if not self._hold_lock():
            return {"standby": True}
        manager = self.manager
        try:
            packages = scan_training_dir(manager.settings.training_dir, max_zip_bytes=manager.limits.max_upload_bytes,
                                         max_members=manager.limits.max_members)
        except TrainingServiceUnavailableError as exc:
            first = self.health.last_error != str(exc)
            self.health.failed(exc)
            if first:
                log.warning("training_watch_unavailable", training_dir=str(manager.settings.training_dir),
                            message=str(exc))
            manager.record_alerts([training_service_alert(str(exc))], version=None, kinds=ALERT_KINDS)
            self._alert_may_be_active = True
            return {"reachable": self.health.reachable, "readable": False, "error": str(exc)}
        was_failing = self.health.last_error is not None
        self.health.scanned()
        if was_failing:
            log.info("training_watch_recovered", training_dir=str(manager.settings.training_dir))
        if self._alert_may_be_active:
            manager.record_alerts([], version=None, kinds=ALERT_KINDS)
            self._alert_may_be_active = False

        done: dict[str, Any] = {"imported": [], "failed": [], "left_for_next_tick": 0}
        candidates = self._candidates(packages)
        for pkg in candidates[: self.max_per_tick]:
            if self._stop.is_set():
                break
            self._import(pkg, done)
        done["left_for_next_tick"] = max(0, len(candidates) - self.max_per_tick)
        if done["imported"] or done["failed"] or done["left_for_next_tick"]:
            log.info("training_watch", **done, imported_total=self.imported, failed_total=self.failed)
        return done

    def _hold_lock(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self._fd = lockfile.try_hold(self.lock_path, {"pid": os.getpid(), "interval_s": self.interval_s,
                                                          "since": utc_now()})
        except OSError as exc:
            log.warning("training_watch_lock_failed", path=str(self.lock_path), reason=str(exc))
            return False
        if self._fd is not None:
            log.info("training_watch_holds_lock", path=str(self.lock_path), interval_s=self.interval_s)
        return self._fd is not None

    def _candidates(self, packages: list[TrainingPackage]) -> list[TrainingPackage]:
        """Complete, new packages, oldest first (so the newest is the last one imported)."""
        snapshot, _ = self.manager.read_registry_for_reading()
        chosen: list[TrainingPackage] = []
        seen_versions: set[str] = set()
        for pkg in reversed(sort_newest_first(packages)):
            if not pkg.complete or pkg.version is None or pkg.version in seen_versions:
                continue
            if pkg.location in self._failed_at:
                if self._failed_at[pkg.location] == pkg.signature:
                    continue
                del self._failed_at[pkg.location]  # it changed: worth another try
            if self.manager.already_imported(snapshot, pkg) or self._transferred_before(pkg):
                continue
            seen_versions.add(pkg.version)
            chosen.append(pkg)
        return chosen

    def _transferred_before(self, pkg: TrainingPackage) -> bool:
        assert pkg.version is not None
        key = (pkg.location, pkg.version)
        if key in self._transferred:
            return True
        earlier = self.manager.history.events(kind="transfers", version=pkg.version, limit=None)
        if any(e.get("outcome") in ("ok", "already_present") for e in earlier):
            self._transferred.add(key)
            return True
        return False

    def _import(self, pkg: TrainingPackage, done: dict[str, Any]) -> None:
        errors: list[ScanError] = []
        started = time.perf_counter()
        try:
            result = self.manager._transfer(pkg, errors)
        except Exception as exc:  # a bug or an OS fault in one import must not end the watch
            log.error("training_watch_import_crashed", location=pkg.location, exc_info=True)
            errors.append(ScanError(location=pkg.location, version=pkg.version, code="internal_error",
                                    message=f"{type(exc).__name__}: {str(exc)[:200]}"))
            self.manager.history.record("transfer", version=pkg.version, outcome="failed", source=pkg.location,
                                        detail=f"[internal_error] the watch's import failed unexpectedly "
                                               f"({type(exc).__name__}); the server log has the details.")
            result = None
        if result is None:
            self.failed += 1
            self._failed_at[pkg.location] = pkg.signature
            error = errors[-1] if errors else None
            done["failed"].append(f"{pkg.location}: [{error.code if error else 'unknown'}]")
            log.warning("training_watch_import_failed", location=pkg.location, version=pkg.version,
                        code=error.code if error else None, message=error.message if error else None)
            return
        self.imported += 1
        done["imported"].append(result.version)
        log.info("training_watch_imported", location=pkg.location, version=result.version,
                 already_present=result.already_present, ms=round((time.perf_counter() - started) * 1000))
        if result.already_present:
            return
        hook = getattr(self.manager, "after_watch_import", None)
        if callable(hook):
            try:
                hook(result.version)
            except ModelMcpError as exc:
                log.warning("after_watch_import_refused", version=result.version, code=exc.code, message=str(exc))
            except Exception:
                log.error("after_watch_import_failed", version=result.version, exc_info=True)
