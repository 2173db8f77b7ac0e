"""Replicas: who serves on one database, what each serves, whether each has caught up.

Each server with a database URL runs a `Heartbeat`: a daemon thread that every `interval_s` writes
the process's row (core/pg/replicas.py) with what its Runtime serves and the registry generation
it has applied. Readers judge each row with two rules, kept here once:

- **up** while the row was written within `UP_INTERVALS` of its own interval (by the database's
  clock), else **missing** (stopped, killed, cut off from the database);
- **current** when its applied generation equals the registry's, else **behind**.

"Applied" means served: the generation of the registry copy this process holds, reported only when
every model that copy says is deployed is the resident one. A deploy through another replica
therefore reads `behind` until this one has loaded the new version, and a version that fails to
load keeps it `behind`, with the reason in `note`.

The heartbeat never slows predict: it reads the resident versions and the copy's generation
without taking the runtime's or the registry's locks, and an idle replica that should follow a
deploy loads the new version on a helper thread (one at a time), as its next predict would have.
A failed write is counted and logged (the first of a run, then every 12th, and the recovery).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from model_mcp import __version__
from model_mcp.core.errors import ModelMcpError
from model_mcp.logs import get_logger

log = get_logger(__name__)

UP_INTERVALS = 3
LOG_EVERY_FAILURES = 12


@dataclass(frozen=True)
class ReplicaIdentity:
    """What does not change while the process runs."""

    replica_id: str
    host_name: str
    pid: int
    address: str  # host:port of its HTTP transport, or "stdio"
    started_at: datetime
    interval_s: float
    server_version: str
    artifact_root: bool

    @classmethod
    def this_process(cls, *, address: str, interval_s: float, artifact_root: bool) -> ReplicaIdentity:
        # A fresh id per heartbeat (so per server process): a restarted replica is a new row, and the
        # old one turns missing, then is pruned, rather than being overwritten as if it never stopped.
        return cls(replica_id=secrets.token_hex(6), host_name=socket.gethostname(), pid=os.getpid(),
                   address=address, started_at=datetime.now(UTC), interval_s=float(interval_s),
                   server_version=__version__, artifact_root=artifact_root)


@dataclass(frozen=True)
class ReplicaBeat:
    """What one beat reports."""

    applied_generation: int | None
    serves: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    lagging: bool = False  # the runtime does not serve what the registry copy says: follow it (not stored)


class ReplicaStore(Protocol):
    def beat(self, identity: ReplicaIdentity, state: ReplicaBeat) -> int: ...
    def read(self) -> tuple[int, list[dict[str, Any]]]: ...
    def close(self) -> None: ...


def serving_address(transport: str, host: str, port: int) -> str:
    if transport != "http":
        return "stdio"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_up(seen_s_ago: float, interval_s: float) -> bool:
    return seen_s_ago <= UP_INTERVALS * interval_s


def judged(row: dict[str, Any], registry_generation: int | None, *, own_id: str | None) -> dict[str, Any]:
    """A stored row as the replicas answer shows it: its state and whether it is current."""
    seen = max(0.0, float(row.get("seen_s_ago") or 0.0))
    applied = row.get("applied_generation")
    last_seen, started = row.get("last_seen"), row.get("started_at")
    return {
        "replica_id": row["replica_id"],
        "this_process": row["replica_id"] == own_id,
        "host_name": row["host_name"],
        "pid": row["pid"],
        "address": row["address"],
        "state": "up" if is_up(seen, row["interval_s"]) else "missing",
        "current": None if registry_generation is None or applied is None else int(applied) == registry_generation,
        "applied_generation": None if applied is None else int(applied),
        "serves": dict(row.get("serves") or {}),
        "note": row.get("note"),
        "started_at": _iso(started),
        "last_seen": _iso(last_seen),
        "seen_s_ago": round(seen, 3),
        "interval_s": float(row["interval_s"]),
        "server_version": row["server_version"],
        "artifact_root": bool(row["artifact_root"]),
    }


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


class Heartbeat:
    """The thread writing this process's row every `interval_s` (the first at once)."""

    def __init__(self, *, store: ReplicaStore, identity: ReplicaIdentity, report: Callable[[], ReplicaBeat],
                 follow: Callable[[], None] | None = None) -> None:
        self.store = store
        self.identity = identity
        self.report = report
        self.follow = follow
        self.beats = 0
        self.failures = 0  # failed writes since start
        self.last_error: str | None = None
        self._failing = 0  # failed writes in a row
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._follower: threading.Thread | None = None

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="replica-heartbeat", daemon=True)
        self._thread.start()
        log.info("replica_heartbeat_started", replica_id=self.identity.replica_id, address=self.identity.address,
                 interval_s=self.identity.interval_s)
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.store.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.identity.interval_s)

    def beat(self) -> bool:
        """One beat: write the row; then, if the runtime lags the registry, start following it."""
        state: ReplicaBeat | None = None
        try:
            state = self.report()
            self.store.beat(self.identity, state)
        except (ModelMcpError, OSError) as exc:
            self._failed(str(exc)[:300])
            return False
        except Exception as exc:  # a bug must not end the thread: the row would turn missing for no reason
            log.exception("replica_heartbeat_error", replica_id=self.identity.replica_id)
            self._failed(f"{type(exc).__name__}: {str(exc)[:200]}")
            return False
        finally:
            if state is not None and state.lagging:
                self._follow_in_background()
        if self._failing:
            log.info("replica_heartbeat_recovered", replica_id=self.identity.replica_id, after_failures=self._failing)
        self._failing = 0
        self.beats += 1
        return True

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self._failing += 1
        self.last_error = reason
        if self._failing == 1 or self._failing % LOG_EVERY_FAILURES == 0:
            log.warning("replica_heartbeat_failed", replica_id=self.identity.replica_id, failures=self.failures,
                        in_a_row=self._failing, reason=reason)

    def _follow_in_background(self) -> None:
        """The model loads of following a deploy made elsewhere run on their own thread, one at a
        time, so a long load never delays the beats (a replica would read missing while it loads)."""
        if self.follow is None or (self._follower is not None and self._follower.is_alive()):
            return
        self._follower = threading.Thread(target=self._follow_quietly, name="replica-follow", daemon=True)
        self._follower.start()

    def _follow_quietly(self) -> None:
        assert self.follow is not None
        try:
            self.follow()  # a model that fails to load is recorded by the runtime (the row's note says it)
        except ModelMcpError as exc:  # the registry unreachable: the next beat tries again
            log.warning("replica_follow_failed", replica_id=self.identity.replica_id, reason=str(exc)[:300])
        except Exception:
            log.exception("replica_follow_failed", replica_id=self.identity.replica_id)
