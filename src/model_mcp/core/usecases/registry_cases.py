"""Registry use cases: list, get, validate, delete, and the audit trail."""

from __future__ import annotations

import os
import re
from typing import Any

from model_mcp.core.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    StorageError,
)
from model_mcp.core.registry import Snapshot
from model_mcp.core.schemas import (
    AliasResult,
    DeleteResult,
    FileInfo,
    GetModelResult,
    HistoryResult,
    ListModelsResult,
    ModelSummary,
    ValidationReport,
)
from model_mcp.core.store import (
    atomic_write_json,
    owner_tag,
    remove_tree,
    storage_error,
)
from model_mcp.core.training import training_dir_problem
from model_mcp.core.usecases.base import (
    RESERVED_ALIAS,
    Progress,
    UseCaseBase,
    _no_progress,
    resolve_alias,
)
from model_mcp.logs import get_logger

log = get_logger(__name__)

GET_MODEL_RECENT_DEPLOYMENTS = 5  # events get_model shows by default; the resource has them all


class RegistryCases(UseCaseBase):
    """list_models, get_model, validate, delete_model, get_history."""

    # --- reading -------------------------------------------------------------------------------
    def list_models(self, *, status: str | None = None, model_name: str | None = None, limit: int | None = None,
                    offset: int = 0, query: str | None = None, tag: str | None = None,
                    min_quality_score: float | None = None, deployed_only: bool = False,
                    sort: str = "created_at") -> ListModelsResult:
        if limit is not None and limit < 0 or offset < 0:
            raise InvalidInputError("`limit` and `offset` must not be negative.")
        # Hand-placed folders still being validated by the discovery at start, read before the
        # registry: one registered in between is then in the registry read, never in neither.
        pending = {e.version: e for e in self.pending_discovery.values()}
        snapshot, problem = self.read_registry_for_reading(copy=False)
        searched = snapshot
        if any(version not in snapshot.entries for version in pending):
            searched = Snapshot(entries={**pending, **snapshot.entries}, fmt=snapshot.fmt)
        if deployed_only:
            status = "deployed" if status in (None, "deployed") else "-"  # deployed_only and another status: none
        entries = self.catalog.search(searched, status=status, model_name=model_name, query=query, tag=tag,
                                      min_quality_score=min_quality_score, sort=sort)
        total = len(entries)
        page = entries[offset: offset + limit if limit is not None else None]
        deployed = snapshot.deployed_by_model()
        newest = next(iter(reversed(deployed.values())), None)
        return ListModelsResult(
            models=[self._public_entry(e) for e in page],
            deployed_version=newest.version if newest else None,
            deployed_versions={name: e.version for name, e in sorted(deployed.items())},
            model_summaries=self._model_summaries(snapshot),
            total=total,
            deployed_load_error=self.deployed_load_error(),
            registry_problem=problem,
            warnings=self.setup_warnings(),
        )

    def setup_warnings(self) -> list[str]:
        """What an operator must fix that no call would otherwise say: a training folder that cannot
        be scanned, hand-placed folders the last discovery left unregistered (while they are there), a
        home registry.json the database (MODEL_MCP_DATABASE_URL) does not hold."""
        warnings = []
        training = training_dir_problem(self.settings.training_dir)
        if training is not None:
            warnings.append(training_dir_warning(training))
        for found in self.discovery_problems:
            if (self.store.home / found.folder).exists():
                warnings.append(f"{found.folder} is not registered: [{found.code}] {found.message} "
                                "Fix it, then run discover_models.")
        if getattr(self, "home_registry_warning", None):
            warnings.append(self.home_registry_warning)
        return warnings

    def _model_summaries(self, snapshot: Snapshot) -> list[ModelSummary]:
        deployed = snapshot.deployed_by_model()
        residents = self.runtime.residents()
        summaries = []
        for name, (latest, count) in sorted(self.catalog.latest_per_model(snapshot).items()):
            resident = residents.get(name)
            summaries.append(ModelSummary(
                model_name=name, deployed_version=deployed[name].version if name in deployed else None,
                versions=count, latest_version=latest.version,
                memory_bytes=resident.memory_bytes if resident is not None else None,
            ))
        return summaries

    # --- aliases -------------------------------------------------------------------------------
    def set_alias(self, *, model_name: str, alias: str, version: str) -> AliasResult:
        """Point `alias` of `model_name` at `version` (moving it from the version it named before)."""
        self._require_writable("set_alias")
        with self._audit_failure("set_alias", version=version if isinstance(version, str) else None,
                                 model_name=model_name, alias=alias):
            check_alias_name(alias)

            def change(snap: Snapshot) -> str | None:
                entry = self._entry_or_not_found(snap, version)
                if entry.model_name != model_name:
                    raise InvalidInputError(f"Version {entry.version} belongs to model {entry.model_name}, "
                                            f"not {model_name}; an alias names a version of its own model.")
                before = None
                for other in snap.entries.values():
                    if other.model_name == model_name and alias in (other.aliases or []):
                        before = other.version
                        other.aliases = [a for a in other.aliases or [] if a != alias]
                entry.aliases = sorted({*(entry.aliases or []), alias})
                return before

            snapshot = self.read_registry()
            target = self._entry_or_not_found(snapshot, version).version
            previous = self.registry.update(change)
            self.history.record("set_alias", version=target, outcome="ok", model_name=model_name, alias=alias,
                                previous=previous,
                                detail=f"{model_name}@{alias} -> {target}" + (f" (was {previous})" if previous else ""))
            return AliasResult(model_name=model_name, alias=alias, version=target, previous_version=previous)

    def delete_alias(self, *, model_name: str, alias: str) -> AliasResult:
        self._require_writable("delete_alias")
        with self._audit_failure("delete_alias", model_name=model_name, alias=alias):
            check_alias_name(alias)

            def change(snap: Snapshot) -> str:
                for entry in snap.entries.values():
                    if entry.model_name == model_name and alias in (entry.aliases or []):
                        entry.aliases = [a for a in entry.aliases or [] if a != alias]
                        return entry.version
                resolve_alias(snap, f"{model_name}@{alias}")  # raises not_found naming the aliases
                raise NotFoundError(f"Model {model_name} has no alias {alias!r}.")

            version = self.registry.update(change)
            self.history.record("delete_alias", version=version, outcome="ok", model_name=model_name, alias=alias,
                                detail=f"{model_name}@{alias} removed (it named {version})")
            return AliasResult(model_name=model_name, alias=alias, version=None, previous_version=version)

    def deployed_load_error(self) -> str | None:
        error = self.runtime.load_error
        return f"{error['version']}: {error['message']}" if error else None

    def get_model(self, *, version: str | None = None, details: bool = False) -> GetModelResult:
        """One version. By default lean (a few KB whatever the model): metadata without its
        feature_profile and the most recent deployment events; `details=True`, or the resource
        models://{version}, gives everything."""
        snapshot, _problem = self.read_registry_for_reading()
        version = self.resolve_version(version, snapshot)
        entry = self._entry_or_not_found(snapshot, version)
        if entry.files:
            files = dict(entry.files)
        else:
            from model_mcp.core.archive import hash_file
            from model_mcp.core.package import list_package_files

            root = self.store.resolve_entry_path(entry.path)
            files = {}
            for name in list_package_files(root) if root.is_dir() else []:
                digest, size = hash_file(root / name)
                files[name] = FileInfo(sha256=digest, size=size)
        report = self.load_report(version)
        omitted: list[str] = []
        try:
            deployments = self.history.events(kind="deployments", version=version, limit=200)
        except StorageError as exc:
            if not self.settings.database_url:
                raise
            # The database away: answer the entry from the copy this server last read (as list_models
            # does), without the events, saying why, rather than refusing the whole reading call.
            deployments = []
            omitted.append(f"deployment events: {exc}")
        metadata = self._read_metadata(entry)
        if not details:
            if metadata is not None and "feature_profile" in metadata:
                metadata = {k: v for k, v in metadata.items() if k != "feature_profile"}
                omitted.append("metadata.feature_profile")
            if len(deployments) > GET_MODEL_RECENT_DEPLOYMENTS:
                omitted.append(f"{len(deployments) - GET_MODEL_RECENT_DEPLOYMENTS} older deployment events")
                deployments = deployments[:GET_MODEL_RECENT_DEPLOYMENTS]
        return GetModelResult(
            entry=self._public_entry(entry), metadata=metadata, files=files,
            validation=report.summary() if report else None, deployments=deployments,
            omitted=omitted, details_uri=f"models://{version}",
        )

    def entry_with_metadata(self, version: str) -> dict[str, Any]:
        """The resource models://{version}: get_model with every detail."""
        return self.get_model(version=version, details=True).model_dump(mode="json")

    def validation_report(self, version: str) -> ValidationReport:
        snapshot, _ = self.read_registry_for_reading()
        self._entry_or_not_found(snapshot, version)
        report = self.load_report(version)
        if report is None:
            raise NotFoundError(f"Version {version} has no validation report yet; call validate to create one.")
        return report

    # --- validate ------------------------------------------------------------------------------
    def validate(self, *, version: str | None = None, deep: bool = True,
                 progress: Progress | None = None) -> ValidationReport:
        self._require_writable("validate")
        with self._audit_failure("validate", version=version if isinstance(version, str) else None):
            return self._validate(version=version, deep=deep, progress=progress or _no_progress)

    def _validate(self, *, version: str | None, deep: bool, progress: Progress) -> ValidationReport:
        snapshot = self.read_registry()
        version = self.resolve_version(version, snapshot)
        entry = self._entry_or_not_found(snapshot, version)
        progress(0, None, "validating")
        try:
            outcome = self.validate_stored(entry, deep=deep)
        except OSError as exc:  # the folder went away under us (a delete racing this validate)
            with self.store.lock():  # a delete in progress holds it until its entry is gone
                gone = self.read_registry().entries.get(version) is None
            if gone:
                raise NotFoundError(f"Version {version} was deleted while it was being validated; "
                                    "nothing was saved.") from exc
            raise storage_error(exc, f"validating version {version}") from exc
        report = outcome.report

        def record(snap: Snapshot) -> None:
            current = snap.entries.get(version)
            if current is None:
                return  # checked just before, under the same lock
            if current.status != "deployed":
                current.status = "available" if report.passed else "failed"
            current.quality_score = report.quality_score
            current.validated_at = report.generated_at

        # Under the store lock, which delete_model holds while it removes the entry and the report:
        # the version validated must still be the one registered, or nothing is saved.
        with self.store.lock():
            current = self.read_registry().entries.get(version)
            if current is None or current.path != entry.path or current.imported_at != entry.imported_at:
                raise NotFoundError(
                    f"Version {version} was deleted (or replaced) while it was being validated; "
                    "nothing was saved."
                )
            self.save_report(report)
            self.registry.update(record)
        summary = report.summary()
        self.history.record("validate", version=version, outcome="passed" if report.passed else "failed",
                            detail=f"quality {report.quality_score:.0f}; failed: {summary.failed_checks or 'none'}; "
                                   f"warnings: {summary.warning_checks or 'none'}")
        progress(1, 1, "validated")
        return report

    # --- delete --------------------------------------------------------------------------------
    def delete_model(self, *, version: str) -> DeleteResult:
        self._require_writable("delete_model")
        with self._audit_failure("delete", version=version if isinstance(version, str) else None):
            return self._delete(version)

    def _delete(self, version: str) -> DeleteResult:
        """Remove a version that is not deployed: its files, its report and its entry.

        The folder is first moved into staging/ (one rename), then the entry removed, then the
        files deleted. A journal makes a crash in between safe: at start, a trashed folder whose
        entry is still registered is moved back; one whose entry is gone is removed.
        """
        from model_mcp.core.scoring import cache

        with self.store.lock():
            snapshot = self.read_registry()
            entry = self._entry_or_not_found(snapshot, version)
            if entry.status == "deployed":
                raise InvalidStateError(
                    f"Version {version} is deployed; deploy or roll back to another version before deleting it."
                )
            folder = self.store.resolve_entry_path(entry.path)
            inside_models = folder.resolve().parent == self.store.models_dir.resolve()
            trash = self.store.staging_dir / f"trash-{owner_tag()}-{version}"
            journal = self.store.staging_dir / f"delete-{version}.json"
            moved = False
            if inside_models and folder.is_dir():
                atomic_write_json(journal, {"version": version, "folder": entry.path, "trash": trash.name})
                try:
                    os.rename(folder, trash)
                except OSError as exc:
                    journal.unlink(missing_ok=True)
                    raise storage_error(exc, f"removing version {version}") from exc
                moved = True

            def remove(snap: Snapshot) -> None:
                snap.entries.pop(version, None)

            try:
                self.registry.update(remove)
            except BaseException:
                if moved:
                    os.rename(trash, folder)
                    journal.unlink(missing_ok=True)
                raise
            remove_tree(trash)
            self.report_path_for(version).unlink(missing_ok=True)
            cache.remove_scorer(self.store.home / cache.FOLDER, version)
            self.package_cache.remove(version)
            journal.unlink(missing_ok=True)
        detail = f"Deleted {entry.path}." if moved else (
            f"Removed the entry; its folder {entry.path} is outside models/ and was left in place.")
        self.history.record("delete", version=version, outcome="ok", detail=detail)
        return DeleteResult(version=version, deleted=True, files_removed=moved)

    # --- history -------------------------------------------------------------------------------
    def get_history(self, *, kind: str = "all", limit: int = 50) -> HistoryResult:
        if kind not in ("deployments", "transfers", "all"):
            raise InvalidInputError("`kind` must be deployments, transfers or all.")
        if limit < 1 or limit > 10_000:
            raise InvalidInputError("`limit` must be between 1 and 10000.")
        events = self.history.events(kind=kind, limit=limit)  # type: ignore[arg-type]
        return HistoryResult(events=[_public_event(e) for e in events])


def training_dir_warning(problem: str) -> str:
    return f"{problem} scan_training_service answers [training_service_unavailable] until it is fixed."


def _public_event(event: dict[str, Any]) -> dict[str, Any]:
    base = {key: event.get(key) for key in ("at", "event", "version", "outcome", "detail")}
    return {**base, **{k: v for k, v in event.items() if k not in base}}


ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_alias_name(alias: Any) -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidInputError(f"The alias {str(alias)[:80]!r} is not valid: use 1 to 64 ASCII letters, digits, "
                                "'.', '_' or '-', starting with a letter or digit.")
    if alias == RESERVED_ALIAS:
        raise InvalidInputError(f"The alias {RESERVED_ALIAS!r} is reserved: name@{RESERVED_ALIAS} always means the "
                                "model's deployed version.")
    return alias
