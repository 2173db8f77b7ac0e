"""`model-mcp demo`, the README's first command, runs the lifecycle end to end."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_demo_runs_the_whole_lifecycle(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "model_mcp", "demo", "--keep", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Done: the lifecycle ran end to end through MCP." in out
    for step in ("import_zip", "validate", "deploy", "predict", "rollback", "performance_report",
                 "drift_report", "scan_training_service", "get_history", "rollout_report", "abort_rollout"):
        assert f"] {step} " in out, step
    assert "drifted features: ['bytes_in', 'packets_out']" in out
    assert "already_present=True" in out
    assert "deployed per model: {'network-anomaly': '20261120_143022', 'payments': 'payments_20261125'}" in out
    assert "answered by payments payments_20261125" in out
    assert (tmp_path / "demo" / "home" / "registry.json").exists()
