"""Managers on PostgreSQL (MODEL_MCP_DATABASE_URL): two servers with two homes and one database agree
on what is registered and deployed, through the MCP tools (tests/postgres.py: skipped without a
server, except in CI).

The package files still live in each home's models/ (a shared artifact folder is issue 16's next
step), so the second home gets them copied in, as an operator syncing the folder would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from model_mcp.core.manager import ModelManager
from model_mcp.core.monitor_check import BackgroundCheck
from model_mcp.server import build_server
from model_mcp.settings import Settings
from tests.conftest import b64
from tests.helpers import call, call_error
from tests.postgres import query

pytestmark = pytest.mark.anyio

NET, PAY = "network-anomaly", "payments"
ROW8 = [[0.1] * 8]


async def _predicted(client, model_name: str, want: str) -> str:
    """The version predict answers, polled until it is `want` (a bound, not a timing assert)."""
    deadline = time.monotonic() + 15
    while True:
        answer = await call(client, "predict", rows=ROW8 if model_name == NET else [[0.0] * 5], model_name=model_name)
        if answer["model_version"] == want or time.monotonic() > deadline:
            return answer["model_version"]
        await anyio.sleep(0.05)


async def test_two_homes_on_one_database_see_each_others_deploys(tmp_path: Path, pg_url: str, packages) -> None:
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a = ModelManager(Settings(home=home_a, database_url=pg_url))
    a.start()
    b: ModelManager | None = None
    try:
        async with Client(build_server(a)) as client_a:
            for version, name, extra in (("n1", NET, {}), ("n2", NET, {}), ("p1", PAY, {"n_features": 5})):
                await call(client_a, "import_zip", content_base64=b64(
                    packages(version=version, model_name=name, seed=len(version), **extra)))
            await call(client_a, "deploy", version="n1")
            await call(client_a, "deploy", version="p1")
            # Nothing of the registry or the trail in the home: both are in the database.
            assert not (home_a / "registry.json").exists() and not (home_a / "history.jsonl").exists()
            assert sorted(r[0] for r in query(pg_url, "SELECT version FROM registry_entries")) == ["n1", "n2", "p1"]

            shutil.copytree(home_a / "models", home_b / "models")  # the artifact folder, synced by hand
            b = ModelManager(Settings(home=home_b, database_url=pg_url))
            b.start()
            b.load_deployed_in_background()
            async with Client(build_server(b)) as client_b:
                listed = await call(client_b, "list_models")
                assert listed["deployed_versions"] == {NET: "n1", PAY: "p1"}
                assert {m["version"]: m["status"] for m in listed["models"]} == {
                    "n1": "deployed", "n2": "available", "p1": "deployed"}
                assert await _predicted(client_b, NET, "n1") == "n1"

                # A deploy through A is served by B (LISTEN/NOTIFY; the poll as fallback).
                assert (await call(client_a, "deploy", version="n2"))["previous_version"] == "n1"
                assert await _predicted(client_b, NET, "n2") == "n2"
                assert await _predicted(client_b, PAY, "p1") == "p1"  # the other model name is untouched
                # B's audit trail is A's: the same table.
                events = (await call(client_b, "get_history", kind="deployments"))["events"]
                assert [(e["event"], e["version"]) for e in events[:3]] == [
                    ("deploy", "n2"), ("deploy", "p1"), ("deploy", "n1")]

                # And the other way: a rollback through B is served by A.
                rolled = await call(client_b, "rollback", model_name=NET)
                assert (rolled["deployed_version"], rolled["previous_version"]) == ("n1", "n2")
                assert await _predicted(client_a, NET, "n1") == "n1"
                assert query(pg_url, "SELECT version FROM registry_entries WHERE status = 'deployed' "
                                     "ORDER BY version") == [("n1",), ("p1",)]

                # A canary started through A is followed by B (rollout_keys from the database), and B's
                # promote is A's deploy.
                await call(client_a, "deploy", version="n2", mode="canary", traffic_percent=50)
                deadline = time.monotonic() + 15
                while NET not in b.registry.rollout_keys() and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                assert b.registry.rollout_keys()[NET][0] == "n2"
                sides = {(await call(client_b, "predict", rows=ROW8, model_name=NET))["model_version"]
                         for _ in range(40)}
                assert sides == {"n1", "n2"}  # 50 %: both sides answer (all 40 on one side: odds 2 in 10^12)
                promoted = await call(client_b, "promote", model_name=NET)
                assert (promoted["deployed_version"], promoted["previous_version"]) == ("n2", "n1")
                assert await _predicted(client_a, NET, "n2") == "n2"
                deadline = time.monotonic() + 15
                while a.registry.rollout_keys() and time.monotonic() < deadline:
                    await anyio.sleep(0.05)
                assert a.registry.rollout_keys() == {}
                await call(client_a, "rollback", to_version="n1")

                # A refused change through either is refused the same way, and changes nothing.
                code, _ = await call_error(client_b, "delete_model", version="p1")
                assert code == "invalid_state"
                code, _ = await call_error(client_a, "deploy", version="nope")
                assert code == "not_found"
                assert (await call(client_a, "list_models"))["deployed_versions"] == {NET: "n1", PAY: "p1"}
    finally:
        a.close()
        if b is not None:
            b.close()


async def test_a_home_registry_the_database_lacks_is_a_warning_until_copied(tmp_path: Path, pg_url: str,
                                                                              packages) -> None:
    """Setting MODEL_MCP_DATABASE_URL on a home that served from registry.json: the database is served,
    and list_models says which versions of registry.json it lacks until the home is copied in."""
    from model_mcp.core.pg.transfer import copy_home_to_database

    home = tmp_path / "home"
    on_file = ModelManager(Settings(home=home))
    on_file.start()
    async with Client(build_server(on_file)) as client:
        await call(client, "import_zip", content_base64=b64(packages(version="n1", model_name=NET)))
        await call(client, "deploy", version="n1")
    on_file.close()

    on_db = ModelManager(Settings(home=home, database_url=pg_url))
    on_db.start()
    try:
        async with Client(build_server(on_db)) as client:
            listed = await call(client, "list_models")
            assert listed["total"] == 0 and listed["deployed_versions"] == {}
            assert [w for w in listed["warnings"] if "registry.json" in w and "1 version(s)" in w and "n1" in w]
    finally:
        on_db.close()

    copied = copy_home_to_database(home, pg_url)
    assert copied.registry_versions == 1
    on_db = ModelManager(Settings(home=home, database_url=pg_url))
    on_db.start()
    on_db.load_deployed_in_background()
    try:
        async with Client(build_server(on_db)) as client:
            listed = await call(client, "list_models")
            assert listed["deployed_versions"] == {NET: "n1"} and listed["warnings"] == []
            assert await _predicted(client, NET, "n1") == "n1"
            events = (await call(client, "get_history"))["events"]  # the trail was copied too
            assert [e["event"] for e in events if e["event"] in ("import", "deploy")] == ["deploy", "import"]
    finally:
        on_db.close()


async def test_with_the_database_away_predict_serves_reading_tools_answer_the_last_copy_and_changes_refuse(
        tmp_path: Path, pg_relay, packages) -> None:
    relay, url = pg_relay
    manager = ModelManager(Settings(home=tmp_path / "home", database_url=url))
    manager.start()
    try:
        async with Client(build_server(manager)) as client:
            for version in ("n1", "n2"):
                await call(client, "import_zip", content_base64=b64(packages(version=version, model_name=NET,
                                                                              seed=len(version))))
            await call(client, "deploy", version="n1")
            await call(client, "set_rollout_policy", model_name=NET, min_compared_rows=400)
            relay.stop()  # the database goes away
            assert (await call(client, "predict", rows=ROW8))["model_version"] == "n1"
            listed = await call(client, "list_models")
            assert listed["deployed_versions"] == {NET: "n1"} and listed["total"] == 2
            assert "unreachable" in listed["registry_problem"]
            code, sentence = await call_error(client, "deploy", version="n2")
            assert code == "storage_error" and "Nothing was changed" in sentence
            code, _ = await call_error(client, "set_rollout_policy", model_name=NET, min_compared_rows=800)
            assert code == "storage_error"
            # The background check: no policy can act this time (logged), the rest of the check runs.
            found = await anyio.to_thread.run_sync(
                BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000).run_once)
            assert found["rollout_actions"] == [] and found["version"] == "n1"
            relay.start()  # it returns: everything recovers by itself
            listed = await call(client, "list_models")
            assert listed["registry_problem"] is None
            assert (await call(client, "get_rollout_policy", model_name=NET))["policy"]["min_compared_rows"] == 400
            assert (await call(client, "deploy", version="n2"))["deployed_version"] == "n2"
            assert (await call(client, "predict", rows=ROW8))["model_version"] == "n2"
    finally:
        manager.close()


async def test_a_server_started_while_the_database_is_away_starts_and_recovers(tmp_path: Path, pg_relay,
                                                                               packages) -> None:
    relay, url = pg_relay
    relay.stop()
    manager = ModelManager(Settings(home=tmp_path / "home", database_url=url))
    manager.start()  # logs registry_unreachable; does not raise
    try:
        async with Client(build_server(manager)) as client:
            listed = await call(client, "list_models")
            assert listed["total"] == 0 and "unreachable" in listed["registry_problem"]
            code, _ = await call_error(client, "import_zip", content_base64=b64(packages(version="n1", model_name=NET)))
            assert code == "storage_error"
            assert not (tmp_path / "home" / "models" / "n1").exists()  # the files of a refused import are gone
            relay.start()
            await call(client, "import_zip", content_base64=b64(packages(version="n1", model_name=NET)))
            await call(client, "deploy", version="n1")
            assert (await call(client, "predict", rows=ROW8))["model_version"] == "n1"
    finally:
        manager.close()


async def test_an_interrupted_publish_is_undone_when_another_home_registered_the_version(tmp_path: Path, pg_url: str,
                                                                                       packages) -> None:
    """A publish journal is judged against the database: a version registered by another home (another
    imported_at) does not make this home's half-published folder its files; this home's own entry does."""
    import json

    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a = ModelManager(Settings(home=home_a, database_url=pg_url))
    a.start()
    try:
        async with Client(build_server(a)) as client:
            for version in ("n1", "n2"):
                await call(client, "import_zip", content_base64=b64(packages(version=version, model_name=NET)))
    finally:
        a.close()
    imported_at = {r[0]: r[1] for r in query(pg_url, "SELECT version, entry->>'imported_at' FROM registry_entries")}
    # Home B was killed between its rename into models/ and its registry write, for both versions:
    # n1's journal is another import's (A registered n1 meanwhile); n2's names A's entry (as if B's own).
    for version, stamp in (("n1", "2026-01-01T00:00:00Z"), ("n2", imported_at["n2"])):
        shutil.copytree(home_a / "models" / version, home_b / "models" / version)
        (home_b / "staging").mkdir(parents=True, exist_ok=True)
        (home_b / "staging" / f"publish-{version}.json").write_text(json.dumps(
            {"version": version, "target": f"models/{version}", "imported_at": stamp}))
    b = ModelManager(Settings(home=home_b, database_url=pg_url))
    b.start()
    b.close()
    assert not (home_b / "models" / "n1").exists() and (home_b / "models" / "n2").is_dir()
    assert sorted(p.name for p in (home_b / "staging").iterdir()) == []
    assert sorted(r[0] for r in query(pg_url, "SELECT version FROM registry_entries")) == ["n1", "n2"]  # untouched


def test_a_manager_on_a_database_url_does_not_load_psycopg_until_it_is_used(tmp_path: Path) -> None:
    """The server starts (and answers initialize) before the database is first asked: constructing
    the manager neither imports psycopg nor connects (the URL here points at nothing)."""
    code = ("import sys; from model_mcp.core.manager import ModelManager; from model_mcp.settings import Settings; "
            f"m = ModelManager(Settings(home={str(tmp_path / 'home')!r}, "
            "database_url='postgresql://nobody@127.0.0.1:1/none')); "
            "print(type(m.registry).__name__, type(m.history).__name__, 'psycopg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["PostgresRegistry", "PostgresHistory", "False"]


def _connections(url: str) -> int:
    """The server's connections to this database from model-mcp (the test's own query is not one)."""
    return query(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name = 'model-mcp'")[0][0]


def test_a_manager_holds_three_connections_and_the_listener(tmp_path: Path, pg_url: str, packages) -> None:
    """docs/scaling.md's figure: every store of one manager shares three connections (changes, reads,
    monitoring writes), plus the registry's listener, whatever the tools used."""
    manager = ModelManager(Settings(home=tmp_path / "home", database_url=pg_url))
    manager.start()
    try:
        manager.import_zip(path=str(packages(version="n1", model_name=NET)))
        manager.deploy(version="n1")
        for _ in range(3):
            manager.predict(rows=ROW8)
        assert manager.recorder is not None and manager.recorder.flush()
        manager.performance_report(version="n1")
        manager.get_history(kind="deployments")
        manager.set_rollout_policy(model_name=NET, auto_promote=True)
        manager.get_rollout_policy(model_name=NET)
        assert _connections(pg_url) == 4
    finally:
        manager.close()
    assert _connections(pg_url) == 0


async def test_two_homes_on_one_database_share_the_rollout_policies(tmp_path: Path, pg_url: str, packages) -> None:
    """A policy set through one replica is the other's (the database's table, not a file of a home),
    audited in the one trail; nothing of it in either home."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a, b = (ModelManager(Settings(home=home, database_url=pg_url)) for home in (home_a, home_b))
    a.start()
    b.start()
    try:
        async with Client(build_server(a)) as client_a, Client(build_server(b)) as client_b:
            await call(client_a, "import_zip", content_base64=b64(packages(version="n1", model_name=NET)))
            await call(client_a, "set_rollout_policy", model_name=NET, min_compared_rows=400, auto_promote=True)
            seen = (await call(client_b, "get_rollout_policy", model_name=NET))["policy"]
            assert seen["min_compared_rows"] == 400 and seen["auto_promote"] is True
            await call(client_b, "set_rollout_policy", model_name=NET, min_agreement=0.9)  # replaces it whole
            seen = (await call(client_a, "get_rollout_policy", model_name=NET))["policy"]
            assert (seen["min_agreement"], seen["min_compared_rows"], seen["auto_promote"]) == (0.9, 1000, False)
            await call(client_a, "set_rollout_policy", model_name=NET, clear=True)
            assert (await call(client_b, "get_rollout_policy", model_name=NET))["policy"] is None
            events = (await call(client_b, "get_history"))["events"]
            assert [e["detail"] for e in events if e["event"] == "set_rollout_policy"] == [
                f"rollout policy of {NET} removed", f"rollout policy of {NET} set", f"rollout policy of {NET} set"]
        assert not (home_a / "rollout-policies.json").exists() and not (home_b / "rollout-policies.json").exists()
        assert query(pg_url, "SELECT count(*) FROM rollout_policies")[0][0] == 0
    finally:
        a.close()
        b.close()

