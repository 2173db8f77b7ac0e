"""registry.json: read both formats, migrate on the first write, update under the lock.

Every read goes to the file (through a cache keyed by its stat), so a change made by another
process on the same home is seen at the next call. Every write happens inside `update`, which holds
the store's cross-process lock, re-reads the file, applies the change and replaces the file
atomically. After each good write the same bytes are kept as `backups/registry.last-good.json`,
so a registry damaged later (by hand, or by a disk fault) still leaves the operator a good copy.

A registry that does not parse is never overwritten: `read` raises `RegistryCorruptError`,
changing use cases refuse, and reading use cases fall back to `read_last_good`.
"""

from __future__ import annotations

import json
import os
import time
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from model_mcp.core.errors import RegistryCorruptError
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store, atomic_write_bytes, storage_error
from model_mcp.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")
_RACY_MARGIN_NS = 100_000_000  # 100 ms: far above any filesystem's mtime granularity

# Statuses an old registry may use, mapped to the contract's; anything else becomes `imported`
# (registered, not yet validated) with the original kept in `legacy_status`.
_OLD_STATUS = {"active": "deployed", "deployed": "deployed", "inactive": "available", "available": "available",
               "ready": "available", "failed": "failed", "archived": "archived", "imported": "imported"}


def model_key(entry: RegistryEntry) -> str:
    """The serving slot of an entry: its model name (an entry without one shares the slot "")."""
    return entry.model_name or ""


@dataclass
class Snapshot:
    entries: dict[str, RegistryEntry] = field(default_factory=dict)
    fmt: str = "empty"  # "new", "old" or "empty"

    def deployed_by_model(self) -> dict[str, RegistryEntry]:
        """The deployed version of each model name (at most one per name), most recently deployed first."""
        deployed = [e for e in self.entries.values() if e.status == "deployed"]
        deployed.sort(key=lambda e: e.deployed_at or "", reverse=True)
        return {model_key(e): e for e in reversed(deployed)} if deployed else {}

    @property
    def deployed(self) -> RegistryEntry | None:
        """The most recently deployed entry: with one model, its deployed version."""
        deployed = self.deployed_by_model()
        return next(iter(reversed(deployed.values())), None)

    def deployed_of(self, model_name: str) -> RegistryEntry | None:
        return self.deployed_by_model().get(model_name)

    def get(self, version: str) -> RegistryEntry | None:
        return self.entries.get(version)


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache_key: tuple[int, ...] | None = None
        self._cache: Snapshot | None = None
        self._cache_raw: bytes | None = None
        self._cache_trusted = False
        self._deployed_memo: tuple[Snapshot, dict[str, str], dict[str, tuple[str, str | None]]] | None = None

    # --- reading -----------------------------------------------------------------------------
    def read(self) -> Snapshot:
        """A private copy of the registry as it is on disk now."""
        return _copy(self._current())

    def view(self) -> Snapshot:
        """The registry as it is on disk now, without a copy: for callers that never change it."""
        return self._current()

    def deployed_versions(self) -> dict[str, str]:
        """{model name: deployed version}, cheaply (no copy, computed once per registry state): on the
        predict path. Raises like `read`."""
        return self._memo()[1]

    def rollout_keys(self) -> dict[str, tuple[str, str | None]]:
        """{model name: (candidate version, started_at)} of the rollouts in progress; cheap like
        `deployed_versions`."""
        return self._memo()[2]

    def _memo(self) -> tuple[Snapshot, dict[str, str], dict[str, tuple[str, str | None]]]:
        snapshot = self._current()
        if self._deployed_memo is None or self._deployed_memo[0] is not snapshot:
            versions = {name: e.version for name, e in snapshot.deployed_by_model().items()}
            rollouts = {model_key(e): (e.version, (e.rollout or {}).get("started_at"))
                        for e in snapshot.entries.values() if e.rollout}
            self._deployed_memo = (snapshot, versions, rollouts)
        return self._deployed_memo

    def _current(self) -> Snapshot:
        """The parsed registry, re-read only when the file may have changed.

        A stat key (inode, mtime, size) can repeat for different content: ext4 reuses the inode
        the previous replace freed, and mtime ticks are coarse (~4 ms). As git does with its index,
        the key is trusted only when the file was already older than a safe margin when it was
        read; otherwise the bytes are read again and compared.
        """
        path = self.store.registry_path
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return Snapshot()
        with handle:
            # Stat the open file, not the path: the key then always belongs to the bytes read.
            stat = os.fstat(handle.fileno())
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size, stat.st_ctime_ns)
            if key == self._cache_key and self._cache_trusted and self._cache is not None:
                return self._cache
            raw = handle.read()
        if raw != self._cache_raw or self._cache is None:
            self._cache = parse_registry(raw)
            self._cache_raw = raw
        self._cache_key = key
        self._cache_trusted = time.time_ns() - stat.st_mtime_ns > _RACY_MARGIN_NS
        return self._cache

    def read_last_good(self) -> Snapshot:
        """The last registry this server wrote successfully (for reading tools while the file is damaged)."""
        backup = self.store.backups_dir / "registry.last-good.json"
        try:
            return parse_registry(backup.read_bytes())
        except (FileNotFoundError, RegistryCorruptError):
            return Snapshot()

    # --- writing -----------------------------------------------------------------------------
    def update(self, change: Callable[[Snapshot], T]) -> T:
        """Apply `change` to a fresh read under the lock and write the result in the new format.

        `change` mutates `snapshot.entries` in place and returns what the caller wants back. If it
        raises, nothing is written.
        """
        with self.store.lock():
            self._cache_trusted = False  # under the lock, always look at the bytes themselves
            snapshot = self.read()
            result = change(snapshot)
            self._write(snapshot)
            return result

    def _write(self, snapshot: Snapshot) -> None:
        path = self.store.registry_path
        if snapshot.fmt == "old" and path.exists():
            # Keep the old-format file beside the new one, once, before replacing it.
            backup = path.with_name("registry.json.old-format.bak")
            if not backup.exists():
                try:
                    shutil.copy2(path, backup)
                except OSError as exc:
                    raise storage_error(exc, "keeping a backup of the old registry") from exc
        data = {version: entry.registry_json() for version, entry in snapshot.entries.items()}
        raw = (json.dumps(data, indent=2) + "\n").encode()
        atomic_write_bytes(path, raw)
        try:
            self.store.backups_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.store.backups_dir / "registry.last-good.json", raw)
        except Exception:  # the backup is a convenience; the registry itself is written
            log.warning("registry_backup_failed", exc_info=True)
        # What we wrote is what the next read will find; its stat key is taken then.
        self._cache = _copy(Snapshot(entries=snapshot.entries, fmt="new"))
        self._cache_raw, self._cache_key, self._cache_trusted = raw, None, False


def parse_registry(raw: bytes) -> Snapshot:
    """Both formats; raises RegistryCorruptError with a sentence when the bytes are not a registry."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RegistryCorruptError(
            f"registry.json does not parse ({str(exc)[:120]}). It was left as it is: repair or restore it "
            "(a copy of the last good registry is in backups/registry.last-good.json), then restart."
        ) from None
    if not isinstance(data, dict):
        raise RegistryCorruptError("registry.json must hold a JSON object. It was left as it is.")
    if not data:
        return Snapshot(fmt="new")
    if isinstance(data.get("models"), list):
        return _parse_old(data["models"])
    entries: dict[str, RegistryEntry] = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            raise RegistryCorruptError(f"registry.json entry {key!r} is not an object. It was left as it is.")
        entries[key] = _entry(value, default_version=key)
    _one_deployed(entries)
    return Snapshot(entries=entries, fmt="new")


def _parse_old(items: list[Any]) -> Snapshot:
    entries: dict[str, RegistryEntry] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("version"), str):
            raise RegistryCorruptError(
                f"registry.json (old format) item {index} has no version. It was left as it is."
            )
        item = dict(item)
        status = item.get("status")
        mapped = _OLD_STATUS.get(status if isinstance(status, str) else "", "imported")
        if mapped != status:
            item["legacy_status"] = status
        item["status"] = mapped
        item.setdefault("source", "manual")
        entries[item["version"]] = _entry(item, default_version=item["version"])
    _one_deployed(entries)
    return Snapshot(entries=entries, fmt="old")


def _one_deployed(entries: dict[str, RegistryEntry]) -> None:
    """One deployed version per model name; a registry edited by hand with several of one name keeps
    the first of that name (the others become `available`, written with the next update)."""
    kept: dict[str, str] = {}
    for version, entry in entries.items():
        if entry.status != "deployed":
            continue
        name = model_key(entry)
        if name in kept:
            log.warning("registry_several_deployed", model_name=name, kept=kept[name], demoted=version)
            entry.status = "available"
        else:
            kept[name] = version


def _entry(value: dict[str, Any], *, default_version: str) -> RegistryEntry:
    value = dict(value)
    value.setdefault("version", default_version)
    value.setdefault("path", f"models/{value['version']}")
    if value.get("source") not in ("zip", "training_service", "manual"):
        if "source" in value:
            value["legacy_source"] = value["source"]
        value["source"] = "manual"
    try:
        return RegistryEntry.model_validate(value)
    except ValidationError as exc:
        raise RegistryCorruptError(
            f"registry.json entry {default_version!r} is not valid ({exc.errors()[0]['msg']}). It was left as it is."
        ) from None


def _copy(snapshot: Snapshot) -> Snapshot:
    return Snapshot(entries={k: v.model_copy(deep=True) for k, v in snapshot.entries.items()}, fmt=snapshot.fmt)


__all__ = ["Registry", "Snapshot", "model_key", "parse_registry"]
