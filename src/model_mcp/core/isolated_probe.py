"""The first load and predict of a model, in a separate process that may crash or hang.

A model made only of trusted types can still crash the process that predicts with it (a tree
child index past the node array makes scikit-learn's compiled code read out of bounds: SIGSEGV)
or hang it (a tree child pointing back to an ancestor loops forever with the GIL released, so
no Python-level timeout can stop it). `model_checks.structural_problems` catches the cases we
know; this module contains the ones we don't: `run_isolated_probe` loads `model.joblib` with the
trusted-type loader in a child process, checks its structure, predicts on the given rows and
reports back. A crash, a hang or an exhausted memory limit there fails validation instead of
taking the server down.

The child:
- is a fresh interpreter in isolated mode (`python -I -c <bootstrap> request.json`): no user
  site, no `PYTHON*` variables, no cwd on `sys.path`; the bootstrap puts the parent's absolute
  `sys.path` entries in front (so an editable or source checkout of model_mcp imports the same
  code), then `extra_sys_path` at the end (it cannot shadow scikit-learn);
- runs in a private temporary folder with a minimal environment (PATH, LANG, a private
  HOME/TMPDIR, one BLAS/OpenMP thread, joblib without worker processes);
- sets its own limits first thing, before reading the model: address space `memory_mb`
  (RLIMIT_AS), CPU time a little over `timeout_s` (RLIMIT_CPU), no core dumps, a 16 MiB cap on
  file writes. (Set by the child rather than in a `preexec_fn`, which can deadlock when the
  parent has threads, as the server does);
- leads its own session (process group); the parent enforces the wall-clock timeout and kills
  the whole group with SIGKILL, on timeout and after a normal exit (stragglers);
- gets the rows as a `.npy` file read with `allow_pickle=False`, writes its progress (which stage
  it reached) and a JSON result to files in the temporary folder. stdout/stderr go to a log file
  of which only the last line is ever reported.

Cost: the child imports numpy and scikit-learn (about 0.7 s) and builds the trusted-type allowlist
(about 0.2 s) before it can load a model. Measured on the development machine (2 cores, busy)
for a 100-tree IsolationForest and 100 rows: 1.1 to 1.4 s for the whole probe, against about
50 ms for load + check + predict + scores in a process that has already imported scikit-learn.
That is paid at validation (import, validate, deploy), never per predict request.

The wall-clock timeout covers everything the child does: start-up, imports, load, the structural
check and the predictions.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ProbeResult", "run_isolated_probe"]

# Caps on what the child may write (result, progress, its own output), in bytes.
_CHILD_FILE_LIMIT = 16 * 1024 * 1024
# How many structural problems a failure sentence names.
_PROBLEMS_SHOWN = 5

_BOOTSTRAP = (
    "import json, sys\n"
    "request = json.load(open(sys.argv[1], encoding='utf-8'))\n"
    "sys.path[:0] = request['sys_path']\n"
    "sys.path.extend(request['extra_sys_path'])\n"
    "from model_mcp.core.isolated_probe import _child_main\n"
    "sys.exit(_child_main(request))\n"
)


@dataclass
class ProbeResult:
    """What the isolated probe found. `ok` is False for any failure; `detail` says why."""

    ok: bool
    detail: str
    duration_ms: float  # wall time in the parent: spawn, imports, load, checks, predictions
    problems: list[str] = field(default_factory=list)  # structural problems found in the child
    code: str | None = None  # the contract code when the load failed (untrusted_model, ...)
    load_ms: float | None = None  # measured inside the child
    probe_ms: float | None = None  # predict + scores, measured inside the child


def run_isolated_probe(
    model_path: Path,
    X: np.ndarray,
    *,
    extra_trusted: Iterable[tuple[str, str]] = (),
    timeout_s: float = 30.0,
    memory_mb: int = 2048,
    extra_sys_path: Sequence[str] = (),
    check_structure: bool = True,
    max_bytes: int | None = None,
    scratch_parent: Path | None = None,
) -> ProbeResult:
    """Load `model_path` with the trusted loader in a child process and predict on `X`.

    The child checks the model's structure (`structural_problems`, skipped only when
    `check_structure` is False: tests do that to show the isolation alone contains a crash),
    then calls `predict` and the first of `decision_function` / `score_samples`, and checks
    that the outputs are finite with one value per row. Never raises for a bad model: every
    failure is `ok=False` with a sentence. Raises ValueError when `X` is not a non-empty 2-D
    numeric array (a caller's mistake).
    """
    rows = _as_rows(X)
    started = time.perf_counter()
    # Under the store's staging/ when given, named with our pid: a restart after a crash removes it.
    with tempfile.TemporaryDirectory(prefix=f"probe-{os.getpid()}-", dir=scratch_parent) as scratch:
        folder = Path(scratch)
        np.save(folder / "rows.npy", rows, allow_pickle=False)
        request = {
            "model": str(Path(model_path).resolve()),
            "rows": str(folder / "rows.npy"),
            "result": str(folder / "result.json"),
            "progress": str(folder / "progress.txt"),
            "trusted": [list(pair) for pair in extra_trusted],
            "max_bytes": max_bytes,
            "parent_pid": os.getpid(),
            "sys_path": [p for p in sys.path if p and os.path.isabs(p)],
            "extra_sys_path": [str(p) for p in extra_sys_path],
            "check_structure": bool(check_structure),
            "memory_bytes": int(memory_mb) * 1024 * 1024,
            "cpu_s": int(math.ceil(timeout_s)) + 1,
            "file_bytes": _CHILD_FILE_LIMIT,
        }
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        returncode, timed_out = _run_child(folder, timeout_s)
        duration_ms = (time.perf_counter() - started) * 1000
        stage = _last_line(folder / "progress.txt") or "starting"
        if timed_out:
            return ProbeResult(False, f"The probe process did not finish within {timeout_s:g} s (it was "
                               f"{stage}) and was stopped: a model whose tree loops, or one far too slow "
                               "to serve.", duration_ms)
        if returncode < 0:
            return ProbeResult(False, _signal_sentence(-returncode, stage, timeout_s, memory_mb), duration_ms)
        result = _read_result(folder / "result.json")
        if result is None:
            last = _last_line(folder / "output.log")
            detail = f"The probe process exited with status {returncode} while {stage}, without a result"
            detail += f" (its last words: {last[:200]})." if last else "."
            if "MemoryError" in (last or ""):
                detail += f" Its memory limit is {memory_mb} MiB."
            return ProbeResult(False, detail, duration_ms)
    return _from_child(result, duration_ms, memory_mb)


# --- the parent ---------------------------------------------------------------------------------
def _as_rows(X: Any) -> np.ndarray:
    rows = np.asarray(X)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0 or rows.dtype.kind not in "biuf":
        raise ValueError("The probe rows must be a non-empty 2-D numeric array.")
    return np.ascontiguousarray(rows, dtype=np.float64)


def _child_env(folder: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(folder),
        "TMPDIR": str(folder),
        # One thread each: less memory under RLIMIT_AS (OpenBLAS allocates per thread) and no
        # worker processes outside the probe's budget.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "JOBLIB_MULTIPROCESSING": "0",
    }


def _run_child(folder: Path, timeout_s: float) -> tuple[int, bool]:
    """Run the child to completion or the deadline; kill its group either way. -> (rc, timed_out)."""
    with open(folder / "output.log", "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-I", "-c", _BOOTSTRAP, str(folder / "request.json")],
            cwd=folder, env=_child_env(folder), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    try:
        exited = _wait_without_reaping(process.pid, timeout_s)
    finally:
        # The leader is not reaped yet, so its pid (the group id) cannot have been reused:
        # the group killed here is the probe's, stragglers (worker processes) included.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
    return process.returncode, not exited


def _wait_without_reaping(pid: int, timeout_s: float) -> bool:
    """True once `pid` has exited (left as a zombie), False at the deadline."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): poll with WNOWAIT
        deadline, pause = time.monotonic() + timeout_s, 0.001
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return False
    try:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        return bool(ready)
    finally:
        os.close(fd)


def _signal_sentence(number: int, stage: str, timeout_s: float, memory_mb: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGXCPU:
        return (f"The probe process exceeded its CPU-time limit of about {timeout_s:g} s while {stage} "
                "and was stopped (SIGXCPU): a model whose tree loops, or one far too slow to serve.")
    sentence = f"The probe process crashed with {name} while {stage}"
    if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL):
        sentence += (": the model's state makes compiled code fail outside Python (for example an index "
                     "past the end of an array).")
    elif number == signal.SIGKILL:
        sentence += f" (its memory limit is {memory_mb} MiB; the system may have run out of memory)."
    else:
        sentence += "."
    return sentence


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and isinstance(result.get("ok"), bool) else None


def _last_line(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return None
    return lines[-1].strip() if lines else None


def _from_child(result: dict[str, Any], duration_ms: float, memory_mb: int) -> ProbeResult:
    problems = [str(p) for p in result.get("problems") or []]
    detail = str(result.get("detail", ""))
    if problems:
        shown = "; ".join(problems[:_PROBLEMS_SHOWN])
        more = len(problems) - _PROBLEMS_SHOWN
        detail = "The model's structure is unsafe to predict with: " + shown
        detail += f"; and {more} more problem(s)." if more > 0 else ""
    if result.get("memory_error"):
        detail += f" The probe's memory limit is {memory_mb} MiB."
    return ProbeResult(
        ok=result["ok"], detail=detail, duration_ms=duration_ms, problems=problems,
        code=result.get("code"), load_ms=result.get("load_ms"), probe_ms=result.get("probe_ms"),
    )


# --- the child ----------------------------------------------------------------------------------
def _child_main(request: dict[str, Any]) -> int:
    """Runs in the probe process: limits, load, structure, predict; the result as JSON."""
    _die_with_parent(request.get("parent_pid"))
    _limit_self(request)
    progress = open(request["progress"], "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def reach(stage: str) -> None:
        progress.write(stage + "\n")
        progress.flush()

    result = _probe_in_child(request, reach)
    reach("reporting")
    Path(request["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def _die_with_parent(parent_pid: int | None) -> None:
    """Linux: be killed when the server dies (a SIGKILLed server must not leave probes running)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the prctl took effect


def _limit_self(request: dict[str, Any]) -> None:
    import resource

    for limit, value in ((resource.RLIMIT_AS, request["memory_bytes"]), (resource.RLIMIT_CPU, request["cpu_s"]),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, request["file_bytes"])):
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        extra = 1 if limit == resource.RLIMIT_CPU else 0  # SIGXCPU at the soft limit, SIGKILL after
        hard_value = value + extra if hard == resource.RLIM_INFINITY else min(value + extra, hard)
        resource.setrlimit(limit, (value, hard_value))


def _probe_in_child(request: dict[str, Any], reach: Any) -> dict[str, Any]:
    from model_mcp.core.errors import ModelMcpError
    from model_mcp.core.unpickler import load_trusted

    reach("loading the model")
    started = time.perf_counter()
    try:
        model = load_trusted(request["model"], [tuple(p) for p in request["trusted"]],
                             max_bytes=request.get("max_bytes"))
    except ModelMcpError as exc:
        return {"ok": False, "code": exc.code, "detail": f"[{exc.code}] {exc}",
                "memory_error": isinstance(exc.__cause__, MemoryError)}
    load_ms = (time.perf_counter() - started) * 1000
    rows = np.load(request["rows"], allow_pickle=False)

    if request["check_structure"]:
        from model_mcp.core.model_checks import structural_problems

        reach("checking the model's structure")
        problems = structural_problems(model, int(rows.shape[1]))
        if problems:
            return {"ok": False, "problems": problems, "load_ms": load_ms, "detail": ""}

    from model_mcp.core.model_checks import anomaly_share, output_problems, probe_outputs

    reach("predicting")
    started = time.perf_counter()
    try:
        labels, scores, scorer = probe_outputs(model, rows, reach)
    except Exception as exc:  # noqa: BLE001 - the model is untrusted: any failure is a finding
        return {"ok": False, "load_ms": load_ms, "memory_error": isinstance(exc, MemoryError),
                "detail": f"Predicting {rows.shape[0]} rows in the probe process raised "
                          f"{type(exc).__name__}: {str(exc)[:200]}."}
    probe_ms = (time.perf_counter() - started) * 1000
    reach("checking the outputs")
    findings = output_problems(labels, scores, rows.shape[0])
    if findings:
        return {"ok": False, "load_ms": load_ms, "probe_ms": probe_ms,
                "detail": "The probe process found: " + "; ".join(findings) + "."}
    detail = (f"In a separate process the model loaded in {load_ms:.0f} ms and predicted {rows.shape[0]} rows "
              f"in {probe_ms:.1f} ms, with finite labels")
    detail += f" and {scorer} scores of the right shape" if scorer else " of the right shape (no scores)"
    share = anomaly_share(labels)
    if share is not None:
        detail += f"; {share:.0%} flagged as anomalies"
    return {"ok": True, "load_ms": load_ms, "probe_ms": probe_ms, "detail": detail + "."}

