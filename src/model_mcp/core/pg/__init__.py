"""PostgreSQL: connections and the versioned schema, for the stores that live in a database.

Chosen by `MODEL_MCP_DATABASE_URL` (a `postgresql://` URL). psycopg (3) is imported here only, and
only when a URL is configured: a server on a home folder never loads it.

Schema: the files `migrations/NNNN_name.sql`, applied in file order by `migrate`, each in the same
transaction as its row in `schema_migrations`. Every file this server knows and the database lacks
is applied, also one numbered below a file already applied (two changes developed side by side may
land in either order; each file stands on its own). The whole run holds a transaction-scoped
advisory lock, so replicas starting at once apply each file exactly once (the others wait, then
find it applied). A database migrated by a newer server (versions this one does not know) is used
as it is.

Connections: a manager's stores share one `Links` (three kept connections, each a `Link` behind its
lock: `write` for registry, audit-trail and policy changes, `read` for their reads, `monitoring` for
the monitoring store), and the registry's listener holds a fourth (docs/scaling.md, Connections).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from model_mcp.logs import get_logger

if TYPE_CHECKING:
    import psycopg

log = get_logger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
IDLE_IN_TRANSACTION_S = 120
# pg_advisory_xact_lock keys (bigint); one per purpose, fixed for the lifetime of the schema.
MIGRATION_LOCK = 0x6D6D6370_00000001
REGISTRY_LOCK = 0x6D6D6370_00000002
ALERTS_LOCK = 0x6D6D6370_00000003
REGISTRY_CHANNEL = "model_mcp_registry"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def is_database_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def safe_url(url: str) -> str:
    """The URL without its password, for logs and sentences."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def connect(url: str, *, autocommit: bool = True, migrate_schema: bool = True) -> psycopg.Connection[Any]:
    """A connection with the schema migrated. Raises psycopg.OperationalError when the server cannot be reached."""
    import psycopg

    connection = psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
                                 application_name="model-mcp",
                                 # A server that vanished (no RST) is noticed in ~10 s, not hours.
                                 keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3)
    try:
        # A replica stopped in the middle of a transaction (SIGSTOP, a debugger) must not hold the
        # registry's lock for ever: the server ends such a session, and its transaction rolls back.
        connection.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                           (f"{IDLE_IN_TRANSACTION_S * 1000}",))
        if migrate_schema:
            migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration file, in file order."""
    folder = importlib.resources.files(__name__) / "migrations"
    found = []
    for item in folder.iterdir():
        match = _FILE.match(item.name)
        if match:
            found.append((int(match.group(1)), match.group(2), item.read_text(encoding="utf-8")))
    return in_order(found)


def in_order(found: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """The files sorted by number; two files with one number are refused (which runs first would be
    a guess). Gaps are allowed: a number may be taken by a change that has not landed yet."""
    found = sorted(found)
    numbers = [n for n, _, _ in found]
    if len(set(numbers)) != len(numbers) or any(n < 1 for n in numbers):
        raise RuntimeError(f"migration files must have distinct numbers from 0001: {numbers}")
    return found


def latest() -> int:
    known = migrations()
    return known[-1][0] if known else 0


def migrate(connection: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations this database lacks, in file order; answers the numbers applied (none:
    already current)."""
    known = migrations()
    if {n for n, _, _ in known} <= _applied(connection):
        return []
    applied_now: list[int] = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())")
        applied = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
        for number, name, text in known:
            if number in applied:
                continue
            connection.execute(text.encode())  # no parameters: the file's statements run as one script
            connection.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name))
            applied_now.append(number)
    if applied_now:
        log.info("database_migrated", applied=applied_now, schema_version=known[-1][0])
    return applied_now


def _applied(connection: psycopg.Connection[Any]) -> set[int]:
    """The migrations applied, without taking the lock (none on a new database): one small read per
    connection, so a file that landed below the highest applied one is still noticed."""
    with connection.transaction():
        row = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return set()
        return {int(r[0]) for r in connection.execute("SELECT version FROM schema_migrations")}


class Link:
    """One kept connection to the database behind a lock, opened (and the schema migrated) at first use.

    `run(fn, fail)` runs `fn(connection)` in one transaction. A kept connection that the server
    closed meanwhile (a restart, an idle timeout) fails at BEGIN, before anything was sent: the call
    is tried once more on a new connection. Any other failure raises `fail(exc)` (from exc); the
    connection is dropped (the next call opens a new one, so the stores recover by themselves when the
    database returns) unless the server only refused a statement (a constraint, a lock timeout): its
    transaction is rolled back and the connection is sound.

    Stores share links (`Links`), so `fn` must not use another store: its call would run on this
    link inside the open transaction (as a savepoint), not on its own; that is refused.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()
        self._busy = False

    def run(self, fn: Callable[[psycopg.Connection[Any]], T], fail: Callable[[Exception], Exception]) -> T:
        import psycopg

        with self._lock:
            if self._busy:
                raise RuntimeError("a database call inside another on the same connection (a nested transaction)")
            self._busy = True
            try:
                for attempt in (1, 2):
                    reused, begun = False, False
                    try:
                        connection = self._connection
                        reused = connection is not None and not connection.closed
                        if connection is None or not reused:
                            connection = self._connection = connect(self.url)
                        with connection.transaction():
                            begun = True
                            return fn(connection)
                    except psycopg.Error as exc:
                        refused = isinstance(exc, (psycopg.errors.IntegrityError, psycopg.errors.LockNotAvailable))
                        if not refused:
                            self.close()
                        if (attempt == 1 and reused and not begun and not refused
                                and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))):
                            continue  # BEGIN failed on a connection the server closed: nothing was sent
                        raise fail(exc) from exc
                raise AssertionError("unreachable")
            finally:
                self._busy = False

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()


class Links:
    """The connections one manager's stores share (the registry's listener apart): at most three
    per replica, however many stores and tools use them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.write = Link(url)  # registry, audit trail and policy changes
        self.read = Link(url)  # their reads (the registry's after a change, get_history, policies)
        self.monitoring = Link(url)  # the monitoring store: the recorder's writes, the reports' reads

    def close(self) -> None:
        for link in (self.write, self.read, self.monitoring):
            link.close()
