"""Replica heartbeats: servers on separate homes and one PostgreSQL database (with a shared artifact
folder) each write their row; `replica_managers()` lists them with what each serves, whether each has caught
up with the registry, and which are gone. Real managers, real PostgreSQL (tests/postgres.py: skipped
without a server, except in CI), a small heartbeat interval; bounds, not timings."""

from __future__ import annotations

from typing import Any

import pytest

from model_mcp.core import pg
from model_mcp.core.manager import ModelManager
from model_mcp.core.replicas import is_up, judged, serving_address
from model_mcp.settings import Settings
from tests.conftest import REPLICA_BEAT_S as BEAT_S
from tests.conftest import wait_for
from tests.postgres import query

NET, PAY = "network-anomaly", "payments"


def by_address(manager: ModelManager) -> dict[str, dict[str, Any]]:
    return {r.address: r.model_dump() for r in manager.replicas().replicas}


def test_two_replicas_list_each_other_and_follow_a_deploy(replica_managers, packages) -> None:
    a = replica_managers("a")
    a.import_zip(path=str(packages(version="n1", model_name=NET, seed=1)))
    a.import_zip(path=str(packages(version="n2", model_name=NET, seed=2)))
    a.import_zip(path=str(packages(version="p1", model_name=PAY, seed=3, n_features=5)))
    a.deploy(version="n1")
    a.deploy(version="p1")
    b = replica_managers("b")

    def both_serving() -> dict[str, dict[str, Any]] | None:
        rows = by_address(a)
        want = {NET: "n1", PAY: "p1"}
        ok = set(rows) == {"127.0.0.1:9000", "127.0.0.1:9001"} and all(
            r["serves"] == want and r["current"] and r["state"] == "up" for r in rows.values())
        return rows if ok else None

    rows = wait_for(both_serving)
    assert rows, by_address(a)
    answer = b.replicas()
    generation = answer.registry_generation
    assert answer.database and answer.up == 2 and answer.missing == 0 and answer.behind == 0 and answer.note is None
    assert all(r.applied_generation == generation for r in answer.replicas)
    assert [r.this_process for r in answer.replicas if r.address == "127.0.0.1:9001"] == [True]
    assert {r.replica_id for r in answer.replicas} == {a.heartbeat.identity.replica_id, b.heartbeat.identity.replica_id}
    for r in answer.replicas:
        assert r.host_name and r.pid > 0 and r.artifact_root and r.server_version and r.interval_s == BEAT_S
    assert (generation,) == query(b.settings.database_url, "SELECT generation FROM registry_state")[0]

    # A deploy through A: both rows show the new version at the new generation, B having loaded it
    # without a single predict (its heartbeat follows the registry).
    a.deploy(version="n2")

    def both_on_n2() -> bool:
        answer = b.replicas()
        return answer.behind == 0 and all(r.serves.get(NET) == "n2" and r.current and
                                          r.applied_generation == answer.registry_generation for r in answer.replicas)

    assert wait_for(both_on_n2), b.replicas()
    assert b.replicas().registry_generation > generation
    assert b.runtime.resident_of(NET).version == "n2"


def test_a_closed_replica_turns_missing_and_its_row_stays_until_pruned(replica_managers, pg_url) -> None:
    a, b = replica_managers("a"), replica_managers("b")
    assert wait_for(lambda: a.replicas().up == 2)
    gone = b.heartbeat.identity.replica_id
    b.close()

    def b_missing() -> bool:
        answer = a.replicas()
        states = {r.replica_id: r.state for r in answer.replicas}
        return states.get(gone) == "missing" and answer.up == 1 and answer.missing == 1

    assert wait_for(b_missing), a.replicas()
    listed = a.replicas().replicas
    assert [r.state for r in listed] == ["up", "missing"], "up first"
    assert listed[1].seen_s_ago > 3 * BEAT_S

    # Rows unseen for a day are pruned by a heartbeat.
    query(pg_url, "UPDATE replicas SET last_seen = now() - interval '25 hours' WHERE replica_id = %s", (gone,))
    a.heartbeat.store._pruned_at = float("-inf")  # the hourly prune, due now
    assert a.heartbeat.beat()
    assert [r.replica_id for r in a.replicas().replicas] == [a.heartbeat.identity.replica_id]


def test_a_replica_that_cannot_load_a_deploy_reads_behind_and_says_why(replica_managers, packages, tmp_path) -> None:
    a = replica_managers("a")
    a.import_zip(path=str(packages(version="n1", model_name=NET, seed=1)))
    a.import_zip(path=str(packages(version="n2", model_name=NET, seed=2)))
    a.deploy(version="n1")
    b = replica_managers("b")
    b_id = b.heartbeat.identity.replica_id

    def both_on_n1() -> bool:
        answer = a.replicas()  # B's row included: its first beat may come after A's read
        return answer.up == 2 and answer.behind == 0 and all(r.serves == {NET: "n1"} for r in answer.replicas)

    assert wait_for(both_on_n1), a.replicas()
    # B's local package cache becomes a file: B cannot copy n2 out of the shared folder, so cannot load it.
    cache = tmp_path / "b" / "package-cache"
    cache.rename(tmp_path / "b" / "package-cache.away")
    cache.write_bytes(b"")
    a.deploy(version="n2")

    def b_row() -> Any:
        row = next(r for r in a.replicas().replicas if r.replica_id == b_id)
        return row if row.current is False and row.note else None

    row = wait_for(b_row)
    assert row is not None, a.replicas()
    assert row.serves == {NET: "n1"} and row.state == "up"
    assert "network-anomaly n2 failed to load: [storage_error]" in row.note
    answer = a.replicas()
    assert answer.behind == 1 and answer.up == 2
    # A rollback to what B serves: B is current again, without loading anything.
    a.rollback()
    assert wait_for(lambda: a.replicas().behind == 0 and all(r.current for r in a.replicas().replicas)), a.replicas()


def test_a_serving_replica_still_holds_four_connections(replica_managers, packages, pg_url) -> None:
    """The heartbeat shares the monitoring connection: docs/scaling.md's 4 per replica hold."""
    from tests.server.test_pg_managers import _connections

    a = replica_managers("a")
    a.import_zip(path=str(packages(version="n1", model_name=NET)))
    a.deploy(version="n1")
    a.predict(rows=[[0.1] * 8])
    assert a.recorder is not None and a.recorder.flush()
    a.performance_report(version="n1")
    beats = a.heartbeat.beats
    assert wait_for(lambda: a.heartbeat.beats >= beats + 2) and a.replicas().up == 1
    assert _connections(pg_url) == 4
    a.close()
    assert wait_for(lambda: _connections(pg_url) == 0, 5), _connections(pg_url)


def test_heartbeat_failures_are_counted_and_beats_resume(replica_managers, pg_relay) -> None:
    relay, url = pg_relay
    a = replica_managers("a", database_url=url)
    assert wait_for(lambda: a.heartbeat.beats >= 2)
    relay.stop()
    assert wait_for(lambda: a.heartbeat.failures >= 2, 30)
    assert "unreachable" in (a.heartbeat.last_error or "")
    relay.start()
    beats = a.heartbeat.beats
    assert wait_for(lambda: a.heartbeat.beats > beats + 1, 30)
    assert [r.state for r in a.replicas().replicas] == ["up"]


def test_off_with_interval_zero_and_the_list_says_this_process_is_not_in_it(tmp_path, pg_url) -> None:
    manager = ModelManager(Settings(home=tmp_path / "h", database_url=pg_url, replica_heartbeat_s=0))
    manager.start()
    try:
        assert manager.start_heartbeat() is None and manager.heartbeat is None
        answer = manager.replicas()
        assert answer.database and answer.replicas == [] and "writes no heartbeat" in answer.note
        assert answer.registry_generation == 0
    finally:
        manager.close()


def test_a_home_answers_this_server_alone_and_says_why(tmp_path, packages) -> None:
    manager = ModelManager(Settings(home=tmp_path / "h", transport="http", port=8123))
    manager.start()
    try:
        answer = manager.replicas()
        assert not answer.database and answer.replicas == [] and "MODEL_MCP_DATABASE_URL" in answer.note
        manager.import_zip(path=str(packages(version="v1")))
        manager.deploy(version="v1")
        assert manager.start_heartbeat() is None and manager.heartbeat is None  # no database: no thread
        answer = manager.replicas()
        (me,) = answer.replicas
        assert (me.address, me.state, me.current, me.this_process, me.serves) == (
            "127.0.0.1:8123", "up", None, True, {"network-anomaly": "v1"})
        assert answer.registry_generation is None and answer.up == 1 and "registry.json" in answer.note
    finally:
        manager.close()


# --- the rules, without a database -------------------------------------------------------------------
def test_up_within_three_intervals_and_current_at_the_registry_generation() -> None:
    assert is_up(14.9, 5) and not is_up(15.1, 5)
    row = {"replica_id": "r", "host_name": "h", "pid": 1, "address": "stdio", "started_at": None, "last_seen": None,
           "seen_s_ago": 1.0, "interval_s": 5.0, "applied_generation": 7, "serves": {}, "server_version": "0",
           "artifact_root": False}
    assert judged(row, 7, own_id=None)["current"] is True and judged(row, 8, own_id="r")["current"] is False
    assert judged(row, 8, own_id="r")["this_process"] is True
    assert judged({**row, "applied_generation": None}, 8, own_id=None)["current"] is None
    assert judged({**row, "seen_s_ago": 16.0}, 7, own_id=None)["state"] == "missing"
    assert serving_address("stdio", "127.0.0.1", 1) == "stdio"
    assert serving_address("http", "0.0.0.0", 8765) == "0.0.0.0:8765"
    assert serving_address("http", "::1", 8765) == "[::1]:8765"


def test_migration_files_apply_in_file_order_with_gaps_but_never_two_of_one_number() -> None:
    assert [n for n, _, _ in pg.in_order([(6, "b", ""), (1, "a", ""), (4, "c", "")])] == [1, 4, 6]
    with pytest.raises(RuntimeError, match="distinct numbers"):
        pg.in_order([(5, "a", ""), (5, "b", "")])
    numbers = [n for n, _, _ in pg.migrations()]
    assert 7 in numbers and pg.latest() == max(numbers)


def test_a_migration_the_database_lacks_below_the_highest_applied_is_applied(pg_url) -> None:
    """Two changes developed side by side (such as 0006 and 0007) may reach a database in either order."""
    connection = pg.connect(pg_url)
    try:
        assert query(pg_url, "SELECT max(version) FROM schema_migrations")[0][0] == pg.latest()
        query(pg_url, "DROP INDEX registry_entries_rollout")
        query(pg_url, "DELETE FROM schema_migrations WHERE version = 4")
        assert pg.migrate(connection) == [4]
        assert query(pg_url, "SELECT to_regclass('registry_entries_rollout') IS NOT NULL")[0][0]
        assert pg.migrate(connection) == []
    finally:
        connection.close()
