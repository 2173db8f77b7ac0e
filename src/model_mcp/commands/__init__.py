"""The operator commands: one per tool, calling the same ModelManager use cases, without MCP.

Each command declares its own flags (so `model-mcp COMMAND --help` shows only those), the use case it
calls, and how its answer reads on a terminal. Answers print human-readable by default and as the
tool's JSON with `--json`. Failures print one line on stderr and exit with a documented code
(docs/cli.md):

    0  done
    1  refused: the server's rules said no; stderr has `[code] sentence` (docs/errors.md)
    2  usage: an unknown command or flag, a missing or malformed argument
    3  an input file cannot be used: missing, a folder, not UTF-8, broken JSON, a CSV without header
    4  an unexpected failure (a bug); `--verbose` shows the details
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_mcp.commands import render
from model_mcp.commands.inputs import InputFileError, parse_labels, read_labels, read_rows
from model_mcp.commands.wording import for_the_shell
from model_mcp.terminal import printable

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
# rollout-report only: the verdict, for a CI job to branch on (promote is EXIT_OK).
EXIT_HOLD = 10
EXIT_REJECT = 11


class UsageError(Exception):
    """A command line that parses but cannot run as given (for example `delete` without `--yes`)."""


@dataclass(frozen=True)
class Command:
    name: str
    tool: str
    help: str
    call: Callable[[Any, argparse.Namespace], Any]
    render: render.Renderer
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    validates: bool = False  # runs validation: --enable-custom-script applies
    training: bool = False  # reads the training folder: --training-dir applies
    epilog: str = ""
    # What to add, at the shell, to a refusal with this code (the core's sentence is written for agents).
    hints: dict[str, str] = field(default_factory=dict)
    # The exit status of an answer (default EXIT_OK): rollout-report exits with its verdict.
    status: Callable[[Any], int] = lambda answer: EXIT_OK
    # False for a command over a use case that has no MCP tool (`tool` then names the REST endpoint).
    mcp: bool = True


def _version_arg(parser: argparse.ArgumentParser, *, optional: bool, what: str = "the version") -> None:
    if optional:
        parser.add_argument("version", nargs="?", help=f"{what} (default: the deployed version)")
    else:
        parser.add_argument("version", help=what)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# --- what each command adds and calls -------------------------------------------------------------
def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("zip", type=Path, metavar="ZIP", help="the package's .zip file")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", choices=["imported", "available", "deployed", "failed", "archived"],
                   help="only versions with this status")
    p.add_argument("--model-name", help="only versions of this model name")
    p.add_argument("--limit", type=_non_negative, help="at most this many versions")
    p.add_argument("--offset", type=_non_negative, default=0, help="skip this many versions first")
    p.add_argument("--query", help="words matched against model name, description, tags, feature names, versions")
    p.add_argument("--tag", help="only versions carrying this tag")
    p.add_argument("--min-quality", dest="min_quality_score", type=float, metavar="SCORE",
                   help="only versions whose quality score is at least SCORE")
    p.add_argument("--deployed-only", action="store_true", help="only the deployed version of each model")
    p.add_argument("--sort", choices=["created_at", "imported_at", "quality_score", "semantic_version"],
                   default="created_at", help="order, newest/highest/greatest first (default created_at)")


def _model_name_arg(p: argparse.ArgumentParser, what: str = "the model whose deployed version is meant") -> None:
    p.add_argument("--model-name", metavar="NAME", help=f"{what}; needed when several models are deployed")


def _rollout_start_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", help="the version to try beside its model's deployed version")
    p.add_argument("--mode", choices=["shadow", "canary"], required=True,
                   help="shadow: scores every call, answers none; canary: answers --traffic-percent of the calls")
    p.add_argument("--traffic-percent", dest="traffic_percent", type=_positive, metavar="N",
                   help="canary: the share of the model's calls it answers (1-99)")


def _rollout_model_args(p: argparse.ArgumentParser) -> None:
    _model_name_arg(p, "the model whose rollout is meant")


def _policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_name", metavar="MODEL", help="the model")


def _set_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_name", metavar="MODEL", help="the model")
    p.add_argument("--clear", action="store_true", help="remove the model's policy instead")
    p.add_argument("--min-compared-rows", type=_positive, metavar="N")
    p.add_argument("--min-agreement", type=float, metavar="SHARE")
    p.add_argument("--max-anomaly-rate-diff", type=float, metavar="SHARE")
    p.add_argument("--min-quality-score", type=float, metavar="SCORE")
    p.add_argument("--max-error-rate", type=float, metavar="SHARE")
    p.add_argument("--max-latency-p95-ms", type=float, metavar="MS")
    p.add_argument("--auto-promote", action="store_true", help="promote when the verdict is promote")
    p.add_argument("--auto-abort", action="store_true", help="abort when the verdict is reject")
    p.add_argument("--shadow-on-import", action="store_true", help="shadow each version the training watch imports")


_POLICY_FIELDS = ("min_compared_rows", "min_agreement", "max_anomaly_rate_diff", "min_quality_score", "max_error_rate",
                  "max_latency_p95_ms", "auto_promote", "auto_abort", "shadow_on_import")


def _set_policy(manager: Any, args: argparse.Namespace) -> Any:
    if args.clear:
        return manager.set_rollout_policy(model_name=args.model_name, clear=True)
    return manager.set_rollout_policy(model_name=args.model_name, **{f: getattr(args, f) for f in _POLICY_FIELDS})


def _verdict_status(answer: Any) -> int:
    return {"promote": EXIT_OK, "hold": EXIT_HOLD, "reject": EXIT_REJECT}.get(answer.get("verdict"), EXIT_OK)


def _alias_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_name", metavar="MODEL", help="the model name")
    p.add_argument("alias", metavar="ALIAS", help="the alias, such as champion or candidate")
    p.add_argument("version", metavar="VERSION", help="the version of that model the alias names")


def _unalias_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_name", metavar="MODEL", help="the model name")
    p.add_argument("alias", metavar="ALIAS", help="the alias to remove")


def _show_args(p: argparse.ArgumentParser) -> None:
    _version_arg(p, optional=True)
    p.add_argument("--details", action="store_true",
                   help="include the training feature profile and every deployment event")


def _validate_args(p: argparse.ArgumentParser) -> None:
    _version_arg(p, optional=True, what="the version to validate")
    p.add_argument("--shallow", action="store_true", help="do not load or probe the model")


def _rollback_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", dest="to_version", metavar="VERSION",
                   help="roll back to this version (default: the one deployed before the current one)")
    _model_name_arg(p, "the model to roll back")


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, type=Path, metavar="FILE",
                   help="rows.csv (a header row naming the features) or rows.json (a list of rows); - for stdin")
    p.add_argument("--model-version", metavar="VERSION", help="answer only if this version is deployed")
    _model_name_arg(p, "the model to predict with")


def _drift_args(p: argparse.ArgumentParser) -> None:
    _version_arg(p, optional=True)
    _model_name_arg(p)
    p.add_argument("--current", type=Path, metavar="FILE",
                   help="rows to judge (CSV with a header row, or JSON); default: this process's recent inputs")
    p.add_argument("--reference", type=Path, metavar="FILE",
                   help="rows to compare with; default: the training profile in metadata.json")
    p.add_argument("--window", type=_positive, metavar="N", help="use only the last N recent inputs")


def _feedback_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("request_id", metavar="REQUEST_ID", help="the request id a predict answered")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--labels", metavar="LIST", help="the true labels, one per row: --labels=-1,1,1")
    given.add_argument("--labels-file", type=Path, metavar="FILE",
                       help="the true labels: a JSON list, or one per line (-1 anomaly, 1 normal)")


def _scan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--import-latest", action="store_true", help="import the newest complete package")
    p.add_argument("--import", dest="import_versions", action="append", default=[], metavar="VERSION",
                   help="import the package giving this version (repeat for several)")


def _delete_args(p: argparse.ArgumentParser) -> None:
    _version_arg(p, optional=False, what="the version to delete (not the deployed one)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=["all", "deployments", "transfers"], default="all", help="which events")
    p.add_argument("--limit", type=_positive, default=50, help="at most this many events (default 50)")


def _accepts(method: str, argument: str) -> bool:
    """Whether this build's ModelManager use case takes `argument` (parts of the tool set land separately)."""
    import inspect

    from model_mcp.core.manager import ModelManager

    function = getattr(ModelManager, method, None)
    return function is not None and argument in inspect.signature(function).parameters


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The optional use-case arguments this command line declared and set."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _performance_args(p: argparse.ArgumentParser) -> None:
    _version_arg(p, optional=True)
    _model_name_arg(p)
    if _accepts("performance_report", "since"):
        p.add_argument("--since", metavar="TIME", help="figures from this moment (ISO-8601 UTC, such as "
                                                       "2026-12-03T08:00:00Z); default: the version's deploy")
        p.add_argument("--until", metavar="TIME", help="figures up to this moment (ISO-8601 UTC); default: now")
        p.add_argument("--bucket-s", dest="bucket_s", type=_positive, metavar="SECONDS",
                       help="width of the time series' buckets (default 60)")


def _predict_more_args(p: argparse.ArgumentParser) -> None:
    _predict_args(p)
    if _accepts("predict", "exact_scores"):
        p.add_argument("--exact-scores", dest="exact_scores", action="store_true", default=None,
                       help="scores with every digit (default: rounded to the digits that matter)")
        p.add_argument("--summary-only", dest="summary_only", action="store_true", default=None,
                       help="label counts, anomalous rows and score quantiles instead of one line per row")


def _alerts_args(p: argparse.ArgumentParser) -> None:
    _version_arg(p, optional=True, what="only this version's alerts")
    p.set_defaults(version=None)
    _model_name_arg(p, "only the alerts of this model's deployed version")
    p.add_argument("--active", dest="active_only", action="store_true", help="only alerts that still hold")
    p.add_argument("--severity", choices=["info", "warning", "critical"], help="only this severity")
    p.add_argument("--limit", type=_positive, default=100, help="at most this many alerts (default 100)")


def _rows_or_none(path: Path | None, flag: str) -> Any:
    return None if path is None else read_rows(path, flag)


def _labels(args: argparse.Namespace) -> list[int]:
    return parse_labels(args.labels) if args.labels is not None else read_labels(args.labels_file)


def _confirm_delete(args: argparse.Namespace) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"deleting {args.version} cannot be undone; add --yes to confirm (asked only at a terminal).")
    sys.stderr.write(f"Delete version {printable(args.version)} and its files? This cannot be undone. [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise UsageError("delete cancelled; nothing changed.")


def _delete(manager: Any, args: argparse.Namespace) -> Any:
    _confirm_delete(args)
    return manager.delete_model(version=args.version)


COMMANDS: list[Command] = [
    Command("import", "import_zip", "import a package ZIP (validated, registered, not deployed)",
            lambda m, a: m.import_zip(path=str(a.zip)), render.imported, _import_args, validates=True),
    Command("list", "list_models", "list registered versions, newest first",
            lambda m, a: m.list_models(status=a.status, model_name=a.model_name, limit=a.limit, offset=a.offset,
                                       query=a.query, tag=a.tag, min_quality_score=a.min_quality_score,
                                       deployed_only=a.deployed_only, sort=a.sort),
            render.listed, _list_args),
    Command("show", "get_model", "one version: metadata, files, validation, deployments",
            lambda m, a: m.get_model(version=a.version, details=a.details), render.shown, _show_args),
    Command("validate", "validate", "run every validation check on a version and save the report",
            lambda m, a: m.validate(version=a.version, deep=not a.shallow), render.validated, _validate_args,
            validates=True),
    Command("deploy", "deploy", "validate a version, then make it the one that serves predict",
            lambda m, a: m.deploy(version=a.version), render.deployed,
            lambda p: _version_arg(p, optional=False, what="the version to deploy"), validates=True),
    Command("rollback", "rollback", "go back to the previously deployed version",
            lambda m, a: m.rollback(to_version=a.to_version, model_name=a.model_name), render.deployed,
            _rollback_args, validates=True),
    Command("rollout-start", "deploy", "start a shadow or canary of a version beside its model's deployed one",
            lambda m, a: m.deploy(version=a.version, mode=a.mode, traffic_percent=a.traffic_percent),
            render.deployed, _rollout_start_args, validates=True),
    Command("rollout-report", "rollout_report", "compare a rollout with its primary; exits 0 promote, 10 hold, 11 reject",
            lambda m, a: m.rollout_report(model_name=a.model_name), render.rollout, _rollout_model_args,
            status=_verdict_status,
            epilog="Exit status: 0 when the verdict is promote, 10 hold, 11 reject (1-4 as for every command)."),
    Command("promote", "promote", "make a model's shadow or canary its deployed version (validated again)",
            lambda m, a: m.promote(model_name=a.model_name), render.deployed, _rollout_model_args, validates=True),
    Command("abort-rollout", "abort_rollout", "end a model's rollout; its deployed version serves alone",
            lambda m, a: m.abort_rollout(model_name=a.model_name), render.deployed, _rollout_model_args),
    Command("rollout-policy", "get_rollout_policy", "show a model's rollout policy (or that it has none)",
            lambda m, a: m.get_rollout_policy(model_name=a.model_name), render.policy, _policy_args),
    Command("set-rollout-policy", "set_rollout_policy",
            "store a model's rollout policy (unset thresholds take the defaults), or remove it with --clear",
            _set_policy, render.policy, _set_policy_args),
    Command("set-alias", "set_alias", "point a model's alias (champion, candidate...) at one of its versions",
            lambda m, a: m.set_alias(model_name=a.model_name, alias=a.alias, version=a.version), render.aliased,
            _alias_args),
    Command("delete-alias", "delete_alias", "remove a model's alias",
            lambda m, a: m.delete_alias(model_name=a.model_name, alias=a.alias), render.aliased, _unalias_args),
    Command("predict", "predict", "score rows with the deployed version",
            lambda m, a: m.predict(rows=read_rows(a.input, "--input"), version=a.model_version, model_name=a.model_name,
                                   **_given(a, "exact_scores", "summary_only")),
            render.predicted, _predict_more_args),
    Command("performance", "performance_report", "serving figures of a version: requests, errors, latency, alerts",
            lambda m, a: m.performance_report(version=a.version, model_name=a.model_name,
                                              **_given(a, "since", "until", "bucket_s")),
            render.performance, _performance_args),
    Command("drift", "drift_report", "compare inputs with the training data: feature, prediction, performance drift",
            lambda m, a: m.drift_report(version=a.version, model_name=a.model_name, current=_rows_or_none(a.current, "--current"),
                                        reference=_rows_or_none(a.reference, "--reference"), window=a.window),
            render.drift, _drift_args,
            epilog="From the shell, give --current: recent inputs live in the memory of the process that "
                   "served them, and this command runs in its own process."),
    Command("feedback", "record_feedback", "record the true labels of an earlier predict call",
            lambda m, a: m.record_feedback(request_id=a.request_id, labels=_labels(a)), render.feedback,
            _feedback_args,
            epilog="Request ids live in the memory of the process that answered the predict: use this "
                   "command against requests of the same process (for example a server's).",
            hints={"not_found": "Request ids live in the memory of the process that answered the predict, and "
                                "each model-mcp command runs in its own process; give labels through the server "
                                "that answered (the record_feedback tool)."}),
    Command("scan", "scan_training_service", "list (and import) packages in the training service's folder",
            lambda m, a: m.scan_training_service(import_latest=a.import_latest, import_versions=a.import_versions),
            render.scanned, _scan_args, validates=True, training=True),
    Command("discover", "discover_models", "register package folders placed by hand under models/",
            lambda m, a: m.discover_models(), render.discovered, validates=True),
    Command("delete", "delete_model", "remove a version that is not deployed (cannot be undone)",
            _delete, render.deleted, _delete_args),
    Command("history", "get_history", "the audit trail, newest first",
            lambda m, a: m.get_history(kind=a.kind, limit=a.limit), render.history, _history_args),
]
# No MCP tool (the tool listing's size budget is spent): the REST endpoint and models://replicas.
REPLICAS = Command("replicas", "GET /api/v1/replicas",
                   "the servers on this database: up or missing, what each serves, current or behind",
                   lambda m, a: m.replicas(), render.replicas, mcp=False,
                   epilog="Servers write a heartbeat every MODEL_MCP_REPLICA_HEARTBEAT_S seconds on PostgreSQL "
                          "(MODEL_MCP_DATABASE_URL); on a home's registry.json there is nothing to list. "
                          "docs/operations.md, PostgreSQL: replicas.")
COMMANDS.append(REPLICAS)
# get_alerts belongs to the monitoring store; its command exists when this build has the tool.
ALERTS = Command("alerts", "get_alerts", "alerts with memory: what was raised, when, how often, whether it holds",
                 lambda m, a: m.get_alerts(version=a.version, model_name=a.model_name, active_only=a.active_only, severity=a.severity,
                                           limit=a.limit),
                 render.alerts, _alerts_args)


def _available_commands() -> list[Command]:
    from model_mcp.core.manager import ModelManager

    return COMMANDS + ([ALERTS] if hasattr(ModelManager, "get_alerts") else [])


BY_NAME = {command.name: command for command in [*COMMANDS, ALERTS]}


def _store_flags(parser: argparse.ArgumentParser, command: Command) -> None:
    group = parser.add_argument_group("store and output")
    group.add_argument("--home", type=Path, metavar="DIR",
                       help="the store folder (default: $MODEL_MCP_HOME, else $XDG_DATA_HOME/model-mcp)")
    if command.training:
        group.add_argument("--training-dir", type=Path, metavar="DIR",
                           help="the training service's folder (default: $MODEL_MCP_TRAINING_DIR)")
    if command.validates:
        group.add_argument("--enable-custom-script", action="store_true", default=None,
                           help="run packages' validate_model.py (in a limited subprocess) during validation")
    group.add_argument("--json", action="store_true", help="print the answer as JSON (for scripts)")
    group.add_argument("--verbose", "-v", action="store_true", help="show the server's info logs on stderr")
    group.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                       help="log level on stderr (default WARNING; --verbose means INFO)")


def register(commands: argparse._SubParsersAction) -> None:
    """Add every operator command, each with only its own flags."""
    for command in _available_commands():
        source = f"the `{command.tool}` tool" if command.mcp else f"as {command.tool} answers; no MCP tool"
        parser = commands.add_parser(command.name, help=command.help, description=command.help[:1].upper()
                                     + command.help[1:] + f" ({source}).", epilog=command.epilog,
                                     allow_abbrev=False)
        command.arguments(parser)
        _store_flags(parser, command)


def log_level(args: argparse.Namespace, env: dict[str, str]) -> str:
    """Operator commands keep info logs off the terminal unless asked for."""
    if getattr(args, "log_level", None):
        return args.log_level
    if getattr(args, "verbose", False):
        return "INFO"
    return env.get("MODEL_MCP_LOG_LEVEL") or "WARNING"


# --- running ----------------------------------------------------------------------------------------
def _as_data(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _fail(args: argparse.Namespace, line: str, *, code: str, extra: list[str] | None = None,
          data: dict[str, Any] | None = None) -> None:
    sys.stderr.write(printable(line) + "\n")
    for more in extra or []:
        sys.stderr.write(more + "\n")
    if getattr(args, "json", False):
        error: dict[str, Any] = {"code": code, "message": line}
        if data:
            error.update(data)
        sys.stdout.write(json.dumps({"error": error}, indent=2, default=str) + "\n")


def _report_lines(report: dict[str, Any] | None) -> list[str]:
    if not isinstance(report, dict):
        return []
    return [f"  {printable(c.get('status'))}  {printable(c.get('name'))}: {for_the_shell(printable(c.get('detail')))}"
            for c in report.get("checks", []) if c.get("status") == "fail"]


def run(args: argparse.Namespace, settings: Any, manager: Any = None) -> int:
    """Run one operator command against a ModelManager over the settings' home.

    `manager` lets one process run several commands over the same in-memory state (the recent
    inputs and request ids); `main` always builds a fresh one.
    """
    from model_mcp.core.errors import ModelMcpError
    from model_mcp.core.manager import ModelManager
    from model_mcp.logs import get_logger

    command = BY_NAME[args.command]
    prefix = f"model-mcp {command.name}"
    owned = manager is None
    try:
        if manager is None:
            manager = ModelManager(settings)
            manager.start()
        try:
            answer = _as_data(command.call(manager, args))
        finally:
            if owned and hasattr(manager, "close"):
                manager.close()  # writes what this run recorded (serving figures) before the process ends
    except ModelMcpError as exc:
        report = exc.data.get("report") if exc.data else None
        extra = _report_lines(report)
        if exc.code in command.hints:
            extra.append(command.hints[exc.code])
        _fail(args, f"[{exc.code}] {for_the_shell(str(exc))}", code=exc.code, extra=extra,
              data={"report": report} if report else None)
        return EXIT_REFUSED
    except InputFileError as exc:
        _fail(args, f"{prefix}: {exc}", code="input_file")
        return EXIT_INPUT
    except UsageError as exc:
        _fail(args, f"{prefix}: {exc}", code="usage")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"{prefix}: interrupted.\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        verbose = log_level(args, dict(os.environ)) in ("DEBUG", "INFO")
        if verbose:  # the traceback only when asked for
            get_logger(__name__).error("cli_internal_error", command=command.name, exc_info=exc)
        hint = "; the log above has the details" if verbose else "; run again with --verbose for details"
        _fail(args, f"{prefix}: failed unexpectedly ({type(exc).__name__}){hint}.", code="internal_error")
        return EXIT_INTERNAL
    if args.json:
        sys.stdout.write(json.dumps(answer, indent=2, default=str) + "\n")
    else:
        sys.stdout.write("\n".join(command.render(answer)) + "\n")
    return command.status(answer)
