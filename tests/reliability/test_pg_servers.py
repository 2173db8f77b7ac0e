"""Real server processes whose monitoring store is PostgreSQL (MODEL_MCP_DATABASE_URL): their figures
add up in the database, and a server whose database goes away keeps answering predicts.

Skipped without MODEL_MCP_TEST_POSTGRES_URL, required in CI (tests/postgres.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings
from tests.postgres import query
from tests.reliability.serverproc import ServerProcess
from tests.reliability.test_monitoring_faults import QUIET, ROWS, _deployed_home

pytestmark = pytest.mark.slow  # server processes start in ~4 s each on a busy machine


def test_two_servers_write_one_monitoring_store_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    _deployed_home(tmp_path, home)
    env = {**QUIET, "MODEL_MCP_DATABASE_URL": pg_url}
    servers = [ServerProcess.spawn(home, env=env), ServerProcess.spawn(home, env=env)]
    try:
        for server in servers:
            server.initialize()
        for server, count in zip(servers, (5, 7), strict=True):
            for _ in range(count):
                answer = server.call("predict", rows=ROWS)
                assert not answer.is_error, answer.text
    finally:
        for server in servers:
            server.close()  # a clean exit writes what the recorder holds
    assert not (home / "monitoring.db").exists()  # nothing went to the home's SQLite file
    assert query(pg_url, "SELECT count(*) FROM monitoring_processes")[0][0] == 2
    reader = ModelManager(Settings(home=home, isolated_probe=False, monitor_check_interval_s=0, database_url=pg_url))
    try:
        report = reader.performance_report(version="v1")
        assert report.n_requests == 12
    finally:
        reader.close()


def test_a_server_whose_database_goes_away_keeps_serving_and_catches_up(tmp_path: Path, pg_url: str,
                                                                       pg_relay) -> None:
    relay, url = pg_relay
    home = tmp_path / "home"
    _deployed_home(tmp_path, home)
    server = ServerProcess.spawn(home, env={**QUIET, "MODEL_MCP_DATABASE_URL": url})
    try:
        server.initialize()
        for _ in range(3):
            assert not server.call("predict", rows=ROWS).is_error
        relay.stop()  # the database goes away
        for _ in range(4):
            answer = server.call("predict", rows=ROWS)
            assert not answer.is_error, answer.text
        report = server.call("performance_report")  # this process's own figures meanwhile
        assert report.structured["n_requests"] == 7, report.text
        relay.start()  # it comes back: the recorder writes what it held
        answer = server.call("predict", rows=ROWS)
        assert not answer.is_error, answer.text
    finally:
        server.close()
    total = query(pg_url, "SELECT sum(requests) FROM monitoring_buckets WHERE grain = 60")[0][0]
    assert total == 8
