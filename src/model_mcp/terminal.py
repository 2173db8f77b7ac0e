"""Text from packages made safe for a terminal.

Anything a package author wrote (model names, feature names, metadata, file names, error details
that quote them) may hold control characters: an escape sequence can recolour, retitle or rewrite a
terminal, a carriage return can hide what came before it on the line, and a bidirectional override
can show text in an order other than the bytes'. Human-facing output passes such text through
`printable`, which shows every such character as a visible escape (`\\x1b`, `\\u202e`) instead.
JSON output needs none of this: `json.dumps` escapes control characters itself.
"""

from __future__ import annotations

import unicodedata

# Format characters that reorder or hide text on display (Trojan Source, CVE-2021-42574), plus the
# zero-width ones that make two different names look the same.
_INVISIBLE = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]      # LRE, RLE, PDF, LRO, RLO
    + [chr(c) for c in range(0x2066, 0x206A)]    # LRI, RLI, FSI, PDI
    + ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2028", "\u2029", "\ufeff"]
)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, *, keep_newlines: bool = False) -> str:
    """`str(value)` with control and invisible formatting characters shown as escapes.

    With `keep_newlines`, line feeds stay (for multi-line text the program itself lays out); a
    carriage return is always escaped, since it lets later text overwrite earlier text.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and not any(char in _INVISIBLE for char in text):
        return text  # the common case, without building a new string
    out = []
    for char in text:
        if keep_newlines and char == "\n":
            out.append(char)
        elif char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cs", "Co", "Zl", "Zp"):
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)
