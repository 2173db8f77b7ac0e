"""The repository stands alone: no tracked file refers to anything outside it.

A newcomer holding only this repository must find everything it mentions inside it: no path to a
sibling folder, to the machine it was written on, to a home folder, or to a specification kept
elsewhere. The patterns are assembled from pieces so this file does not match itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_SHARED = "../" + "shared"
_SPEC = "CONTRACT" + r"\.md"
_WORK = "/" + "work/"

# (pattern, why it points outside the repository)
OUTSIDE = [
    (re.compile(re.escape(_SHARED)), "a folder beside the repository"),
    (re.compile(_SPEC, re.IGNORECASE), "a specification file kept outside the repository (docs/ says it)"),
    (re.compile(re.escape(_WORK)), "the machine's work folder"),
    (re.compile(r"(?<![\w.~])/(?:home|Users)/[A-Za-z0-9_.-]+"), "an absolute home folder"),
    (re.compile(r"(?<![\w.~])/" + "root/"), "root's home folder"),
    (re.compile(r"\bcontract(?:'s)? section \d|\bsection \d+ of the contract", re.IGNORECASE),
     "a numbered section of an outside specification (point to docs/ instead)"),
]


def outside_references(text: str) -> list[tuple[int, str, str]]:
    """(line number, matched text, reason) for every reference to something outside the repository."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern, reason in OUTSIDE:
            match = pattern.search(line)
            if match:
                found.append((number, match.group(0), reason))
    return found


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing to list")
    return [ROOT / name for name in listing.stdout.decode().split("\0") if name]


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = tracked_files()
    assert len(files) > 50, "git ls-files listed too few files to be this repository"
    problems = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binaries, and files deleted in the work tree but not yet in the index
        for number, matched, reason in outside_references(text):
            problems.append(f"{path.relative_to(ROOT)}:{number}: {matched!r} ({reason})")
    assert not problems, "References outside the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize("text", [
    "see `" + _SHARED + "/" + "CONTRACT" + ".md` for details",
    "the spec (contract" + ".md section 3)",
    "python " + _WORK + "wt/x/run.py",
    "cd /home/" + "alice/project",
    "open /Users/" + "bob/models",
    "written to /" + "root/cache",
    "# Archive limits (contract " + "section 6).",
])
def test_the_scan_catches_outside_references(text: str) -> None:
    assert outside_references(text), text


@pytest.mark.parametrize("text", [
    "the home, ~/.local/share/model-mcp",
    "/path/to/.venv/bin/model-mcp",
    "MODEL_MCP_TRAINING_DIR=/srv/training-service/exports",
    "see docs/package-format.md",
    "the contract's error code",
])
def test_the_scan_leaves_in_repository_references_alone(text: str) -> None:
    assert not outside_references(text), text
