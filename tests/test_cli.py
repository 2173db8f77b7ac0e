"""The operator commands: the same core as the tools, JSON on stdout, `[code] sentence` on stderr."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from model_mcp import samples


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model_mcp", *args], capture_output=True, text=True, timeout=120)


def test_import_list_validate_deploy_predict_rollback(tmp_path):
    home = str(tmp_path / "home")
    first = samples.build_package(tmp_path / "a.zip", version="a")
    second = samples.build_package(tmp_path / "b.zip", version="b", seed=4)
    for package in (first, second):
        done = run("import", str(package), "--home", home)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "available"
    listing = json.loads(run("list", "--home", home).stdout)
    assert [m["version"] for m in listing["models"]] == ["b", "a"] and listing["total"] == 2
    assert json.loads(run("validate", "a", "--home", home).stdout)["passed"] is True
    assert json.loads(run("deploy", "a", "--home", home).stdout)["deployed_version"] == "a"
    assert json.loads(run("deploy", "b", "--home", home).stdout)["previous_version"] == "a"

    rows_csv = tmp_path / "rows.csv"
    with rows_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(samples.DEFAULT_FEATURES)
        writer.writerows(samples.sample_rows(3))
    answer = json.loads(run("predict", "--input", str(rows_csv), "--home", home).stdout)
    assert answer["model_version"] == "b" and answer["n_rows"] == 3
    rows_json = tmp_path / "rows.json"
    rows_json.write_text(json.dumps(samples.sample_rows(2)))
    assert json.loads(run("predict", "--input", str(rows_json), "--home", home).stdout)["n_rows"] == 2

    back = json.loads(run("rollback", "--home", home).stdout)
    assert back["deployed_version"] == "a"


def test_errors_print_the_code_and_exit_2(tmp_path):
    done = run("deploy", "nope", "--home", str(tmp_path / "home"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("[not_found] ")
    assert done.stdout == ""
