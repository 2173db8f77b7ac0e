"""Command line: arguments -> Settings -> logging -> serve / demo / operator commands."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("model-mcp: not built yet")
