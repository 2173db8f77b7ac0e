"""The training service use case: scan its folder and transfer packages through the import path."""

from __future__ import annotations

import time

from model_mcp.core.errors import (
    InvalidInputError,
    InvalidStateError,
    ModelMcpError,
    ReadOnlyError,
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
from model_mcp.core.usecases.base import Progress, UseCaseBase


class TrainingCases(UseCaseBase):
    """scan_training_service."""

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
        packages = scan_training_dir(root, max_zip_bytes=self.limits.max_upload_bytes,
                                     max_members=self.limits.max_members)
        snapshot, _ = self.read_registry_for_reading()

        def already(pkg: TrainingPackage) -> bool:
            entry = snapshot.get(pkg.version) if pkg.version else None
            if entry is None:
                return False
            if pkg.fingerprint is not None:
                return self._entry_fingerprint(entry) == pkg.fingerprint
            return True

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
        )

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
