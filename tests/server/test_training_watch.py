"""The training-folder watch (`serve --watch-training`): real files written slowly, real imports, an
MCP client over the manager for what an agent sees, and two real server processes on one home.

Intervals are short (0.2 s) so that several ticks pass while a package is being written; a test
that waits for "ticks" waits on the watcher's tick counter, never on wall-clock guesses alone.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client

from model_mcp import samples
from model_mcp.cli import build_parser, settings_from
from model_mcp.core import lockfile
from model_mcp.core.manager import ModelManager
from model_mcp.core.training_watch import LOCK_NAME, MAX_IMPORTS_PER_TICK, TrainingWatch
from model_mcp.server import build_server
from tests.helpers import call, call_error
from tests.reliability.serverproc import NO_PROBE, ServerProcess

pytestmark = pytest.mark.anyio

TICK = 0.2


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "the condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def full_ticks(watch: TrainingWatch, n: int = 2) -> None:
    """Return once `n` whole ticks ran after this call (a tick counts when it started; the one after
    it starting means it ended)."""
    start = watch.ticks
    wait_for(lambda: watch.ticks >= start + n + 1, what=f"{n} watch ticks")


def package(version: str, day: int = 1) -> dict[str, bytes]:
    return samples.package_files(version=version, created_at=f"2026-11-{day:02d}T08:00:00Z")


@pytest.fixture
def training(tmp_path: Path) -> Path:
    root = tmp_path / "training"
    root.mkdir()
    return root


@pytest.fixture
def make_manager(make_started_manager, training):
    def make(**overrides) -> ModelManager:
        overrides.setdefault("training_dir", training)
        overrides.setdefault("isolated_probe", False)  # orthogonal here, and 1 s per import
        return make_started_manager(**overrides)

    return make


@pytest.fixture
def watches():
    started: list[TrainingWatch] = []
    yield started
    for watch in started:
        watch.stop()


def transfers(manager: ModelManager) -> list[tuple[str, str]]:
    return [(e["version"], e["outcome"]) for e in reversed(manager.history.events(kind="transfers", limit=None))]


def registered(manager: ModelManager) -> set[str]:
    return set(manager.registry.read().entries)


# --------------------------------------------------------------------------- written slowly


async def test_a_zip_written_in_chunks_is_imported_only_once_complete_and_once(make_manager, watches, training,
                                                                              tmp_path):
    manager = make_manager()
    whole = samples.write_zip(package("slowzip"), tmp_path / "built.zip").read_bytes()
    watch = manager.start_training_watch(TICK)
    watches.append(watch)
    target = training / "nightly" / "slowzip.zip"
    target.parent.mkdir()
    chunks = [whole[i: i + len(whole) // 4 + 1] for i in range(0, len(whole), len(whole) // 4 + 1)]
    assert len(chunks) == 4
    with open(target, "wb") as out:
        for chunk in chunks[:-1]:
            out.write(chunk)
            out.flush()
            full_ticks(watch)  # several scans see the ZIP without its end record
            assert "slowzip" not in registered(manager) and transfers(manager) == []
        out.write(chunks[-1])
    wait_for(lambda: "slowzip" in registered(manager), what="the import")
    full_ticks(watch, 3)
    async with Client(build_server(manager)) as client:
        events = (await call(client, "get_history", kind="transfers"))["events"]
        entry = (await call(client, "get_model", version="slowzip"))["entry"]
    assert [(e["version"], e["outcome"], e["source"]) for e in events] == [("slowzip", "ok", "nightly/slowzip.zip")]
    assert entry["source"] == "training_service" and entry["status"] == "available"
    assert watch.imported == 1 and watch.failed == 0


async def test_a_folder_is_imported_only_after_its_manifest_and_its_growing_model_are_complete(
        make_manager, watches, training):
    manager = make_manager()
    files = package("slowfolder")
    model = files.pop("model.joblib")
    manifest = files.pop("deployment_manifest.json")
    watch = manager.start_training_watch(TICK)
    watches.append(watch)
    folder = samples.write_folder(files, training / "slowfolder")
    half = len(model) // 2
    with open(folder / "model.joblib", "wb") as out:
        out.write(model[:half])
        out.flush()
        full_ticks(watch)  # no manifest yet
        assert registered(manager) == set()
        (folder / "deployment_manifest.json").write_bytes(manifest)
        full_ticks(watch)  # the manifest lists model.joblib at a size it has not reached
        assert registered(manager) == set() and transfers(manager) == []
        for start in range(half, len(model), 4096):
            out.write(model[start: start + 4096])
            out.flush()
            if start < len(model) - 4096 and start % (8 * 4096) == 0:
                assert "slowfolder" not in registered(manager)
                time.sleep(TICK / 2)
    wait_for(lambda: "slowfolder" in registered(manager), what="the import")
    full_ticks(watch, 3)
    assert transfers(manager) == [("slowfolder", "ok")]
    assert watch.imported == 1 and watch.failed == 0


# --------------------------------------------------------------------------- what is taken, and how many


async def test_at_most_five_imports_per_tick_oldest_first_and_each_once(make_manager, training):
    manager = make_manager()
    versions = [f"v{day}" for day in range(1, 8)]
    for day, version in enumerate(versions, start=1):
        samples.write_zip(package(version, day), training / f"{version}.zip")
    samples.write_folder(package("unfinished", 20), training / "unfinished")
    (training / "unfinished" / "model.joblib").write_bytes(b"half")
    watch = TrainingWatch(manager, interval_s=TICK)
    try:
        first = watch.run_once()
        assert first["imported"] == versions[:MAX_IMPORTS_PER_TICK] and first["left_for_next_tick"] == 2
        second = watch.run_once()
        assert second["imported"] == versions[MAX_IMPORTS_PER_TICK:] and second["left_for_next_tick"] == 0
        assert watch.run_once() == {"imported": [], "failed": [], "left_for_next_tick": 0}
    finally:
        watch.stop()
    assert transfers(manager) == [(v, "ok") for v in versions]
    assert "unfinished" not in registered(manager)


async def test_a_failing_package_is_tried_once_until_it_changes(make_manager, training):
    manager = make_manager()
    files = package("tampered")
    manifest = json.loads(files["deployment_manifest.json"])
    manifest["files"]["README.md"]["sha256"] = "1" * 64
    bad = samples.package_files(version="tampered", created_at="2026-11-01T08:00:00Z",
                                manifest_overrides={"files": manifest["files"]})
    samples.write_zip(bad, training / "tampered.zip")
    watch = TrainingWatch(manager, interval_s=TICK)
    try:
        assert watch.run_once()["failed"] == ["tampered.zip: [hash_mismatch]"]
        assert watch.run_once()["failed"] == [] and watch.run_once()["failed"] == []
        assert transfers(manager) == [("tampered", "failed")]
        samples.write_zip(files, training / "tampered.zip")  # the training service writes it again, right
        assert watch.run_once()["imported"] == ["tampered"]
    finally:
        watch.stop()
    assert transfers(manager) == [("tampered", "failed"), ("tampered", "ok")]
    assert watch.failed == 1 and watch.imported == 1


async def test_a_deleted_version_is_not_brought_back(make_manager, training):
    manager = make_manager()
    samples.write_zip(package("gone"), training / "gone.zip")
    watch = TrainingWatch(manager, interval_s=TICK)
    try:
        assert watch.run_once()["imported"] == ["gone"]
        manager.delete_model(version="gone")
        assert watch.run_once()["imported"] == []
        fresh = TrainingWatch(manager, interval_s=TICK)  # a new process: the audit trail, not memory
        watch.stop()
        assert fresh.run_once()["imported"] == []
        fresh.stop()
    finally:
        watch.stop()
    assert "gone" not in registered(manager)
    assert transfers(manager) == [("gone", "ok")]


# --------------------------------------------------------------------------- health and the alert


async def test_the_folder_gone_raises_an_alert_and_health_says_so_then_it_ends(make_manager, watches, training,
                                                                              tmp_path):
    manager = make_manager()
    watch = manager.start_training_watch(TICK)
    watches.append(watch)
    full_ticks(watch, 1)
    async with Client(build_server(manager)) as client:
        health = (await call(client, "scan_training_service"))["health"]
        assert health["reachable"] is True and health["readable"] is True and health["last_error"] is None
        assert health["watching"] is True and health["interval_s"] == TICK and health["last_scan"].endswith("Z")
        good_scan = health["last_scan"]

        training.rename(tmp_path / "unmounted")
        wait_for(lambda: manager.training_health().reachable is False, what="health to say unreachable")
        full_ticks(watch, 2)
        alerts = (await call(client, "get_alerts", active_only=True))["alerts"]
        assert [(a["kind"], a["severity"], a["version"]) for a in alerts] == [("training_service", "warning", None)]
        assert "does not exist" in alerts[0]["message"] and alerts[0]["count"] >= 2
        seen = manager.training_health().answer(manager.settings.home / LOCK_NAME)
        assert seen["reachable"] is False and seen["readable"] is False and "does not exist" in seen["last_error"]
        assert seen["last_scan"] >= good_scan and seen["watching"] is True
        code, message = await call_error(client, "scan_training_service")
        assert code == "training_service_unavailable"
        assert "Last successful scan" in message and f"every {TICK:g} s" in message

        (tmp_path / "unmounted").rename(training)
        samples.write_zip(package("after"), training / "after.zip")
        wait_for(lambda: "after" in registered(manager), what="the import after the folder came back")
        alerts = (await call(client, "get_alerts"))["alerts"]
        assert [(a["kind"], a["active"]) for a in alerts] == [("training_service", False)]
        health = (await call(client, "scan_training_service"))["health"]
        assert health["reachable"] is True and health["last_error"] is None and health["last_scan"] > good_scan


def test_health_tells_a_folder_not_there_from_one_that_cannot_be_listed(tmp_path):
    """Permissions cannot be taken away from root (these tests' user), so the scan's own error is
    built from the OSError the kernel gives a non-root reader of a folder without `r`."""
    from model_mcp.core.errors import TrainingServiceUnavailableError
    from model_mcp.core.training import scan_training_dir
    from model_mcp.core.training_watch import TrainingHealth

    health = TrainingHealth()
    with pytest.raises(TrainingServiceUnavailableError) as missing:
        scan_training_dir(tmp_path / "missing")
    health.failed(missing.value)
    assert (health.reachable, health.readable) == (False, False) and "does not exist" in health.last_error
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(TrainingServiceUnavailableError) as not_folder:
        scan_training_dir(tmp_path / "a-file")
    health.failed(not_folder.value)
    assert (health.reachable, health.readable) == (False, False) and "not a folder" in health.last_error
    try:
        raise TrainingServiceUnavailableError("The training directory cannot be read (Permission denied).") \
            from PermissionError(errno.EACCES, "Permission denied")
    except TrainingServiceUnavailableError as denied:
        health.failed(denied)
    assert (health.reachable, health.readable) == (True, False) and health.last_scan is None
    health.scanned()
    assert (health.reachable, health.readable, health.last_error) == (True, True, None) and health.last_scan


async def test_without_a_watch_the_health_says_not_watching(make_manager):
    manager = make_manager()
    async with Client(build_server(manager)) as client:
        health = (await call(client, "scan_training_service"))["health"]
    assert health == {"reachable": True, "readable": True, "last_scan": health["last_scan"], "last_error": None,
                      "watching": False, "interval_s": 0.0}


async def test_no_watch_when_read_only_or_interval_zero(make_manager, make_settings, training):
    make_manager()  # the home exists
    read_only = ModelManager(make_settings(training_dir=training, read_only=True, watch_training_s=5))
    read_only.start()
    assert read_only.start_training_watch() is None
    assert make_manager().start_training_watch() is None  # the default: 0, off
    assert not (read_only.settings.home / LOCK_NAME).exists()


# --------------------------------------------------------------------------- one watcher per home


async def test_two_watchers_on_one_home_only_one_imports_and_the_other_takes_over(make_manager, watches, training):
    first, second = make_manager(), make_manager()
    watch_a = first.start_training_watch(TICK)
    watches.append(watch_a)
    full_ticks(watch_a, 1)
    watch_b = second.start_training_watch(TICK)
    watches.append(watch_b)
    for day, version in enumerate(("p1", "p2", "p3"), start=1):
        samples.write_zip(package(version, day), training / f"{version}.zip")
    wait_for(lambda: {"p1", "p2", "p3"} <= registered(first), what="three imports")
    full_ticks(watch_b, 3)
    assert watch_a.holds_lock and not watch_b.holds_lock
    assert (watch_a.imported, watch_b.imported) == (3, 0)
    assert transfers(first) == [("p1", "ok"), ("p2", "ok"), ("p3", "ok")]

    watch_a.stop()  # the holder ends: the other takes the lock at its next tick
    samples.write_zip(package("p4", 4), training / "p4.zip")
    wait_for(lambda: watch_b.imported == 1, what="the other watcher's import")
    assert watch_b.holds_lock and "p4" in registered(first)
    assert transfers(first)[-1] == ("p4", "ok") and len(transfers(first)) == 4


def test_two_real_servers_on_one_home_import_each_package_once(tmp_path, training):
    """`model-mcp serve --watch-training 0.3` twice on one home; the holder is SIGKILLed, the other goes on."""
    home = tmp_path / "home"
    extra = ["--training-dir", str(training), "--watch-training", "0.3"]
    servers = [ServerProcess.spawn(home, *extra, env=NO_PROBE) for _ in range(2)]
    try:
        for server in servers:
            server.initialize()
        for day, version in enumerate(("r1", "r2"), start=1):
            samples.write_zip(package(version, day), training / f"{version}.zip")

        def transferred(server: ServerProcess) -> list[tuple[str, str]]:
            answer = server.call("get_history", kind="transfers")
            assert not answer.is_error, answer.text
            return sorted((e["version"], e["outcome"]) for e in answer.structured["events"])

        wait_for(lambda: len(transferred(servers[0])) >= 2, what="two transfers")
        time.sleep(1.0)  # three more ticks of each server
        assert transferred(servers[1]) == [("r1", "ok"), ("r2", "ok")]
        holder_pid = lockfile.holder_note(home / LOCK_NAME)["pid"]
        holder = next(s for s in servers if s.pid == holder_pid)
        other = next(s for s in servers if s.pid != holder_pid)
        health = other.call("scan_training_service").structured["health"]
        assert health["watching"] is True and health["interval_s"] == 0.3

        holder.kill()
        samples.write_zip(package("r3", 3), training / "r3.zip")
        wait_for(lambda: ("r3", "ok") in transferred(other), what="the import by the server left")
        assert lockfile.holder_note(home / LOCK_NAME)["pid"] == other.pid
        assert transferred(other) == [("r1", "ok"), ("r2", "ok"), ("r3", "ok")]
    finally:
        for server in servers:
            server.kill()


# --------------------------------------------------------------------------- configuration


def test_the_flag_and_the_setting(tmp_path):
    parser = build_parser()
    env = {"MODEL_MCP_HOME": str(tmp_path / "home")}
    assert settings_from(parser.parse_args(["serve"]), env).watch_training_s == 0
    assert settings_from(parser.parse_args(["serve", "--watch-training"]), env).watch_training_s == 30
    assert settings_from(parser.parse_args(["serve", "--watch-training", "2.5"]), env).watch_training_s == 2.5
    assert settings_from(parser.parse_args(["serve"]), {**env, "MODEL_MCP_WATCH_TRAINING_S": "7"}).watch_training_s == 7
    assert settings_from(parser.parse_args(["serve", "--watch-training", "0"]),
                         {**env, "MODEL_MCP_WATCH_TRAINING_S": "7"}).watch_training_s == 0
    refused = subprocess.run([sys.executable, "-m", "model_mcp", "serve", "--watch-training", "-1"],
                             capture_output=True, text=True, env={**os.environ, **env})
    assert refused.returncode == 2 and "--watch-training" in refused.stderr and "positive" in refused.stderr


def test_model_mcp_scan_says_a_server_watches_the_folder(make_manager, training, capsys):
    from model_mcp.cli import main

    manager = make_manager()
    watch = manager.start_training_watch(TICK)
    try:
        wait_for(lambda: watch.holds_lock, what="the watch's lock")
        capsys.readouterr()
        assert main(["scan", "--training-dir", str(training), "--home", str(manager.settings.home)]) == 0
        assert f"Watched: a server imports new complete packages every {TICK:g} s." in capsys.readouterr().out
    finally:
        watch.stop()
    assert main(["scan", "--training-dir", str(training), "--home", str(manager.settings.home)]) == 0
    assert "Watched" not in capsys.readouterr().out


async def test_a_watched_import_starts_a_shadow_only_when_the_models_policy_says_so(make_manager, training):
    manager = make_manager()
    samples.write_zip(package("v1", 1), training / "v1.zip")
    watch = TrainingWatch(manager, interval_s=TICK)
    try:
        assert watch.run_once()["imported"] == ["v1"]
        manager.deploy(version="v1")
        samples.write_zip(package("v2", 2), training / "v2.zip")
        assert watch.run_once()["imported"] == ["v2"]
        assert manager.runtime.rollouts() == {}  # no policy, no automatic action
        manager.set_rollout_policy(model_name="network-anomaly", shadow_on_import=True)
        samples.write_zip(package("v3", 3), training / "v3.zip")
        assert watch.run_once()["imported"] == ["v3"]
        live = manager.runtime.rollout_of("network-anomaly")
        assert live is not None and (live.mode, live.version) == ("shadow", "v3")
        started = manager.history.events(kind="deployments", limit=1)[0]
        assert (started["event"], started["version"], started["how"]) == ("rollout_start", "v3", "policy")
        samples.write_zip(package("v4", 4), training / "v4.zip")
        assert watch.run_once()["imported"] == ["v4"]  # a rollout is in progress: v4 waits its turn
        assert manager.runtime.rollout_of("network-anomaly").version == "v3"
    finally:
        watch.stop()
