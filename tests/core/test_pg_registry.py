"""PostgresRegistry and PostgresHistory against a real PostgreSQL (tests/postgres.py: skipped without
MODEL_MCP_TEST_POSTGRES_URL, required in CI): the file registry's contract, the schema's rules under
concurrency from threads and processes, a change seen by another replica, and the database going away."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from model_mcp.core.errors import InvalidStateError, NotFoundError, StorageError
from model_mcp.core.pg import Links
from model_mcp.core.pg.history import PostgresHistory
from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.registry import Registry, Snapshot
from model_mcp.core.schemas import RegistryEntry
from model_mcp.core.store import Store
from tests.conftest import wait_for
from tests.postgres import query


@pytest.fixture
def registries(pg_url: str) -> Iterator[Callable[..., PostgresRegistry]]:
    """Opens registries on the test's database, as replicas would; closed after the test."""
    opened: list[PostgresRegistry] = []

    def make(url: str | None = None, **kwargs: Any) -> PostgresRegistry:
        opened.append(PostgresRegistry(url or pg_url, **kwargs))
        return opened[-1]

    yield make
    for registry in opened:
        registry.close()


def one(registry: Registry | PostgresRegistry) -> str | None:
    """The deployed version where at most one model name is deployed (the predict path's answer)."""
    versions = registry.deployed_versions()
    assert len(versions) <= 1, versions
    return next(iter(versions.values()), None)


def add_entry(version: str, **fields: Any) -> Callable[[Snapshot], str]:
    def change(snapshot: Snapshot) -> str:
        snapshot.entries[version] = RegistryEntry(version=version, path=f"models/{version}", **fields)
        return version

    return change


def deploy(version: str) -> Callable[[Snapshot], None]:
    """Deploy `version` into its model name's slot; the name's previous deployed version becomes available."""
    def change(snapshot: Snapshot) -> None:
        target = snapshot.entries[version]
        for entry in snapshot.entries.values():
            if entry.status == "deployed" and entry.model_name == target.model_name:
                entry.status = "available"
        target.status = "deployed"

    return change


@pytest.fixture(params=["registry.json", "postgresql"])
def either(request: pytest.FixtureRequest, tmp_path) -> Callable[[], Registry | PostgresRegistry]:
    """Opens another registry object on the same data, file home or database: the shared contract."""
    if request.param == "registry.json":
        return lambda: Registry(Store(tmp_path / "home"))
    make = request.getfixturevalue("registries")
    return make


def test_both_backends_answer_alike(either) -> None:
    """The contract the use cases rely on, whichever backend they run on."""
    registry = either()
    assert registry.read().entries == {} and one(registry) is None
    assert registry.read_last_good().entries == {}
    for version in ("v3", "v1", "v2"):
        assert registry.update(add_entry(version, model_name="net", status="available", owner="team-a")) == version
    registry.update(deploy("v1"))
    other = either()  # another process or replica
    snapshot = other.read()
    assert list(snapshot.entries) == ["v3", "v1", "v2"]
    assert snapshot.deployed.version == "v1" and one(other) == "v1"
    assert snapshot.entries["v3"].model_extra == {"owner": "team-a"}
    snapshot.entries["v3"].status = "archived"  # a private copy: changing it changes nothing stored
    assert other.read().entries["v3"].status == "available"
    assert list(other.read_last_good().entries) == ["v3", "v1", "v2"]

    def failing(s: Snapshot) -> None:
        s.entries["v2"].status = "deployed"
        s.entries.pop("v3")
        raise NotFoundError("no such thing")

    with pytest.raises(NotFoundError):
        registry.update(failing)
    assert {v: e.status for v, e in either().read().entries.items()} == {
        "v3": "available", "v1": "deployed", "v2": "available"}
    registry.update(lambda s: s.entries.pop("v2"))
    registry.update(deploy("v3"))
    assert list(either().read().entries) == ["v3", "v1"] and one(either()) == "v3"


def test_one_deployed_version_per_model_name_alike_on_both_backends(either) -> None:
    """deployed_versions() is {model name: version}, as the file registry answers; each name has its slot."""
    registry = either()
    for version, name in (("n1", "net"), ("n2", "net"), ("p1", "pay"), ("x1", None)):
        registry.update(add_entry(version, model_name=name, status="available",
                                  deployed_at=f"2026-11-0{len(version)}T00:00:00Z"))
    for version in ("n1", "p1", "x1"):
        registry.update(deploy(version))
    other = either()  # another process or replica
    assert other.deployed_versions() == {"net": "n1", "pay": "p1", "": "x1"}
    registry.update(deploy("n2"))  # n1 leaves net's slot; pay's and the unnamed slot stay
    deadline = time.monotonic() + 10  # a replica hears of the change through LISTEN (a bound, not a timing)
    while other.deployed_versions()["net"] != "n2" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert other.deployed_versions() == {"net": "n2", "pay": "p1", "": "x1"}
    view = other.view()
    assert {name: e.version for name, e in view.deployed_by_model().items()} == other.deployed_versions()
    assert view.deployed_of("pay").version == "p1" and view.deployed_of("nope") is None


def test_the_predict_path_and_view_make_no_query_while_the_copy_is_current(registries) -> None:
    writer, reader = registries(), registries()
    for version, name in (("n1", "net"), ("p1", "pay")):
        writer.update(add_entry(version, model_name=name, status="available"))
        writer.update(deploy(version))
    deadline = time.monotonic() + 10
    while reader.deployed_versions() != {"net": "n1", "pay": "p1"} and time.monotonic() < deadline:
        time.sleep(0.02)
    first = reader.view()
    time.sleep(0.3)  # the listener has LISTENed and heard the current generation
    first = reader.view()
    before = reader.queries
    for _ in range(100):
        assert reader.deployed_versions() == {"net": "n1", "pay": "p1"}
        assert reader.view() is first  # no copy, no query: the same snapshot while nothing changed
    assert reader.queries == before
    writer.update(deploy("p1"))  # an update that changes nothing writes nothing and announces nothing
    writer.update(add_entry("n2", model_name="net", status="available"))
    while reader.view() is first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "n2" in reader.view().entries and reader.read() is not reader.view()  # read() is a private copy


def test_entries_round_trip_in_order_with_one_row_per_version(registries, pg_url: str) -> None:
    registry = registries()
    assert registry.read().entries == {} and one(registry) is None
    for version in ("v3", "v1", "v2"):
        registry.update(add_entry(version, model_name="net", status="available", owner="team-a"))
    registry.update(deploy("v1"))
    snapshot = registries().read()  # another replica
    assert list(snapshot.entries) == ["v3", "v1", "v2"]  # the order they were added in, as registry.json keeps
    assert snapshot.entries["v1"].status == "deployed" and snapshot.deployed.version == "v1"
    assert snapshot.entries["v3"].model_extra == {"owner": "team-a"}  # unknown fields kept
    rows = query(pg_url, "SELECT version, model_name, status, entry->>'path' FROM registry_entries ORDER BY version")
    assert rows == [("v1", "net", "deployed", "models/v1"), ("v2", "net", "available", "models/v2"),
                    ("v3", "net", "available", "models/v3")]
    registry.update(lambda s: s.entries.pop("v2"))
    assert list(registry.read().entries) == ["v3", "v1"]


def test_a_change_that_raises_writes_nothing(registries, pg_url: str) -> None:
    registry = registries()
    registry.update(add_entry("v1", status="available"))
    generation = query(pg_url, "SELECT generation FROM registry_state")[0][0]

    def failing(snapshot: Snapshot) -> None:
        snapshot.entries["v1"].status = "deployed"
        snapshot.entries["v2"] = RegistryEntry(version="v2", path="models/v2")
        raise NotFoundError("no such thing")

    with pytest.raises(NotFoundError):
        registry.update(failing)
    assert {v: e.status for v, e in registry.read().entries.items()} == {"v1": "available"}
    assert query(pg_url, "SELECT generation FROM registry_state")[0][0] == generation


def test_one_deployed_version_per_model_name_is_a_rule_of_the_database(registries, pg_url: str) -> None:
    registry = registries()
    for version, name in (("a1", "net"), ("a2", "net"), ("b1", "pay"), ("n1", None), ("n2", None)):
        registry.update(add_entry(version, model_name=name, status="available"))
    registry.update(deploy("a1"))
    registry.update(deploy("b1"))  # another model's slot: both serve
    registry.update(deploy("a2"))  # the same slot: a1 steps down in the same transaction
    statuses = {v: e.status for v, e in registry.read().entries.items()}
    assert statuses == {"a1": "available", "a2": "deployed", "b1": "deployed", "n1": "available", "n2": "available"}

    def second_deployed(snapshot: Snapshot) -> None:
        snapshot.entries["a1"].status = "deployed"  # a2 stays deployed: two for "net"

    with pytest.raises(InvalidStateError, match="one version per model name") as refused:
        registry.update(second_deployed)
    assert refused.value.code == "invalid_state" and "net" in str(refused.value)
    assert {v: e.status for v, e in registry.read().entries.items()} == statuses  # nothing changed

    registry.update(deploy("n1"))  # versions without a name share one slot
    with pytest.raises(InvalidStateError):
        registry.update(lambda s: setattr(s.entries["n2"], "status", "deployed"))

    # The rule holds against any writer, not only this code: SQL by hand is refused too.
    import psycopg

    with pytest.raises(psycopg.errors.UniqueViolation):
        query(pg_url, "UPDATE registry_entries SET status = 'deployed', entry = jsonb_set(entry, '{status}', "
                      "'\"deployed\"') WHERE version = 'a1'")
    with pytest.raises(psycopg.errors.CheckViolation):  # the columns cannot disagree with the entry
        query(pg_url, "UPDATE registry_entries SET status = 'archived' WHERE version = 'b1'")


def test_concurrent_updates_from_threads_lose_nothing(registries) -> None:
    registries().update(add_entry("counter", n=0))
    replicas = [registries() for _ in range(4)]
    per_thread = 15
    barrier = threading.Barrier(len(replicas))
    errors: list[BaseException] = []

    def work(index: int, registry: PostgresRegistry) -> None:
        def change(snapshot: Snapshot, j: int) -> None:
            counter = snapshot.entries["counter"]
            counter.n = counter.n + 1  # type: ignore[attr-defined]  # an extra field: read-modify-write
            snapshot.entries[f"t{index}-{j}"] = RegistryEntry(version=f"t{index}-{j}", path="models/x")

        try:
            barrier.wait()
            for j in range(per_thread):
                registry.update(lambda s, j=j: change(s, j))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, r)) for i, r in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    snapshot = registries().read()
    assert snapshot.entries["counter"].n == len(replicas) * per_thread  # type: ignore[attr-defined]
    assert len(snapshot.entries) == 1 + len(replicas) * per_thread


_PROCESS = """
import sys
from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.schemas import RegistryEntry

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
registry = PostgresRegistry(url, listen=False)

def change(snapshot, j):
    counter = snapshot.entries["counter"]
    counter.n = counter.n + 1
    version = f"{name}-{j}"
    snapshot.entries[version] = RegistryEntry(version=version, path="models/" + version, model_name=name,
                                              status="available")
    # Deploy it in its model's slot, as a deploy would: the previous one of the name steps down.
    for entry in snapshot.entries.values():
        if entry.model_name == name and entry.status == "deployed":
            entry.status = "available"
    snapshot.entries[version].status = "deployed"

for j in range(count):
    registry.update(lambda s: change(s, j))
registry.close()
print("done")
"""


def test_concurrent_updates_from_three_processes_lose_nothing(registries, pg_url: str) -> None:
    registries().update(add_entry("counter", n=0))
    per_process = 20
    children = [subprocess.Popen([sys.executable, "-c", _PROCESS, pg_url, name, str(per_process)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in ("net", "pay", "web")]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "done", err[-2000:]
    snapshot = registries().read()
    assert snapshot.entries["counter"].n == 3 * per_process  # type: ignore[attr-defined]
    assert len(snapshot.entries) == 1 + 3 * per_process
    deployed = sorted(v for v, e in snapshot.entries.items() if e.status == "deployed")
    assert deployed == [f"{name}-{per_process - 1}" for name in ("net", "pay", "web")]  # one per model name
    assert query(pg_url, "SELECT generation FROM registry_state")[0][0] == 1 + 3 * per_process


def test_another_replica_sees_a_deploy_within_a_second_without_querying_per_call(registries) -> None:
    writer, reader = registries(), registries(poll_s=30.0)  # a long poll: what arrives in time is the NOTIFY
    for version in ("v1", "v2"):
        writer.update(add_entry(version, model_name="net", status="available"))
    writer.update(deploy("v1"))
    deadline = time.monotonic() + 5
    while one(reader) != "v1" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # the listener is connected by now
    assert one(reader) == "v1"
    before = reader.queries
    for _ in range(1000):
        assert one(reader) == "v1"  # the predict path
    assert reader.queries - before <= 1  # (at most the one read after LISTEN caught up)

    started = time.monotonic()
    writer.update(deploy("v2"))
    while one(reader) != "v2":
        assert time.monotonic() - started < 1.0, "the deploy was not seen by the other replica within a second"
        time.sleep(0.002)


def test_an_unreachable_database_is_a_storage_error_and_serving_goes_on(registries, pg_relay) -> None:
    relay, url = pg_relay
    registry = registries(url)
    registry.update(add_entry("v1", model_name="net", status="available"))
    registry.update(deploy("v1"))
    assert registry.read().deployed.version == "v1"
    relay.stop()  # the database goes away
    with pytest.raises(StorageError, match="unreachable") as caught:
        registry.read()
    assert caught.value.code == "storage_error"
    with pytest.raises(StorageError, match="Nothing was changed"):
        registry.update(add_entry("v2"))
    for _ in range(100):  # resident models keep serving from the last copy, without waiting
        assert one(registry) == "v1"
    assert list(registry.read_last_good().entries) == ["v1"]  # reading tools can say what was last known
    relay.start()  # it comes back
    registry.update(add_entry("v2", model_name="net", status="available"))
    assert list(registry.read().entries) == ["v1", "v2"]
    # A deploy made through another replica while this one's listener reconnects is seen by itself.
    registries().update(deploy("v2"))
    deadline = time.monotonic() + 10
    while one(registry) != "v2":
        assert time.monotonic() < deadline, "the change was not seen after the database came back"
        time.sleep(0.05)


def test_without_notifications_a_deploy_is_still_seen_by_polling(registries) -> None:
    writer, reader = registries(), registries(listen=False, poll_s=0.2)  # LISTEN unavailable (a pooler)
    for version in ("v1", "v2"):
        writer.update(add_entry(version, model_name="net", status="available"))
    writer.update(deploy("v1"))
    assert one(reader) == "v1"
    before = reader.queries
    writer.update(deploy("v2"))
    started = time.monotonic()
    while one(reader) != "v2":
        assert time.monotonic() - started < 3, "the deploy was not seen by polling"
        time.sleep(0.01)
    assert reader.queries - before < 50  # polled about every 0.2 s, not once per call


def test_history_records_and_reads_like_the_file_trail(pg_url: str, pg_relay) -> None:
    history = PostgresHistory(pg_url)
    history.record("import", version="v1", outcome="ok", source="zip")
    history.record("deploy", version="v1", outcome="ok", previous=None)
    history.record("validate", version="v2", outcome="failed", detail="f1 too low")
    history.record("rollback", version="v1", outcome="ok", previous="v2")
    history.record("transfer", version="v3", outcome="ok", source="/training/x")

    everything = PostgresHistory(pg_url).events()  # another replica reads them
    assert [e["event"] for e in everything] == ["transfer", "rollback", "validate", "deploy", "import"]
    assert list(everything[-1]) == ["at", "event", "version", "outcome", "detail", "source"]  # as written
    assert [e["event"] for e in history.events(kind="deployments")] == ["rollback", "deploy"]
    assert [e["version"] for e in history.events(kind="transfers")] == ["v3"]
    assert [e["event"] for e in history.events(version="v1", limit=2)] == ["rollback", "deploy"]
    assert history.events(limit=0) == [] and len(history.events(limit=None)) == 5
    assert [e["event"] for e in history.events(event_names=frozenset({"import", "validate"}))] == [
        "validate", "import"]

    offset, counts = history.tally_from(0)
    assert counts[("deploy", "ok")] == 1 and counts[("validate", "failed")] == 1 and sum(counts.values()) == 5
    history.record("deploy", version="v2", outcome="ok")
    offset, counts = history.tally_from(offset)
    assert counts == {("deploy", "ok"): 1}
    assert history.tally_from(offset + 1000)[1][("deploy", "ok")] == 2  # an offset past the end counts afresh

    relay, url = pg_relay
    away = PostgresHistory(url)
    away.record("import", version="v9", outcome="ok")
    relay.stop()
    entry = away.record("delete", version="v9", outcome="ok")  # logged, never raised: the change was made
    assert entry["event"] == "delete"
    with pytest.raises(StorageError) as caught:
        away.events()
    assert caught.value.code == "storage_error"
    relay.start()
    assert [e["event"] for e in away.events(version="v9")] == ["import"]
    history.close()
    away.close()


_KILLED_MID_UPDATE = """
import sys, time
from model_mcp.core.pg.registry import PostgresRegistry
from model_mcp.core.schemas import RegistryEntry

registry = PostgresRegistry(sys.argv[1], listen=False)

def change(snapshot):
    snapshot.entries["half"] = RegistryEntry(version="half", path="models/half", model_name="net",
                                             status="deployed")
    snapshot.entries["v1"].status = "available"
    print("inside", flush=True)
    time.sleep(60)  # killed here, inside the transaction, holding the registry's lock

registry.update(change)
"""


def test_a_replica_killed_mid_update_leaves_nothing_half_done_and_frees_the_lock(registries, pg_url: str) -> None:
    import signal

    registry = registries(lock_timeout_s=20)
    registry.update(add_entry("v1", model_name="net", status="deployed"))
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MID_UPDATE, pg_url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "inside"
        # Another replica's change waits for the lock, then goes through once the killed one is gone.
        waiter = threading.Thread(target=lambda: registry.update(add_entry("v2", model_name="net")))
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive()  # it is waiting, not writing beside the other change
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        waiter.join(timeout=15)
        assert not waiter.is_alive()
    finally:
        child.kill()
    entries = registry.read().entries
    assert "half" not in entries and entries["v1"].status == "deployed" and "v2" in entries


def test_a_change_waiting_too_long_for_the_lock_is_a_storage_error_with_nothing_changed(registries, pg_url: str) -> None:
    import psycopg

    from model_mcp.core.pg import REGISTRY_LOCK

    registry = registries(lock_timeout_s=0.5)
    registry.update(add_entry("v1"))
    with psycopg.connect(pg_url) as holder:  # another session holding the registry's lock
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_LOCK,))
        started = time.monotonic()
        with pytest.raises(StorageError, match="held the lock for more than 0.5 s") as caught:
            registry.update(add_entry("v2"))
        assert caught.value.code == "storage_error" and time.monotonic() - started < 10
    assert list(registry.read().entries) == ["v1"]
    registry.update(add_entry("v2"))  # the lock released, the next change goes through
    assert list(registry.read().entries) == ["v1", "v2"]


def test_a_row_edited_into_an_invalid_entry_is_registry_corrupt_and_left_alone(registries, pg_url: str) -> None:
    from model_mcp.core.errors import RegistryCorruptError

    registry = registries()
    registry.update(add_entry("v1", status="available"))
    query(pg_url, "UPDATE registry_entries SET entry = entry - 'path' WHERE version = 'v1'")  # by hand
    with pytest.raises(RegistryCorruptError, match="'v1'") as caught:
        registry.read()
    assert caught.value.code == "registry_corrupt"
    with pytest.raises(RegistryCorruptError):
        registry.update(add_entry("v2"))  # changing calls refuse too
    assert query(pg_url, "SELECT count(*) FROM registry_entries")[0][0] == 1


def test_connections_the_server_closed_are_replaced_without_failing_a_call(registries, pg_url: str,
                                                                             tmp_path) -> None:
    from model_mcp.core.monitoring_store import open_store

    registry = registries()
    registry.update(add_entry("v1", model_name="net", status="available"))
    registry.read()
    monitoring = open_store(tmp_path, pg_url)
    assert monitoring.window_count("v1", "d", "recent") == 0
    # What a server restart does to every kept connection (the listener's too).
    ended = query(pg_url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")[0][0]
    assert ended >= 3
    assert list(registry.read().entries) == ["v1"]  # the first call after it succeeds
    registry.update(deploy("v1"))
    assert monitoring.window_count("v1", "d", "recent") == 0
    monitoring.close()


def test_stores_sharing_links_ride_out_a_restart_and_a_call_nested_in_a_transaction_is_refused(
        pg_url: str) -> None:
    """The manager's stores share three connections (core/pg Links): each recovers from a restart on
    its own, and a store used from inside another's transaction on the same connection is refused
    (it would run inside that transaction, not on its own), with nothing written."""
    links = Links(pg_url)
    registry = PostgresRegistry(pg_url, listen=False, links=links)
    history = PostgresHistory(pg_url, links=links)
    registry.update(add_entry("v1", model_name="net", status="available"))
    history.record("import", version="v1", outcome="ok")
    assert query(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND application_name = 'model-mcp'")[0][0] == 1  # both wrote on `write`
    query(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    registry.update(deploy("v1"))
    assert [e["event"] for e in history.events()] == ["import"]

    def nested(snapshot: Any) -> None:
        snapshot.entries.pop("v1")
        history.record("delete", version="v1", outcome="ok")

    with pytest.raises(RuntimeError, match="nested"):
        registry.update(nested)
    assert list(registry.read().entries) == ["v1"] and len(history.events()) == 1
    links.close()


def test_the_audit_trail_rides_out_a_restart_without_losing_an_event(pg_url: str) -> None:
    history = PostgresHistory(pg_url)
    history.record("import", version="v1", outcome="ok")
    query(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    history.record("deploy", version="v1", outcome="ok")  # on a new connection, not logged as lost
    assert [e["event"] for e in history.events()] == ["deploy", "import"]
    history.close()


def test_predicts_arriving_together_after_a_deploy_make_one_query(registries) -> None:
    writer, reader = registries(), registries(poll_s=30.0)
    for version in ("v1", "v2"):
        writer.update(add_entry(version, model_name="net", status="available"))
    writer.update(deploy("v1"))
    assert one(reader) == "v1"
    time.sleep(0.3)  # the listener is connected
    assert one(reader) == "v1"
    writer.update(deploy("v2"))
    time.sleep(0.3)  # the NOTIFY arrived: the copy is stale
    before = reader.queries
    barrier = threading.Barrier(8)
    answers: list[str | None] = []

    def predict() -> None:
        barrier.wait()
        answers.append(one(reader))

    threads = [threading.Thread(target=predict) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["v2"] * 8 and reader.queries - before == 1


def _same(snapshot: Snapshot, truth: Snapshot) -> None:
    """The same versions in the same order, each entry equal."""
    assert list(snapshot.entries) == list(truth.entries)
    assert {v: e.registry_json() for v, e in snapshot.entries.items()} == \
        {v: e.registry_json() for v, e in truth.entries.items()}


def test_following_another_replica_reads_only_the_rows_it_changed(registries, pg_url: str) -> None:
    """view() after another replica's changes parses the rows written since its copy (and drops the
    versions removed), and equals a full read: order kept, a removed-then-added version last."""
    writer, follower = registries(), registries()
    for i in range(200):
        writer.update(add_entry(f"v{i:03d}", model_name="net" if i % 2 else "pay"))
    writer.update(deploy("v001"))
    _same(follower.view(), follower.read())  # a first view reads everything
    parsed = follower.rows_read

    writer.update(deploy("v003"))  # v001 leaves `deployed`, v003 takes it: two rows
    assert wait_for(lambda: follower.deployed_versions().get("net") == "v003")
    view = follower.view()
    assert follower.rows_read - parsed == 2
    assert view.entries["v003"].status == "deployed" and view.entries["v001"].status == "available"
    _same(view, writer.read())

    parsed = follower.rows_read
    writer.update(lambda snap: snap.entries.pop("v010"))
    writer.update(lambda snap: snap.entries.pop("v020"))
    writer.update(add_entry("v010", model_name="pay", description="again"))  # re-added: now last
    writer.update(add_entry("new-1", model_name="net"))
    assert wait_for(lambda: follower.view().entries.get("new-1") is not None)
    view = follower.view()
    assert follower.rows_read - parsed <= 2 * 2  # the two added rows (perhaps read twice while waiting)
    assert "v020" not in view.entries and list(view.entries)[-2:] == ["v010", "new-1"]
    _same(view, writer.read())
    assert view is follower.view()  # current: no query, the same object
    # Unchanged entries are shared with the earlier view (views are never changed), not parsed again.
    assert view.entries["v199"] is follower.view().entries["v199"]


def test_a_copy_older_than_the_kept_tombstones_is_read_whole(registries, pg_url: str) -> None:
    writer, follower = registries(), registries()
    for i in range(20):
        writer.update(add_entry(f"v{i}", model_name="net"))
    follower.view()
    writer.update(lambda snap: snap.entries.pop("v5"))
    # As the pruning does once tombstones are old: they no longer reach back to the follower's copy.
    query(pg_url, "DELETE FROM registry_removed")
    query(pg_url, "UPDATE registry_state SET removed_since = generation")
    parsed = follower.rows_read
    assert wait_for(lambda: "v5" not in follower.view().entries)
    assert follower.rows_read - parsed >= 19  # the whole registry again: the removal is not lost
    _same(follower.view(), writer.read())

