"""`model-mcp replicas`: the servers on one PostgreSQL database as a table and as JSON, and the honest
answer on a home (tests/postgres.py: the database tests skip without a server, except in CI)."""

from __future__ import annotations

import json

from model_mcp.commands import EXIT_OK
from tests.conftest import wait_for
from tests.server.test_replicas import NET
from tests.test_cli import cli


def test_replicas_lists_every_server_on_the_database(replica_managers, packages, pg_url, capsys, monkeypatch,
                                                       tmp_path):
    a = replica_managers("a")
    a.import_zip(path=str(packages(version="n1", model_name=NET, seed=1)))
    a.deploy(version="n1")
    replica_managers("b")
    assert wait_for(lambda: a.replicas().up == 2 and all(r.serves == {NET: "n1"} for r in a.replicas().replicas))
    monkeypatch.setenv("MODEL_MCP_DATABASE_URL", pg_url)
    home = str(tmp_path / "cli-home")
    capsys.readouterr()  # the managers' logs so far (structlog's default writes them to stdout)

    code, out, _ = cli(capsys, "replicas", "--home", home, "--json")
    answer = json.loads(out)
    assert code == EXIT_OK and answer["database"] and answer["up"] == 2 and answer["behind"] == 0
    assert sorted(r["address"] for r in answer["replicas"]) == ["127.0.0.1:9000", "127.0.0.1:9001"]
    assert all(r["serves"] == {NET: "n1"} and r["current"] and not r["this_process"] for r in answer["replicas"])
    assert "writes no heartbeat" in answer["note"], "the command is not a server, and says it is not listed"

    code, out, _ = cli(capsys, "replicas", "--home", home)
    lines = out.splitlines()
    assert code == EXIT_OK
    assert lines[0] == f"2 up, 0 missing; 0 behind the registry (generation {answer['registry_generation']})."
    assert lines[1].split()[:4] == ["REPLICA", "STATE", "REGISTRY", "ADDRESS"]
    rows = [line.split() for line in lines[2:4]]
    assert [row[1:4] for row in sorted(rows, key=lambda r: r[3])] == [
        ["up", "current", "127.0.0.1:9000"], ["up", "current", "127.0.0.1:9001"]]
    assert all(f"{NET} n1" in line for line in lines[2:4])


def test_replicas_on_a_home_says_there_is_nothing_to_list(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MODEL_MCP_DATABASE_URL", raising=False)
    code, out, _ = cli(capsys, "replicas", "--home", str(tmp_path / "home"))
    assert code == EXIT_OK and out.startswith("0 up, 0 missing.") and "MODEL_MCP_DATABASE_URL" in out
    answer = json.loads(cli(capsys, "replicas", "--home", str(tmp_path / "home"), "--json")[1])
    assert answer["database"] is False and answer["replicas"] == [] and answer["registry_generation"] is None
