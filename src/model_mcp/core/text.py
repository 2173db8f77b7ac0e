"""Text from outside (package names, row keys, file names, agent input) made safe to show.

A package or an agent can put control characters in the names they give: newlines, carriage
returns, ANSI escape sequences (colours, cursor moves), bidirectional overrides. Printed raw,
they forge lines in a terminal (`[ok] Imported ...` in green) or in a log read by a person.

- `printable(text)` escapes them (`\\x0a`, `\\x1b`, `\\u202e`) and leaves everything else as it is;
  every human-facing sentence (error messages, the CLI's text output) passes untrusted parts
  through it. JSON output needs nothing more: `json.dumps` escapes control characters itself.
- `control_characters(text)` lists the ones a name holds, for the checks that refuse such names
  at import (model names, feature names, manifest file names).
"""

from __future__ import annotations

import unicodedata

# Control (Cc), format (Cf: bidi overrides, zero-width), line/paragraph separators, surrogates,
# private use and unassigned code points: none belongs in a name, none is safe on a terminal.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def is_unsafe_character(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """`str(value)` with every control, format and separator character escaped; the rest unchanged.

    With `keep_newlines`, line feeds stay (for multi-line text the program itself lays out); a
    carriage return is always escaped, since it lets later text overwrite earlier text.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case; isprintable is False for a superset of what we escape
        return text
    return "".join(c if (keep_newlines and c == "\n") or not is_unsafe_character(c) else _escape(c) for c in text)


def control_characters(text: str) -> list[str]:
    """The unsafe characters in `text`, escaped for a message, in order of first appearance."""
    if text.isprintable():
        return []
    seen: list[str] = []
    for char in text:
        if is_unsafe_character(char):
            escaped = _escape(char)
            if escaped not in seen:
                seen.append(escaped)
    return seen
