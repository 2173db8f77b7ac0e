"""PostgreSQL: connections and the versioned schema, for the stores that live in a database.

Chosen by `MODEL_MCP_DATABASE_URL` (a `postgresql://` URL). psycopg (3) is imported here only, and
only when a URL is configured: a server on a home folder never loads it.

Schema: the files `migrations/NNNN_name.sql`, applied in order by `migrate`, each in the same
transaction as its row in `schema_migrations`. The whole run holds a transaction-scoped advisory
lock, so replicas starting at once apply each file exactly once (the others wait, then find it
applied). A database migrated by a newer server (versions this one does not know) is used as it is.
"""

from __future__ import annotations

import importlib.resources
import re
from typing import TYPE_CHECKING, Any

from model_mcp.logs import get_logger

if TYPE_CHECKING:
    import psycopg

log = get_logger(__name__)

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
    """(number, name, sql) of every migration file, in order."""
    folder = importlib.resources.files(__name__) / "migrations"
    found = []
    for item in folder.iterdir():
        match = _FILE.match(item.name)
        if match:
            found.append((int(match.group(1)), match.group(2), item.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migration files must be numbered 1..n without gaps: {numbers}")
    return found


def latest() -> int:
    return len(migrations())


def migrate(connection: psycopg.Connection[Any]) -> list[int]:
    """Apply the migrations this database lacks; answers the numbers applied (none: already current)."""
    known = migrations()
    if _applied_max(connection) >= len(known):
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
        log.info("database_migrated", applied=applied_now, schema_version=len(known))
    return applied_now


def _applied_max(connection: psycopg.Connection[Any]) -> int:
    """The highest migration applied, without taking the lock (0 on a new database)."""
    with connection.transaction():
        row = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        found = connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(found[0]) if found else 0
