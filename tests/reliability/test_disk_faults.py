"""Disk and permission faults: real kernel errors, a clear [storage_error], and a store left unchanged.

- A full filesystem: the home on a small tmpfs (needs the right to mount, so root; skipped
  otherwise). First an import too big for what is left fails while extracting. Then a sweep: the
  disk is filled, leaving k free pages, right when an import (or a deploy, or a validate) reaches
  its writes (journal, report, registry, its backup, the audit trail), for k = 0, 1, 2, ... until
  the call succeeds. Every call either succeeds with a consistent store or fails with
  [storage_error] and leaves registry.json, models/ and reports/ exactly as they were.
- A file size limit (RLIMIT_FSIZE on the server process; works without privileges): writing a
  model file over the limit fails with EFBIG. With history.jsonl padded up to the limit, only the
  audit line fails: the import and deploy it would record are committed and must answer success.
- Folders the server may not write: staging/, models/ or reports/ made read-only (chmod 0500). As
  root, which ignores file modes, the server runs under `setpriv` without CAP_DAC_OVERRIDE,
  CAP_DAC_READ_SEARCH and CAP_FOWNER, so that the modes apply to it as to any user.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_mcp import samples
from model_mcp.core.errors import ModelMcpError, StorageError
from model_mcp.core.manager import ModelManager
from model_mcp.settings import Settings
from tests.conftest import store_state
from tests.reliability.invariants import check_store
from tests.reliability.serverproc import NO_PROBE, ServerProcess

PAGE = 4096


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` at `path`; skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder: Path, leave_pages: int) -> Path:
    """Take every free block of the filesystem but `leave_pages` pages, with one preallocated file."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    filler = folder / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(free - leave_pages * PAGE, PAGE))
    finally:
        os.close(fd)
    return filler


def pad_to_page(path: Path) -> None:
    """Append one valid audit line that makes the file end exactly on a page boundary."""
    size = path.stat().st_size
    base = b'{"event":"padding","version":null,"outcome":"ok","detail":""}\n'
    missing = (-(size + len(base))) % PAGE
    with path.open("ab") as handle:
        handle.write(base[:-3] + b"x" * missing + b'"}\n')
    assert path.stat().st_size % PAGE == 0


def state(home: Path) -> dict[str, Any]:
    """store_state without the staging listing (a failed call's staging is removed too; checked apart)."""
    found = store_state(home)
    found.pop("staging")
    return found


def test_an_import_bigger_than_the_free_space_fails_cleanly(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", "1m") as fs:
        home = fs / "home"
        manager = ModelManager(Settings(home=home, isolated_probe=False))
        manager.start()
        manager.import_zip(path=str(samples.build_package(tmp_path / "v1.zip", version="v1", seed=1)))
        before = store_state(home)
        with pytest.raises(StorageError) as caught:
            manager.import_zip(path=str(samples.build_package(tmp_path / "v2.zip", version="v2", seed=2)))
        assert caught.value.code == "storage_error"
        assert "No space left on device" in str(caught.value) or "the disk is full" in str(caught.value)
        assert str(fs) not in str(caught.value)  # no path outside the home's own names
        assert store_state(home) == before
        check_store(home)


@pytest.mark.parametrize("operation", ["import_zip", "deploy", "validate"])
def test_a_disk_that_fills_during_the_writes_fails_cleanly_or_succeeds(tmp_path: Path, operation: str) -> None:
    """Fill the disk at the last progress step before the writes, leaving 0, 1, 2... pages free."""
    trigger = {"import_zip": "validating", "deploy": "switching", "validate": "validating"}[operation]
    outcomes: list[str] = []
    with tmpfs(tmp_path / "fs", "4m") as fs:
        home = fs / "home"
        manager = ModelManager(Settings(home=home, isolated_probe=False))
        manager.start()
        for version, seed in (("v1", 1), ("v2", 2)):
            manager.import_zip(path=str(samples.build_package(tmp_path / f"{version}.zip", version=version, seed=seed)))
        manager.deploy(version="v1")
        v3 = samples.build_package(tmp_path / "v3.zip", version="v3", seed=3)
        call = {"import_zip": lambda p: manager.import_zip(path=str(v3), progress=p),
                "deploy": lambda p: manager.deploy(version="v2", progress=p),
                "validate": lambda p: manager.validate(version="v2", progress=p)}[operation]
        for leave in range(40):
            pad_to_page(home / "history.jsonl")  # so that the audit line needs a page of its own
            before = state(home)
            filled: list[Path] = []

            def progress(done: float, total: float | None, message: str) -> None:
                if message == trigger and not filled:
                    filled.append(fill(fs, leave))

            try:
                call(progress)
            except ModelMcpError as exc:
                assert exc.code == "storage_error", f"{leave} pages free: [{exc.code}] {exc}"
                assert "Nothing was changed" in str(exc) or "Could not" in str(exc)
                assert state(home) == before, f"{leave} pages free: a failed {operation} changed the store"
                assert manager.runtime.current is not None and manager.runtime.current.version == "v1"
                outcomes.append("storage_error")
            else:
                outcomes.append("ok")
            finally:
                for path in filled:
                    path.unlink()
            assert filled, "the fault was never injected"
            assert list((home / "staging").iterdir()) == []
            check_store(home)
            if outcomes[-1] == "ok":
                break
    assert outcomes[0] == "storage_error" and outcomes[-1] == "ok", outcomes
    print(f"\n{operation}: {outcomes.count('storage_error')} clean failures before success at {len(outcomes) - 1} free pages")


def test_a_file_size_limit_fails_the_import_cleanly(tmp_path: Path) -> None:
    """RLIMIT_FSIZE on the server process: writing past it fails with EFBIG (SIGXFSZ is ignored)."""
    home = tmp_path / "home"
    ModelManager(Settings(home=home, isolated_probe=False)).start()
    package = samples.build_package(tmp_path / "v1.zip", version="v1")
    model_size = len(samples.package_files(version="v1")["model.joblib"])
    limit = model_size // 2
    assert limit > 64 * 1024  # room for the registry, reports and the audit trail

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    before = store_state(home)
    server = ServerProcess.spawn(home, preexec_fn=limit_file_size, env=NO_PROBE)
    try:
        server.initialize()
        answer = server.call("import_zip", path=str(package))
        assert answer.is_error and answer.code == "storage_error", answer.text
        assert "model.joblib" in answer.text and "File too large" in answer.text
        listing = server.call("list_models")
        assert listing.structured["total"] == 0
    finally:
        server.close()
    assert store_state(home) == before
    check_store(home)


def test_an_audit_line_that_cannot_be_written_does_not_fail_a_change_already_made(tmp_path: Path) -> None:
    """The audit trail is written after the change is committed: its failure must not answer an error.

    history.jsonl is padded (valid lines) to exactly the server's RLIMIT_FSIZE, so that appending to it
    fails with EFBIG while every other file stays far below the limit.
    """
    home = tmp_path / "home"
    manager = ModelManager(Settings(home=home, isolated_probe=False))
    manager.start()
    manager.import_zip(path=str(samples.build_package(tmp_path / "v1.zip", version="v1", seed=1)))
    history = home / "history.jsonl"
    line = b'{"event":"padding","version":null,"outcome":"ok","detail":"' + b"x" * 4000 + b'"}\n'
    history.write_bytes(history.read_bytes() + line * 400)
    pad_to_page(history)
    limit = history.stat().st_size
    assert limit > 2 * len(samples.package_files(version="v2", seed=2)["model.joblib"])

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = ServerProcess.spawn(home, preexec_fn=limit_file_size, stderr=log, env=NO_PROBE)
        try:
            server.initialize()
            imported = server.call("import_zip", path=str(samples.build_package(tmp_path / "v2.zip", version="v2",
                                                                                seed=2)))
            assert not imported.is_error, imported.text
            deployed = server.call("deploy", version="v2")
            assert not deployed.is_error and deployed.structured["deployed_version"] == "v2", deployed.text
        finally:
            server.close()
    assert history.stat().st_size == limit  # nothing could be appended
    assert "audit_not_recorded" in log_path.read_text()
    snapshot = check_store(home)
    assert sorted(snapshot.entries) == ["v1", "v2"] and snapshot.deployed.version == "v2"


def test_folders_the_server_may_not_write_fail_the_import_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ModelManager(Settings(home=home, isolated_probe=False)).start()
    package = samples.build_package(tmp_path / "v1.zip", version="v1")
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores file modes: run the server without that privilege
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a folder unwritable for the server")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    before = store_state(home)
    server = ServerProcess.spawn(home, prefix=prefix, env=NO_PROBE)
    try:
        server.initialize()
        # staging/: the import cannot start; models/: the publish cannot move the package in;
        # reports/: the publish cannot save the report and must undo the move.
        for name in ("staging", "models", "reports"):
            folder = home / name
            folder.chmod(0o500)
            try:
                answer = server.call("import_zip", path=str(package))
            finally:
                folder.chmod(0o755)
            assert answer.is_error and answer.code == "storage_error", (name, answer.text)
            assert "permission denied" in answer.text.lower(), (name, answer.text)
            assert str(tmp_path) not in answer.text, answer.text
            assert store_state(home) == before, name
        # The fault repaired, the same import goes through.
        answer = server.call("import_zip", path=str(package))
        assert not answer.is_error and answer.structured["version"] == "v1", answer.text
    finally:
        server.close()
    check_store(home)
