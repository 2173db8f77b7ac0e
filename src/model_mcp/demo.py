"""`model-mcp demo`: the whole lifecycle, driven through a real MCP client over stdio.

Builds sample packages with the fixture builders, starts `model-mcp serve` as a subprocess on a
temporary home, and walks through import, validate, deploy, predict, a second deploy, rollback,
the reports, the training service, a second model served beside the first and a shadow rollout,
printing a short transcript. This module is a client: it prints to stdout freely; the
server's own stdout is the protocol pipe, and its logs go to a file in the home.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from model_mcp import samples


class DemoError(RuntimeError):
    pass


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Transcript:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.step = 0

    async def call(self, tool: str, arguments: dict[str, Any], *, expect_error: bool = False,
                   shown: dict[str, Any] | None = None) -> dict[str, Any] | str:
        self.step += 1
        shown_args = json.dumps(shown if shown is not None else arguments)
        if len(shown_args) > 110:
            shown_args = shown_args[:107] + "..."
        _say(f"\n[{self.step}] {tool} {shown_args}")
        started = time.perf_counter()
        result = await self.client.call_tool(tool, arguments)
        elapsed = (time.perf_counter() - started) * 1000
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content)
            _say(f"    -> error ({elapsed:.0f} ms): {text.splitlines()[0][:200]}")
            if not expect_error:
                raise DemoError(f"{tool} failed: {text}")
            return text
        if expect_error:
            raise DemoError(f"{tool} should have failed")
        _say(f"    -> ok ({elapsed:.0f} ms)")
        return result.structured_content or {}


def _line(text: str) -> None:
    _say(f"       {text}")


async def run_demo(work: Path) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    home = work / "home"
    packages = work / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    _say("model-mcp demo")
    _say(f"  work folder: {work}")
    _say("  building two sample packages (IsolationForest, and a scaler + IsolationForest pipeline)...")
    v1 = samples.build_package(packages / "network-anomaly-v1.zip", fmt="zip", kind="iforest",
                               version="20261120_143022", created_at="2026-11-20T14:30:22Z")
    v2 = samples.build_package(packages / "network-anomaly-v2.zip", fmt="zip-folder", kind="pipeline",
                               version="20261124_090000", created_at="2026-11-24T09:00:00Z", seed=3)
    training = work / "training-service"
    samples.write_training_service(training)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "model_mcp", "serve", "--home", str(home), "--training-dir", str(training)],
        env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    log_path = work / "server.log"
    _say(f"  starting `model-mcp serve --home {home}` over stdio (server log: {log_path})")
    with log_path.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = (await client.list_tools()).tools
            _say(f"  connected; the server offers {len(tools)} tools: {', '.join(t.name for t in tools)}")
            t = Transcript(client)

            a = await t.call("import_zip", {"path": str(v1)})
            _line(f"version {a['version']} ({a['model_name']}) is {a['status']}, quality "
                  f"{a['validation']['quality_score']:.0f}/100")
            content = base64.b64encode(v2.read_bytes()).decode()
            b = await t.call("import_zip", {"content_base64": content, "filename": v2.name},
                             shown={"content_base64": f"<{len(content)} base64 chars>", "filename": v2.name})
            _line(f"version {b['version']} is {b['status']}")
            again = await t.call("import_zip", {"path": str(v1)})
            _line(f"importing the same package again: already_present={again['already_present']}")

            listing = await t.call("list_models", {})
            for entry in listing["models"]:
                _line(f"{entry['version']}  {entry['status']:<10} created {entry['created_at']}")

            report = await t.call("validate", {"version": a["version"]})
            for check in report["checks"]:
                _line(f"{check['status']:<4} {check['name']:<22} {check['detail'][:70]}")
            _line(f"passed={report['passed']} quality_score={report['quality_score']:.0f}")

            await t.call("predict", {"rows": samples.sample_rows(1)}, expect_error=True)
            d = await t.call("deploy", {"version": a["version"]})
            _line(f"deployed {d['deployed_version']} (load {d['load_ms']:.0f} ms, probe {d['probe_ms']:.0f} ms)")

            normal = samples.sample_rows(5, seed=11)
            odd = samples.outliers(2).tolist()
            p = await t.call("predict", {"rows": normal + odd}, shown={"rows": "<5 normal rows + 2 outliers>"})
            _line(f"model {p['model_version']} flagged {p['anomaly_count']} of {p['n_rows']} rows: "
                  f"is_anomaly={p['is_anomaly']}")
            _line("scores: " + ", ".join(f"{s:+.3f}" for s in p["scores"]))

            await t.call("predict", {"rows": [[1.0, 2.0]]}, expect_error=True)

            d2 = await t.call("deploy", {"version": b["version"]})
            _line(f"deployed {d2['deployed_version']}; {d2['previous_version']} is available again")
            p2 = await t.call("predict", {"rows": normal + odd}, shown={"rows": "<the same 7 rows>"})
            _line(f"model {p2['model_version']} flagged {p2['anomaly_count']} of {p2['n_rows']} rows")

            r = await t.call("rollback", {})
            _line(f"rolled back to {r['deployed_version']} (from {r['previous_version']})")

            for _ in range(20):
                await client.call_tool("predict", {"rows": samples.sample_rows(50, seed=_)})
            perf = await t.call("performance_report", {})
            lat = perf["latency_ms"]
            _line(f"{perf['n_requests']} requests, {perf['n_rows']} rows, {perf['n_errors']} errors; "
                  f"latency p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms")
            _line(f"anomaly rate {perf['anomaly_rate']:.1%}; memory ~{perf['memory_bytes'] / 1e6:.1f} MB; "
                  f"alerts: {len(perf['alerts'])}")

            drift = await t.call("drift_report", {})
            _line(f"reference: {drift['reference_source']} ({drift['n_reference']} training rows), current: "
                  f"{drift['current_source']} ({drift['n_current']}); drifted: {drift['drifted_features'] or 'none'}; "
                  f"alerts: {len(drift['alerts'])}")

            shifted = samples.training_data(n_samples=1000, seed=42)
            shifted[:, [0, 3]] += 1.5  # bytes_in and packets_out move up by 1.5 standard deviations
            await t.call("predict", {"rows": shifted.tolist()}, shown={"rows": "<1000 rows, 2 features shifted>"})
            drift = await t.call("drift_report", {"window": 1000})
            _line(f"drifted features: {drift['drifted_features']} (share {drift['share_drifted']:.0%}, "
                  f"dataset_drift={drift['dataset_drift']})")
            for alert in drift["alerts"]:
                _line(f"{alert['severity']}: {alert['kind']}: {alert['message'][:150]}")

            scan = await t.call("scan_training_service", {"import_latest": True})
            for package in scan["packages"]:
                state = "complete" if package["complete"] else "INCOMPLETE"
                _line(f"{package['location']:<45} {package['kind']:<6} {state:<10} version {package['version']}")
            _line(f"imported: {scan['imported']}")

            # Several models at once, and a shadow rollout of the version the training service brought.
            pay = samples.build_package(packages / "payments-v1.zip", version="payments_20261125", n_features=5,
                                        model_name="payments", created_at="2026-11-25T08:00:00Z", seed=5)
            await t.call("import_zip", {"path": str(pay)})
            await t.call("deploy", {"version": "payments_20261125"})
            both = await t.call("list_models", {"deployed_only": True})
            _line(f"deployed per model: {both['deployed_versions']}")
            pp = await t.call("predict", {"model_name": "payments", "rows": samples.sample_rows(3, n_features=5)},
                              shown={"model_name": "payments", "rows": "<3 rows of 5 features>"})
            _line(f"answered by {pp['model_name']} {pp['model_version']}")
            candidate = scan["imported"][0]
            sh = await t.call("deploy", {"version": candidate, "mode": "shadow"})
            _line(f"{sh['deployed_version']} runs as a shadow: it scores every network-anomaly call, answers none")
            for i in range(10):
                await client.call_tool("predict", {"model_name": "network-anomaly",
                                                   "rows": samples.sample_rows(50, seed=100 + i)})
            rr = await t.call("rollout_report", {"model_name": "network-anomaly"})
            agreement = "-" if rr["label_agreement"] is None else f"{rr['label_agreement']:.1%}"
            _line(f"{rr['rows']} rows compared, label agreement {agreement}; verdict {rr['verdict']}: "
                  f"{rr['reasons'][0][:110]}")
            ab = await t.call("abort_rollout", {"model_name": "network-anomaly"})
            _line(f"{ab['deployed_version']} serves network-anomaly alone again")

            history = await t.call("get_history", {"kind": "all", "limit": 6})
            for event in history["events"]:
                _line(f"{event['at'][:19]}  {event['event']:<9} {event['version'] or '':<16} {event['outcome']}")
    _say("\nDone: the lifecycle ran end to end through MCP.")


def main(keep: Path | None = None) -> int:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        work = keep
        anyio.run(run_demo, work)
        return 0
    with tempfile.TemporaryDirectory(prefix="model-mcp-demo-") as scratch:
        try:
            anyio.run(run_demo, Path(scratch))
        except DemoError as exc:
            _say(f"\ndemo failed: {exc}")
            return 1
    return 0
