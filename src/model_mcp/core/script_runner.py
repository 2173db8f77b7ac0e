"""Run a package's validate_model.py, only when the operator enabled it, in a separate process.

The script is untrusted code. It runs:
- in a fresh interpreter in isolated mode (`-I`: no user site, no PYTHON* variables, no cwd on path),
- with a clean environment (only PATH, LANG and a private HOME/TMPDIR),
- in a temporary copy of the package as its working folder (the stored package stays unchanged),
- under CPU-time and address-space limits (setrlimit) and a wall-clock timeout, killed as a group.
Exit status 0 passes; anything else fails, with the tail of its output as the detail.

This is containment against accidents and sloppy scripts, not a sandbox against a determined
attacker: the script still runs as the server's user and can read what that user can read. The
README says so; operators who import from untrusted sources keep the script disabled (the default).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ScriptOutcome:
    status: str  # "pass" | "fail"
    detail: str
    duration_s: float


def run_validation_script(package_dir: Path, *, timeout_s: float, memory_mb: int) -> ScriptOutcome:
    import time

    with tempfile.TemporaryDirectory(prefix="model-mcp-script-") as scratch:
        workdir = Path(scratch) / "package"
        shutil.copytree(package_dir, workdir, symlinks=False)
        home = Path(scratch) / "home"
        home.mkdir()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "TMPDIR": scratch}
        cpu_s = max(1, int(timeout_s))
        memory_bytes = memory_mb * 1024 * 1024

        def limit() -> None:  # runs in the child before exec
            os.setsid()
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-I", "validate_model.py"],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=limit, close_fds=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            return ScriptOutcome("fail", f"validate_model.py did not finish within {timeout_s:g} s and was stopped.",
                                 time.monotonic() - started)
        duration = time.monotonic() - started
        tail = output.decode("utf-8", "replace").strip()[-400:]
        if process.returncode == 0:
            return ScriptOutcome("pass", f"validate_model.py exited 0 in {duration:.1f} s.", duration)
        if process.returncode < 0:
            reason = f"was killed by signal {signal.Signals(-process.returncode).name}"
            if -process.returncode in (signal.SIGXCPU, signal.SIGKILL):
                reason += " (CPU-time limit)"
        else:
            reason = f"exited with status {process.returncode}"
        if "MemoryError" in tail:
            reason += f" (memory limit of {memory_mb} MiB)"
        detail = f"validate_model.py {reason}." + (f" Output: {tail}" if tail else "")
        return ScriptOutcome("fail", detail, duration)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
