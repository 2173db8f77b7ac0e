"""list_models, get_model, validate and the resources, through a real MCP client."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from model_mcp import samples
from tests.conftest import package_folder, store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


async def _import(client, packages, **kwargs):
    return await call(client, "import_zip", path=str(packages(**kwargs)))


async def test_list_models_newest_first_with_filters_and_paging(client, packages):
    await _import(client, packages, version="a", created_at="2026-11-01T00:00:00Z")
    await _import(client, packages, version="c", created_at="2026-11-03T00:00:00Z", model_name="other")
    await _import(client, packages, version="b", created_at="2026-11-02T00:00:00Z")
    listing = await call(client, "list_models")
    assert [m["version"] for m in listing["models"]] == ["c", "b", "a"]
    assert listing["total"] == 3
    assert listing["deployed_version"] is None
    page = await call(client, "list_models", limit=1, offset=1)
    assert [m["version"] for m in page["models"]] == ["b"]
    assert page["total"] == 3
    named = await call(client, "list_models", model_name="other")
    assert [m["version"] for m in named["models"]] == ["c"] and named["total"] == 1
    none = await call(client, "list_models", status="failed")
    assert none["models"] == [] and none["total"] == 0


async def test_get_model_answers_entry_metadata_files_and_validation(client, packages):
    await _import(client, packages)
    answer = await call(client, "get_model", version="20261120_143022")
    assert answer["entry"]["version"] == "20261120_143022"
    assert answer["metadata"]["feature_names"] == list(samples.DEFAULT_FEATURES)
    files = samples.package_files()
    manifest = json.loads(files["deployment_manifest.json"])
    assert answer["files"]["model.joblib"]["sha256"] == manifest["files"]["model.joblib"]["sha256"]
    assert set(answer["files"]) == set(files)
    assert answer["validation"]["passed"] is True
    assert answer["deployments"] == []


async def test_get_model_of_an_unknown_version_is_not_found(client):
    code, message = await call_error(client, "get_model", version="nope")
    assert code == "not_found"
    assert "nope" in message
    code, _ = await call_error(client, "get_model")
    assert code == "no_deployed_model"  # the one rule for an omitted version (resolve_version)


async def test_get_model_refuses_a_path_as_version(client):
    code, _ = await call_error(client, "get_model", version="../../etc")
    assert code == "invalid_version"


async def test_validate_saves_the_report_and_serves_it_as_a_resource(client, packages):
    await _import(client, packages)
    report = await call(client, "validate", version="20261120_143022")
    names = [c["name"] for c in report["checks"]]
    assert names == ["structure", "metadata", "manifest", "hashes", "model_load", "interface",
                     "feature_compatibility", "functional_probe", "resources", "quality", "custom_script"]
    assert report["passed"] is True
    assert 0 <= report["quality_score"] <= 100
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["custom_script"] == "skip"
    assert statuses["functional_probe"] == "pass"
    resource = await client.read_resource("models://20261120_143022/validation")
    served = json.loads(resource.contents[0].text)
    assert served["generated_at"] == report["generated_at"]
    assert served["checks"] == report["checks"]


async def test_shallow_validation_skips_the_model(client, packages):
    await _import(client, packages)
    report = await call(client, "validate", version="20261120_143022", deep=False)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["model_load"] == "skip" and statuses["functional_probe"] == "skip"
    assert statuses["hashes"] == "pass"


async def test_a_file_changed_after_import_fails_validation_and_the_status(client, packages, home):
    await _import(client, packages)
    model = package_folder(home, "20261120_143022") / "model.joblib"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    report = await call(client, "validate", version="20261120_143022")
    assert report["passed"] is False
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["hashes"]
    assert "model.joblib" in failed[0]["detail"]
    listing = await call(client, "list_models")
    assert listing["models"][0]["status"] == "failed"


async def test_validate_an_unknown_version_is_not_found(client, home):
    code, _ = await call_error(client, "validate", version="nope")
    assert code == "not_found"


async def test_resources_registry_and_one_version(client, packages):
    await _import(client, packages)
    registry = json.loads((await client.read_resource("models://registry")).contents[0].text)
    assert registry["total"] == 1
    assert registry["models"][0]["version"] == "20261120_143022"
    one = json.loads((await client.read_resource("models://20261120_143022")).contents[0].text)
    assert one["entry"]["version"] == "20261120_143022"
    assert one["metadata"]["model_name"] == "network-anomaly"
    listed = await client.list_resources()
    assert {str(r.uri) for r in listed.resources} >= {"models://registry"}
    templates = await client.list_resource_templates()
    assert {t.uri_template for t in templates.resource_templates} >= {"models://{version}",
                                                                        "models://{version}/validation"}


@pytest.mark.file_registry_only
async def test_a_damaged_registry_refuses_changes_but_reading_still_answers(client, packages, home):
    await _import(client, packages)
    (home / "registry.json").write_bytes(b"{ this is not json")
    before = store_state(home)
    code, message = await call_error(client, "import_zip", path=str(packages(version="other")))
    assert code == "registry_corrupt"
    assert "registry.json" in message
    code, _ = await call_error(client, "validate", version="20261120_143022")
    assert code == "registry_corrupt"
    assert store_state(home) == before
    listing = await call(client, "list_models")
    assert [m["version"] for m in listing["models"]] == ["20261120_143022"]  # the last good copy
    assert "registry.json" in listing["registry_problem"]
    assert (home / "registry.json").read_bytes() == b"{ this is not json"


@pytest.mark.file_registry_only
async def test_an_old_format_registry_is_read_and_migrated_on_the_first_write(make_settings, packages, home, tmp_path):
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    home.mkdir(parents=True)
    samples.write_folder(samples.package_files(version="legacy-1"), home / "models" / "legacy-1")
    old = {"models": [{"version": "legacy-1", "status": "active", "path": "models/legacy-1",
                       "model_name": "network-anomaly", "created_at": "2026-11-20T14:30:22Z", "owner": "ops-team"}]}
    old_bytes = json.dumps(old).encode()
    (home / "registry.json").write_bytes(old_bytes)
    manager = ModelManager(make_settings())
    manager.start()
    async with Client(build_server(manager)) as client:
        listing = await call(client, "list_models")
        assert listing["deployed_version"] == "legacy-1"
        assert listing["models"][0]["owner"] == "ops-team"
        assert (home / "registry.json").read_bytes() == old_bytes  # reading does not rewrite
        await call(client, "import_zip", path=str(packages(version="new-1")))
    migrated = json.loads((home / "registry.json").read_text())
    assert set(migrated) == {"legacy-1", "new-1"}
    assert migrated["legacy-1"]["status"] == "deployed"
    assert migrated["legacy-1"]["owner"] == "ops-team"
    assert (home / "registry.json.old-format.bak").read_bytes() == old_bytes


@pytest.mark.file_registry_only
async def test_the_fixture_old_registry_migrates(make_settings, packages, home):
    home.mkdir(parents=True)
    shutil.copy(FIXTURES / "registry.old-format.json", home / "registry.json")
    from model_mcp.core.manager import ModelManager

    manager = ModelManager(make_settings())
    manager.start()
    listing = manager.list_models()
    assert listing.total == len(json.loads((FIXTURES / "registry.old-format.json").read_text())["models"])


async def test_list_models_orders_by_the_moment_not_the_text(client, packages):
    # 10:00+02:00 is 08:00 UTC: earlier than 09:00Z although its text sorts later.
    await _import(client, packages, version="later", created_at="2026-11-20T09:00:00Z")
    await _import(client, packages, version="earlier", created_at="2026-11-20T10:00:00+02:00")
    listing = await call(client, "list_models")
    assert [m["version"] for m in listing["models"]] == ["later", "earlier"]
