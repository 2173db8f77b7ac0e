"""One background checker per home: the first process to take monitor-check.lock evaluates, the
others skip their ticks (no alert counted twice) until it ends, then one of them takes over."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from model_mcp.core.manager import ModelManager
from model_mcp.core.monitor_check import BackgroundCheck
from model_mcp.settings import Settings


def _check(home: Path) -> BackgroundCheck:
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    return BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000, lock_path=home / "monitor-check.lock")


def test_only_one_checker_leads_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first, second = _check(home), _check(home)
    assert first.leads() and first.leads()  # taken once, kept
    assert not second.leads()
    first.stop()
    assert second.leads()
    second.stop()


def test_a_checker_in_a_killed_process_lets_go(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(home / 'monitor-check.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        check = _check(home)
        assert not check.leads()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while not check.leads():
        assert time.monotonic() < deadline, "the lock of a killed process was not released"
        time.sleep(0.05)
    check.stop()
