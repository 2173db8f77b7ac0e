"""The registry in PostgreSQL: the same public interface as core/registry.py's `Registry`.

One row per version in `registry_entries` (migrations/0002): the entry as registry.json holds it
(`RegistryEntry.registry_json()`, as JSONB) with `version` (primary key), `model_name` and `status`
beside it, checked against the entry. A partial unique index allows at most one `deployed` row per
model name, so the rule holds whatever any replica's code does.

Writing. `update(change)` runs in one transaction: it takes the registry's advisory lock (every
update from every replica waits its turn, as the file registry's updates wait for the store's lock),
reads every row (FOR UPDATE), lets `change` mutate the snapshot, writes only the rows that differ,
bumps `registry_state.generation` and sends `NOTIFY model_mcp_registry` with the new generation,
delivered at commit. If `change` raises, or a constraint refuses the result, nothing is written.

Reading. `read()` always asks the database. `view()` (the read-only snapshot of listings and of
following another replica's change) reads only the rows written since its copy: each row carries the
generation that last wrote it and each removal leaves a tombstone (migrations/0006), so following a
deploy at 10,000 versions parses 2 rows, not 10,000. `deployed_versions()` and `rollout_keys()` (the
predict path) and `view()` answer from the copy this object holds while that copy is current: a
listener thread (LISTEN, and a poll of the generation every `poll_s` in case a notification is
lost) learns of every commit, so predicts make no query. While the listener is not connected, `deployed_versions()` answers from the last copy at
once and refreshes it in the background about every second, so resident models keep serving
through an outage and a deploy is still seen when notifications are unavailable; `read()` and
`update()` raise StorageError (`storage_error`) while the database is unreachable.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from model_mcp.core.errors import InvalidStateError, ModelMcpError, RegistryCorruptError, StorageError
from model_mcp.core.pg import REGISTRY_CHANNEL, REGISTRY_LOCK, Links, connect, safe_url
from model_mcp.core.registry import Snapshot, model_key
from model_mcp.core.schemas import RegistryEntry
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    import psycopg

log = get_logger(__name__)
T = TypeVar("T")


def unreachable(exc: Exception, doing: str) -> StorageError:
    return StorageError(f"The registry database is unreachable while {doing} ({str(exc).strip()[:200]}). "
                        "Nothing was changed; the server retries by itself.")


class PostgresRegistry:
    def __init__(self, url: str, *, listen: bool = True, poll_s: float = 1.0, lock_timeout_s: float = 30.0,
                 links: Links | None = None) -> None:
        self.url = url
        self.lock_timeout_s = lock_timeout_s
        self.listen = listen
        self.poll_s = poll_s
        self.links = links or Links(url)  # `write` for update(), `read` for the rest; the listener has its own
        self._state = threading.Lock()  # guards the cache fields below
        self._catch_up = threading.Lock()  # one predict at a time reads the deployed version after a change
        self._known = False  # the fields below hold what the database held at _cache_generation
        self._cache_deployed: dict[str, str] = {}
        self._cache_rollouts: dict[str, tuple[str, str | None]] = {}
        self._view: tuple[int, Snapshot] | None = None  # (generation, snapshot) that view() hands out
        self._view_rows: dict[str, str] = {}  # the view's rows as entry JSON, in position order
        self._cache_generation = -1
        self._announced = -1  # the highest generation the listener heard of
        self._listening = False  # the listener is connected and has LISTENed since the cache was taken
        self._refreshing = False  # a background refresh of the deployed version is running
        self._refreshed_at = 0.0
        self._last_good: list[tuple[str, str]] | None = None  # (version, entry JSON) rows
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self.queries = 0  # registry reads that went to the database (tests and benchmarks count them)
        self.rows_read = 0  # registry rows fetched and parsed by those reads

    def __repr__(self) -> str:
        return f"PostgresRegistry({safe_url(self.url)!r})"

    @property
    def generation(self) -> int | None:
        """The registry generation (`registry_state.generation`) of the copy this object serves
        `deployed_versions` from; None before the first read. Read without a lock (one attribute):
        the replica heartbeat reports it without touching the predict path's lock."""
        generation = self._cache_generation
        return generation if generation >= 0 else None

    # --- connections -------------------------------------------------------------------------------
    def _run(self, role: str, doing: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        link = self.links.write if role == "write" else self.links.read
        return link.run(fn, lambda exc: self._error(doing, exc))

    def _error(self, doing: str, exc: Exception) -> ModelMcpError:
        """The project's error for a psycopg failure."""
        import psycopg

        if isinstance(exc, psycopg.errors.IntegrityError):
            return _refused(exc)
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StorageError(f"Another replica's registry change held the lock for more than "
                                f"{self.lock_timeout_s:g} s while {doing}. Nothing was changed; try again.")
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return unreachable(exc, doing)
        return StorageError(f"The registry database failed while {doing} ({str(exc).strip()[:200]}). "
                            "Nothing was changed.")

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self.links.write.close()
        self.links.read.close()

    # --- reading -----------------------------------------------------------------------------------
    def read(self) -> Snapshot:
        """A private copy of the registry as the database holds it now."""
        return self._fetch()

    def view(self) -> Snapshot:
        """The registry without a copy, for callers that never change it: the snapshot this object
        last read, without a query while the listener says it is current (as the file registry's
        `view` answers from its stat-keyed cache); a fresh read otherwise."""
        self._start_listener()
        with self._state:
            view = self._view
            if view is not None and self._current() and view[0] == self._cache_generation:
                return view[1]
        if view is not None:
            newer = self._fetch_changes(view[0])
            if newer is not None:
                return newer
        snapshot, generation, rows = self._fetch_full()
        with self._state:
            if self._view is None or generation >= self._view[0]:
                self._view, self._view_rows = (generation, snapshot), dict(rows)  # read() hands out copies of its own
        return snapshot

    def _fetch_changes(self, since: int) -> Snapshot | None:
        """The view brought from generation `since` to now by reading only the rows written and the
        versions removed after it; None when the tombstones no longer reach back that far (a full
        read then). Unchanged entries are shared with the previous view: views are never changed."""

        def fetch(connection: psycopg.Connection[Any]) -> tuple[int, list[tuple[str, str]], set[str], Any] | None:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            if connection.execute("SELECT removed_since FROM registry_state").fetchone()[0] > since:
                return None
            generation, deployed = _deployed_rows(connection)  # the predict path's copy, of the same moment
            if generation == since:
                return int(generation), [], set(), deployed
            rows = connection.execute("SELECT version, entry::text FROM registry_entries WHERE generation > %s "
                                      "ORDER BY position", (since,)).fetchall()
            removed = {v for (v,) in connection.execute(
                "SELECT version FROM registry_removed WHERE generation > %s", (since,)).fetchall()}
            return int(generation), rows, removed, deployed

        found = self._run("read", "reading the registry", fetch)
        if found is None:
            return None
        generation, rows, removed, deployed = found
        self.queries += 1
        self.rows_read += len(rows)
        self._set_deployed(generation, deployed)
        with self._state:
            view, texts = self._view, self._view_rows
        if view is None or view[0] != since:
            return None  # another thread moved the view meanwhile: read it whole
        if generation == since:
            return view[1]
        entries, texts = dict(view[1].entries), dict(texts)
        for version in removed:
            entries.pop(version, None)
            texts.pop(version, None)
        for version, text in rows:
            # A kept version keeps its place (its position never changes); a new one comes last, as
            # the rows' position order has it.
            entries[version] = _snapshot([(version, text)]).entries[version]
            texts[version] = text
        snapshot = Snapshot(entries=entries, fmt="new" if entries else "empty")
        with self._state:
            if self._view is None or generation >= self._view[0]:
                self._view, self._view_rows = (generation, snapshot), texts
                self._last_good = list(texts.items())
        return snapshot

    def deployed_versions(self) -> dict[str, str]:
        """{model name: deployed version} (one per model name; "" for versions without a name),
        cheaply: without a query while the listener keeps this object's copy current; from the last
        copy while the database is unreachable (resident models keep serving). Raises only when the
        database was never reached. The answer is shared: callers must not change it."""
        return self._cached()[0]

    def rollout_keys(self) -> dict[str, tuple[str, str | None]]:
        """{model name: (candidate version, started_at)} of the rollouts in progress; cheap like
        `deployed_versions`."""
        return self._cached()[1]

    def _current(self) -> bool:
        """Whether the cached copy holds the latest generation (call with self._state held)."""
        return self._known and self._listening and self._cache_generation >= self._announced

    def _cached(self) -> tuple[dict[str, str], dict[str, tuple[str, str | None]]]:
        self._start_listener()
        with self._state:
            if self._current():
                return self._cache_deployed, self._cache_rollouts
            if self._known and not self._listening:
                # The listener is away (the database unreachable, or LISTEN unavailable): answer from
                # the copy at once, and refresh it in the background at most every poll_s, so that no
                # predict waits for a connection attempt to a database that does not answer.
                if not self._refreshing and time.monotonic() - self._refreshed_at >= min(self.poll_s, 1.0):
                    self._refreshing = True
                    threading.Thread(target=self._refresh_quietly, name="registry-refresh", daemon=True).start()
                return self._cache_deployed, self._cache_rollouts
        with self._catch_up:  # predicts arriving together after a change make one query, not one each
            with self._state:
                if self._current():
                    return self._cache_deployed, self._cache_rollouts
            try:
                self._fetch_deployed()
            except StorageError:
                with self._state:
                    if not self._known:
                        raise
        with self._state:
            return self._cache_deployed, self._cache_rollouts

    def _refresh_quietly(self) -> None:
        try:
            self._fetch_deployed()
        except StorageError:
            pass  # still away: the copy keeps answering
        finally:
            with self._state:
                self._refreshing, self._refreshed_at = False, time.monotonic()

    def _fetch_deployed(self) -> None:
        """The deployed version of each model name, the rollouts in progress and the generation, in
        one statement over a few rows (the partial indexes hold only deployed rows and rollout
        candidates): what a predict after a change waits for, whatever the number of versions."""
        self._start_listener()
        generation, rows = self._run("read", "reading the registry", _deployed_rows)
        self.queries += 1
        self._set_deployed(generation, rows)

    def _set_deployed(self, generation: int, rows: list[list[Any]]) -> None:
        deployed = [(name, version, at) for name, version, status, at, _, _ in rows if status == "deployed"]
        deployed.sort(key=lambda row: row[2] or "")  # least recently deployed first, as Snapshot.deployed_by_model
        rollouts = {name: (version, started) for name, version, _, _, started, has in rows if has}
        with self._state:
            if generation >= self._cache_generation:
                self._cache_generation, self._known = int(generation), True
                self._cache_deployed = {name: version for name, version, _ in deployed}
                self._cache_rollouts = rollouts

    def read_last_good(self) -> Snapshot:
        """The last registry this object read or wrote (for reading tools while the database is unreachable)."""
        with self._state:
            rows = self._last_good
        return _snapshot(rows) if rows is not None else Snapshot()

    def _fetch(self) -> Snapshot:
        return self._fetch_with_generation()[0]

    def _fetch_with_generation(self) -> tuple[Snapshot, int]:
        snapshot, generation, _ = self._fetch_full()
        return snapshot, generation

    def _fetch_full(self) -> tuple[Snapshot, int, list[tuple[str, str]]]:
        self._start_listener()

        def fetch(connection: psycopg.Connection[Any]) -> tuple[int, list[tuple[str, Any]]]:
            # REPEATABLE READ: the generation and the rows come from one moment.
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            generation = connection.execute("SELECT generation FROM registry_state").fetchone()[0]
            return int(generation), _rows(connection, lock=False)

        generation, rows = self._run("read", "reading the registry", fetch)
        self.queries += 1
        self.rows_read += len(rows)
        snapshot = _snapshot(rows)
        self._remember(generation, snapshot, rows)
        return snapshot, generation, rows

    def _remember(self, generation: int, snapshot: Snapshot, rows: list[tuple[str, Any]]) -> None:
        """Keep what the predict path and read_last_good need: the deployed version and the rows
        (plain data, never the objects handed to a caller)."""
        deployed = {name: entry.version for name, entry in snapshot.deployed_by_model().items()}
        rollouts = _rollouts(snapshot)
        with self._state:
            if generation >= self._cache_generation:
                self._cache_generation, self._known = generation, True
                self._cache_deployed, self._cache_rollouts = deployed, rollouts
                self._last_good = rows

    # --- writing -----------------------------------------------------------------------------------
    def update(self, change: Callable[[Snapshot], T]) -> T:
        """Apply `change` to a fresh read in one transaction, every replica's updates taking turns.

        `change` mutates `snapshot.entries` in place and returns what the caller wants back. If it
        raises, nothing is written. A result that breaks a rule of the schema (two deployed versions
        of one model name) is refused with `invalid_state` and nothing is written.
        """
        self._start_listener()
        outcome: dict[str, Any] = {}

        def apply(connection: psycopg.Connection[Any]) -> None:
            # Waiting for other replicas' changes is bounded: a stuck one fails this call, not the server.
            connection.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(self.lock_timeout_s * 1000)}",))
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_LOCK,))
            rows = _rows(connection, lock=True)
            snapshot = _snapshot(rows)
            # What the rows held, parsed apart from the entries `change` may mutate in place.
            before = {version: _parse(text) for version, text in rows}
            outcome["result"] = change(snapshot)
            after = {version: entry.registry_json() for version, entry in snapshot.entries.items()}
            for version, data in after.items():
                if data.get("version") != version:
                    raise InvalidStateError(f"Registry entry {version!r} names version {data.get('version')!r}. "
                                            "Nothing was changed.")
            removed = [v for v in before if v not in after]
            changed = {v: d for v, d in after.items() if before.get(v) != d}
            # Versions leaving `deployed` are written first, so the one-deployed index never sees two
            # at once; the rest in the snapshot's order (new versions take their places in it).
            leaving = [v for v, d in changed.items()
                       if before.get(v, {}).get("status") == "deployed" and d.get("status") != "deployed"]
            order = leaving + [v for v in changed if v not in leaving]
            generation = None
            if removed or changed:
                with connection.cursor() as cursor:
                    generation = cursor.execute(
                        "UPDATE registry_state SET generation = generation + 1 RETURNING generation").fetchone()[0]
                    if removed:
                        cursor.execute("DELETE FROM registry_entries WHERE version = ANY(%s)", (removed,))
                        cursor.execute("INSERT INTO registry_removed (version, generation) "
                                       "SELECT unnest(%s::text[]), %s", (removed, generation))
                    _prune_tombstones(cursor, generation)
                    for version in order:
                        data = changed[version]
                        cursor.execute(
                            "INSERT INTO registry_entries (version, model_name, status, entry, generation) "
                            "VALUES (%s, %s, %s, %s, %s) "
                            "ON CONFLICT (version) DO UPDATE SET model_name = excluded.model_name, "
                            "status = excluded.status, entry = excluded.entry, generation = excluded.generation, "
                            "updated_at = now()",
                            (version, data.get("model_name"), data.get("status"), json.dumps(data), generation))
                    cursor.execute("SELECT pg_notify(%s, %s)", (REGISTRY_CHANNEL, str(generation)))
            outcome["snapshot"], outcome["generation"] = snapshot, generation
            outcome["rows"] = [(version, json.dumps(data)) for version, data in after.items()]

        self._run("write", "changing the registry", apply)
        if outcome["generation"] is not None:
            self._remember(int(outcome["generation"]), outcome["snapshot"], outcome["rows"])
        return outcome["result"]

    # --- the listener ------------------------------------------------------------------------------
    def _start_listener(self) -> None:
        if not self.listen or self._listener is not None or self._stop.is_set():
            return
        with self._state:
            if self._listener is not None:
                return
            self._listener = threading.Thread(target=self._listen, name="registry-listener", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        import psycopg

        backoff = 0.2
        while not self._stop.is_set():
            try:
                with connect(self.url) as connection:
                    connection.execute(f"LISTEN {REGISTRY_CHANNEL}")
                    self._heard(connection.execute("SELECT generation FROM registry_state").fetchone()[0])
                    with self._state:
                        # From here every commit is heard; the copy is current iff it has the generation read above.
                        self._listening = True
                    backoff = 0.2
                    polled = time.monotonic()
                    while not self._stop.is_set():
                        # Short waits, so close() is not kept waiting for a long poll interval.
                        for notice in connection.notifies(timeout=min(self.poll_s, 0.2)):
                            with contextlib.suppress(ValueError):
                                self._heard(int(notice.payload))
                        if time.monotonic() - polled >= self.poll_s:
                            # The poll: a notification lost on the way (a proxy between) is caught here.
                            self._heard(connection.execute("SELECT generation FROM registry_state").fetchone()[0])
                            polled = time.monotonic()
            except (psycopg.Error, OSError) as exc:
                with self._state:
                    self._listening = False
                log.warning("registry_listener_disconnected", reason=str(exc).strip()[:200], retry_in_s=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        with self._state:
            self._listening = False

    def _heard(self, generation: int) -> None:
        with self._state:
            self._announced = max(self._announced, int(generation))


def _deployed_rows(connection: psycopg.Connection[Any]) -> tuple[int, list[list[Any]]]:
    """The generation and, per deployed row or rollout candidate, [model name, version, status,
    deployed_at, rollout started_at, has rollout]: one statement over the partial indexes' few rows."""
    return connection.execute(
        "SELECT s.generation, COALESCE((SELECT json_agg(json_build_array(COALESCE(model_name, ''), version, "
        "status, entry ->> 'deployed_at', entry -> 'rollout' ->> 'started_at', entry ? 'rollout') "
        "ORDER BY position) FROM registry_entries WHERE status = 'deployed' OR entry ? 'rollout'), '[]') "
        "FROM registry_state s").fetchone()


# Generations of tombstones kept: a replica whose copy is older reads the registry whole.
TOMBSTONES_KEPT = 10_000


def _prune_tombstones(cursor: psycopg.Cursor[Any], generation: int) -> None:
    horizon = generation - TOMBSTONES_KEPT
    if horizon > 0 and generation % 100 == 0:  # now and then: one delete of old rows, not one per change
        cursor.execute("DELETE FROM registry_removed WHERE generation <= %s", (horizon,))
        cursor.execute("UPDATE registry_state SET removed_since = GREATEST(removed_since, %s)", (horizon,))


def _rows(connection: psycopg.Connection[Any], *, lock: bool) -> list[tuple[str, str]]:
    """(version, entry as JSON text) of every row, in the order versions were added."""
    return connection.execute("SELECT version, entry::text FROM registry_entries ORDER BY position"
                              + (" FOR UPDATE" if lock else "")).fetchall()


def _parse(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _snapshot(rows: list[tuple[str, str]]) -> Snapshot:
    entries: dict[str, RegistryEntry] = {}
    for version, text in rows:
        try:
            entries[version] = RegistryEntry.model_validate_json(text)  # a third faster than json.loads first
        except ValidationError as exc:
            raise RegistryCorruptError(
                f"Registry row {version!r} in the database is not a valid entry ({exc.errors()[0]['msg']}). "
                "It was left as it is.") from None
    return Snapshot(entries=entries, fmt="new" if entries else "empty")


def _rollouts(snapshot: Snapshot) -> dict[str, tuple[str, str | None]]:
    """{model name: (candidate version, started_at)}, as the file registry's `rollout_keys`."""
    found = {}
    for entry in snapshot.entries.values():
        rollout = getattr(entry, "rollout", None) or (entry.model_extra or {}).get("rollout")
        if isinstance(rollout, dict):
            found[model_key(entry)] = (entry.version, rollout.get("started_at"))
    return found


def _refused(exc: Exception) -> ModelMcpError:
    diag = getattr(exc, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    if constraint == "registry_one_deployed_per_model":
        detail = getattr(diag, "message_detail", None) or ""
        return InvalidStateError("At most one version per model name may be deployed; this change would deploy "
                                 f"a second one ({detail.strip()}). Nothing was changed.")
    return InvalidStateError(f"The registry database refused the change ({str(exc).strip()[:200]}). "
                             "Nothing was changed.")


__all__ = ["PostgresRegistry"]
