"""Semantic versions (SemVer 2.0.0): parsing and precedence, for metadata's `semantic_version`.

The version id stays the registry's unique key; a semantic version is what a team calls a release,
searchable and sortable by SemVer precedence (section 11 of the specification): numeric fields
compared as numbers, a pre-release ranks below its release, pre-release identifiers compared one by
one (numeric identifiers numerically and below alphanumeric ones, a shorter list first when all
else is equal), and build metadata ignored.
"""

from __future__ import annotations

import re
from functools import total_ordering

# The specification's own regular expression (semver.org), anchored.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
MAX_LENGTH = 256


@total_ordering
class SemVer:
    """A parsed semantic version; ordering and equality are SemVer precedence (build ignored)."""

    __slots__ = ("text", "major", "minor", "patch", "pre", "build")

    def __init__(self, text: str) -> None:
        match = _SEMVER.match(text) if isinstance(text, str) and len(text) <= MAX_LENGTH else None
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], "
                             "SemVer 2.0.0)")
        self.text = text
        self.major, self.minor, self.patch = (int(match.group(i)) for i in (1, 2, 3))
        self.pre: tuple[str, ...] = tuple(match.group(4).split(".")) if match.group(4) else ()
        self.build: str | None = match.group(5)

    def _key(self) -> tuple[object, ...]:
        # A release (no pre-release) ranks above every pre-release of the same numbers.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 1 if not self.pre else 0, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"SemVer({self.text!r})"


def parse_semver(text: str) -> SemVer:
    """Raises ValueError with a sentence when `text` is not SemVer 2.0.0."""
    return SemVer(text)


def semver_or_none(text: object) -> SemVer | None:
    try:
        return SemVer(text) if isinstance(text, str) else None
    except ValueError:
        return None
