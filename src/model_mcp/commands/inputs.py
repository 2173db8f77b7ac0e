"""Reading the operator's input files: rows (CSV or JSON) and labels, with one clear sentence per mistake.

A mistake in a file the operator gave (missing, a folder, not UTF-8, broken JSON, a CSV without a
header row, a line with more values than the header) raises `InputFileError`, which the CLI prints as
one line naming the flag and the file, never a traceback. Values that are not numbers are passed on
as they are: predict refuses them itself, naming the row, like it does for an agent.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any


class InputFileError(Exception):
    """An input file the CLI cannot use; `str(exc)` is the sentence shown to the operator."""


def read_text(path: Path, flag: str) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{flag} {path}: no such file.") from None
    except IsADirectoryError:
        raise InputFileError(f"{flag} {path}: is a folder, not a file.") from None
    except PermissionError:
        raise InputFileError(f"{flag} {path}: permission denied.") from None
    except OSError as exc:
        raise InputFileError(f"{flag} {path}: cannot be read ({exc.strerror or exc}).") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{flag} {path}: is not UTF-8 text (byte {exc.start}).") from None


def _looks_like_json(path: Path, text: str) -> bool:
    if path.suffix.lower() == ".json":
        return True
    if path.suffix.lower() == ".csv":
        return False
    return text.lstrip()[:1] in ("[", "{")


def parse_json(text: str, path: Path, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{flag} {path}: is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg}).") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_rows(path: Path, flag: str = "--input") -> list[Any]:
    """Rows from a JSON list (or `{"rows": [...]}`), or from a CSV whose header row names the features.

    CSV rows become objects keyed by the header's names, so the column order need not match the model's.
    """
    text = read_text(path, flag)
    if not text.strip():
        raise InputFileError(f"{flag} {path}: is empty; give rows as CSV with a header row, or as a JSON list.")
    if _looks_like_json(path, text):
        value = parse_json(text, path, flag)
        if isinstance(value, dict) and "rows" in value:
            value = value["rows"]
        if not isinstance(value, list):
            raise InputFileError(f"{flag} {path}: must hold a JSON list of rows (or an object with \"rows\"), "
                                 f"not a JSON {type(value).__name__}.")
        return value
    return _csv_rows(text, path, flag)


def _csv_rows(text: str, path: Path, flag: str) -> list[Any]:
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise InputFileError(f"{flag} {path}: is empty.") from None
    except csv.Error as exc:
        raise InputFileError(f"{flag} {path}: is not readable CSV ({exc}).") from None
    names = [name.strip() for name in header]
    numeric = [name for name in names if name and _is_number(name)]
    if numeric:
        shown = ", ".join(name if len(name) <= 12 else name[:11] + "…" for name in numeric[:3])
        raise InputFileError(f"{flag} {path}: has no header row: its first line holds numbers ({shown}) where "
                             "feature names should be. Add a first line naming the features, or give a JSON list.")
    if any(not name for name in names):
        raise InputFileError(f"{flag} {path}: the header row has an empty column name (column "
                             f"{names.index('') + 1}).")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputFileError(f"{flag} {path}: the header row names {', '.join(duplicates)} more than once.")
    rows: list[Any] = []
    try:
        for line_number, record in enumerate(reader, start=2):
            if not record or all(not cell.strip() for cell in record):
                continue  # blank lines, such as a trailing one
            if len(record) != len(names):
                raise InputFileError(f"{flag} {path}: line {line_number} has {len(record)} values but the header "
                                     f"names {len(names)} features.")
            row: dict[str, Any] = {}
            for name, cell in zip(names, record, strict=True):
                cell = cell.strip()
                row[name] = float(cell) if _is_number(cell) else cell  # non-numbers: predict names the row
            rows.append(row)
    except csv.Error as exc:
        raise InputFileError(f"{flag} {path}: is not readable CSV ({exc}).") from None
    return rows


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InputFileError(f"{where}: {value!r} is not a label; use -1 (anomaly) or 1 (normal).")
    if isinstance(value, (int, float)) and float(value) in (-1.0, 1.0):
        return int(value)
    if isinstance(value, str) and value.strip() in ("-1", "1", "-1.0", "1.0", "+1"):
        return int(float(value.strip()))
    raise InputFileError(f"{where}: {value!r} is not a label; use -1 (anomaly) or 1 (normal).")


def parse_labels(text: str) -> list[int]:
    """`--labels -1,1,1` (also spaces): one label per predicted row."""
    items = [item for item in text.replace(",", " ").split() if item]
    if not items:
        raise InputFileError("--labels: give one label per row, such as --labels=-1,1,1.")
    return [_label(item, f"--labels item {i + 1}") for i, item in enumerate(items)]


def read_labels(path: Path, flag: str = "--labels-file") -> list[int]:
    """Labels from a JSON list, or one per line / comma-separated (an optional header line is skipped)."""
    text = read_text(path, flag)
    if not text.strip():
        raise InputFileError(f"{flag} {path}: is empty.")
    if _looks_like_json(path, text):
        value = parse_json(text, path, flag)
        if isinstance(value, dict) and "labels" in value:
            value = value["labels"]
        if not isinstance(value, list):
            raise InputFileError(f"{flag} {path}: must hold a JSON list of labels (-1 or 1).")
        return [_label(item, f"{flag} {path} item {i}") for i, item in enumerate(value)]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and not _is_number(lines[0].split(",")[0].strip()):
        lines = lines[1:]  # a header such as "label"
    labels: list[int] = []
    for number, line in enumerate(lines, start=1):
        for item in line.split(","):
            if item.strip():
                labels.append(_label(item, f"{flag} {path} line {number}"))
    return labels
