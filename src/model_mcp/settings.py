"""One Settings object for the whole server.

Sources, strongest first: command-line flags, then `MODEL_MCP_*` environment variables, then the
defaults below. Only `cli.py` reads the real environment; it passes it here as a mapping, so tests
build settings from plain dicts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIB = 1024 * 1024


def default_home(env: Mapping[str, str]) -> Path:
    """`$MODEL_MCP_HOME`, else `$XDG_DATA_HOME/model-mcp`, else `~/.local/share/model-mcp`."""
    if env.get("MODEL_MCP_HOME"):
        return Path(env["MODEL_MCP_HOME"]).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME", os.path.expanduser("~"))) / ".local" / "share"
    return base / "model-mcp"


def absolute_path(path: Path) -> Path:
    """`~` expanded, made absolute against the current folder and normalised (links are kept)."""
    return Path(os.path.abspath(Path(path).expanduser()))


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    home: Path
    training_dir: Path | None = None
    read_only: bool = False
    # The training-folder watch of `serve` (core/training_watch.py): seconds between scans; 0 = off.
    watch_training_s: float = Field(default=0.0, ge=0)

    # Archive limits (docs/operations.md, Configuration).
    max_upload_bytes: int = 512 * MIB
    max_unpacked_bytes: int = 2048 * MIB
    max_members: int = 100
    max_ratio: float = 200.0
    ratio_min_member_bytes: int = 1 * MIB

    max_predict_rows: int = 10_000
    # The resident models' summed memory estimate (MB); 0: no budget. A deploy past it: resource_limit.
    max_resident_mb: float = Field(default=0.0, ge=0)
    # One MCP message (a stdio line, an HTTP body), checked before it is parsed; it bounds what one
    # call may cost (see README, "Limits"). Rows given inline to drift_report, per side:
    max_message_mb: float = Field(default=32.0, gt=0)
    max_drift_rows: int = Field(default=100_000, ge=1)

    # Folders import_zip(path=...) may read from (MODEL_MCP_IMPORT_ROOTS, comma-separated); empty: any.
    import_roots: tuple[Path, ...] = ()

    # Extra trusted pickle globals, as "module:name" (never taken from a package).
    trusted_globals: tuple[str, ...] = ()

    # validate_model.py: off unless the operator enables it.
    enable_custom_script: bool = False
    custom_script_timeout_s: float = 30.0
    custom_script_memory_mb: int = 1024

    # The first load and predict of each model file run in a separate process (crash/hang containment).
    isolated_probe: bool = True
    probe_timeout_s: float = 60.0
    probe_memory_mb: int = 4096
    # The audit trail's current file is rotated into history-<n>.jsonl past this size.
    history_segment_bytes: int = Field(default=64 * MIB, ge=4096)

    # Probe children running at once, process-wide (each may take probe_memory_mb); others wait.
    max_concurrent_probes: int = Field(default=2, ge=1)

    # Quality thresholds (the `quality` check, README "Validation").
    min_f1: float = 0.6
    min_roc_auc: float = 0.6
    min_training_samples: int = 1000
    max_model_age_days: int = 180

    # Monitoring.
    recent_window_rows: int = 5000
    baseline_rows: int = 1000
    drift_share_threshold: float = 0.5
    drift_alpha: float = 0.05  # family-wise, across features (Holm)
    drift_psi_moderate: float = 0.1
    drift_psi_significant: float = 0.25
    feedback_max_requests: int = 1000
    # The monitoring store (monitoring.db in the home): figures, windows, feedback, alerts. See README.
    monitor_store: bool = True
    monitor_retention_days: float = 30.0
    monitor_requests: int = 10_000  # request map entries kept per version, for record_feedback
    monitor_feedback_rows: int = 100_000  # labelled rows kept per deployment
    monitor_check_interval_s: float = 30.0  # the background check; 0 turns it off
    monitor_drift_min_rows: int = 500  # new recent rows before the check judges drift again
    alert_webhook: str | None = None  # POST each new or ended alert as JSON here

    # PostgreSQL (postgresql://user:password@host:port/db), shared by replicas: the monitoring store
    # lives there instead of monitoring.db. Unset: everything stays in the home, as before.
    database_url: str | None = Field(default=None, repr=False)
    # The shared artifact folder (an NFS-style mount every replica reads): package files and reports
    # live there instead of the home's models/ and reports/; each replica loads from a local copy in
    # its home checked against the sha256 recorded at import (core/package_cache.py). Unset: the home.
    artifact_root: Path | None = None
    # With a database: each server writes its replica row (what it serves, the registry generation
    # it applied) every this many seconds (core/replicas.py); 0 = off. Read by `model-mcp replicas`,
    # GET /api/v1/replicas and the dashboard's Replicas view.
    replica_heartbeat_s: float = Field(default=5.0, ge=0)

    # Transport.
    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = Field(default=None, repr=False)
    # Extra Host names for HTTP (a DNS alias, a reverse proxy): MODEL_MCP_ALLOWED_HOSTS=a.example,b:8443
    allowed_hosts: tuple[str, ...] = ()
    # What HTTP clients may hold (see README, "HTTP limits").
    http_max_sessions: int = Field(default=100, ge=1)
    http_session_idle_s: float = Field(default=600.0, gt=0)
    http_max_connections: int = Field(default=256, ge=1)
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=60.0, gt=0)
    http_keep_alive_s: float = Field(default=5.0, gt=0)

    log_level: str = "INFO"

    @field_validator("home", "training_dir", "artifact_root", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Resolved once, here: children (the probe) run in other folders, and the server's own
        working folder must not change what a relative `--home relhome` means later."""
        return None if value is None else absolute_path(value)

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("MODEL_MCP_DATABASE_URL must be a postgresql:// URL "
                             "(postgresql://user:password@host:5432/database)")
        import importlib.util

        if importlib.util.find_spec("psycopg") is None:  # found, not imported: start-up stays light
            raise ValueError("MODEL_MCP_DATABASE_URL needs the PostgreSQL driver: pip install 'model-mcp[postgresql]'")
        return value.strip()

    @field_validator("import_roots", mode="after")
    @classmethod
    def _absolute_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(absolute_path(root) for root in value)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * MIB)

    @property
    def trusted_pairs(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in self.trusted_globals:
            module, sep, name = item.partition(":")
            if sep and module and name:
                pairs.append((module.strip(), name.strip()))
        return tuple(pairs)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **flags: Any) -> Settings:
        """Build settings from flags (given, not None) over `MODEL_MCP_*` variables."""
        values: dict[str, Any] = {}
        for field_name in cls.model_fields:
            variable = f"MODEL_MCP_{field_name.upper()}"
            if variable in env and env[variable] != "":
                values[field_name] = env[variable]
        # A friendlier spelling for the trusted names: comma-separated.
        for variable in ("MODEL_MCP_TRUSTED_GLOBALS", "MODEL_MCP_TRUSTED_TYPES"):
            if env.get(variable):
                values["trusted_globals"] = tuple(p for p in env[variable].split(",") if p.strip())
        if env.get("MODEL_MCP_IMPORT_ROOTS"):
            values["import_roots"] = tuple(Path(r.strip()).expanduser() for r in env["MODEL_MCP_IMPORT_ROOTS"].split(",")
                                           if r.strip())
        if env.get("MODEL_MCP_ALLOWED_HOSTS"):
            values["allowed_hosts"] = tuple(h.strip() for h in env["MODEL_MCP_ALLOWED_HOSTS"].split(",") if h.strip())
        values.pop("home", None)
        values["home"] = default_home(env)
        for key, value in flags.items():
            if value is not None:
                values[key] = value
        if isinstance(values.get("training_dir"), str):
            values["training_dir"] = Path(values["training_dir"]).expanduser()
        if isinstance(values.get("artifact_root"), str):
            values["artifact_root"] = Path(values["artifact_root"]).expanduser()
        if isinstance(values.get("home"), str):
            values["home"] = Path(values["home"]).expanduser()
        return cls.model_validate(values)
