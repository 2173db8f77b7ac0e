"""Lean predict answers through a real MCP client: rounding, exact scores, summaries, the text block,
and which scoring path performance_report says serves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_mcp import samples
from tests.helpers import call

pytestmark = pytest.mark.anyio


def _model(kind: str, seed: int = 0):  # type: ignore[no-untyped-def]
    return samples.build_model(kind, samples.training_data(seed=seed), seed=seed)


async def _deploy(client, packages, kind: str = "iforest") -> None:  # type: ignore[no-untyped-def]
    await call(client, "import_zip", path=str(packages(version="v1", seed=0, kind=kind)))
    await call(client, "deploy", version="v1")


def _wire_bytes(result) -> int:  # type: ignore[no-untyped-def]
    """The bytes of a tool answer as the server sends it (compact JSON of the whole result)."""
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


async def test_scores_default_to_six_significant_digits_and_labels_use_the_exact_ones(client, packages) -> None:
    await _deploy(client, packages)
    rows = samples.sample_rows(200, seed=3)
    exact = _model("iforest").decision_function(np.asarray(rows))
    answer = await call(client, "predict", rows=rows)
    assert answer["score_digits"] == 6
    assert answer["scores"] == [float(f"{s:.6g}") for s in exact]
    assert answer["labels"] == [-1 if s < 0 else 1 for s in exact]
    full = await call(client, "predict", rows=rows, exact_scores=True)
    assert full["score_digits"] is None
    assert full["scores"] == exact.tolist()
    assert full["labels"] == answer["labels"] and full["is_anomaly"] == answer["is_anomaly"]


async def test_summary_only_answers_counts_anomaly_indices_and_quantiles(client, packages) -> None:
    await _deploy(client, packages)
    rows = samples.sample_rows(500, seed=4)
    exact = _model("iforest").decision_function(np.asarray(rows))
    answer = await call(client, "predict", rows=rows, summary_only=True)
    assert answer["labels"] == [] and answer["scores"] is None and answer["is_anomaly"] is None
    summary = answer["summary"]
    flagged = np.flatnonzero(exact < 0).tolist()
    assert flagged and summary["anomaly_indices"] == flagged
    assert answer["anomaly_count"] == len(flagged)
    assert summary["label_counts"] == {"-1": len(flagged), "1": 500 - len(flagged)}
    quantiles = summary["score_quantiles"]
    assert list(quantiles) == ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max"]
    assert quantiles["min"] == float(f"{exact.min():.6g}") and quantiles["max"] == float(f"{exact.max():.6g}")
    assert quantiles["p50"] == float(f"{np.quantile(exact, 0.5):.6g}")
    exact_summary = (await call(client, "predict", rows=rows, summary_only=True, exact_scores=True))["summary"]
    assert exact_summary["score_quantiles"]["p50"] == float(np.quantile(exact, 0.5))


async def test_large_answers_carry_rows_once_and_use_60_percent_fewer_bytes(client, packages) -> None:
    await _deploy(client, packages)
    rows = samples.sample_rows(1000, seed=5)
    lean = await client.call_tool("predict", {"rows": rows})
    assert not lean.is_error
    text = lean.content[0].text
    assert "1000 rows scored by version v1" in text and "structured content" in text
    assert len(text) < 2000  # a summary, not a second copy of the rows
    # Today's answer shape for comparison: indented full-precision JSON text plus the structured content.
    full = await client.call_tool("predict", {"rows": rows, "exact_scores": True})
    old_bytes = len(json.dumps(full.structured_content, indent=2)) + _wire_bytes(full) - len(full.content[0].text)
    assert _wire_bytes(lean) <= 0.4 * old_bytes


async def test_small_answers_repeat_the_data_as_compact_json_text(client, packages) -> None:
    await _deploy(client, packages)
    result = await client.call_tool("predict", {"rows": samples.sample_rows(3)})
    text = result.content[0].text
    assert json.loads(text) == result.structured_content
    assert "\n" not in text and ", " not in text


@pytest.mark.parametrize(("kind", "path"), [("iforest", "fast_tree"), ("pipeline", "fast_tree"),
                                            ("lof", "sklearn"), ("ocsvm", "sklearn")])
async def test_performance_report_says_which_path_serves(client, packages, kind: str, path: str) -> None:
    await _deploy(client, packages, kind=kind)
    rows = samples.sample_rows(20, seed=6)
    answer = await call(client, "predict", rows=rows, exact_scores=True)
    model = _model(kind)
    assert answer["scores"] == model.decision_function(np.asarray(rows)).tolist()
    assert answer["labels"] == model.predict(np.asarray(rows)).tolist()
    report = await call(client, "performance_report")
    assert report["scoring_path"] == path
    assert report["requests_by_scoring_path"] == {path: 1}
    # The sample forests fit the heap layout, whose numpy walk scores every batch (no crossover).
    assert report["scoring_layout"] == ("heap" if path == "fast_tree" else None)
    assert report["scoring_crossover_rows"] is None
