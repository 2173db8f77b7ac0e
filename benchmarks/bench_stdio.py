"""MCP round trips over stdio, and server start to first answer.

    python benchmarks/bench_stdio.py

Spawns the real server over stdio (the same `build_server` as `model-mcp serve`, plus one bare
`echo` tool, so both are measured on the same server, transport and client in the same run) and
prints p50/p95 of:
- `echo` with a payload the size of 1 and 1,000 rows (the protocol's own cost);
- `predict` of 1 and 1,000 rows on a deployed IsolationForest (100 trees);
- raw scikit-learn on the same model in this process (decision_function; the floor);
and the time from spawn to the `initialize` answer and to the first predict answer, with a
deployed model that must be loaded at start.

Targets (issue 3): a one-row predict over stdio within the raw scikit-learn time + 3 ms at p50;
`initialize` answered before the deployed model finished loading.
"""

from __future__ import annotations

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
    repeats = {1: 300, 1000: 60}

    started = time.perf_counter()
    with open(os.devnull, "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            initialized = time.perf_counter() - started
            await client.call_tool("predict", {"rows": one})
            first_predict = time.perf_counter() - started
            table = []
            for rows in (one, thousand):
                n = len(rows)
                results = {}
                for tool in ("echo", "predict"):
                    times = []
                    for _ in range(repeats[n]):
                        t0 = time.perf_counter()
                        result = await client.call_tool(tool, {"rows": rows})
                        times.append((time.perf_counter() - t0) * 1000)
                        assert not result.is_error, result.content
                    results[tool] = percentiles(times)
                X = np.asarray(rows)
                raw = []
                for _ in range(repeats[n]):
                    t0 = time.perf_counter()
                    estimator.decision_function(X)
                    raw.append((time.perf_counter() - t0) * 1000)
                results["raw"] = percentiles(raw)
                table.append((n, results))

    print(f"spawn -> initialize answered: {initialized * 1000:7.0f} ms")
    print(f"spawn -> first predict answered (model loaded at start): {first_predict * 1000:7.0f} ms")
    print()
    print(f"{'rows':>6} | {'echo p50':>9} {'p95':>7} | {'predict p50':>11} {'p95':>7} | {'raw sklearn p50':>15} | "
          f"{'predict - raw (p50)':>19}")
    for n, r in table:
        print(f"{n:>6} | {r['echo'][0]:9.2f} {r['echo'][1]:7.2f} | {r['predict'][0]:11.2f} {r['predict'][1]:7.2f} | "
              f"{r['raw'][0]:15.2f} | {r['predict'][0] - r['raw'][0]:19.2f}")
    over = table[0][1]["predict"][0] - table[0][1]["raw"][0]
    print()
    print(f"one-row predict over stdio costs raw + {over:.2f} ms at p50 (target: + 3 ms)")
    print(f"initialize answered before the first predict by {(first_predict - initialized) * 1000:.0f} ms "
          "(the model loads in a thread)")


if __name__ == "__main__":
    anyio.run(main)
