"""What every use case shares: guards, the registry read, reports, entries and metadata."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_mcp.core.archive import ArchiveLimits
from model_mcp.core.catalog import Catalog
from model_mcp.core.errors import (
    HashMismatchError,
    InvalidInputError,
    ModelMcpError,
    NoDeployedModelError,
    NotFoundError,
    ReadOnlyError,
)
from model_mcp.core.history import History
from model_mcp.core.monitoring import FeedbackStore
from model_mcp.core.package_cache import PackageCache
from model_mcp.core.registry import Registry, Snapshot
from model_mcp.core.runtime import Runtime
from model_mcp.core.schemas import (
    DiscoveryProblem,
    RegistryEntry,
    ValidationReport,
)
from model_mcp.core.store import (
    Store,
    atomic_write_json,
    check_version_name,
)
from model_mcp.logs import get_logger
from model_mcp.settings import Settings

if TYPE_CHECKING:
    from model_mcp.core.validation import ValidationOutcome

log = get_logger(__name__)

# progress(done, total, message); total may be None when unknown.
Progress = Callable[[float, float | None, str], None]


def _no_progress(done: float, total: float | None, message: str) -> None:
    return None


RESERVED_ALIAS = "deployed"


def resolve_alias(snapshot: Snapshot, ref: str) -> str:
    """`name@alias` to the version it names (`name@deployed`: that model's deployed version); any
    other text is returned as it is. An unknown alias: NotFoundError naming the model's aliases."""
    if not isinstance(ref, str) or "@" not in ref:
        return ref
    name, _, alias = ref.rpartition("@")
    versions = [e for e in snapshot.entries.values() if e.model_name == name]
    if not versions:
        raise NotFoundError(f"No model named {name!r} is registered (in {ref!r}); list_models shows the models.")
    if alias == RESERVED_ALIAS:
        deployed = snapshot.deployed_of(name)
        if deployed is None:
            raise NoDeployedModelError(f"No version of {name} is deployed ({ref!r}).")
        return deployed.version
    for entry in versions:
        if alias in (entry.aliases or []):
            return entry.version
    known = sorted(a for e in versions for a in (e.aliases or []))
    raise NotFoundError(
        f"Model {name} has no alias {alias!r}; its aliases: {', '.join(known) if known else 'none'} "
        f"(and {RESERVED_ALIAS!r}, its deployed version)."
    )


def deployed_version_of(snapshot: Snapshot, model_name: str | None) -> str:
    """The deployed version of `model_name`, or of the only deployed model when no name is given."""
    deployed = snapshot.deployed_by_model()
    if model_name is not None:
        entry = deployed.get(model_name)
        if entry is None:
            known = [e for e in snapshot.entries.values() if e.model_name == model_name]
            raise (NoDeployedModelError if known else NotFoundError)(
                f"No version of {model_name} is deployed." if known else
                f"No model named {model_name!r} is registered; list_models shows the models."
            )
        return entry.version
    if not deployed:
        raise NoDeployedModelError("No version was given and none is deployed; name a version (see "
                                   "list_models) or deploy one first.")
    if len(deployed) > 1:
        raise InvalidInputError(
            f"Several models are deployed ({', '.join(sorted(n or '(unnamed)' for n in deployed))}); name a "
            "version or a model_name."
        )
    return next(iter(deployed.values())).version


class UseCaseBase:
    """Shared state and helpers of the use cases; ModelManager sets the attributes."""

    settings: Settings
    store: Store
    registry: Registry
    history: History
    limits: ArchiveLimits
    runtime: Runtime
    feedback: FeedbackStore
    pending_discovery: dict[str, RegistryEntry]
    discovery_problems: list[DiscoveryProblem]
    catalog: Catalog
    package_cache: PackageCache

    # --- guards --------------------------------------------------------------------------------
    def _require_writable(self, tool: str) -> None:
        if self.settings.read_only:
            raise ReadOnlyError(f"The server was started read-only; {tool} would change the store and is refused.")

    def check_writable(self, tool: str) -> None:
        """Raise ReadOnlyError on a read-only server: for edges that refuse before reading a large body."""
        self._require_writable(tool)

    def read_registry(self) -> Snapshot:
        """For changing use cases: raises RegistryCorruptError when registry.json does not parse."""
        return self.registry.read()

    def read_registry_for_reading(self, *, copy: bool = True) -> tuple[Snapshot, str | None]:
        """For reading use cases: the registry, or the last good copy with the reason it is used:
        registry.json damaged, or (PostgreSQL) the database unreachable, the copy this server last read.
        `copy=False`: the registry's own cached snapshot, for callers that only read it."""
        from model_mcp.core.errors import RegistryCorruptError, StorageError

        try:
            return (self.registry.read() if copy else self.registry.view()), None
        except RegistryCorruptError as exc:
            return self.registry.read_last_good(), str(exc)
        except StorageError as exc:
            if not self.settings.database_url:
                raise
            return self.registry.read_last_good(), str(exc)

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

    @staticmethod
    def _public_entry(entry: RegistryEntry) -> dict[str, Any]:
        data = entry.model_dump(mode="json")
        data["aliases"] = data.get("aliases") or []
        data.pop("files", None)  # per-file hashes are get_model's business
        data.pop("feature_names", None)  # kept for catalog search; get_model's metadata has them
        return data

    def _entry_or_not_found(self, snapshot: Snapshot, version: str) -> RegistryEntry:
        version = resolve_alias(snapshot, version)
        check_version_name(version)
        entry = snapshot.get(version)
        if entry is None:
            placed = next((e for e in list(self.pending_discovery.values()) if e.version == version), None)
            if placed is not None:
                raise NotFoundError(f"Version {version} ({placed.path}) is not registered yet: the discovery at "
                                    "start is validating it; ask again in a moment.")
            raise NotFoundError(f"No version {version} is registered; list_models shows the registered versions.")
        return entry

    def package_root(self, entry: RegistryEntry) -> Path:
        """The folder to LOAD a version from (unpickle, validate, serve): its folder in the home, or,
        with a shared artifact folder, this replica's local copy checked against the sha256 recorded
        at import (core/package_cache.py). Plain reads of its JSON files may use the entry's path."""
        folder = self.store.resolve_entry_path(entry.path)
        if not self.store.shared_artifacts:
            return folder
        return self.package_cache.verified(entry.version, folder, entry.files)

    def validate_stored(self, entry: RegistryEntry, *, deep: bool = True) -> ValidationOutcome:
        """Validate a registered version against the hashes recorded at import (validate, deploy, a
        rollout). A deep validation loads the model, so it reads `package_root` (with a shared artifact
        folder, the checked local copy); when the shared files no longer match the record, the answer is
        the same failed `hashes` report a home's changed file gets, built by hashing only, so the changed
        file is never loaded. A shallow one loads nothing and hashes the files where they are."""
        from model_mcp.core.validation import validate_package

        folder = self.store.resolve_entry_path(entry.path)
        if deep:
            try:
                folder = self.package_root(entry)
            except (HashMismatchError, NotFoundError):
                if not self.store.shared_artifacts:
                    raise
                outcome = validate_package(folder, version=entry.version, settings=self.settings, deep=False,
                                           recorded=entry.files)
                if outcome.report is None or outcome.report.passed:
                    raise  # the shared files match again by now: the caller's error says to try again
                outcome.report = outcome.report.model_copy(update={"deep": deep})
                return outcome
        return validate_package(folder, version=entry.version, settings=self.settings, deep=deep,
                                recorded=entry.files)

    def _read_metadata(self, entry: RegistryEntry) -> dict[str, Any] | None:
        try:
            raw = (self.store.resolve_entry_path(entry.path) / "metadata.json").read_bytes()
            value = json.loads(raw)
            return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            return None

    def resolve_version(self, version: str | None, snapshot: Snapshot | None = None, *,
                        model_name: str | None = None) -> str:
        """Which version a call means: the one named (a version id or `name@alias`, checked), else
        the deployed version of `model_name`, else the deployed version when one model is deployed.

        The one rule for every tool whose `version` defaults to the deployed version. "Deployed" is
        the registry's word (the last good copy while registry.json is damaged), so a version another
        process deployed is meant even before this process serves it. Raises NoDeployedModelError
        when nothing is named and nothing is deployed, InvalidInputError when several models are
        deployed and neither a version nor a model name says which.
        """
        if snapshot is None and (version is None or "@" in version):
            snapshot, _ = self.read_registry_for_reading()
        if version is not None:
            return check_version_name(resolve_alias(snapshot, version) if snapshot is not None else version)
        assert snapshot is not None
        return deployed_version_of(snapshot, model_name)

    def _entry_fingerprint(self, entry: RegistryEntry) -> dict[str, str]:
        if entry.files:
            return {name: info.sha256 for name, info in sorted(entry.files.items())}
        from model_mcp.core.archive import hash_file
        from model_mcp.core.package import list_package_files

        root = self.store.resolve_entry_path(entry.path)
        return {name: hash_file(root / name)[0] for name in list_package_files(root)}
