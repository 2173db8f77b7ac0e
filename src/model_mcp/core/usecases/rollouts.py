"""Rollouts: a shadow or canary beside a model's deployed version, its report, promote and abort,
the policies that may act on their own, and the start of a shadow for a version the watch imported.

State: the candidate's registry entry carries `rollout` ({"mode", "primary", "traffic_percent",
"started_at"}); at most one rollout per model; the model's deployed version is its primary. So a
restart, and every other process on the home, serves the same rollout (`follow_rollouts`). The
comparison lives in the monitoring store (core/rollouts/live.py).

Every start, promotion and abort is audited (`rollout_start`, `promote`, `abort_rollout`), with
`how`: `explicit` (a call), `policy` (the model's policy acted; the audit line holds the policy and
the figures) or `deploy` (a deploy of another version of the model ended the rollout).
"""

from __future__ import annotations

import threading
from typing import Any

from model_mcp.core.errors import (
    InvalidInputError,
    InvalidStateError,
    ModelMcpError,
    NoDeployedModelError,
    NotFoundError,
    ResourceLimitError,
    ValidationFailedError,
)
from model_mcp.core.registry import Snapshot, model_key
from model_mcp.core.rollouts.live import LiveRollout, state_prefix
from model_mcp.core.rollouts.policy import DEFAULT_POLICY, PolicyStore, RolloutPolicy, policy_from_arguments
from model_mcp.core.rollouts.report import add_comparisons, rank_correlation, two_proportion_p, verdict
from model_mcp.core.runtime import ResidentModel
from model_mcp.core.schemas import DeployResult, PolicyResult, RegistryEntry, RolloutReport, utc_now
from model_mcp.core.usecases.base import Progress, UseCaseBase, _no_progress
from model_mcp.logs import get_logger

log = get_logger(__name__)

MODES = ("primary", "shadow", "canary")


def candidate_of(snapshot: Snapshot, model_name: str) -> RegistryEntry | None:
    """The version under rollout for `model_name`, or None."""
    return next((e for e in snapshot.entries.values() if e.rollout and model_key(e) == model_name), None)


class RolloutCases(UseCaseBase):
    policies: PolicyStore
    _switch_lock: threading.Lock
    _follow_lock: threading.Lock

    # --- starting --------------------------------------------------------------------------------
    def start_rollout(self, *, version: str, mode: str, traffic_percent: int | None, how: str = "explicit",
                      progress: Progress | None = None) -> DeployResult:
        progress = progress or _no_progress
        if mode == "canary":
            if isinstance(traffic_percent, bool) or not isinstance(traffic_percent, int) or not 1 <= traffic_percent <= 99:
                raise InvalidInputError("A canary needs `traffic_percent`, a whole number from 1 to 99.")
        elif traffic_percent not in (None, 0):
            raise InvalidInputError("`traffic_percent` is for mode canary; a shadow sees every call.")
        with self._switch_lock:
            snapshot = self.read_registry()
            entry = self._entry_or_not_found(snapshot, version)
            version, name = entry.version, model_key(entry)
            primary = snapshot.deployed_of(name)
            if primary is None:
                raise InvalidStateError(f"No version of {entry.model_name} is deployed: a {mode} needs a primary; "
                                        "deploy one first.")
            if primary.version == version:
                raise InvalidStateError(f"Version {version} is the deployed one; a {mode} is another version.")
            if entry.status in ("failed", "archived"):
                raise InvalidStateError(f"Version {version} is {entry.status} and cannot be rolled out.")
            running = candidate_of(snapshot, name)
            if running is not None:
                same = running.version == version and (running.rollout or {}).get("mode") == mode
                if same and (running.rollout or {}).get("traffic_percent") == traffic_percent:
                    return self._rollout_answer(running, already=True)
                raise InvalidStateError(
                    f"A {(running.rollout or {}).get('mode')} of {running.version} is in progress for "
                    f"{entry.model_name}; promote or abort it first.")
            progress(0, None, "validating before the rollout")
            outcome = self.validate_stored(entry)
            report = outcome.report
            if not report.passed or outcome.estimator is None:
                raise ValidationFailedError(
                    f"Version {version} failed validation ({', '.join(report.summary().failed_checks)}); no "
                    f"{mode} started and {primary.version} serves alone.", data={"report": report.model_dump(mode="json")})
            started_at = utc_now()
            metadata = outcome.contents.metadata if outcome.contents else None
            resident = ResidentModel.create(
                version=version, estimator=outcome.estimator, feature_names=metadata.feature_names if metadata else [],
                load_ms=outcome.load_ms or 0.0, model_file_bytes=outcome.model_file_bytes or 0,
                deployed_at=started_at, model_name=name)
            self._check_rollout_budget(resident)
            rollout = {"mode": mode, "primary": primary.version, "traffic_percent": traffic_percent,
                       "started_at": started_at}

            def start(snap: Snapshot) -> None:
                target = snap.entries.get(version)
                current = snap.deployed_of(name)
                if target is None or current is None or current.version != primary.version:
                    raise InvalidStateError(f"{entry.model_name} changed while the {mode} was prepared; try again.")
                if candidate_of(snap, name) is not None:
                    raise InvalidStateError(f"Another rollout of {entry.model_name} started meanwhile.")
                target.rollout = rollout
                target.quality_score = report.quality_score

            self.registry.update(start)
            self._attach(resident, rollout)
            try:
                self.save_report(report)
            except ModelMcpError:
                log.warning("report_not_saved", version=version, exc_info=True)
            self.history.record("rollout_start", version=version, outcome="ok", mode=mode, how=how,
                                model_name=entry.model_name, primary=primary.version, traffic_percent=traffic_percent,
                                detail=f"{mode} of {version} beside {primary.version}"
                                       + (f", {traffic_percent} % of calls" if mode == "canary" else ""))
            progress(1, 1, f"{mode} started")
            return DeployResult(deployed_version=version, model_name=entry.model_name, previous_version=None,
                                load_ms=round(outcome.load_ms or 0, 3), mode=mode,  # type: ignore[arg-type]
                                probe_ms=None if outcome.probe_ms is None else round(outcome.probe_ms, 3),
                                validation=report.summary(), traffic_percent=traffic_percent)

    def _rollout_answer(self, entry: RegistryEntry, *, already: bool) -> DeployResult:
        report = self.load_report(entry.version)
        from model_mcp.core.usecases.serving import _empty_summary

        rollout = entry.rollout or {}
        return DeployResult(deployed_version=entry.version, model_name=entry.model_name, previous_version=None,
                            load_ms=0.0, probe_ms=0.0, validation=report.summary() if report else _empty_summary(),
                            already_deployed=already, mode=rollout.get("mode", "shadow"),
                            traffic_percent=rollout.get("traffic_percent"))

    def _check_rollout_budget(self, resident: ResidentModel) -> None:
        limit_mb = self.settings.max_resident_mb
        if not limit_mb:
            return
        total = self.runtime.memory_in_use() + resident.memory_bytes
        if total > limit_mb * 1024 * 1024:
            raise ResourceLimitError(
                f"Starting a rollout of {resident.version} would make the resident models take about "
                f"{total / 2**20:.1f} MB, over MODEL_MCP_MAX_RESIDENT_MB={limit_mb:g}. Nothing changed.")

    def _attach(self, resident: ResidentModel, rollout: dict[str, Any]) -> None:
        """Make the rollout live in this process (replacing one of the same model, which stops)."""
        monitor = getattr(self, "monitor", None)
        save = (lambda key, value: monitor.put_state(key, value, now=utc_now())) if monitor is not None else None
        live = LiveRollout(model_name=resident.model_name, mode=rollout["mode"],
                           deployment=self.runtime.new_deployment(resident), primary_version=rollout["primary"],
                           started_at=rollout["started_at"], traffic_percent=rollout.get("traffic_percent"),
                           recorder=getattr(self, "recorder", None), save_state=save)
        live.start()
        replaced = self.runtime.attach_rollout(live)
        if replaced is not None:
            replaced.stop()

    def end_live_rollout(self, model_name: str) -> None:
        live = self.runtime.detach_rollout(model_name)
        if live is not None:
            live.stop()

    # --- following the registry (start, other processes) ---------------------------------------------
    def follow_rollouts(self, snapshot: Snapshot) -> None:
        """Serve the rollouts the registry holds: attach missing ones, end those that are over."""
        wanted = {model_key(e): e for e in snapshot.entries.values() if e.rollout}
        live = self.runtime.rollouts()
        for name, rollout in live.items():
            entry = wanted.get(name)
            if entry is None or entry.version != rollout.version or (entry.rollout or {}).get("started_at") != rollout.started_at:
                self.end_live_rollout(name)
        for name, entry in wanted.items():
            current = self.runtime.rollout_of(name)
            if current is not None and current.version == entry.version:
                continue
            try:
                resident = self._load_resident(entry)  # type: ignore[attr-defined]
            except ModelMcpError as exc:
                log.error("rollout_not_loaded", version=entry.version, reason=str(exc))
                continue
            rollout = dict(entry.rollout or {})
            resident.deployed_at = rollout.get("started_at") or resident.deployed_at
            self._attach(resident, rollout)
            log.info("rollout_following", model_name=name, version=entry.version, mode=rollout.get("mode"))

    # --- ending --------------------------------------------------------------------------------------
    def promote(self, *, model_name: str | None = None, how: str = "explicit", detail: str = "",
                progress: Progress | None = None) -> DeployResult:
        self._require_writable("promote")
        with self._audit_failure("promote", model_name=model_name, how=how):
            snapshot = self.read_registry()
            name = self._rollout_model(snapshot, model_name)
            candidate = candidate_of(snapshot, name)
            assert candidate is not None
            return self._switch_to(candidate.version, event="promote", mode=how,  # type: ignore[attr-defined]
                                   progress=progress or _no_progress, extra_detail=detail)

    def abort_rollout(self, *, model_name: str | None = None, how: str = "explicit", detail: str = "") -> DeployResult:
        self._require_writable("abort_rollout")
        with self._audit_failure("abort_rollout", model_name=model_name, how=how):
            with self._switch_lock:
                snapshot = self.read_registry()
                name = self._rollout_model(snapshot, model_name)
                candidate = candidate_of(snapshot, name)
                assert candidate is not None
                primary = snapshot.deployed_of(name)

                def end(snap: Snapshot) -> None:
                    for entry in snap.entries.values():
                        if model_key(entry) == name:
                            entry.rollout = None

                self.registry.update(end)
                self.end_live_rollout(name)
                mode = (candidate.rollout or {}).get("mode")
                self.history.record("abort_rollout", version=candidate.version, outcome="ok", how=how,
                                    model_name=candidate.model_name, mode=mode,
                                    detail=f"{mode} of {candidate.version} ended; "
                                           f"{primary.version if primary else 'the primary'} serves alone"
                                           + (f". {detail}" if detail else ""))
            from model_mcp.core.usecases.serving import _empty_summary

            return DeployResult(deployed_version=primary.version if primary else candidate.version,
                                model_name=candidate.model_name, previous_version=candidate.version, load_ms=0.0,
                                probe_ms=None, validation=_empty_summary(), rolled_back=True)

    def _rollout_model(self, snapshot: Snapshot, model_name: str | None) -> str:
        running = {model_key(e): e for e in snapshot.entries.values() if e.rollout}
        if model_name is not None:
            if model_name not in running:
                raise InvalidStateError(f"No rollout of {model_name} is in progress.")
            return model_name
        if not running:
            raise InvalidStateError("No rollout is in progress.")
        if len(running) > 1:
            raise InvalidInputError(f"Several models have a rollout ({', '.join(sorted(running))}); name one with "
                                    "`model_name`.")
        return next(iter(running))

    # --- the report -----------------------------------------------------------------------------------
    def rollout_report(self, *, model_name: str | None = None) -> RolloutReport:
        snapshot, _ = self.read_registry_for_reading()
        name = self._rollout_model(snapshot, model_name)
        candidate = candidate_of(snapshot, name)
        assert candidate is not None
        rollout = candidate.rollout or {}
        mode, started_at, primary_version = rollout.get("mode"), rollout.get("started_at"), rollout.get("primary")
        policy, policy_set = self._policy_of(candidate.model_name or "")
        live = self.runtime.rollout_of(name)
        if live is not None and live.mode == "shadow":
            live.drain(timeout=5.0)
        comparison = self._comparison(name, started_at, live)
        figures = {}
        for side, version in (("primary", primary_version), ("candidate", candidate.version)):
            try:
                figures[side] = self.performance_report(version=version, since=started_at)  # type: ignore[attr-defined]
            except ModelMcpError as exc:
                log.warning("rollout_figures_unavailable", version=version, reason=str(exc))
                figures[side] = None
        p, c = figures["primary"], figures["candidate"]
        if mode == "shadow":
            rows = comparison["compared_rows"]
            agreement = comparison["agreeing_rows"] / rows if rows else None
            flagged = comparison["flagged_rows"]
            x1, x2 = comparison["primary_anomalies"], comparison["candidate_anomalies"]
            rates = (x1 / flagged if flagged else None, x2 / flagged if flagged else None)
            p_value = two_proportion_p(x1, flagged, x2, flagged)
            rho = rank_correlation(comparison["pairs"])
        else:
            rows = c.n_rows if c is not None else 0
            agreement = rho = None
            rates = (p.anomaly_rate if p else None, c.anomaly_rate if c else None)
            p_value = None
            if p is not None and c is not None and p.anomaly_rate is not None and c.anomaly_rate is not None:
                p_value = two_proportion_p(round(p.anomaly_rate * p.n_rows), p.n_rows,
                                           round(c.anomaly_rate * c.n_rows), c.n_rows)
        c_attempts = (c.n_requests + c.n_errors) if c is not None else 0
        c_error_rate = c.error_rate if c is not None else 0.0
        c_p95 = c.latency_ms.p95 if c is not None else None
        decision, reasons, needed = verdict(
            policy, mode=mode, rows=rows, agreement=agreement, anomaly_rates=rates, anomaly_p=p_value,
            candidate_error_rate=c_error_rate, candidate_attempts=c_attempts, candidate_p95_ms=c_p95,
            quality_score=candidate.quality_score)
        return RolloutReport(
            model_name=candidate.model_name or "", mode=mode, primary_version=primary_version,
            candidate_version=candidate.version, started_at=started_at,
            traffic_percent=rollout.get("traffic_percent"), rows=rows, label_agreement=agreement,
            anomaly_rate_primary=rates[0], anomaly_rate_candidate=rates[1], anomaly_rate_p_value=p_value,
            score_rank_correlation=rho,
            latency_p50_ms={"primary": p.latency_ms.p50 if p else None, "candidate": c.latency_ms.p50 if c else None},
            latency_p95_ms={"primary": p.latency_ms.p95 if p else None, "candidate": c_p95},
            error_rate={"primary": p.error_rate if p else None, "candidate": c_error_rate if c else None},
            requests={"primary": p.n_requests if p else 0, "candidate": c.n_requests if c else 0},
            dataset_drift={"primary": self._drifted(primary_version), "candidate": self._drifted(candidate.version)},
            dropped_rows=comparison["dropped_rows"], verdict=decision, reasons=reasons, rows_needed=needed,
            policy=policy.model_dump(), policy_set=policy_set,
        )

    def _comparison(self, name: str, started_at: str, live: LiveRollout | None) -> dict[str, Any]:
        """Every process's comparison of this rollout (the store), this process's own being the freshest."""
        states: dict[str, dict[str, Any]] = {}
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            try:
                states = monitor.states(state_prefix(name, started_at))
            except Exception as exc:  # the store unreadable: this process's comparison only
                log.warning("rollout_comparison_unreadable", reason=str(exc))
        if live is not None and live.started_at == started_at:
            from model_mcp.core.rollouts.live import process_key

            states[state_prefix(name, started_at) + process_key()] = live.comparison()
        return add_comparisons(list(states.values()))

    def _drifted(self, version: str) -> bool | None:
        try:
            return self.drift_report(version=version).dataset_drift  # type: ignore[attr-defined]
        except ModelMcpError:
            return None  # too few rows yet, or no profile

    # --- policies ---------------------------------------------------------------------------------------
    def _policy_of(self, model_name: str) -> tuple[RolloutPolicy, bool]:
        policy = self.policies.read().get(model_name)
        return (policy, True) if policy is not None else (DEFAULT_POLICY, False)

    def get_rollout_policy(self, *, model_name: str) -> PolicyResult:
        policy = self.policies.read().get(model_name)
        return PolicyResult(model_name=model_name, policy=policy.model_dump() if policy else None,
                            defaults=DEFAULT_POLICY.model_dump())

    def set_rollout_policy(self, *, model_name: str, clear: bool = False, **fields: Any) -> PolicyResult:
        self._require_writable("set_rollout_policy")
        with self._audit_failure("set_rollout_policy", model_name=model_name):
            if not isinstance(model_name, str) or not model_name:
                raise InvalidInputError("`model_name` must name a model.")
            policy = None if clear else policy_from_arguments(fields)
            snapshot = self.read_registry()
            if not clear and not any(e.model_name == model_name for e in snapshot.entries.values()):
                raise NotFoundError(f"No model named {model_name!r} is registered; list_models shows the models.")
            self.policies.put(model_name, policy)
            self.history.record("set_rollout_policy", version=None, outcome="ok", model_name=model_name,
                                policy=policy.model_dump() if policy else None,
                                detail=f"rollout policy of {model_name} " + ("removed" if policy is None else "set"))
            return PolicyResult(model_name=model_name, policy=policy.model_dump() if policy else None,
                                defaults=DEFAULT_POLICY.model_dump())

    # --- automatic actions (the background check's leader) ---------------------------------------------
    def evaluate_rollouts(self) -> list[dict[str, Any]]:
        """Judge every rollout that has a policy; promote or abort where the policy says so. Answers
        what was done (also in the audit trail, with the policy and the figures)."""
        if self.settings.read_only:
            return []
        snapshot, _ = self.read_registry_for_reading()
        try:
            policies = self.policies.read()
        except ModelMcpError as exc:  # the database away: no policy acts this time; the check goes on
            log.warning("rollout_policies_unreadable", code=exc.code, reason=str(exc))
            return []
        done = []
        for entry in [e for e in snapshot.entries.values() if e.rollout]:
            policy = policies.get(entry.model_name or "")
            if policy is None or not (policy.auto_promote or policy.auto_abort):
                continue
            try:
                report = self.rollout_report(model_name=model_key(entry))
            except ModelMcpError as exc:
                log.warning("rollout_not_judged", version=entry.version, reason=str(exc))
                continue
            figures = (f"rows {report.rows}, agreement {report.label_agreement}, anomaly rates "
                       f"{report.anomaly_rate_primary}/{report.anomaly_rate_candidate}, candidate error rate "
                       f"{report.error_rate.get('candidate')}, p95 {report.latency_p95_ms.get('candidate')} ms")
            why = f"policy {policy.model_dump()}; {figures}; {'; '.join(report.reasons)}"
            try:
                if report.verdict == "promote" and policy.auto_promote:
                    self.promote(model_name=model_key(entry), how="policy", detail=why)
                    done.append({"model_name": entry.model_name, "action": "promote", "version": entry.version})
                elif report.verdict == "reject" and policy.auto_abort:
                    self.abort_rollout(model_name=model_key(entry), how="policy", detail=why)
                    done.append({"model_name": entry.model_name, "action": "abort", "version": entry.version})
            except ModelMcpError as exc:
                log.warning("rollout_policy_action_failed", version=entry.version, code=exc.code, reason=str(exc))
        return done

    def after_watch_import(self, version: str) -> DeployResult | None:
        """The training-folder watch imported `version`: start its shadow if its model's policy says so."""
        snapshot, _ = self.read_registry_for_reading()
        entry = snapshot.get(version)
        if entry is None or entry.status not in ("available", "imported"):
            return None
        policy = self.policies.read().get(entry.model_name or "")
        if policy is None or not policy.shadow_on_import:
            return None
        name = model_key(entry)
        if snapshot.deployed_of(name) is None or candidate_of(snapshot, name) is not None:
            return None
        try:
            return self.start_rollout(version=version, mode="shadow", traffic_percent=None, how="policy")
        except (ModelMcpError, NoDeployedModelError) as exc:
            log.warning("shadow_on_import_refused", version=version, code=exc.code, reason=str(exc))
            self.history.record("rollout_start", version=version, outcome="failed", how="policy",
                                detail=f"[{exc.code}] {exc}")
            return None
