"""Serving use cases: the resident model, deploy and rollback, predict, performance figures."""

from __future__ import annotations

import threading
import time
from typing import Any

from model_mcp.core.errors import (
    InvalidStateError,
    ModelMcpError,
    NoDeployedModelError,
    NoRollbackTargetError,
    NotFoundError,
    ValidationFailedError,
)
from model_mcp.core.alerts import load_failed_alert, operational_alerts
from model_mcp.core.registry import Snapshot
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
from model_mcp.core.usecases.base import Progress, UseCaseBase, _no_progress
from model_mcp.core.validation import validate_package
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
        deployed = snapshot.deployed
        if deployed is None:
            return None
        self.runtime.begin_loading(deployed.version)
        self._full_load_release = threading.Event()
        thread = threading.Thread(target=self._load_into_runtime, args=(deployed,), name="load-deployed",
                                  daemon=True)
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
            self.runtime.load_failed(entry.version, f"[{exc.code}] {exc}")
        except Exception as exc:  # a start load must never take the server down
            log.error("deployed_load_crashed", version=entry.version, exc_info=exc)
            self.runtime.load_failed(entry.version, "[internal_error] the model could not be loaded")
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
            model_path = self.store.resolve_entry_path(entry.path) / "model.joblib"
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
                                        deployed_at=entry.deployed_at)
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

        root = self.store.resolve_entry_path(entry.path)
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
                                    deployed_at=entry.deployed_at)

    def _follow_registry(self) -> None:
        """Serve what the registry says is deployed, also when another process deployed it.

        One stat of registry.json per predict (the registry read is cached by its stat); only when
        the deployed version differs from the resident one is anything loaded.
        """
        if self.runtime.loading is not None or self._switch_lock.locked():
            return  # a load or a switch in this process is under way; it installs the right model
        try:
            deployed_version = self.registry.deployed_version()
        except ModelMcpError:
            return  # damaged registry: keep serving what is resident
        current = self.runtime.current
        if deployed_version is None or (current is not None and current.version == deployed_version):
            return
        error = self.runtime.load_error
        if error is not None and error["version"] == deployed_version:
            return  # already failed to load; list_models and performance_report say why
        with self._follow_lock:
            current = self.runtime.current
            deployed = self.registry.read().deployed
            if deployed is None or (current is not None and current.version == deployed.version):
                return
            log.info("following_registry", deployed=deployed.version,
                     resident=current.version if current else None)
            self._load_into_runtime(deployed)

    # --- deploy and rollback -------------------------------------------------------------------
    def deploy(self, *, version: str, progress: Progress | None = None) -> DeployResult:
        self._require_writable("deploy")
        with self._audit_failure("deploy", version=version if isinstance(version, str) else None, mode="explicit"):
            return self._switch_to(version, event="deploy", mode="explicit", progress=progress or _no_progress)

    def rollback(self, *, to_version: str | None = None, progress: Progress | None = None) -> DeployResult:
        self._require_writable("rollback")
        with self._audit_failure("rollback", version=to_version if isinstance(to_version, str) else None,
                                 mode="explicit" if to_version else "auto"):
            return self._rollback(to_version=to_version, progress=progress)

    def _rollback(self, *, to_version: str | None, progress: Progress | None) -> DeployResult:
        snapshot = self.read_registry()
        current = snapshot.deployed
        if to_version is None:
            target = self._rollback_target(snapshot)
            mode = "auto"
        else:
            target = self._entry_or_not_found(snapshot, to_version).version
            if current is not None and current.version == target:
                raise InvalidStateError(f"Version {target} is already deployed; there is nothing to roll back.")
            mode = "explicit"
        return self._switch_to(target, event="rollback", mode=mode, progress=progress or _no_progress)

    def deployment_stack(self) -> list[str]:
        """The versions that served, oldest first, as deploys and rollbacks left them.

        Replaying the audit trail: a deploy (or a rollback to a named version) pushes its version;
        a rollback without a target pops the current one. So repeated rollbacks walk back through
        the deployment history: deploy A, B, C; rollback -> B; rollback -> A.
        """
        stack: list[str] = []
        for event in reversed(self.history.events(kind="deployments", limit=None)):
            if event.get("outcome") != "ok":
                continue
            version = event.get("version")
            if event.get("event") == "rollback" and event.get("mode") == "auto":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != version:
                    stack.append(version)
            elif not stack or stack[-1] != version:
                stack.append(version)
        return stack

    def _rollback_target(self, snapshot: Snapshot) -> str:
        current = snapshot.deployed
        if current is None:
            raise NoRollbackTargetError("Nothing is deployed, so there is nothing to roll back from.")
        stack = self.deployment_stack()
        while stack and stack[-1] == current.version:
            stack.pop()
        for version in reversed(stack):
            entry = snapshot.get(version)
            if entry is not None and entry.status in ("available", "imported") and version != current.version:
                return version
        raise NoRollbackTargetError(
            f"No earlier deployment of another registered, deployable version precedes {current.version}; "
            "name one with to_version."
        )

    def _switch_to(self, version: str, *, event: str, mode: str, progress: Progress) -> DeployResult:
        with self._switch_lock:
            snapshot = self.read_registry()
            entry = self._entry_or_not_found(snapshot, version)
            previous = snapshot.deployed
            resident = self.runtime.current
            if entry.status == "deployed" and resident is not None and resident.version == version:
                report = self.load_report(version)
                return DeployResult(
                    deployed_version=version, previous_version=None, load_ms=0.0, probe_ms=0.0,
                    validation=report.summary() if report else _empty_summary(), already_deployed=True,
                )
            if entry.status in ("failed", "archived"):
                raise InvalidStateError(
                    f"Version {version} is {entry.status} and cannot be deployed; "
                    + ("validate it again once fixed." if entry.status == "failed" else "import it again.")
                )
            progress(0, None, "validating before deploy")
            root = self.store.resolve_entry_path(entry.path)
            outcome = validate_package(root, version=version, settings=self.settings, deep=True,
                                       recorded=entry.files)
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
            )

            def switch(snap: Snapshot) -> str | None:
                target = snap.entries.get(version)
                if target is None:
                    raise NotFoundError(f"Version {version} was deleted while it was being deployed.")
                before = snap.deployed
                if before is not None and before.version != version:
                    before.status = "available"
                    before.deployed_at = None  # the entry says what is; the history keeps when it served
                target.status = "deployed"
                target.deployed_at = now
                target.quality_score = report.quality_score
                return before.version if before is not None and before.version != version else None

            previous_version = self.registry.update(switch)
            # The registry is written: from here the new model serves. One reference swap.
            self.runtime.install(new_resident)
            self._save_scorer(new_resident, entry)
            try:
                self.save_report(report)
            except ModelMcpError:
                log.warning("report_not_saved", version=version, exc_info=True)
            self.history.record(
                event, version=version, outcome="ok", mode=mode, previous=previous_version,
                detail=f"{event} {version} (from {previous_version or 'nothing'}); "
                       f"load {outcome.load_ms or 0:.1f} ms, probe {outcome.probe_ms or 0:.1f} ms",
            )
            progress(1, 1, "deployed")
            return DeployResult(
                deployed_version=version, previous_version=previous_version, load_ms=round(outcome.load_ms or 0, 3),
                probe_ms=None if outcome.probe_ms is None else round(outcome.probe_ms, 3),
                validation=report.summary(), rolled_back=event == "rollback",
            )

    # --- predict -------------------------------------------------------------------------------
    def predict(self, *, rows: Any, version: str | None = None, exact_scores: bool = False,
                summary_only: bool = False) -> dict[str, Any]:
        self._follow_registry()
        if self.runtime.current is None and self.runtime.loading is None:
            error = self.runtime.load_error
            if error is not None:
                raise NoDeployedModelError(
                    f"The deployed version {error['version']} could not be loaded ({error['message']}); "
                    "deploy a version that validates."
                )
        return self.runtime.predict(rows, version=version, exact_scores=exact_scores, summary_only=summary_only)

    def readiness(self) -> Readiness:
        """Whether this process serves what is deployed (for /readyz and load balancers).

        Ready: a model is resident, or nothing is deployed on purpose. Not ready: the deployed
        version is still loading at start, or that load failed (predict would answer
        no_deployed_model although a version is deployed).
        """
        current, loading, error = self.runtime.current, self.runtime.loading, self.runtime.load_error
        if current is not None:
            return Readiness(ready=True, state="serving", version=current.version,
                             detail=f"Version {current.version} is loaded and serves predict.")
        if loading is not None:
            return Readiness(ready=False, state="loading", version=loading,
                             detail=f"The deployed version {loading} is still loading.")
        if error is not None:
            return Readiness(ready=False, state="load_failed", version=error["version"],
                             detail=f"The deployed version {error['version']} failed to load: {error['message']}")
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

    def performance_report(self, *, version: str | None = None, since: str | None = None, until: str | None = None,
                           bucket_s: int = 60) -> PerformanceReport:
        """Figures since the version's deploy (or over since/until), from every process on the home."""
        snapshot, _ = self.read_registry_for_reading()
        target = self.resolve_version(version, snapshot)
        entry = snapshot.get(target)
        if entry is None and not (self.runtime.current is not None and self.runtime.current.version == target):
            entry = self._entry_or_not_found(snapshot, target)
        figures = self._performance_figures(target, entry, since=since, until=until, bucket_s=bucket_s)  # type: ignore[attr-defined]
        figures.update(self._scoring_figures(target))
        alerts = operational_alerts(figures, self.manifest_resources(target))
        error = self.runtime.load_error
        if error is not None and error["version"] == target:
            figures["load_error"] = error["message"]
            alerts.insert(0, load_failed_alert(target, error["message"]))
        return PerformanceReport(alerts=alerts, **figures)


def _no_scoring_figures() -> dict[str, Any]:
    return {"scoring_path": None, "scoring_crossover_rows": None, "requests_by_scoring_path": None}


def _recorded_model_sha256(entry: RegistryEntry) -> str | None:
    """The sha256 of model.joblib recorded at import, or None (an entry from before hashes were kept)."""
    recorded = (entry.files or {}).get("model.joblib")
    return recorded.sha256 if recorded is not None else None


def _empty_summary() -> ValidationSummary:
    return ValidationSummary(passed=True, quality_score=0.0, failed_checks=[], warning_checks=[])
