"""The spawned `model-mcp serve` over stdio: the protocol on stdout, JSON logs on stderr."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio


def server_params(home: Path, *extra: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "model_mcp", "serve", "--home", str(home), *extra],
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", ""), **(env or {})},
    )


async def test_stdio_server_imports_lists_and_validates(tmp_path, packages):
    home = tmp_path / "home"
    errlog_path = tmp_path / "stderr.log"
    with errlog_path.open("w") as errlog:
        async with Client(stdio_client(server_params(home), errlog=errlog)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"import_zip", "list_models", "get_model", "validate"} <= tools
            answer = await call(client, "import_zip", path=str(packages()))
            assert answer["status"] == "available"
            listing = await call(client, "list_models")
            assert listing["total"] == 1
            report = await call(client, "validate", version=answer["version"])
            assert report["passed"] is True
            code, _ = await call_error(client, "get_model", version="missing")
            assert code == "not_found"
    lines = [line for line in errlog_path.read_text().splitlines() if line.strip()]
    assert lines, "the server logged nothing on stderr"
    for line in lines:
        record = json.loads(line)  # every stderr line is a JSON log record
        assert "event" in record and "level" in record
    assert (home / "registry.json").exists()


async def test_stdio_server_read_only_offers_no_changing_tools(tmp_path):
    home = tmp_path / "home"
    async with Client(stdio_client(server_params(home, "--read-only"), errlog=open(os.devnull, "w"))) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "import_zip" not in tools and "validate" not in tools
        assert {"list_models", "get_model"} <= tools


def test_starting_the_server_imports_neither_scikit_learn_nor_scipy():
    """Start-up must stay fast: initialize is answered before any model is loaded; psycopg is
    imported only when a database URL is configured."""
    import subprocess

    code = ("import sys, model_mcp.serve, model_mcp.server, model_mcp.core.manager; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
