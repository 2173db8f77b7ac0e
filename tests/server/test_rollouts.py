"""Shadow and canary rollouts through a real MCP client, on real scikit-learn models: exact
per-version accounting under concurrent traffic, the comparison report, promote / abort / rollback,
policies acting on their own (audited), and a shadow whose model crashes in the probe's child."""

from __future__ import annotations

import sys
import textwrap

import anyio
import joblib
import pytest

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.core.monitor_check import BackgroundCheck
from model_mcp.server import build_server
from tests.conftest import b64
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

NET = "network-anomaly"


@pytest.fixture
def importer(client, packages):
    async def add(version: str, **kwargs) -> dict:
        return await call(client, "import_zip", content_base64=b64(packages(version=version, **kwargs)))
    return add


def rows(n: int, seed: int) -> list[list[float]]:
    return samples.sample_rows(n, 8, seed=seed)


def drain(manager: ModelManager) -> None:
    for rollout in manager.runtime.rollouts().values():
        rollout.drain()


async def test_a_shadow_scores_every_call_off_the_path_and_answers_none(client, importer, manager):
    await importer("v1", seed=1)
    await importer("v2", seed=1, created_at="2026-11-21T00:00:00Z")  # the same model: full agreement
    await call(client, "deploy", version="v1")
    started = await call(client, "deploy", version="v2", mode="shadow")
    assert (started["deployed_version"], started["mode"], started["model_name"]) == ("v2", "shadow", NET)
    listed = await call(client, "list_models")
    assert listed["deployed_versions"] == {NET: "v1"}
    assert {m["version"]: (m.get("rollout") or {}).get("mode") for m in listed["models"]} == {"v1": None, "v2": "shadow"}

    sizes = [1, 3, 7, 20, 50] * 8
    answers: list[dict] = []

    async def client_loop(offset: int) -> None:
        for i, n in enumerate(sizes[offset::4]):
            answers.append(await call(client, "predict", rows=rows(n, seed=offset * 100 + i)))

    async with anyio.create_task_group() as group:
        for offset in range(4):
            group.start_soon(client_loop, offset)
    assert {a["model_version"] for a in answers} == {"v1"}  # the primary answers every call
    drain(manager)
    total_rows = sum(sizes)
    report = await call(client, "rollout_report")
    assert report["rows"] == total_rows and report["dropped_rows"] == 0
    assert report["label_agreement"] == 1.0 and report["score_rank_correlation"] == pytest.approx(1.0)
    assert report["anomaly_rate_primary"] == report["anomaly_rate_candidate"]
    assert report["requests"]["primary"] == len(sizes)
    candidate = await call(client, "performance_report", version="v2")
    assert candidate["n_rows"] == total_rows  # every row scored once by the shadow, in its own figures
    primary = await call(client, "performance_report", version="v1")
    assert primary["n_rows"] == total_rows and primary["n_requests"] == len(sizes)
    assert report["verdict"] == "hold" and report["rows_needed"] == 1000 - total_rows
    assert any("more rows compared" in r for r in report["reasons"])


async def test_a_canary_answers_its_share_and_a_routing_key_keeps_its_side(client, importer, manager):
    await importer("v1", seed=1)
    await importer("v2", seed=2, created_at="2026-11-21T00:00:00Z")
    await call(client, "deploy", version="v1")
    code, _ = await call_error(client, "deploy", version="v2", mode="canary")  # no traffic_percent
    assert code == "invalid_input"
    await call(client, "deploy", version="v2", mode="canary", traffic_percent=30)
    by_version = {"v1": 0, "v2": 0}
    rows_by_version = {"v1": 0, "v2": 0}

    async def loop(seed: int) -> None:
        for i in range(50):
            n = 1 + (i % 5)
            answer = await call(client, "predict", rows=rows(n, seed * 1000 + i))
            by_version[answer["model_version"]] += 1
            rows_by_version[answer["model_version"]] += n

    async with anyio.create_task_group() as group:
        for seed in range(4):
            group.start_soon(loop, seed)
    assert by_version["v1"] + by_version["v2"] == 200
    assert 25 <= by_version["v2"] <= 95  # 30 % of 200, give or take chance
    for version in ("v1", "v2"):
        figures = await call(client, "performance_report", version=version)
        assert (figures["n_requests"], figures["n_rows"]) == (by_version[version], rows_by_version[version])
    report = await call(client, "rollout_report", model_name=NET)
    assert report["mode"] == "canary" and report["rows"] == rows_by_version["v2"]
    assert report["requests"] == {"primary": by_version["v1"], "candidate": by_version["v2"]}
    for key in ("alice", "bob", "carol", "dave"):
        sides = {(await call(client, "predict", rows=rows(1, 7), routing_key=key))["model_version"] for _ in range(6)}
        assert len(sides) == 1, key
    # version= names a side directly
    assert (await call(client, "predict", rows=rows(1, 8), version="v2"))["model_version"] == "v2"


async def test_promote_abort_and_rollback_end_a_rollout_as_the_audit_trail_says(client, importer, manager):
    await importer("v1", seed=1)
    await importer("v2", seed=2, created_at="2026-11-21T00:00:00Z")
    await importer("v3", seed=3, created_at="2026-11-22T00:00:00Z")
    await call(client, "deploy", version="v1")
    code, _ = await call_error(client, "promote")
    assert code == "invalid_state"
    await call(client, "deploy", version="v2", mode="shadow")
    code, sentence = await call_error(client, "deploy", version="v3", mode="canary", traffic_percent=10)
    assert code == "invalid_state" and "v2" in sentence
    aborted = await call(client, "abort_rollout")
    assert (aborted["deployed_version"], aborted["previous_version"]) == ("v1", "v2")
    assert manager.runtime.rollouts() == {}
    assert all(not m.get("rollout") for m in (await call(client, "list_models"))["models"])

    await call(client, "deploy", version="v2", mode="canary", traffic_percent=50)
    rolled = await call(client, "rollback")  # a rollback during a rollout ends the rollout
    assert rolled["deployed_version"] == "v1" and manager.runtime.rollouts() == {}
    assert (await call(client, "list_models"))["deployed_versions"] == {NET: "v1"}

    await call(client, "deploy", version="v2", mode="shadow")
    promoted = await call(client, "promote", model_name=NET)
    assert (promoted["deployed_version"], promoted["previous_version"]) == ("v2", "v1")
    assert (await call(client, "predict", rows=rows(2, 1)))["model_version"] == "v2"
    assert manager.runtime.rollouts() == {}

    await call(client, "deploy", version="v3", mode="shadow")
    await call(client, "deploy", version="v1")  # a deploy of another version ends the rollout too
    assert manager.runtime.rollouts() == {}
    events = [(e["event"], e.get("version"), e.get("how")) for e in
              (await call(client, "get_history", kind="deployments", limit=20))["events"]]
    assert events[:2] == [("deploy", "v1", None), ("abort_rollout", "v3", "deploy")]
    assert ("promote", "v2", None) in events and ("abort_rollout", "v2", "rollback") in events
    assert ("abort_rollout", "v2", "explicit") in events and ("rollout_start", "v2", "explicit") in events
    # Rollback walks primaries only: v1 <- v2 (promoted) <- v1.
    assert (await call(client, "rollback"))["deployed_version"] == "v2"


async def test_a_policy_promotes_after_enough_agreeing_rows(client, importer, manager):
    await importer("v1", seed=1)
    await importer("v2", seed=1, created_at="2026-11-21T00:00:00Z")
    await call(client, "deploy", version="v1")
    policy = await call(client, "set_rollout_policy", model_name=NET, min_compared_rows=300, min_agreement=0.99,
                        auto_promote=True)
    assert policy["policy"]["auto_promote"] is True
    assert (await call(client, "get_rollout_policy", model_name=NET))["policy"]["min_compared_rows"] == 300
    # Kept in the home's file, or (PostgreSQL) in the database's table that every replica reads.
    assert (manager.store.home / "rollout-policies.json").exists() is not bool(manager.settings.database_url)
    await call(client, "deploy", version="v2", mode="shadow")
    check = BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000)
    for i in range(5):
        await call(client, "predict", rows=rows(50, i))
    drain(manager)
    found = await anyio.to_thread.run_sync(check.run_once)
    assert found["rollout_actions"] == []  # 250 rows: not yet
    assert (await call(client, "rollout_report"))["verdict"] == "hold"
    for i in range(2):
        await call(client, "predict", rows=rows(50, 10 + i))
    drain(manager)
    found = await anyio.to_thread.run_sync(check.run_once)
    assert found["rollout_actions"] == [{"model_name": NET, "action": "promote", "version": "v2"}]
    assert (await call(client, "list_models"))["deployed_versions"] == {NET: "v2"}
    promote = next(e for e in (await call(client, "get_history", kind="deployments"))["events"] if e["event"] == "promote")
    assert promote["mode"] == "policy" and "min_compared_rows" in promote["detail"] and "rows 350" in promote["detail"]


async def test_a_canary_whose_model_errors_is_aborted_by_the_policy(client, importer, manager, packages):
    await importer("v1", seed=1)
    # The new version expects a ninth feature: every call routed to it fails ([invalid_input]).
    await importer("v2", seed=2, n_features=9, created_at="2026-11-21T00:00:00Z")
    await call(client, "deploy", version="v1")
    await call(client, "set_rollout_policy", model_name=NET, max_error_rate=0.1, auto_abort=True)
    await call(client, "deploy", version="v2", mode="canary", traffic_percent=50)
    failed = 0
    for i in range(60):
        result = await client.call_tool("predict", {"rows": rows(2, i)})
        failed += result.is_error
    assert 10 <= failed <= 50
    report = await call(client, "rollout_report")
    assert report["verdict"] == "reject" and report["error_rate"]["candidate"] == 1.0
    found = await anyio.to_thread.run_sync(BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000).run_once)
    assert found["rollout_actions"] == [{"model_name": NET, "action": "abort", "version": "v2"}]
    assert manager.runtime.rollouts() == {}
    assert {(await call(client, "predict", rows=rows(2, 99)))["model_version"] for _ in range(10)} == {"v1"}
    aborted = next(e for e in (await call(client, "get_history", kind="deployments"))["events"]
                   if e["event"] == "abort_rollout")
    assert aborted["how"] == "policy" and "max_error_rate" in aborted["detail"] and "error rate" in aborted["detail"]


async def test_no_policy_no_automatic_action(client, importer, manager):
    await importer("v1", seed=1)
    await importer("v2", seed=1, created_at="2026-11-21T00:00:00Z")
    await call(client, "deploy", version="v1")
    await call(client, "deploy", version="v2", mode="shadow")
    for i in range(25):
        await call(client, "predict", rows=rows(50, i))
    drain(manager)
    assert (await call(client, "rollout_report"))["verdict"] == "promote"
    found = await anyio.to_thread.run_sync(BackgroundCheck(manager, interval_s=3600, drift_min_rows=10_000).run_once)
    assert found["rollout_actions"] == []
    assert (await call(client, "list_models"))["deployed_versions"] == {NET: "v1"}
    assert (await call(client, "get_rollout_policy", model_name=NET))["policy"] is None


CRASHER = textwrap.dedent('''
    """Test-only: a detector that crashes the process predicting with it while its flag file exists."""
    import ctypes
    import os

    import numpy as np


    class Crasher:
        def __init__(self, flag, n_features):
            self.flag = flag
            self.n_features_in_ = n_features

        def predict(self, X):
            if os.path.exists(self.flag):
                ctypes.string_at(0)  # SIGSEGV
            return np.ones(len(X), dtype=np.int64)

        def decision_function(self, X):
            return np.zeros(len(X))
''')


async def test_a_shadow_whose_model_crashes_in_the_probe_child_is_refused_and_the_primary_serves(
        tmp_path, make_settings, packages, monkeypatch):
    from mcp import Client

    folder = tmp_path / "helpers"
    folder.mkdir()
    (folder / "probe_crash_parts.py").write_text(CRASHER)
    monkeypatch.syspath_prepend(str(folder))  # the probe's child gets this process's sys.path
    import probe_crash_parts

    flag = tmp_path / "crash-now"
    model = tmp_path / "model.joblib"
    joblib.dump(probe_crash_parts.Crasher(str(flag), 8), model)
    trusted = ("probe_crash_parts:Crasher",)
    manager = ModelManager(make_settings(trusted_globals=trusted, isolated_probe=True))
    manager.start()
    async with Client(build_server(manager)) as client:
        await call(client, "import_zip", content_base64=b64(packages(version="v1", seed=1)))
        await call(client, "import_zip", content_base64=b64(packages(
            version="v2", created_at="2026-11-21T00:00:00Z", extra_files={"model.joblib": model.read_bytes()})))
        await call(client, "deploy", version="v1")
    manager.close()
    flag.write_text("")
    # A second manager on the home (trusting one more name, so its probe results are its own) deploys it.
    manager = ModelManager(make_settings(trusted_globals=(*trusted, "probe_crash_parts:Unused"), isolated_probe=True))
    manager.start()
    async with Client(build_server(manager)) as client:
        code, sentence = await call_error(client, "deploy", version="v2", mode="shadow")
        assert code == "validation_failed" and "SIGSEGV" in sentence
        assert manager.runtime.rollouts() == {}
        assert all(not m.get("rollout") for m in (await call(client, "list_models"))["models"])
        assert (await call(client, "predict", rows=rows(3, 1)))["model_version"] == "v1"
        event = (await call(client, "get_history", kind="deployments", limit=1))["events"][0]
        assert (event["event"], event["outcome"], event["version"]) == ("rollout_start", "failed", "v2")
    manager.close()
    assert sys.modules.get("probe_crash_parts") is not None  # this process never predicted with it
