"""Rollout policies in PostgreSQL: core/rollouts/policy.py's `PolicyStore`, one row per model name in
`rollout_policies` (migrations/0005), so every replica judges a rollout by the same policy.

`put` is one statement in its own transaction (an upsert, or a delete to clear): two replicas setting
the same model's policy at once leave one of the two whole, never a mix. Unreachable: StorageError,
nothing changed (the use case audits the refusal; the background evaluation logs and goes on).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from model_mcp.core.errors import StorageError
from model_mcp.core.pg import Links, safe_url
from model_mcp.core.rollouts.policy import RolloutPolicy

if TYPE_CHECKING:
    import psycopg


class PostgresPolicies:
    def __init__(self, url: str, *, links: Links | None = None) -> None:
        self.url = url
        self.links = links or Links(url)

    def __repr__(self) -> str:
        return f"PostgresPolicies({safe_url(self.url)!r})"

    def read(self) -> dict[str, RolloutPolicy]:
        return self.links.read.run(policies_in, lambda exc: _unreachable(exc, "reading the rollout policies"))

    def put(self, model_name: str, policy: RolloutPolicy | None) -> None:
        def put(connection: psycopg.Connection[Any]) -> None:
            if policy is None:
                connection.execute("DELETE FROM rollout_policies WHERE model_name = %s", (model_name,))
                return
            connection.execute(
                "INSERT INTO rollout_policies (model_name, policy) VALUES (%s, %s) ON CONFLICT (model_name) "
                "DO UPDATE SET policy = excluded.policy, updated_at = now()",
                (model_name, json.dumps(policy.model_dump())))

        self.links.write.run(put, lambda exc: _unreachable(exc, "writing the rollout policy"))

    def close(self) -> None:
        self.links.write.close()
        self.links.read.close()


def policies_in(connection: psycopg.Connection[Any]) -> dict[str, RolloutPolicy]:
    """{model name: policy} as the table holds them (a row that is not a valid policy: StorageError)."""
    policies = {}
    for name, text in connection.execute(
            "SELECT model_name, policy::text FROM rollout_policies ORDER BY model_name").fetchall():
        try:
            policies[name] = RolloutPolicy.model_validate_json(text)
        except ValidationError:
            raise StorageError(f"The rollout policy of {name!r} in the database is damaged; set it again with "
                               "set_rollout_policy (or clear it).") from None
    return policies


def _unreachable(exc: Exception, doing: str) -> StorageError:
    return StorageError(f"The rollout policies' database is unreachable while {doing} "
                        f"({str(exc).strip()[:200]}). Nothing was changed.")


__all__ = ["PostgresPolicies"]
