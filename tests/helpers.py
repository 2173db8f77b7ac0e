"""Small helpers for tests that talk to the server through a real MCP client."""

from __future__ import annotations

import re
from typing import Any

ERROR_PATTERN = re.compile(r"\[([a-z_]+)\] (.+)", re.S)


async def call(client: Any, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, f"{tool} failed: {text}"
    assert result.structured_content is not None, f"{tool} gave no structured content"
    return result.structured_content


async def call_error(client: Any, tool: str, **arguments: Any) -> tuple[str, str]:
    """Call a tool that must fail; return (code, sentence) parsed from `[code] sentence`."""
    result = await client.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, f"{tool} unexpectedly succeeded: {result.structured_content}"
    match = ERROR_PATTERN.search(text)
    assert match, f"{tool} error is not '[code] sentence': {text!r}"
    return match.group(1), match.group(2)
