"""Replicas: this server's heartbeat, and the list of every server on the database (core/replicas.py).

On PostgreSQL each server started by `serve` writes its row every MODEL_MCP_REPLICA_HEARTBEAT_S
seconds, and `replicas()` lists every row with its state (up or missing, current or behind). On a
home's registry.json there is no shared table to list, and nothing to compare with: the answer is
this server alone, saying so.
"""

from __future__ import annotations

import threading
from typing import Any

from model_mcp.core.errors import ModelMcpError
from model_mcp.core.replicas import (
    Heartbeat,
    ReplicaBeat,
    ReplicaIdentity,
    ReplicaStore,
    judged,
    serving_address,
)
from model_mcp.core.schemas import ReplicaInfo, ReplicasResult
from model_mcp.core.usecases.base import UseCaseBase

FILE_HOME_NOTE = ("This server keeps its registry in the home's registry.json, so it is listed alone: replicas "
                  "publish heartbeats only on a shared database. Set MODEL_MCP_DATABASE_URL on every server "
                  "(docs/operations.md, PostgreSQL) to see them all.")
NOT_A_SERVER_NOTE = ("This process writes no heartbeat (it is not a server, or MODEL_MCP_REPLICA_HEARTBEAT_S is 0), "
                     "so it is not in the list.")


class ReplicaCases(UseCaseBase):
    """start_heartbeat (serve), stop_heartbeat (close), replicas."""

    heartbeat: Heartbeat | None
    links: Any  # core/pg Links on PostgreSQL (the heartbeat shares the monitoring connection), else None
    replica_identity: ReplicaIdentity | None
    _replica_reader: ReplicaStore | None
    _replica_lock: threading.Lock
    _replica_applied: int | None

    def start_heartbeat(self) -> Heartbeat | None:
        """Called once by `serve`: this process becomes a replica. With a database and an interval
        over 0, the heartbeat thread starts writing its row; otherwise only its identity is kept (a
        home's `replicas()` answer lists it)."""
        settings = self.settings
        with self._replica_lock:
            if self.replica_identity is not None:
                return self.heartbeat
            interval = settings.replica_heartbeat_s
            self.replica_identity = ReplicaIdentity.this_process(
                address=serving_address(settings.transport, settings.host, settings.port),
                interval_s=interval, artifact_root=self.store.shared_artifacts)
            if not settings.database_url or interval <= 0:
                return None
            from model_mcp.core.pg.replicas import PostgresReplicas

            store = PostgresReplicas(settings.database_url, links=self.links)
            self.heartbeat = Heartbeat(store=store, identity=self.replica_identity,
                                       report=self._replica_beat,
                                       follow=self._follow_registry)  # type: ignore[attr-defined]  # ServingCases
        self.heartbeat.start()
        return self.heartbeat

    def stop_heartbeat(self) -> None:
        with self._replica_lock:
            heartbeat, self.heartbeat = self.heartbeat, None
            reader, self._replica_reader = self._replica_reader, None
        if heartbeat is not None:
            heartbeat.stop()
        if reader is not None:
            reader.close()

    def _replica_beat(self) -> ReplicaBeat:
        """What this process serves and which registry generation that is, read without the
        runtime's or the registry's locks (the predict path never waits for a beat)."""
        registry = self.registry
        before = getattr(registry, "generation", None)
        try:
            deployed: dict[str, str] | None = dict(registry.deployed_versions())
            rollouts: dict[str, Any] | None = dict(registry.rollout_keys())
        except ModelMcpError:
            deployed = rollouts = None  # unreachable before the first read: nothing known to compare with
        after = getattr(registry, "generation", None)
        serves = {name: resident.version for name, resident in self.runtime.residents().items()}
        if deployed is None or rollouts is None:
            return ReplicaBeat(applied_generation=self._replica_applied, serves=serves)
        live = {name: (r.version, r.started_at) for name, r in self.runtime.rollouts().items()}
        differ = sorted(name for name, version in deployed.items() if serves.get(name) != version)
        errors = self.runtime.load_errors()
        failed = [name for name in differ if errors.get(name, {}).get("version") == deployed[name]]
        loading = self.runtime.loading_versions()
        notes = [f"{name or '(unnamed)'} {deployed[name]} failed to load: {errors[name].get('message', '')}"[:300]
                 for name in failed]
        notes += [f"{name or '(unnamed)'} {version} is loading" for name, version in sorted(loading.items())]
        if not differ and live == rollouts and before is not None and before == after:
            self._replica_applied = before
        return ReplicaBeat(applied_generation=self._replica_applied, serves=serves, note="; ".join(notes) or None,
                           lagging=bool(set(differ) - set(failed)) or live != rollouts)

    def replicas(self) -> ReplicasResult:
        """Every server on the database with its state; on a home, this server alone."""
        identity, heartbeat = self.replica_identity, self.heartbeat
        if not self.settings.database_url:
            rows = [] if identity is None else [self._this_process(identity)]
            return _result(rows, None, database=False, note=FILE_HOME_NOTE if identity is not None else
                           FILE_HOME_NOTE + " " + NOT_A_SERVER_NOTE)
        store = heartbeat.store if heartbeat is not None else self._reader()
        generation, rows = store.read()
        own = heartbeat.identity.replica_id if heartbeat is not None else None
        listed = [ReplicaInfo.model_validate(judged(row, generation, own_id=own)) for row in rows]
        return _result(listed, generation, database=True, note=None if heartbeat is not None else NOT_A_SERVER_NOTE)

    def _reader(self) -> ReplicaStore:
        with self._replica_lock:
            if self._replica_reader is None:
                from model_mcp.core.pg.replicas import PostgresReplicas

                assert self.settings.database_url is not None
                self._replica_reader = PostgresReplicas(self.settings.database_url, links=self.links)
            return self._replica_reader

    def _this_process(self, identity: ReplicaIdentity) -> ReplicaInfo:
        state = self._replica_beat()
        row = {"replica_id": identity.replica_id, "host_name": identity.host_name, "pid": identity.pid,
               "address": identity.address, "started_at": identity.started_at, "last_seen": None,
               "seen_s_ago": 0.0, "interval_s": identity.interval_s, "applied_generation": None,
               "serves": state.serves, "note": state.note, "server_version": identity.server_version,
               "artifact_root": identity.artifact_root}
        return ReplicaInfo.model_validate(judged(row, None, own_id=identity.replica_id))


def _result(rows: list[ReplicaInfo], generation: int | None, *, database: bool, note: str | None) -> ReplicasResult:
    # Up before missing, then by host and address: the same order in every edge.
    ordered = sorted(rows, key=lambda r: (r.state != "up", r.host_name, r.address, r.started_at or ""))
    up = [r for r in ordered if r.state == "up"]
    return ReplicasResult(replicas=ordered, registry_generation=generation, database=database, up=len(up),
                          missing=len(ordered) - len(up), behind=sum(1 for r in up if r.current is False), note=note)
