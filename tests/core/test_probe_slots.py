"""Concurrent imports run at most `max_concurrent_probes` probe children at once (issue 18, item 4).

30 concurrent imports ran 31 probe children at once (4.5 GB). The children are counted here as
the operating system sees them: processes whose parent is this one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from model_mcp import samples
from model_mcp.core.package import inspect_package
from model_mcp.core.validation import isolated_probe
from model_mcp.settings import Settings

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts children through /proc")


def python_children() -> int:
    me = os.getpid()
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and b"-I\x00-c\x00" in cmdline:
            count += 1
    return count


def test_concurrent_probes_are_capped(tmp_path):
    settings = Settings(home=tmp_path / "home", max_concurrent_probes=2)
    contents = []
    for seed in range(5):  # distinct model files: the probe cache cannot answer for them
        folder = samples.build_package(tmp_path / f"p{seed}", fmt="folder", version=f"v{seed}", seed=seed + 10)
        contents.append(inspect_package(folder))
    results: list = []
    done = threading.Event()
    most = [0]

    def sample() -> None:
        while not done.is_set():
            most[0] = max(most[0], python_children())
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    workers = [threading.Thread(target=lambda c=c: results.append(isolated_probe(c, settings))) for c in contents]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    done.set()
    sampler.join()
    assert len(results) == 5 and all(r is not None and r.ok for r in results), results
    assert 1 <= most[0] <= 2, most[0]


def test_the_limit_is_a_setting(tmp_path):
    assert Settings(home=tmp_path).max_concurrent_probes == 2
    assert Settings.from_env({"MODEL_MCP_HOME": str(tmp_path), "MODEL_MCP_MAX_CONCURRENT_PROBES": "3"}
                             ).max_concurrent_probes == 3
    with pytest.raises(ValueError):
        Settings(home=tmp_path, max_concurrent_probes=0)
