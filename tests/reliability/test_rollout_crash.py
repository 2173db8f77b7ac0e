"""SIGKILL in the middle of a shadow rollout: the restarted server serves the same rollout (the
registry holds it), its comparison goes on from what the monitoring store kept, and the store's
invariants hold."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from model_mcp import samples
from tests.reliability.invariants import check_store
from tests.reliability.serverproc import NO_PROBE, Zygote


def _zip(tmp: Path, version: str, created_at: str) -> str:
    path = samples.build_package(tmp / f"{version}.zip", version=version, seed=1, n_samples=500, created_at=created_at)
    return base64.b64encode(path.read_bytes()).decode()


def _report(server) -> dict:
    answer = server.call("rollout_report")
    assert not answer.is_error, answer.text
    return answer.structured


def test_a_shadow_rollout_survives_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    zygote = Zygote(env=NO_PROBE)
    try:
        server = zygote.start_server(home)
        server.initialize()
        for version, created in (("v1", "2026-11-20T00:00:00Z"), ("v2", "2026-11-21T00:00:00Z")):
            assert not server.call("import_zip", content_base64=_zip(tmp_path, version, created)).is_error
        assert not server.call("deploy", version="v1").is_error
        assert not server.call("deploy", version="v2", mode="shadow").is_error
        rows = samples.sample_rows(50, 8, seed=3)
        for _ in range(10):
            assert server.call("predict", rows=rows).structured["model_version"] == "v1"
        deadline = time.monotonic() + 30
        while _report(server)["rows"] < 500:  # the shadow catches up, off the request path
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2.5)  # the comparison is written to the store every 2 s
        server.send_call("predict", {"rows": rows})
        server.kill()

        server = zygote.start_server(home)
        server.initialize()
        snapshot = check_store(home)
        assert snapshot.deployed_of("network-anomaly").version == "v1"
        assert snapshot.get("v2").rollout["mode"] == "shadow"
        assert server.call("predict", rows=rows).structured["model_version"] == "v1"
        before = _report(server)["rows"]
        assert before >= 500  # what the killed process compared and saved is kept
        for _ in range(4):
            server.call("predict", rows=rows)
        deadline = time.monotonic() + 30
        while (report := _report(server))["rows"] < before + 200:
            assert time.monotonic() < deadline, report
            time.sleep(0.1)
        assert report["label_agreement"] == 1.0 and report["mode"] == "shadow"
        promoted = server.call("promote")
        assert not promoted.is_error and promoted.structured["deployed_version"] == "v2"
        server.close()
        assert check_store(home).deployed_of("network-anomaly").version == "v2"
    finally:
        zygote.close()
