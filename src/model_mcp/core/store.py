"""The home folder: where each thing lives, atomic writes, the cross-process lock, staging.

Layout under the home (the contract fixes the first two; the rest is ours, see the README):

    registry.json            the registry (source of truth for every version's state)
    registry.json.lock       the lock file; never replaced, so every process locks the same inode
    models/<version>/        one extracted package per version; never changed after import
    reports/<version>.json   the latest validation report of each version
    history.jsonl            the append-only audit trail (current segment; see core/history.py)
    history-<n>.jsonl        its older segments; history-index.jsonl, history.lock
    staging/                 imports in progress; anything here at start is a leftover and removed
    backups/                 the old-format registry kept after migration, damaged registries

With a shared artifact folder (MODEL_MCP_ARTIFACT_ROOT, for replicas on one database), `models/`,
`reports/` and `staging/` are that folder's, beside its own lock file `artifacts.lock` (so a rename
into models/ and the journals that guard it stay on one filesystem, under one lock for every
replica); the home keeps `package-cache/` (the checked local copies each replica loads from) and
its own files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import hashlib
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_mcp.core.errors import InvalidVersionError, StorageError

VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
_TMP_PREFIX = ".tmp-"


def check_version_name(version: Any) -> str:
    """The contract's version rule; every version that becomes a path passes here first."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        shown = repr(version)[:80]
        raise InvalidVersionError(
            f"The version {shown} is not valid: use 1 to 64 ASCII letters, digits, '.', '_' or '-', "
            "not starting with '.'."
        )
    return version


# Names Windows reserves for devices, with or without an extension ("CON", "con.txt").
_RESERVED_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\.|$)", re.IGNORECASE)


def check_new_version_name(version: Any) -> str:
    """The rule for a version being created (import, discovery, training service): the contract's
    characters, and nothing a shell, Windows or a reader would misread: no leading `-` (an option
    to `model-mcp deploy`), no reserved device name (`CON`, `nul.1`, `COM1`), no `..`.

    Lookups keep the plain `check_version_name`, so a version registered before this rule can
    still be read, deployed and deleted.
    """
    check_version_name(version)
    problem = None
    if version.startswith("-"):
        problem = "it starts with '-', which command lines read as an option"
    elif _RESERVED_DEVICE.match(version):
        problem = "it is a device name Windows reserves (CON, PRN, AUX, NUL, COM0-9, LPT0-9)"
    elif ".." in version:
        problem = "it contains '..', which reads as a path to the parent folder"
    if problem:
        raise InvalidVersionError(f"The version {version!r} is not valid: {problem}. Give the package another version.")
    return version


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync it, `os.replace` it in, fsync the folder.

    A reader sees the old bytes or the new bytes, never a torn file; a crash leaves at most a
    `.tmp-*` file behind, which `Store.clean_leftovers` removes at start.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        fsync_dir(path.parent)
    except OSError as exc:
        raise storage_error(exc, f"writing {path.name}") from exc


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=False, default=str) + "\n").encode())


def storage_error(exc: OSError, doing: str) -> StorageError:
    """A sentence for a disk fault that names no path outside the home's own names."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "the filesystem is read-only",
    }.get(exc.errno or 0, exc.strerror or "an I/O error")
    return StorageError(f"The store could not finish {doing}: {reason}. Nothing was changed.")


class Store:
    """Paths under the home, plus the lock that serializes changes across threads and processes."""

    def __init__(self, home: Path, artifacts: Path | None = None) -> None:
        self.home = Path(home).expanduser().absolute()
        shared = Path(artifacts).expanduser().absolute() if artifacts is not None else self.home
        # Where package files, reports and staging live: the home, or the shared artifact folder.
        self.shared = shared
        self.shared_artifacts = shared != self.home
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_fd: int | None = None

    # --- paths -----------------------------------------------------------------------------
    @property
    def registry_path(self) -> Path:
        return self.home / "registry.json"

    @property
    def lock_path(self) -> Path:
        return self.shared / "artifacts.lock" if self.shared_artifacts else self.home / "registry.json.lock"

    @property
    def models_dir(self) -> Path:
        return self.shared / "models"

    @property
    def reports_dir(self) -> Path:
        return self.shared / "reports"

    @property
    def staging_dir(self) -> Path:
        return self.shared / "staging"

    @property
    def package_cache_dir(self) -> Path:
        return self.home / "package-cache"

    @property
    def coordination_dir(self) -> Path:
        """Where the one-per-deployment jobs' lock files live (background check, training watch):
        the shared folder when there is one, so that one replica of all runs each job."""
        return self.shared

    @property
    def backups_dir(self) -> Path:
        return self.home / "backups"

    @property
    def history_path(self) -> Path:
        return self.home / "history.jsonl"

    def version_dir(self, version: str) -> Path:
        return self.inside(self.models_dir, check_version_name(version))

    def report_path(self, version: str) -> Path:
        return self.inside(self.reports_dir, check_version_name(version) + ".json")

    def resolve_entry_path(self, path: str) -> Path:
        """A registry entry's `path`: relative to the home (or the shared artifact folder), or absolute
        as an old registry may have it."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.shared / candidate

    @staticmethod
    def inside(base: Path, name: str) -> Path:
        """`base/name`, refusing any name that would land outside `base` (the one path check)."""
        target = (base / name).resolve()
        base_resolved = base.resolve()
        try:
            target.relative_to(base_resolved)
        except ValueError:
            raise InvalidVersionError(f"The name {name!r} does not stay inside the store.") from None
        if target == base_resolved:
            raise InvalidVersionError(f"The name {name!r} is not a valid store name.")
        return base / name

    # --- setup -----------------------------------------------------------------------------
    def ensure(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            if not self.shared_artifacts:
                for folder in (self.models_dir, self.reports_dir, self.staging_dir):
                    folder.mkdir(parents=True, exist_ok=True)
                self.lock_path.touch(exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, "creating the home folder") from exc
        if self.shared_artifacts:
            # A shared folder this replica cannot write (mounted read-only, permissions) must not stop
            # it serving: imports then refuse with storage_error, loads read what is there.
            try:
                for folder in (self.models_dir, self.reports_dir, self.staging_dir):
                    folder.mkdir(parents=True, exist_ok=True)
                self.lock_path.touch(exist_ok=True)
            except OSError as exc:
                from model_mcp.logs import get_logger

                get_logger(__name__).warning("artifact_root_not_writable", path=str(self.shared),
                                             reason=exc.strerror or str(exc))

    def clean_leftovers(self) -> list[str]:
        """Remove what a killed process left: its staging folders and temp files of atomic writes.

        Another live process may share this home (two MCP hosts): its staging folders carry its
        pid and are kept while that process runs; temp files younger than a minute are kept too,
        since a live writer may be about to rename them. Journals are handled by the manager first.
        """
        removed: list[str] = []
        with contextlib.suppress(OSError):
            if self.package_cache_dir.is_dir():
                for child in self.package_cache_dir.glob(_TMP_PREFIX + "*"):
                    if not _owner_alive(child.name.removeprefix(_TMP_PREFIX)):
                        remove_tree(child)
                        removed.append(f"package-cache/{child.name}")
        if self.staging_dir.is_dir():
            for child in self.staging_dir.iterdir():
                if child.name.endswith(".json"):
                    continue  # journals: the manager's recovery decides, under the lock
                if _owner_alive(child.name) and not _foreign_and_old(child):
                    continue
                with contextlib.suppress(OSError):  # a shared folder this replica may not write
                    remove_tree(child)
                    removed.append(f"staging/{child.name}")
        cutoff = time.time() - 60
        for folder in (self.home, self.reports_dir, self.backups_dir):
            if folder.is_dir():
                for child in folder.glob(_TMP_PREFIX + "*"):
                    with contextlib.suppress(OSError):
                        if child.stat().st_mtime < cutoff:
                            child.unlink()
                            removed.append(child.name)
        return removed

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder under staging/ that is removed whatever happens."""
        folder = owned_temp_dir(self.staging_dir, "import", "creating a staging folder")
        try:
            yield folder
        finally:
            remove_tree(folder)

    # --- the lock --------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across threads (RLock) and processes (flock on a stable lock file); re-entrant."""
        with self._thread_lock:
            if self._lock_depth == 0:
                try:
                    self.lock_path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as exc:
                    fd = self._read_only_lock(exc)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    os.close(self._lock_fd)
                    self._lock_fd = None


    def _read_only_lock(self, exc: OSError) -> int:
        """A shared folder mounted read-only still has its lock file: flock needs no write access,
        so deploys (which write only the database) go on; anything writing files there then fails."""
        if self.shared_artifacts:
            with contextlib.suppress(OSError):
                return os.open(self.lock_path, os.O_RDONLY)
        raise storage_error(exc, "opening the lock file") from exc


_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
# A staging entry of a process on another host (a replica sharing the artifact folder) is left alone
# this long; its pid means nothing here.
FOREIGN_STAGING_MAX_AGE_S = 24 * 3600


def _foreign_and_old(path: Path) -> bool:
    parts = path.name.split("-", 2)
    host = parts[1].partition(".")[2] if len(parts) == 3 else ""
    if not host or host == _HOST_TAG:
        return False
    try:
        return time.time() - path.stat().st_mtime > FOREIGN_STAGING_MAX_AGE_S
    except OSError:
        return False


def owned_temp_dir(parent: Path, kind: str, doing: str) -> Path:
    """A new folder `<kind>-<owner>-*` under `parent` (created): `clean_leftovers` keeps it while
    its owner runs and removes it after."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{kind}-{owner_tag()}-", dir=parent))
    except OSError as exc:
        raise storage_error(exc, doing) from exc


def owner_tag() -> str:
    """`<pid>.<host tag>`: names a staging entry's owner across the replicas sharing a folder."""
    return f"{os.getpid()}.{_HOST_TAG}"


def _owner_alive(name: str) -> bool:
    """Whether a staging entry named `<kind>-<pid>[.<host tag>]-...` belongs to another process
    still running (on another host: whether it is younger than a day)."""
    parts = name.split("-", 2)
    if len(parts) < 3:
        return False
    pid_text, _, host = parts[1].partition(".")
    if not pid_text.isdigit():
        return False
    if host and host != _HOST_TAG:
        return True  # judged by age by the caller (below); never by a pid of another machine
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
