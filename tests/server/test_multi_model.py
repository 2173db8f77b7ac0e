"""Several models at once, through a real MCP client: a deployed version per model name, predict by
model name, rollback per model, the memory budget, aliases through every tool that takes a version,
catalog search and semantic versions."""

from __future__ import annotations

import json

import anyio
import pytest

from model_mcp.core.manager import ModelManager
from model_mcp.server import build_server
from tests.conftest import b64
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

NET, PAY, WEB = "network-anomaly", "payments", "web-traffic"
ROW8 = [[0.1] * 8]


@pytest.fixture
def importer(client, packages):
    async def add(version: str, model_name: str = NET, **kwargs) -> dict:
        return await call(client, "import_zip",
                          content_base64=b64(packages(version=version, model_name=model_name, **kwargs)))
    return add


async def _two_models(client, importer) -> None:
    await importer("n1", NET, seed=1)
    await importer("n2", NET, seed=2, created_at="2026-11-21T00:00:00Z")
    await importer("p1", PAY, seed=3, n_features=5)
    await call(client, "deploy", version="n1")
    await call(client, "deploy", version="p1")


async def test_each_model_name_has_its_own_deployed_version(client, importer):
    await _two_models(client, importer)
    listed = await call(client, "list_models")
    assert listed["deployed_versions"] == {NET: "n1", PAY: "p1"}
    assert listed["deployed_version"] == "p1"  # the most recently deployed, for single-model clients
    statuses = {m["version"]: m["status"] for m in listed["models"]}
    assert statuses == {"n1": "deployed", "n2": "available", "p1": "deployed"}
    summaries = {s["model_name"]: s for s in listed["model_summaries"]}
    assert summaries[NET]["versions"] == 2 and summaries[NET]["latest_version"] == "n2"
    assert summaries[NET]["deployed_version"] == "n1"
    assert summaries[PAY]["memory_bytes"] > 0 and summaries[NET]["memory_bytes"] > 0  # both resident

    # Deploying n2 replaces n1 only; payments keeps serving.
    result = await call(client, "deploy", version="n2")
    assert result["previous_version"] == "n1" and result["model_name"] == NET
    listed = await call(client, "list_models")
    assert listed["deployed_versions"] == {NET: "n2", PAY: "p1"}
    answer = await call(client, "predict", rows=[[0.0] * 5], model_name=PAY)
    assert (answer["model_name"], answer["model_version"]) == (PAY, "p1")
    answer = await call(client, "predict", rows=ROW8, model_name=NET)
    assert (answer["model_name"], answer["model_version"]) == (NET, "n2")


async def test_predict_needs_model_name_when_several_models_serve(client, importer, packages):
    await _two_models(client, importer)
    code, sentence = await call_error(client, "predict", rows=ROW8)
    assert code == "invalid_input" and NET in sentence and PAY in sentence and "model_name" in sentence
    # A version that serves says which model it means.
    answer = await call(client, "predict", rows=ROW8, version="n1")
    assert answer["model_name"] == NET
    code, sentence = await call_error(client, "predict", rows=ROW8, model_name="nope")
    assert code == "not_found" and NET in sentence and PAY in sentence  # names the models that serve
    await call(client, "import_zip", content_base64=b64(packages(version="w1", model_name=WEB)))
    code, sentence = await call_error(client, "predict", rows=ROW8, model_name=WEB)  # registered, not deployed
    assert code == "no_deployed_model" and NET in sentence
    code, _ = await call_error(client, "predict", rows=ROW8, model_name=PAY)  # 8 values for 5 features
    assert code == "invalid_input"
    # Reports: per version; a model name means its deployed version; with none named and two serving, a clear error.
    report = await call(client, "performance_report", model_name=PAY)
    assert report["version"] == "p1" and report["n_errors"] == 1
    assert (await call(client, "performance_report", model_name=NET))["version"] == "n1"
    code, _ = await call_error(client, "performance_report")
    assert code == "invalid_input"
    drift = await call(client, "drift_report", model_name=PAY, current=[[0.0] * 5] * 40)
    assert drift["version"] == "p1"
    alerts = await call(client, "get_alerts", model_name=NET)
    assert all(a.get("version") in (None, "n1") for a in alerts["alerts"])


async def test_one_model_answers_as_before(client, importer):
    await importer("n1", NET)
    await call(client, "deploy", version="n1")
    answer = await call(client, "predict", rows=ROW8)
    assert answer["model_version"] == "n1" and answer["model_name"] == NET
    assert (await call(client, "performance_report"))["version"] == "n1"
    assert (await call(client, "list_models"))["deployed_version"] == "n1"
    code, _ = await call_error(client, "rollback")
    assert code == "no_rollback_target"


async def test_rollback_works_per_model(client, importer):
    await _two_models(client, importer)
    await call(client, "deploy", version="n2")
    await importer("p2", PAY, seed=4, n_features=5, created_at="2026-11-22T00:00:00Z")
    await call(client, "deploy", version="p2")
    code, sentence = await call_error(client, "rollback")
    assert code == "invalid_input" and "model_name" in sentence
    result = await call(client, "rollback", model_name=NET)
    assert (result["deployed_version"], result["previous_version"]) == ("n1", "n2")
    assert (await call(client, "list_models"))["deployed_versions"] == {NET: "n1", PAY: "p2"}
    result = await call(client, "rollback", model_name=PAY)
    assert result["deployed_version"] == "p1"
    # to_version names its model; a model_name that disagrees is refused.
    code, _ = await call_error(client, "rollback", to_version="p2", model_name=NET)
    assert code == "invalid_input"
    assert (await call(client, "rollback", to_version="n2"))["deployed_version"] == "n2"
    assert (await call(client, "list_models"))["deployed_versions"] == {NET: "n2", PAY: "p1"}


async def test_aliases_work_through_every_tool_that_takes_a_version(client, importer):
    await _two_models(client, importer)
    result = await call(client, "set_alias", model_name=NET, alias="candidate", version="n2")
    assert result == {"model_name": NET, "alias": "candidate", "version": "n2", "previous_version": None}
    await call(client, "set_alias", model_name=NET, alias="champion", version="n1")
    entries = {m["version"]: m for m in (await call(client, "list_models"))["models"]}
    assert entries["n2"]["aliases"] == ["candidate"] and entries["n1"]["aliases"] == ["champion"]
    ref = f"{NET}@candidate"
    assert (await call(client, "get_model", version=ref))["entry"]["version"] == "n2"
    assert (await call(client, "validate", version=ref))["version"] == "n2"
    assert (await call(client, "performance_report", version=f"{NET}@champion"))["version"] == "n1"
    assert (await call(client, "deploy", version=ref))["deployed_version"] == "n2"
    assert (await call(client, "predict", rows=ROW8, version=ref))["model_version"] == "n2"
    assert (await call(client, "predict", rows=ROW8, version=f"{NET}@deployed"))["model_version"] == "n2"
    drift = await call(client, "drift_report", version=ref, current=[[0.2] * 8] * 40)
    assert drift["version"] == "n2"
    assert (await call(client, "rollback", to_version=f"{NET}@champion"))["deployed_version"] == "n1"
    code, _ = await call_error(client, "delete_model", version=f"{NET}@champion")  # n1 is deployed
    assert code == "invalid_state"
    resource = await client.read_resource(f"models://{NET}@candidate")
    assert json.loads(resource.contents[0].text)["entry"]["version"] == "n2"
    # Moving an alias answers where it was; history records it.
    moved = await call(client, "set_alias", model_name=NET, alias="champion", version="n2")
    assert moved["previous_version"] == "n1"
    history = (await call(client, "get_history", limit=20))["events"]
    assert [e["event"] for e in history[:1]] == ["set_alias"] and history[0]["alias"] == "champion"
    # Unknown alias: not_found naming the model's aliases.
    code, sentence = await call_error(client, "get_model", version=f"{NET}@nope")
    assert code == "not_found" and "candidate" in sentence and "champion" in sentence
    code, _ = await call_error(client, "deploy", version="ghost@candidate")
    assert code == "not_found"
    # Refusals change nothing.
    code, _ = await call_error(client, "set_alias", model_name=NET, alias="deployed", version="n1")
    assert code == "invalid_input"
    code, _ = await call_error(client, "set_alias", model_name=NET, alias="x", version="p1")  # another model's
    assert code == "invalid_input"
    code, _ = await call_error(client, "set_alias", model_name=NET, alias="bad alias", version="n1")
    assert code == "invalid_input"
    deleted = await call(client, "delete_alias", model_name=NET, alias="candidate")
    assert deleted["version"] is None and deleted["previous_version"] == "n2"
    code, sentence = await call_error(client, "delete_alias", model_name=NET, alias="candidate")
    assert code == "not_found" and "champion" in sentence
    entries = {m["version"]: m for m in (await call(client, "list_models"))["models"]}
    assert entries["n2"]["aliases"] == ["champion"] and entries["n1"]["aliases"] == []


async def test_the_memory_budget_refuses_a_deploy_and_changes_nothing(make_settings, packages):
    manager = ModelManager(make_settings())
    manager.start()
    server = build_server(manager)
    from mcp import Client  # noqa: PLC0415

    async with Client(server) as client:
        for version, name in (("n1", NET), ("p1", PAY)):
            await call(client, "import_zip", content_base64=b64(packages(version=version, model_name=name)))
        await call(client, "deploy", version="n1")
        used = (await call(client, "list_models"))["model_summaries"][0]["memory_bytes"]
    manager.close()
    # A budget that holds one model but not two.
    budget_mb = used * 1.5 / 2**20
    manager = ModelManager(make_settings(max_resident_mb=budget_mb))
    manager.start()
    async with Client(build_server(manager)) as client:
        await call(client, "predict", rows=ROW8)  # n1 loads at start
        before = await call(client, "list_models")
        code, sentence = await call_error(client, "deploy", version="p1")
        assert code == "resource_limit" and "MODEL_MCP_MAX_RESIDENT_MB" in sentence
        after = await call(client, "list_models")
        assert after["deployed_versions"] == before["deployed_versions"] == {NET: "n1"}
        assert (await call(client, "predict", rows=ROW8))["model_version"] == "n1"
        # Replacing the model's own version fits: its old one leaves.
        await call(client, "import_zip", content_base64=b64(packages(version="n2", model_name=NET, seed=5)))
        assert (await call(client, "deploy", version="n2"))["deployed_version"] == "n2"
    manager.close()


async def test_catalog_search_filters_and_sorts(client, importer):
    await importer("n1", NET, metadata_overrides={"tags": ["prod", "edge"], "description": "Netflow detector",
                                                  "semantic_version": "1.0.0"})
    await importer("n2", NET, seed=2, created_at="2026-11-21T00:00:00Z",
                   metadata_overrides={"tags": ["staging"], "semantic_version": "1.1.0-rc.1"})
    await importer("n3", NET, seed=3, created_at="2026-11-19T00:00:00Z",
                   metadata_overrides={"semantic_version": "1.1.0+build.7"})
    await importer("p1", PAY, n_features=5, metadata_overrides={"description": "Card payments", "tags": ["prod"]})
    found = await call(client, "list_models", query="netflow")
    assert [m["version"] for m in found["models"]] == ["n1"] and found["total"] == 1
    assert [m["version"] for m in (await call(client, "list_models", query="CARD payments"))["models"]] == ["p1"]
    assert {m["version"] for m in (await call(client, "list_models", tag="prod"))["models"]} == {"n1", "p1"}
    assert (await call(client, "list_models", query="error_rate"))["total"] == 3  # a feature name: NET has 8 features, PAY 5
    assert (await call(client, "list_models", query="1.1.0-rc"))["total"] == 1
    semver = await call(client, "list_models", model_name=NET, sort="semantic_version")
    # 1.1.0 (build metadata ignored) > 1.1.0-rc.1 > 1.0.0; versions without one last.
    assert [m["version"] for m in semver["models"]] == ["n3", "n2", "n1"]
    assert semver["models"][0]["semantic_version"] == "1.1.0+build.7"
    created = await call(client, "list_models", model_name=NET)
    assert [m["version"] for m in created["models"]] == ["n2", "n1", "n3"]
    await call(client, "deploy", version="p1")
    assert [m["version"] for m in (await call(client, "list_models", deployed_only=True))["models"]] == ["p1"]
    scores = await call(client, "list_models", sort="quality_score")
    values = [m["quality_score"] for m in scores["models"]]
    assert values == sorted(values, reverse=True)
    assert (await call(client, "list_models", min_quality_score=101))["total"] == 0
    code, _ = await call_error(client, "list_models", sort="size")
    assert code == "invalid_input"


async def test_semantic_versions_are_validated_and_unique_per_model(client, importer, packages):
    code, sentence = await call_error(client, "import_zip", content_base64=b64(
        packages(version="bad", metadata_overrides={"semantic_version": "1.0"})))
    assert code == "invalid_metadata" and "semantic_version" in sentence
    await importer("n1", NET, metadata_overrides={"semantic_version": "2.0.0+a"})
    code, sentence = await call_error(client, "import_zip", content_base64=b64(
        packages(version="n2", seed=2, metadata_overrides={"semantic_version": "2.0.0+b"})))
    assert code == "version_conflict" and "n1" in sentence
    assert (await call(client, "list_models"))["total"] == 1
    # Another model may claim the same one.
    await importer("p1", PAY, metadata_overrides={"semantic_version": "2.0.0"})


async def test_concurrent_predicts_always_come_from_the_model_named(client, importer):
    names = {NET: ("n1", "n2"), PAY: ("p1", "p2"), WEB: ("w1", "w2")}
    for seed, (name, versions) in enumerate(names.items()):
        for i, version in enumerate(versions):
            await importer(version, name, seed=seed * 10 + i, created_at=f"2026-11-2{i}T00:00:00Z")
        await call(client, "deploy", version=versions[0])
    wrong: list[str] = []
    answered = {name: 0 for name in names}
    stop = anyio.Event()

    async def predict_loop(name: str) -> None:
        while not stop.is_set():
            answer = await call(client, "predict", rows=ROW8 * 3, model_name=name)
            answered[name] += 1
            if answer["model_name"] != name or answer["model_version"] not in names[name]:
                wrong.append(f"{name}: {answer['model_name']} {answer['model_version']}")

    async def switch_loop() -> None:
        for _ in range(2):
            for name, (_first, second) in names.items():
                await call(client, "deploy", version=second)
                await call(client, "rollback", model_name=name)
        stop.set()

    async with anyio.create_task_group() as group:
        for name in names:
            group.start_soon(predict_loop, name)
        group.start_soon(switch_loop)
    assert not wrong
    assert all(count > 0 for count in answered.values())
    assert (await call(client, "list_models"))["deployed_versions"] == {NET: "n1", PAY: "p1", WEB: "w1"}


@pytest.mark.file_registry_only
async def test_an_old_format_registry_with_several_model_names_serves_each(make_settings, packages, home):
    from mcp import Client  # noqa: PLC0415

    manager = ModelManager(make_settings())
    manager.start()
    async with Client(build_server(manager)) as client:
        for version, name, n_features in (("n1", NET, 8), ("n2", NET, 8), ("p1", PAY, 5)):
            await call(client, "import_zip", content_base64=b64(
                packages(version=version, model_name=name, n_features=n_features, seed=len(version + name))))
    manager.close()
    # The registry as an older release wrote it: a list, "active" for the deployed versions.
    registry = json.loads((home / "registry.json").read_text())
    old = [{**entry, "status": {"n1": "active", "p1": "active"}.get(version, "inactive")}
           for version, entry in registry.items()]
    (home / "registry.json").write_text(json.dumps({"models": old}))
    manager = ModelManager(make_settings())
    manager.start()
    manager.load_deployed_in_background()
    async with Client(build_server(manager)) as client:
        assert (await call(client, "list_models"))["deployed_versions"] == {NET: "n1", PAY: "p1"}
        assert (await call(client, "predict", rows=ROW8, model_name=NET))["model_version"] == "n1"
        assert (await call(client, "predict", rows=[[0.0] * 5], model_name=PAY))["model_version"] == "p1"
        await call(client, "deploy", version="n2")  # the first write migrates to the new format
    manager.close()
    registry = json.loads((home / "registry.json").read_text())
    assert {v: e["status"] for v, e in registry.items()} == {"n1": "available", "n2": "deployed", "p1": "deployed"}
