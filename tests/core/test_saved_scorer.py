"""The fast scorer saved at deploy: served after a restart before scikit-learn loads, exactly, and
only when its files and the model file are the ones it was built from."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.core.scoring import SavedScorerModel
from model_mcp.core.scoring.cache import load_scorer
from model_mcp.settings import Settings


def _deployed(home: Path, packages, kind: str = "pipeline") -> ModelManager:  # type: ignore[no-untyped-def]
    manager = ModelManager(Settings(home=home))
    manager.start()
    manager.import_zip(path=str(packages(version="v1", kind=kind)))
    manager.deploy(version="v1")
    return manager


def test_deploy_saves_the_scorer_and_a_restart_serves_it_exactly(home: Path, packages) -> None:  # type: ignore[no-untyped-def]
    first = _deployed(home, packages)
    assert (home / "scoring" / "v1.npz").is_file() and (home / "scoring" / "v1.json").is_file()
    model = first.runtime.current.estimator
    rows = samples.sample_rows(700, seed=9)  # above the crossover too: the saved scorer walks every batch

    restarted = ModelManager(Settings(home=home))
    restarted.start()
    entry = restarted.read_registry().deployed
    stand_in = restarted._serve_saved_scorer(entry)
    assert stand_in is not None and isinstance(restarted.runtime.current.estimator, SavedScorerModel)
    answer = restarted.predict(rows=rows, exact_scores=True)
    assert answer["scores"] == model.decision_function(np.asarray(rows)).tolist()
    assert answer["labels"] == model.predict(np.asarray(rows)).tolist()
    report = restarted.performance_report()
    assert report.scoring_path == "fast_tree" and report.scoring_layout == "heap"

    # The full model takes over inside the same installation: the figures carry on.
    restarted._load_full_model(entry, stand_in=stand_in)
    assert restarted.runtime.current.estimator is not stand_in.estimator
    assert restarted.performance_report().n_requests == 1


def test_a_changed_saved_scorer_or_model_file_is_not_used(home: Path, packages) -> None:  # type: ignore[no-untyped-def]
    manager = _deployed(home, packages, kind="iforest")
    folder = home / "scoring"
    meta = json.loads((folder / "v1.json").read_text())
    assert load_scorer(folder, "v1", meta["model_sha256"]) is not None
    assert load_scorer(folder, "v1", "0" * 64) is None  # built from another model file
    data = bytearray((folder / "v1.npz").read_bytes())
    data[-100] ^= 0xFF
    (folder / "v1.npz").write_bytes(bytes(data))
    assert load_scorer(folder, "v1", meta["model_sha256"]) is None
    entry = manager.read_registry().deployed
    assert manager._serve_saved_scorer(entry) is None


def test_a_start_with_a_saved_scorer_answers_predict_without_importing_scikit_learn(home: Path, packages) -> None:  # type: ignore[no-untyped-def]
    _deployed(home, packages)
    script = textwrap.dedent(f"""
        import sys
        from model_mcp.core.manager import ModelManager
        from model_mcp.settings import Settings
        manager = ModelManager(Settings(home={str(home)!r}))
        manager.start()
        manager._serve_saved_scorer(manager.read_registry().deployed)
        answer = manager.predict(rows=[[0.0] * 8])
        print("RESULT", answer["n_rows"], "sklearn" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = [line.split() for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert result == [["RESULT", "1", "False"]]


def test_deleting_a_version_removes_its_saved_scorer(home: Path, packages) -> None:  # type: ignore[no-untyped-def]
    manager = _deployed(home, packages, kind="iforest")
    manager.import_zip(path=str(packages(version="v2", kind="iforest", seed=3)))
    manager.deploy(version="v2")
    assert sorted(p.name for p in (home / "scoring").iterdir()) == ["v1.json", "v1.npz", "v2.json", "v2.npz"]
    manager.delete_model(version="v1")
    assert sorted(p.name for p in (home / "scoring").iterdir()) == ["v2.json", "v2.npz"]


@pytest.mark.anyio
async def test_at_a_start_the_full_model_loads_after_the_first_answered_tool_call(home: Path, packages) -> None:  # type: ignore[no-untyped-def]
    """The saved scorer serves at once; scikit-learn's import and the unpickling wait for a first
    tool call to be answered (they would only slow `initialize` and the first predict), then run."""
    from mcp import Client

    from model_mcp.server import build_server

    model = _deployed(home, packages, kind="iforest").runtime.current.estimator
    restarted = ModelManager(Settings(home=home))
    restarted.start()
    restarted.full_load_defer_s = 120.0  # far beyond the test: only the tool call may release the load
    thread = restarted.load_deployed_in_background()
    assert thread is not None
    for _ in range(2000):  # the saved scorer is installed within milliseconds; wait for it, not for time
        if restarted.runtime.current is not None:
            break
        thread.join(0.01)
    assert isinstance(restarted.runtime.current.estimator, SavedScorerModel)
    thread.join(0.2)
    assert thread.is_alive() and isinstance(restarted.runtime.current.estimator, SavedScorerModel)

    rows = samples.sample_rows(3, seed=4)
    async with Client(build_server(restarted)) as client:
        result = await client.call_tool("predict", {"rows": rows, "exact_scores": True})
        assert result.structured_content["scores"] == model.decision_function(np.asarray(rows)).tolist()
        thread.join(60)
        assert not thread.is_alive()
        assert not isinstance(restarted.runtime.current.estimator, SavedScorerModel)
        assert restarted.performance_report().n_requests == 1  # the same installation, figures kept


def test_without_any_tool_call_the_full_model_still_loads(home: Path, packages) -> None:  # type: ignore[no-untyped-def]
    _deployed(home, packages, kind="iforest")
    restarted = ModelManager(Settings(home=home))
    restarted.start()
    restarted.full_load_defer_s = 0.05
    thread = restarted.load_deployed_in_background()
    assert thread is not None
    thread.join(60)
    assert not thread.is_alive() and not isinstance(restarted.runtime.current.estimator, SavedScorerModel)
