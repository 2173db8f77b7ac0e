"""Copying a home into PostgreSQL (core/pg/transfer.py) on a real home made by the manager and a real
server: the database answers what the home answered, and a rerun copies nothing twice."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from model_mcp import samples
from model_mcp.core.errors import InvalidStateError
from model_mcp.core.history import History
from model_mcp.core.manager import ModelManager
from model_mcp.core.monitoring_store.report import span_figures
from model_mcp.core.monitoring_store.sqlite import SQLiteMonitoringStore
from model_mcp.core.pg.history import PostgresHistory
from model_mcp.core.pg.monitoring import PostgresMonitoringStore
from model_mcp.core.pg.policies import PostgresPolicies
from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.pg.transfer import copy_home_to_database
from model_mcp.core.registry import Registry
from model_mcp.core.rollouts.policy import RolloutPolicy, read_policies
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store
from model_mcp.settings import Settings
from tests.postgres import query

MODEL = "network-anomaly"  # the packages' model name


def _home(tmp_path: Path, packages) -> tuple[Path, str]:
    home = tmp_path / "home"
    manager = ModelManager(Settings(home=home, isolated_probe=False, monitor_check_interval_s=0))
    manager.start()
    manager.import_zip(path=str(packages(version="A")))
    manager.import_zip(path=str(packages(version="B", seed=4)))
    manager.deploy(version="A")
    answer = manager.predict(rows=samples.sample_rows(30))
    manager.record_feedback(request_id=answer["request_id"], labels=answer["labels"])
    manager.deploy(version="B")
    manager.predict(rows=samples.sample_rows(5))
    manager.set_rollout_policy(model_name=MODEL, min_compared_rows=500, auto_promote=True)
    manager.close()
    return home, answer["request_id"]


def test_a_home_copied_into_postgresql_answers_alike_and_a_rerun_copies_nothing_twice(
        tmp_path: Path, packages, pg_url: str) -> None:
    home, request_id = _home(tmp_path, packages)
    report = copy_home_to_database(home, pg_url)
    assert report.registry_versions == 2 and report.registry_written == 2
    assert report.history_events > 0 and report.history_already == 0
    assert report.monitoring_rows["processes"] >= 1 and report.monitoring_rows["window_rows"] > 0
    assert report.policies_copied == 1 and report.notes == []

    # The registry: the same entries in the same order, the same deployed version.
    source, copied = Registry(Store(home)).read(), PostgresRegistry(pg_url, listen=False)
    assert [e.registry_json() for e in copied.read().entries.values()] == [
        e.registry_json() for e in source.entries.values()]
    assert list(copied.deployed_versions().values()) == ["B"]
    copied.close()
    # The audit trail: the same events, newest first, filters included.
    home_history, pg_history = History(Store(home).history_path), PostgresHistory(pg_url)
    assert pg_history.events(limit=None) == home_history.events(limit=None)
    assert pg_history.events(kind="deployments") == home_history.events(kind="deployments")
    # Monitoring: the same figures, windows and feedback.
    sqlite_store, pg_store = SQLiteMonitoringStore(home), PostgresMonitoringStore(pg_url)
    now = time.time()
    for version in ("A", "B"):
        mine = span_figures(sqlite_store, version, since=now - 3600, until=now + 60, bucket_s=60)
        theirs = span_figures(pg_store, version, since=now - 3600, until=now + 60, bucket_s=60)
        assert theirs.totals == mine.totals
    request = pg_store.request(request_id)
    assert request is not None and request.version == "A"
    X_home, _, _ = sqlite_store.window("A", request.deployment, "recent", 1000)
    X_pg, _, _ = pg_store.window("A", request.deployment, "recent", 1000)
    assert X_pg.shape == (30, X_home.shape[1]) and np.array_equal(X_pg, X_home)
    assert np.array_equal(pg_store.labelled("A", request.deployment)[0],
                          sqlite_store.labelled("A", request.deployment)[0])
    # The rollout policies: the same, field for field.
    pg_policies = PostgresPolicies(pg_url)
    assert pg_policies.read() == read_policies(home) and pg_policies.read()[MODEL].min_compared_rows == 500

    # A rerun: nothing written twice.
    counts = {table: query(pg_url, f"SELECT count(*) FROM {table}")[0][0]
              for table in ("registry_entries", "history_events", "monitoring_buckets", "monitoring_window_rows")}
    again = copy_home_to_database(home, pg_url)
    assert again.registry_written == 0 and again.history_events == 0
    assert again.history_already == report.history_events and again.monitoring_rows == {}
    assert again.policies_copied == 0 and not [n for n in again.notes if "policy" in n]
    assert counts == {table: query(pg_url, f"SELECT count(*) FROM {table}")[0][0] for table in counts}
    # A policy changed through a replica since: a rerun keeps the database's and says so.
    pg_policies.put(MODEL, RolloutPolicy(min_compared_rows=2000))
    kept = copy_home_to_database(home, pg_url)
    assert kept.policies_copied == 0 and [n for n in kept.notes if MODEL in n and "kept" in n]
    assert pg_policies.read()[MODEL].min_compared_rows == 2000
    pg_policies.close()
    # An event added to the home since: a rerun appends only it.
    home_history.record("delete", version="A", outcome="ok")
    assert copy_home_to_database(home, pg_url).history_events == 1
    assert pg_history.events(limit=1)[0]["event"] == "delete"
    pg_history.close()
    sqlite_store.close()
    pg_store.close()


def test_a_database_holding_another_registry_is_refused_with_nothing_copied(tmp_path: Path, pg_url: str) -> None:
    other = PostgresRegistry(pg_url, listen=False)
    other.update(lambda s: s.entries.__setitem__("elsewhere", RegistryEntry(version="elsewhere", path="models/x")))
    other.close()
    home = tmp_path / "home"
    home.mkdir()
    (home / "registry.json").write_text(json.dumps({"v1": {"version": "v1", "path": "models/v1"}}))
    with pytest.raises(InvalidStateError, match="elsewhere") as refused:
        copy_home_to_database(home, pg_url)
    assert refused.value.code == "invalid_state"
    assert query(pg_url, "SELECT version FROM registry_entries") == [("elsewhere",)]
    assert query(pg_url, "SELECT count(*) FROM history_events")[0][0] == 0
