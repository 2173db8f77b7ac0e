"""Text from packages made safe for a terminal.

Anything a package author wrote (model names, feature names, metadata, file names, error details
that quote them) may hold control characters: an escape sequence can recolour, retitle or rewrite a
terminal, a carriage return can hide what came before it on the line, and a bidirectional override
can show text in an order other than the bytes'. Human-facing output passes such text through
`printable`, which shows every such character as a visible escape (`\\x1b`, `\\u202e`) instead.
JSON output needs none of this: `json.dumps` escapes control characters itself.
"""

from __future__ import annotations

# One rule for error sentences (made in the core) and the terminal: core/text.py.
from model_mcp.core.text import printable

__all__ = ["printable"]
