"""Version names a shell, Windows or a person would trip over are refused (issue 18, item 4).

`-rf` was accepted and `model-mcp deploy -rf` then failed in argparse; `CON` cannot be a folder on
Windows; `a..b` reads like a path; `Vcase` beside `vcase` is two versions to the registry but one
folder on a case-insensitive filesystem and one name to a person.
"""

from __future__ import annotations

import pytest

from model_mcp.core.errors import InvalidVersionError
from model_mcp.core.store import check_new_version_name
from tests.conftest import store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

REFUSED = ["-rf", "-", "--help", "CON", "con", "Nul", "PRN", "aux", "COM1", "lpt9", "CON.1", "com3.v2", "a..b",
           "..", "x..", "a...b"]
ACCEPTED = ["v1", "20261120_143022", "1.2.3", "a.b", "release-1", "_x", "CONSOLE", "COM10", "v-1", "a_-b",
            "econ", "nul1"]


@pytest.mark.parametrize("version", REFUSED)
def test_refused_version_names(version):
    with pytest.raises(InvalidVersionError):
        check_new_version_name(version)


@pytest.mark.parametrize("version", ACCEPTED)
def test_accepted_version_names(version):
    assert check_new_version_name(version) == version


@pytest.mark.parametrize("version", ["-rf", "CON", "a..b"])
async def test_import_refuses_the_version_with_invalid_version(client, packages, home, version):
    before = store_state(home)
    code, sentence = await call_error(client, "import_zip", path=str(packages(version=version)))
    assert code == "invalid_version", sentence
    assert store_state(home) == before


async def test_a_version_differing_only_by_case_is_a_version_conflict(client, packages, home):
    await call(client, "import_zip", path=str(packages(version="vcase")))
    before = store_state(home)
    code, sentence = await call_error(client, "import_zip", path=str(packages(version="Vcase", seed=3)))
    assert code == "version_conflict"
    assert "vcase" in sentence
    assert store_state(home) == before


async def test_hand_placed_folder_whose_version_clashes_by_case_is_reported(client, packages, home):
    from model_mcp import samples

    await call(client, "import_zip", path=str(packages(version="vcase")))
    samples.build_package(home / "models" / "other", fmt="folder", version="VCASE", seed=5)
    result = await call(client, "discover_models")
    assert result["registered"] == []
    assert [p["code"] for p in result["problems"]] == ["version_conflict"]
