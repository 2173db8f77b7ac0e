"""deploy, rollback, predict and performance_report through a real MCP client."""

from __future__ import annotations


import anyio
import numpy as np
import pytest

from model_mcp import samples
from tests.conftest import package_folder, store_state, stored_registry
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio


async def _import(client, packages, version, **kwargs):
    return await call(client, "import_zip", path=str(packages(version=version, **kwargs)))


def _expected_scores(version_seed: int, rows, kind: str = "iforest") -> np.ndarray:
    model = samples.build_model(kind, samples.training_data(seed=version_seed), seed=version_seed)
    return model.decision_function(np.asarray(rows, dtype=float))


async def test_the_lifecycle_end_to_end(client, manager, packages, home):
    await _import(client, packages, "v1", seed=0)
    await _import(client, packages, "v2", seed=5)
    report = await call(client, "validate", version="v1")
    assert report["passed"]

    first = await call(client, "deploy", version="v1")
    assert first["deployed_version"] == "v1" and first["previous_version"] is None
    assert first["load_ms"] >= 0 and first["probe_ms"] >= 0 and first["validation"]["passed"]

    rows = samples.sample_rows(5)
    answer = await call(client, "predict", rows=rows)
    assert answer["model_version"] == "v1"
    assert answer["n_rows"] == 5
    assert np.allclose(answer["scores"], _expected_scores(0, rows))
    assert answer["labels"] == [(-1 if s < 0 else 1) for s in answer["scores"]]
    assert answer["is_anomaly"] == [label == -1 for label in answer["labels"]]
    assert answer["anomaly_count"] == sum(answer["is_anomaly"])
    assert len(answer["request_id"]) >= 16

    second = await call(client, "deploy", version="v2")
    assert second["deployed_version"] == "v2" and second["previous_version"] == "v1"
    answer2 = await call(client, "predict", rows=rows)
    assert answer2["model_version"] == "v2"
    assert np.allclose(answer2["scores"], _expected_scores(5, rows))

    registry = stored_registry(manager)
    assert registry["v2"]["status"] == "deployed" and registry["v1"]["status"] == "available"

    back = await call(client, "rollback")
    assert back["deployed_version"] == "v1" and back["previous_version"] == "v2"
    assert (await call(client, "predict", rows=rows))["model_version"] == "v1"

    perf = await call(client, "performance_report")
    assert perf["version"] == "v1" and perf["n_requests"] == 1 and perf["n_rows"] == 5
    assert perf["n_errors"] == 0 and perf["memory_bytes"] > 0 and perf["model_file_bytes"] > 0
    assert perf["latency_ms"]["p50"] > 0

    listing = await call(client, "list_models")
    assert listing["deployed_version"] == "v1"
    model = await call(client, "get_model", version="v1")
    assert [e["event"] for e in model["deployments"]] == ["rollback", "deploy"]


async def test_dict_rows_give_the_same_answer_as_list_rows(client, packages):
    await _import(client, packages, "v1")
    await call(client, "deploy", version="v1")
    rows = samples.sample_rows(3)
    as_dicts = [dict(zip(samples.DEFAULT_FEATURES, row, strict=True)) for row in rows]
    a = await call(client, "predict", rows=rows)
    b = await call(client, "predict", rows=as_dicts)
    assert a["scores"] == b["scores"] and a["labels"] == b["labels"]


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([], "empty"),
        ([[1.0] * 7], "row 0"),
        ([[0.0] * 8, [1.0, "x", 0, 0, 0, 0, 0, 0]], "row 1"),
        ([[0.0] * 8, [float("nan")] * 8], "row 1"),
        ([{"bytes_in": 1.0}], "row 0"),
        ([{name: 0.0 for name in samples.DEFAULT_FEATURES} | {"bogus": 1.0}], "bogus"),
        ("not a list", "list"),
        ([[True] * 8], "row 0"),
    ],
)
async def test_bad_rows_answer_invalid_input_naming_the_row(client, packages, rows, fragment):
    await _import(client, packages, "v1")
    await call(client, "deploy", version="v1")
    code, message = await call_error(client, "predict", rows=rows)
    assert code == "invalid_input"
    assert fragment in message


async def test_more_rows_than_the_limit_is_invalid_input(make_settings, packages):
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    manager = ModelManager(make_settings(max_predict_rows=10))
    manager.start()
    async with Client(build_server(manager)) as client:
        await _import(client, packages, "v1")
        await call(client, "deploy", version="v1")
        code, message = await call_error(client, "predict", rows=samples.sample_rows(11))
        assert code == "invalid_input" and "10" in message
        assert (await call(client, "predict", rows=samples.sample_rows(10)))["n_rows"] == 10


async def test_predict_with_nothing_deployed_and_with_the_wrong_version(client, packages):
    code, _ = await call_error(client, "predict", rows=samples.sample_rows(1))
    assert code == "no_deployed_model"
    await _import(client, packages, "v1")
    await call(client, "deploy", version="v1")
    code, message = await call_error(client, "predict", rows=samples.sample_rows(1), version="v2")
    assert code == "version_mismatch" and "v1" in message
    assert (await call(client, "predict", rows=samples.sample_rows(1), version="v1"))["model_version"] == "v1"


async def test_deploying_the_deployed_version_is_a_no_op(client, packages, home):
    await _import(client, packages, "v1")
    await call(client, "deploy", version="v1")
    before = store_state(home)
    again = await call(client, "deploy", version="v1")
    assert again["already_deployed"] is True and again["deployed_version"] == "v1"
    assert store_state(home) == before


async def test_a_tampered_model_is_refused_at_deploy_and_the_old_model_keeps_serving(client, packages, home):
    await _import(client, packages, "v1", seed=0)
    await _import(client, packages, "v2", seed=5)
    await call(client, "deploy", version="v1")
    model = package_folder(home, "v2") / "model.joblib"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    before = store_state(home)
    code, message = await call_error(client, "deploy", version="v2")
    assert code == "validation_failed"
    assert "hashes" in message
    assert "Report:" in message
    assert store_state(home) == before
    answer = await call(client, "predict", rows=samples.sample_rows(2))
    assert answer["model_version"] == "v1"


async def test_deploying_failed_or_unknown_versions(client, packages, home):
    await _import(client, packages, "bad", resources={"max_memory_mb": 0.001})
    before = store_state(home)
    code, _ = await call_error(client, "deploy", version="bad")
    assert code == "invalid_state"
    code, _ = await call_error(client, "deploy", version="nope")
    assert code == "not_found"
    assert store_state(home) == before


async def test_repeated_rollbacks_walk_back_through_the_deployment_history(client, packages):
    for version, seed in (("a", 0), ("b", 1), ("c", 2)):
        await _import(client, packages, version, seed=seed)
        await call(client, "deploy", version=version)
    assert (await call(client, "rollback"))["deployed_version"] == "b"
    assert (await call(client, "rollback"))["deployed_version"] == "a"
    code, _ = await call_error(client, "rollback")
    assert code == "no_rollback_target"
    named = await call(client, "rollback", to_version="c")
    assert named["deployed_version"] == "c" and named["previous_version"] == "a"
    assert (await call(client, "rollback"))["deployed_version"] == "a"


async def test_rollback_with_nothing_deployed_is_no_rollback_target(client, packages, home):
    code, _ = await call_error(client, "rollback")
    assert code == "no_rollback_target"
    await _import(client, packages, "v1")
    await call(client, "deploy", version="v1")
    before = store_state(home)
    code, _ = await call_error(client, "rollback")
    assert code == "no_rollback_target"
    assert store_state(home) == before


async def test_performance_report_counts_errors_and_rows(client, packages):
    await _import(client, packages, "v1")
    await call(client, "deploy", version="v1")
    for _ in range(3):
        await call(client, "predict", rows=samples.sample_rows(4))
    await call_error(client, "predict", rows=[[1.0]])
    perf = await call(client, "performance_report", version="v1")
    assert perf["n_requests"] == 3 and perf["n_rows"] == 12 and perf["n_errors"] == 1
    assert perf["error_rate"] == pytest.approx(0.25)
    assert 0.0 <= perf["anomaly_rate"] <= 1.0
    assert perf["throughput_rows_per_s"] > 0


async def test_a_predict_hammer_while_deploys_switch_gets_one_version_per_answer(client, packages):
    await _import(client, packages, "v1", seed=0)
    await _import(client, packages, "v2", seed=5)
    await call(client, "deploy", version="v1")
    rows = samples.sample_rows(3)
    expected = {"v1": _expected_scores(0, rows), "v2": _expected_scores(5, rows)}
    answers: list[dict] = []
    errors: list[str] = []

    async def predictor() -> None:
        for _ in range(40):
            result = await client.call_tool("predict", {"rows": rows})
            if result.is_error:
                errors.append(result.content[0].text)
            else:
                answers.append(result.structured_content)

    async def switcher() -> None:
        for i in range(8):
            await call(client, "deploy", version="v2" if i % 2 == 0 else "v1")

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(predictor)
        group.start_soon(switcher)
    assert errors == []
    assert len(answers) == 320
    seen = set()
    for answer in answers:
        seen.add(answer["model_version"])
        assert np.allclose(answer["scores"], expected[answer["model_version"]])
    assert seen == {"v1", "v2"}
