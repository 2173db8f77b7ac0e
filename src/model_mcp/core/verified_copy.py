"""Copying the package folders and validation reports of registered versions from one base folder to
another, every file's sha256 verified: the file half of `model-mcp migrate` (core/pg/move.py).

Both bases have a home's package layout, `models/<folder>/...` and `reports/<version>.json`: a home,
or the shared artifact folder (`MODEL_MCP_ARTIFACT_ROOT`). The rules:

- **What is copied**: the files each entry's `files` names (recorded at import), from the folder its
  `path` names (relative to the source base, or absolute as an old registry may have it). An entry
  without `files` (a very old registry) has its folder's files hashed here, and the caller records
  them in the copied entry. Files in a folder that its entry does not name are not copied (noted).
- **Where**: `models/<folder>` as the entry names it; a path that is absolute or outside `models/`
  becomes `models/<version>` (the copied entry says so).
- **Checked before anything is written**: a target file that exists must already hold the expected
  bytes (then it is skipped, so a rerun copies nothing); a target holding anything else is refused
  (`version_conflict`, naming it), nothing overwritten.
- **Copying**: a missing folder is built under a temporary name inside the target's `models/`, every
  file hashed while it is copied and compared with the recorded sha256 and size, fsynced, and the
  folder renamed into place once whole; files missing from an existing folder go in one by one the
  same way. A source file that does not match (`hash_mismatch`, naming it) stops the run, and what
  this run had placed is removed again: a refusal leaves the target as it was.
- **Reports** are the latest validation report of each version, rewritten by every validate: one
  that differs on the target is replaced (atomically, verified by reading it back), as the copied
  registry entry replaces the earlier copy's.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from model_mcp.core.archive import hash_file
from model_mcp.core.errors import HashMismatchError, InvalidStateError, VersionConflictError
from model_mcp.core.package import list_package_files
from model_mcp.core.schemas import FileInfo, RegistryEntry
from model_mcp.core.store import (
    _owner_alive,
    atomic_write_bytes,
    check_version_name,
    fsync_dir,
    owner_tag,
    remove_tree,
    storage_error,
)

_CHUNK = 1 << 20
# `.migrate-<pid>.<host tag>-<token>`: a folder or file being copied, named with its owner (store.py's
# owner_tag) so that what a killed run left is recognised and removed by the next run on that host.
_TMP = ".migrate"


@dataclass
class FileTally:
    files_copied: int = 0
    files_skipped: int = 0  # already on the target with the expected sha256
    bytes_copied: int = 0
    reports_copied: int = 0
    reports_skipped: int = 0
    reports_replaced: int = 0
    files_recorded: list[str] = field(default_factory=list)  # versions whose `files` were hashed here
    paths_rewritten: list[str] = field(default_factory=list)  # versions whose path became models/<version>
    notes: list[str] = field(default_factory=list)

    @property
    def files_verified(self) -> int:
        return self.files_copied + self.files_skipped


@dataclass
class PackagePlan:
    version: str
    source: Path  # the folder read from
    shown: str  # the source as the entry names it, for sentences
    target_path: str  # the entry's path on the target side: models/<folder>
    expected: dict[str, FileInfo]  # name -> sha256 and size the copy must have
    recorded: bool  # expected came from the entry's `files` (else hashed here)


def target_path(entry: RegistryEntry) -> str:
    """The entry's path on the target side: as it is when it names a folder under models/, else
    models/<version> (absolute paths of old registries, folders elsewhere in the home)."""
    path = PurePosixPath(entry.path.replace("\\", "/"))
    parts = path.parts
    if not path.is_absolute() and len(parts) >= 2 and parts[0] == "models" and ".." not in parts:
        return path.as_posix()
    return f"models/{check_version_name(entry.version)}"


def plan_packages(entries: dict[str, RegistryEntry], source_base: Path, tally: FileTally) -> list[PackagePlan]:
    """What to copy for each entry, its source files hashed where the entry records none."""
    plans: list[PackagePlan] = []
    targets: dict[str, PackagePlan] = {}
    for version, entry in entries.items():
        source = Path(entry.path) if Path(entry.path).is_absolute() else source_base / entry.path
        target = target_path(entry)
        if not source.is_dir():
            raise HashMismatchError(f"Version {version}'s package folder {entry.path} is missing from the source. "
                                    "Nothing was copied: restore the folder from a backup, or delete the version, "
                                    "then rerun.")
        if entry.files:
            expected = {name: FileInfo(sha256=info.sha256, size=info.size) for name, info in entry.files.items()}
            recorded = True
        else:
            expected = {}
            for name in list_package_files(source):
                sha256, size = hash_file(source / name)
                expected[name] = FileInfo(sha256=sha256, size=size)
            recorded = False
            tally.files_recorded.append(version)
        for name in expected:
            _check_name(version, name)
        extra = sorted(set(list_package_files(source)) - set(expected)) if recorded else []
        if extra:
            tally.notes.append(f"{version}: {len(extra)} file(s) in its folder that its entry does not record "
                               f"were not copied ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})")
        if target != entry.path:
            tally.paths_rewritten.append(version)
        plan = PackagePlan(version=version, source=source, shown=entry.path.rstrip("/"), target_path=target,
                           expected=expected, recorded=recorded)
        other = targets.get(target)
        if other is not None and other.source.resolve() != source.resolve():
            raise InvalidStateError(f"Versions {other.version} and {version} would both be copied to {target} "
                                    "from different folders. Nothing was copied: delete one of them, then rerun.")
        targets[target] = plan
        plans.append(plan)
    return plans


def _check_name(version: str, name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts or "\\" in name:
        raise InvalidStateError(f"Version {version}'s entry records a file {name!r} outside its folder. "
                                "Nothing was copied.")


def copy_packages(plans: list[PackagePlan], target_base: Path, tally: FileTally) -> None:
    """Check every target, then copy what is missing; a failure removes what this run placed."""
    models = target_base / "models"
    try:
        models.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, "creating the target's models folder") from exc
    _clean_leftovers(models)
    work: list[tuple[PackagePlan, Path, list[str] | None]] = []  # (plan, folder, missing names; None: whole)
    seen: set[str] = set()
    for plan in plans:
        if plan.target_path in seen:
            continue  # two entries naming one folder: copied once
        seen.add(plan.target_path)
        folder = target_base / plan.target_path
        missing = _check_target(plan, folder)
        tally.files_skipped += len(plan.expected) - (len(plan.expected) if missing is None else len(missing))
        if missing is None or missing:
            work.append((plan, folder, missing))
    placed: list[Path] = []
    try:
        for plan, folder, missing in work:
            if missing is None:
                _copy_folder(plan, folder, models, tally, placed)
            else:
                for name in missing:
                    _copy_one(plan, name, folder, tally, placed)
    except BaseException:
        for path in reversed(placed):
            remove_tree(path)
        raise


def _check_target(plan: PackagePlan, folder: Path) -> list[str] | None:
    """None when the folder does not exist (copy it whole); else the names it lacks. Raises when it
    holds anything but the expected bytes."""
    if not folder.exists() and not folder.is_symlink():
        return None
    if folder.is_symlink() or not folder.is_dir():
        raise VersionConflictError(f"The target already has {plan.target_path}, and it is not a folder. Nothing "
                                   "was copied: move it away, then rerun.")
    present = set()
    for name in list_package_files(folder):
        if _leftover(PurePosixPath(name).name):
            remove_tree(folder / name)  # a file a killed run was copying in
        else:
            present.add(name)
    stray = sorted(present - set(plan.expected))
    if stray:
        raise VersionConflictError(f"The target's {plan.target_path} holds {stray[0]}, which version "
                                   f"{plan.version}'s package does not. Nothing was copied or overwritten: it is "
                                   "another package's folder, or a damaged copy; move it away, then rerun.")
    missing = []
    for name, info in plan.expected.items():
        if name not in present:
            missing.append(name)
            continue
        sha256, size = hash_file(folder / name)
        if sha256 != info.sha256 or size != info.size:
            raise VersionConflictError(f"The target's {plan.target_path}/{name} already exists with other content "
                                       f"than version {plan.version}'s. Nothing was copied or overwritten: move it "
                                       "away (or delete that version where it came from), then rerun.")
    return missing


def _copy_folder(plan: PackagePlan, folder: Path, models: Path, tally: FileTally, placed: list[Path]) -> None:
    tmp = models / _tmp_name()
    try:
        tmp.mkdir()
        for name in plan.expected:
            _copy_file(plan, name, tmp / name, tally)
        _fsync_tree(tmp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, folder)  # refused (ENOTEMPTY) if another process made the folder meanwhile
        placed.append(folder)
        fsync_dir(folder.parent)
    except OSError as exc:
        raise storage_error(exc, f"copying {plan.target_path}") from exc
    finally:
        remove_tree(tmp)


def _copy_one(plan: PackagePlan, name: str, folder: Path, tally: FileTally, placed: list[Path]) -> None:
    final = folder / name
    tmp = final.with_name(_tmp_name())
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _copy_file(plan, name, tmp, tally)
        if final.exists():
            raise VersionConflictError(f"{plan.target_path}/{name} appeared on the target while it was copied. "
                                       "Nothing of this run was kept; rerun.")
        os.rename(tmp, final)
        placed.append(final)
        fsync_dir(final.parent)
    except OSError as exc:
        raise storage_error(exc, f"copying {plan.target_path}/{name}") from exc
    finally:
        remove_tree(tmp)


def _copy_file(plan: PackagePlan, name: str, dest: Path, tally: FileTally) -> None:
    """Copy one file, hashing the bytes as they go, fsynced; refused unless they are the expected ones."""
    info = plan.expected[name]
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(plan.source / name, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise HashMismatchError(f"{plan.shown}/{name} (version {plan.version}) is missing from the source. Nothing "
                                "was copied: restore it from a backup, or delete the version, then rerun.") from None
    with os.fdopen(fd, "rb") as reader:
        digest, size = copy_hashing(reader, dest, "xb")
    if digest != info.sha256 or size != info.size:
        what = "recorded at import" if plan.recorded else "it had when this run hashed it (it changed meanwhile)"
        raise HashMismatchError(f"{plan.shown}/{name} (version {plan.version}) does not match the sha256 {what}. "
                                "Nothing was copied: restore it from a backup, or delete the version, then rerun.")
    tally.files_copied += 1
    tally.bytes_copied += size


def copy_hashing(reader: BinaryIO, dest: Path, mode: str = "wb") -> tuple[str, int]:
    """Copy `reader` to `dest`, fsynced; the sha256 and size of the bytes as they went (so the bytes
    checked are the bytes written, not a second read that could differ)."""
    digest, size = hashlib.sha256(), 0
    with open(dest, mode) as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest(), size


def copy_reports(versions: list[str], source_dir: Path, target_dir: Path, tally: FileTally) -> None:
    """The validation report of each version the source has: copied, skipped when identical,
    replaced when different (reports are rewritten by validate); read back and compared."""
    for version in versions:
        name = check_version_name(version) + ".json"
        source = source_dir / name
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise storage_error(exc, f"reading reports/{name}") from exc
        target = target_dir / name
        try:
            held: bytes | None = target.read_bytes()
        except FileNotFoundError:
            held = None
        except OSError as exc:
            raise storage_error(exc, f"reading the target's reports/{name}") from exc
        if held == data:
            tally.reports_skipped += 1
            continue
        atomic_write_bytes(target, data)
        if hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(data).digest():
            raise HashMismatchError(f"reports/{name} reads back other bytes than were written: the target "
                                    "storage is faulty. Rerun once it is repaired.")
        if held is None:
            tally.reports_copied += 1
        else:
            tally.reports_replaced += 1


def _fsync_tree(root: Path) -> None:
    for folder, _, _ in os.walk(root):
        fsync_dir(Path(folder))


def _tmp_name() -> str:
    return f"{_TMP}-{owner_tag()}-{secrets.token_hex(4)}"


def _leftover(name: str) -> bool:
    """A temporary name of a run that no longer runs."""
    return name.startswith(_TMP + "-") and not _owner_alive(name)


def _clean_leftovers(models: Path) -> None:
    for child in models.glob(f"{_TMP}-*"):
        if _leftover(child.name):
            remove_tree(child)


