"""MCP round trips over stdio, answer sizes, and server start to first answer.

    python benchmarks/bench_stdio.py

Spawns the real server over stdio (the same `build_server` as `model-mcp serve`, plus one bare
`echo` tool, so everything is measured on the same server, transport and client in the same run)
with the sample package deployed: `samples.build_package(n_samples=5000)`, an
IsolationForest(n_estimators=50, random_state=0) on 8 features, served by the fast tree scorer.
Prints p50/p95, the calls interleaved in each repeat, of:
- `list_models(limit=1)`: a small answer with an output schema (the protocol's own cost);
- `echo` with a payload the size of 1 and 1,000 rows;
- `predict` of 1 and 1,000 rows;
- raw scikit-learn `decision_function` on the same model in this process;
the bytes of a 1,000-row predict answer on the wire (default, exact_scores, summary_only, and the
answer as it was before lean answers: full-precision scores, plus the same data again as indented
JSON text), and the time from spawn to the `initialize` answer and to the first predict answer
(the saved scorer serves it, see README), beside three floors: a bare `python -c pass`, a Python
that only imports the MCP SDK's server (`mcp.server`, `mcp.server.mcpserver`), and a bare SDK
server (`MCPServer` with one tool, stdio) from spawn to the answer of its first tool call, which
any server built on this SDK pays before it can answer anything. Medians of 5 rounds, each round
spawning the four in turn; the CPU time of the two floors without a client is printed too (less
sensitive to the machine's load than wall time).

Targets (issue 13): a one-row predict within 0.3 ms of list_models(limit=1) at p50; a 1,000-row
answer at least 60 % smaller than before; the first predict under 0.5 s from spawn.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = '''
import sys
from model_mcp.core.manager import ModelManager
from model_mcp.logs import setup_logging
from model_mcp.server import build_server
from model_mcp.settings import Settings

setup_logging("WARNING")
manager = ModelManager(Settings(home=sys.argv[1]))
manager.start()
manager.load_deployed_in_background()
server = build_server(manager)

@server.tool()
def echo(rows: list) -> dict:
    """Answer the rows back (the benchmark's baseline)."""
    return {"n": len(rows)}

server.run("stdio")
'''
# The floor: the SDK's own server with one tool, answering its first call.
BARE_SCRIPT = '''
from mcp.server import MCPServer

server = MCPServer("bare")

@server.tool()
def predict(rows: list) -> dict:
    """Answer the number of rows."""
    return {"n": len(rows)}

server.run("stdio")
'''
SPAWNS = 5


def spawn_once(code: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one spawn of this Python running `code`, in ms."""
    import subprocess

    before = os.times()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    wall = (time.perf_counter() - t0) * 1000
    after = os.times()
    return wall, (after.children_user + after.children_system - before.children_user - before.children_system) * 1000


async def start_once(params, tool: str, arguments: dict) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Wall times from spawn to the initialize answer and to the answer of a first `tool` call, in ms."""
    from mcp import Client
    from mcp.client.stdio import stdio_client

    with open(os.devnull, "w") as errlog:  # noqa: ASYNC230 (opened before the clock starts)
        started = time.perf_counter()
        async with Client(stdio_client(params, errlog=errlog)) as client:
            initialized = (time.perf_counter() - started) * 1000
            result = await client.call_tool(tool, arguments)
            first = (time.perf_counter() - started) * 1000
            assert not result.is_error, result.content
    return initialized, first


async def start_figures(params, bare_params, rows: list) -> dict[str, tuple[float, float]]:  # type: ignore[no-untyped-def]
    """Medians over SPAWNS rounds, each round spawning all four in turn (a slow moment of the
    machine hits all of them alike): python -c pass and the SDK's import (wall, CPU), the bare SDK
    server and this server (initialize, first call)."""
    samples: dict[str, list[tuple[float, float]]] = {"pass": [], "sdk_import": [], "bare": [], "server": []}
    for _ in range(SPAWNS):
        samples["pass"].append(spawn_once("pass"))
        samples["sdk_import"].append(spawn_once("import mcp.server, mcp.server.mcpserver"))
        samples["bare"].append(await start_once(bare_params, "predict", {"rows": rows}))
        samples["server"].append(await start_once(params, "predict", {"rows": rows}))
    return {name: (statistics.median(a for a, _ in values), statistics.median(b for _, b in values))
            for name, values in samples.items()}


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


async def main() -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from model_mcp import samples
    from model_mcp.core.manager import ModelManager
    from model_mcp.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-stdio-"))
    home = work / "home"
    package = samples.build_package(work / "p.zip", version="bench", n_samples=5000)
    manager = ModelManager(Settings(home=home))
    manager.start()
    manager.import_zip(path=str(package))
    manager.deploy(version="bench")
    estimator = manager.runtime.current.estimator
    script = work / "server.py"
    script.write_text(SERVER_SCRIPT)
    params = StdioServerParameters(command=sys.executable, args=[str(script), str(home)],
                                   env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    one = samples.sample_rows(1)
    thousand = samples.sample_rows(1000)
    repeats = {1: 300, 1000: 40}

    def wire_bytes(result) -> int:  # the result as the server sends it: compact JSON
        return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())

    bare = work / "bare.py"
    bare.write_text(BARE_SCRIPT)
    bare_params = StdioServerParameters(command=sys.executable, args=[str(bare)],
                                        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    starts = await start_figures(params, bare_params, one)
    floor_python, floor_sdk = starts["pass"], starts["sdk_import"]
    bare_init, bare_first = starts["bare"]
    initialized, first_predict = starts["server"]
    with open(os.devnull, "w") as errlog:  # noqa: ASYNC230
        async with Client(stdio_client(params, errlog=errlog)) as client:
            table = []
            for rows in (one, thousand):
                n = len(rows)
                calls = {"list_models": ("list_models", {"limit": 1}), "echo": ("echo", {"rows": rows}),
                         "predict": ("predict", {"rows": rows})}
                times: dict[str, list[float]] = {name: [] for name in calls}
                for _ in range(repeats[n]):
                    for name, (tool, arguments) in calls.items():
                        t0 = time.perf_counter()
                        result = await client.call_tool(tool, arguments)
                        times[name].append((time.perf_counter() - t0) * 1000)
                        assert not result.is_error, result.content
                results = {name: percentiles(values) for name, values in times.items()}
                X = np.asarray(rows)
                raw = []
                for _ in range(repeats[n]):
                    t0 = time.perf_counter()
                    estimator.decision_function(X)
                    raw.append((time.perf_counter() - t0) * 1000)
                results["raw"] = percentiles(raw)
                table.append((n, results))
            sizes = {}
            for label, extra in (("default", {}), ("exact_scores", {"exact_scores": True}),
                                 ("summary_only", {"summary_only": True})):
                sizes[label] = wire_bytes(await client.call_tool("predict", {"rows": thousand, **extra}))
            exact = await client.call_tool("predict", {"rows": thousand, "exact_scores": True})
            old_text = json.dumps({k: v for k, v in exact.structured_content.items()
                                   if k not in ("score_digits", "summary")}, indent=2)
            sizes["before (exact + indented text copy)"] = (
                wire_bytes(exact) - len(exact.content[0].text.encode()) + len(old_text.encode()))

    print(f"spawn -> initialize answered: {initialized:7.0f} ms (median of {SPAWNS})")
    print(f"spawn -> first predict answered (saved scorer served at start): {first_predict:7.0f} ms (target: 500)")
    print(f"floors in this run (median of {SPAWNS}; wall, CPU): python -c pass {floor_python[0]:.0f}, "
          f"{floor_python[1]:.0f} ms; importing the MCP SDK's server {floor_sdk[0]:.0f}, {floor_sdk[1]:.0f} ms; "
          f"a bare SDK server with one tool: initialize {bare_init:.0f} ms, first call answered {bare_first:.0f} ms")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f}")
    print()
    print(f"{'rows':>6} | {'list_models p50':>15} {'p95':>7} | {'echo p50':>9} {'p95':>7} | {'predict p50':>11} "
          f"{'p95':>7} | {'raw sklearn p50':>15}")
    for n, r in table:
        print(f"{n:>6} | {r['list_models'][0]:15.2f} {r['list_models'][1]:7.2f} | {r['echo'][0]:9.2f} "
              f"{r['echo'][1]:7.2f} | {r['predict'][0]:11.2f} {r['predict'][1]:7.2f} | {r['raw'][0]:15.2f}")
    one_row = table[0][1]
    print()
    print(f"one-row predict over stdio: list_models(limit=1) + {one_row['predict'][0] - one_row['list_models'][0]:.2f} ms "
          "at p50 (target: + 0.3 ms)")
    print("bytes of a 1,000-row predict answer on the wire: "
          + ", ".join(f"{label} {size:,}" for label, size in sizes.items()))
    before = sizes["before (exact + indented text copy)"]
    print(f"default answer is {100 * (1 - sizes['default'] / before):.0f} % smaller than before (target: 60 %)")


if __name__ == "__main__":
    anyio.run(main)
