"""The training service use case: scan its folder and transfer packages through the import path."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from model_mcp.core.errors import (
    InvalidInputError,
    InvalidStateError,
    ModelMcpError,
    ReadOnlyError,
    TrainingServiceUnavailableError,
)
from model_mcp.core.schemas import (
    ImportResult,
    ScanError,
    ScanResult,
)
from model_mcp.core.training import (
    TrainingPackage,
    latest_complete,
    scan_training_dir,
    stable_copy_check,
)
from model_mcp.core.training_watch import LOCK_NAME, TrainingHealth, TrainingWatch
from model_mcp.core.usecases.base import Progress, UseCaseBase
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    from model_mcp.core.registry import Snapshot

log = get_logger(__name__)
_HEALTH_LOCK = threading.Lock()


class TrainingCases(UseCaseBase):
    """scan_training_service, and the training-folder watch (core/training_watch.py)."""

    # --- the watch and the folder's health -----------------------------------------------------
    def training_health(self) -> TrainingHealth:
        """This process's memory of the training folder's health (made on first use)."""
        health = self.__dict__.get("_training_health")
        if health is None:
            with _HEALTH_LOCK:
                health = self.__dict__.setdefault("_training_health", TrainingHealth())
        return health

    def start_training_watch(self, interval_s: float | None = None) -> TrainingWatch | None:
        """The server's training-folder watch (off in read-only mode, without a training folder, or
        with interval 0). Started here; it imports only while it holds the home's watch lock."""
        interval = self.settings.watch_training_s if interval_s is None else interval_s
        if interval <= 0:
            return None
        if self.settings.read_only:
            log.info("training_watch_off", reason="the server is read-only")
            return None
        if self.settings.training_dir is None:
            log.warning("training_watch_off", reason="no training folder is configured (--training-dir)")
            return None
        watch = TrainingWatch(self, interval_s=interval)  # type: ignore[arg-type]
        watch.start()
        return watch

    def already_imported(self, snapshot: Snapshot, pkg: TrainingPackage) -> bool:
        """The registry holds this package's version (with the same files, when the manifest says them)."""
        entry = snapshot.get(pkg.version) if pkg.version else None
        if entry is None:
            return False
        if pkg.fingerprint is not None:
            return self._entry_fingerprint(entry) == pkg.fingerprint
        return True

    # --- the training service ------------------------------------------------------------------
    def scan_training_service(self, *, import_latest: bool = False, import_versions: list[str] | None = None,
                              progress: Progress | None = None) -> ScanResult:
        """List the training folder's packages; import the newest complete one and/or named versions.

        Every import goes through the same path as import_zip (same checks and errors), one package at
        a time, each recorded as a `transfer` in the audit trail. A package is re-checked right before
        its import (stable_copy_check) and its hashes verified after the copy, so one still being
        written is never imported half-written.
        """
        import_versions = list(import_versions or [])
        if not isinstance(import_latest, bool) or any(not isinstance(v, str) for v in import_versions):
            raise InvalidInputError("`import_latest` is true or false; `import_versions` a list of version strings.")
        if (import_latest or import_versions) and self.settings.read_only:
            raise ReadOnlyError("The server was started read-only; scan_training_service can list but not import.")
        root = self.settings.training_dir
        health = self.training_health()
        try:
            packages = scan_training_dir(root, max_zip_bytes=self.limits.max_upload_bytes,
                                         max_members=self.limits.max_members)
        except TrainingServiceUnavailableError as exc:
            if root is None:
                raise
            health.failed(exc)
            answer = health.answer(self._watch_lock_path())
            known = f" Last successful scan: {answer['last_scan']}." if answer["last_scan"] else ""
            watched = (f" The training-folder watch checks it every {answer['interval_s']:g} s."
                       if answer["watching"] else "")
            raise TrainingServiceUnavailableError(f"{exc}{known}{watched}", data={"health": answer}) from exc
        health.scanned()
        snapshot, _ = self.read_registry_for_reading()

        def already(pkg: TrainingPackage) -> bool:
            return self.already_imported(snapshot, pkg)

        wanted: list[TrainingPackage] = []
        errors: list[ScanError] = []
        if import_latest:
            latest = latest_complete(packages)
            if latest is not None and not already(latest):
                wanted.append(latest)
        for version in import_versions:
            matches = [p for p in packages if p.version == version]
            if not matches:
                errors.append(ScanError(location=None, version=version, code="not_found",
                                        message=f"No package in the training folder gives version {version}."))
                continue
            chosen = next((p for p in matches if p.complete), matches[0])
            if chosen not in wanted:
                wanted.append(chosen)
        imported: list[str] = []
        present: list[str] = []
        for index, pkg in enumerate(wanted):
            if progress:
                progress(index, len(wanted), f"importing {pkg.location}")
            result = self._transfer(pkg, errors)
            if result is not None:
                (present if result.already_present else imported).append(result.version)
        if imported:
            snapshot, _ = self.read_registry_for_reading()
        return ScanResult(
            training_dir=str(root),
            packages=[p.to_dict(already_imported=already(p)) for p in packages],
            imported=imported,
            already_present=present,
            errors=errors,
            health=health.answer(self._watch_lock_path()),
        )

    def _watch_lock_path(self):
        return self.store.coordination_dir / LOCK_NAME

    def _transfer(self, pkg: TrainingPackage, errors: list[ScanError]) -> ImportResult | None:
        started = time.perf_counter()
        try:
            pkg = stable_copy_check(pkg, max_zip_bytes=self.limits.max_upload_bytes,
                                    max_members=self.limits.max_members)
            if not pkg.complete:
                raise InvalidStateError(
                    f"{pkg.location} is not complete ({'; '.join(pkg.problems) or 'changed since the scan'}); "
                    "it was not imported. Scan again once the training service has finished writing it."
                )
            if pkg.kind == "zip":
                result = self.import_zip(path=str(pkg.path), source="training_service", origin=pkg.location)
            else:
                result = self.import_folder(pkg.path, source="training_service", origin=pkg.location)
        except ModelMcpError as exc:
            errors.append(ScanError(location=pkg.location, version=pkg.version, code=exc.code, message=str(exc)))
            self.history.record("transfer", version=pkg.version, outcome="failed", source=pkg.location,
                                detail=f"[{exc.code}] {exc}")
            return None
        elapsed = (time.perf_counter() - started) * 1000
        outcome = "already_present" if result.already_present else "ok"
        self.history.record("transfer", version=result.version, outcome=outcome, source=pkg.location,
                            detail=f"Transferred {pkg.location} ({pkg.kind}) as {result.status} in {elapsed:.0f} ms.")
        return result
