"""The training service's folder (docs/operations.md): find packages, judge them, never import half of one.

The training service drops packages into one folder, either as a folder with the package files (docs/package-format.md)
or as a `.zip`, at most two levels down: `<dir>/<package>` or `<dir>/<group>/<package>`. This
module only *reads* that folder; imports go through the manager's normal import path
(`ModelManager.import_zip` for a `.zip`, `ModelManager.import_folder` for a folder), which runs
every check again on its own copy.

What is a package, and what is not:

- A folder is a package when it directly holds `deployment_manifest.json`, `metadata.json` or
  `model.joblib` (as any kind of entry: a package whose manifest is missing is still reported,
  as incomplete). At depth 1 any other folder is a group and is listed once more; at depth 2 it
  is ignored. Nothing deeper is looked at.
- A regular file whose name ends in `.zip` (any case) is a package, at depth 1 or 2. Other files
  are ignored.
- Names starting with `.` are skipped at both levels (temporary files of a writer, `.DS_Store`).

Links are never followed, at any level. A link met where a package or a group could be (depth 1
or 2) is reported as a package that is not complete, with the problem "is a symbolic link; links
are not followed", and nothing behind it is read: not even whether it points inside the training
folder, since a link into the folder would only list the same package twice. Reporting it rather
than skipping it tells the operator why a package they expect is not offered. Inside a folder
package, a file the manifest lists (or a required file) that is a link is a problem; an unlisted
link is ignored, as `import_folder` drops it too. The configured training folder itself may be a
link: the operator named it.

Complete means "as far as a scan can tell, importing it now would not take a half-written
package", and it is `True` exactly when `problems` is empty:

- folder: `deployment_manifest.json` is readable, every file it lists is a regular file with the
  listed size, the required files are there, and metadata and version parse (docs/package-format.md rules).
  A listed file shorter than listed reads "(still being written?)".
- zip: it opens as a ZIP (a file still being written has no end record yet: "not a readable ZIP
  yet (still being written?)"), holds the required files at its root or inside one top folder,
  its metadata and version parse, and every member the manifest lists has the listed size.

A scan hashes nothing but the two small JSON files: the import verifies every hash after copying
into staging, so a file that changes between this scan and the copy fails with `hash_mismatch`
rather than being imported torn. `stable_copy_check` re-scans one package right before import and
also refuses one whose files changed (size, mtime or inode) since the scan the caller acted on.
What a scan cannot catch: a manifest that lists neither sha256 nor size for a file which is
written in place at its final size; the import then has nothing to verify it against.

A single bad package never raises: its trouble becomes `problems`. Only the folder as a whole
raises `TrainingServiceUnavailableError` (not configured, missing, not a folder, unreadable).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import time
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from model_mcp.core.archive import describe_mode, read_end_record
from model_mcp.core.errors import (
    InvalidManifestError,
    InvalidMetadataError,
    InvalidVersionError,
    TrainingServiceUnavailableError,
)
from model_mcp.core.package import MAX_JSON_BYTES, REQUIRED_FILES, resolve_version
from model_mcp.core.schemas import Manifest, Metadata, parse_manifest, parse_metadata, parse_timestamp
from model_mcp.core.store import check_new_version_name

MIB = 1024 * 1024
DEFAULT_MAX_ZIP_BYTES = 512 * MIB  # the contract's upload limit: a bigger zip would fail its import
DEFAULT_MAX_MEMBERS = 100  # the contract's member limit, checked before zipfile parses the directory
MAX_PACKAGE_ENTRIES = 10_000  # entries walked inside one folder package before giving up on it
MAX_PROBLEMS_SHOWN = 10

MANIFEST = "deployment_manifest.json"
METADATA = "metadata.json"
MARKERS = frozenset(REQUIRED_FILES)
STILL_WRITING = "(still being written?)"
NOT_A_ZIP_YET = "It is not a readable ZIP yet (still being written?)"
LINK_PROBLEM = "is a symbolic link; links are not followed"

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_ZIP_JUNK_TOP = "__MACOSX"
_ZIP_JUNK_NAME = ".DS_Store"


@dataclass
class TrainingPackage:
    """One package found in the training folder, as the scan judged it."""

    location: str  # relative to the training folder, '/'-separated: "nightly/pkg.zip"
    path: Path  # absolute
    kind: str  # "zip" | "folder"
    version: str | None  # the version an import would give it; None when it cannot be told
    model_name: str | None
    created_at: str | None  # as metadata.json gives it
    complete: bool  # True exactly when `problems` is empty
    problems: list[str]
    # name -> sha256 of every file the import would register, taken from the manifest's claims
    # (and the manifest's own hash); None unless the manifest covers every file. Compare with a
    # registry entry's `files` to tell "already imported" without hashing large files.
    fingerprint: dict[str, str] | None = None
    # What the files looked like on disk (names, sizes, mtimes, inodes): stable_copy_check compares it.
    signature: tuple | None = field(default=None, repr=False)

    @property
    def created(self) -> datetime | None:
        """`created_at` as an aware UTC datetime, or None when absent or unreadable."""
        if self.created_at is None:
            return None
        try:
            return parse_timestamp(self.created_at)
        except (ValueError, OverflowError):
            return None

    def to_dict(self, already_imported: bool) -> dict[str, Any]:
        """The contract's fields of one `scan_training_service` package."""
        return {
            "version": self.version,
            "model_name": self.model_name,
            "created_at": self.created_at,
            "location": self.location,
            "kind": self.kind,
            "complete": self.complete,
            "already_imported": already_imported,
            "problems": list(self.problems),
        }


class _Problem(Exception):
    """A sentence about one package; caught per package so one bad package never stops a scan."""


# --------------------------------------------------------------------------- the folder


def scan_training_dir(
    root: Path | None,
    *,
    max_zip_bytes: int = DEFAULT_MAX_ZIP_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> list[TrainingPackage]:
    """Every package in the training folder, newest `created_at` first (unknown `created_at` last,
    then by location). Raises TrainingServiceUnavailableError when the folder is not configured,
    missing, not a folder or cannot be listed."""
    if root is None:
        raise TrainingServiceUnavailableError(
            "No training directory is configured: start the server with --training-dir or MODEL_MCP_TRAINING_DIR."
        )
    root = Path(root)
    try:
        top = _list_dir(root)
    except OSError as exc:
        raise TrainingServiceUnavailableError(_unavailable_reason(root, exc)) from exc

    limits = {"max_zip_bytes": max_zip_bytes, "max_members": max_members}
    found: list[TrainingPackage] = []
    for entry in top:
        if entry.name.startswith("."):
            continue
        location = _shown(entry.name)
        if _is_real_dir(entry):
            try:
                children = _list_dir(Path(entry.path))
            except OSError as exc:
                found.append(_unreadable(Path(entry.path), location, exc))
                continue
            if not _holds_marker(children):
                found.extend(_scan_group(Path(entry.path), location, children, limits))
                continue
        found.extend(_visit(entry, location, limits))
    return sort_newest_first(found)


def sort_newest_first(packages: list[TrainingPackage]) -> list[TrainingPackage]:
    """Newest `created_at` first; unknown or unreadable `created_at` last; ties by location."""

    def key(pkg: TrainingPackage) -> tuple[int, float, str]:
        created = pkg.created
        return (0, -created.timestamp(), pkg.location) if created else (1, 0.0, pkg.location)

    return sorted(packages, key=key)


def latest_complete(packages: list[TrainingPackage]) -> TrainingPackage | None:
    """What `import_latest` takes: the newest complete package (the caller skips it when it is
    already imported; an older one is then not taken instead)."""
    for pkg in sort_newest_first(packages):
        if pkg.complete:
            return pkg
    return None


def _scan_group(group: Path, group_location: str, children: list[os.DirEntry], limits: dict) -> list[TrainingPackage]:
    """Depth 2: packages inside a group folder; folders that are not packages are ignored here."""
    found: list[TrainingPackage] = []
    for entry in children:
        if entry.name.startswith("."):
            continue
        found.extend(_visit(entry, f"{group_location}/{_shown(entry.name)}", limits, group_level=False))
    return found


def _visit(entry: os.DirEntry, location: str, limits: dict, *, group_level: bool = True) -> list[TrainingPackage]:
    """The package at `entry` (0 or 1 of them). A folder at depth 2 without markers is nothing."""
    path = Path(entry.path)
    is_zip_name = entry.name.lower().endswith(".zip")
    if entry.is_symlink():
        return [_link(path, location, "zip" if is_zip_name else "folder")]
    if _is_real_dir(entry):
        if not group_level:
            try:
                if not _holds_marker(_list_dir(path)):
                    return []
            except OSError as exc:
                return [_unreadable(path, location, exc)]
        return [scan_package(path, location, "folder", **limits)]
    if is_zip_name:
        return [scan_package(path, location, "zip", **limits)]
    return []


def scan_package(
    path: Path,
    location: str,
    kind: str,
    *,
    max_zip_bytes: int = DEFAULT_MAX_ZIP_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> TrainingPackage:
    """Judge one package at `path` (a folder or a .zip, as `kind` says). Never raises for the package."""
    pkg = TrainingPackage(location=location, path=path, kind=kind, version=None, model_name=None,
                          created_at=None, complete=False, problems=[])
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return _with_problems(pkg, ["It no longer exists."])
    except OSError as exc:
        return _with_problems(pkg, [f"It cannot be read ({exc.strerror or exc})."])
    if stat.S_ISLNK(st.st_mode):
        return _link(path, location, kind)
    try:
        if kind == "zip":
            return _scan_zip(pkg, st, max_zip_bytes=max_zip_bytes, max_members=max_members)
        if not stat.S_ISDIR(st.st_mode):
            return _with_problems(pkg, ["It is no longer a folder."])
        return _scan_folder(pkg)
    except _Problem as exc:
        return _with_problems(pkg, [str(exc)])
    except Exception as exc:  # a safety net: one package must never break the scan of the others
        return _with_problems(pkg, [f"It could not be scanned ({type(exc).__name__}: {str(exc)[:200]})"])


def stable_copy_check(
    pkg: TrainingPackage,
    *,
    settle_seconds: float = 0.0,
    max_zip_bytes: int = DEFAULT_MAX_ZIP_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> TrainingPackage:
    """Re-scan one package right before import; import it only if the answer is still complete.

    The answer is incomplete when the package changed since `pkg` was scanned (any file's size,
    mtime or inode), or, with `settle_seconds`, during that pause: a package in motion is left
    for a later scan. After copying into staging the import re-verifies every hash, so a file
    that changes during the copy still fails with `hash_mismatch` instead of being imported torn.
    """
    limits = {"max_zip_bytes": max_zip_bytes, "max_members": max_members}
    fresh = scan_package(pkg.path, pkg.location, pkg.kind, **limits)
    if fresh.complete and pkg.signature is not None and fresh.signature != pkg.signature:
        return _with_problems(fresh, [f"It changed since it was scanned {STILL_WRITING}; scan again."])
    if fresh.complete and settle_seconds > 0:
        time.sleep(settle_seconds)
        again = scan_package(pkg.path, pkg.location, pkg.kind, **limits)
        if not again.complete or again.signature != fresh.signature:
            extra = [] if again.problems else [f"It changed within {settle_seconds:g} s {STILL_WRITING}"]
            return _with_problems(again, extra)
        return again
    return fresh


# --------------------------------------------------------------------------- folder packages


def _scan_folder(pkg: TrainingPackage) -> TrainingPackage:
    files, links, others, walk_problems = _walk(pkg.path)
    problems: list[str] = list(walk_problems)
    reported: set[str] = set()

    manifest: Manifest | None = None
    manifest_raw: bytes | None = None
    if MANIFEST in files:
        try:
            manifest_raw = _read_small(pkg.path / MANIFEST)
            manifest = parse_manifest(manifest_raw)
        except (_Problem, InvalidManifestError) as exc:
            problems.append(f"{exc} {STILL_WRITING}" if _looks_truncated(exc) else str(exc))
    else:
        problems.append(_absent(MANIFEST, links, others))
    reported.add(MANIFEST)

    if manifest is not None:
        for name, expected in manifest.files.items():
            reported.add(name)
            if not _plain_name(name):
                problems.append(f"The manifest lists {name!r}, which is not a plain relative path inside the package.")
                continue
            st = files.get(name)
            if st is None:
                problems.append(_absent(name, links, others))
            elif expected.size is not None and st.st_size != expected.size:
                problems.append(_size_problem(name, st.st_size, expected.size, archive=False))
    for name in REQUIRED_FILES:
        if name not in files and name not in reported:
            problems.append(_absent(name, links, others))

    metadata = _read_metadata(pkg, files, problems)
    _resolve(pkg, metadata, manifest, problems)
    pkg.signature = tuple(sorted((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, st in files.items()))
    if manifest is not None and manifest_raw is not None and not problems:
        pkg.fingerprint = _fingerprint(manifest, manifest_raw, set(files))
    return _with_problems(pkg, problems)


def _walk(root: Path) -> tuple[dict[str, os.stat_result], set[str], set[str], list[str]]:
    """Every entry under a package folder, never following links: regular files with their lstat,
    links, other non-folders, and problems (an unreadable subfolder, too many entries)."""
    files: dict[str, os.stat_result] = {}
    links: set[str] = set()
    others: set[str] = set()
    problems: list[str] = []
    pending: list[tuple[Path, str]] = [(root, "")]
    count = 0
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = _list_dir(folder)
        except OSError as exc:
            where = f"The subfolder {prefix.rstrip('/')!r}" if prefix else "The package folder"
            problems.append(f"{where} cannot be listed ({exc.strerror or exc}).")
            continue
        for entry in entries:
            count += 1
            if count > MAX_PACKAGE_ENTRIES:
                problems.append(
                    f"The package folder holds more than {MAX_PACKAGE_ENTRIES} entries; it was not read further."
                )
                return files, links, others, problems
            rel = prefix + entry.name
            try:
                if entry.is_symlink():
                    links.add(rel)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    files[rel] = entry.stat(follow_symlinks=False)
                else:
                    others.add(rel)
            except FileNotFoundError:
                continue  # removed while we looked: as if never there
    return files, links, others, problems


def _read_metadata(pkg: TrainingPackage, files: dict[str, os.stat_result], problems: list[str]) -> Metadata | None:
    """Parse metadata.json when present; on failure keep what can be shown (name, created_at)."""
    if METADATA not in files:
        return None
    try:
        raw = _read_small(pkg.path / METADATA)
    except _Problem as exc:
        problems.append(str(exc))
        return None
    return _parse_metadata(pkg, raw, problems)


# --------------------------------------------------------------------------- zip packages


def _scan_zip(pkg: TrainingPackage, st: os.stat_result, *, max_zip_bytes: int, max_members: int) -> TrainingPackage:
    if not stat.S_ISREG(st.st_mode):
        raise _Problem(f"It is {describe_mode(st.st_mode)}, not a regular .zip file.")
    if st.st_size > max_zip_bytes:
        raise _Problem(f"It is {st.st_size} bytes; the upload limit is {max_zip_bytes} bytes.")
    pkg.signature = (st.st_size, st.st_mtime_ns, st.st_ino)
    fd = _open_regular(pkg.path)
    with os.fdopen(fd, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        # Read before zipfile parses the whole directory, so a huge one costs the scan neither time
        # nor memory; no end record is how a ZIP still being written looks.
        end = read_end_record(fp, size)
        if end is None:
            raise _Problem(NOT_A_ZIP_YET)
        count, directory_bytes = end.entries, end.directory_size
        if count > max_members:
            raise _Problem(f"It holds {count} members; the limit is {max_members}.")
        if directory_bytes > max_members * _DIRECTORY_BYTES_PER_MEMBER:
            raise _Problem(f"Its central directory is {directory_bytes} bytes, too large for {max_members} members.")
        try:
            archive = zipfile.ZipFile(fp)
        except UnicodeDecodeError as exc:
            raise _Problem("A member's name is flagged as UTF-8 but is not valid UTF-8") from exc
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, struct.error, NotImplementedError) as exc:
            raise _Problem(NOT_A_ZIP_YET) from exc
        with archive:
            return _judge_zip(pkg, archive)


def _judge_zip(pkg: TrainingPackage, archive: zipfile.ZipFile) -> TrainingPackage:
    members, problems = _zip_members(archive)
    missing = [name for name in REQUIRED_FILES if name not in members]
    if missing:
        problems.append(f"The archive lacks {', '.join(missing)}.")

    manifest: Manifest | None = None
    manifest_raw: bytes | None = None
    if MANIFEST in members:
        try:
            manifest_raw = _read_member(archive, members[MANIFEST], MANIFEST)
            manifest = parse_manifest(manifest_raw)
        except (_Problem, InvalidManifestError) as exc:
            problems.append(str(exc))
    if manifest is not None:
        for name, expected in manifest.files.items():
            info = members.get(name)
            if info is None:
                if name not in missing:
                    problems.append(f"The manifest lists {name}, but the archive has no such file.")
            elif expected.size is not None and info.file_size != expected.size:
                problems.append(_size_problem(name, info.file_size, expected.size, archive=True))

    metadata: Metadata | None = None
    if METADATA in members:
        try:
            metadata = _parse_metadata(pkg, _read_member(archive, members[METADATA], METADATA), problems)
        except _Problem as exc:
            problems.append(str(exc))
    _resolve(pkg, metadata, manifest, problems)
    if manifest is not None and manifest_raw is not None and not problems:
        pkg.fingerprint = _fingerprint(manifest, manifest_raw, set(members))
    return _with_problems(pkg, problems)


def _zip_members(archive: zipfile.ZipFile) -> tuple[dict[str, zipfile.ZipInfo], list[str]]:
    """The archive's files by package name: junk skipped, one shared top folder stripped (as the
    import does). A name held twice is a problem (the import refuses it as unsafe)."""
    chosen: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
    for info in archive.infolist():
        name = info.filename
        if name.endswith("/"):
            continue
        parts = tuple(name.split("/"))
        if parts[0] == _ZIP_JUNK_TOP or parts[-1] == _ZIP_JUNK_NAME:
            continue
        chosen.append((parts, info))
    tops = {parts[0] for parts, _ in chosen}
    strip = 1 if chosen and len(tops) == 1 and all(len(parts) > 1 for parts, _ in chosen) else 0
    members: dict[str, zipfile.ZipInfo] = {}
    problems: list[str] = []
    for parts, info in chosen:
        name = "/".join(parts[strip:])
        if name in members:
            problems.append(f"The archive holds {name} twice.")
        members[name] = info
    return members, problems


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    """A small member's bytes, bounded whatever the archive declares; zipfile checks its CRC."""
    if info.file_size > MAX_JSON_BYTES:
        raise _Problem(f"{name} is larger than {MAX_JSON_BYTES // MIB} MiB.")
    try:
        with archive.open(info) as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
    except Exception as exc:  # corrupt data, encryption, unknown method, CRC: all mean unreadable
        raise _Problem(f"{name} cannot be read from the archive ({type(exc).__name__}: {str(exc)[:160]}).") from exc
    if len(data) > MAX_JSON_BYTES:
        raise _Problem(f"{name} is larger than {MAX_JSON_BYTES // MIB} MiB.")
    return data


# Per member, room for the 46-byte header, a 1024-byte name (the import's limit) and 1 KiB of
# extra fields and comment: generous for real packages, and it bounds what zipfile parses.
_DIRECTORY_BYTES_PER_MEMBER = 46 + 1024 + 1024


# --------------------------------------------------------------------------- shared judging


def _parse_metadata(pkg: TrainingPackage, raw: bytes, problems: list[str]) -> Metadata | None:
    try:
        metadata = parse_metadata(raw)
    except InvalidMetadataError as exc:
        problems.append(str(exc))
        _lenient_display_fields(pkg, raw)
        return None
    pkg.model_name, pkg.created_at = metadata.model_name, metadata.created_at
    return metadata


def _lenient_display_fields(pkg: TrainingPackage, raw: bytes) -> None:
    """For a metadata.json that fails the strict rules: still show its name and time if they are strings."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return
    if isinstance(data, dict):
        name, created = data.get("model_name"), data.get("created_at")
        pkg.model_name = name if isinstance(name, str) and name else None
        pkg.created_at = created if isinstance(created, str) and created else None


def _resolve(pkg: TrainingPackage, metadata: Metadata | None, manifest: Manifest | None, problems: list[str]) -> None:
    """The version by the contract's rules; without a manifest, metadata.version alone (for display)."""
    try:
        if metadata is not None and manifest is not None:
            pkg.version = resolve_version(metadata, manifest)
        elif metadata is not None and metadata.version is not None:
            pkg.version = check_new_version_name(metadata.version)
    except (InvalidManifestError, InvalidVersionError) as exc:
        problems.append(str(exc))


def _fingerprint(manifest: Manifest, manifest_raw: bytes, names: set[str]) -> dict[str, str] | None:
    """Every file's sha256 as the import would register it, when the manifest vouches for each."""
    result = {MANIFEST: hashlib.sha256(manifest_raw).hexdigest()}
    for name in names - {MANIFEST}:
        expected = manifest.files.get(name)
        if expected is None or expected.sha256 is None:
            return None
        result[name] = expected.sha256
    return dict(sorted(result.items()))


def _size_problem(name: str, actual: int, listed: int, *, archive: bool) -> str:
    where = " in the archive" if archive else ""
    sentence = f"{name} is {actual} bytes{where}; the manifest lists {listed}"
    return f"{sentence} {STILL_WRITING}" if actual < listed and not archive else sentence + "."


def _absent(name: str, links: set[str], others: set[str]) -> str:
    if name in links:
        return f"{name} {LINK_PROBLEM}."
    if name in others:
        return f"{name} is not a regular file."
    return f"{name} is missing {STILL_WRITING}"


def _looks_truncated(exc: Exception) -> bool:
    return "not readable JSON" in str(exc)


def _plain_name(name: str) -> bool:
    """A relative '/'-separated name with no empty, '.' or '..' parts and no backslash."""
    if not name or "\\" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _with_problems(pkg: TrainingPackage, problems: list[str]) -> TrainingPackage:
    """Set problems (at most MAX_PROBLEMS_SHOWN, then a count) and `complete` from them."""
    every = list(pkg.problems) + list(problems)
    if len(every) > MAX_PROBLEMS_SHOWN:
        more = len(every) - MAX_PROBLEMS_SHOWN
        every = every[:MAX_PROBLEMS_SHOWN] + [f"... and {more} more problems."]
    every = [_sentence(text) for text in every]
    return replace(pkg, problems=every, complete=not every,
                   fingerprint=pkg.fingerprint if not every else None)


def _sentence(text: str) -> str:
    """End every problem as a sentence (file names start some of them, so no capitalizing)."""
    text = text.strip()
    return text if text.endswith((".", "?", "!", ")")) else text + "."


def _link(path: Path, location: str, kind: str) -> TrainingPackage:
    name = location.rsplit("/", 1)[-1]
    pkg = TrainingPackage(location=location, path=path, kind=kind, version=None, model_name=None,
                          created_at=None, complete=False, problems=[])
    return _with_problems(pkg, [f"{name} {LINK_PROBLEM}"])


def _unreadable(path: Path, location: str, exc: OSError) -> TrainingPackage:
    pkg = TrainingPackage(location=location, path=path, kind="folder", version=None, model_name=None,
                          created_at=None, complete=False, problems=[])
    return _with_problems(pkg, [f"The folder cannot be listed ({exc.strerror or exc})."])


# --------------------------------------------------------------------------- disk helpers


def training_dir_problem(root: Path | None) -> str | None:
    """Why a configured training folder cannot be scanned (missing, not a folder, unreadable), or None.

    The sentence scan_training_service's refusal gives; the start-up log and list_models' `warnings`
    say it too, so an operator learns of it before an agent's first scan. None when not configured.
    """
    if root is None:
        return None
    try:
        with os.scandir(root):
            return None
    except OSError as exc:
        return _unavailable_reason(Path(root), exc)


def _unavailable_reason(root: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"The training directory {str(root)!r} does not exist."
    if isinstance(exc, NotADirectoryError):
        return f"The training directory {str(root)!r} is not a folder."
    return f"The training directory {str(root)!r} cannot be read ({exc.strerror or exc})."


def _list_dir(path: Path) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda entry: entry.name)


def _is_real_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _holds_marker(children: list[os.DirEntry]) -> bool:
    return any(entry.name in MARKERS for entry in children)


def _open_regular(path: Path) -> int:
    """Open a file for reading without following a link or blocking on a FIFO; refuse non-files."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise _Problem(f"{path.name} disappeared while it was read {STILL_WRITING}") from exc
    except OSError as exc:
        if os.path.islink(path):
            raise _Problem(f"{path.name} {LINK_PROBLEM}") from exc
        raise _Problem(f"{path.name} cannot be read ({exc.strerror or exc})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _Problem(f"{path.name} is {describe_mode(mode)}, not a regular file")
    return fd


def _read_small(path: Path) -> bytes:
    """A JSON file's bytes, at most MAX_JSON_BYTES, opened without following links."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise _Problem(f"{path.name} is larger than {MAX_JSON_BYTES // MIB} MiB.")
    return data


def _shown(name: str) -> str:
    """A file name as text that survives JSON: undecodable bytes become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
