"""Hostile model files: bombs inside joblib's own compression, and files that load but are no model.

The attack: a 1 MB `model.joblib` whose zlib stream holds one 1 GiB byte string (inside the 2 GiB
loader budget) grew the server's peak RSS by about 2 GiB before the version was registered
`failed`: the child process loaded it, found no estimator, and the server then loaded it again
itself. Now the stream's inflation ratio is limited, single strings over 256 MiB are refused when
announced, and a file is loaded in the server only after the child found a sound estimator.
"""

from __future__ import annotations

import io
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest

from model_mcp import samples
from model_mcp.core.errors import ModelLoadFailedError
from model_mcp.core.unpickler import MAX_STREAM_RATIO, MAX_STRING_BYTES, check_trusted, load_trusted
from tests.limits.test_stdio_message_limit import proc_status, reset_peak
from tests.reliability.serverproc import ServerProcess

MIB = 1024 * 1024


def byte_string_bomb(announced: int, present: int, level: int = 1) -> bytes:
    """A zlib-compressed pickle (joblib's zlib format) of one byte string of `announced` bytes,
    of which the first `present` (zeros) are in the file."""
    compressor = zlib.compressobj(level)
    parts = [compressor.compress(pickle.PROTO + b"\x04" + pickle.BINBYTES8 + struct.pack("<Q", announced))]
    zeros = bytes(MIB)
    for _ in range(present // MIB):
        parts.append(compressor.compress(zeros))
    if present == announced:
        parts.append(compressor.compress(pickle.STOP))
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(autouse=True)
def trusted_set_built() -> None:
    """Build the allowlist (it imports scikit-learn) before memory is traced."""
    check_trusted("builtins", "set")


def test_a_bomb_inside_joblibs_compression_is_refused_by_its_ratio(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(byte_string_bomb(200 * MIB, 200 * MIB, level=9))  # under the string cap and the budget
    assert path.stat().st_size < 2 * MIB
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadFailedError, match=f"inflates more than {MAX_STREAM_RATIO:g} times"):
            load_trusted(path, max_bytes=2048 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Refused once 32 MiB came out; joblib inflates 8 KiB of input at a time (up to 8 MiB out).
    assert peak < 64 * MIB


def test_a_string_longer_than_any_model_state_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "model.joblib"
    path.write_bytes(byte_string_bomb(1024 * MIB, 0))  # announces 1 GiB
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadFailedError, match="announces a single object"):
            load_trusted(path, max_bytes=2048 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB
    assert MAX_STRING_BYTES < 1024 * MIB


def test_real_compressed_models_still_load(tmp_path):
    estimator = samples.build_model("iforest", samples.training_data(2000, 8))
    path = tmp_path / "model.joblib"
    for level in (3, 9):
        joblib.dump(estimator, path, compress=level)
        loaded = load_trusted(path, max_bytes=2048 * MIB)
        assert type(loaded) is type(estimator)


def _package(tmp_path: Path, model_bytes: bytes) -> Path:
    return samples.build_package(tmp_path / "hostile.zip", fmt="zip", extra_files={"model.joblib": model_bytes})


def _import_and_measure(tmp_path: Path, package: Path) -> tuple[str, int]:
    """Import `package` into a spawned server (isolated probe on); (error code, peak RSS growth)."""
    server = ServerProcess.spawn(tmp_path / "home", stderr=(tmp_path / "stderr.log").open("wb"))
    try:
        server.initialize()
        assert not server.call("list_models").is_error
        reset_peak(server.pid)
        before = proc_status(server.pid, "VmRSS")
        answer = server.call("import_zip", timeout=120, path=str(package))
        growth = proc_status(server.pid, "VmHWM") - before
        code = answer.code if answer.is_error else answer.structured["status"]
        return str(code), growth
    finally:
        server.kill()


@pytest.mark.slow
def test_the_server_refuses_a_string_bomb_without_growing(tmp_path):
    """The reported file, at a bounded scale: one 200 MiB byte string (the 1 GiB one is refused on
    its announcement, above) in a ~200 KB joblib zlib stream. Bound: the server's peak RSS grows
    under 64 MiB while refusing it (before: the child loaded it, then the server did, twice its size)."""
    bomb = byte_string_bomb(200 * MIB, 200 * MIB, level=9)
    assert len(bomb) < MIB
    code, growth = _import_and_measure(tmp_path, _package(tmp_path, bomb))
    assert code == "model_load_failed"
    assert growth < 64 * MIB, f"the server grew {growth / MIB:.0f} MiB refusing the bomb"


@pytest.mark.slow
def test_a_file_that_loads_but_is_no_model_is_never_loaded_in_the_server(tmp_path):
    """80 MiB of incompressible array data that the child loads and finds no estimator in: the
    version is registered `failed` and the server itself never held the array."""
    buffer = io.BytesIO()
    joblib.dump({"weights": np.random.default_rng(0).random(80 * MIB // 8)}, buffer)
    status, growth = _import_and_measure(tmp_path, _package(tmp_path, buffer.getvalue()))
    assert status == "failed"
    assert growth < 40 * MIB, f"the server grew {growth / MIB:.0f} MiB: it loaded the file itself"
