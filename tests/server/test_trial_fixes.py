"""What the new-user trial of issue 17 found, each through a real client."""

from __future__ import annotations

import os

import pytest
from mcp import Client

from model_mcp import samples
from model_mcp.core.manager import ModelManager
from model_mcp.server import build_server
from tests.conftest import b64
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

OLD, MIDDLE = "20261101_080000", "20261115_080000"


async def test_an_entry_that_stopped_serving_has_no_deployed_at(client, packages):
    await call(client, "import_zip", content_base64=b64(packages(version="v1")))
    await call(client, "import_zip", content_base64=b64(packages(version="v2")))
    await call(client, "deploy", version="v1")
    await call(client, "deploy", version="v2")
    await call(client, "rollback")
    entries = {e["version"]: e for e in (await call(client, "list_models"))["models"]}
    assert entries["v1"]["status"] == "deployed" and entries["v1"]["deployed_at"]
    assert entries["v2"]["status"] == "available" and entries["v2"]["deployed_at"] is None
    history = (await call(client, "get_history", kind="deployments"))["events"]
    assert [e["version"] for e in history if e["outcome"] == "ok"] == ["v1", "v2", "v1"]  # the times stay here


async def test_refused_deploys_rollbacks_and_validations_are_in_the_audit_trail(client):
    assert (await call_error(client, "deploy", version="ghost"))[0] == "not_found"
    assert (await call_error(client, "rollback"))[0] == "no_rollback_target"
    assert (await call_error(client, "validate", version="ghost"))[0] == "not_found"
    events = (await call(client, "get_history"))["events"]
    refused = [(e["event"], e["outcome"], e["detail"].split("]")[0] + "]") for e in events]
    assert ("validate", "failed", "[not_found]") in refused
    assert ("rollback", "failed", "[no_rollback_target]") in refused
    assert ("deploy", "failed", "[not_found]") in refused


async def test_scan_imported_names_only_what_this_call_imported(make_settings, tmp_path):
    training = tmp_path / "training"
    samples.write_training_service(training)
    manager = ModelManager(make_settings(training_dir=training))
    manager.start()
    async with Client(build_server(manager)) as client:
        first = await call(client, "scan_training_service", import_versions=[OLD])
        assert first["imported"] == [OLD] and first["already_present"] == []
        second = await call(client, "scan_training_service", import_versions=[OLD, MIDDLE])
    assert second["imported"] == [MIDDLE]
    assert second["already_present"] == [OLD]


async def test_import_of_a_file_that_is_not_a_zip_names_the_path(client, tmp_path):
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("just text")
    code, sentence = await call_error(client, "import_zip", path=str(not_zip))
    assert code == "not_a_zip" and str(not_zip) in sentence and "upload" not in sentence


async def test_a_relative_path_says_which_folder_it_is_resolved_against(client):
    code, sentence = await call_error(client, "import_zip", path="no-such-package.zip")
    assert code == "not_found"
    assert "no-such-package.zip" in sentence and os.getcwd() in sentence


def test_a_missing_training_folder_is_logged_at_start(make_settings, tmp_path):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        ModelManager(make_settings(training_dir=tmp_path / "nowhere")).start()
    warned = [e for e in logs if e["event"] == "training_dir_missing"]
    assert warned and str(tmp_path / "nowhere") in warned[0]["message"]
