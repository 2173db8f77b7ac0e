"""One call costs a bounded multiple of its size, over stdio.

The attack this guards against: one 860 MiB `drift_report` line drove the server to 11.6 GB and
killed it. Now a line over MODEL_MCP_MAX_MESSAGE_MB is refused before it is parsed (and without
being buffered), and the largest allowed call peaks at a bounded multiple of its bytes and gives
the memory back afterwards.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import numpy as np
import pytest

from model_mcp import samples
from model_mcp.settings import Settings
from model_mcp.stdio_transport import LimitedLineReader, request_id_from_prefix
from tests.reliability.serverproc import NO_PROBE, ServerProcess

MIB = 1024 * 1024


def proc_status(pid: int, key: str) -> int:
    """A /proc/PID/status figure (VmRSS, VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux: writing 5 to clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def raw_request(request_id: int, tool: str, arguments: dict) -> bytes:
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
               "params": {"name": tool, "arguments": arguments}}
    return json.dumps(message).encode() + b"\n"


def send_raw(server: ServerProcess, data: bytes) -> None:
    server._stdin.write(data)
    server._stdin.flush()


@pytest.fixture
def deployed_server(tmp_path: Path):
    """A spawned stdio server with a deployed 8-feature IsolationForest; yields (server, start)."""
    def start(n_features: int = 8, **env: str) -> ServerProcess:
        package = samples.build_package(tmp_path / f"pkg-{n_features}.zip", fmt="zip", n_features=n_features)
        server = ServerProcess.spawn(tmp_path / "home", env={**NO_PROBE, **env},
                                     stderr=(tmp_path / "stderr.log").open("wb"))
        started.append(server)
        server.initialize()
        version = server.call("import_zip", path=str(package)).structured["version"]
        assert not server.call("deploy", version=version).is_error
        return server

    started: list[ServerProcess] = []
    yield start
    for server in started:
        server.kill()


# --- the reader, on a pipe -------------------------------------------------------------------------
async def _read_all(data: bytes, limit: int) -> tuple[list[bytes], list[dict]]:
    read_fd, write_fd = os.pipe()
    refusals: list[dict] = []

    async def refuse(line: bytes) -> None:
        refusals.append(json.loads(line))

    async def feed() -> None:
        view = memoryview(data)
        while view:
            written = await anyio.to_thread.run_sync(os.write, write_fd, view[:100_000])
            view = view[written:]
        os.close(write_fd)

    lines: list[bytes] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        async for line in LimitedLineReader(read_fd, limit, refuse):
            lines.append(bytes(line))
    os.close(read_fd)
    return lines, refusals


@pytest.mark.anyio
async def test_reader_refuses_lines_over_the_limit_and_keeps_the_others():
    small = [b'{"id": %d}' % i for i in range(2000)]  # many lines per chunk
    exact = b'{"id": 7, "x": "' + b"a" * (1000 - 18) + b'"}'
    assert len(exact) == 1000
    over = b'{"jsonrpc": "2.0", "id": "big-1", "params": {"x": "' + b"b" * 5_000_000 + b'"}}'
    over_in_chunk = b'{"id": 9, "x": "' + b"c" * 1001 + b'"}'
    data = b"\n".join([*small, exact, over, b"", over_in_chunk, b'{"id": "after"}']) + b"\n" + b'{"id": "last"}'
    lines, refusals = await _read_all(data, limit=1000)
    assert lines == [*small, exact, b'{"id": "after"}', b'{"id": "last"}']
    assert [r["id"] for r in refusals] == ["big-1", 9]
    for refusal in refusals:
        assert refusal["error"]["code"] == -32600
        assert "MODEL_MCP_MAX_MESSAGE_MB" in refusal["error"]["message"]
        assert refusal["error"]["data"]["limit_bytes"] == 1000


def test_request_id_is_read_only_before_params():
    assert request_id_from_prefix(b'{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{') == 12
    assert request_id_from_prefix(b'{"id": "a\\"b", "params": {"id": 3}}') == 'a"b'
    assert request_id_from_prefix(b'{"method": "x", "params": {"id": 3}, "id": 4}') is None
    assert request_id_from_prefix(b'{"method": "x", "params": {"rows": [') is None


def test_message_limit_is_configured_in_mib():
    settings = Settings.from_env({"MODEL_MCP_HOME": "/tmp/x", "MODEL_MCP_MAX_MESSAGE_MB": "1.5"})
    assert settings.max_message_bytes == int(1.5 * MIB)
    assert Settings(home=Path("/tmp/x")).max_message_bytes == 32 * MIB


# --- the real server -------------------------------------------------------------------------------
def test_server_refuses_an_over_long_line_without_holding_it(deployed_server):
    """A 64 MiB line against a 1 MiB limit: a JSON-RPC error with the request's id, the server
    keeps serving, and its peak memory never held the line."""
    server = deployed_server(MODEL_MCP_MAX_MESSAGE_MB="1")
    rows = [[0.5] * 8] * 40
    assert not server.call("drift_report", current=rows, reference=rows).is_error  # warm: scipy loaded
    time.sleep(0.5)
    reset_peak(server.pid)
    before = proc_status(server.pid, "VmRSS")
    prefix = b'{"jsonrpc": "2.0", "id": 4242, "method": "tools/call", "params": {"name": "predict", "arguments": {"rows": ['
    send_raw(server, prefix)
    row = b"[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], "
    chunk = row * (MIB // len(row))
    for _ in range(64):
        send_raw(server, chunk)
    send_raw(server, b"[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]}}}\n")
    answer = server.answer(4242, timeout=120)
    assert answer is not None and answer.is_error
    error = answer.raw["error"]
    assert error["code"] == -32600
    assert "MODEL_MCP_MAX_MESSAGE_MB" in error["message"] and error["data"]["limit_bytes"] == MIB
    peak_growth = proc_status(server.pid, "VmHWM") - before
    assert peak_growth < 16 * MIB, f"the server grew {peak_growth / MIB:.1f} MiB while refusing a 64 MiB line"
    # The stream is still in step: the next call is answered.
    assert not server.call("predict", rows=[[0.0] * 8]).is_error


@pytest.mark.slow
@pytest.mark.parametrize("numbers", ["full_precision", "one_decimal"])
def test_largest_allowed_inline_drift_report_costs_a_bounded_multiple_of_its_size(deployed_server, numbers):
    """100,000 rows a side (the default inline limit) of full-precision floats x 8 features, or of the
    shortest numbers (`-0.3, `, one decimal) x 29: the largest drift_reports that fit the default
    32 MiB message. Peak RSS growth at most 6x the request's bytes (the short numbers were 12x while
    every number became a Python float); a few seconds later RSS within 100 MB of before."""
    n_features = 8 if numbers == "full_precision" else 29
    server = deployed_server(n_features=n_features)
    settings = Settings(home=Path("unused"))
    rng = np.random.default_rng(0)
    rows = settings.max_drift_rows

    def side() -> list:
        values = rng.standard_normal((rows, n_features))
        return values.tolist() if numbers == "full_precision" else np.round(values / 3, 1).tolist()

    request = raw_request(77, "drift_report", {"current": side(), "reference": side()})
    assert 0.9 * settings.max_message_bytes < len(request) <= settings.max_message_bytes + 1
    small = rng.standard_normal((100, n_features)).tolist()
    assert not server.call("drift_report", current=small, reference=small).is_error  # warm: scipy loaded
    time.sleep(1.0)
    reset_peak(server.pid)
    before = proc_status(server.pid, "VmRSS")
    send_raw(server, request)
    answer = server.answer(77, timeout=300)
    assert answer is not None and not answer.is_error, answer.text if answer else "no answer"
    assert answer.structured["n_current"] == rows and answer.structured["n_reference"] == rows
    peak_growth = proc_status(server.pid, "VmHWM") - before
    print(f"{numbers}: {len(request) / MIB:.1f} MiB request, peak RSS growth {peak_growth / MIB:.0f} MiB "
          f"({peak_growth / len(request):.2f}x)")
    assert peak_growth <= 6 * len(request), f"peak grew {peak_growth / len(request):.2f}x the request's bytes"
    deadline = time.monotonic() + 10
    while True:  # bounded wait: the release runs a moment after the answer
        kept = proc_status(server.pid, "VmRSS") - before
        if kept <= 100 * 1000 * 1000 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert kept <= 100 * 1000 * 1000, f"{kept / MIB:.0f} MiB still resident after the call"


def test_rows_parsed_as_arrays_answer_as_rows_parsed_as_lists(deployed_server):
    """A large line's matrices become arrays (row_matrices); rows as objects still go through
    json.loads. The same 10,000 rows either way: the same labels and scores, and the same refusals."""
    server = deployed_server()
    rng = np.random.default_rng(5)
    values = rng.standard_normal((10_000, 8))
    names = samples.feature_names_for(8)
    as_matrix = server.call("predict", rows=values.tolist(), exact_scores=True)
    as_objects = server.call("predict", rows=[dict(zip(names, row, strict=True)) for row in values.tolist()],
                             exact_scores=True)
    assert not as_matrix.is_error and not as_objects.is_error
    for field in ("labels", "scores", "anomaly_count", "n_rows"):
        assert as_matrix.structured[field] == as_objects.structured[field], field
    wide = server.call("predict", rows=rng.standard_normal((10_000, 9)).tolist())
    assert wide.is_error and "[invalid_input] row 0 has 9 values; the model expects 8" in wide.text
    huge = values.tolist()
    huge[7][3] = 1e39  # beyond float32: refused naming the cell, as for a list
    answer = server.call("predict", rows=huge)
    assert answer.is_error and "[invalid_input] row 7, feature" in answer.text
    ragged = values.tolist()
    ragged[4] = ragged[4][:7]
    answer = server.call("predict", rows=ragged)
    assert answer.is_error and "[invalid_input] row 4" in answer.text
