"""SIGKILL during a deploy of one model leaves the other model serving after the restart, and the
killed model serving exactly one of its two versions."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from model_mcp import samples
from tests.reliability.invariants import check_store
from tests.reliability.serverproc import NO_PROBE, Zygote

NET, PAY = "network-anomaly", "payments"
DELAYS_MS = (0, 100, 400, 1000, 2000, 4000)  # the last ones land after the deploy


def _zip(tmp: Path, version: str, name: str, seed: int) -> str:
    path = samples.build_package(tmp / f"{version}.zip", version=version, model_name=name, seed=seed,
                                 n_samples=500)
    return base64.b64encode(path.read_bytes()).decode()


def test_sigkill_during_one_models_deploy_leaves_the_other_serving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    zygote = Zygote(env=NO_PROBE)
    try:
        server = zygote.start_server(home)
        server.initialize()
        for version, name, seed in (("n1", NET, 1), ("n2", NET, 2), ("p1", PAY, 3)):
            assert not server.call("import_zip", content_base64=_zip(tmp_path, version, name, seed)).is_error
        for version in ("n1", "p1"):
            assert not server.call("deploy", version=version).is_error
        server.close()
        outcomes = []
        for delay_ms in DELAYS_MS:
            server = zygote.start_server(home)
            server.initialize()
            snapshot = check_store(home)
            net_before = snapshot.deployed_of(NET)
            assert net_before is not None
            other = "n2" if net_before.version == "n1" else "n1"
            warm = server.call("predict", rows=[[0.0] * 8], model_name=PAY)
            assert not warm.is_error and warm.structured["model_version"] == "p1", warm.text
            server.send_call("deploy", {"version": other})
            time.sleep(delay_ms / 1000)
            server.kill()
            server = zygote.start_server(home)
            server.initialize()
            snapshot = check_store(home)
            assert snapshot.deployed_of(PAY).version == "p1"
            net_after = snapshot.deployed_of(NET).version
            assert net_after in ("n1", "n2")
            outcomes.append(net_after != net_before.version)
            for name, expected in ((PAY, "p1"), (NET, net_after)):
                answer = server.call("predict", rows=[[0.0] * 8], model_name=name)
                assert not answer.is_error, answer.text
                assert (answer.structured["model_name"], answer.structured["model_version"]) == (name, expected)
            server.close()
        assert any(outcomes), "no kill landed after the switch: the delays no longer cover a deploy"
    finally:
        zygote.close()
