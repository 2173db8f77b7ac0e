"""Serving use cases: the resident model, deploy and rollback, predict, performance figures."""

from __future__ import annotations

import threading
import time
from typing import Any

from model_mcp.core.errors import (
    InvalidInputError,
    InvalidStateError,
    ModelMcpError,
    NoDeployedModelError,
    NoRollbackTargetError,
    NotFoundError,
    ResourceLimitError,
    ValidationFailedError,
)
from model_mcp.core.alerts import load_failed_alert, operational_alerts
from model_mcp.core.history import PRIMARY_EVENTS
from model_mcp.core.registry import Snapshot, model_key
from model_mcp.core.runtime import ResidentModel
from model_mcp.core.schemas import (
    DeployResult,
    PerformanceReport,
    Readiness,
    RegistryEntry,
    Resources,
    ValidationSummary,
    parse_manifest,
    utc_now,
)
from model_mcp.core.unpickler import load_trusted
from model_mcp.core.usecases.base import Progress, UseCaseBase, _no_progress, resolve_alias
from model_mcp.logs import get_logger

log = get_logger(__name__)


# At most this long after a start, with the saved scorer serving, the full model's load waits for
# a first tool call to be answered.
FULL_LOAD_DEFER_S = 2.0


class ServingCases(UseCaseBase):
    """deploy, rollback, predict, performance_report, and loading the deployed model."""

    full_load_defer_s = FULL_LOAD_DEFER_S

    # --- serving: the resident model -----------------------------------------------------------
    def load_deployed_in_background(self) -> threading.Thread | None:
        """At server start: load the registry's deployed version without holding up `initialize`.

        Predicts that arrive meanwhile wait for the load (Runtime.begin_loading). A failure is logged
        and shown by list_models and performance_report; the server keeps running.

        When the scorer saved at deploy serves at once (numpy only), the full model (scikit-learn's
        import and the unpickling: most of a second of work holding the GIL) waits until a first tool
        call has been answered (`release_full_load`), or FULL_LOAD_DEFER_S at most: until then it
        would only slow the `initialize` answer and the first predict, on two cores.
        """
        try:
            snapshot, problem = self.read_registry_for_reading()
        except ModelMcpError as exc:
            log.error("deployed_not_loaded", reason=str(exc))
            return None
        if problem is not None:  # damaged: the reading tools answer from the last good copy, so does predict
            log.error("registry_damaged_serving_last_good", reason=problem)
        deployed = list(snapshot.deployed_by_model().values())
        if not deployed:
            return None
        for entry in deployed:
            self.runtime.begin_loading(entry.version, model_key(entry))
        self._full_load_release = threading.Event()

        def load_all() -> None:
            # Saved scorers first (numpy only, milliseconds each), so every model serves early; then
            # the full models one by one, once a first call was answered (or FULL_LOAD_DEFER_S).
            stand_ins = [self._serve_saved_scorer(entry) for entry in deployed]
            if any(stand_in is not None for stand_in in stand_ins):
                self._full_load_release.wait(self.full_load_defer_s)
            for entry, stand_in in zip(deployed, stand_ins, strict=True):
                self._load_full_model(entry, stand_in=stand_in)
            if any(e.rollout for e in snapshot.entries.values()):
                with self._follow_lock:
                    self.follow_rollouts(snapshot)  # type: ignore[attr-defined]

        thread = threading.Thread(target=load_all, name="load-deployed", daemon=True)
        thread.start()
        return thread

    def _load_into_runtime(self, entry: RegistryEntry) -> None:
        stand_in = self._serve_saved_scorer(entry)
        release = getattr(self, "_full_load_release", None)
        if stand_in is not None and release is not None:
            release.wait(self.full_load_defer_s)
        self._load_full_model(entry, stand_in=stand_in)

    def release_full_load(self) -> None:
        """A tool call was answered: the start's full model load may begin (see load_deployed_in_background)."""
        release = getattr(self, "_full_load_release", None)
        if release is not None and not release.is_set():
            release.set()

    def _load_full_model(self, entry: RegistryEntry, *, stand_in: ResidentModel | None) -> None:
        """Load the version's model and serve it (taking over from the saved scorer's stand-in)."""
        try:
            resident = self._load_resident(entry)
        except ModelMcpError as exc:
            self.runtime.load_failed(entry.version, f"[{exc.code}] {exc}", model_key(entry))
        except Exception as exc:  # a start load must never take the server down
            log.error("deployed_load_crashed", version=entry.version, exc_info=exc)
            self.runtime.load_failed(entry.version, "[internal_error] the model could not be loaded", model_key(entry))
        else:
            if stand_in is None:
                self.runtime.install(resident)
            else:  # no-op when a deploy replaced the stand-in meanwhile
                self.runtime.upgrade(stand_in, resident)
            log.info("deployed_loaded", version=entry.version, load_ms=round(resident.load_ms, 1))
            if stand_in is None:
                self._save_scorer(resident, entry)

    def _serve_saved_scorer(self, entry: RegistryEntry) -> ResidentModel | None:
        """Serve the scorer saved at deploy while the full model loads (no scikit-learn needed).

        Only when model.joblib still has the sha256 recorded at import and the saved arrays were
        built from exactly that file (core/scoring/cache.py); else None and nothing changes.
        """
        from model_mcp.core.archive import hash_file
        from model_mcp.core.scoring import SavedScorerModel
        from model_mcp.core.scoring import cache

        sha256 = _recorded_model_sha256(entry)
        if not sha256:
            return None
        started = time.perf_counter()
        try:
            model_path = self.package_root(entry) / "model.joblib"
            digest, size = hash_file(model_path)
        except (OSError, ModelMcpError):
            return None
        if digest != sha256:
            return None
        scorer = cache.load_scorer(self.store.home / cache.FOLDER, entry.version, digest)
        names = (self._read_metadata(entry) or {}).get("feature_names") or []
        if scorer is None or len(names) != scorer.forest.n_features:
            return None
        stand_in = ResidentModel.create(version=entry.version, estimator=SavedScorerModel(scorer), feature_names=names,
                                        load_ms=(time.perf_counter() - started) * 1000, model_file_bytes=size,
                                        deployed_at=entry.deployed_at, model_name=model_key(entry))
        self.runtime.install(stand_in)
        log.info("saved_scorer_serving", version=entry.version, load_ms=round(stand_in.load_ms, 1))
        return stand_in

    def _save_scorer(self, resident: ResidentModel, entry: RegistryEntry) -> None:
        """Save the fast scorer's arrays for the next start (best effort: a failure is logged only)."""
        from model_mcp.core.scoring import cache

        sha256 = _recorded_model_sha256(entry)
        if resident.fast_scorer is None or not sha256 or self.settings.read_only:
            return
        try:
            cache.save_scorer(resident.fast_scorer, self.store.home / cache.FOLDER, resident.version, sha256)
        except (OSError, ValueError) as exc:
            log.warning("scorer_not_saved", version=resident.version, reason=str(exc))

    def _load_resident(self, entry: RegistryEntry) -> ResidentModel:
        """Load a registered version for serving: model.joblib's hash checked, trusted loader."""
        from model_mcp.core.archive import hash_file
        from model_mcp.core.errors import HashMismatchError

        root = self.package_root(entry)
        model_path = root / "model.joblib"
        if not model_path.is_file():
            raise NotFoundError(f"Version {entry.version} has no model.joblib on disk.")
        expected = (entry.files or {}).get("model.joblib")
        digest, size = hash_file(model_path)
        if expected is not None and expected.sha256 != digest:
            raise HashMismatchError(f"model.joblib of version {entry.version} changed on disk since import.")
        metadata = self._read_metadata(entry) or {}
        started = time.perf_counter()
        estimator = load_trusted(model_path, self.settings.trusted_pairs, max_bytes=self.settings.max_unpacked_bytes)
        load_ms = (time.perf_counter() - started) * 1000
        return ResidentModel.create(version=entry.version, estimator=estimator,
                                    feature_names=metadata.get("feature_names") or [],
                                    load_ms=load_ms, model_file_bytes=size,
                                    deployed_at=entry.deployed_at, model_name=model_key(entry))

    def _follow_registry(self) -> None:
        """Serve what the registry says is deployed, also when another process deployed it.

        One stat of registry.json per predict (the registry read is cached by its stat, the deployed
        versions per model memoized with it); only a model whose deployed version differs from its
        resident one is loaded.
        """
        if self.runtime.loading is not None or self._switch_lock.locked():
            return  # a load or a switch in this process is under way; it installs the right model
        try:
            deployed = self.registry.deployed_versions()
            rollouts = self.registry.rollout_keys()
        except ModelMcpError:
            return  # damaged registry: keep serving what is resident
        live = self.runtime.rollouts()
        if (rollouts or live) and {name: (r.version, r.started_at) for name, r in live.items()} != rollouts:
            with self._follow_lock:
                self.follow_rollouts(self.registry.view())  # type: ignore[attr-defined]
        residents = self.runtime.residents()
        stale = [name for name, version in deployed.items()
                 if residents.get(name) is None or residents[name].version != version]
        if not stale:
            return
        errors = self.runtime.load_errors()
        stale = [name for name in stale if errors.get(name, {}).get("version") != deployed[name]]
        if not stale:
            return  # already failed to load; list_models and performance_report say why
        with self._follow_lock:
            # The read-only view: on PostgreSQL it reads only the rows changed since this server's copy.
            snapshot = self.registry.view()
            for name in stale:
                entry = snapshot.deployed_of(name)
                current = self.runtime.resident_of(name)
                if entry is None or (current is not None and current.version == entry.version):
                    continue
                log.info("following_registry", model_name=name, deployed=entry.version,
                         resident=current.version if current else None)
                self._load_into_runtime(entry)

    # --- deploy and rollback -------------------------------------------------------------------
    def deploy(self, *, version: str, mode: str = "primary", traffic_percent: int | None = None,
               progress: Progress | None = None) -> DeployResult:
        """mode `primary` (the default) makes `version` its model's deployed version; `shadow` and
        `canary` start a rollout beside it (core/usecases/rollouts.py)."""
        self._require_writable("deploy")
        if mode not in ("primary", "shadow", "canary"):
            raise InvalidInputError(f"`mode` must be primary, shadow or canary, not {str(mode)[:40]!r}.")
        event = "deploy" if mode == "primary" else "rollout_start"
        with self._audit_failure(event, version=version if isinstance(version, str) else None, mode=mode):
            if mode != "primary":
                return self.start_rollout(version=version, mode=mode, traffic_percent=traffic_percent,  # type: ignore[attr-defined]
                                          progress=progress)
            if traffic_percent not in (None, 0, 100):
                raise InvalidInputError("`traffic_percent` is for mode canary.")
            return self._switch_to(version, event="deploy", mode="explicit", progress=progress or _no_progress)

    def rollback(self, *, to_version: str | None = None, model_name: str | None = None,
                 progress: Progress | None = None) -> DeployResult:
        self._require_writable("rollback")
        with self._audit_failure("rollback", version=to_version if isinstance(to_version, str) else None,
                                 mode="explicit" if to_version else "auto", model_name=model_name):
            return self._rollback(to_version=to_version, model_name=model_name, progress=progress)

    def _rollback(self, *, to_version: str | None, model_name: str | None, progress: Progress | None) -> DeployResult:
        snapshot = self.read_registry()
        if to_version is None:
            from model_mcp.core.usecases.rollouts import candidate_of

            name = model_name
            if name is None:
                deployed = snapshot.deployed_by_model()
                name = next(iter(deployed)) if len(deployed) == 1 else None
            if name is not None and candidate_of(snapshot, name) is not None:
                # A rollout in progress: rolling back ends it; the primary serves alone.
                return self.abort_rollout(model_name=name, how="rollback")  # type: ignore[attr-defined]
            current = snapshot.get(self._rolling_back_from(snapshot, model_name))
            assert current is not None
            target = self._rollback_target(snapshot, current)
            mode = "auto"
        else:
            entry = self._entry_or_not_found(snapshot, to_version)
            if model_name is not None and entry.model_name != model_name:
                raise InvalidInputError(f"Version {entry.version} belongs to model {entry.model_name}, not {model_name}.")
            target = entry.version
            current = snapshot.deployed_of(model_key(entry))
            if current is not None and current.version == target:
                raise InvalidStateError(f"Version {target} is already deployed; there is nothing to roll back.")
            mode = "explicit"
        return self._switch_to(target, event="rollback", mode=mode, progress=progress or _no_progress)

    def _rolling_back_from(self, snapshot: Snapshot, model_name: str | None) -> str:
        """The deployed version a rollback without a target leaves: that of `model_name`, or of the
        only deployed model."""
        deployed = snapshot.deployed_by_model()
        if model_name is not None:
            entry = deployed.get(model_name)
            if entry is None:
                raise NoRollbackTargetError(f"No version of {model_name} is deployed, so there is nothing to "
                                            "roll back from.")
            return entry.version
        if not deployed:
            raise NoRollbackTargetError("Nothing is deployed, so there is nothing to roll back from.")
        if len(deployed) > 1:
            raise InvalidInputError(
                f"Several models are deployed ({', '.join(sorted(n or '(unnamed)' for n in deployed))}); name one "
                "with `model_name`."
            )
        return next(iter(deployed.values())).version

    def deployment_stack(self, model_name: str | None = None, snapshot: Snapshot | None = None) -> list[str]:
        """The versions that served, oldest first, as deploys and rollbacks left them.

        Replaying the audit trail: a deploy (or a rollback to a named version) pushes its version;
        a rollback without a target pops the current one. So repeated rollbacks walk back through
        the deployment history: deploy A, B, C; rollback -> B; rollback -> A.
        """
        stack: list[str] = []
        for event in reversed(self.history.events(kind="deployments", limit=None)):
            if event.get("outcome") != "ok" or event.get("event") not in PRIMARY_EVENTS:
                continue
            version = event.get("version")
            if model_name is not None and _event_model(event, snapshot) != model_name:
                continue  # another model's deployments do not move this model's stack
            if event.get("event") == "rollback" and event.get("mode") == "auto":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != version:
                    stack.append(version)
            elif not stack or stack[-1] != version:
                stack.append(version)
        return stack

    def _rollback_target(self, snapshot: Snapshot, current: RegistryEntry) -> str:
        stack = self.deployment_stack(model_key(current), snapshot)
        while stack and stack[-1] == current.version:
            stack.pop()
        for version in reversed(stack):
            entry = snapshot.get(version)
            if (entry is not None and entry.status in ("available", "imported") and version != current.version
                    and model_key(entry) == model_key(current)):
                return version
        raise NoRollbackTargetError(
            f"No earlier deployment of another registered, deployable version precedes {current.version}; "
            "name one with to_version."
        )

    def _switch_to(self, version: str, *, event: str, mode: str, progress: Progress,
                   extra_detail: str = "") -> DeployResult:
        with self._switch_lock:
            snapshot = self.read_registry()
            entry = self._entry_or_not_found(snapshot, version)
            version = entry.version  # an alias (name@alias) named it
            name = model_key(entry)
            previous = snapshot.deployed_of(name)
            resident = self.runtime.resident_of(name)
            if entry.status == "deployed" and resident is not None and resident.version == version:
                report = self.load_report(version)
                return DeployResult(
                    deployed_version=version, previous_version=None, load_ms=0.0, probe_ms=0.0,
                    validation=report.summary() if report else _empty_summary(), already_deployed=True,
                    model_name=entry.model_name,
                )
            if entry.status in ("failed", "archived"):
                raise InvalidStateError(
                    f"Version {version} is {entry.status} and cannot be deployed; "
                    + ("validate it again once fixed." if entry.status == "failed" else "import it again.")
                )
            progress(0, None, "validating before deploy")
            outcome = self.validate_stored(entry)
            report = outcome.report
            if not report.passed or outcome.estimator is None:
                failed = report.summary().failed_checks
                raise ValidationFailedError(
                    f"Version {version} failed pre-deployment validation ({', '.join(failed)}); "
                    f"{previous.version if previous else 'nothing'} keeps serving.",
                    data={"report": report.model_dump(mode="json")},
                )
            progress(0.8, 1, "switching")
            now = utc_now()
            metadata = outcome.contents.metadata if outcome.contents else None
            new_resident = ResidentModel.create(
                version=version, estimator=outcome.estimator,
                feature_names=metadata.feature_names if metadata else [],
                load_ms=outcome.load_ms or 0.0, model_file_bytes=outcome.model_file_bytes or 0, deployed_at=now,
                model_name=name,
            )
            self._check_memory_budget(new_resident)

            def switch(snap: Snapshot) -> str | None:
                target = snap.entries.get(version)
                if target is None:
                    raise NotFoundError(f"Version {version} was deleted while it was being deployed.")
                before = snap.deployed_of(name)
                if before is not None and before.version != version:
                    before.status = "available"
                    before.deployed_at = None  # the entry says what is; the history keeps when it served
                target.status = "deployed"
                target.deployed_at = now
                target.quality_score = report.quality_score
                for other in snap.entries.values():  # a new primary ends the model's rollout
                    if model_key(other) == name and other.rollout:
                        ended.append((other.version, other.rollout.get("mode")))
                        other.rollout = None
                return before.version if before is not None and before.version != version else None

            ended: list[tuple[str, Any]] = []
            previous_version = self.registry.update(switch)
            # The registry is written: from here the new model serves. One reference swap.
            self.runtime.install(new_resident)
            self.end_live_rollout(name)  # type: ignore[attr-defined]
            for candidate, rollout_mode in ended:
                if candidate != version:  # a promotion ends its own rollout by serving
                    self.history.record("abort_rollout", version=candidate, outcome="ok", how="deploy",
                                        model_name=entry.model_name, mode=rollout_mode,
                                        detail=f"{rollout_mode} of {candidate} ended by the {event} of {version}")
            self._save_scorer(new_resident, entry)
            try:
                self.save_report(report)
            except ModelMcpError:
                log.warning("report_not_saved", version=version, exc_info=True)
            self.history.record(
                event, version=version, outcome="ok", mode=mode, previous=previous_version,
                **({"model_name": entry.model_name} if entry.model_name else {}),
                detail=f"{event} {version} (from {previous_version or 'nothing'}); "
                       f"load {outcome.load_ms or 0:.1f} ms, probe {outcome.probe_ms or 0:.1f} ms"
                       + (f". {extra_detail}" if extra_detail else ""),
            )
            progress(1, 1, "deployed")
            return DeployResult(
                deployed_version=version, previous_version=previous_version, load_ms=round(outcome.load_ms or 0, 3),
                probe_ms=None if outcome.probe_ms is None else round(outcome.probe_ms, 3),
                validation=report.summary(), rolled_back=event == "rollback", model_name=entry.model_name,
            )

    def _check_memory_budget(self, resident: ResidentModel) -> None:
        """MODEL_MCP_MAX_RESIDENT_MB: the resident models' summed estimate, this one replacing its
        model's current one, must fit; else ResourceLimitError and nothing changes."""
        limit_mb = self.settings.max_resident_mb
        if not limit_mb:
            return
        others = self.runtime.memory_in_use(except_model=resident.model_name)
        total = others + resident.memory_bytes
        if total > limit_mb * 1024 * 1024:
            raise ResourceLimitError(
                f"Deploying {resident.version} would make the resident models take about {total / 2**20:.1f} MB "
                f"({resident.memory_bytes / 2**20:.1f} MB for this one, {others / 2**20:.1f} MB for the other "
                f"models serving), over MODEL_MCP_MAX_RESIDENT_MB={limit_mb:g}. Nothing changed: roll back or "
                "retire another model, or raise the budget."
            )

    # --- predict -------------------------------------------------------------------------------
    def predict(self, *, rows: Any, version: str | None = None, model_name: str | None = None,
                exact_scores: bool = False, summary_only: bool = False,
                routing_key: str | None = None) -> dict[str, Any]:
        self._follow_registry()
        if version is not None and "@" in version:  # name@alias: the version it names must be serving
            snapshot, _ = self.read_registry_for_reading()
            version = resolve_alias(snapshot, version)
        if model_name is not None and self.runtime.resident_of(model_name) is None:
            snapshot, _ = self.read_registry_for_reading(copy=False)
            if not any(e.model_name == model_name for e in snapshot.entries.values()):
                serving = sorted(self.runtime.residents())
                raise NotFoundError(f"No model named {model_name!r} is registered"
                                    + (f"; deployed models: {', '.join(serving)}." if serving else "."))
        if routing_key is not None and (not isinstance(routing_key, str) or len(routing_key) > 256):
            raise InvalidInputError("`routing_key` must be a string of at most 256 characters.")
        return self.runtime.predict(rows, version=version, model_name=model_name, exact_scores=exact_scores,
                                    summary_only=summary_only, routing_key=routing_key)

    def readiness(self) -> Readiness:
        """Whether this process serves what is deployed (for /readyz and load balancers).

        Ready: every deployed model is resident, or nothing is deployed on purpose. Not ready: a
        deployed version is still loading at start, or that load failed (predict for that model
        would answer no_deployed_model although a version is deployed).
        """
        residents, loading, errors = self.runtime.residents(), self.runtime.loading_versions(), self.runtime.load_errors()
        if loading:
            version = next(iter(loading.values()))
            return Readiness(ready=False, state="loading", version=version,
                             detail=f"The deployed version {', '.join(loading.values())} is still loading.")
        if errors:
            error = next(iter(errors.values()))
            return Readiness(ready=False, state="load_failed", version=error["version"],
                             detail=f"The deployed version {error['version']} failed to load: {error['message']}")
        if residents:
            versions = sorted(r.version for r in residents.values())
            return Readiness(ready=True, state="serving", version=versions[0] if len(versions) == 1 else None,
                             detail=f"Version {', '.join(versions)} {'is' if len(versions) == 1 else 'are'} "
                                    "loaded and serve predict.")
        return Readiness(ready=True, state="nothing_deployed", version=None,
                         detail="No version is deployed; predict answers no_deployed_model until one is.")

    # --- performance -----------------------------------------------------------------------------
    def manifest_resources(self, version: str) -> Resources | None:
        """The manifest's resource limits of a registered version (None when it sets none)."""
        snapshot, _ = self.read_registry_for_reading()
        entry = snapshot.get(version)
        if entry is None:
            return None
        try:
            raw = (self.store.resolve_entry_path(entry.path) / "deployment_manifest.json").read_bytes()
            return parse_manifest(raw).resources
        except (OSError, ModelMcpError):
            return None

    def _scoring_figures(self, version: str) -> dict[str, Any]:
        """Which path scores `version` in this process, and this process's requests per path."""
        try:
            live = self.runtime.performance(version)
        except (NotFoundError, NoDeployedModelError):
            return _no_scoring_figures()
        return {key: live.get(key) for key in _no_scoring_figures()}

    def performance_report(self, *, version: str | None = None, model_name: str | None = None,
                           since: str | None = None, until: str | None = None, bucket_s: int = 60) -> PerformanceReport:
        """Figures since the version's deploy (or over since/until), from every process on the home."""
        snapshot, _ = self.read_registry_for_reading()
        target = self.resolve_version(version, snapshot, model_name=model_name)
        entry = snapshot.get(target)
        if entry is None and self.runtime.serving_version(target) is None:
            entry = self._entry_or_not_found(snapshot, target)
        figures = self._performance_figures(target, entry, since=since, until=until, bucket_s=bucket_s)  # type: ignore[attr-defined]
        figures.update(self._scoring_figures(target))
        alerts = operational_alerts(figures, self.manifest_resources(target))
        error = next((e for e in self.runtime.load_errors().values() if e["version"] == target), None)
        if error is not None:
            figures["load_error"] = error["message"]
            alerts.insert(0, load_failed_alert(target, error["message"]))
        return PerformanceReport(alerts=alerts, **figures)


def _no_scoring_figures() -> dict[str, Any]:
    return {"scoring_path": None, "scoring_crossover_rows": None, "scoring_layout": None,
            "requests_by_scoring_path": None}


def _event_model(event: dict[str, Any], snapshot: Snapshot | None) -> str | None:
    """The model a deployment event belongs to: recorded since several models serve, else looked up."""
    if "model_name" in event:
        return event["model_name"]
    entry = snapshot.get(event.get("version") or "") if snapshot is not None else None
    return model_key(entry) if entry is not None else None


def _recorded_model_sha256(entry: RegistryEntry) -> str | None:
    """The sha256 of model.joblib recorded at import, or None (an entry from before hashes were kept)."""
    recorded = (entry.files or {}).get("model.joblib")
    return recorded.sha256 if recorded is not None else None


def _empty_summary() -> ValidationSummary:
    return ValidationSummary(passed=True, quality_score=0.0, failed_checks=[], warning_checks=[])
