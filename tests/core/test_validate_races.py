"""`validate` racing `delete_model` on one version (issue 18, item 4).

It left `reports/<version>.json` behind and answered `passed: true` for a version that was gone.
"""

from __future__ import annotations

import threading

import pytest

from model_mcp.core.errors import ModelMcpError


def test_a_delete_during_validation_leaves_no_report_and_validate_says_so(manager, packages, home):
    manager.import_zip(path=str(packages(version="v1")))

    def delete_meanwhile(done, total, message):
        if message == "validating":  # validate has read the registry and is about to check the files
            manager.delete_model(version="v1")

    with pytest.raises(ModelMcpError) as caught:
        manager.validate(version="v1", progress=delete_meanwhile)
    assert caught.value.code == "not_found"
    assert not (home / "reports" / "v1.json").exists()
    assert "v1" not in manager.registry.read().entries


def test_racing_validate_and_delete_never_leave_a_report_of_a_deleted_version(manager, packages, home):
    for round_ in range(8):
        version = f"r{round_}"
        manager.import_zip(path=str(packages(version=version)))
        outcomes: dict[str, object] = {}

        def validate(v: str = version) -> None:
            try:
                outcomes["validate"] = manager.validate(version=v, deep=False)
            except ModelMcpError as exc:
                outcomes["validate"] = exc.code
            except Exception as exc:  # recorded, so the assertion below shows it
                outcomes["validate"] = repr(exc)

        def delete(v: str = version) -> None:
            outcomes["delete"] = manager.delete_model(version=v).deleted

        threads = [threading.Thread(target=validate), threading.Thread(target=delete)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert outcomes["delete"] is True
        assert version not in manager.registry.read().entries
        assert not (home / "reports" / f"{version}.json").exists(), outcomes
        assert outcomes["validate"] == "not_found" or getattr(outcomes["validate"], "version", None) == version
