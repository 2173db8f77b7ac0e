"""Run a package's validate_model.py, only when the operator enabled it, in a separate process.

The script is untrusted code. It runs:
- in a fresh interpreter in isolated mode (`-I`: no user site, no PYTHON* variables, no cwd on path),
- with a clean environment (only PATH, LANG, a private HOME/TMPDIR, and one thread for the numeric
  libraries),
- in a temporary copy of the package as its working folder (the stored package stays unchanged;
  links in the package are not copied, so nothing outside it is pulled in),
- under CPU-time, address-space and file-size limits (setrlimit) and a wall-clock timeout, in its
  own session, whose whole process group is killed when the script ends or is stopped.
Exit status 0 passes; anything else fails, with the tail of its output as the detail.

How the limits are put in place: a small launcher interpreter sets them on itself and then
`exec`s the script's interpreter, which inherits them. Not `preexec_fn`: that runs Python code
between fork and exec, which the subprocess documentation calls unsafe in a threaded program,
and the server runs this from a worker thread.

The output goes to a file in the scratch folder, not a pipe: the file is bounded by the file-size
limit (a script that prints without end is stopped by SIGXFSZ instead of growing the server's
memory), and a leftover background process holding a pipe open cannot keep us waiting.

One thread for OpenBLAS/OpenMP/MKL: under an address-space limit, OpenBLAS's per-thread buffers
made `import sklearn` spin until the timeout instead of failing (checked here with 256 MiB), and
every extra thread also spends the same CPU-time budget.

This is containment against accidents and sloppy scripts, not a sandbox against a determined
attacker: the script still runs as the server's user and can read what that user can read, and a
process that starts its own session escapes the group kill. The README says so; operators who
import from untrusted sources keep the script disabled (the default).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT_NAME = "validate_model.py"
MAX_OUTPUT_BYTES = 64 * 1024 * 1024  # also the largest file the script may write
_TAIL_BYTES = 400
# What running out of address space looks like in the output: Python's own error, and a C
# extension that cannot be mapped while importing.
_OUT_OF_MEMORY = ("MemoryError", "failed to map segment", "Cannot allocate memory")

# Runs in the launcher interpreter: lower the limits (never above the server's own hard limits),
# then become the script's interpreter with `exec`, which keeps them.
_LAUNCHER = """\
import os, resource, sys
def cap(kind, soft, hard):
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))
cpu, memory, fsize = (int(v) for v in sys.argv[1:4])
cap(resource.RLIMIT_CPU, cpu, cpu + 1)  # SIGXCPU at the limit, SIGKILL a second later
cap(resource.RLIMIT_AS, memory, memory)
cap(resource.RLIMIT_FSIZE, fsize, fsize)
cap(resource.RLIMIT_CORE, 0, 0)
os.execv(sys.executable, [sys.executable, "-I", sys.argv[4]])
"""


@dataclass
class ScriptOutcome:
    status: str  # "pass" | "fail"
    detail: str
    duration_s: float


def run_validation_script(package_dir: Path, *, timeout_s: float, memory_mb: int) -> ScriptOutcome:
    """Run `package_dir/validate_model.py` under the limits above; never raises for the script's faults."""
    with tempfile.TemporaryDirectory(prefix="model-mcp-script-", ignore_cleanup_errors=True) as scratch:
        workdir = Path(scratch) / "package"
        try:
            shutil.copytree(package_dir, workdir, symlinks=True, ignore=_links)
        except (OSError, shutil.Error) as exc:
            return ScriptOutcome("fail", f"{SCRIPT_NAME} was not run: the package could not be copied to a "
                                         f"working folder ({_os_reason(exc)}).", 0.0)
        home = Path(scratch) / "home"
        home.mkdir()
        output_path = Path(scratch) / "output.log"
        started = time.monotonic()
        with open(output_path, "wb") as output:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                _argv(timeout_s, memory_mb),
                cwd=workdir, env=_clean_env(home, Path(scratch)), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, close_fds=True, start_new_session=True,
            )
            try:
                finished = _wait_unreaped(process.pid, timeout_s)
            finally:
                # Before reaping: while the script is a zombie its pid (the group id) cannot be
                # reused, so only the script's own group is hit, background processes included.
                _kill_group(process)
                process.wait()
        returncode = process.returncode if finished else None
        duration = time.monotonic() - started
        tail = _tail(output_path, workdir)
        output_full = output_path.stat().st_size >= MAX_OUTPUT_BYTES
    if returncode is None:
        return ScriptOutcome(
            "fail", f"{SCRIPT_NAME} did not finish within {timeout_s:g} s and was stopped.", duration
        )
    if returncode == 0:
        return ScriptOutcome("pass", f"{SCRIPT_NAME} exited 0 in {duration:.1f} s.", duration)
    reason = _reason(returncode, tail, memory_mb)
    if output_full and "SIGXFSZ" not in reason:
        reason += f" (its output reached the limit of {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB)"
    detail = f"{SCRIPT_NAME} {reason}." + (f" Output: {tail}" if tail else "")
    return ScriptOutcome("fail", detail, duration)


def _argv(timeout_s: float, memory_mb: int) -> list[str]:
    # One second over the wall-clock limit: the timeout stops a single busy thread first (one clear
    # message); the CPU limit is the backstop for a script that burns several cores at once.
    cpu_s = math.ceil(timeout_s) + 1
    memory_bytes = memory_mb * 1024 * 1024
    return [sys.executable, "-I", "-c", _LAUNCHER, str(cpu_s), str(memory_bytes), str(MAX_OUTPUT_BYTES),
            SCRIPT_NAME]


def _clean_env(home: Path, scratch: Path) -> dict[str, str]:
    """Nothing from the server's environment (tokens, paths, settings) reaches the script."""
    single_thread = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), "TMPDIR": str(scratch), **single_thread}


def _links(folder: str, names: list[str]) -> set[str]:
    """copytree's `ignore`: leave out links, which could pull in files from outside the package."""
    return {name for name in names if os.path.islink(os.path.join(folder, name))}


def _tail(output_path: Path, workdir: Path) -> str:
    """The last few hundred bytes of output, with the scratch path shortened."""
    with open(output_path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 4 * _TAIL_BYTES))
        text = handle.read().decode("utf-8", "replace")
    return text.replace(str(workdir) + os.sep, "").strip()[-_TAIL_BYTES:]


def _reason(returncode: int, tail: str, memory_mb: int) -> str:
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        reason = f"was killed by signal {name}"
        if number in (signal.SIGXCPU, signal.SIGKILL):
            reason += " (CPU-time limit)"
        elif number == signal.SIGXFSZ:
            reason += f" (output or file-size limit of {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB)"
    else:
        reason = f"exited with status {returncode}"
    if any(sign in tail for sign in _OUT_OF_MEMORY):
        reason += f" (memory limit of {memory_mb} MiB)"
    return reason


def _wait_unreaped(pid: int, timeout_s: float) -> bool:
    """Wait for the script to exit, without reaping it; answer whether it exited in time."""
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped elsewhere: it has exited
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


def _os_reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) else type(exc).__name__


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the script's process group (its session: `start_new_session` made pgid == pid)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
