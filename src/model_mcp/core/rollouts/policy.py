"""Rollout policies: what an operator wrote down, per model, for judging and (opt-in) acting.

Kept behind one small interface, `PolicyStore`, with two implementations: `FilePolicies`, the home's
`rollout-policies.json` ({model name: policy}, written atomically under the store's lock), and, with
MODEL_MCP_DATABASE_URL, core/pg/policies.py's table, which every replica shares. The manager picks
one; the use cases (which audit every change) do not know which. No policy: rollout_report judges
with the defaults below, and nothing is ever done automatically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_mcp.core.errors import InvalidInputError, StorageError
from model_mcp.core.store import Store, atomic_write_json, storage_error

FILE_NAME = "rollout-policies.json"


class RolloutPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_compared_rows: int = Field(default=1000, ge=1, le=100_000_000,
                                   description="Rows compared (shadow) or answered by the canary before a verdict.")
    min_agreement: float = Field(default=0.95, ge=0, le=1, description="Shadow: share of rows with the same label.")
    max_anomaly_rate_diff: float = Field(default=0.05, ge=0, le=1,
                                         description="Largest |candidate - primary| anomaly rate, when significant.")
    min_quality_score: float | None = Field(default=None, ge=0, le=100, description="The candidate's validation score.")
    max_error_rate: float = Field(default=0.05, ge=0, le=1, description="The candidate's error rate.")
    max_latency_p95_ms: float | None = Field(default=None, gt=0, description="The candidate's latency p95.")
    auto_promote: bool = Field(default=False, description="Promote when the verdict is `promote`.")
    auto_abort: bool = Field(default=False, description="Abort when the verdict is `reject` (errors, latency...).")
    shadow_on_import: bool = Field(default=False,
                                   description="The training-folder watch starts a shadow of each new version.")


DEFAULT_POLICY = RolloutPolicy()


def read_policies(home: Path) -> dict[str, RolloutPolicy]:
    try:
        raw = (home / FILE_NAME).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(f"{FILE_NAME} cannot be read ({exc.strerror}).") from None
    try:
        data = json.loads(raw)
        return {name: RolloutPolicy.model_validate(value) for name, value in data.items()}
    except (ValueError, AttributeError, ValidationError):
        raise StorageError(f"{FILE_NAME} is damaged; fix or remove it (policies are set again with "
                           "set_rollout_policy).") from None


class PolicyStore(Protocol):
    """Where the policies live. Both methods raise StorageError (`storage_error`) when the storage
    cannot be read or written; `put` then changes nothing."""

    def read(self) -> dict[str, RolloutPolicy]:
        """{model name: policy} of every model that has one."""
        ...

    def put(self, model_name: str, policy: RolloutPolicy | None) -> None:
        """Set the model's policy (None: remove it), in one step."""
        ...


class FilePolicies:
    """`rollout-policies.json` in the home."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self) -> dict[str, RolloutPolicy]:
        return read_policies(self.store.home)

    def put(self, model_name: str, policy: RolloutPolicy | None) -> None:
        with self.store.lock():  # read, change, write: no other process's change in between
            policies = read_policies(self.store.home)
            if policy is None:
                policies.pop(model_name, None)
            else:
                policies[model_name] = policy
            write_policies(self.store.home, policies)


def write_policies(home: Path, policies: dict[str, RolloutPolicy]) -> None:
    """rollout-policies.json holding `policies`, written atomically (the caller holds the store's lock)."""
    try:
        atomic_write_json(home / FILE_NAME, {name: p.model_dump() for name, p in sorted(policies.items())})
    except OSError as exc:
        raise storage_error(exc, f"writing {FILE_NAME}") from exc


def policy_from_arguments(values: dict[str, Any]) -> RolloutPolicy:
    try:
        return RolloutPolicy.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"`{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(f"The rollout policy is not valid: {problems}.") from None
