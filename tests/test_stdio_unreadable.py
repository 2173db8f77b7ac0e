"""Lines the SDK cannot parse get a JSON-RPC error over stdio, not silence (issue 18, item 4).

Rows nested about 200 levels deep, or a 5,000-digit integer, made the server drop the request:
the client waited until its own timeout. The server is driven here with raw lines, because a
real MCP client never sends such messages.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from model_mcp.stdio_transport import request_id_from_prefix

# A bound on waiting for one answer, so a silent server fails the test instead of hanging it.
ANSWER_WAIT_S = 60


class RawServer:
    def __init__(self, home: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model_mcp", "serve", "--home", str(home)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        try:
            return json.loads(self.lines.get(timeout=ANSWER_WAIT_S))
        except queue.Empty:
            raise AssertionError("the server did not answer") from None

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def server(tmp_path):
    raw = RawServer(tmp_path / "home")
    raw.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
    assert raw.answer()["id"] == 1
    raw.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    yield raw
    raw.close()


def _predict(request_id: int, rows_json: str) -> str:
    return ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"predict","arguments":{"rows":%s}}}'
            % (request_id, rows_json))


def test_deeply_nested_rows_get_an_answer_with_the_request_id(server):
    # 200 levels parse (the tool refuses the rows); past the JSON parser's recursion limit the line
    # is answered with a parse error. Either way the client's call ends.
    server.send(_predict(7, "[" * 200 + "]" * 200))
    answer = server.answer()
    assert answer["id"] == 7 and (answer.get("error") or answer["result"]["isError"])
    server.send(_predict(9, "[" * 5000 + "]" * 5000))
    answer = server.answer()
    assert answer["id"] == 9 and answer["error"]["code"] == -32700
    assert "nested too deeply" in answer["error"]["message"]


def test_a_5000_digit_integer_gets_a_parse_error_with_the_request_id(server):
    server.send(_predict(8, "[[" + "9" * 5000 + "]]"))
    answer = server.answer()
    assert answer["id"] == 8 and answer["error"]["code"] == -32700


def test_garbage_gets_a_parse_error_with_a_null_id_and_the_server_goes_on(server):
    server.send("this is not json")
    answer = server.answer()
    assert answer["id"] is None and answer["error"]["code"] == -32700
    server.send('{"jsonrpc":"2.0","id":"x9","method":5}')
    answer = server.answer()
    assert answer["id"] == "x9" and answer["error"]["code"] == -32600
    server.send(json.dumps({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}))
    answer = server.answer()
    assert answer["id"] == 10 and answer["result"]["tools"]
    for line in server.stderr:  # logs stay JSON lines
        json.loads(line)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"jsonrpc":"2.0","id":5,"method":"x"}', 5),
    ('{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"id":1}}', "abc"),
    ('{"params":{"id":1}}', None),
    ('{"id":' + "9" * 30 + "}", None),
    ("[1, 2", None),
])
def test_request_id_from_the_first_bytes(text, expected):
    assert request_id_from_prefix(text.encode()) == expected
