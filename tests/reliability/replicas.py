"""Replicas as real processes: `model-mcp serve --transport http` on free ports, each on its own home,
all on one PostgreSQL database (MODEL_MCP_DATABASE_URL) and one shared artifact folder
(MODEL_MCP_ARTIFACT_ROOT), driven over REST. Used by tests/reliability/test_replicas.py and
benchmarks/bench_replicas.py.

Each replica writes its log to `<folder>/stderr.log` (appended across restarts), which the failing
assertions quote. Servers run without the isolated probe (a child interpreter per new model, ~1.2 s,
orthogonal to what replicas share) and without the background check, with single-thread BLAS pools.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from tests.reliability.serverproc import SINGLE_THREAD_ENV
from tests.reliability.test_monitoring_faults import QUIET

API = "/api/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replica_env(database_url: str, artifacts: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment (the parent's MODEL_MCP_* variables must not leak in) naming the database and
    the shared folder."""
    return {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        **SINGLE_THREAD_ENV, **QUIET,
        "MODEL_MCP_DATABASE_URL": database_url, "MODEL_MCP_ARTIFACT_ROOT": str(artifacts),
        **(extra or {}),
    }


@dataclass
class Replica:
    """One server process on `folder/home`, listening on `port`; `start()` again after `kill()` is the
    restart (same home, same port)."""

    name: str
    folder: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    client: httpx2.Client | None = None

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / "stderr.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Replica:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "model_mcp", "serve", "--transport", "http", "--port", str(self.port),
                 "--home", str(self.home)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.client = httpx2.Client(base_url=self.base_url + API, timeout=60)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /healthz answers (the HTTP app is up; the manager started before it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited with {self.process.returncode}: {self.tail()}")
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"replica {self.name} did not answer /healthz within {timeout} s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._close_client()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_client()

    def _close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # --- REST -------------------------------------------------------------------------------------
    def http(self) -> httpx2.Client:
        assert self.client is not None, f"replica {self.name} is not running"
        return self.client

    def import_zip(self, data: bytes) -> httpx2.Response:
        return self.http().post("/models", content=data, headers={"Content-Type": "application/zip"})

    def deploy(self, version: str) -> httpx2.Response:
        return self.http().post(f"/models/{version}/deploy", json={})

    def rollback(self, model_name: str, to_version: str | None = None) -> httpx2.Response:
        return self.http().post("/rollback", json={"model_name": model_name, "to_version": to_version})

    def predict(self, rows: list[list[float]], model_name: str, *, exact: bool = True,
                client: httpx2.Client | None = None) -> httpx2.Response:
        return (client or self.http()).post("/predict", json={"rows": rows, "model_name": model_name,
                                                               "exact_scores": exact})

    def list_models(self, **query: Any) -> httpx2.Response:
        return self.http().get("/models", params=query)


def ok(response: httpx2.Response, replica: Replica | None = None) -> dict[str, Any]:
    """The JSON of a 2xx answer; else an assertion naming the problem (and the replica's log tail)."""
    if not 200 <= response.status_code < 300:
        where = f"\n--- {replica.name} log ---\n{replica.tail()}" if replica is not None else ""
        raise AssertionError(f"{response.request.method} {response.request.url} -> {response.status_code}: "
                             f"{response.text[:600]}{where}")
    return response.json()


def problem_code(response: httpx2.Response) -> str:
    assert response.status_code >= 400, (response.status_code, response.text[:300])
    return response.json()["code"]


def start_all(replicas: list[Replica], timeout: float = 90.0) -> None:
    """Start every replica at once (their imports overlap), then wait for each."""
    for replica in replicas:
        replica.start()
    for replica in replicas:
        replica.wait_ready(timeout)


def wait_serving(replica: Replica, rows: list[list[float]], model_name: str, version: str,
                 timeout: float = 30.0, client: httpx2.Client | None = None, since: float | None = None) -> float:
    """Poll predicts until `replica` answers `version`; the seconds from `since` (a time.perf_counter()
    reading, default now) to that answer."""
    started = time.perf_counter() if since is None else since
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        response = replica.predict(rows, model_name, client=client)
        if response.status_code == 200:
            last = response.json()["model_version"]
            if last == version:
                return time.perf_counter() - started
        else:
            last = response.text[:200]
        time.sleep(0.005)
    raise AssertionError(f"replica {replica.name} did not serve {model_name} {version} within {timeout} s "
                         f"(last answer: {last})\n{replica.tail()}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
