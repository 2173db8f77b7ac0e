"""ModelManager: the use cases, over the store, registry, validation, runtime and history.

Every public method is keyword-only, blocking (the server calls it from a worker thread) and
either returns an answer model or raises a ModelMcpError. A method that fails changes nothing:
imports stage everything under staging/ and publish with one rename plus one registry write,
under the store's lock, with a journal file that lets the next start undo a publish cut short.

The use cases live in `usecases/`, one module per area; this class composes them and owns the
shared state.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from model_mcp.core.alert_webhook import AlertWebhook
from model_mcp.core.archive import ArchiveLimits
from model_mcp.core.catalog import Catalog
from model_mcp.core.errors import ModelMcpError
from model_mcp.core.history import History
from model_mcp.core.monitor_check import BackgroundCheck
from model_mcp.core.monitoring import FeedbackStore
from model_mcp.core.monitoring_store import MonitoringStore, Retention, open_store
from model_mcp.core.monitoring_store.recorder import Recorder
from model_mcp.core.package_cache import PackageCache
from model_mcp.core.registry import Registry
from model_mcp.core.rollouts.policy import FilePolicies, PolicyStore
from model_mcp.core.runtime import Runtime
from model_mcp.core.schemas import DiscoveryProblem, RegistryEntry
from model_mcp.core.store import Store
from model_mcp.core.training import training_dir_problem
from model_mcp.core.usecases.base import Progress
from model_mcp.core.usecases.importing import ImportCases
from model_mcp.core.usecases.monitoring import MonitoringCases
from model_mcp.core.usecases.registry_cases import RegistryCases, training_dir_warning
from model_mcp.core.usecases.replicas import ReplicaCases
from model_mcp.core.usecases.rollouts import RolloutCases
from model_mcp.core.usecases.serving import ServingCases
from model_mcp.core.usecases.training import TrainingCases
from model_mcp.logs import get_logger
from model_mcp.settings import Settings

if TYPE_CHECKING:
    from model_mcp.core.pg import Links

log = get_logger(__name__)

__all__ = ["ModelManager", "Progress"]


class ModelManager(ImportCases, RegistryCases, ServingCases, RolloutCases, MonitoringCases, TrainingCases,
                   ReplicaCases):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.home, settings.artifact_root)
        self.package_cache = PackageCache(self.store)
        self.registry, self.history, self.policies, self.links = _shared_stores(settings, self.store)
        self.limits = ArchiveLimits.from_settings(settings)
        self.runtime = Runtime(
            max_predict_rows=settings.max_predict_rows,
            window_rows=settings.recent_window_rows,
            baseline_rows=settings.baseline_rows,
            feedback_requests=settings.feedback_max_requests,
        )
        self.feedback = FeedbackStore()
        self.catalog = Catalog(self._read_metadata)
        self.monitor, self.recorder = _monitoring(settings, self.links)
        self.runtime.recorder = self.recorder
        self.alert_listeners = []  # called with the alert records an evaluation changed
        self._alerts_lock = threading.Lock()
        self.webhook: AlertWebhook | None = None
        if settings.alert_webhook and self.monitor is not None:
            self.webhook = AlertWebhook(settings.alert_webhook, home=str(settings.home))
            self.alert_listeners.append(self.webhook)
        # One deploy or rollback at a time in this process; the store lock covers other processes.
        self._switch_lock = threading.Lock()
        # Serializes loading a version that another process deployed (see _follow_registry).
        self._follow_lock = threading.Lock()
        # Hand-placed folders that discovery has still to validate, by folder name (list_models shows
        # them as `imported`), and the folders the last discovery left unregistered.
        self.pending_discovery: dict[str, RegistryEntry] = {}
        self.discovery_problems: list[DiscoveryProblem] = []
        # On PostgreSQL: a sentence when the home's registry.json holds versions the database lacks.
        self.home_registry_warning: str | None = None
        # This process as a replica (start_heartbeat, called by serve) and its heartbeat on PostgreSQL.
        self.replica_identity = None
        self.heartbeat = None
        self._replica_reader = None
        self._replica_lock = threading.Lock()
        self._replica_applied = None

    def start_background_check(self) -> BackgroundCheck | None:
        """The server's background check (off in read-only mode, without a store, or with interval 0)."""
        interval = self.settings.monitor_check_interval_s
        if self.monitor is None or interval <= 0:
            return None
        leadership = None
        if self.links is not None:  # replicas on one database: one checker of them all
            from model_mcp.core.pg.leader import DatabaseLeadership

            leadership = DatabaseLeadership(self.links.monitoring).holds
        check = BackgroundCheck(self, interval_s=interval, drift_min_rows=self.settings.monitor_drift_min_rows,
                                lock_path=self.store.coordination_dir / "monitor-check.lock", leadership=leadership)
        check.start()
        return check

    def close(self) -> None:
        """Write what the recorder holds, send pending webhook alerts, stop the threads (server end; tests)."""
        self.stop_heartbeat()  # first: its row then ages into `missing` while the rest closes
        for name in list(self.runtime.rollouts()):
            self.end_live_rollout(name)  # the shadow's last comparison is saved before the store closes
        if self.recorder is not None:
            self.recorder.close()
        if self.webhook is not None:
            self.webhook.close()
        if self.monitor is not None:
            self.monitor.close()
        for part in (self.registry, self.history, self.policies):
            close = getattr(part, "close", None)  # the PostgreSQL ones hold connections and a listener
            if close is not None:
                close()
        if self.links is not None:
            self.links.close()  # the ones no store closed (monitoring, shared with the heartbeat, in read-only mode)

    # --- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the home, clean what a killed process left, finish or undo interrupted publishes.

        Read-only: nothing at all is written; the home is only read. A configured training folder
        that does not exist (or cannot be read) is logged here, at start, and list_models' `warnings`
        say it on every answer until it is fixed.
        """
        problem = training_dir_problem(self.settings.training_dir)
        if problem is not None:
            log.warning("training_dir_missing", training_dir=str(self.settings.training_dir),
                        message=training_dir_warning(problem))
        if self.settings.database_url:
            self._check_home_registry()
        if self.settings.read_only:
            return
        self.store.ensure()
        with self.store.lock():
            try:
                self.registry.read()
            except ModelMcpError as exc:
                # Leave staging as it is too: an interrupted publish or delete is only safe to
                # finish or undo against a registry we can read (the next start does it).
                log.error("registry_unreachable" if exc.code == "storage_error" else "registry_damaged",
                          reason=str(exc))
                return
            self._recover_journal()
            removed = self.store.clean_leftovers()
        try:
            self.history.ensure_index()  # once per home from an older version: reads the whole trail
        except (OSError, ModelMcpError) as exc:
            log.error("history_index_not_built", reason=str(exc))  # readers then walk the trail
        if removed:
            log.info("cleaned_leftovers", items=removed)

    def _check_home_registry(self) -> None:
        """A home that served from registry.json before MODEL_MCP_DATABASE_URL was set: its versions are
        not served from the database until copied there (never silently: another replica may already
        have filled the database). Logged, and in list_models' `warnings` until the next start."""
        if not self.store.registry_path.exists():
            return
        try:
            home = Registry(self.store).read().entries
            missing = sorted(set(home) - set(self.registry.read().entries))
        except ModelMcpError as exc:
            log.error("home_registry_not_compared", reason=str(exc))
            return
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            self.home_registry_warning = (
                f"registry.json in the home holds {len(missing)} version(s) the database's registry does not "
                f"({shown}); with MODEL_MCP_DATABASE_URL only the database is served. Copy the home into the "
                "database (docs/operations.md, PostgreSQL) or unset MODEL_MCP_DATABASE_URL.")
            log.warning("home_registry_not_in_database", versions=len(missing), message=self.home_registry_warning)


def _shared_stores(settings: Settings, store: Store) -> tuple[Registry, History, PolicyStore, Links | None]:
    """registry.json, history.jsonl and rollout-policies.json in the home; with MODEL_MCP_DATABASE_URL,
    the registry, the audit trail and the rollout policies in PostgreSQL (core/pg/), which every
    manager on that database shares, over the connections (`Links`) the monitoring store shares too.
    The package files, reports, staging and the publish journal are files either way, in the home or
    the shared artifact folder (docs/scaling.md)."""
    if not settings.database_url:
        history = History(store.history_path, segment_bytes=settings.history_segment_bytes)
        return Registry(store), history, FilePolicies(store), None
    # Imported only here: core/pg/ loads psycopg when it first connects, never at start-up without a URL.
    from model_mcp.core.pg import Links
    from model_mcp.core.pg.history import PostgresHistory
    from model_mcp.core.pg.policies import PostgresPolicies
    from model_mcp.core.pg.registry import PostgresRegistry

    links = Links(settings.database_url)
    registry = PostgresRegistry(settings.database_url, links=links)
    history = PostgresHistory(settings.database_url, links=links)
    policies = PostgresPolicies(settings.database_url, links=links)
    return registry, history, policies, links  # type: ignore[return-value]  # the same interfaces, duck-typed


def _monitoring(settings: Settings, links: Links | None) -> tuple[MonitoringStore | None, Recorder | None]:
    """The monitoring store and its recorder; none in read-only mode or with the store turned off."""
    if settings.read_only or not settings.monitor_store:
        return None, None
    store = open_store(settings.home, settings.database_url, links=links)
    retention = Retention(days=settings.monitor_retention_days, window_rows=settings.recent_window_rows,
                          baseline_rows=settings.baseline_rows, requests=settings.monitor_requests,
                          feedback_rows=settings.monitor_feedback_rows)
    return store, Recorder(store, retention=retention)
