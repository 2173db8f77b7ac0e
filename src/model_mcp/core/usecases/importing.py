"""Import use cases: ZIP and folder packages through one staged, journaled publish; hand-placed folders."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from model_mcp.core.archive import (
    decode_base64_upload,
    describe_client_path,
    extract_zip,
    read_upload_path,
)
from model_mcp.core.errors import (
    InvalidInputError,
    InvalidManifestError,
    InvalidMetadataError,
    ModelLoadFailedError,
    ModelMcpError,
    NotAZipError,
    UntrustedModelError,
    VersionConflictError,
)
from model_mcp.core.isolated_probe import ProbeResult
from model_mcp.core.package import (
    FileDigest,
    PackageContents,
    copy_package_folder,
    inspect_package,
    package_fingerprint,
    read_json_file,
)
from model_mcp.core.package import resolve_version as package_version
from model_mcp.core.registry import Snapshot
from model_mcp.core.schemas import (
    DiscoverResult,
    DiscoveryProblem,
    FileInfo,
    ImportResult,
    RegistryEntry,
    ValidationReport,
    parse_manifest,
    parse_metadata,
    utc_now,
)
from model_mcp.core.store import (
    atomic_write_json,
    check_version_name,
    remove_tree,
    storage_error,
)
from model_mcp.core.text import control_characters
from model_mcp.core.unpickler import load_trusted
from model_mcp.core.usecases.base import Progress, UseCaseBase, _no_progress
from model_mcp.core.validation import (
    ValidationOutcome,
    isolated_probe,
    validate_package,
)
from model_mcp.logs import get_logger

log = get_logger(__name__)


def check_path_argument(path: str | None, argument: str = "path") -> None:
    """A path from an agent: a non-empty string without NUL (which the OS cannot take)."""
    if path is None:
        return
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"`{argument}` must be the path of a file, not an empty value.")
    if "\x00" in path:
        raise InvalidInputError(f"`{argument}` contains a NUL byte, which no file path can hold.")


def check_name_argument(name: str | None, argument: str) -> None:
    """A name from an agent that ends up in answers and the audit trail: no control characters."""
    if name is None:
        return
    found = control_characters(name) if isinstance(name, str) else []
    if found:
        raise InvalidInputError(
            f"`{argument}` contains control characters ({', '.join(found[:5])}); give a plain name."
        )


def refuse_case_clash(snapshot: Snapshot, version: str) -> None:
    """Versions that differ only by case are one folder on a case-insensitive filesystem (macOS,
    Windows) and one name to a person: the second is a conflict."""
    folded = version.casefold()
    for existing in snapshot.entries:
        if existing != version and existing.casefold() == folded:
            raise VersionConflictError(
                f"Version {version} differs from the registered version {existing} only by case; give the "
                "package a version that differs in more than letter case."
            )


def refuse_semver_clash(snapshot: Snapshot, entry: RegistryEntry) -> None:
    """At most one version of a model may claim a semantic version (by SemVer precedence, so
    1.2.0+build.1 and 1.2.0+build.2 are the same release)."""
    from model_mcp.core.semver import semver_or_none

    claimed = semver_or_none(entry.semantic_version)
    if claimed is None:
        return
    for other in snapshot.entries.values():
        if (other.version != entry.version and other.model_name == entry.model_name
                and semver_or_none(other.semantic_version) == claimed):
            raise VersionConflictError(
                f"Version {other.version} of {entry.model_name} already claims semantic version "
                f"{other.semantic_version}; give the package another semantic_version."
            )


class _AlreadyPresent(Exception):
    def __init__(self, result: ImportResult) -> None:
        super().__init__(result.version)
        self.result = result


class ImportCases(UseCaseBase):
    """import_zip, import_folder, discover_models and the start-up recovery of interrupted publishes."""

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

    def import_uploaded(self, *, path: Path, filename: str | None = None,
                        progress: Progress | None = None) -> ImportResult:
        """Import a ZIP that the HTTP edge streamed into the home's staging (counting its bytes).

        The same import as import_zip(path=...), except for the MODEL_MCP_IMPORT_ROOTS rule: that
        rule limits which of the server's files a client may name, and this file is not a client's
        path but the upload the server itself wrote.
        """
        self._require_writable("import_zip")
        origin = filename or "upload.zip"
        with self._audit_failure("import", origin=origin, source="zip"):
            return self._import_zip(path=str(path), content_base64=None, filename=filename, source="zip",
                                    origin=origin, progress=progress or _no_progress, uploaded=True)

    def _import_zip(self, *, path: str | None, content_base64: str | None, filename: str | None, source: str,
                    origin: str | None, progress: Progress, uploaded: bool = False) -> ImportResult:
        if (path is None) == (content_base64 is None):
            raise InvalidInputError("Give exactly one of `path` (a .zip on the server's disk) or `content_base64`.")
        check_path_argument(path)
        check_name_argument(filename, "filename")
        self.read_registry()  # a damaged registry refuses changes before any work
        if path is not None:
            if source == "zip" and not uploaded:
                self._check_import_root(path)
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

            try:
                extraction = extract_zip(upload, package_dir, self.limits, on_bytes)
            except NotAZipError as exc:
                if path is None:
                    raise
                raise NotAZipError(str(exc).replace("The upload", describe_client_path(path), 1)) from exc
            digests = {name: FileDigest(f.sha256, f.size) for name, f in extraction.files.items()}
            extra_warnings = [f"Skipped {name}: not part of a package." for name in extraction.ignored
                              if not name.endswith("/")]
            return self._import_staged(package_dir, digests, source=source, origin=origin,
                                       progress=progress, extra_warnings=extra_warnings)

    def _check_import_root(self, path: str) -> None:
        """With MODEL_MCP_IMPORT_ROOTS set, `import_zip(path=...)` reads only below those folders."""
        roots = self.settings.import_roots
        if not roots:
            return
        try:
            resolved = Path(path).expanduser().resolve()
        except (OSError, RuntimeError, ValueError):
            resolved = None
        for root in roots:
            try:
                if resolved is not None:
                    resolved.relative_to(Path(root).expanduser().resolve())
                    return
            except ValueError:
                continue
        raise InvalidInputError(
            "`path` is outside the folders this server imports from (MODEL_MCP_IMPORT_ROOTS: "
            + ", ".join(str(r) for r in roots) + "); put the ZIP there, or send it as `content_base64`."
        )

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
        try:
            entry = self._publish(package_dir, contents, outcome, source=source, origin=origin)
        except _AlreadyPresent as race:
            return race.result
        self.history.record("import", version=version, outcome="ok",
                            detail=f"Imported {origin} from {source} as {entry.status} "
                                   f"(quality {outcome.report.quality_score:.0f}).", source=source)
        progress(1, 1, "imported")
        return ImportResult(
            version=version, model_name=contents.metadata.model_name, status=entry.status,
            already_present=False, warnings=contents.warnings + extra_warnings,
            missing_optional_files=contents.missing_optional, extra_files=contents.extra_files,
            validation=outcome.report.summary(), source=entry.source, path=entry.path,
        )

    def _first_load(self, contents: PackageContents) -> tuple[Any, ProbeResult | None]:
        """Load a new package's model: first in a child process, then here only if the child found
        a sound estimator (it loaded, its structure is safe, and it predicted).

        A pickle naming an untrusted global, or one that does not load, fails the import with its
        code (`untrusted_model`, `model_load_failed`); one that crashes or hangs the child while
        loading fails as `model_load_failed` and is never loaded in this process.
        """
        probe = isolated_probe(contents, self.settings)
        if probe is not None and not probe.ok and probe.load_ms is None:
            message = probe.detail.split("] ", 1)[1] if probe.detail.startswith("[") else probe.detail
            raise (UntrustedModelError if probe.code == "untrusted_model" else ModelLoadFailedError)(message)
        if probe is not None and not probe.ok:
            # Loaded in the child but not a sound estimator (unsafe structure, predict failed):
            # never loaded here; validation reports it and the version is registered `failed`.
            return None, probe
        estimator = load_trusted(contents.model_path, self.settings.trusted_pairs,
                                 max_bytes=self.settings.max_unpacked_bytes)
        return estimator, probe

    def _existing_import(self, version: str, fingerprint: dict[str, str]) -> ImportResult | None:
        snapshot = self.read_registry()
        entry = snapshot.get(version)
        if entry is None:
            refuse_case_clash(snapshot, version)
            if self.store.version_dir(version).exists() and self._publish_journal(version).exists():
                # Called under the store's lock, which every publish holds from its journal to its
                # registry write: a journal seen here is a killed process's (a replica SIGKILLed
                # mid-import). Undo its half publish now rather than at that process's next start.
                self._recover_journal()
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

    def _publish(self, package_dir: Path, contents: PackageContents, outcome: ValidationOutcome, *,
                 source: str, origin: str) -> RegistryEntry:
        """Move the staged package into models/<version> and register it, as one step.

        A journal file (staging/publish-<version>.json) is written before the rename and removed after
        the registry write: if the process dies in between, the next start finds the journal, sees no
        registry entry, and removes the half-published folder.
        """
        version = contents.version
        target = self.store.version_dir(version)
        journal = self._publish_journal(version)
        entry = new_entry(contents, outcome.report, path=f"models/{version}", source=source, origin=origin)

        with self.store.lock():
            # Checked again under the lock: another request or process may have imported this
            # version while we validated. The same content makes this import a no-op.
            existing = self._existing_import(version, package_fingerprint(contents.files))
            if existing is not None:
                raise _AlreadyPresent(existing)
            # imported_at tells, at recovery, whether a registered entry is this publish's own (with
            # PostgreSQL another home may have registered the version meanwhile, with other files).
            atomic_write_json(journal, {"version": version, "target": str(target.relative_to(self.store.shared)),
                                        "imported_at": entry.imported_at})
            try:
                self.store.models_dir.mkdir(parents=True, exist_ok=True)
                os.rename(package_dir, target)
            except OSError as exc:
                journal.unlink(missing_ok=True)
                raise storage_error(exc, f"moving version {version} into models/") from exc
            try:
                self.save_report(outcome.report)

                def add(snap: Snapshot) -> None:
                    if version in snap.entries:
                        # Another home on the same database (PostgreSQL) registered it since the check
                        # above: its lock is not ours. Never overwrite its entry; our files are removed.
                        raise VersionConflictError(
                            f"Version {version} was registered by another server while this import was "
                            "being validated. Nothing was changed; import again to compare the content.")
                    refuse_semver_clash(snap, entry)
                    snap.entries[version] = entry

                self.registry.update(add)
            except BaseException:
                remove_tree(target)
                self.report_path_for(version).unlink(missing_ok=True)
                journal.unlink(missing_ok=True)
                raise
            journal.unlink(missing_ok=True)
        return entry

    def _publish_journal(self, version: str) -> Path:
        return self.store.inside(self.store.staging_dir, f"publish-{check_version_name(version)}.json")

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
            registered = snapshot.entries.get(version)
            theirs = registered is not None and data.get("imported_at") not in (None, registered.imported_at)
            if registered is None or theirs:
                log.warning("undo_interrupted_publish", version=version, registered_elsewhere=theirs)
                remove_tree(self.store.version_dir(version))
                self.report_path_for(version).unlink(missing_ok=True)
            journal.unlink(missing_ok=True)

    # --- hand-placed models --------------------------------------------------------------------
    def discover_models(self) -> DiscoverResult:
        """Register folders placed by hand under models/ (source `manual`), validated like an import.

        A folder's version is the one its package gives (not its folder name); its `path` is the
        folder as placed. Broken folders are reported with the code of the first failing check and
        left exactly as they are.
        """
        self._require_writable("discover_models")
        registered: list[str] = []
        problems: list[DiscoveryProblem] = []
        for folder in self._unregistered_folders(self.read_registry()):
            try:
                version = self._register_manual(folder)
            except ModelMcpError as exc:
                problems.append(DiscoveryProblem(folder=f"models/{folder.name}", code=exc.code, message=str(exc)))
                continue
            finally:
                self.pending_discovery.pop(folder.name, None)
            if version is not None:
                registered.append(version)
        self.discovery_problems = problems
        return DiscoverResult(registered=registered, problems=problems)

    def _unregistered_folders(self, snapshot: Snapshot) -> list[Path]:
        """Folders under models/ that no registry entry points at (links and dot-names skipped)."""
        if not self.store.models_dir.is_dir():
            return []
        known_paths = {self.store.resolve_entry_path(e.path).resolve() for e in snapshot.entries.values()}
        # A folder an import is publishing (or a killed import left, until it is undone) is not
        # placed by hand: its journal names it.
        publishing = {j.name.removeprefix("publish-").removesuffix(".json")
                      for j in _glob(self.store.staging_dir, "publish-*.json")}
        return [folder for folder in sorted(self.store.models_dir.iterdir())
                if not (folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir())
                and folder.resolve() not in known_paths and folder.name not in publishing]

    def _placed_entry(self, folder: Path, snapshot: Snapshot) -> RegistryEntry | None:
        """What list_models shows of a placed folder before discovery validated it: `imported`, from its
        metadata and manifest alone (nothing hashed or loaded); None if those do not even give a version."""
        try:
            metadata = parse_metadata(read_json_file(folder / "metadata.json", InvalidMetadataError))
            manifest = parse_manifest(read_json_file(folder / "deployment_manifest.json", InvalidManifestError))
            version = package_version(metadata, manifest)
        except (ModelMcpError, OSError):
            return None
        if version in snapshot.entries:
            return None  # a conflict: discovery reports it, and the registered one is listed
        return RegistryEntry(version=version, model_name=metadata.model_name, status="imported",
                             path=f"models/{folder.name}", created_at=metadata.created_at, source="manual",
                             model_type=metadata.model_type, origin=f"models/{folder.name}")

    def _register_manual(self, folder: Path) -> str | None:
        contents = inspect_package(folder)
        version = contents.version
        estimator, probe = self._first_load(contents)
        outcome = validate_package(folder, version=version, settings=self.settings, contents=contents,
                                   estimator=estimator, digests=contents.files, probe=probe)
        entry = new_entry(contents, outcome.report, path=f"models/{folder.name}", source="manual",
                          origin=f"models/{folder.name}")
        status = entry.status

        def add(snap: Snapshot) -> bool:
            if version in snap.entries:
                same_folder = self.store.resolve_entry_path(snap.entries[version].path).resolve() == folder.resolve()
                if same_folder:
                    return False  # registered meanwhile (an import publishing this very folder)
                raise VersionConflictError(
                    f"models/{folder.name} holds version {version}, which is already registered at "
                    f"{snap.entries[version].path}; rename or remove one of them."
                )
            refuse_case_clash(snap, version)
            refuse_semver_clash(snap, entry)
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
        # Listed from the first list_models answer, as `imported`, while the thread validates them.
        try:
            snapshot = self.read_registry()
            self.pending_discovery = {
                folder.name: entry for folder in self._unregistered_folders(snapshot)
                if (entry := self._placed_entry(folder, snapshot)) is not None
            }
        except (ModelMcpError, OSError):
            self.pending_discovery = {}  # the thread meets the same trouble and logs it

        def run() -> None:
            try:
                result = self.discover_models()
            except ModelMcpError as exc:
                log.warning("discovery_skipped", code=exc.code, reason=str(exc))
                return
            except Exception:
                log.error("discovery_crashed", exc_info=True)
                return
            finally:
                self.pending_discovery = {}
            if result.registered or result.problems:
                log.info("discovered", registered=result.registered,
                         problems=[p.model_dump() for p in result.problems])

        thread = threading.Thread(target=run, name="discover", daemon=True)
        thread.start()
        return thread


def new_entry(contents: PackageContents, report: ValidationReport, *, path: str, source: str,
              origin: str) -> RegistryEntry:
    """The registry entry of a package just validated: the one place entries are built.

    `available` when validation passed (warnings allowed), `failed` when a check failed.
    """
    metadata = contents.metadata
    return RegistryEntry(
        version=contents.version, model_name=metadata.model_name,
        status="available" if report.passed else "failed",
        path=path, created_at=metadata.created_at, imported_at=utc_now(),
        source=source,  # type: ignore[arg-type]
        quality_score=report.quality_score, model_type=metadata.model_type, origin=origin,
        validated_at=report.generated_at,
        files={n: FileInfo(sha256=d.sha256, size=d.size) for n, d in sorted(contents.files.items())},
        semantic_version=metadata.semantic_version, tags=metadata.tags, description=metadata.description,
        feature_names=list(metadata.feature_names),
    )


def _glob(folder: Path, pattern: str) -> list[Path]:
    try:
        return list(folder.glob(pattern))
    except OSError:
        return []
