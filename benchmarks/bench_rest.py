"""One-row predict over REST vs over /mcp vs a bare FastAPI endpoint, on one HTTP server, in one run.

    python benchmarks/bench_rest.py [--calls 300]

Spawns one server process: the real HTTP app of `model-mcp serve --transport http` (the same
`build_http_app`: /mcp, /api/v1, the Host/Origin check), over a home with a deployed
IsolationForest (100 trees, 8 features), plus one bare FastAPI app mounted at /bare whose one
endpoint reads the JSON body, calls the same `ModelManager.predict` in a worker thread and answers
the dict as JSON: no request model, no query check, no response model, no problem mapping. That is
the framework's floor for the same work. The client (this process) keeps one connection per
interface and measures wall time per call, the three interfaces taking turns in rounds so that
load on a shared machine falls on all three alike.

Prints p50 and p95 (ms) of each, and REST minus bare. Target (issue 11): REST within 1 ms of bare.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

SERVER_SCRIPT = '''
import sys
import anyio.to_thread
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Mount

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.http_app import build_http_app
from model_mcp.logs import setup_logging
from model_mcp.server import build_server
from model_mcp.settings import Settings

home, port = sys.argv[1], int(sys.argv[2])
setup_logging("WARNING")
settings = Settings(home=home, transport="http", port=port)
manager = ModelManager(settings)
manager.start()
package = samples.build_package(f"{home}/../bench.zip", version="bench")
manager.import_zip(path=str(package))
manager.deploy(version="bench")
app = build_http_app(build_server(manager), settings, manager)

bare = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

@bare.post("/predict")
async def bare_predict(request: Request) -> JSONResponse:
    body = await request.json()
    answer = await anyio.to_thread.run_sync(lambda: manager.predict(rows=body["rows"]))
    return JSONResponse(answer)

app.router.routes.insert(0, Mount("/bare", app=bare))
uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, log_level="warning")
'''


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


async def measure(port: int, calls: int, warmup: int) -> dict[str, list[float]]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from model_mcp import samples

    rows = samples.sample_rows(1)
    base = f"http://127.0.0.1:{port}"
    timings: dict[str, list[float]] = {"rest": [], "mcp": [], "bare": []}
    async with httpx2.AsyncClient(base_url=base, timeout=60) as http, \
            create_mcp_http_client() as mcp_http, \
            Client(streamable_http_client(f"{base}/mcp", http_client=mcp_http)) as mcp:

        async def rest() -> None:
            response = await http.post("/api/v1/predict", json={"rows": rows})
            assert response.status_code == 200, response.text

        async def bare() -> None:
            response = await http.post("/bare/predict", json={"rows": rows})
            assert response.status_code == 200, response.text

        async def via_mcp() -> None:
            result = await mcp.call_tool("predict", {"rows": rows})
            assert not result.is_error

        runs = {"rest": rest, "mcp": via_mcp, "bare": bare}
        for index in range(warmup + calls):
            for name, call in runs.items():
                started = time.perf_counter()
                await call()
                if index >= warmup:
                    timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MODEL_MCP_TOKEN", None)
        process = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(home), str(port)], env=env)
        try:
            wait_for(port, process)
            timings = anyio.run(measure, port, args.calls, args.warmup)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"one-row predict, {args.calls} calls each after {args.warmup} warm-up, one server, keep-alive")
    print(f"{'interface':<28}{'p50 ms':>10}{'p95 ms':>10}")
    labels = {"bare": "bare FastAPI endpoint", "rest": "REST /api/v1/predict", "mcp": "MCP tools/call predict"}
    for name in ("bare", "rest", "mcp"):
        p50, p95 = percentiles(timings[name])
        print(f"{labels[name]:<28}{p50:>10.2f}{p95:>10.2f}")
    bare50, bare95 = percentiles(timings["bare"])
    rest50, rest95 = percentiles(timings["rest"])
    print(f"REST - bare: p50 {rest50 - bare50:+.2f} ms, p95 {rest95 - bare95:+.2f} ms (target: within 1 ms)")


if __name__ == "__main__":
    main()
