"""Crash safety: `model-mcp serve` SIGKILLed in the middle of changing operations, then restarted.

One home, one long seeded sequence of trials. Each trial starts a server on the home (which is the
restart after the previous kill: its start cleans staging and undoes an interrupted publish or
delete), checks every store invariant on disk (tests/reliability/invariants.py), then sends one
changing call (import_zip, validate, deploy, rollback, delete_model) and SIGKILLs the server a
seeded random delay after the request line was written. The delay is drawn around the operation's
median duration through a server (measured at setup and on every call answered before its kill;
see Lab.delay_ms), so kills spread over the whole operation (extraction, loading, validation, the
publish under the lock, the registry write, the report and audit-trail writes) and some land just
after it. After the kill: the leftovers are recorded, and
the next trial's start must clean them; the registry must hold either the state before the call or
the state after it, never a mix.

Most servers are forked from a zygote that has already imported model_mcp and scikit-learn (see
serverproc.py): the same `main(["serve", ...])`, without 1.5 s of imports per kill. They run
without the isolated probe (MODEL_MCP_ISOLATED_PROBE=false): the probe is a child interpreter that
loads each new model first and takes ~1.2 s, writes nothing in the home, and would otherwise hold
almost every kill, away from the commit steps this test is about. One trial per operation uses a
fresh `python -m model_mcp serve` with the default settings (probe on), killed within 0-1.6 s.
Servers get TMPDIR under tmp_path: a probe killed with its server leaves its scratch folder there.
"""

from __future__ import annotations

import functools
import io
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from model_mcp import samples
from model_mcp.core.errors import NoRollbackTargetError
from model_mcp.core.manager import ModelManager
from model_mcp.core.registry import Snapshot
from model_mcp.settings import Settings
from tests.reliability.invariants import check_store, leftovers
from tests.reliability.serverproc import NO_PROBE, ServerProcess, Zygote

SEED = 20261126
OPS = ("import_zip", "validate", "deploy", "rollback", "delete_model")
FORKED_KILLS_PER_OP = {"import_zip": 12, "validate": 12, "deploy": 12, "rollback": 12, "delete_model": 6}
SPAWNED_KILLS = ("import_zip", "validate", "deploy", "rollback")
SPAWNED_WINDOW_MS = 1600  # with the isolated probe, a fresh server's operation takes ~1.2-1.5 s
TREES = 100  # a 1.2 MB model (the samples' default has 50 trees); an operation takes ~40-100 ms
MIN_VERSIONS = 3  # at or below this many versions, a delete trial imports instead


@functools.lru_cache(maxsize=1)
def big_model_bytes() -> bytes:
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=TREES, random_state=0).fit(samples.training_data(2000, 8, 0))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@dataclass
class Trial:
    op: str
    arguments: dict[str, Any]
    delay_ms: float
    spawned: bool
    answered: bool = False
    error_code: str | None = None
    left_staging: list[str] = field(default_factory=list)
    left_temp: list[str] = field(default_factory=list)


class Lab:
    """The home, its packages, and the choice of each trial's arguments."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.env = {"TMPDIR": str(root / "tmp")}
        (root / "tmp").mkdir()
        self.package_dir = root / "packages"
        self.package_dir.mkdir()
        self.rng = random.Random(SEED)
        self.counter = 0
        self.durations_ms: dict[str, list[float]] = {op: [] for op in OPS}
        self.observer = ModelManager(Settings(home=self.home))

    def package(self, version: str) -> Path:
        path = self.package_dir / f"{version}.zip"
        if not path.exists():
            samples.build_package(path, version=version, created_at=f"2026-11-{1 + self.counter % 28:02d}T10:00:00Z",
                                  extra_files={"model.joblib": big_model_bytes()})
        return path

    def new_version(self) -> str:
        self.counter += 1
        return f"v{self.counter:03d}"

    def setup(self, zygote: Zygote, log: Any) -> None:
        """A few versions and deploys (so that a rollback has a target), and each operation's duration.

        The durations are measured through a fresh server, as the trials will see them (see delay_ms).
        """
        manager = ModelManager(Settings(home=self.home, isolated_probe=False))
        manager.start()
        for _ in range(3):
            manager.import_zip(path=str(self.package(self.new_version())))
        manager.deploy(version="v001")  # as in every trial: something serves, the server is warmed up
        calls = [("import_zip", {"path": str(self.package(self.new_version()))}) for _ in range(3)]
        calls += [("validate", {"version": v}) for v in ("v001", "v002", "v003")]
        calls += [("deploy", {"version": v}) for v in ("v002", "v003", "v002")]
        calls += [("rollback", {}), ("rollback", {}), ("deploy", {"version": "v003"}), ("rollback", {})]
        calls += [("delete_model", {"version": "v006"})]
        for op, arguments in calls:
            # As in a trial: the first call of a fresh server (slower than the next ones would be).
            server = zygote.start_server(self.home, stderr=log)
            server.initialize()
            assert not server.call("predict", rows=[[0.0] * 8]).is_error
            started = time.perf_counter()
            answer = server.call(op, **arguments)
            self.durations_ms[op].append(1000 * (time.perf_counter() - started))
            assert not answer.is_error, answer.text
            server.close()

    def delay_ms(self, op: str) -> float:
        """When to kill, from the median duration seen so far (setup, and trials answered before the kill).

        Half the kills fall anywhere in 0-130 % of it, half in 70-110 %: the commit steps (the
        publish under the lock, the registry write, the report and audit line) come last, so the
        second half aims at them. Answered trials are the shorter ones, so the median only moves
        towards the real duration when the machine gets faster: kills keep landing inside.
        """
        seen = sorted(self.durations_ms[op])
        median = seen[len(seen) // 2]
        low, high = (0.0, 1.3) if self.rng.random() < 0.5 else (0.7, 1.1)
        return self.rng.uniform(low, high) * median + 1

    def arguments(self, op: str, snapshot: Snapshot) -> tuple[str, dict[str, Any]]:
        deployed = snapshot.deployed.version if snapshot.deployed else None
        others = sorted(v for v, e in snapshot.entries.items() if v != deployed and e.status == "available")
        if op == "delete_model" and len(snapshot.entries) <= MIN_VERSIONS:
            op = "import_zip"
        if op == "import_zip":
            return op, {"path": str(self.package(self.new_version()))}
        if op == "validate":
            return op, {"version": self.rng.choice(sorted(snapshot.entries))}
        if op == "deploy":
            return op, {"version": self.rng.choice(others)}
        if op == "rollback":
            try:
                self.auto_rollback_target(snapshot)
                return op, {}
            except NoRollbackTargetError:
                return op, {"to_version": self.rng.choice(others)}
        return op, {"version": self.rng.choice(others)}

    def expected_target(self, op: str, arguments: dict[str, Any], snapshot: Snapshot) -> str | None:
        if op == "import_zip":
            return Path(arguments["path"]).stem
        if op == "rollback" and not arguments:
            return self.auto_rollback_target(snapshot)
        return arguments.get("version") or arguments.get("to_version")

    def auto_rollback_target(self, snapshot: Snapshot) -> str:
        """Where `rollback` without arguments goes: back from the (one model's) deployed version."""
        if snapshot.deployed is None:
            raise NoRollbackTargetError("nothing is deployed")
        return self.observer._rollback_target(snapshot, snapshot.deployed)


def schedule(rng: random.Random) -> Iterator[tuple[str, bool]]:
    plan = [(op, False) for op in OPS for _ in range(FORKED_KILLS_PER_OP[op])]
    plan += [(op, True) for op in SPAWNED_KILLS]
    rng.shuffle(plan)
    return iter(plan)


def check_transition(op: str, target: str | None, before: Snapshot, after: Snapshot, trial: Trial) -> None:
    """The registry holds the state before the call or the state after it, never a mix."""
    b, a = set(before.entries), set(after.entries)
    b_dep = before.deployed.version if before.deployed else None
    a_dep = after.deployed.version if after.deployed else None
    completed = trial.answered and trial.error_code is None
    if op == "import_zip":
        assert b <= a and a - b <= {target}, (b, a)
        assert not completed or target in a
    elif op == "delete_model":
        assert a <= b and b - a <= {target}, (b, a)
        assert not completed or target not in a
    else:
        assert a == b
    if op in ("deploy", "rollback"):
        assert a_dep in (b_dep, target), (b_dep, a_dep, target)
        assert not completed or a_dep == target
    else:
        assert a_dep == b_dep
    for version in a & b:
        if version not in (b_dep, a_dep, target):
            assert after.entries[version].status == before.entries[version].status, version


def test_sigkill_during_changes_never_breaks_the_store(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    log_path = tmp_path / "servers.log"
    trials: list[Trial] = []
    started = time.perf_counter()
    zygote = Zygote(env={**NO_PROBE, **lab.env})
    try:
        with log_path.open("ab") as log:
            lab.setup(zygote, log)
            pending: Pending | None = None
            for op, spawned in schedule(lab.rng):
                pending = run_trial(lab, zygote, op, spawned, log, pending)
                trials.append(pending.trial)
            # The last kill's leftovers: one more restart, then the final checks.
            server = zygote.start_server(lab.home, stderr=log)
            server.initialize()
            assert pending is not None
            pending.check(check_store(lab.home))
            server.close()
    finally:
        zygote.close()
    elapsed = time.perf_counter() - started

    assert len(trials) == sum(FORKED_KILLS_PER_OP.values()) + len(SPAWNED_KILLS)
    by_op = Counter(t.op for t in trials)
    mid_operation = Counter(t.op for t in trials if not t.answered)
    # Kills must really land inside operations, not only after them.
    assert sum(mid_operation.values()) >= 0.4 * len(trials), mid_operation
    for op in ("import_zip", "validate", "deploy", "rollback"):
        assert mid_operation[op] >= 3, (op, mid_operation)
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert not [r for r in records if r.get("event") == "internal_error"]
    with_leftovers = [t for t in trials if t.left_staging or t.left_temp]
    summary = {
        "kills": len(trials), "by_op": dict(by_op), "killed_mid_operation": dict(mid_operation),
        "kills_leaving_leftovers": len(with_leftovers),
        "journals_left": sum(1 for t in trials for n in t.left_staging if n.endswith(".json")),
        "median_op_ms": {op: round(sorted(d)[len(d) // 2]) for op, d in lab.durations_ms.items()},
        "seconds": round(elapsed, 1),
    }
    print("\ncrash summary:", json.dumps(summary))


@dataclass
class Pending:
    """A killed trial whose outcome is judged after the next start (which finishes or undoes it)."""

    trial: Trial
    target: str | None
    before: Snapshot

    def check(self, after: Snapshot) -> None:
        check_transition(self.trial.op, self.target, self.before, after, self.trial)


def run_trial(lab: Lab, zygote: Zygote, op: str, spawned: bool, log: Any, pending: Pending | None) -> Pending:
    server = (ServerProcess.spawn(lab.home, stderr=log, env=lab.env) if spawned
              else zygote.start_server(lab.home, stderr=log))
    try:
        server.initialize()
        # The server has started (the restart after the previous kill): check everything.
        before = check_store(lab.home)
        temp_before = leftovers(lab.home).temp_files
        if pending is not None:
            pending.check(before)
        op, arguments = lab.arguments(op, before)
        target = lab.expected_target(op, arguments, before)
        if before.deployed is not None:  # wait for the start load, so that it is not what gets killed
            warm = server.call("predict", rows=[[0.0] * 8])
            assert not warm.is_error, warm.text
        delay_ms = lab.rng.uniform(0, SPAWNED_WINDOW_MS) if spawned else lab.delay_ms(op)
        trial = Trial(op=op, arguments=arguments, spawned=spawned, delay_ms=delay_ms)
        request_id = server.send_call(op, arguments)
        time.sleep(trial.delay_ms / 1000)
    finally:
        server.kill()
    for message in server.drain():
        if message.get("id") == request_id:
            trial.answered = True
            if not spawned:  # a fresh interpreter's call (with the probe) is far longer: not a forked one's
                lab.durations_ms[op].append(1000 * (server.received_at[request_id] - server.sent_at[request_id]))
            result = message.get("result", {})
            if result.get("isError"):
                text = " ".join(c.get("text", "") for c in result.get("content", []))
                trial.error_code = text.split("[", 1)[1].split("]", 1)[0] if "[" in text else text
    assert trial.error_code is None, f"{op} {arguments} answered an error before the kill: {trial.error_code}"
    left = leftovers(lab.home)
    trial.left_staging = left.staging
    trial.left_temp = sorted(set(left.temp_files) - set(temp_before))
    return Pending(trial=trial, target=target, before=before)
