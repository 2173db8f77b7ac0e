"""One replica of all runs the background check, decided by the database.

Replicas on one database, each on its own home, would each evaluate every deployed model and each
record the same alert once more (the double counting that `monitor-check.lock` prevents among the
processes of one home). On PostgreSQL the lock is a session-level advisory lock held on the
manager's monitoring connection: taken without waiting at each tick, kept from then on, and released
by the database when that connection ends (the process stopped or killed, the connection lost); the
next tick of another replica then takes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model_mcp.core.errors import StorageError
from model_mcp.logs import get_logger

if TYPE_CHECKING:
    import psycopg

    from model_mcp.core.pg import Link

log = get_logger(__name__)

# (classid, objid) of the two-key advisory lock: the project's prefix and the job.
BACKGROUND_CHECK = (0x6D6D6370, 5)


class DatabaseLeadership:
    def __init__(self, link: Link, key: tuple[int, int] = BACKGROUND_CHECK, job: str = "background check") -> None:
        self.link = link
        self.key = key
        self.job = job
        self._held = False

    def holds(self) -> bool:
        """Whether this replica runs the job now: it holds the lock, or takes it now if it is free. A
        database away answers False (the job reads the database; another replica may run it)."""
        first, second = self.key

        def take(connection: psycopg.Connection[Any]) -> bool:
            # Held already on this session (the lock stacks if taken twice, so it is looked up first);
            # a new session after a lost connection takes it afresh if no other replica did.
            return bool(connection.execute(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid = %s::oid AND objid = %s::oid AND objsubid = 2) "
                "THEN true ELSE pg_try_advisory_lock(%s, %s) END", (first, second, first, second)).fetchone()[0])

        try:
            held = self.link.run(take, lambda exc: StorageError(str(exc).strip()[:200]))
        except StorageError as exc:
            held = False
            if self._held:
                log.warning("leadership_lost", job=self.job, reason=str(exc))
        if held and not self._held:
            log.info("leadership_taken", job=self.job)
        self._held = held
        return held
