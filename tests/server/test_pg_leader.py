"""One background checker of all the replicas on one database (core/pg/leader.py): replicas on
separate homes would otherwise each record the same alert. Real managers, real PostgreSQL
(tests/postgres.py: skipped without a server, except in CI)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from model_mcp.core.manager import ModelManager
from model_mcp.core.pg.leader import BACKGROUND_CHECK
from model_mcp.settings import Settings
from tests.conftest import wait_for


def _manager(home: Path, url: str) -> ModelManager:
    manager = ModelManager(Settings(home=home, database_url=url, isolated_probe=False,
                                    monitor_check_interval_s=0.1))
    manager.start()
    return manager


def test_one_replica_of_all_checks_and_another_takes_over_when_it_ends(tmp_path: Path, pg_url: str) -> None:
    a, b = _manager(tmp_path / "a", pg_url), _manager(tmp_path / "b", pg_url)
    checks = {"a": a.start_background_check(), "b": b.start_background_check()}
    try:
        assert wait_for(lambda: sum(c.evaluations for c in checks.values()) >= 10)
        leader = "a" if checks["a"].evaluations else "b"
        other = "b" if leader == "a" else "a"
        assert checks[other].evaluations == 0  # different homes, no shared lock file: the database decided
        # The leader ends (its connection closes): the other takes over at its next ticks.
        checks[leader].stop()
        (a if leader == "a" else b).close()
        assert wait_for(lambda: checks[other].evaluations >= 3)
    finally:
        for check in checks.values():
            check.stop()
        a.close()
        b.close()


def test_a_leader_killed_lets_go(tmp_path: Path, pg_url: str) -> None:
    """A replica SIGKILLed while it leads: the database ends its session, and the lock with it."""
    first, second = BACKGROUND_CHECK
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, psycopg\n"
         f"c = psycopg.connect({pg_url!r}, autocommit=True)\n"
         f"c.execute('SELECT pg_advisory_lock({first}, {second})')\n"
         "print('held', flush=True)\ntime.sleep(600)\n"], stdout=subprocess.PIPE)
    manager = _manager(tmp_path / "home", pg_url)
    check = None
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        check = manager.start_background_check()
        time.sleep(0.5)
        assert check.evaluations == 0
        holder.kill()
        holder.wait(timeout=30)
        assert wait_for(lambda: check.evaluations >= 2)
    finally:
        holder.kill()
        if check is not None:
            check.stop()
        manager.close()
