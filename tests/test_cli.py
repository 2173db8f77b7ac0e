"""The operator commands, end to end with real packages: the same core as the tools, readable answers
on a terminal, JSON with --json, `[code] sentence` on stderr and documented exit codes (docs/cli.md).

Most tests call `main()` in this process (the whole CLI: parsing, settings, the core, output); a few
spawn `python -m model_mcp` to check what a shell sees: no traceback, no info logs.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from model_mcp import samples
from model_mcp.cli import build_parser, main, settings_from
from model_mcp.commands import ALERTS, COMMANDS, EXIT_INPUT, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, _available_commands, run
from model_mcp.core.errors import InvalidInputError
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings


def spawn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model_mcp", *args], capture_output=True, text=True, timeout=180)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path: Path, rows: list[list[float]], header: list[str] | None = samples.DEFAULT_FEATURES) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def two_packages(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("packages")
    return (samples.build_package(folder / "a.zip", version="a"),
            samples.build_package(folder / "b.zip", version="b", seed=4))


# --- what a shell sees ------------------------------------------------------------------------------
def test_import_list_validate_deploy_predict_rollback_as_json(tmp_path, two_packages):
    home = str(tmp_path / "home")
    for package in two_packages:
        done = spawn("import", str(package), "--home", home, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "available"
        assert done.stderr == "", "info logs must stay off the terminal unless asked for"
    listing = json.loads(spawn("list", "--home", home, "--json").stdout)
    assert [m["version"] for m in listing["models"]] == ["b", "a"] and listing["total"] == 2
    assert json.loads(spawn("validate", "a", "--home", home, "--json").stdout)["passed"] is True
    assert json.loads(spawn("deploy", "a", "--home", home, "--json").stdout)["deployed_version"] == "a"
    assert json.loads(spawn("deploy", "b", "--home", home, "--json").stdout)["previous_version"] == "a"

    rows_csv = write_csv(tmp_path / "rows.csv", samples.sample_rows(3))
    answer = json.loads(spawn("predict", "--input", str(rows_csv), "--home", home, "--json").stdout)
    assert answer["model_version"] == "b" and answer["n_rows"] == 3
    rows_json = tmp_path / "rows.json"
    rows_json.write_text(json.dumps(samples.sample_rows(2)))
    assert json.loads(spawn("predict", "--input", str(rows_json), "--home", home, "--json").stdout)["n_rows"] == 2

    back = json.loads(spawn("rollback", "--home", home, "--json").stdout)
    assert back["deployed_version"] == "a"


def test_a_refusal_prints_the_code_in_cli_words_and_exits_1(tmp_path):
    done = spawn("deploy", "nope", "--home", str(tmp_path / "home"))
    assert done.returncode == EXIT_REFUSED
    assert done.stderr.strip().splitlines() == [
        "[not_found] No version nope is registered; `model-mcp list` shows the registered versions."]
    assert done.stdout == ""


def test_a_csv_without_header_answers_one_line_without_traceback(tmp_path):
    rows = write_csv(tmp_path / "rows.csv", samples.sample_rows(3), header=None)
    done = spawn("predict", "--input", str(rows), "--home", str(tmp_path / "home"))
    assert done.returncode == EXIT_INPUT
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"model-mcp predict: --input {rows}: has no header row")


def test_info_logs_only_with_verbose(tmp_path, capsys, two_packages):
    home = str(tmp_path / "home")
    for argv in (["import", str(two_packages[0])], ["deploy", "a"]):
        assert cli(capsys, *argv, "--home", home)[0] == EXIT_OK
    rows = write_csv(tmp_path / "rows.csv", samples.sample_rows(2))
    quiet = spawn("predict", "--input", str(rows), "--home", home)
    assert quiet.returncode == 0 and quiet.stderr == ""
    told = spawn("predict", "--input", str(rows), "--home", home, "--verbose")
    assert told.returncode == 0, told.stderr
    events = [json.loads(line)["event"] for line in told.stderr.splitlines() if line.startswith("{")]
    assert "following_registry" in events, told.stderr


# --- every command, readable and as JSON -------------------------------------------------------------
def test_every_command_over_one_home(tmp_path, capsys, two_packages):
    home = str(tmp_path / "home")
    a, b = two_packages
    code, out, _ = cli(capsys, "import", str(a), "--home", home)
    assert code == EXIT_OK and out.startswith("Imported a (network-anomaly): available.")
    assert "Next: model-mcp deploy a" in out
    code, out, _ = cli(capsys, "import", str(a), "--home", home)
    assert out.startswith("Already present: a")
    cli(capsys, "import", str(b), "--home", home)

    code, out, _ = cli(capsys, "list", "--home", home, "--status", "available")
    assert code == EXIT_OK and "2 of 2 versions; deployed: -" in out
    assert out.splitlines()[0].split() == ["VERSION", "MODEL", "STATUS", "SEMVER", "ALIASES", "CREATED_AT", "SOURCE",
                                         "QUALITY"]

    code, out, _ = cli(capsys, "show", "b", "--home", home)
    assert code == EXIT_OK and "model.joblib" in out and "features:" in out and "bytes_in" in out
    lean = json.loads(cli(capsys, "show", "b", "--home", home, "--json")[1])
    full = json.loads(cli(capsys, "show", "b", "--details", "--home", home, "--json")[1])
    assert "feature_profile" not in lean["metadata"] and "feature_profile" in full["metadata"]

    code, out, _ = cli(capsys, "validate", "a", "--shallow", "--home", home)
    assert code == EXIT_OK and "a: validation passed" in out and "(shallow" in out and "structure" in out

    code, out, _ = cli(capsys, "deploy", "a", "--home", home)
    assert code == EXIT_OK and out.startswith("Deployed a (previous: -)")
    assert json.loads(cli(capsys, "list", "--home", home, "--json")[1])["deployed_version"] == "a"

    rows = write_csv(tmp_path / "rows.csv", samples.sample_rows(60))
    code, out, _ = cli(capsys, "predict", "--input", str(rows), "--home", home)
    assert code == EXIT_OK and "60 rows" in out and "answered by a" in out
    assert "... 10 more rows (--json prints them all)" in out

    code, out, _ = cli(capsys, "performance", "--home", home, "--json")
    assert code == EXIT_OK and json.loads(out)["version"] == "a"
    code, out, _ = cli(capsys, "performance", "--home", home)
    assert "requests:" in out and "latency ms:" in out

    code, out, _ = cli(capsys, "drift", "--current", str(rows), "--home", home)
    assert code == EXIT_OK and "reference feature_profile" in out and "Dataset: no dataset drift" in out
    code, out, _ = cli(capsys, "drift", "--current", str(rows), "--home", home, "--json")
    assert json.loads(out)["n_current"] == 60

    code, out, _ = cli(capsys, "rollback", "--to", "b", "--home", home)
    assert code == EXIT_OK and "b" in out.splitlines()[0] and "(previous: a)" in out

    code, out, _ = cli(capsys, "delete", "a", "--yes", "--home", home)
    assert code == EXIT_OK and out.strip() == "Deleted a."
    assert [m["version"] for m in json.loads(cli(capsys, "list", "--home", home, "--json")[1])["models"]] == ["b"]

    code, out, _ = cli(capsys, "history", "--home", home, "--kind", "deployments", "--json")
    events = json.loads(out)["events"]
    assert [e["event"] for e in events][:2] == ["rollback", "deploy"]
    code, out, _ = cli(capsys, "history", "--home", home, "--limit", "3")
    assert out.splitlines()[0].split() == ["AT", "EVENT", "VERSION", "OUTCOME", "DETAIL"] and len(out.splitlines()) == 4


def test_discover_registers_a_hand_placed_folder(tmp_path, capsys):
    home = tmp_path / "home"
    samples.build_package(home / "models" / "by-hand", fmt="folder", version="manual1")
    code, out, _ = cli(capsys, "discover", "--home", str(home))
    assert code == EXIT_OK
    listing = json.loads(cli(capsys, "list", "--home", str(home), "--json")[1])
    assert [m["version"] for m in listing["models"]] == ["manual1"]
    assert listing["models"][0]["source"] == "manual"


def test_scan_lists_and_imports_from_the_training_folder(tmp_path, capsys):
    training = tmp_path / "training"
    samples.write_training_service(training)
    home = str(tmp_path / "home")
    code, out, _ = cli(capsys, "scan", "--training-dir", str(training), "--home", home)
    assert code == EXIT_OK and f"Training folder: {training}" in out
    assert "20261101_080000" in out and "20261115_080000" in out
    code, out, _ = cli(capsys, "scan", "--import-latest", "--training-dir", str(training), "--home", home, "--json")
    assert json.loads(out)["imported"] == ["20261115_080000"]
    code, out, _ = cli(capsys, "scan", "--import", "20261101_080000", "--training-dir", str(training), "--home", home)
    assert code == EXIT_OK and "Imported: 20261101_080000" in out


def test_scan_without_a_training_folder_names_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MODEL_MCP_TRAINING_DIR", raising=False)
    code, _, err = cli(capsys, "scan", "--home", str(tmp_path / "home"))
    assert code == EXIT_REFUSED and err.startswith("[training_service_unavailable]") and "--training-dir" in err


def test_feedback_labels_a_request_of_the_same_process(tmp_path, capsys, two_packages):
    home = tmp_path / "home"
    parser = build_parser()
    shared = ModelManager(settings_from(parser.parse_args(["list", "--home", str(home)]), env={}))
    shared.start()
    for argv in (["import", str(two_packages[0])], ["deploy", "a"]):
        assert run(parser.parse_args([*argv, "--home", str(home)]), shared.settings, shared) == EXIT_OK
    rows = write_csv(tmp_path / "rows.csv", samples.sample_rows(4))
    capsys.readouterr()
    assert run(parser.parse_args(["predict", "--input", str(rows), "--json", "--home", str(home)]),
               shared.settings, shared) == EXIT_OK
    request_id = json.loads(capsys.readouterr().out)["request_id"]

    labels = tmp_path / "labels.txt"
    labels.write_text("label\n1\n-1\n1\n1\n")
    assert run(parser.parse_args(["feedback", request_id, "--labels-file", str(labels), "--home", str(home)]),
               shared.settings, shared) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"Recorded 4 labels for request {request_id}")
    assert run(parser.parse_args(["feedback", request_id, "--labels=1,1,1,-1", "--json", "--home", str(home)]),
               shared.settings, shared) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["n_labels"] == 4
    assert run(parser.parse_args(["feedback", request_id, "--labels=1,1", "--home", str(home)]),
               shared.settings, shared) == EXIT_REFUSED
    assert capsys.readouterr().err.startswith("[invalid_input]")


def test_feedback_for_another_process_request_explains_why(tmp_path, capsys):
    code, _, err = cli(capsys, "feedback", "0123abcd", "--labels=1", "--home", str(tmp_path / "home"))
    assert code == EXIT_REFUSED
    first, *rest = err.strip().splitlines()
    assert first.startswith("[not_found]") and "each model-mcp command runs in its own process" in rest[-1]


def test_a_failed_deploy_lists_the_failed_checks_and_json_carries_the_report(tmp_path, capsys):
    home = tmp_path / "home"
    package = samples.build_package(tmp_path / "slow.zip", version="slow", resources={"max_memory_mb": 0.001})
    cli(capsys, "import", str(package), "--home", str(home))
    listing = json.loads(cli(capsys, "list", "--home", str(home), "--json")[1])
    status = listing["models"][0]["status"]
    code, out, err = cli(capsys, "deploy", "slow", "--home", str(home), "--json")
    assert code == EXIT_REFUSED
    if status == "failed":
        assert err.startswith("[invalid_state]")
    else:
        assert err.startswith("[validation_failed]") and "  fail  resources:" in err
        assert json.loads(out)["error"]["report"]["passed"] is False
    assert json.loads(out)["error"]["code"] in ("invalid_state", "validation_failed")


# --- mistakes: one line, a documented exit code, nothing changed ---------------------------------------
@pytest.mark.parametrize(("name", "content", "expected"), [
    ("missing.csv", None, "no such file"),
    ("folder.csv", "DIR", "is a folder"),
    ("broken.json", "[[1, 2,", "is not valid JSON (line 1"),
    ("object.json", '{"a": 1}', "must hold a JSON list of rows"),
    ("latin1.csv", b"bytes_in\n\xe9\n", "is not UTF-8"),
    ("empty.csv", "", "is empty"),
    ("numbers.csv", "1.5,2,3\n4,5,6\n", "has no header row: its first line holds numbers (1.5, 2, 3)"),
    ("ragged.csv", "a,b\n1,2\n3,4,5\n", "line 3 has 3 values but the header names 2 features"),
    ("twice.csv", "a,a\n1,2\n", "names a more than once"),
])
def test_unusable_input_files_answer_one_line_and_exit_3(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, out, err = cli(capsys, "predict", "--input", str(path), "--home", str(tmp_path / "home"))
    assert code == EXIT_INPUT and out == ""
    assert err.count("\n") == 1 and expected in err, err
    assert err.startswith(f"model-mcp predict: --input {path}: ")


def test_unusable_drift_and_label_files_name_their_flag(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    code, _, err = cli(capsys, "drift", "--reference", str(broken), "--home", str(tmp_path / "home"))
    assert code == EXIT_INPUT and err.startswith(f"model-mcp drift: --reference {broken}: is not valid JSON")
    code, _, err = cli(capsys, "feedback", "r1", "--labels=1,2", "--home", str(tmp_path / "home"))
    assert code == EXIT_INPUT and "'2' is not a label" in err


def test_usage_errors_exit_2(tmp_path, capsys, two_packages):
    with pytest.raises(SystemExit) as stopped:
        main(["list", "--no-such-flag"])
    assert stopped.value.code == EXIT_USAGE
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    home = str(tmp_path / "home")
    cli(capsys, "import", str(two_packages[0]), "--home", home)
    code, _, err = cli(capsys, "delete", "a", "--home", home)  # stdin is not a terminal under pytest
    assert code == EXIT_USAGE and "add --yes" in err
    assert json.loads(cli(capsys, "list", "--home", home, "--json")[1])["total"] == 1


def test_each_help_shows_only_its_own_flags(capsys):
    own = {
        "predict": {"--input", "--model-version", "--model-name"},
        "scan": {"--import-latest", "--import", "--training-dir"},
        "drift": {"--current", "--reference", "--window", "--model-name"},
        "feedback": {"--labels", "--labels-file"},
        "delete": {"--yes"},
        "history": {"--kind", "--limit"},
        "list": {"--status", "--model-name", "--limit", "--offset", "--query", "--tag", "--min-quality",
                 "--deployed-only", "--sort"},
        "rollback": {"--to", "--model-name"},
        "validate": {"--shallow"},
        "show": {"--details"},
        "alerts": {"--active", "--severity", "--limit", "--model-name"},
        "rollout-start": {"--mode", "--traffic-percent"},
        "rollout-report": {"--model-name"},
        "promote": {"--model-name"},
        "abort-rollout": {"--model-name"},
        "set-rollout-policy": {"--clear", "--min-compared-rows", "--min-agreement", "--max-anomaly-rate-diff",
                               "--min-quality-score", "--max-error-rate", "--max-latency-p95-ms", "--auto-promote",
                               "--auto-abort", "--shadow-on-import"},
    }
    from model_mcp.commands import _accepts

    if _accepts("performance_report", "since"):
        own["performance"] = {"--since", "--until", "--bucket-s", "--model-name"}
    if _accepts("predict", "summary_only"):
        own["predict"] |= {"--exact-scores", "--summary-only"}
    every_flag = set().union(*own.values()) | {"--enable-custom-script", "--transport", "--read-only", "--port"}
    for command in _available_commands():
        with pytest.raises(SystemExit):
            main([command.name, "--help"])
        text = capsys.readouterr().out
        shown = {word.strip(",[]") for word in text.split() if word.startswith("--")}
        expected = own.get(command.name, set())
        assert expected <= shown, (command.name, expected - shown)
        strangers = (every_flag - expected) & shown
        if command.validates:
            strangers.discard("--enable-custom-script")
        if command.training:
            strangers.discard("--training-dir")
        assert not strangers, (command.name, strangers)
        assert {"--home", "--json", "--verbose"} <= shown, command.name


def test_every_tool_has_a_command(tmp_path):
    import anyio

    from mcp import Client

    from model_mcp.server import build_server
    from model_mcp.settings import Settings

    async def names() -> set[str]:
        async with Client(build_server(ModelManager(Settings(home=tmp_path / "home")))) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    tools = anyio.run(names)
    covered = {command.tool for command in _available_commands() if command.mcp}
    # open_dashboard opens a page inside an MCP host: nothing to do at a shell (docs/cli.md says so).
    assert tools - {"open_dashboard"} == covered, (tools - covered, covered - tools)


def _home_with_a_deployed_version(tmp_path, capsys, package) -> str:
    home = str(tmp_path / "home")
    for argv in (["import", str(package)], ["deploy", "a"]):
        assert cli(capsys, *argv, "--home", home)[0] == EXIT_OK
    return home


def test_alerts_lists_the_alerts_when_the_build_has_them(tmp_path, capsys, two_packages):
    if not hasattr(ModelManager, "get_alerts"):
        with pytest.raises(SystemExit):
            main(["alerts", "--home", str(tmp_path / "home")])
        assert "invalid choice: 'alerts'" in capsys.readouterr().err
        return
    home = _home_with_a_deployed_version(tmp_path, capsys, two_packages[0])
    code, out, _ = cli(capsys, "alerts", "--home", home, "--json")
    assert code == EXIT_OK and isinstance(json.loads(out)["alerts"], list)
    code, out, _ = cli(capsys, "alerts", "a", "--active", "--severity", "critical", "--limit", "5", "--home", home)
    assert code == EXIT_OK and out.strip()
    code, _, err = cli(capsys, "alerts", "bad/version", "--home", home)
    assert code == EXIT_REFUSED and err.startswith("[invalid_version]")


def test_performance_over_a_span_when_the_build_has_the_store(tmp_path, capsys, two_packages):
    from model_mcp.commands import _accepts

    if not _accepts("performance_report", "since"):
        with pytest.raises(SystemExit):
            main(["performance", "--since", "2026-01-01T00:00:00Z"])
        return
    home = _home_with_a_deployed_version(tmp_path, capsys, two_packages[0])
    rows = write_csv(tmp_path / "rows.csv", samples.sample_rows(5))
    assert cli(capsys, "predict", "--input", str(rows), "--home", home)[0] == EXIT_OK
    from datetime import UTC, datetime, timedelta

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = cli(capsys, "performance", "--since", an_hour_ago, "--bucket-s", "3600",
                       "--home", home, "--json")
    answer = json.loads(out)
    assert code == EXIT_OK and answer["bucket_s"] == 3600 and answer["n_rows"] >= 5
    code, out, _ = cli(capsys, "performance", "--home", home)
    assert code == EXIT_OK and "Covers:" in out
    code, _, err = cli(capsys, "performance", "--since", "yesterday", "--home", home)
    assert code == EXIT_REFUSED and err.startswith("[invalid_input]")


def test_predict_exact_scores_and_summary_only(tmp_path, capsys, two_packages):
    home = _home_with_a_deployed_version(tmp_path, capsys, two_packages[0])
    rows = samples.sample_rows(40) + samples.outliers(3).tolist()
    path = write_csv(tmp_path / "rows.csv", rows)
    code, out, _ = cli(capsys, "predict", "--input", str(path), "--exact-scores", "--home", home, "--json")
    exact = json.loads(out)
    assert code == EXIT_OK and len(exact["scores"]) == 43 and exact["score_digits"] is None
    code, out, _ = cli(capsys, "predict", "--input", str(path), "--home", home, "--json")
    rounded = json.loads(out)
    assert rounded["score_digits"] == 6 and rounded["scores"] == [float(f"{s:.6g}") for s in exact["scores"]]
    assert rounded["scores"] != exact["scores"], "without --exact-scores the scores are rounded"
    flagged = [i for i, a in enumerate(exact["is_anomaly"]) if a]
    assert {40, 41, 42} <= set(flagged)

    code, out, _ = cli(capsys, "predict", "--input", str(path), "--summary-only", "--exact-scores", "--home", home,
                       "--json")
    summary = json.loads(out)
    assert code == EXIT_OK and summary["labels"] == [] and summary["scores"] is None
    assert summary["summary"]["anomaly_indices"] == flagged
    assert summary["summary"]["label_counts"] == {"-1": len(flagged), "1": 43 - len(flagged)}
    assert summary["summary"]["score_quantiles"]["min"] == min(exact["scores"])
    code, out, _ = cli(capsys, "predict", "--input", str(path), "--summary-only", "--home", home)
    lines = out.splitlines()
    assert code == EXIT_OK and lines[0].startswith(f"43 rows, {len(flagged)} anomalies, answered by a")
    assert f"labels: -1: {len(flagged)}, 1: {43 - len(flagged)}" in lines
    assert "anomalous rows: " + ", ".join(map(str, flagged)) in lines
    assert "ROW" not in out and len(lines) == 4, "a summary, not one line per row"
    # On a terminal too, the scores are printed as the answer gives them: every digit when asked.
    for flag, scores in (("--exact-scores", exact["scores"]), (None, rounded["scores"])):
        code, out, _ = cli(capsys, "predict", "--input", str(path), *([flag] if flag else []), "--home", home)
        cells = [line.split()[2] for line in out.splitlines()[1:44]]
        assert code == EXIT_OK and cells == [repr(s) for s in scores], flag


def test_docs_cli_names_every_command_and_exit_code():
    from model_mcp import commands

    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for command in [*COMMANDS, ALERTS]:
        assert f"| `{command.name}" in text and f"`{command.tool}`" in text, command.name
    for name in dir(commands):
        if name.startswith("EXIT_"):
            assert f"| {getattr(commands, name)} |" in text, name


def test_rollout_commands_exit_with_the_verdict_for_ci(tmp_path, capsys, two_packages):
    home = tmp_path / "home"
    a, _ = two_packages
    nine = samples.build_package(tmp_path / "c.zip", version="c", seed=5, n_features=9)  # expects a ninth feature
    for package in (a, nine):
        assert cli(capsys, "import", str(package), "--home", str(home))[0] == 0
    assert cli(capsys, "deploy", "a", "--home", str(home))[0] == 0
    code, out, _ = cli(capsys, "rollout-start", "c", "--mode", "canary", "--home", str(home))
    assert code == 1  # a canary needs its share
    code, out, _ = cli(capsys, "rollout-start", "c", "--mode", "canary", "--traffic-percent", "20", "--home", str(home))
    assert code == 0 and "Started: a canary of c on 20 % of calls." in out
    code, out, _ = cli(capsys, "rollout-report", "--home", str(home))
    assert code == 10 and "verdict: HOLD" in out  # no rows yet
    code, out, _ = cli(capsys, "set-rollout-policy", "network-anomaly", "--max-error-rate", "0.2",
                       "--home", str(home))
    assert code == 0 and "max_error_rate: 0.2" in out
    # Traffic from a server process: calls naming the canary's version are answered by it, and fail.
    server = ModelManager(Settings(home=home))
    server.start()
    for _ in range(25):
        with pytest.raises(InvalidInputError):
            server.predict(rows=[[0.0] * 8], version="c")
    server.close()
    code, out, _ = cli(capsys, "rollout-report", "--home", str(home), "--json")
    report = json.loads(out)
    assert code == 11 and report["verdict"] == "reject" and report["policy_set"] is True
    assert report["error_rate"]["candidate"] == 1.0
    code, out, _ = cli(capsys, "abort-rollout", "--home", str(home))
    assert code == 0
    code, _, err = cli(capsys, "rollout-report", "--home", str(home))
    assert code == 1 and "[invalid_state]" in err
    assert cli(capsys, "set-rollout-policy", "network-anomaly", "--clear", "--home", str(home))[0] == 0
    code, out, _ = cli(capsys, "rollout-policy", "network-anomaly", "--home", str(home))
    assert code == 0 and "has no rollout policy" in out
