"""Uploads streamed to disk with the limit counted as bytes arrive: a real server process, a real socket.

The server's peak resident memory (VmHWM in /proc) is read before and after a 300 MB upload; the
growth must stay far below the upload's size, which shows the body was never held in memory.
"""

from __future__ import annotations

import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from model_mcp import samples
from tests.rest.conftest import API
from tests.test_http import running_server

MIB = 1024 * 1024
UPLOAD_MB = 300
# The server may grow by this much while importing a 300 MB package (buffers, the model loaded for
# validation, the answer); holding the upload would take 300 MB or more.
MEMORY_BUDGET_MB = 96


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def chunks(path: Path, size: int = MIB) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(size):
            yield block


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_a_300_mb_upload_streams_to_disk_within_the_memory_budget(tmp_path):
    big = tmp_path / "big.zip"
    files = samples.package_files(version="big", extra_files={"data.bin": os.urandom(UPLOAD_MB * MIB)})
    samples.write_zip(files, big, compression=zipfile.ZIP_STORED)
    del files
    small = samples.build_package(tmp_path / "small.zip", version="small")
    with running_server(tmp_path / "server", token=None) as server, \
            httpx2.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=600) as http:
        # Warm up: the first import loads scikit-learn and the validation path.
        warm = http.post(f"{API}/models", content=small.read_bytes(), headers={"Content-Type": "application/zip"})
        assert warm.status_code == 201, warm.text
        before = peak_rss_mb(server.process.pid)
        with big.open("rb") as handle:
            response = http.post(f"{API}/models", files={"package": ("big.zip", handle, "application/zip")})
        assert response.status_code == 201, response.text
        assert response.json()["extra_files"] == ["data.bin"]
        growth = peak_rss_mb(server.process.pid) - before
        print(f"server peak RSS {before:.0f} MB before, +{growth:.0f} MB after a {big.stat().st_size / MIB:.0f} MB upload")
        assert growth < MEMORY_BUDGET_MB, f"the server grew by {growth:.0f} MB during the upload"
        home = tmp_path / "server" / "home"
        assert (home / "models" / "big" / "data.bin").stat().st_size == UPLOAD_MB * MIB
        assert not list((home / "staging").iterdir())


def test_an_upload_over_the_limit_is_refused_while_it_streams(tmp_path):
    """A chunked body (no Content-Length to judge up front): 3 MiB sent against a 2 MiB limit, and
    the 413 arrives while the client still holds the rest back, so the refusal came mid-stream."""
    limit = 2 * MIB
    with running_server(tmp_path / "server", token=None, env={"MODEL_MCP_MAX_UPLOAD_BYTES": str(limit)}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(f"POST {API}/models HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                         "Content-Type: application/zip\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            for _ in range(3):
                sock.sendall(f"{MIB:x}\r\n".encode() + os.urandom(MIB) + b"\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                block = sock.recv(65536)
                assert block, "the server closed the connection without answering"
                answer += block
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
        assert b"archive_too_large" in answer or b"application/problem+json" in answer
        with httpx2.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as http:
            declared = http.post(f"{API}/models", content=b"x" * (limit + 1), headers={"Content-Type": "application/zip"})
            assert declared.status_code == 413 and declared.json()["code"] == "archive_too_large"
            assert http.get(f"{API}/models").json()["total"] == 0
        staging = tmp_path / "server" / "home" / "staging"
        assert not staging.exists() or not list(staging.iterdir())
