"""Shared fixtures: a home in tmp_path, package builders, a manager and an in-memory MCP client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings
from tests.postgres import pg_relay, pg_url, postgres_database, postgres_server_url  # noqa: F401 - fixtures


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


# Test files whose every test runs twice in one pytest run: on the home's own stores and on the test's
# PostgreSQL database (tests/postgres.py), so both backends answer the same tests. MODEL_MCP_TEST_STORE=
# postgresql puts every other test on PostgreSQL too.
# On `postgresql` the registry, the audit trail, the rollout policies and the monitoring store are all in the database
# (MODEL_MCP_DATABASE_URL); a test of registry.json's own bytes or format is marked file_registry_only.
BOTH_STORES = {"test_feedback_per_deployment.py", "test_manager.py", "test_monitoring.py",
               "test_monitoring_store_tools.py", "test_multi_model.py", "test_registry_tools.py",
               "test_serving.py", "test_import.py", "test_rollouts.py", "test_training_tools.py",
               "test_housekeeping.py", "test_endpoints.py"}
# And these once more on `shared`: PostgreSQL plus a shared artifact folder (MODEL_MCP_ARTIFACT_ROOT), where
# package files and reports live outside the home and every load goes through the checked local copy.
SHARED_ARTIFACTS = {"test_registry_tools.py", "test_serving.py", "test_multi_model.py"}
FILE_ONLY_REASON = "a test of registry.json's or history.jsonl's own format; the registry is in PostgreSQL here"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "file_registry_only: tests the home's registry.json/history.jsonl "
                                       "themselves; not run on the PostgreSQL store backend")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.path.name in BOTH_STORES and "store_backend" in metafunc.fixturenames:
        file_only = metafunc.definition.get_closest_marker("file_registry_only") is not None
        backends = ["file"] if file_only else ["file", "postgresql"]
        if not file_only and metafunc.definition.path.name in SHARED_ARTIFACTS:
            backends.append("shared")
        metafunc.parametrize("store_backend", backends, indirect=True)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    backend = getattr(request, "param", None) or os.environ.get("MODEL_MCP_TEST_STORE", "file")
    if backend in ("postgresql", "shared") and request.node.get_closest_marker("file_registry_only") is not None:
        pytest.skip(FILE_ONLY_REASON)
    return backend


@pytest.fixture
def make_settings(home: Path, request: pytest.FixtureRequest, store_backend: str) -> Callable[..., Settings]:
    """Settings on the test's home; with the `postgresql` store backend, database_url is the test's
    PostgreSQL database: the registry, the audit trail and the monitoring store live there."""
    def make(**overrides: Any) -> Settings:
        if store_backend in ("postgresql", "shared") and "database_url" not in overrides:
            overrides["database_url"] = request.getfixturevalue("pg_url")
        if store_backend == "shared" and "artifact_root" not in overrides:
            overrides["artifact_root"] = Path(overrides.get("home", home)).parent / "shared-artifacts"
        settings = Settings(home=overrides.pop("home", home), **overrides)
        if settings.database_url:
            _DATABASE_OF_HOME[Path(settings.home).expanduser().absolute()] = settings.database_url  # store_state
        return settings

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def manager(settings: Settings) -> Iterator[ModelManager]:
    m = ModelManager(settings)
    m.start()
    yield m
    m.close()


@pytest.fixture
def make_started_manager(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., ModelManager]]:
    """make_started_manager(**settings) -> a started ModelManager over the test's home; each is closed
    (recorder, webhook, monitoring store) when the test ends."""
    made: list[ModelManager] = []

    def make(**overrides: Any) -> ModelManager:
        manager = ModelManager(make_settings(**overrides))
        manager.start()
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


@pytest.fixture
def packages(tmp_path: Path) -> Callable[..., Path]:
    """Build a package on disk: `packages(fmt="zip", **package_files_kwargs)` -> its path."""
    folder = tmp_path / "packages"
    folder.mkdir()
    counter = {"n": 0}

    def build(fmt: str = "zip", name: str | None = None, **kwargs: Any) -> Path:
        counter["n"] += 1
        suffix = "" if fmt == "folder" else ".zip"
        path = folder / f"{name or 'pkg' + str(counter['n'])}{suffix}"
        return samples.build_package(path, fmt=fmt, **kwargs)

    return build


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# The database a home's registry is in (make_settings with the `postgresql` store backend).
_DATABASE_OF_HOME: dict[Path, str] = {}


def store_state(home: Path) -> dict[str, Any]:
    """What a failed call must not change: registry bytes (or, on PostgreSQL, its rows and generation),
    and every file under models/ and reports/."""
    state: dict[str, Any] = {}
    registry = home / "registry.json"
    state["registry"] = registry.read_bytes() if registry.exists() else None
    url = _DATABASE_OF_HOME.get(Path(home).expanduser().absolute())
    if url is not None:
        from tests.postgres import query

        state["registry_rows"] = query(url, "SELECT version, entry::text, (SELECT generation FROM registry_state) "
                                            "FROM registry_entries ORDER BY position") \
            if query(url, "SELECT to_regclass('registry_entries') IS NOT NULL")[0][0] else None
    for folder in ("models", "reports"):
        root = home / folder
        listing = {}
        if root.exists():
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(home).as_posix()
                listing[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[folder] = listing
    staging = home / "staging"
    state["staging"] = sorted(os.listdir(staging)) if staging.exists() else []
    return state


def stored_registry(manager: ModelManager) -> dict[str, dict[str, Any]]:
    """The registry as stored, {version: entry}: registry.json's object, or the database's rows when the
    manager runs on PostgreSQL (the `postgresql` store backend)."""
    if manager.settings.database_url:
        from tests.postgres import query

        return dict(query(manager.settings.database_url, "SELECT version, entry FROM registry_entries ORDER BY position"))
    return json.loads(manager.store.registry_path.read_text())


@pytest.fixture
async def client(manager: ModelManager) -> AsyncIterator[Any]:
    from mcp import Client

    from model_mcp.server import build_server

    async with Client(build_server(manager)) as connected:
        yield connected


def package_folder(home: Path, version: str) -> Path:
    """models/<version> of the test's packages: in the home, or in the shared artifact folder that the
    `shared` store backend puts beside it."""
    shared = home.parent / "shared-artifacts"
    return (shared if shared.is_dir() else home) / "models" / version


# --- replicas on one database (tests/server/test_replicas.py and its REST, CLI views) ------------------
REPLICA_BEAT_S = 0.3


@pytest.fixture
def replica_managers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., ModelManager]]:
    """replica_managers(name, **settings) -> a started manager on its own home, the test's PostgreSQL
    database and one shared artifact folder, serving over HTTP on a made-up port (9000, 9001, ...),
    with its heartbeat running every REPLICA_BEAT_S. Closed after the test."""
    made: list[ModelManager] = []

    def make(name: str, **overrides: Any) -> ModelManager:
        values = {"artifact_root": tmp_path / "shared", "transport": "http", "port": 9000 + len(made),
                  "replica_heartbeat_s": REPLICA_BEAT_S, **overrides}
        if "database_url" not in values:
            values["database_url"] = request.getfixturevalue("pg_url")
        manager = ModelManager(Settings(home=tmp_path / name, **values))
        manager.start()
        manager.load_deployed_in_background()
        manager.start_heartbeat()
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


def wait_for(check: Callable[[], Any], bound_s: float = 20.0) -> Any:
    """The first truthy answer of `check`, polled within a generous bound (a bound, not a timing)."""
    deadline = time.monotonic() + bound_s
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)
