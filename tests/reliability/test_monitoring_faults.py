"""The monitoring store under real faults: SIGKILL under load, a full disk, a read-only home, a damaged file.

What must hold in every case: predicts keep answering; the store is never left damaged; what was
recorded before a fault is still there after it; the store recovers by itself once the fault is
gone. Real server processes (tests/reliability/serverproc.py) and real kernel errors, no fakes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings
from tests.reliability.serverproc import NO_PROBE, ServerProcess
from tests.reliability.test_disk_faults import fill, tmpfs

QUIET = {**NO_PROBE, "MODEL_MCP_MONITOR_CHECK_INTERVAL_S": "0"}
ROWS = samples.sample_rows(1)


def _deployed_home(tmp_path: Path, home: Path) -> None:
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    manager.import_zip(path=str(samples.build_package(tmp_path / "v1.zip", version="v1", seed=1)))
    manager.deploy(version="v1")
    manager.close()


def _integrity(home: Path) -> str:
    with sqlite3.connect(home / "monitoring.db") as raw:
        return raw.execute("PRAGMA integrity_check").fetchone()[0]


def _stored_requests(home: Path) -> int:
    reader = ModelManager(Settings(home=home, isolated_probe=False, monitor_check_interval_s=0))
    try:
        return reader.performance_report(version="v1").n_requests
    finally:
        reader.close()


def test_sigkill_under_heavy_predict_traffic_loses_at_most_the_last_second(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _deployed_home(tmp_path, home)
    expected = 0
    for round_ in range(3):
        server = ServerProcess.spawn(home, env=QUIET)
        server.initialize()
        assert not server.call("predict", rows=ROWS).is_error  # the model is loaded: traffic from here
        expected += 1  # this one is answered long before the kill below
        ids = []
        started = time.perf_counter()
        while time.perf_counter() - started < 2.5 + 0.4 * round_:
            ids.append(server.send_call("predict", {"rows": ROWS}))
            if len(ids) % 20 == 0:  # keep a bounded number in flight
                server.answer(ids[-20])
        killed_at = time.perf_counter()
        server.kill()
        answered = [i for i in ids if i in server.received_at]
        durable = [i for i in answered if server.received_at[i] < killed_at - 2.0]
        stored = _stored_requests(home)
        assert _integrity(home) == "ok"
        # Everything answered more than a flush interval (plus a loaded machine's slack) before the
        # kill is in the store; nothing that was never sent is.
        assert len(durable) > 0
        assert expected + len(durable) <= stored <= expected + len(ids), (round_, len(durable), stored)
        expected = stored


def test_a_full_disk_leaves_predicts_answering_and_the_store_catches_up(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "64m") as disk:
        home = disk / "home"
        _deployed_home(tmp_path, home)
        manager = ModelManager(Settings(home=home, isolated_probe=False, monitor_check_interval_s=0))
        manager.start()
        manager.load_deployed_in_background().join(60)
        for _ in range(5):
            manager.predict(rows=ROWS)
        assert manager.recorder.flush() and manager.recorder.status.problem is None
        filler = fill(disk, 0)
        try:
            for _ in range(200):  # enough rows that the WAL must grow
                assert manager.predict(rows=samples.sample_rows(20))["n_rows"] == 20
            manager.recorder.flush()
            problem = manager.recorder.status.problem
            assert problem is not None and "full" in problem.lower(), problem
            (alert,) = [a for a in manager.get_alerts(active_only=True).alerts if a.kind == "monitoring_store"]
            assert alert.active and "cannot be written" in alert.message
        finally:
            filler.unlink()
        manager.recorder.flush()
        assert manager.recorder.status.problem is None
        assert manager.performance_report().n_requests == 205
        ended = [a for a in manager.get_alerts().alerts if a.kind == "monitoring_store"]
        assert ended and not ended[0].active
        manager.close()
        assert _integrity(home) == "ok"


def test_a_home_the_server_may_not_write_leaves_predicts_answering(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _deployed_home(tmp_path, home)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores file modes: run the server without that privilege
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a folder unwritable for the server")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    log_path = tmp_path / "server.log"
    assert not (home / "monitoring.db").exists()
    home.chmod(0o555)  # SQLite cannot create monitoring.db (nor its -wal and -shm) here
    with log_path.open("wb") as log:
        server = ServerProcess.spawn(home, prefix=prefix, env=QUIET, stderr=log)
        try:
            server.initialize()
            try:
                for _ in range(10):
                    answer = server.call("predict", rows=ROWS)
                    assert not answer.is_error, answer.text
                alerts = server.call("get_alerts", active_only=True)
                assert "monitoring_store" in {a["kind"] for a in alerts.structured["alerts"]}, alerts.text
                report = server.call("performance_report")  # this process's own figures meanwhile
                assert report.structured["n_requests"] == 10, report.text
            finally:
                home.chmod(0o755)
            assert not server.call("predict", rows=ROWS).is_error
            report = server.call("performance_report")
            assert report.structured["n_requests"] == 11, report.text
            assert "monitoring store" in report.structured["covers"]
        finally:
            server.close()
    assert "monitoring_store_unwritable" in log_path.read_text()
    assert "monitoring_store_recovered" in log_path.read_text()
    assert _integrity(home) == "ok"


def test_a_damaged_store_file_is_kept_aside_and_serving_goes_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _deployed_home(tmp_path, home)
    damaged = os.urandom(8192)
    (home / "monitoring.db").write_bytes(damaged)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = ServerProcess.spawn(home, env=QUIET, stderr=log)
        try:
            server.initialize()
            for _ in range(3):
                assert not server.call("predict", rows=ROWS).is_error
            report = server.call("performance_report")
            assert report.structured["n_requests"] == 3, report.text
        finally:
            server.close()
    kept = sorted(home.glob("monitoring.db.damaged-*"))
    assert kept and kept[0].read_bytes() == damaged
    assert "monitoring_store_damaged" in log_path.read_text()
    assert _integrity(home) == "ok"
