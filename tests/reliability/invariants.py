"""What must hold in a home after any crash and restart: the store's invariants, checked from disk."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model_mcp.core.manager import ModelManager
from model_mcp.core.package import list_package_files
from model_mcp.core.registry import Snapshot
from model_mcp.core.schemas import RegistryEntry
from model_mcp.settings import Settings

STATUSES = {"imported", "available", "deployed", "failed", "archived"}


@dataclass
class Leftovers:
    """What a killed process left in the home, seen before any restart."""

    staging: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)

    @property
    def journals(self) -> list[str]:
        return [name for name in self.staging if name.endswith(".json")]


def leftovers(home: Path) -> Leftovers:
    staging = home / "staging"
    found = Leftovers(staging=sorted(p.name for p in staging.iterdir()) if staging.is_dir() else [])
    for folder in (home, home / "reports", home / "backups"):
        if folder.is_dir():
            found.temp_files += sorted(str(p.relative_to(home)) for p in folder.glob(".tmp-*"))
    return found


# sha256 by (path, inode, size, mtime, ctime): a file whose stat did not change since an earlier
# check is not hashed again (any write changes its mtime and ctime), so that checking a home after
# each of dozens of kills stays cheap.
_HASHES: dict[tuple[str, int, int, int, int], str] = {}


def sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _HASHES:
        _HASHES[key] = _sha256(path)
    return _HASHES[key]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_store(home: Path, *, after_start: bool = True) -> Snapshot:
    """Assert every invariant of a home a server has started on; return the registry.

    - registry.json parses;
    - every entry's folder exists and holds exactly the files its `files` map lists, each with that
      sha256 and size; every entry has a status of the contract and a validation report;
    - no folder under models/ lacks an entry (no half-imported version is visible);
    - (after a start) staging/ is empty, and no temp file of an atomic write over a minute old is left;
    - at most one version is deployed per model name, and each loads and scores a row.
    """
    manager = ModelManager(Settings(home=home))  # not started: observe what the last start left
    snapshot = manager.registry.read()
    for version, entry in snapshot.entries.items():
        assert entry.version == version
        assert entry.status in STATUSES, f"{version}: status {entry.status!r}"
        folder = manager.store.resolve_entry_path(entry.path)
        assert folder.is_dir(), f"{version}: its folder {entry.path} is missing"
        files = getattr(entry, "files", None)
        assert isinstance(files, dict) and files, f"{version}: the entry has no files map"
        assert sorted(list_package_files(folder)) == sorted(files), f"{version}: files on disk differ from the entry"
        for name, info in files.items():
            path = folder / name
            assert path.stat().st_size == info.size, f"{version}/{name}: size changed"
            assert sha256(path) == info.sha256, f"{version}/{name}: sha256 changed"
        assert manager.load_report(version) is not None, f"{version}: no validation report"
    models = manager.store.models_dir
    on_disk = sorted(p.name for p in models.iterdir()) if models.is_dir() else []
    registered = sorted(Path(e.path).name for e in snapshot.entries.values())
    assert on_disk == registered, f"folders under models/ without an entry: {sorted(set(on_disk) - set(registered))}"
    if after_start:
        left = leftovers(home)
        assert left.staging == [], f"staging leftovers after a start: {left.staging}"
        # Temp files of atomic writes are never read; a start removes those over a minute old (a
        # younger one might belong to a live writer in another process), so a fresh one may stay.
        for name in left.temp_files:
            age = time.time() - (home / name).stat().st_mtime
            assert age < 60, f"a temp file {age:.0f} s old survived a start: {name}"
    deployed = [e for e in snapshot.entries.values() if e.status == "deployed"]
    names = [e.model_name for e in deployed]
    assert len(names) == len(set(names)), f"several versions of one model deployed: {names}"
    for entry in deployed:
        check_loads(manager, entry)
    return snapshot


_LOADED: set[tuple[str, str]] = set()


def check_loads(manager: ModelManager, entry: RegistryEntry) -> None:
    """The deployed version loads as a server would load it at start, and scores a row.

    Done once per (version, model.joblib sha256): loading the same bytes again proves nothing new.
    """
    key = (entry.version, sha256(manager.store.resolve_entry_path(entry.path) / "model.joblib"))
    if key in _LOADED:
        return
    resident = manager._load_resident(entry)
    assert resident.version == entry.version
    labels, scores = resident.score_and_label(np.zeros((1, len(resident.feature_names))))
    assert labels.shape == (1,) and scores is not None and np.isfinite(scores).all()
    _LOADED.add(key)
