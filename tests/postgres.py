"""Fixtures and helpers for tests against a real PostgreSQL server.

The server comes from `MODEL_MCP_TEST_POSTGRES_URL`, a URL (for example
`postgresql://root@127.0.0.1:5432/root`, as MODEL_MCP_DATABASE_URL takes): a database the tests may connect to and whose user may
create databases. Each test module gets a fresh database with a random name, dropped after it; each
test starts with its schema emptied, so migrations run again for every test.

Without the variable, or with the server unreachable, the tests skip with the reason, except in CI
(`CI` set) or with `MODEL_MCP_REQUIRE_POSTGRES=1`: there a missing database is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

URL_VARIABLE = "MODEL_MCP_TEST_POSTGRES_URL"


def postgres_required() -> bool:
    ci = os.environ.get("CI", "").strip().lower()
    return (ci not in ("", "0", "false", "no")) or os.environ.get("MODEL_MCP_REQUIRE_POSTGRES") == "1"


def _unavailable(reason: str) -> None:
    if postgres_required():
        pytest.fail(f"PostgreSQL is required here (CI or MODEL_MCP_REQUIRE_POSTGRES=1) but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def with_database(url: str, name: str) -> str:
    """The same server naming another database: a postgresql:// URL stays a URL (MODEL_MCP_DATABASE_URL
    takes only those), a key=value string stays one."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The server's URL from the environment, checked once per run."""
    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        _unavailable(f"{URL_VARIABLE} is not set (for example postgresql://root@127.0.0.1:5432/root)")
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[postgresql]')")
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"the server at {URL_VARIABLE} is unreachable: {str(exc).strip()[:200]}")
    return url


@pytest.fixture(scope="module")
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh database for this test module (random name), dropped afterwards; yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"model_mcp_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(postgres_server_url, name)
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(postgres_database: str) -> str:
    """The module's database, emptied for this test: no tables, no connections left by earlier tests."""
    reset_database(postgres_database)
    return postgres_database


def reset_database(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


def query(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on its own connection (for looking at what the code under test wrote)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


class TcpRelay:
    """A TCP relay on 127.0.0.1 in front of the real server: `stop()` is the database going away
    (every connection through it cut, new ones refused), `start()` it coming back on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def url(self, database_url: str) -> str:
        """`database_url` (a postgresql:// URL) pointed at the relay."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(database_url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, f"{user}127.0.0.1:{self.port}", parts.path, parts.query, parts.fragment))

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for sock in ([listener] if listener else []) + sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def pg_relay(pg_url: str) -> Iterator[tuple[TcpRelay, str]]:
    """(relay, URL through it) for the test's database: stop the relay to take the database away."""
    from urllib.parse import urlsplit

    parts = urlsplit(pg_url)
    relay = TcpRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    relay.start()
    try:
        yield relay, relay.url(pg_url)
    finally:
        relay.stop()
