"""`model-mcp migrate`'s core (core/pg/move.py, core/verified_copy.py) on real homes made by the manager and
a real PostgreSQL: a home into the database and an artifact folder, and back into a home that a plain
server serves; every file verified, reruns that change nothing, refusals that write nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from model_mcp import samples
from model_mcp.core.errors import HashMismatchError, InvalidStateError, VersionConflictError
from model_mcp.core.history import History
from model_mcp.core.manager import ModelManager
from model_mcp.core.pg.move import database_to_home, home_to_database
from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.registry import Registry
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store
from model_mcp.settings import Settings
from tests.postgres import query

ROWS = samples.sample_rows(40)


def _manager(home: Path) -> ModelManager:
    manager = ModelManager(Settings(home=home, isolated_probe=False, monitor_check_interval_s=0))
    manager.start()
    return manager


@pytest.fixture
def home(tmp_path: Path, packages) -> Path:
    """Three versions (A deployed before B, C failed-free and never deployed), history, monitoring, feedback."""
    home = tmp_path / "home"
    manager = _manager(home)
    for version, seed in (("A", 1), ("B", 4), ("C", 7)):
        manager.import_zip(path=str(packages(version=version, seed=seed)))
    manager.deploy(version="A")
    answer = manager.predict(rows=ROWS)
    manager.record_feedback(request_id=answer["request_id"], labels=answer["labels"])
    manager.deploy(version="B")
    manager.predict(rows=ROWS)
    manager.set_rollout_policy(model_name="network-anomaly", min_compared_rows=500, auto_abort=True)
    manager.close()
    return home


def tree(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under root but the lock files: (sha256, inode, mtime_ns), to see that a run touched nothing."""
    found = {}
    if root.exists():
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name not in ("artifacts.lock", "registry.json.lock"):
                stat = path.stat()
                found[path.relative_to(root).as_posix()] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                            stat.st_ino, stat.st_mtime_ns)
    return found


def rows(url: str) -> list[tuple[str, str]]:
    return query(url, "SELECT version, entry::text FROM registry_entries ORDER BY position") \
        if query(url, "SELECT to_regclass('registry_entries') IS NOT NULL")[0][0] else []


def monitoring_tables(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as connection:
        return {table: connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("processes", "buckets", "window_rows", "requests", "feedback", "drift_reports",
                              "alerts", "states")}


def test_a_home_moves_into_the_database_and_artifact_folder_verified_and_a_rerun_changes_nothing(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "artifacts"
    report = home_to_database(home, pg_url, root)
    entries = Registry(Store(home)).read().entries
    n_files = sum(len(e.files or {}) for e in entries.values())
    assert report.versions == 3 and report.registry_written == 3
    assert report.files_copied == n_files == report.files_verified and report.files_skipped == 0
    assert report.reports_copied == 3 and report.history_events > 0 and report.monitoring_rows["window_rows"] > 0
    assert not report.files_recorded and not report.paths_rewritten and report.policies_copied == 1
    # The layout mirrors the home's package part, every file the bytes recorded at import.
    for version, entry in entries.items():
        for name, info in (entry.files or {}).items():
            data = (root / entry.path / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == info.sha256 and len(data) == info.size
        assert (root / "reports" / f"{version}.json").read_bytes() == (home / "reports" / f"{version}.json").read_bytes()
    assert sorted(p.name for p in (root / "models").iterdir()) == ["A", "B", "C"], "no temporary folders left"
    assert not (root / "staging").exists() or not any((root / "staging").iterdir())
    # The rows name the same entries, in the same order, B deployed.
    assert [json.loads(text) for _, text in rows(pg_url)] == [e.registry_json() for e in entries.values()]
    registry = PostgresRegistry(pg_url, listen=False)
    assert registry.deployed_versions() == {"network-anomaly": "B"}
    registry.close()

    # A rerun: every file verified again, nothing written anywhere.
    files, database = tree(root), rows(pg_url)
    counts = [query(pg_url, f"SELECT count(*) FROM {t}")[0][0] for t in ("history_events", "monitoring_window_rows")]
    again = home_to_database(home, pg_url, root)
    assert again.files_copied == 0 and again.files_skipped == n_files == again.files_verified
    assert again.reports_copied == again.reports_replaced == 0 and again.reports_skipped == 3
    assert again.registry_written == 0 and again.history_events == 0 and again.monitoring_rows == {}
    assert again.policies_copied == 0 and not [note for note in again.notes if "polic" in note]
    assert tree(root) == files and rows(pg_url) == database
    assert counts == [query(pg_url, f"SELECT count(*) FROM {t}")[0][0] for t in ("history_events", "monitoring_window_rows")]


def test_an_old_registry_with_absolute_paths_and_no_files_is_moved_with_paths_and_hashes_recorded(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    # The old format: a list, `active` for deployed, A's folder outside the home by absolute path, no `files`.
    elsewhere = tmp_path / "old-place" / "pkgA"
    elsewhere.parent.mkdir()
    shutil.move(str(home / "models" / "A"), elsewhere)
    new = json.loads((home / "registry.json").read_text())
    old = []
    for version, entry in new.items():
        entry = dict(entry)
        if version == "A":
            entry["path"] = str(elsewhere)
            recorded_a = entry.pop("files")
        if entry["status"] == "deployed":
            entry["status"] = "active"
        old.append(entry)
    (home / "registry.json").write_text(json.dumps({"models": old}))
    root = tmp_path / "artifacts"
    report = home_to_database(home, pg_url, root)
    assert report.files_recorded == ["A"] and report.paths_rewritten == ["A"]
    stored = {version: json.loads(text) for version, text in rows(pg_url)}
    assert stored["A"]["path"] == "models/A" and stored["A"]["files"] == recorded_a
    assert stored["B"]["status"] == "deployed" and stored["B"]["path"] == "models/B"
    for name, info in recorded_a.items():
        assert hashlib.sha256((root / "models" / "A" / name).read_bytes()).hexdigest() == info["sha256"]
    assert (home / "registry.json").exists() and json.loads((home / "registry.json").read_text()) == {"models": old}, \
        "the home is only read"
    again = home_to_database(home, pg_url, root)
    assert again.registry_written == 0 and again.files_copied == 0


def test_a_corrupted_source_file_is_refused_by_name_and_nothing_is_written(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    with (home / "models" / "B" / "model.joblib").open("ab") as handle:
        handle.write(b"\0")
    root = tmp_path / "artifacts"
    with pytest.raises(HashMismatchError, match=r"models/B/model\.joblib") as refused:
        home_to_database(home, pg_url, root)
    assert refused.value.code == "hash_mismatch"
    assert tree(root) == {} and list((root / "models").iterdir()) == [], "A, copied before B failed, was removed"
    assert rows(pg_url) == []
    # A folder missing from the source is refused the same way, before anything is copied.
    shutil.rmtree(home / "models" / "C")
    with pytest.raises(HashMismatchError, match="C's package folder models/C is missing"):
        home_to_database(home, pg_url, root)
    assert tree(root) == {}


def test_a_target_file_with_other_content_is_refused_and_nothing_is_overwritten(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "artifacts"
    (root / "models" / "C").mkdir(parents=True)
    (root / "models" / "C" / "metadata.json").write_text("{}")
    before = tree(root)
    with pytest.raises(VersionConflictError, match=r"models/C/metadata\.json already exists with other content"):
        home_to_database(home, pg_url, root)
    assert tree(root) == before and rows(pg_url) == []
    # A file a package does not have is refused too (another package's folder, or a damaged copy).
    (root / "models" / "C" / "metadata.json").unlink()
    (root / "models" / "C" / "notes.txt").write_text("mine")
    with pytest.raises(VersionConflictError, match="holds notes.txt"):
        home_to_database(home, pg_url, root)
    # A folder that holds part of the package, identical, is completed.
    (root / "models" / "C" / "notes.txt").unlink()
    shutil.copy(home / "models" / "C" / "metadata.json", root / "models" / "C" / "metadata.json")
    report = home_to_database(home, pg_url, root)
    assert report.files_skipped == 1 and report.files_copied == report.files_verified - 1


def test_a_database_holding_another_registry_is_refused_before_any_file_is_copied(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    other = PostgresRegistry(pg_url, listen=False)
    other.update(lambda s: s.entries.__setitem__("elsewhere", RegistryEntry(version="elsewhere", path="models/x")))
    other.close()
    root = tmp_path / "artifacts"
    with pytest.raises(InvalidStateError, match="elsewhere"):
        home_to_database(home, pg_url, root)
    assert tree(root) == {}


def test_the_database_moves_back_into_a_home_that_a_plain_server_serves(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "artifacts"
    home_to_database(home, pg_url, root)
    back = tmp_path / "back"
    report = database_to_home(pg_url, root, back)
    n_files = report.files_verified
    assert report.versions == 3 and report.registry_written == 3 and report.files_copied == n_files > 0
    assert report.reports_copied == 3 and report.monitoring_rows["processes"] >= 1
    # registry.json in the current format, the database's entries in its order.
    assert [json.loads(text) for _, text in rows(pg_url)] == list(json.loads((back / "registry.json").read_text()).values())
    events = [json.loads(text) for (text,) in query(pg_url, "SELECT entry::text FROM history_events ORDER BY id")]
    assert list(History(back / "history.jsonl").oldest_first()) == events
    source_tables = monitoring_tables(home / "monitoring.db")
    copied_tables = monitoring_tables(back / "monitoring.db")
    for table in ("window_rows", "requests", "feedback"):
        assert [r[1:] if table == "window_rows" else r for r in copied_tables[table]] == \
            [r[1:] if table == "window_rows" else r for r in source_tables[table]], table
    assert len(copied_tables["buckets"]) == len(source_tables["buckets"])
    assert report.policies_copied == 1
    assert (back / "rollout-policies.json").read_bytes() == (home / "rollout-policies.json").read_bytes()

    # Rerun: nothing changes (SQLite's side files come and go).
    def files_of(folder: Path) -> dict[str, tuple[str, int, int]]:
        return {name: value for name, value in tree(folder).items() if not name.startswith("monitoring.db-")}

    files = files_of(back)
    again = database_to_home(pg_url, root, back)
    assert again.files_copied == 0 and again.registry_written == 0 and again.history_events == 0
    assert again.monitoring_rows == {} and again.policies_copied == 0 and files_of(back) == files
    assert monitoring_tables(back / "monitoring.db") == copied_tables

    # A plain home: served without the URL, deploy and predict answer as the original home does.
    original = _manager(home)
    original.deploy(version="A")
    expected = original.predict(rows=ROWS)
    original.close()
    served = _manager(back)
    assert served.list_models().deployed_version == "B"
    assert served.get_rollout_policy(model_name="network-anomaly").policy["min_compared_rows"] == 500
    served.deploy(version="A")
    answer = served.predict(rows=ROWS)
    assert answer["labels"] == expected["labels"] and answer["scores"] == expected["scores"]
    assert answer["model_version"] == "A"
    history = served.get_history(kind="deployments", limit=10).events
    assert [e["version"] for e in history[:3]] == ["A", "B", "A"]
    served.close()


def test_a_folder_holding_another_home_is_refused_with_nothing_written(
        home: Path, tmp_path: Path, pg_url: str, packages) -> None:
    root = tmp_path / "artifacts"
    home_to_database(home, pg_url, root)
    other = tmp_path / "other"
    manager = _manager(other)
    manager.import_zip(path=str(packages(version="Z", seed=9)))
    manager.close()
    before = tree(other)
    with pytest.raises(InvalidStateError, match=r"holds versions the database does not \(Z\)") as refused:
        database_to_home(pg_url, root, other)
    assert refused.value.code == "invalid_state" and tree(other) == before


async def _answers(manager: ModelManager, *versions: str) -> dict[str, dict]:
    """Through a real MCP client: deploy each version in turn and predict ROWS with it."""
    from mcp import Client

    from model_mcp.server import build_server
    from tests.helpers import call

    found = {}
    async with Client(build_server(manager)) as client:
        for version in versions:
            if (await call(client, "list_models")).get("deployed_version") != version:
                assert (await call(client, "deploy", version=version))["deployed_version"] == version
            answer = await call(client, "predict", rows=ROWS)
            assert answer["model_version"] == version
            found[version] = {"labels": answer["labels"], "scores": answer["scores"]}
    return found


@pytest.mark.anyio
async def test_a_migrated_home_is_served_from_the_database_and_artifact_folder_and_again_as_a_plain_home(
        home: Path, tmp_path: Path, pg_url: str) -> None:
    root = tmp_path / "artifacts"
    home_to_database(home, pg_url, root)
    original = _manager(home)
    expected = await _answers(original, "B", "A", "C")
    original.close()

    # A server on another home, with the database and the artifact folder: what the home served, it serves.
    replica = ModelManager(Settings(home=tmp_path / "replica", database_url=pg_url, artifact_root=root,
                                    isolated_probe=False, monitor_check_interval_s=0))
    replica.start()
    try:
        listing = replica.list_models()
        assert listing.total == 3 and listing.deployed_version == "B"
        assert await _answers(replica, "B", "A") == {v: expected[v] for v in ("B", "A")}
        assert (tmp_path / "replica" / "package-cache" / "A" / "model.joblib").is_file(), "loaded from its checked copy"
        assert not (tmp_path / "replica" / "models").exists()
        assert replica.get_model(version="C").validation is not None, "the report is in the artifact folder"
    finally:
        replica.close()

    # Back into a plain home (A deployed there now): served without the URL.
    back = tmp_path / "back"
    report = database_to_home(pg_url, root, back)
    assert report.versions == 3 and report.files_copied == report.files_verified
    plain = _manager(back)
    try:
        assert plain.list_models().deployed_version == "A"
        assert await _answers(plain, "A", "C", "B") == expected
        deployments = [e["version"] for e in plain.get_history(kind="deployments", limit=10).events]
        assert deployments[:4] == ["B", "C", "A", "B"], "the replica's deploy came back with the trail"
    finally:
        plain.close()
