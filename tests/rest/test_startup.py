"""FastAPI and prometheus_client load only when the HTTP transport builds its app."""

from __future__ import annotations

import subprocess
import sys


def test_starting_over_stdio_imports_neither_fastapi_nor_prometheus_client():
    code = ("import sys, model_mcp.serve, model_mcp.server, model_mcp.core.manager, model_mcp.http_app; "
            "print(sorted(m for m in ('fastapi', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
