"""ModelManager: the use cases, over the store, registry, validation, runtime and history.

Every public method is keyword-only, blocking (the server calls it from a worker thread) and
either returns an answer model or raises a ModelMcpError. A method that fails changes nothing:
imports stage everything under staging/ and publish with one rename plus one registry write,
under the store's lock, with a journal file that lets the next start undo a publish cut short.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from model_mcp.core.archive import ArchiveLimits, decode_base64_upload, extract_zip, read_upload_path
from model_mcp.core.errors import (
    InsufficientDataError,
    InvalidInputError,
    InvalidStateError,
    ModelLoadFailedError,
    ModelMcpError,
    NoDeployedModelError,
    NoRollbackTargetError,
    NotFoundError,
    ReadOnlyError,
    UntrustedModelError,
    ValidationFailedError,
    VersionConflictError,
)
from model_mcp.core.history import History
from model_mcp.core.package import (
    FileDigest,
    PackageContents,
    copy_package_folder,
    inspect_package,
    package_fingerprint,
)
from model_mcp.core.registry import Registry, Snapshot
from model_mcp.core.runtime import ResidentModel, Runtime, parse_rows
from model_mcp.core.drift import (
    DriftThresholds,
    build_alerts,
    concept_drift,
    dataset_verdict,
    drift_against_profile,
    drift_against_sample,
    performance_drift,
    prediction_drift,
    profile_covers,
)
from model_mcp.core.monitoring import FeedbackStore, operational_alerts
from model_mcp.core.schemas import (
    Alert,
    DeleteResult,
    DeployResult,
    DiscoverResult,
    DiscoveryProblem,
    DriftReport,
    FeedbackResult,
    FileInfo,
    GetModelResult,
    HistoryResult,
    ImportResult,
    ListModelsResult,
    PerformanceReport,
    ScanError,
    ScanResult,
    RegistryEntry,
    Resources,
    ValidationReport,
    ValidationSummary,
    parse_manifest,
    utc_now,
)
from model_mcp.core.training import TrainingPackage, latest_complete, scan_training_dir, stable_copy_check
from model_mcp.core.store import Store, atomic_write_json, check_version_name, remove_tree, storage_error
from model_mcp.core.unpickler import load_trusted
from model_mcp.core.isolated_probe import ProbeResult
from model_mcp.core.validation import ValidationOutcome, isolated_probe, validate_package
from model_mcp.logs import get_logger
from model_mcp.settings import Settings

log = get_logger(__name__)

# progress(done, total, message); total may be None when unknown.
Progress = Callable[[float, float | None, str], None]
DRIFT_MAX_ROWS = 1_000_000  # rows a drift_report may be given per side


def _no_progress(done: float, total: float | None, message: str) -> None:
    return None


class _AlreadyPresent(Exception):
    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.version)
        self.result = result


class ModelManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.home)
        self.registry = Registry(self.store)
        self.history = History(self.store.history_path)
        self.limits = ArchiveLimits.from_settings(settings)
        self.runtime = Runtime(
            max_predict_rows=settings.max_predict_rows,
            window_rows=settings.recent_window_rows,
            baseline_rows=settings.baseline_rows,
            feedback_requests=settings.feedback_max_requests,
        )
        self.feedback = FeedbackStore()
        # One deploy or rollback at a time in this process; the store lock covers other processes.
        self._switch_lock = threading.Lock()
        # Serializes loading a version that another process deployed (see _follow_registry).
        self._follow_lock = threading.Lock()

    # --- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the home, clean what a killed process left, finish or undo interrupted publishes.

        Read-only: nothing at all is written; the home is only read.
        """
        if self.settings.read_only:
            return
        self.store.ensure()
        with self.store.lock():
            try:
                self.registry.read()
            except ModelMcpError as exc:
                # Leave staging as it is too: an interrupted publish or delete is only safe to
                # finish or undo against a registry we can read.
                log.error("registry_damaged", reason=str(exc))
                return
            self._recover_journal()
            removed = self.store.clean_leftovers()
        if removed:
            log.info("cleaned_leftovers", items=removed)

    # --- guards --------------------------------------------------------------------------------
    def _require_writable(self, tool: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(f"The server was started read-only; {tool} would change the store and is refused.")

    def read_registry(self) -> Snapshot:
        """For changing use cases: raises RegistryCorruptError when registry.json does not parse."""
        return self.registry.read()

    def read_registry_for_reading(self) -> tuple[Snapshot, str | None]:
        """For reading use cases: the registry, or the last good copy with the reason it is used."""
        from model_mcp.core.errors import RegistryCorruptError

        try:
            return self.registry.read(), None
        except RegistryCorruptError as exc:
            return self.registry.read_last_good(), str(exc)

    # --- import --------------------------------------------------------------------------------
    def import_zip(
        self,
        *,
        path: str | None = None,
        content_base64: str | None = None,
        filename: str | None = None,
        source: str = "zip",
        origin: str | None = None,
        progress: Progress | None = None,
    ) -> ImportResult:
        self._require_writable("import_zip")
        with self._audit_failure("import", origin=origin or filename or (Path(path).name if path else None),
                                 source=source):
            return self._import_zip(path=path, content_base64=content_base64, filename=filename, source=source,
                                    origin=origin, progress=progress or _no_progress)

    @contextlib.contextmanager
    def _audit_failure(self, event: str, *, version: str | None = None, **extra: Any) -> Iterator[None]:
        """Record a refused change in the audit trail (the one trace a failed call leaves), then re-raise."""
        try:
            yield
        except ModelMcpError as exc:
            if exc.code not in ("read_only",):
                try:
                    self.history.record(event, version=version, outcome="failed",
                                        detail=f"[{exc.code}] {exc}", **{k: v for k, v in extra.items() if v})
                except ModelMcpError:
                    log.warning("audit_not_recorded", audit_event=event, exc_info=True)
            raise

    def _import_zip(self, *, path: str | None, content_base64: str | None, filename: str | None, source: str,
                    origin: str | None, progress: Progress) -> ImportResult:
        if (path is None) == (content_base64 is None):
            raise InvalidInputError("Give exactly one of `path` (a .zip on the server's disk) or `content_base64`.")
        self.read_registry()  # a damaged registry refuses changes before any work
        if path is not None:
            upload: Path | bytes = read_upload_path(path, self.limits)
            origin = origin or Path(path).name
        else:
            assert content_base64 is not None
            upload = decode_base64_upload(content_base64, self.limits)
            origin = origin or (filename or "upload.zip")
        progress(0, None, "checking the archive")
        with self.store.staging() as stage:
            package_dir = stage / "package"
            package_dir.mkdir()

            def on_bytes(done: int, total: int) -> None:
                progress(done, total, "extracting")

            extraction = extract_zip(upload, package_dir, self.limits, on_bytes)
            digests = {name: FileDigest(f.sha256, f.size) for name, f in extraction.files.items()}
            extra_warnings = [f"Skipped {name}: not part of a package." for name in extraction.ignored
                              if not name.endswith("/")]
            return self._import_staged(package_dir, digests, source=source, origin=origin,
                                       progress=progress, extra_warnings=extra_warnings)

    def import_folder(self, folder: Path, *, source: str, origin: str | None = None,
                      progress: Progress | None = None) -> ImportResult:
        """Import a folder package (training service): copied into staging, then the same path."""
        self._require_writable("import")
        with self._audit_failure("import", origin=origin or folder.name, source=source), \
                self.store.staging() as stage:
            self.read_registry()
            package_dir = stage / "package"
            try:
                digests = copy_package_folder(folder, package_dir, max_files=self.limits.max_members,
                                              max_total_bytes=self.limits.max_unpacked_bytes)
            except OSError as exc:
                raise storage_error(exc, "copying the package into staging") from exc
            return self._import_staged(package_dir, digests, source=source, origin=origin or folder.name,
                                       progress=progress or _no_progress, extra_warnings=[])

    def _import_staged(self, package_dir: Path, digests: dict[str, FileDigest] | None, *, source: str,
                       origin: str, progress: Progress, extra_warnings: list[str]) -> ImportResult:
        contents = inspect_package(package_dir, digests)
        version = contents.version
        fingerprint = package_fingerprint(contents.files)
        # Under the lock: another process may be between its rename into models/ and its registry
        # write, and must not look like a folder placed by hand.
        with self.store.lock():
            existing = self._existing_import(version, fingerprint)
        if existing is not None:
            return existing
        progress(0, None, "loading the model")
        estimator, probe = self._first_load(contents)
        progress(0, None, "validating")
        outcome = validate_package(package_dir, version=version, settings=self.settings, contents=contents,
                                   estimator=estimator, digests=contents.files, probe=probe)
        status = "available" if outcome.report.passed else "failed"
        try:
            entry = self._publish(package_dir, contents, outcome, status=status, source=source, origin=origin)
        except _AlreadyPresent as race:
            return race.result
        self.history.record("import", version=version, outcome="ok",
                            detail=f"Imported {origin} from {source} as {status} "
                                   f"(quality {outcome.report.quality_score:.0f}).", source=source)
        progress(1, 1, "imported")
        return ImportResult(
            version=version, model_name=contents.metadata.model_name, status=entry.status,
            already_present=False, warnings=contents.warnings + extra_warnings,
            missing_optional_files=contents.missing_optional, extra_files=contents.extra_files,
            validation=outcome.report.summary(), source=entry.source, path=entry.path,
        )

    def _first_load(self, contents: PackageContents) -> tuple[Any, ProbeResult | None]:
        """Load a new package's model: first in a child process, then here.

        A pickle naming an untrusted global, or one that does not load, fails the import with its
        code (`untrusted_model`, `model_load_failed`); one that crashes or hangs the child while
        loading fails as `model_load_failed` and is never loaded in this process.
        """
        probe = isolated_probe(contents, self.settings)
        if probe is not None and not probe.ok and probe.load_ms is None:
            message = probe.detail.split("] ", 1)[1] if probe.detail.startswith("[") else probe.detail
            raise (UntrustedModelError if probe.code == "untrusted_model" else ModelLoadFailedError)(message)
        estimator = load_trusted(contents.model_path, self.settings.trusted_pairs,
                                 max_bytes=self.settings.max_unpacked_bytes)
        return estimator, probe

    def _existing_import(self, version: str, fingerprint: dict[str, str]) -> ImportResult | None:
        snapshot = self.read_registry()
        entry = snapshot.get(version)
        if entry is None:
            if self.store.version_dir(version).exists():
                raise VersionConflictError(
                    f"A folder models/{version} exists but is not registered; run discover_models to register "
                    "it, or remove it, before importing this version."
                )
            return None
        if self._entry_fingerprint(entry) != fingerprint:
            raise VersionConflictError(
                f"Version {version} is already registered with different content. Give the new package its own "
                "version (metadata.json `version`)."
            )
        report = self.load_report(version)
        metadata = self._read_metadata(entry)
        return ImportResult(
            version=version, model_name=entry.model_name or (metadata or {}).get("model_name", ""),
            status=entry.status, already_present=True,
            warnings=[f"Version {version} was already imported with the same content; nothing changed."],
            missing_optional_files=[], extra_files=[],
            validation=report.summary() if report else None, source=entry.source, path=entry.path,
        )

    def _entry_fingerprint(self, entry: RegistryEntry) -> dict[str, str]:
        files = getattr(entry, "files", None)
        if isinstance(files, dict) and files:
            return {name: info["sha256"] for name, info in sorted(files.items()) if isinstance(info, dict)}
        from model_mcp.core.archive import hash_file
        from model_mcp.core.package import list_package_files

        root = self.store.resolve_entry_path(entry.path)
        return {name: hash_file(root / name)[0] for name in list_package_files(root)}

    def _publish(self, package_dir: Path, contents: PackageContents, outcome: ValidationOutcome, *,
                 status: str, source: str, origin: str) -> RegistryEntry:
        """Move the staged package into models/<version> and register it, as one step.

        A journal file (staging/publish-<version>.json) is written before the rename and removed after
        the registry write: if the process dies in between, the next start finds the journal, sees no
        registry entry, and removes the half-published folder.
        """
        version = contents.version
        target = self.store.version_dir(version)
        journal = self.store.staging_dir / f"publish-{version}.json"
        now = utc_now()
        metadata = contents.metadata
        entry = RegistryEntry(
            version=version, model_name=metadata.model_name, status=status,  # type: ignore[arg-type]
            path=f"models/{version}", created_at=metadata.created_at, imported_at=now,
            source=source, quality_score=outcome.report.quality_score,  # type: ignore[arg-type]
        )
        extra = {
            "model_type": metadata.model_type,
            "origin": origin,
            "files": {n: {"sha256": d.sha256, "size": d.size} for n, d in sorted(contents.files.items())},
            "validated_at": outcome.report.generated_at,
        }
        for key, value in extra.items():
            setattr(entry, key, value)

        with self.store.lock():
            # Checked again under the lock: another request or process may have imported this
            # version while we validated. The same content makes this import a no-op.
            existing = self._existing_import(version, package_fingerprint(contents.files))
            if existing is not None:
                raise _AlreadyPresent(existing)
            atomic_write_json(journal, {"version": version, "target": str(target.relative_to(self.store.home))})
            try:
                self.store.models_dir.mkdir(parents=True, exist_ok=True)
                os.rename(package_dir, target)
            except OSError as exc:
                journal.unlink(missing_ok=True)
                raise storage_error(exc, f"moving version {version} into models/") from exc
            try:
                self.save_report(outcome.report)

                def add(snap: Snapshot) -> None:
                    snap.entries[version] = entry

                self.registry.update(add)
            except BaseException:
                remove_tree(target)
                self.report_path_for(version).unlink(missing_ok=True)
                journal.unlink(missing_ok=True)
                raise
            journal.unlink(missing_ok=True)
        return entry

    def _recover_journal(self) -> None:
        if not self.store.staging_dir.is_dir():
            return
        snapshot = self.registry.read()
        for journal in self.store.staging_dir.glob("delete-*.json"):
            try:
                data = json.loads(journal.read_text())
                version = check_version_name(data["version"])
                folder = self.store.resolve_entry_path(data["folder"])
            except Exception:
                journal.unlink(missing_ok=True)
                continue
            trash = self.store.inside(self.store.staging_dir, str(data.get("trash", f"trash-{version}")))
            if version in snapshot.entries and trash.is_dir() and not folder.exists():
                log.warning("undo_interrupted_delete", version=version)
                os.rename(trash, folder)
            journal.unlink(missing_ok=True)
        for journal in self.store.staging_dir.glob("publish-*.json"):
            try:
                data = json.loads(journal.read_text())
                version = check_version_name(data["version"])
            except Exception:
                journal.unlink(missing_ok=True)
                continue
            if version not in snapshot.entries:
                log.warning("undo_interrupted_publish", version=version)
                remove_tree(self.store.version_dir(version))
                self.report_path_for(version).unlink(missing_ok=True)
            journal.unlink(missing_ok=True)

    # --- reports -------------------------------------------------------------------------------
    def report_path_for(self, version: str) -> Path:
        return self.store.report_path(version)

    def save_report(self, report: ValidationReport) -> None:
        atomic_write_json(self.report_path_for(report.version), report.model_dump(mode="json"))

    def load_report(self, version: str) -> ValidationReport | None:
        try:
            raw = self.report_path_for(version).read_bytes()
            return ValidationReport.model_validate_json(raw)
        except (FileNotFoundError, ValueError):
            return None

    # --- reading -------------------------------------------------------------------------------
    def list_models(self, *, status: str | None = None, model_name: str | None = None, limit: int | None = None,
                    offset: int = 0) -> ListModelsResult:
        if limit is not None and limit < 0 or offset < 0:
            raise InvalidInputError("`limit` and `offset` must not be negative.")
        snapshot, problem = self.read_registry_for_reading()
        entries = list(snapshot.entries.values())
        if status is not None:
            entries = [e for e in entries if e.status == status]
        if model_name is not None:
            entries = [e for e in entries if e.model_name == model_name]
        entries.sort(key=lambda e: (e.created_at or "", e.imported_at or "", e.version), reverse=True)
        total = len(entries)
        page = entries[offset: offset + limit if limit is not None else None]
        deployed = snapshot.deployed
        return ListModelsResult(
            models=[self._public_entry(e) for e in page],
            deployed_version=deployed.version if deployed else None,
            total=total,
            deployed_load_error=self.deployed_load_error(),
            registry_problem=problem,
        )

    def deployed_load_error(self) -> str | None:
        error = self.runtime.load_error
        return f"{error['version']}: {error['message']}" if error else None

    @staticmethod
    def _public_entry(entry: RegistryEntry) -> dict[str, Any]:
        data = entry.model_dump(mode="json")
        data.pop("files", None)  # per-file hashes are get_model's business
        return data

    def _entry_or_not_found(self, snapshot: Snapshot, version: str) -> RegistryEntry:
        check_version_name(version)
        entry = snapshot.get(version)
        if entry is None:
            raise NotFoundError(f"No version {version} is registered; list_models shows the registered versions.")
        return entry

    def _read_metadata(self, entry: RegistryEntry) -> dict[str, Any] | None:
        try:
            raw = (self.store.resolve_entry_path(entry.path) / "metadata.json").read_bytes()
            value = json.loads(raw)
            return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            return None

    def get_model(self, *, version: str | None = None) -> GetModelResult:
        snapshot, _problem = self.read_registry_for_reading()
        version = self._default_version(snapshot, version)
        entry = self._entry_or_not_found(snapshot, version)
        files_raw = getattr(entry, "files", None)
        if isinstance(files_raw, dict) and files_raw:
            files = {n: FileInfo(sha256=i["sha256"], size=i["size"]) for n, i in files_raw.items()}
        else:
            from model_mcp.core.archive import hash_file
            from model_mcp.core.package import list_package_files

            root = self.store.resolve_entry_path(entry.path)
            files = {}
            for name in list_package_files(root) if root.is_dir() else []:
                digest, size = hash_file(root / name)
                files[name] = FileInfo(sha256=digest, size=size)
        report = self.load_report(version)
        deployments = self.history.events(kind="deployments", version=version, limit=200)
        return GetModelResult(
            entry=self._public_entry(entry), metadata=self._read_metadata(entry), files=files,
            validation=report.summary() if report else None, deployments=deployments,
        )

    def entry_with_metadata(self, version: str) -> dict[str, Any]:
        result = self.get_model(version=version)
        return {"entry": result.entry, "metadata": result.metadata, "validation": result.validation and
                result.validation.model_dump(mode="json")}

    def validation_report(self, version: str) -> ValidationReport:
        snapshot, _ = self.read_registry_for_reading()
        self._entry_or_not_found(snapshot, version)
        report = self.load_report(version)
        if report is None:
            raise NotFoundError(f"Version {version} has no validation report yet; call validate to create one.")
        return report

    def _default_version(self, snapshot: Snapshot, version: str | None) -> str:
        if version is not None:
            return version
        deployed = snapshot.deployed
        if deployed is None:
            raise NotFoundError("No version was given and none is deployed; name a version (see list_models).")
        return deployed.version

    # --- validate ------------------------------------------------------------------------------
    def validate(self, *, version: str | None = None, deep: bool = True,
                 progress: Progress | None = None) -> ValidationReport:
        self._require_writable("validate")
        progress = progress or _no_progress
        snapshot = self.read_registry()
        version = self._default_version(snapshot, version)
        entry = self._entry_or_not_found(snapshot, version)
        root = self.store.resolve_entry_path(entry.path)
        progress(0, None, "validating")
        outcome = validate_package(root, version=version, settings=self.settings, deep=deep,
                                   recorded=getattr(entry, "files", None))
        report = outcome.report
        self.save_report(report)

        def record(snap: Snapshot) -> None:
            current = snap.entries.get(version)
            if current is None:
                return  # deleted meanwhile by another process
            if current.status != "deployed":
                current.status = "available" if report.passed else "failed"
            current.quality_score = report.quality_score
            current.validated_at = report.generated_at  # type: ignore[attr-defined]

        self.registry.update(record)
        summary = report.summary()
        self.history.record("validate", version=version, outcome="passed" if report.passed else "failed",
                            detail=f"quality {report.quality_score:.0f}; failed: {summary.failed_checks or 'none'}; "
                                   f"warnings: {summary.warning_checks or 'none'}")
        progress(1, 1, "validated")
        return report

    def validation_summary(self, version: str) -> ValidationSummary | None:
        report = self.load_report(version)
        return report.summary() if report else None

    # --- serving: the resident model -----------------------------------------------------------
    def load_deployed_in_background(self) -> threading.Thread | None:
        """At server start: load the registry's deployed version without holding up `initialize`.

        Predicts that arrive meanwhile wait for the load (Runtime.begin_loading). A failure is logged
        and shown by list_models and performance_report; the server keeps running.
        """
        try:
            snapshot, problem = self.read_registry_for_reading()
        except ModelMcpError as exc:
            log.error("deployed_not_loaded", reason=str(exc))
            return None
        if problem is not None:  # damaged: the reading tools answer from the last good copy, so does predict
            log.error("registry_damaged_serving_last_good", reason=problem)
        deployed = snapshot.deployed
        if deployed is None:
            return None
        self.runtime.begin_loading(deployed.version)
        thread = threading.Thread(target=self._load_into_runtime, args=(deployed,), name="load-deployed",
                                  daemon=True)
        thread.start()
        return thread

    def _load_into_runtime(self, entry: RegistryEntry) -> None:
        try:
            resident = self._load_resident(entry)
        except ModelMcpError as exc:
            self.runtime.load_failed(entry.version, f"[{exc.code}] {exc}")
        except Exception as exc:  # a start load must never take the server down
            log.error("deployed_load_crashed", version=entry.version, exc_info=exc)
            self.runtime.load_failed(entry.version, "[internal_error] the model could not be loaded")
        else:
            self.runtime.install(resident)
            log.info("deployed_loaded", version=entry.version, load_ms=round(resident.load_ms, 1))

    def _load_resident(self, entry: RegistryEntry) -> ResidentModel:
        """Load a registered version for serving: model.joblib's hash checked, trusted loader."""
        from model_mcp.core.archive import hash_file
        from model_mcp.core.errors import HashMismatchError

        root = self.store.resolve_entry_path(entry.path)
        model_path = root / "model.joblib"
        if not model_path.is_file():
            raise NotFoundError(f"Version {entry.version} has no model.joblib on disk.")
        expected = (getattr(entry, "files", None) or {}).get("model.joblib")
        digest, size = hash_file(model_path)
        if isinstance(expected, dict) and expected.get("sha256") not in (None, digest):
            raise HashMismatchError(f"model.joblib of version {entry.version} changed on disk since import.")
        metadata = self._read_metadata(entry) or {}
        started = time.perf_counter()
        estimator = load_trusted(model_path, self.settings.trusted_pairs, max_bytes=self.settings.max_unpacked_bytes)
        load_ms = (time.perf_counter() - started) * 1000
        return ResidentModel.create(version=entry.version, estimator=estimator,
                                    feature_names=metadata.get("feature_names") or [],
                                    load_ms=load_ms, model_file_bytes=size,
                                    deployed_at=entry.deployed_at)

    def _follow_registry(self) -> None:
        """Serve what the registry says is deployed, also when another process deployed it.

        One stat of registry.json per predict (the registry read is cached by its stat); only when
        the deployed version differs from the resident one is anything loaded.
        """
        if self.runtime.loading is not None or self._switch_lock.locked():
            return  # a load or a switch in this process is under way; it installs the right model
        try:
            deployed_version = self.registry.deployed_version()
        except ModelMcpError:
            return  # damaged registry: keep serving what is resident
        current = self.runtime.current
        if deployed_version is None or (current is not None and current.version == deployed_version):
            return
        error = self.runtime.load_error
        if error is not None and error["version"] == deployed_version:
            return  # already failed to load; list_models and performance_report say why
        with self._follow_lock:
            current = self.runtime.current
            deployed = self.registry.read().deployed
            if deployed is None or (current is not None and current.version == deployed.version):
                return
            log.info("following_registry", deployed=deployed.version,
                     resident=current.version if current else None)
            self._load_into_runtime(deployed)

    # --- deploy and rollback -------------------------------------------------------------------
    def deploy(self, *, version: str, progress: Progress | None = None) -> DeployResult:
        self._require_writable("deploy")
        return self._switch_to(version, event="deploy", mode="explicit", progress=progress or _no_progress)

    def rollback(self, *, to_version: str | None = None, progress: Progress | None = None) -> DeployResult:
        self._require_writable("rollback")
        snapshot = self.read_registry()
        current = snapshot.deployed
        if to_version is None:
            target = self._rollback_target(snapshot)
            mode = "auto"
        else:
            target = self._entry_or_not_found(snapshot, to_version).version
            if current is not None and current.version == target:
                raise InvalidStateError(f"Version {target} is already deployed; there is nothing to roll back.")
            mode = "explicit"
        return self._switch_to(target, event="rollback", mode=mode, progress=progress or _no_progress)

    def deployment_stack(self) -> list[str]:
        """The versions that served, oldest first, as deploys and rollbacks left them.

        Replaying the audit trail: a deploy (or a rollback to a named version) pushes its version;
        a rollback without a target pops the current one. So repeated rollbacks walk back through
        the deployment history: deploy A, B, C; rollback -> B; rollback -> A.
        """
        stack: list[str] = []
        for event in reversed(self.history.events(kind="deployments", limit=None)):
            if event.get("outcome") != "ok":
                continue
            version = event.get("version")
            if event.get("event") == "rollback" and event.get("mode") == "auto":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != version:
                    stack.append(version)
            elif not stack or stack[-1] != version:
                stack.append(version)
        return stack

    def _rollback_target(self, snapshot: Snapshot) -> str:
        current = snapshot.deployed
        if current is None:
            raise NoRollbackTargetError("Nothing is deployed, so there is nothing to roll back from.")
        stack = self.deployment_stack()
        while stack and stack[-1] == current.version:
            stack.pop()
        for version in reversed(stack):
            entry = snapshot.get(version)
            if entry is not None and entry.status in ("available", "imported") and version != current.version:
                return version
        raise NoRollbackTargetError(
            f"No earlier deployment of another registered, deployable version precedes {current.version}; "
            "name one with to_version."
        )

    def _switch_to(self, version: str, *, event: str, mode: str, progress: Progress) -> DeployResult:
        with self._switch_lock:
            snapshot = self.read_registry()
            entry = self._entry_or_not_found(snapshot, version)
            previous = snapshot.deployed
            resident = self.runtime.current
            if entry.status == "deployed" and resident is not None and resident.version == version:
                report = self.load_report(version)
                return DeployResult(
                    deployed_version=version, previous_version=None, load_ms=0.0, probe_ms=0.0,
                    validation=report.summary() if report else _empty_summary(), already_deployed=True,
                )
            if entry.status in ("failed", "archived"):
                raise InvalidStateError(
                    f"Version {version} is {entry.status} and cannot be deployed; "
                    + ("validate it again once fixed." if entry.status == "failed" else "import it again.")
                )
            progress(0, None, "validating before deploy")
            root = self.store.resolve_entry_path(entry.path)
            outcome = validate_package(root, version=version, settings=self.settings, deep=True,
                                       recorded=getattr(entry, "files", None))
            report = outcome.report
            if not report.passed or outcome.estimator is None:
                failed = report.summary().failed_checks
                self.history.record(event, version=version, outcome="failed", mode=mode,
                                    detail=f"validation failed: {', '.join(failed)}")
                raise ValidationFailedError(
                    f"Version {version} failed pre-deployment validation ({', '.join(failed)}); "
                    f"{previous.version if previous else 'nothing'} keeps serving.",
                    data={"report": report.model_dump(mode="json")},
                )
            progress(0.8, 1, "switching")
            now = utc_now()
            metadata = outcome.contents.metadata if outcome.contents else None
            new_resident = ResidentModel.create(
                version=version, estimator=outcome.estimator,
                feature_names=metadata.feature_names if metadata else [],
                load_ms=outcome.load_ms or 0.0, model_file_bytes=outcome.model_file_bytes or 0, deployed_at=now,
            )

            def switch(snap: Snapshot) -> str | None:
                target = snap.entries.get(version)
                if target is None:
                    raise NotFoundError(f"Version {version} was deleted while it was being deployed.")
                before = snap.deployed
                if before is not None and before.version != version:
                    before.status = "available"
                target.status = "deployed"
                target.deployed_at = now
                target.quality_score = report.quality_score
                return before.version if before is not None and before.version != version else None

            previous_version = self.registry.update(switch)
            # The registry is written: from here the new model serves. One reference swap.
            self.runtime.install(new_resident)
            try:
                self.save_report(report)
            except ModelMcpError:
                log.warning("report_not_saved", version=version, exc_info=True)
            self.history.record(
                event, version=version, outcome="ok", mode=mode, previous=previous_version,
                detail=f"{event} {version} (from {previous_version or 'nothing'}); "
                       f"load {outcome.load_ms or 0:.1f} ms, probe {outcome.probe_ms or 0:.1f} ms",
            )
            progress(1, 1, "deployed")
            return DeployResult(
                deployed_version=version, previous_version=previous_version, load_ms=round(outcome.load_ms or 0, 3),
                probe_ms=None if outcome.probe_ms is None else round(outcome.probe_ms, 3),
                validation=report.summary(), rolled_back=event == "rollback",
            )

    # --- predict -------------------------------------------------------------------------------
    def predict(self, *, rows: Any, version: str | None = None) -> dict[str, Any]:
        self._follow_registry()
        if self.runtime.current is None and self.runtime.loading is None:
            error = self.runtime.load_error
            if error is not None:
                raise NoDeployedModelError(
                    f"The deployed version {error['version']} could not be loaded ({error['message']}); "
                    "deploy a version that validates."
                )
        return self.runtime.predict(rows, version=version)

    # --- performance -----------------------------------------------------------------------------
    def manifest_resources(self, version: str) -> Resources | None:
        """The manifest's resource limits of a registered version (None when it sets none)."""
        snapshot, _ = self.read_registry_for_reading()
        entry = snapshot.get(version)
        if entry is None:
            return None
        try:
            raw = (self.store.resolve_entry_path(entry.path) / "deployment_manifest.json").read_bytes()
            return parse_manifest(raw).resources
        except (OSError, ModelMcpError):
            return None

    def performance_report(self, *, version: str | None = None) -> PerformanceReport:
        if version is not None:
            check_version_name(version)
        target = version
        if target is None:
            current = self.runtime.current
            if current is not None:
                target = current.version
            else:
                snapshot, _ = self.read_registry_for_reading()
                deployed = snapshot.deployed
                if deployed is None:
                    raise NoDeployedModelError("Nothing is deployed; name a version or deploy one first.")
                target = deployed.version
        try:
            figures = self.runtime.performance(target)
        except NotFoundError:
            snapshot, _ = self.read_registry_for_reading()
            entry = self._entry_or_not_found(snapshot, target)
            figures = _zero_figures(target, entry.deployed_at)
        alerts = operational_alerts(figures, self.manifest_resources(target))
        error = self.runtime.load_error
        if error is not None and error["version"] == target:
            figures["load_error"] = error["message"]
            alerts.insert(0, Alert(kind="resource", severity="critical", message=(
                f"The deployed version {target} could not be loaded at start ({error['message']}); nothing "
                "serves. Deploy or roll back to a version that validates.")))
        return PerformanceReport(alerts=alerts, **figures)

    # --- monitoring: feedback and drift ---------------------------------------------------------
    def record_feedback(self, *, request_id: str, labels: Any) -> FeedbackResult:
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInputError("`request_id` must be the request_id a predict call answered.")
        request = self.runtime.request(request_id)
        if request is None:
            raise NotFoundError(
                f"No recent predict request has the id {request_id[:64]!r}: it is unknown, or too old "
                f"(the last {self.settings.feedback_max_requests} requests are kept)."
            )
        truth = _feedback_labels(labels, request["n_rows"])
        predicted = np.asarray(request["labels"], dtype=np.int64)
        total = self.feedback.record(request["version"], request_id, truth, predicted)
        return FeedbackResult(request_id=request_id, n_labels=int(truth.size), n_labelled_total=total,
                              version=request["version"])

    def drift_report(self, *, version: str | None = None, current: Any = None, reference: Any = None,
                     window: int | None = None) -> DriftReport:
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise InvalidInputError("`window` must be a positive number of rows.")
        snapshot, _ = self.read_registry_for_reading()
        resident = self.runtime.current
        if version is None:
            if resident is not None:
                version = resident.version
            elif snapshot.deployed is not None:
                version = snapshot.deployed.version
            else:
                raise NoDeployedModelError("Nothing is deployed; name a version or deploy one first.")
        entry = self._entry_or_not_found(snapshot, version)
        metadata = self._read_metadata(entry) or {}
        names = [str(n) for n in metadata.get("feature_names") or []]
        if not names:
            raise NotFoundError(f"Version {version} has no readable feature_names in metadata.json.")
        thresholds = DriftThresholds(share_threshold=self.settings.drift_share_threshold)
        serving = resident if resident is not None and resident.version == version else None

        # Current: rows given, else the recent predict inputs (the last `window` rows).
        cur_labels = cur_scores = None
        if current is not None:
            X_cur = parse_rows(current, names, DRIFT_MAX_ROWS)
            current_source = "rows"
            if serving is not None:
                cur_labels, cur_scores = serving.score_and_label(X_cur)
        else:
            X_cur, cur_scores, cur_labels = self._window(version, "recent")
            if window is not None:
                X_cur = X_cur[-window:]
                cur_scores = None if cur_scores is None else cur_scores[-window:]
                cur_labels = None if cur_labels is None else cur_labels[-window:]
            current_source = "recent_window"
            if X_cur.shape[0] == 0:
                raise InsufficientDataError(
                    f"Version {version} has received no predict inputs since its deploy; call predict first, "
                    "or give `current` rows."
                )

        # Reference: rows given, else the training profile, else the first inputs after deploy.
        base_X, base_scores, base_labels = self._window(version, "baseline")
        profile = metadata.get("feature_profile")
        training = metadata.get("training_info") or {}
        if reference is not None:
            X_ref = parse_rows(reference, names, DRIFT_MAX_ROWS)
            reference_source, n_reference = "rows", int(X_ref.shape[0])
            features = drift_against_sample(X_cur, X_ref, names, thresholds)
        elif isinstance(profile, dict) and profile_covers(profile, names):
            reference_rows = training.get("n_samples")
            reference_rows = reference_rows if isinstance(reference_rows, int) and reference_rows > 0 else None
            reference_source, n_reference = "feature_profile", int(reference_rows or 0)
            features = drift_against_profile(X_cur, names, profile, thresholds, reference_rows=reference_rows)
        else:
            reference_source, n_reference = "baseline_window", int(base_X.shape[0])
            if n_reference == 0:
                raise InsufficientDataError(
                    f"Version {version} has no feature_profile and no inputs since its deploy to compare with; "
                    "give `reference` rows."
                )
            features = drift_against_sample(X_cur, base_X, names, thresholds)
        verdict = dataset_verdict(features, thresholds.share_threshold)

        prediction = None
        if cur_labels is not None and np.isin(cur_labels, (-1, 1)).all() and cur_labels.size:
            contamination = training.get("contamination")
            expected = float(contamination) if isinstance(contamination, int | float) and not isinstance(
                contamination, bool) and 0 < contamination < 1 else None
            prediction = prediction_drift(
                cur_labels == -1, expected_rate=expected, current_scores=cur_scores,
                reference_scores=base_scores if base_scores is not None and base_scores.size else None,
                reference_is_anomaly=(base_labels == -1) if base_labels is not None and base_labels.size else None,
                thresholds=thresholds,
            )
        labelled = self.feedback.labelled(version)
        performance = None
        if labelled is not None:
            performance = performance_drift(labelled[0], labelled[1], metadata.get("evaluation_metrics"),
                                            thresholds)
        concept = concept_drift(performance, verdict.dataset_drift)
        alerts = [Alert(**a) for a in build_alerts(features, verdict, prediction, performance, concept,
                                                   thresholds)]
        try:
            figures = self.runtime.performance(version)
            alerts += operational_alerts(figures, self.manifest_resources(version))
        except NotFoundError:
            pass
        return DriftReport(
            version=version, reference_source=reference_source, n_reference=n_reference,
            current_source=current_source, n_current=int(X_cur.shape[0]),
            features=[f.to_dict() for f in features], drifted_features=list(verdict.drifted_features),
            share_drifted=float(verdict.share_drifted), dataset_drift=bool(verdict.dataset_drift),
            prediction_drift=prediction, performance_drift=performance, concept_drift=concept,
            alerts=alerts, generated_at=utc_now(),
        )

    def _window(self, version: str, which: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        try:
            return self.runtime.recent(version) if which == "recent" else self.runtime.baseline(version)
        except NotFoundError:
            return np.empty((0, 0)), None, None

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
        for index, pkg in enumerate(wanted):
            if progress:
                progress(index, len(wanted), f"importing {pkg.location}")
            version = self._transfer(pkg, errors)
            if version is not None:
                imported.append(version)
        if imported:
            snapshot, _ = self.read_registry_for_reading()
        return ScanResult(
            training_dir=str(root),
            packages=[p.to_dict(already_imported=already(p)) for p in packages],
            imported=imported,
            errors=errors,
        )

    def _transfer(self, pkg: TrainingPackage, errors: list[ScanError]) -> str | None:
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
        return result.version

    # --- hand-placed models --------------------------------------------------------------------
    def discover_models(self) -> DiscoverResult:
        """Register folders placed by hand under models/ (source `manual`), validated like an import.

        A folder's version is the one its package gives (not its folder name); its `path` is the
        folder as placed. Broken folders are reported with the code of the first failing check and
        left exactly as they are.
        """
        self._require_writable("discover_models")
        snapshot = self.read_registry()
        known_paths = {self.store.resolve_entry_path(e.path).resolve() for e in snapshot.entries.values()}
        registered: list[str] = []
        problems: list[DiscoveryProblem] = []
        if not self.store.models_dir.is_dir():
            return DiscoverResult(registered=[], problems=[])
        for folder in sorted(self.store.models_dir.iterdir()):
            if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
                continue
            if folder.resolve() in known_paths:
                continue
            try:
                version = self._register_manual(folder)
            except ModelMcpError as exc:
                problems.append(DiscoveryProblem(folder=f"models/{folder.name}", code=exc.code, message=str(exc)))
                continue
            if version is not None:
                registered.append(version)
        return DiscoverResult(registered=registered, problems=problems)

    def _register_manual(self, folder: Path) -> str | None:
        contents = inspect_package(folder)
        version = contents.version
        estimator, probe = self._first_load(contents)
        outcome = validate_package(folder, version=version, settings=self.settings, contents=contents,
                                   estimator=estimator, digests=contents.files, probe=probe)
        status = "available" if outcome.report.passed else "failed"
        metadata = contents.metadata
        entry = RegistryEntry(
            version=version, model_name=metadata.model_name, status=status,  # type: ignore[arg-type]
            path=f"models/{folder.name}", created_at=metadata.created_at, imported_at=utc_now(),
            source="manual", quality_score=outcome.report.quality_score,
        )
        entry.model_type = metadata.model_type  # type: ignore[attr-defined]
        entry.files = {n: {"sha256": d.sha256, "size": d.size}  # type: ignore[attr-defined]
                       for n, d in sorted(contents.files.items())}
        entry.validated_at = outcome.report.generated_at  # type: ignore[attr-defined]

        def add(snap: Snapshot) -> bool:
            if version in snap.entries:
                same_folder = self.store.resolve_entry_path(snap.entries[version].path).resolve() == folder.resolve()
                if same_folder:
                    return False  # registered meanwhile (an import publishing this very folder)
                raise VersionConflictError(
                    f"models/{folder.name} holds version {version}, which is already registered at "
                    f"{snap.entries[version].path}; rename or remove one of them."
                )
            snap.entries[version] = entry
            return True

        with self.store.lock():
            if not self.registry.update(add):
                return None
            self.save_report(outcome.report)
        self.history.record("discover", version=version, outcome="ok", source="manual",
                            detail=f"Registered models/{folder.name} as {status} (quality "
                                   f"{outcome.report.quality_score:.0f}).")
        return version

    def discover_in_background(self) -> threading.Thread | None:
        """Discovery at start, off the start path (validation loads scikit-learn)."""
        if self.settings.read_only:
            return None

        def run() -> None:
            try:
                result = self.discover_models()
            except ModelMcpError as exc:
                log.warning("discovery_skipped", code=exc.code, reason=str(exc))
                return
            except Exception:
                log.error("discovery_crashed", exc_info=True)
                return
            if result.registered or result.problems:
                log.info("discovered", registered=result.registered,
                         problems=[p.model_dump() for p in result.problems])

        thread = threading.Thread(target=run, name="discover", daemon=True)
        thread.start()
        return thread

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
        with self.store.lock():
            snapshot = self.read_registry()
            entry = self._entry_or_not_found(snapshot, version)
            if entry.status == "deployed":
                raise InvalidStateError(
                    f"Version {version} is deployed; deploy or roll back to another version before deleting it."
                )
            folder = self.store.resolve_entry_path(entry.path)
            inside_models = folder.resolve().parent == self.store.models_dir.resolve()
            trash = self.store.staging_dir / f"trash-{os.getpid()}-{version}"
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


def _feedback_labels(labels: Any, n_rows: int) -> np.ndarray:
    if not isinstance(labels, list):
        raise InvalidInputError("`labels` must be a list with one label (-1 anomaly, 1 normal) per row.")
    for index, label in enumerate(labels):
        if isinstance(label, bool) or label not in (-1, 1):
            raise InvalidInputError(f"label {index} is {label!r}; use -1 for an anomaly and 1 for normal.")
    if len(labels) != n_rows:
        raise InvalidInputError(f"The request had {n_rows} rows, but {len(labels)} labels were given.")
    return np.asarray(labels, dtype=np.int64)


def _public_event(event: dict[str, Any]) -> dict[str, Any]:
    base = {key: event.get(key) for key in ("at", "event", "version", "outcome", "detail")}
    return {**base, **{k: v for k, v in event.items() if k not in base}}


def _empty_summary() -> ValidationSummary:
    return ValidationSummary(passed=True, quality_score=0.0, failed_checks=[], warning_checks=[])


def _zero_figures(version: str, deployed_at: str | None) -> dict[str, Any]:
    return {"version": version, "deployed_at": deployed_at, "n_requests": 0, "n_rows": 0, "n_errors": 0,
            "error_rate": 0.0, "latency_ms": {"p50": None, "p95": None, "p99": None},
            "throughput_rows_per_s": None, "anomaly_rate": None, "model_file_bytes": None, "memory_bytes": None,
            "serving": False}
