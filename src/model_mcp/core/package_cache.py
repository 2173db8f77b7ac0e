"""Each replica's local copy of the package files it loads from a shared artifact folder.

With MODEL_MCP_ARTIFACT_ROOT the package files live on a mount every replica reads (docs/scaling.md).
Nothing is loaded from there directly: a file on a shared mount can change under us (another
writer, a half-synced copy, a bad disk), and a pickle is the one file we must never read unchecked.
So before any load (deploy, rollout, validate, following another replica's deploy) the version's
files are copied into `<home>/package-cache/<version>/`, each hashed while it is copied and compared
with the sha256 recorded in the registry at import. A copy already there is hashed again before
each load (loads are rare; the hash of a model file costs milliseconds), and replaced if it differs.

A copy is built in a temp folder and renamed into place, so a process killed while copying leaves
only a `.tmp-cache-<owner>-*` folder that the next start removes (`Store.clean_leftovers`), and two
processes of one home filling the same version at once both end with one complete copy.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from model_mcp.core.errors import HashMismatchError, InvalidStateError, NotFoundError
from model_mcp.core.schemas import FileInfo
from model_mcp.core.store import Store, check_version_name, owned_temp_dir, remove_tree, storage_error
from model_mcp.core.verified_copy import copy_hashing
from model_mcp.logs import get_logger

log = get_logger(__name__)

class PackageCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.folder = store.package_cache_dir
        self._lock = threading.Lock()  # one fill at a time in this process (loads are rare)

    def verified(self, version: str, source: Path, files: dict[str, FileInfo] | None) -> Path:
        """The local folder holding exactly `files` of `version` as recorded at import, copied from
        `source` (the shared folder) when missing or different. Raises, loading nothing, when the
        shared copy does not match its record or cannot be read."""
        check_version_name(version)
        if not files:
            raise InvalidStateError(
                f"Version {version} has no sha256 recorded at import, so its files in the shared artifact folder "
                "cannot be checked before loading; import it again (or copy the home with `model-mcp migrate`, "
                "which records them).")
        target = self.store.inside(self.folder, version)
        with self._lock:
            if _matches(target, files):
                return target
            if target.exists():
                log.warning("package_cache_replaced", version=version)
                remove_tree(target)
            self._fill(version, source, files, target)
            return target

    def remove(self, version: str) -> None:
        """Drop a deleted version's copy (best effort: a leftover is only disk space)."""
        with contextlib.suppress(OSError, ValueError):
            remove_tree(self.store.inside(self.folder, check_version_name(version)))

    def _fill(self, version: str, source: Path, files: dict[str, FileInfo], target: Path) -> None:
        staging = owned_temp_dir(self.folder, ".tmp-cache", "creating the local package cache")
        try:
            for name, recorded in sorted(files.items()):
                _copy_checked(version, name, self.store.inside(source, name), self.store.inside(staging, name),
                              recorded)
            try:
                os.rename(staging, target)
            except OSError:
                if not _matches(target, files):  # not a twin process's complete copy: a real fault
                    raise
        except OSError as exc:
            raise storage_error(exc, f"copying version {version} from the shared artifact folder") from exc
        finally:
            remove_tree(staging)
        log.info("package_cache_filled", version=version, files=len(files))


def _copy_checked(version: str, name: str, source: Path, destination: Path, recorded: FileInfo) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        reader = open(source, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise NotFoundError(f"Version {version} has no {name} in the shared artifact folder; it was not loaded.") \
            from None
    with reader:
        digest, size = copy_hashing(reader, destination)
    if digest != recorded.sha256 or (recorded.size is not None and size != recorded.size):
        raise HashMismatchError(
            f"{name} of version {version} in the shared artifact folder does not match the sha256 recorded at "
            "import; it was not loaded.", data={"file": name, "version": version})


def _matches(folder: Path, files: dict[str, FileInfo]) -> bool:
    """Whether `folder` holds every recorded file with its recorded sha256 (extra files are ignored:
    nothing reads a name the record does not have)."""
    if not folder.is_dir():
        return False
    from model_mcp.core.archive import hash_file

    for name, recorded in files.items():
        try:
            digest, size = hash_file(folder / name)
        except (OSError, ValueError):
            return False
        if digest != recorded.sha256 or (recorded.size is not None and size != recorded.size):
            return False
    return True
