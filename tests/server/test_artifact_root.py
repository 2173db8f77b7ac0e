"""The shared artifact folder (MODEL_MCP_ARTIFACT_ROOT): servers on separate homes and one database
read every package from one folder, each loading only its local copy checked against the sha256
recorded at import (core/package_cache.py). Real managers, real MCP clients, real PostgreSQL
(tests/postgres.py: skipped without a server, except in CI)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from model_mcp.core.manager import ModelManager
from model_mcp.server import build_server
from model_mcp.settings import Settings
from tests.conftest import b64
from tests.helpers import call, call_error
from tests.postgres import query

pytestmark = pytest.mark.anyio

NET = "network-anomaly"
ROW8 = [[0.1] * 8]


def _manager(home: Path, pg_url: str, artifacts: Path) -> ModelManager:
    manager = ModelManager(Settings(home=home, database_url=pg_url, artifact_root=artifacts))
    manager.start()
    return manager


async def _served(client, want: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        answer = await call(client, "predict", rows=ROW8, model_name=NET)
        if answer["model_version"] == want or time.monotonic() > deadline:
            return answer["model_version"]
        await anyio.sleep(0.05)


@contextlib.asynccontextmanager
async def _two_servers(tmp_path: Path, pg_url: str, packages) -> AsyncIterator[tuple]:
    """Managers on homes a and b, one database, one shared folder; n1 and n2 imported through a."""
    shared = tmp_path / "shared"
    a = _manager(tmp_path / "a", pg_url, shared)
    b = _manager(tmp_path / "b", pg_url, shared)
    try:
        async with Client(build_server(a)) as client_a, Client(build_server(b)) as client_b:
            for version in ("n1", "n2"):
                imported = await call(client_a, "import_zip", content_base64=b64(
                    packages(version=version, model_name=NET, seed=len(version))))
                assert imported["path"] == f"models/{version}"
            yield shared, a, b, client_a, client_b
    finally:
        a.close()
        b.close()


async def test_two_homes_share_one_artifact_folder_and_load_checked_local_copies(
        tmp_path: Path, pg_url: str, packages) -> None:
    async with _two_servers(tmp_path, pg_url, packages) as (shared, _a, _b, client_a, client_b):
        # The files are in the shared folder, published before their rows; neither home has models/.
        assert sorted(p.name for p in (shared / "models").iterdir()) == ["n1", "n2"]
        assert (shared / "reports" / "n1.json").is_file()
        assert not (tmp_path / "a" / "models").exists() and not (tmp_path / "b" / "models").exists()
        recorded = json.loads(query(pg_url, "SELECT entry::text FROM registry_entries WHERE version = 'n1'")[0][0])
        assert recorded["files"]["model.joblib"]["sha256"]

        # B deploys what A imported: loaded from B's own checked copy.
        assert (await call(client_b, "deploy", version="n1"))["deployed_version"] == "n1"
        cached = tmp_path / "b" / "package-cache" / "n1"
        assert {p.name for p in cached.iterdir()} >= {"model.joblib", "metadata.json"}
        assert (cached / "model.joblib").read_bytes() == (shared / "models" / "n1" / "model.joblib").read_bytes()
        assert await _served(client_b, "n1") == "n1"
        # A follows B's deploy, from its own copy.
        assert await _served(client_a, "n1") == "n1"
        assert (tmp_path / "a" / "package-cache" / "n1" / "model.joblib").is_file()

        # get_model, the report and validate work from either.
        got = await call(client_b, "get_model", version="n2")
        assert got["validation"]["passed"] is True
        assert (await call(client_b, "validate", version="n2"))["passed"] is True

        # A deleted version's files go from the shared folder and the deleting home's cache.
        await call(client_a, "deploy", version="n2")
        await call(client_a, "delete_model", version="n1")
        assert not (shared / "models" / "n1").exists() and not (shared / "reports" / "n1.json").exists()
        assert not (tmp_path / "a" / "package-cache" / "n1").exists()
        assert await _served(client_b, "n2") == "n2"


async def test_a_shared_file_that_no_longer_matches_its_record_is_never_loaded(
        tmp_path: Path, pg_url: str, packages) -> None:
    async with _two_servers(tmp_path, pg_url, packages) as (shared, _a, b, client_a, client_b):
        await call(client_a, "deploy", version="n1")
        # Someone rewrites n2's pickle on the shared mount (another writer, a bad copy).
        tampered = shared / "models" / "n2" / "model.joblib"
        tampered.write_bytes(tampered.read_bytes()[:-1] + b"\x00")
        # Refused as a home's changed file is: the failed `hashes` check, found by hashing only.
        code, sentence = await call_error(client_b, "deploy", version="n2")
        assert code == "validation_failed" and "hashes" in sentence
        # Nothing changed: n1 still deployed and served, no copy of n2 kept.
        assert query(pg_url, "SELECT version FROM registry_entries WHERE status = 'deployed'") == [("n1",)]
        assert not (tmp_path / "b" / "package-cache" / "n2").exists()
        assert [p.name for p in (tmp_path / "b" / "package-cache").iterdir()
                if p.name.startswith(".tmp")] == []
        assert await _served(client_b, "n1") == "n1"
        report = await call(client_a, "validate", version="n2")
        assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["hashes"]
        assert query(pg_url, "SELECT status FROM registry_entries WHERE version = 'n2'") == [("failed",)]
        assert not (tmp_path / "a" / "package-cache" / "n2").exists()
        # The process that loads without validating (following a deploy, a restart) refuses the
        # same file by its own check: the copy is hashed while it is made.
        with pytest.raises(Exception, match="does not match the sha256 recorded at import"):
            entry = b.registry.read().entries["n2"]
            b.package_root(entry)


async def test_a_damaged_local_copy_is_replaced_from_the_shared_folder_before_loading(
        tmp_path: Path, pg_url: str, packages) -> None:
    shared = tmp_path / "shared"
    a = _manager(tmp_path / "a", pg_url, shared)
    try:
        async with Client(build_server(a)) as client:
            await call(client, "import_zip", content_base64=b64(packages(version="n1", model_name=NET)))
            await call(client, "deploy", version="n1")
    finally:
        a.close()
    copy = tmp_path / "a" / "package-cache" / "n1" / "model.joblib"
    good = copy.read_bytes()
    copy.write_bytes(b"not the model")  # a bad sector, a hand edit
    scorer_cache = tmp_path / "a" / "scorer-cache"
    if scorer_cache.exists():  # make the restart load the model itself, not the saved arrays
        subprocess.run(["rm", "-rf", str(scorer_cache)], check=True)
    again = _manager(tmp_path / "a", pg_url, shared)
    try:
        again.load_deployed_in_background()
        async with Client(build_server(again)) as client:
            assert await _served(client, "n1") == "n1"
        assert copy.read_bytes() == good
    finally:
        again.close()


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """The folder made unwritable for this process: a read-only bind mount as root (root ignores
    permissions), the permission bits otherwise."""
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
        if mounted.returncode != 0:
            pytest.fail(f"cannot bind-mount to make a read-only folder: {mounted.stderr.decode()[:200]}")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True, capture_output=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for path in modes:
            path.chmod(0o555)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


async def test_an_unwritable_shared_folder_refuses_imports_and_serving_goes_on(
        tmp_path: Path, pg_url: str, packages) -> None:
    shared = tmp_path / "shared"
    a = _manager(tmp_path / "a", pg_url, shared)
    try:
        async with Client(build_server(a)) as client:
            for version in ("n1", "n2"):
                await call(client, "import_zip", content_base64=b64(
                    packages(version=version, model_name=NET, seed=len(version))))
            await call(client, "deploy", version="n1")
            with _read_only(shared):
                code, sentence = await call_error(client, "import_zip", content_base64=b64(
                    packages(version="n3", model_name=NET, seed=3)))
                assert code == "storage_error" and "Nothing was changed" in sentence
                assert (await call(client, "predict", rows=ROW8))["model_version"] == "n1"
                # A deploy writes only the database: it goes on, loading from the shared folder.
                assert (await call(client, "deploy", version="n2"))["deployed_version"] == "n2"
                assert (await call(client, "predict", rows=ROW8))["model_version"] == "n2"
                # A second server started now starts and serves.
                b = _manager(tmp_path / "b", pg_url, shared)
                try:
                    b.load_deployed_in_background()
                    async with Client(build_server(b)) as client_b:
                        assert await _served(client_b, "n2") == "n2"
                finally:
                    b.close()
            assert sorted(r[0] for r in query(pg_url, "SELECT version FROM registry_entries")) == ["n1", "n2"]
            assert not (shared / "models" / "n3").exists()
            # Writable again: imports work.
            await call(client, "import_zip", content_base64=b64(packages(version="n3", model_name=NET, seed=3)))
    finally:
        a.close()


async def test_a_publish_a_killed_replica_left_is_undone_by_the_next_import(
        tmp_path: Path, pg_url: str, packages) -> None:
    """What a replica SIGKILLed between publishing the files and writing the row leaves (the folder
    and its journal, no row; tests/reliability kills real processes there) is not a version: it is
    not listed, and the next import of that version on any replica undoes it and imports."""
    shared = tmp_path / "shared"
    a = _manager(tmp_path / "a", pg_url, shared)
    try:
        async with Client(build_server(a)) as client:
            await call(client, "import_zip", content_base64=b64(packages(version="n1", model_name=NET)))
        left = shared / "models" / "n9"
        subprocess.run(["cp", "-r", str(shared / "models" / "n1"), str(left)], check=True)
        (shared / "staging" / "publish-n9.json").write_text(json.dumps(
            {"version": "n9", "target": "models/n9", "imported_at": "2026-01-01T00:00:00Z"}))
        async with Client(build_server(a)) as client:
            listed = await call(client, "list_models")
            assert [m["version"] for m in listed["models"]] == ["n1"]
            imported = await call(client, "import_zip", content_base64=b64(
                packages(version="n9", model_name=NET, seed=9)))
            assert imported["already_present"] is False
            assert not (shared / "staging" / "publish-n9.json").exists()
            assert (await call(client, "deploy", version="n9"))["deployed_version"] == "n9"
    finally:
        a.close()
