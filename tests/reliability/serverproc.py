"""`model-mcp serve` as a separate process, driven with raw JSON-RPC lines over its stdio.

The SDK client hides when a request leaves; the crash test needs to know exactly when the
`tools/call` line was written, so that it can SIGKILL the server a chosen number of milliseconds
later. So this driver writes the MCP messages itself (initialize, notifications/initialized,
tools/call), one JSON object per line, and reads the answers on a thread.

Two ways to start a server, both running `model_mcp.cli.main(["serve", "--home", HOME])`, which is
exactly what `python -m model_mcp serve` and the `model-mcp` console script run:

- `ServerProcess.spawn(home)`: a fresh interpreter (`python -m model_mcp serve --home HOME`).
  Faithful, but each start costs ~0.7 s of imports, plus ~0.9 s for scikit-learn at the first load.
- `Zygote.start_server(home)`: a child forked from a parent that has already imported model_mcp and
  scikit-learn (the "zygote" pattern of Android and of multiprocessing's forkserver). Same code
  from `main()` on, without the import time, so that dozens of kills fit in a few seconds. The
  zygote starts no threads before forking (checked), and pins BLAS/OpenMP pools to one thread so
  that no pool exists to be lost across the fork.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

PROTOCOL_VERSION = "2025-06-18"
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The isolated probe (a child interpreter that loads each new model first, ~1.2 s) is orthogonal to
# what these tests check, and would dominate their time: most servers here run without it.
NO_PROBE = {"MODEL_MCP_ISOLATED_PROBE": "false"}


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a server process: ours, with single-thread BLAS pools."""
    env = {**os.environ, **SINGLE_THREAD_ENV}
    env.update(extra or {})
    return env


class ToolAnswer:
    """One tools/call answer: is_error, structured content and the text of its content."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.raw = message
        if "error" in message:  # a JSON-RPC error (not a tool error)
            self.is_error = True
            self.structured: dict[str, Any] | None = None
            self.text = f"[jsonrpc_error] {message['error'].get('message')}"
            return
        result = message["result"]
        self.is_error = bool(result.get("isError"))
        self.structured = result.get("structuredContent")
        self.text = " ".join(c.get("text", "") for c in result.get("content", []))

    @property
    def code(self) -> str | None:
        """The contract code of a tool error (`[code] sentence`), else None."""
        if not self.is_error or "[" not in self.text:
            return None
        return self.text.split("[", 1)[1].split("]", 1)[0]


class ServerProcess:
    """A running server and the two pipes to it; `kill()` sends SIGKILL and waits for its death."""

    def __init__(self, pid: int, stdin: BinaryIO, stdout: BinaryIO, popen: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self._stdin = stdin
        self._stdout = stdout
        self._popen = popen
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self.sent_at: dict[int, float] = {}  # request id -> time.perf_counter() when written
        self.received_at: dict[int, float] = {}  # request id -> when its answer was read
        self._early: dict[int, dict[str, Any]] = {}  # answers read while waiting for another id
        self._reader = threading.Thread(target=self._read, name=f"server-{pid}-stdout", daemon=True)
        self._reader.start()

    # --- starting ---------------------------------------------------------------------------------
    @classmethod
    def spawn(cls, home: Path, *extra: str, stderr: BinaryIO | int = subprocess.DEVNULL,
              env: dict[str, str] | None = None, preexec_fn: Any = None,
              prefix: Sequence[str] = ()) -> ServerProcess:
        """`python -m model_mcp serve --home HOME` in a fresh interpreter (after `prefix`, a wrapper)."""
        popen = subprocess.Popen(
            [*prefix, sys.executable, "-m", "model_mcp", "serve", "--home", str(home), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=child_env(env),
            preexec_fn=preexec_fn,
        )
        assert popen.stdin is not None and popen.stdout is not None
        return cls(popen.pid, popen.stdin, popen.stdout, popen)

    # --- the protocol -----------------------------------------------------------------------------
    def _read(self) -> None:
        for line in self._stdout:
            line = line.strip()
            if line:
                message = json.loads(line)
                if "id" in message:
                    self.received_at[message["id"]] = time.perf_counter()
                self._answers.put(message)
        self._answers.put(None)  # end of stream: the server exited

    def _send(self, message: dict[str, Any]) -> None:
        self._stdin.write((json.dumps(message) + "\n").encode())
        self._stdin.flush()

    def _request(self, method: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        self.sent_at[self._next_id] = time.perf_counter()
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def _wait_for(self, request_id: int, timeout: float) -> dict[str, Any] | None:
        """The answer to `request_id` (notifications skipped), or None when the server went away."""
        deadline = time.monotonic() + timeout
        while request_id not in self._early:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to request {request_id} within {timeout} s")
            try:
                message = self._answers.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                self._answers.put(None)  # keep the end of stream for later waits
                return None
            if "id" in message:  # answers to concurrent requests arrive in any order
                self._early[message["id"]] = message
        return self._early.pop(request_id)

    def initialize(self, timeout: float = 60.0) -> dict[str, Any]:
        request_id = self._request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "reliability-tests", "version": "0"},
        })
        answer = self._wait_for(request_id, timeout)
        if answer is None:
            raise RuntimeError("the server exited before answering initialize")
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer["result"]

    def send_call(self, tool: str, arguments: dict[str, Any]) -> int:
        """Write one tools/call line and return at once with its id."""
        return self._request("tools/call", {"name": tool, "arguments": arguments})

    def answer(self, request_id: int, timeout: float = 60.0) -> ToolAnswer | None:
        message = self._wait_for(request_id, timeout)
        return ToolAnswer(message) if message is not None else None

    def call(self, tool: str, timeout: float = 60.0, **arguments: Any) -> ToolAnswer:
        answer = self.answer(self.send_call(tool, arguments), timeout)
        if answer is None:
            raise RuntimeError(f"the server exited during {tool}")
        return answer

    def drain(self) -> list[dict[str, Any]]:
        """Every message received and not yet consumed (after a kill: what arrived before it)."""
        self._reader.join(timeout=10)
        found = list(self._early.values())
        self._early.clear()
        while True:
            try:
                message = self._answers.get_nowait()
            except queue.Empty:
                return found
            if message is not None:
                found.append(message)

    # --- stopping ---------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL, then wait until the process is gone (its stdout closed and its pid reaped)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reader.join(timeout=30)
        if self._popen is not None:
            self._popen.wait(timeout=30)
        else:
            _wait_pid_gone(self.pid)
        self._close_pipes()

    def close(self, timeout: float = 30.0) -> int | None:
        """Close stdin (the MCP way to end a stdio server) and wait for a clean exit."""
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        self._reader.join(timeout=timeout)
        code = None
        if self._popen is not None:
            code = self._popen.wait(timeout=timeout)
        else:
            _wait_pid_gone(self.pid, timeout)
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        for pipe in (self._stdin, self._stdout):
            with contextlib.suppress(OSError, ValueError):
                pipe.close()


class Zygote:
    """A parent process with model_mcp and scikit-learn imported, forking servers on request.

    Control channel: a Unix socket pair. The test sends the home as bytes together with three file
    descriptors (the server's stdin, stdout and stderr) as SCM_RIGHTS; the zygote forks, the child
    puts them on 0, 1, 2 and runs `model_mcp.cli.main(["serve", "--home", home])`; the zygote
    answers the child's pid. Children are reaped by the kernel (SIGCHLD ignored in the zygote).
    """

    _CODE = textwrap.dedent("""
        import os, signal, socket, sys, threading
        import model_mcp.cli, model_mcp.serve, model_mcp.server, model_mcp.core.manager
        import model_mcp.core.validation, model_mcp.core.unpickler
        import sklearn.ensemble, sklearn.pipeline, sklearn.preprocessing, sklearn.svm, sklearn.neighbors
        assert threading.active_count() == 1, "the zygote must not run threads before forking"
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        control = socket.socket(fileno=int(sys.argv[1]))
        control.sendall(b"ready\\n")
        while True:
            message, fds, _flags, _addr = socket.recv_fds(control, 4096, 3)
            if not message:
                break
            argv = message.decode().split("\\0")
            pid = os.fork()
            if pid == 0:
                control.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                code = 1
                try:
                    code = model_mcp.cli.main(argv) or 0
                finally:
                    sys.stdout.flush()
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            control.sendall(f"{pid}\\n".encode())
    """)

    def __init__(self, env: dict[str, str] | None = None) -> None:
        """`env` (over ours) is every forked server's environment, e.g. MODEL_MCP_* settings."""
        self._control, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-c", self._CODE, str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=child_env(env),
        )
        theirs.close()
        self._lines = self._control.makefile("rb")
        ready = self._lines.readline()
        if ready != b"ready\n":
            raise RuntimeError("the zygote did not start")
        self._lock = threading.Lock()

    def start_server(self, home: Path, *extra: str, stderr: BinaryIO | None = None) -> ServerProcess:
        argv: Sequence[str] = ["serve", "--home", str(home), *extra]
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        err_fd = stderr.fileno() if stderr is not None else os.open(os.devnull, os.O_WRONLY)
        try:
            with self._lock:
                socket.send_fds(self._control, ["\0".join(argv).encode()], [stdin_read, stdout_write, err_fd])
                pid = int(self._lines.readline())
        finally:
            os.close(stdin_read)
            os.close(stdout_write)
            if stderr is None:
                os.close(err_fd)
        return ServerProcess(pid, os.fdopen(stdin_write, "wb"), os.fdopen(stdout_read, "rb"), None)

    def close(self) -> None:
        self._lines.close()
        self._control.close()
        self._process.wait(timeout=30)


def _wait_pid_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.002)
    raise TimeoutError(f"process {pid} is still alive")

