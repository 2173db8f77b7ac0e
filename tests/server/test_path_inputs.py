"""Path and name inputs with a NUL byte or control characters are `invalid_input` (issue 18, item 4).

`import_zip(path="a\\x00b")` answered `[internal_error]`: the NUL reached `os.lstat`.
"""

from __future__ import annotations

import pytest

from tests.conftest import b64, store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["pkg\x00.zip", "/tmp/\x00", "\x00", ""])
async def test_import_path_with_a_nul_byte_or_empty_is_invalid_input(client, home, path):
    before = store_state(home)
    code, sentence = await call_error(client, "import_zip", path=path)
    assert code == "invalid_input", sentence
    assert "\x00" not in sentence
    assert store_state(home) == before


async def test_import_path_with_a_nul_byte_under_import_roots_is_invalid_input(make_settings, tmp_path):
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    manager = ModelManager(make_settings(import_roots=(tmp_path,)))
    manager.start()
    async with Client(build_server(manager)) as client:
        code, _ = await call_error(client, "import_zip", path=str(tmp_path / "a\x00.zip"))
        assert code == "invalid_input"


@pytest.mark.parametrize("filename", ["a\x00.zip", "ok.zip\n[ok] Imported forged", "\x1b[32mgreen.zip"])
async def test_upload_filename_with_control_characters_is_invalid_input(client, packages, home, filename):
    before = store_state(home)
    code, sentence = await call_error(client, "import_zip", content_base64=b64(packages(version="v1")),
                                      filename=filename)
    assert code == "invalid_input", sentence
    assert "\n" not in sentence and "\x1b" not in sentence and "\x00" not in sentence
    assert store_state(home) == before


@pytest.mark.parametrize("version", ["v\x00", "v\n1", "../v"])
async def test_version_arguments_with_nul_or_control_characters_are_refused(client, version):
    for tool in ("get_model", "validate", "deploy", "delete_model"):
        code, sentence = await call_error(client, tool, version=version)
        assert code == "invalid_version", (tool, sentence)
        assert "\x00" not in sentence and "\n" not in sentence
    result = await client.call_tool("scan_training_service", {"import_versions": [version]})
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "\x00" not in text and "internal_error" not in text


async def test_a_resource_uri_with_a_nul_byte_is_not_an_internal_error(client, packages):
    await call(client, "import_zip", path=str(packages(version="v1")))
    with pytest.raises(Exception) as caught:
        await client.read_resource("models://v1%00x")
    assert "internal_error" not in str(caught.value)
