"""Every failure the core reports, each with the contract's error code.

The core raises these; `server.py` maps them once to `[code] sentence` tool errors. Anything
else that escapes is a bug and is answered as `[internal_error]` without details.

    ModelMcpError                         internal_error
    ├── ArchiveError
    │   ├── NotAZipError                  not_a_zip
    │   ├── UnsafeArchiveError            unsafe_archive
    │   └── ArchiveTooLargeError          archive_too_large
    ├── PackageError
    │   ├── MissingRequiredFilesError     missing_required_files
    │   ├── InvalidMetadataError          invalid_metadata
    │   ├── InvalidManifestError          invalid_manifest
    │   ├── HashMismatchError             hash_mismatch
    │   ├── InvalidVersionError           invalid_version
    │   └── VersionConflictError          version_conflict
    ├── ModelLoadError
    │   ├── UntrustedModelError           untrusted_model
    │   └── ModelLoadFailedError          model_load_failed
    ├── NotFoundError                     not_found
    ├── InvalidStateError                 invalid_state
    ├── ValidationFailedError             validation_failed   (carries the report)
    ├── NoDeployedModelError              no_deployed_model
    ├── VersionMismatchError              version_mismatch
    ├── InvalidInputError                 invalid_input
    ├── NoRollbackTargetError             no_rollback_target
    ├── ResourceLimitError                resource_limit       (the resident models' memory budget)
    ├── InsufficientDataError             insufficient_data
    ├── TrainingServiceUnavailableError   training_service_unavailable
    ├── ReadOnlyError                     read_only
    ├── RegistryCorruptError              registry_corrupt
    └── StorageError                      storage_error        (disk full, permissions)

`storage_error` is not in the contract's table: the contract is silent on a full disk or an
unwritable home, and a clear code serves the operator better than `internal_error`.
"""

from __future__ import annotations

from typing import Any

from model_mcp.core.text import printable


class ModelMcpError(Exception):
    """Base of every expected failure. `str(exc)` is the sentence shown to the client."""

    code: str = "internal_error"

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        # Sentences quote names from packages and agents; their control characters (newlines,
        # ANSI escapes) are escaped here, once, for every edge that shows the sentence.
        message = printable(str(message))
        super().__init__(message)
        self.message = message
        # Structured detail an agent may use (for example the validation report).
        self.data = data or {}


class ArchiveError(ModelMcpError):
    """The upload cannot be unpacked safely."""


class NotAZipError(ArchiveError):
    code = "not_a_zip"


class UnsafeArchiveError(ArchiveError):
    code = "unsafe_archive"


class ArchiveTooLargeError(ArchiveError):
    code = "archive_too_large"


class PackageError(ModelMcpError):
    """The archive unpacked, but its content is not a valid model package."""


class MissingRequiredFilesError(PackageError):
    code = "missing_required_files"


class InvalidMetadataError(PackageError):
    code = "invalid_metadata"


class InvalidManifestError(PackageError):
    code = "invalid_manifest"


class HashMismatchError(PackageError):
    code = "hash_mismatch"


class InvalidVersionError(PackageError):
    code = "invalid_version"


class VersionConflictError(PackageError):
    code = "version_conflict"


class ModelLoadError(ModelMcpError):
    """`model.joblib` could not be turned into a usable estimator."""


class UntrustedModelError(ModelLoadError):
    code = "untrusted_model"


class ModelLoadFailedError(ModelLoadError):
    code = "model_load_failed"


class NotFoundError(ModelMcpError):
    code = "not_found"


class InvalidStateError(ModelMcpError):
    code = "invalid_state"


class ValidationFailedError(ModelMcpError):
    code = "validation_failed"


class NoDeployedModelError(ModelMcpError):
    code = "no_deployed_model"


class VersionMismatchError(ModelMcpError):
    code = "version_mismatch"


class InvalidInputError(ModelMcpError):
    code = "invalid_input"


class NoRollbackTargetError(ModelMcpError):
    code = "no_rollback_target"


class ResourceLimitError(ModelMcpError):
    code = "resource_limit"


class InsufficientDataError(ModelMcpError):
    code = "insufficient_data"


class TrainingServiceUnavailableError(ModelMcpError):
    code = "training_service_unavailable"


class ReadOnlyError(ModelMcpError):
    code = "read_only"


class RegistryCorruptError(ModelMcpError):
    code = "registry_corrupt"


class StorageError(ModelMcpError):
    code = "storage_error"


def all_error_classes() -> list[type[ModelMcpError]]:
    """Every concrete error class, for the test that checks each has a code."""
    found: list[type[ModelMcpError]] = []
    pending: list[type[ModelMcpError]] = [ModelMcpError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
