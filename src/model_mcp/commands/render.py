"""Human-readable answers for the terminal, one function per command.

Each takes the answer as plain JSON data (the tool's structured content) and returns lines. Fields
added later are ignored here and still reach `--json`. Every value that may come from a package
(names, metadata, details quoting them) passes through `printable`, so a hostile package cannot send
escape sequences to the operator's terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from model_mcp.commands.wording import for_the_shell
from model_mcp.terminal import printable

MAX_ROWS_SHOWN = 50


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return printable(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, max_width: int = 60) -> list[str]:
    cells = [[_text(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines


def pairs(items: Sequence[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in items)
    return [f"{k + ':':<{width + 1}} {_text(v)}" for k, v in items]


def bullets(title: str, items: Sequence[Any]) -> list[str]:
    return [f"{title}:", *(f"  - {for_the_shell(_text(item))}" for item in items)] if items else []


def _validation(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "not validated"
    verdict = "passed" if summary.get("passed") else "failed"
    text = f"{verdict}, quality {summary.get('quality_score', 0):.0f}/100"
    if summary.get("failed_checks"):
        text += "; failed: " + ", ".join(printable(c) for c in summary["failed_checks"])
    if summary.get("warning_checks"):
        text += "; warnings: " + ", ".join(printable(c) for c in summary["warning_checks"])
    return text


def _alerts(alerts: Sequence[dict[str, Any]]) -> list[str]:
    if not alerts:
        return ["Alerts: none."]
    lines = ["Alerts:"]
    for alert in alerts:
        lines.append(f"  [{_text(alert.get('severity'))}] {_text(alert.get('kind'))}: "
                     f"{for_the_shell(_text(alert.get('message')))}")
    return lines


# --- one function per command -------------------------------------------------------------------------
def imported(a: dict[str, Any]) -> list[str]:
    if a.get("already_present"):
        head = f"Already present: {_text(a['version'])} ({_text(a.get('model_name'))}) is {_text(a.get('status'))}; " \
               "nothing changed."
    else:
        head = f"Imported {_text(a['version'])} ({_text(a.get('model_name'))}): {_text(a.get('status'))}."
    lines = [head, f"Validation: {_validation(a.get('validation'))}"]
    lines += bullets("Warnings", a.get("warnings", []))
    if a.get("status") == "available" and not a.get("already_present"):
        lines.append(f"Next: model-mcp deploy {_text(a['version'])}")
    return lines


def listed(a: dict[str, Any]) -> list[str]:
    models = a.get("models", [])
    if not models:
        lines = ["No versions registered (import one with `model-mcp import ZIP`)."] if not a.get("total") else \
            [f"No entries on this page ({a['total']} match)."]
    else:
        rows = [("*" if m.get("status") == "deployed" else "", m.get("version"), m.get("model_name"), m.get("status"),
                 m.get("semantic_version") or "", ",".join(m.get("aliases") or []), m.get("created_at"),
                 m.get("source"), m.get("quality_score")) for m in models]
        lines = table(["", "version", "model", "status", "semver", "aliases", "created_at", "source", "quality"],
                      rows)
        deployed = a.get("deployed_versions") or {}
        shown = ", ".join(f"{_text(name)} {_text(v)}" for name, v in deployed.items()) if len(deployed) > 1 else \
            _text(a.get("deployed_version"))
        lines.append(f"{len(models)} of {a.get('total', len(models))} versions; deployed: {shown}")
    if a.get("deployed_load_error"):
        lines.append(f"The deployed version did not load: {_text(a['deployed_load_error'])}")
    if a.get("registry_problem"):
        lines.append(f"registry.json is damaged; showing the last good copy: {_text(a['registry_problem'])}")
    lines += [f"Warning: {_text(w)}" for w in a.get("warnings") or []]
    return lines


def rollout(a: dict[str, Any]) -> list[str]:
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f} %"

    def ms(side: str, key: str) -> str:
        value = (a.get(key) or {}).get(side)
        return "-" if value is None else f"{value:.2f}"

    lines = [f"{_text(a.get('mode'))} of {_text(a.get('candidate_version'))} beside {_text(a.get('primary_version'))} "
             f"({_text(a.get('model_name'))}) since {_text(a.get('started_at'))}"
             + (f", {a['traffic_percent']} % of calls" if a.get("traffic_percent") else ""),
             f"verdict: {_text(a.get('verdict')).upper()}"]
    lines += [f"  - {_text(reason)}" for reason in a.get("reasons") or []]
    rows = [("rows", a.get("rows"), ""), ("label agreement", pct(a.get("label_agreement")), ""),
            ("anomaly rate", pct(a.get("anomaly_rate_primary")), pct(a.get("anomaly_rate_candidate"))),
            ("latency p50 ms", ms("primary", "latency_p50_ms"), ms("candidate", "latency_p50_ms")),
            ("latency p95 ms", ms("primary", "latency_p95_ms"), ms("candidate", "latency_p95_ms")),
            ("error rate", pct((a.get("error_rate") or {}).get("primary")), pct((a.get("error_rate") or {}).get("candidate"))),
            ("dataset drift", (a.get("dataset_drift") or {}).get("primary"), (a.get("dataset_drift") or {}).get("candidate"))]
    lines += table(["", "primary", "candidate"], rows)
    if a.get("anomaly_rate_p_value") is not None:
        lines.append(f"anomaly rates differ with p = {a['anomaly_rate_p_value']:.3g} (two-proportion test)")
    if a.get("score_rank_correlation") is not None:
        lines.append(f"score rank correlation (Spearman): {a['score_rank_correlation']:.4f}")
    if a.get("dropped_rows"):
        lines.append(f"{a['dropped_rows']} rows were dropped by the shadow's full queue")
    return lines


def policy(a: dict[str, Any]) -> list[str]:
    stored = a.get("policy")
    if stored is None:
        return [f"{_text(a.get('model_name'))} has no rollout policy: rollout-report judges with the defaults and "
                "nothing happens automatically."] + [f"  {k}: {_text(v)}" for k, v in (a.get("defaults") or {}).items()]
    return [f"Rollout policy of {_text(a.get('model_name'))}:"] + [f"  {k}: {_text(v)}" for k, v in stored.items()]


def aliased(a: dict[str, Any]) -> list[str]:
    name, alias = _text(a.get("model_name")), _text(a.get("alias"))
    if a.get("version") is None:
        return [f"Removed {name}@{alias} (it named {_text(a.get('previous_version'))})."]
    before = a.get("previous_version")
    moved = f" (moved from {_text(before)})" if before and before != a.get("version") else ""
    return [f"{name}@{alias} now names {_text(a.get('version'))}{moved}."]


def shown(a: dict[str, Any]) -> list[str]:
    entry = a.get("entry", {})
    metadata = a.get("metadata") or {}
    lines = pairs([
        ("version", entry.get("version")), ("model", entry.get("model_name")), ("status", entry.get("status")),
        ("model type", metadata.get("model_type", entry.get("model_type"))),
        ("created_at", entry.get("created_at")), ("imported_at", entry.get("imported_at")),
        ("deployed_at", entry.get("deployed_at")), ("source", entry.get("source")), ("path", entry.get("path")),
        ("features", ", ".join(printable(f) for f in metadata.get("feature_names", []) or []) or None),
        ("validation", _validation(a.get("validation"))),
    ])
    metrics = metadata.get("evaluation_metrics")
    if isinstance(metrics, dict) and metrics:
        lines.append("metrics:    " + ", ".join(f"{printable(k)} {_text(v)}" for k, v in metrics.items()))
    files = a.get("files") or {}
    if files:
        lines += ["", *table(["file", "size", "sha256"],
                             [(name, info.get("size"), info.get("sha256")) for name, info in files.items()],
                             max_width=64)]
    deployments = a.get("deployments") or []
    if deployments:
        lines += ["", "Deployments:", *table(["at", "event", "outcome"],
                                             [(d.get("at"), d.get("event"), d.get("outcome")) for d in deployments])]
    return lines


def validated(a: dict[str, Any]) -> list[str]:
    verdict = "passed" if a.get("passed") else "FAILED"
    lines = [f"{_text(a.get('version'))}: validation {verdict}, quality {a.get('quality_score', 0):.0f}/100"
             f"{'' if a.get('deep', True) else ' (shallow: the model was not loaded)'}."]
    lines += table(["check", "status", "detail"],
                   [(c.get("name"), c.get("status"), c.get("detail")) for c in a.get("checks", [])], max_width=100)
    lines += bullets("Recommendations", a.get("recommendations", []))
    lines += bullets("Risks", a.get("risks", []))
    return lines


def deployed(a: dict[str, Any]) -> list[str]:
    if a.get("mode") in ("shadow", "canary"):
        share = f" on {a['traffic_percent']} % of calls" if a.get("traffic_percent") else " on every call"
        return [f"{'Already running' if a.get('already_deployed') else 'Started'}: a {a['mode']} of "
                f"{_text(a['deployed_version'])}{share}.", f"Validation: {_validation(a.get('validation'))}"]
    if a.get("already_deployed"):
        return [f"{_text(a['deployed_version'])} is already deployed; nothing changed."]
    verb = "Rolled back to" if a.get("rolled_back") else "Deployed"
    probe = f", probe {a['probe_ms']:.0f} ms" if a.get("probe_ms") is not None else ""
    return [f"{verb} {_text(a['deployed_version'])} (previous: {_text(a.get('previous_version'))}); "
            f"load {a.get('load_ms', 0):.0f} ms{probe}.",
            f"Validation: {_validation(a.get('validation'))}"]


def _score(value: Any) -> str:
    """A score as the answer gives it: 6 significant digits by default, every digit with --exact-scores."""
    return repr(value) if isinstance(value, float) else _text(value)


def predicted(a: dict[str, Any]) -> list[str]:
    summary = a.get("summary")
    if isinstance(summary, dict):
        lines = [f"{a.get('n_rows')} rows, {_text(a.get('anomaly_count'))} anomalies, answered by "
                 f"{_text(a.get('model_version'))} in {a.get('latency_ms', 0):.1f} ms; request {_text(a.get('request_id'))}"]
        counts = summary.get("label_counts") or {}
        lines.append("labels: " + ", ".join(f"{printable(k)}: {v}" for k, v in counts.items()))
        indices = summary.get("anomaly_indices")
        if indices:
            shown = ", ".join(str(i) for i in indices[:MAX_ROWS_SHOWN])
            lines.append(f"anomalous rows: {shown}{' ...' if len(indices) > MAX_ROWS_SHOWN else ''}")
        quantiles = summary.get("score_quantiles")
        if isinstance(quantiles, dict):
            lines.append("scores: " + ", ".join(f"{printable(k)} {_score(v)}" for k, v in quantiles.items()))
        return lines
    labels = a.get("labels") or []
    scores = [_score(s) for s in a["scores"]] if a.get("scores") else [None] * len(labels)
    flags = a.get("is_anomaly") or [None] * len(labels)
    rows = [(i, labels[i], scores[i], flags[i]) for i in range(min(len(labels), MAX_ROWS_SHOWN))]
    lines = table(["row", "label", "score", "anomaly"], rows) if rows else []
    if len(labels) > MAX_ROWS_SHOWN:
        lines.append(f"... {len(labels) - MAX_ROWS_SHOWN} more rows (--json prints them all)")
    lines.append(f"{a.get('n_rows', len(labels))} rows, {_text(a.get('anomaly_count'))} anomalies, answered by "
                 f"{_text(a.get('model_version'))} in {a.get('latency_ms', 0):.1f} ms; request {_text(a.get('request_id'))}")
    return lines


def performance(a: dict[str, Any]) -> list[str]:
    latency = a.get("latency_ms") or {}
    lines = pairs([
        ("version", a.get("version")), ("serving", a.get("serving")), ("deployed_at", a.get("deployed_at")),
        ("requests", a.get("n_requests")), ("rows", a.get("n_rows")), ("errors", a.get("n_errors")),
        ("error rate", a.get("error_rate")),
        ("latency ms", f"p50 {_text(latency.get('p50'))}, p95 {_text(latency.get('p95'))}, "
                       f"p99 {_text(latency.get('p99'))}"),
        ("rows/s", a.get("throughput_rows_per_s")), ("anomaly rate", a.get("anomaly_rate")),
        ("model file bytes", a.get("model_file_bytes")), ("memory bytes", a.get("memory_bytes")),
    ])
    if a.get("covers"):
        lines.append(f"Covers: {_text(a['covers'])}")
    if a.get("series"):
        lines.append(f"Series: {len(a['series'])} buckets of {_text(a.get('bucket_s'))} s (--json prints them)")
    if a.get("processes"):
        lines.append("Processes: " + ", ".join(f"{_text(p.get('pid'))}@{_text(p.get('host'))}"
                                               for p in a["processes"]))
    return lines + _alerts(a.get("alerts", []))


def drift(a: dict[str, Any]) -> list[str]:
    lines = [f"{_text(a.get('version'))}: current {_text(a.get('current_source'))} ({a.get('n_current')} rows) vs "
             f"reference {_text(a.get('reference_source'))} ({a.get('n_reference')} rows)."]
    lines += table(["feature", "test", "statistic", "p_value", "drift_score", "drifted"],
                   [(f.get("feature"), f.get("test"), f.get("statistic"), f.get("p_value"), f.get("drift_score"),
                     f.get("drifted")) for f in a.get("features", [])])
    verdict = "DRIFT" if a.get("dataset_drift") else "no dataset drift"
    lines.append(f"Dataset: {verdict}; {len(a.get('drifted_features', []))} features drifted "
                 f"(share {a.get('share_drifted', 0):.2f}).")
    for key, title in (("prediction_drift", "Predictions"), ("performance_drift", "Performance"),
                       ("concept_drift", "Concept")):
        part = a.get(key)
        if isinstance(part, dict):
            lines.append(f"{title}: {'drifted' if part.get('drifted') else 'no drift'}")
    return lines + _alerts(a.get("alerts", []))


def feedback(a: dict[str, Any]) -> list[str]:
    return [f"Recorded {a.get('n_labels')} labels for request {_text(a.get('request_id'))} (version "
            f"{_text(a.get('version'))}); {a.get('n_labelled_total')} labelled rows held for it."]


def scanned(a: dict[str, Any]) -> list[str]:
    lines = [f"Training folder: {_text(a.get('training_dir'))}"]
    health = a.get("health") or {}
    if health.get("watching"):
        lines.append(f"Watched: a server imports new complete packages every {health.get('interval_s'):g} s.")
    packages = a.get("packages", [])
    if packages:
        lines += table(["version", "model", "created_at", "kind", "complete", "imported", "location", "problems"],
                       [(p.get("version"), p.get("model_name"), p.get("created_at"), p.get("kind"), p.get("complete"),
                         p.get("already_imported"), p.get("location"), "; ".join(map(str, p.get("problems") or [])))
                        for p in packages])
    else:
        lines.append("No packages found.")
    if a.get("imported"):
        lines.append("Imported: " + ", ".join(printable(v) for v in a["imported"]))
    for error in a.get("errors", []):
        lines.append(f"Not imported: {_text(error.get('location'))}: [{_text(error.get('code'))}] "
                     f"{for_the_shell(_text(error.get('message')))}")
    return lines


def discovered(a: dict[str, Any]) -> list[str]:
    registered = a.get("registered", [])
    lines = ["Registered: " + ", ".join(printable(v) for v in registered)] if registered else \
        ["No new folders to register."]
    for problem in a.get("problems", []):
        lines.append(f"Left in place: {_text(problem.get('folder'))}: [{_text(problem.get('code'))}] "
                     f"{for_the_shell(_text(problem.get('message')))}")
    return lines


def deleted(a: dict[str, Any]) -> list[str]:
    note = "" if a.get("files_removed", True) else " (its folder was outside models/ and was kept)"
    return [f"Deleted {_text(a.get('version'))}{note}."]


def history(a: dict[str, Any]) -> list[str]:
    events = a.get("events", [])
    if not events:
        return ["No events recorded."]
    return table(["at", "event", "version", "outcome", "detail"],
                 [(e.get("at"), e.get("event"), e.get("version"), e.get("outcome"),
                   for_the_shell(_text(e.get("detail")))) for e in events], max_width=80)


def alerts(a: dict[str, Any]) -> list[str]:
    items = a.get("alerts", [])
    if not items:
        return ["No alerts."]
    return table(["severity", "kind", "version", "active", "count", "last_seen", "message"],
                 [(x.get("severity"), x.get("kind"), x.get("version"), x.get("active"), x.get("count"),
                   x.get("last_seen"), for_the_shell(_text(x.get("message")))) for x in items], max_width=90)


def replicas(a: dict[str, Any]) -> list[str]:
    items = a.get("replicas", [])
    generation = a.get("registry_generation")
    head = f"{a.get('up', 0)} up, {a.get('missing', 0)} missing"
    if a.get("database"):
        head += f"; {a.get('behind', 0)} behind the registry (generation {_text(generation)})."
    else:
        head += "."
    lines = [head]
    if items:
        lines += table(["replica", "state", "registry", "address", "host", "pid", "serves", "last seen"],
                       [(r.get("replica_id"), r.get("state"), _registry_state(r), r.get("address"), r.get("host_name"),
                         r.get("pid"), ", ".join(f"{name or '(unnamed)'} {version}" for name, version in
                                                 sorted((r.get("serves") or {}).items())) or "nothing",
                         _seen(r)) for r in items], max_width=70)
    for r in items:
        if r.get("note"):
            lines.append(f"{_text(r.get('replica_id'))}: {for_the_shell(_text(r.get('note')))}")
    if a.get("note"):
        lines.append(for_the_shell(_text(a["note"])))
    return lines


def _registry_state(r: dict[str, Any]) -> str:
    if r.get("current") is None:
        return "-"
    return "current" if r["current"] else f"behind ({_text(r.get('applied_generation'))})"


def _seen(r: dict[str, Any]) -> str:
    if r.get("last_seen") is None:
        return "now"
    return f"{float(r.get('seen_s_ago') or 0):.1f} s ago"


Renderer = Callable[[dict[str, Any]], list[str]]
