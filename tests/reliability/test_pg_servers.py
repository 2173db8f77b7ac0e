"""Real server processes on PostgreSQL (MODEL_MCP_DATABASE_URL: registry, audit trail, monitoring store):
their figures add up in the database, and a server whose database goes away keeps answering predicts.

Skipped without MODEL_MCP_TEST_POSTGRES_URL, required in CI (tests/postgres.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings
from tests.postgres import query
from tests.reliability.serverproc import ServerProcess
from model_mcp import samples
from tests.reliability.test_monitoring_faults import QUIET, ROWS

pytestmark = pytest.mark.slow  # server processes start in ~4 s each on a busy machine


def _deployed_home(tmp_path: Path, home: Path, url: str) -> None:
    """v1 imported into the home's models/ and deployed in the database's registry (the monitoring
    store left untouched, so that only the servers under test write to it)."""
    manager = ModelManager(Settings(home=home, isolated_probe=False, database_url=url, monitor_store=False))
    manager.start()
    manager.import_zip(path=str(samples.build_package(tmp_path / "v1.zip", version="v1", seed=1)))
    manager.deploy(version="v1")
    manager.close()


def test_two_servers_write_one_monitoring_store_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    _deployed_home(tmp_path, home, pg_url)
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
    _deployed_home(tmp_path, home, pg_url)
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
