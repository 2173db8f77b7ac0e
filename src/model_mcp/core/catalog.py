"""The catalog: list_models' search, filters and orders over the registry's entries.

Searching reads no package file for entries registered by this version of the server: the words a
query matches (model name, description, tags, feature names, version, semantic version) are copied
into the entry at registration. Older entries get them from metadata.json once; the text searched is
memoized per (version, imported_at), which never changes for a registered version, so a query over
10,000 versions costs a pass over memoized strings (benchmarks/bench_catalog.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

from model_mcp.core.errors import InvalidInputError
from model_mcp.core.schemas import RegistryEntry, parse_timestamp
from model_mcp.core.semver import SemVer, semver_or_none

SortKey = Literal["created_at", "imported_at", "quality_score", "semantic_version"]
SORT_KEYS: tuple[str, ...] = ("created_at", "imported_at", "quality_score", "semantic_version")
MAX_QUERY_CHARS = 500


class _Indexed:
    __slots__ = ("text", "tags", "created", "imported", "semver")

    def __init__(self, text: str, tags: frozenset[str], created: float, imported: float, semver: SemVer | None):
        self.text, self.tags, self.created, self.imported, self.semver = text, tags, created, imported, semver


class Catalog:
    """Memoized search text and sort keys per registered version; thread-safe."""

    def __init__(self, read_metadata: Callable[[RegistryEntry], dict[str, Any] | None]) -> None:
        self._read_metadata = read_metadata
        self._memo: dict[tuple[str, str | None], _Indexed] = {}
        self._lock = threading.Lock()
        self._latest_memo: tuple[Any, dict[str, tuple[RegistryEntry, int]]] | None = None
        self._order_memo: tuple[Any, dict[str, list[tuple[RegistryEntry, _Indexed]]]] | None = None

    def _indexed(self, entry: RegistryEntry) -> _Indexed:
        key = (entry.version, entry.imported_at)
        found = self._memo.get(key)
        if found is not None:
            return found
        tags, names, description, semver = entry.tags, entry.feature_names, entry.description, entry.semantic_version
        if names is None:  # registered before the catalog fields were copied into entries
            metadata = self._read_metadata(entry) or {}
            names = _strings(metadata.get("feature_names"))
            tags = tags if tags is not None else _strings(metadata.get("tags"))
            description = description if description is not None else _string(metadata.get("description"))
            semver = semver if semver is not None else _string(metadata.get("semantic_version"))
        words = [entry.version, entry.model_name or "", description or "", semver or "", *(tags or []), *names]
        found = _Indexed(text="\n".join(words).casefold(), tags=frozenset(t.casefold() for t in tags or []),
                         created=_moment(entry.created_at), imported=_moment(entry.imported_at),
                         semver=semver_or_none(semver))
        with self._lock:
            if len(self._memo) > 200_000:  # a registry churned far past any real size: start over
                self._memo.clear()
            self._memo[key] = found
        return found

    def newest_key(self, entry: RegistryEntry) -> tuple[float, float, str]:
        """created_at as a moment, then imported_at, then the version: the catalog's default order."""
        indexed = self._indexed(entry)
        return (indexed.created, indexed.imported, entry.version)

    def latest_per_model(self, snapshot: Any) -> dict[str, tuple[RegistryEntry, int]]:
        """{model name: (its newest version's entry, how many versions)} of a registry snapshot,
        memoized while the registry's cached snapshot is the same object (it is replaced on change)."""
        memo = self._latest_memo
        if memo is not None and memo[0] is snapshot:
            return memo[1]
        latest: dict[str, tuple[RegistryEntry, int]] = {}
        for entry in snapshot.entries.values():
            name = entry.model_name or ""
            found = latest.get(name)
            if found is None:
                latest[name] = (entry, 1)
            else:
                best = entry if self.newest_key(entry) > self.newest_key(found[0]) else found[0]
                latest[name] = (best, found[1] + 1)
        self._latest_memo = (snapshot, latest)
        return latest

    def ordered(self, snapshot: Any, sort: str) -> list[tuple[RegistryEntry, _Indexed]]:
        """Every entry of the snapshot in `sort` order, memoized per (snapshot object, sort)."""
        with self._lock:
            memo = self._order_memo
            if memo is not None and memo[0] is snapshot and sort in memo[1]:
                return memo[1][sort]
        chosen = [(entry, self._indexed(entry)) for entry in snapshot.entries.values()]
        newest = lambda item: (item[1].created, item[1].imported, item[0].version)  # noqa: E731
        chosen.sort(key=newest, reverse=True)  # the tie-break, kept by the stable sorts below
        if sort == "imported_at":
            chosen.sort(key=lambda item: item[1].imported, reverse=True)
        elif sort == "quality_score":
            chosen.sort(key=lambda item: (item[0].quality_score is not None, item[0].quality_score or 0.0),
                        reverse=True)
        elif sort == "semantic_version":
            with_semver = [item for item in chosen if item[1].semver is not None]
            without = [item for item in chosen if item[1].semver is None]
            with_semver.sort(key=lambda item: item[1].semver, reverse=True)  # type: ignore[arg-type,return-value]
            chosen = with_semver + without
        with self._lock:
            if self._order_memo is None or self._order_memo[0] is not snapshot:
                self._order_memo = (snapshot, {})
            self._order_memo[1][sort] = chosen
        return chosen

    def search(self, snapshot: Any, *, status: str | None = None, model_name: str | None = None,
               query: str | None = None, tag: str | None = None, min_quality_score: float | None = None,
               sort: str = "created_at") -> list[RegistryEntry]:
        """The entries matching every query word (case-insensitive substrings) and the filters,
        in `sort` order: newest, highest or greatest first; entries without the key last."""
        if sort not in SORT_KEYS:
            raise InvalidInputError(f"`sort` must be one of {', '.join(SORT_KEYS)}, not {str(sort)[:40]!r}.")
        if query is not None and len(query) > MAX_QUERY_CHARS:
            raise InvalidInputError(f"`query` is longer than {MAX_QUERY_CHARS} characters.")
        words = query.casefold().split() if query else []
        wanted_tag = tag.casefold() if tag else None
        found = []
        for entry, indexed in self.ordered(snapshot, sort):
            if status is not None and entry.status != status:
                continue
            if model_name is not None and entry.model_name != model_name:
                continue
            if min_quality_score is not None and (entry.quality_score is None
                                                  or entry.quality_score < min_quality_score):
                continue
            if wanted_tag is not None and wanted_tag not in indexed.tags:
                continue
            if words and not all(word in indexed.text for word in words):
                continue
            found.append(entry)
        return found


def _moment(value: str | None) -> float:
    if not value:
        return float("-inf")
    try:
        return parse_timestamp(value).timestamp()
    except (ValueError, OverflowError):
        return float("-inf")


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None
