"""Three replicas as real processes: `model-mcp serve --transport http` on three ports, each on its own
home, sharing one PostgreSQL database and one artifact folder (MODEL_MCP_ARTIFACT_ROOT), driven over
REST (and MCP over HTTP for the tools' wording of a database outage). Issue 16, items 5 and 6.

The three servers are started once for the module (tests/reliability/replicas.py); each test works
on its own model name, so the tests do not see each other's versions. The servers reach the database
through a TCP relay (tests/postgres.py `TcpRelay`) that the fault test cuts and restores.

The kill mid-import needs no hook in the server: the test holds the registry's advisory lock
(`pg_advisory_lock(REGISTRY_LOCK)`, the lock every registry write takes), so an import that has
renamed its package into the shared models/ waits in its registry write; the test sees the folder,
the publish journal and the waiting lock, and SIGKILLs the replica exactly there.

Skipped without MODEL_MCP_TEST_POSTGRES_URL, required in CI (tests/postgres.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import numpy as np
import pytest

from model_mcp import samples
from model_mcp.core.pg import REGISTRY_LOCK
from tests.helpers import call, call_error
from tests.postgres import TcpRelay, query, reset_database
from tests.reliability.replicas import Replica, ok, problem_code, replica_env, sha256, start_all, wait_serving
from tests.server.test_artifact_root import _read_only

pytestmark = pytest.mark.slow  # three server processes; 30 to 60 s on 2 busy cores

N_SAMPLES = 500  # small models: quick to fit here and to load in each replica
ROW = samples.sample_rows(1)
ROWS5 = samples.sample_rows(5, seed=7)
BASE = "base"  # a model deployed for the whole module, so every test has something to predict


@dataclass
class Cluster:
    replicas: list[Replica]
    shared: Path
    database: str  # the database itself, not through the relay (for the test's own queries)
    relay: TcpRelay

    @property
    def a(self) -> Replica:
        return self.replicas[0]

    @property
    def b(self) -> Replica:
        return self.replicas[1]

    @property
    def c(self) -> Replica:
        return self.replicas[2]

    def restart(self, replica: Replica) -> float:
        """Start a killed replica again on its home and port; the seconds until it answers."""
        started = time.perf_counter()
        replica.start()
        replica.wait_ready()
        return time.perf_counter() - started


def package(version: str, model_name: str, seed: int) -> tuple[bytes, dict[str, bytes]]:
    """A package's ZIP bytes and its files (name -> bytes)."""
    import io
    import zipfile

    files = samples.package_files(version=version, model_name=model_name, seed=seed, n_samples=N_SAMPLES)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), files[name])
    return buffer.getvalue(), files


def expected_scores(seed: int, rows: list[list[float]]) -> np.ndarray:
    """The version's own scores for `rows`: scikit-learn's decision_function of the very model the
    package holds (samples fits it deterministically from the seed)."""
    model = samples.build_model("iforest", samples.training_data(N_SAMPLES, 8, seed), seed=seed)
    return model.decision_function(np.asarray(rows, dtype=float))


@pytest.fixture(scope="module")
def cluster(postgres_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from urllib.parse import urlsplit

    reset_database(postgres_database)
    root = tmp_path_factory.mktemp("replicas")
    shared = root / "shared"
    parts = urlsplit(postgres_database)
    relay = TcpRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    relay.start()
    env = replica_env(relay.url(postgres_database), shared)
    replicas = [Replica(name, root / name, env) for name in ("a", "b", "c")]
    try:
        start_all(replicas)
        cluster = Cluster(replicas, shared, postgres_database, relay)
        data, _ = package("base1", BASE, seed=1)
        assert ok(cluster.a.import_zip(data), cluster.a)["status"] == "available"
        ok(cluster.a.deploy("base1"), cluster.a)
        for replica in replicas:  # each has loaded a model (scikit-learn imported): warm for the timings
            wait_serving(replica, ROW, BASE, "base1")
        yield cluster
    finally:
        for replica in replicas:
            replica.stop()
        relay.stop()


def _shared_files_match(shared: Path, version: str, files: dict[str, bytes]) -> None:
    folder = shared / "models" / version
    assert sorted(p.name for p in folder.iterdir()) == sorted(files), version
    for name, data in files.items():
        assert sha256((folder / name).read_bytes()) == sha256(data), f"{version}/{name}"


def _staging_left(shared: Path) -> list[str]:
    return sorted(p.name for p in (shared / "staging").iterdir())


# --- a. concurrent imports ------------------------------------------------------------------------
def test_concurrent_imports_from_three_replicas_lose_nothing(cluster: Cluster) -> None:
    model = "bulk"
    jobs: list[tuple[Replica, str, bytes]] = []
    expected: dict[str, dict[str, bytes]] = {}
    for r, replica in enumerate(cluster.replicas):
        for i in range(4):
            version = f"bulk-{replica.name}{i}"
            data, files = package(version, model, seed=100 + 10 * r + i)
            jobs.append((replica, version, data))
            expected[version] = files
    same, same_files = package("bulk-same", model, seed=200)
    jobs += [(cluster.a, "bulk-same", same), (cluster.b, "bulk-same", same)]
    expected["bulk-same"] = same_files
    differing = {replica.name: package("bulk-diff", model, seed=seed)
                 for replica, seed in ((cluster.b, 201), (cluster.c, 202))}
    jobs += [(cluster.b, "bulk-diff", differing["b"][0]), (cluster.c, "bulk-diff", differing["c"][0])]

    barrier = threading.Barrier(len(jobs))

    def send(job: tuple[Replica, str, bytes]) -> tuple[str, str, httpx2.Response]:
        replica, version, data = job
        barrier.wait()  # every import leaves at once
        return replica.name, version, replica.import_zip(data)

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(send, jobs))

    by_version: dict[str, list[tuple[str, httpx2.Response]]] = {}
    for name, version, response in answers:
        by_version.setdefault(version, []).append((name, response))
    for version in (v for v in expected if v != "bulk-same"):
        ((name, response),) = by_version[version]
        body = ok(response)
        assert response.status_code == 201 and body["already_present"] is False, (name, body)
        assert (body["version"], body["status"]) == (version, "available")
    # The same content from two replicas: one import, one no-op answering the existing entry.
    same_answers = sorted((r.status_code, r.json()["already_present"]) for _, r in by_version["bulk-same"])
    assert same_answers == [(200, True), (201, False)], same_answers
    # Different content under one version from two replicas: one wins, the other is a conflict.
    statuses = {name: response.status_code for name, response in by_version["bulk-diff"]}
    assert sorted(statuses.values()) == [201, 409], {n: r.text[:300] for n, r in by_version["bulk-diff"]}
    loser = next(r for _, r in by_version["bulk-diff"] if r.status_code == 409)
    assert problem_code(loser) == "version_conflict"
    winner = next(name for name, status in statuses.items() if status == 201)
    expected["bulk-diff"] = differing[winner][1]

    # Every version registered exactly once, with the sha256 of the files it was imported with.
    rows = query(cluster.database, "SELECT version, entry::text FROM registry_entries WHERE model_name = %s",
                 (model,))
    assert sorted(v for v, _ in rows) == sorted(expected)
    for version, text in rows:
        recorded = {name: info["sha256"] for name, info in json.loads(text)["files"].items()}
        assert recorded == {name: sha256(data) for name, data in expected[version].items()}, version
    imports = query(cluster.database, "SELECT version, count(*) FROM history_events WHERE event = 'import' "
                                      "AND outcome = 'ok' AND version = ANY(%s) GROUP BY version", (list(expected),))
    assert dict(imports) == dict.fromkeys(expected, 1)
    # The files complete in the shared folder, each with its report; nothing in any home's models/.
    for version, files in expected.items():
        _shared_files_match(cluster.shared, version, files)
        assert (cluster.shared / "reports" / f"{version}.json").is_file()
    assert not any((replica.home / "models").exists() for replica in cluster.replicas)
    # No leftovers: staging empty (uploads, extractions, journals), no temp files.
    assert _staging_left(cluster.shared) == []
    assert [p.name for p in (cluster.shared / "reports").glob(".tmp-*")] == []
    # Every replica lists the same fourteen.
    for replica in cluster.replicas:
        listed = ok(replica.list_models(model_name=model, limit=50), replica)
        assert listed["total"] == len(expected) and {m["version"] for m in listed["models"]} == set(expected)


# --- b. propagation -------------------------------------------------------------------------------
def test_a_deploy_through_one_replica_is_served_by_the_other_two_within_a_second(cluster: Cluster) -> None:
    model = "prop"
    for version, seed in (("prop1", 11), ("prop2", 12)):
        ok(cluster.a.import_zip(package(version, model, seed)[0]), cluster.a)
    ok(cluster.a.deploy("prop1"), cluster.a)
    for replica in cluster.replicas:
        wait_serving(replica, ROW, model, "prop1")

    figures: list[tuple[str, str, str, float]] = []  # (deployer, follower, version, seconds)
    plan = [(cluster.b, "prop2"), (cluster.c, "prop1"), (cluster.a, "prop2"),
            (cluster.b, "prop1"), (cluster.c, "prop2"), (cluster.a, "prop1")]
    for deployer, version in plan:
        answer = ok(deployer.deploy(version), deployer)
        answered = time.perf_counter()
        assert answer["deployed_version"] == version
        followers = [r for r in cluster.replicas if r is not deployer]
        with ThreadPoolExecutor(len(followers)) as pool:
            delays = list(pool.map(lambda r, v=version, t=answered: wait_serving(r, ROW, model, v, since=t),
                                   followers))
        figures += [(deployer.name, r.name, version, d) for r, d in zip(followers, delays, strict=True)]
        # The deploying replica itself answers the new version at once.
        assert deployer.predict(ROW, model).json()["model_version"] == version
    print("\npropagation (deployer -> follower, version, ms):",
          ", ".join(f"{d}->{f} {v} {s * 1000:.0f}" for d, f, v, s in figures))
    slowest = max(figures, key=lambda f: f[3])
    assert slowest[3] < 1.0, f"a follower took {slowest[3]:.3f} s: {slowest}"


# --- c. predicts during deploys -------------------------------------------------------------------
def test_predicts_during_deploys_on_every_replica_answer_one_version_with_its_own_scores(cluster: Cluster) -> None:
    model = "mixed"
    seeds = {"mixed1": 31, "mixed2": 32}
    for version, seed in seeds.items():
        ok(cluster.c.import_zip(package(version, model, seed)[0]), cluster.c)
    own = {version: expected_scores(seed, ROWS5) for version, seed in seeds.items()}
    assert np.min(np.abs(own["mixed1"] - own["mixed2"])) > 1e-4  # a mixed answer would show
    ok(cluster.c.deploy("mixed1"), cluster.c)
    for replica in cluster.replicas:
        wait_serving(replica, ROW, model, "mixed1")

    stop = threading.Event()
    answers: list[tuple[str, int, dict[str, Any]]] = []
    lock = threading.Lock()

    def predict_loop(replica: Replica) -> None:
        with httpx2.Client(base_url=replica.base_url + "/api/v1", timeout=60) as http:
            while not stop.is_set():
                response = replica.predict(ROWS5, model, client=http)
                with lock:
                    answers.append((replica.name, response.status_code, response.json()))

    clients = [threading.Thread(target=predict_loop, args=(r,), daemon=True) for r in cluster.replicas * 2]
    for thread in clients:
        thread.start()
    switches = []
    try:
        for i in range(8):
            time.sleep(0.3)
            replica = cluster.replicas[i % 3]  # deploys and rollbacks alternate, each through another replica
            if i % 2 == 0:
                switched = ok(replica.deploy("mixed2"), replica)
            else:
                switched = ok(replica.rollback(model), replica)
            switches.append((replica.name, switched["deployed_version"]))
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    assert switches == [(cluster.replicas[i % 3].name, "mixed2" if i % 2 == 0 else "mixed1") for i in range(8)]

    seen: dict[str, set[str]] = {r.name: set() for r in cluster.replicas}
    for name, status, body in answers:
        assert status == 200, (name, body)
        version = body["model_version"]
        assert version in own, (name, body)
        scores = np.asarray(body["scores"])
        assert body["n_rows"] == 5 and scores.shape == (5,)
        np.testing.assert_allclose(scores, own[version], rtol=0, atol=1e-9,
                                   err_msg=f"{name}: an answer naming {version} with another version's scores")
        assert body["labels"] == [-1 if s < 0 else 1 for s in own[version]]
        seen[name].add(version)
    print(f"\n{len(answers)} predicts during 8 switches; versions seen per replica:",
          {n: sorted(v) for n, v in seen.items()})
    assert all(versions == set(own) for versions in seen.values()), seen  # the switches happened under load


# --- d. SIGKILL mid-import ------------------------------------------------------------------------
@contextlib.contextmanager
def _registry_writes_held(database: str) -> Iterator[None]:
    """Every replica's registry write waits while this holds the registry's advisory lock."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (REGISTRY_LOCK,))
        try:
            yield
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (REGISTRY_LOCK,))


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _waiting_registry_writes(database: str) -> int:
    return query(database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                           "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")[0][0]


def _import_in_background(replica: Replica, data: bytes) -> threading.Thread:
    def send() -> None:
        with contextlib.suppress(httpx2.HTTPError):  # the replica dies with the request open
            replica.import_zip(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _half_upload(replica: Replica, data: bytes) -> socket.socket:
    """A raw upload whose body stops halfway (the client still connected)."""
    sock = socket.create_connection(("127.0.0.1", replica.port))
    head = (f"POST /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1:{replica.port}\r\n"
            f"Content-Type: application/zip\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    sock.sendall(head + data[: len(data) // 2])
    return sock


def _versions(database: str, model: str) -> list[str]:
    return sorted(r[0] for r in query(database, "SELECT version FROM registry_entries WHERE model_name = %s",
                                      (model,)))


def test_a_replica_killed_mid_import_leaves_no_half_version(cluster: Cluster) -> None:
    model, shared, a, b, c = "crash", cluster.shared, cluster.a, cluster.b, cluster.c
    built = {v: package(v, model, seed) for v, seed in (("crash1", 41), ("crash2", 42), ("crash3", 43))}

    # 1. Killed between the rename into models/ and the registry write; another replica's import of
    #    that version undoes the half publish and imports it.
    with _registry_writes_held(cluster.database):
        _import_in_background(a, built["crash1"][0])
        _wait_for(lambda: (shared / "models" / "crash1").is_dir()
                  and (shared / "staging" / "publish-crash1.json").is_file()
                  and _waiting_registry_writes(cluster.database) >= 1, "crash1's registry write")
        killed_pid = a.pid
        a.kill()
    assert _versions(cluster.database, model) == []
    assert (shared / "models" / "crash1").is_dir()  # the half publish the kill left
    for replica in (b, c):  # the others serve on, and list no half version
        assert ok(replica.predict(ROW, BASE), replica)["model_version"] == "base1"
        assert ok(replica.list_models(model_name=model), replica)["total"] == 0
    imported = ok(b.import_zip(built["crash1"][0]), b)
    assert imported["already_present"] is False and imported["status"] == "available"
    _shared_files_match(shared, "crash1", built["crash1"][1])
    assert _versions(cluster.database, model) == ["crash1"]
    left = _staging_left(shared)
    assert left and all(name.startswith(f"import-{killed_pid}.") for name in left), left  # the dead one's
    restart_s = cluster.restart(a)
    assert _staging_left(shared) == []  # the restart removed what the killed process left
    assert ok(a.predict(ROW, BASE), a)["model_version"] == "base1"

    # 2. Killed with one import waiting in its registry write and an upload half streamed; the
    #    restart undoes the publish and removes both staging folders.
    with _registry_writes_held(cluster.database):
        upload = _half_upload(a, built["crash3"][0])
        try:
            _wait_for(lambda: any(p.name.startswith(f"import-{a.pid}.") and (p / "upload.zip").is_file()
                                  for p in (shared / "staging").iterdir()), "the half upload in staging")
            _import_in_background(a, built["crash2"][0])
            _wait_for(lambda: (shared / "models" / "crash2").is_dir()
                      and (shared / "staging" / "publish-crash2.json").is_file()
                      and _waiting_registry_writes(cluster.database) >= 1, "crash2's registry write")
            a.kill()
        finally:
            upload.close()
    assert _versions(cluster.database, model) == ["crash1"]
    assert "publish-crash2.json" in _staging_left(shared)
    for replica in (b, c):
        assert ok(replica.predict(ROW, BASE), replica)["model_version"] == "base1"
        assert ok(replica.list_models(model_name=model), replica)["total"] == 1
    restart_s = max(restart_s, cluster.restart(a))
    assert not (shared / "models" / "crash2").exists() and not (shared / "reports" / "crash2.json").exists()
    assert _staging_left(shared) == []
    assert ok(a.predict(ROW, BASE), a)["model_version"] == "base1"
    for replica in cluster.replicas:
        assert ok(replica.list_models(model_name=model), replica)["total"] == 1
    # Both versions import afterwards, through the restarted replica and another one.
    assert ok(a.import_zip(built["crash2"][0]), a)["already_present"] is False
    assert ok(c.import_zip(built["crash3"][0]), c)["already_present"] is False
    for version in ("crash2", "crash3"):
        _shared_files_match(shared, version, built[version][1])
    assert _versions(cluster.database, model) == ["crash1", "crash2", "crash3"]
    print(f"\nrestart of a killed replica until /healthz answers: at most {restart_s:.2f} s")


# --- e. faults ------------------------------------------------------------------------------------
async def _mcp_during_outage(replica: Replica) -> tuple[str | None, tuple[str, str]]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with create_mcp_http_client() as http, \
            Client(streamable_http_client(replica.base_url + "/mcp", http_client=http)) as client:
        listed = await call(client, "list_models", model_name="fault")
        refused = await call_error(client, "deploy", version="fault2")
        return listed.get("registry_problem"), refused


def test_faults_database_away_then_shared_folder_read_only(cluster: Cluster) -> None:
    model, a, b, c = "fault", cluster.a, cluster.b, cluster.c
    for version, seed in (("fault1", 51), ("fault2", 52), ("fault3", 53)):
        ok(a.import_zip(package(version, model, seed)[0]), a)
    ok(a.deploy("fault1"), a)
    for replica in cluster.replicas:
        wait_serving(replica, ROW, model, "fault1")
    fault4_zip = package("fault4", model, 54)[0]

    # PostgreSQL unreachable: serving goes on, changes refuse, reads say why.
    cluster.relay.stop()
    try:
        for _ in range(3):
            for replica in cluster.replicas:
                assert ok(replica.predict(ROW, model), replica)["model_version"] == "fault1"
                assert ok(replica.predict(ROW, BASE), replica)["model_version"] == "base1"
        assert problem_code(a.deploy("fault2")) == "storage_error"
        assert problem_code(b.rollback(model, to_version="fault2")) == "storage_error"
        assert problem_code(c.import_zip(fault4_zip)) == "storage_error"
        for replica in cluster.replicas:
            listed = ok(replica.list_models(model_name=model), replica)
            assert "unreachable" in (listed["registry_problem"] or ""), listed
            assert listed["deployed_versions"][model] == "fault1"  # the last copy this replica read
            got = ok(replica.http().get("/models/fault1"), replica)  # the entry too, without the audit trail
            assert (got["entry"]["status"], got["deployments"]) == ("deployed", [])
            assert any("unreachable" in note for note in got["omitted"]), got["omitted"]
        problem, (code, sentence) = anyio.run(_mcp_during_outage, b)
        assert "unreachable" in (problem or "")
        assert code == "storage_error" and "Nothing was changed" in sentence
        assert not (cluster.shared / "models" / "fault4").exists()
        for replica in cluster.replicas:  # still serving after every refusal
            assert ok(replica.predict(ROW, model), replica)["model_version"] == "fault1"
    finally:
        cluster.relay.start()

    # Back by itself: the next deploy is accepted and every replica follows it.
    deployed = a.deploy("fault2")
    restored = time.perf_counter()
    assert ok(deployed, a)["deployed_version"] == "fault2"
    followed = {r.name: wait_serving(r, ROW, model, "fault2", since=restored) for r in (b, c)}
    print("\nafter the database returned, the first deploy served by the others in (s):",
          {n: round(s, 3) for n, s in followed.items()})
    assert max(followed.values()) < 5.0, followed
    for replica in cluster.replicas:
        assert ok(replica.list_models(model_name=model), replica)["registry_problem"] is None

    # The shared folder unwritable: imports refuse everywhere; predicts and deploys go on.
    with _read_only(cluster.shared):
        for replica in cluster.replicas:
            assert problem_code(replica.import_zip(fault4_zip)) == "storage_error"
            assert ok(replica.predict(ROW, model), replica)["model_version"] == "fault2"
        ok(b.deploy("fault3"), b)  # never loaded by any replica yet: each copies it from the read-only folder
        for replica in cluster.replicas:
            wait_serving(replica, ROW, model, "fault3", timeout=10)
            assert ok(replica.predict(ROW, BASE), replica)["model_version"] == "base1"
    assert not (cluster.shared / "models" / "fault4").exists()
    assert ok(c.import_zip(fault4_zip), c)["status"] == "available"  # writable again
    assert _staging_left(cluster.shared) == []
