"""The server defends itself through import_zip: a hostile corpus built here, no committed binaries.

Every archive case wraps a complete, valid package with one hostile part, so the answer is about
that part and not a boring missing file; every pickle case is the `model.joblib` of an otherwise
valid package whose manifest hashes are right, so the loader is what answers. For each case:
the exact contract code and a sentence naming the problem, nothing executed (a marker folder
stays empty), the store byte-for-byte unchanged, nothing written outside the home, and no more
than a few MB written by the whole process during the call (`wchar` from /proc/self/io). The
call's duration is recorded as the `elapsed_s` property (see the junit XML), not asserted.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from joblib.numpy_pickle import NumpyArrayWrapper
from sklearn.ensemble import IsolationForest

from model_mcp import samples
from tests.conftest import store_state
from tests.helpers import call, call_error

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
MAX_WRITTEN = 8 * MIB  # the valid package part is about 0.6 MB; a bomb must add nothing like gigabytes


# --------------------------------------------------------------------------- raw ZIP writing


@dataclass
class Raw:
    """One member as it will sit in the file: the bytes after compression and declared fields."""

    name: bytes
    data: bytes
    method: int = zipfile.ZIP_STORED
    crc: int = 0
    size: int = 0  # declared uncompressed size
    flags: int = 0
    mode: int = 0o100644  # unix mode in the high 16 bits of external_attr
    local_name: bytes | None = None  # when the local header names another file


def deflated(name: str | bytes, content: bytes, **fields: Any) -> Raw:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = packer.compress(content) + packer.flush()
    encoded = name.encode() if isinstance(name, str) else name
    return Raw(encoded, data, zipfile.ZIP_DEFLATED, zlib.crc32(content), len(content), **fields)


def stored(name: str | bytes, content: bytes, **fields: Any) -> Raw:
    encoded = name.encode() if isinstance(name, str) else name
    return Raw(encoded, content, zipfile.ZIP_STORED, zlib.crc32(content), len(content), **fields)


def raw_zip(entries: list[Raw]) -> bytes:
    """A plain ZIP (no ZIP64) written field by field, so any field can lie."""
    out = bytearray()
    central = bytearray()
    for entry in entries:
        offset = len(out)
        local_name = entry.name if entry.local_name is None else entry.local_name
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, entry.flags, entry.method, 0, 0x21,
                           entry.crc, len(entry.data), entry.size, len(local_name), 0)
        out += local_name + entry.data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x314, 20, entry.flags, entry.method, 0, 0x21,
                               entry.crc, len(entry.data), entry.size, len(entry.name), 0, 0, 0, 0,
                               entry.mode << 16, offset)
        central += entry.name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return bytes(out + central + end)


@functools.cache
def package() -> dict[str, bytes]:
    return samples.package_files()


@functools.cache
def package_entries() -> tuple[Raw, ...]:
    return tuple(deflated(name, data) for name, data in sorted(package().items()))


def with_hostile(*hostile: Raw, first: bool = False) -> bytes:
    """The valid package's members plus the hostile ones (after them, or before with `first`)."""
    members = list(package_entries())
    return raw_zip([*hostile, *members] if first else [*members, *hostile])


def package_zip() -> bytes:
    return raw_zip(list(package_entries()))


def zeros_stream(mib: int) -> bytes:
    """A raw deflate stream of `mib` MiB of zeros, built without compressing gigabytes.

    One MiB of zeros ends with a full flush (byte-aligned, no back-references across it), so the
    same bytes can be repeated; an empty final block closes the stream.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = packer.compress(bytes(MIB)) + packer.flush(zlib.Z_FULL_FLUSH)
    return segment * mib + packer.flush(zlib.Z_FINISH)


def overlapping_bomb(copies: int, payload_mib: int) -> bytes:
    """One deflated member and `copies` central entries all pointing at it (zipfile accepts this)."""
    data = zeros_stream(payload_mib)
    size = payload_mib * MIB
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, 0, len(data), size, 2, 0) + b"f0" + data
    central = b""
    for i in range(copies):
        name = f"f{i}".encode()
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x314, 20, 0, 8, 0, 0x21, 0, len(data), size,
                               len(name), 0, 0, 0, 0, 0o100644 << 16, 0) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, copies, copies, len(central), len(local), 0)
    return local + central + end


def truncated(fraction: float) -> Callable[[], bytes]:
    def build() -> bytes:
        data = package_zip()
        return data[: int(len(data) * fraction)]

    return build


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the archive corpus


@dataclass(frozen=True)
class ArchiveCase:
    id: str
    build: Callable[[], bytes]
    code: str
    fragment: str  # a part of the sentence that names what is wrong


def _hostile(name: str | bytes, content: bytes = b"evil", **fields: Any) -> Callable[[], bytes]:
    return lambda: with_hostile(deflated(name, content, **fields))


ARCHIVE_CASES = [
    ArchiveCase("dotdot", _hostile("../escape.txt"), "unsafe_archive", "'../escape.txt' has a '..' part"),
    ArchiveCase("dotdot-deep", _hostile("notes/../../../escape.txt"), "unsafe_archive", "has a '..' part"),
    ArchiveCase(
        "dotdot-in-zipped-folder",
        lambda: raw_zip([deflated("pkg/" + r.name.decode(), package()[r.name.decode()]) for r in package_entries()]
                        + [deflated("pkg/../../escape.txt", b"evil")]),
        "unsafe_archive", "'pkg/../../escape.txt' has a '..' part",
    ),
    ArchiveCase("absolute", _hostile("/tmp/escape.txt"), "unsafe_archive", "'/tmp/escape.txt' has an absolute path"),
    ArchiveCase("drive-letter", _hostile("C:/escape.txt"), "unsafe_archive",
                "'C:/escape.txt' starts with a drive letter"),
    ArchiveCase("drive-relative", _hostile("c:escape.txt"), "unsafe_archive", "starts with a drive letter"),
    ArchiveCase("backslash-dotdot", _hostile("..\\escape.txt"), "unsafe_archive", "has a backslash in its name"),
    ArchiveCase("backslash-folder", _hostile("notes\\escape.txt"), "unsafe_archive", "has a backslash in its name"),
    ArchiveCase(
        "symlink-member",
        _hostile("leak.txt", b"/etc/passwd", mode=stat.S_IFLNK | 0o777),
        "unsafe_archive", "'leak.txt' is a symbolic link",
    ),
    ArchiveCase(
        "symlink-as-model",
        lambda: raw_zip([r for r in package_entries() if r.name != b"model.joblib"]
                        + [stored("model.joblib", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)]),
        "unsafe_archive", "'model.joblib' is a symbolic link",
    ),
    ArchiveCase("char-device", _hostile("tty", b"", mode=stat.S_IFCHR | 0o644), "unsafe_archive", "'tty' is a device"),
    ArchiveCase("block-device", _hostile("sda", b"", mode=stat.S_IFBLK | 0o644), "unsafe_archive", "'sda' is a device"),
    ArchiveCase("fifo-member", _hostile("pipe", b"", mode=stat.S_IFIFO | 0o644), "unsafe_archive", "'pipe' is a FIFO"),
    ArchiveCase("socket-member", _hostile("sock", b"", mode=stat.S_IFSOCK | 0o644), "unsafe_archive",
                "'sock' is a socket"),
    ArchiveCase(
        "duplicate-model", _hostile("model.joblib", b"a second model wins in zipfile"),
        "unsafe_archive", "'model.joblib' appears twice",
    ),
    ArchiveCase(
        "duplicate-model-first",
        lambda: with_hostile(deflated("model.joblib", b"shadowing model"), first=True),
        "unsafe_archive", "'model.joblib' appears twice",
    ),
    ArchiveCase(
        "duplicate-by-case", _hostile("Metadata.JSON", b"{}"),
        "unsafe_archive", "'Metadata.JSON' collides with 'metadata.json'",
    ),
    ArchiveCase(
        "encrypted",
        lambda: raw_zip([
            Raw(r.name, r.data, r.method, r.crc, r.size, flags=0x1) if r.name == b"model.joblib" else r
            for r in package_entries()
        ]),
        "unsafe_archive", "'model.joblib' is encrypted",
    ),
    ArchiveCase(
        "strong-encryption", _hostile("secret.bin", b"x" * 64, flags=0x41),
        "unsafe_archive", "'secret.bin' is encrypted",
    ),
    ArchiveCase(
        "bomb-honest-4gib",
        lambda: with_hostile(Raw(b"data.bin", zeros_stream(3900), zipfile.ZIP_DEFLATED, 0, 3900 * MIB)),
        "archive_too_large", "'data.bin' declares 4089446400 bytes from",
    ),
    ArchiveCase(
        "bomb-understated-2gib",
        lambda: with_hostile(Raw(b"data.bin", zeros_stream(2048), zipfile.ZIP_DEFLATED, 0, MIB)),
        "archive_too_large", "'data.bin' declares 1048576 bytes but holds more",
    ),
    ArchiveCase(
        "bomb-understated-model",
        lambda: raw_zip([r for r in package_entries() if r.name != b"model.joblib"]
                        + [Raw(b"model.joblib", zeros_stream(2048), zipfile.ZIP_DEFLATED, 0, 600_000)]),
        "archive_too_large", "'model.joblib' declares 600000 bytes but holds more",
    ),
    ArchiveCase(
        "bomb-overlapping-entries", lambda: overlapping_bomb(60, 64),
        "unsafe_archive", "overlap in the file (a zip-bomb construction)",
    ),
    ArchiveCase(
        "ten-thousand-members",
        lambda: with_hostile(*(stored(f"junk/{i}.txt", b"") for i in range(10_000))),
        "archive_too_large", "more than 100 members",
    ),
    ArchiveCase(
        "declared-smaller-than-data",
        lambda: raw_zip([
            Raw(r.name, r.data, r.method, r.crc, 1000) if r.name == b"model.joblib" else r
            for r in package_entries()
        ]),
        "archive_too_large", "'model.joblib' declares 1000 bytes but holds more",
    ),
    ArchiveCase(
        "declared-smaller-stored",
        lambda: raw_zip([r for r in package_entries() if r.name != b"README.md"]
                        + [Raw(b"README.md", b"R" * 5000, zipfile.ZIP_STORED, 0, 100)]),
        "archive_too_large", "'README.md' declares 100 bytes but holds more",
    ),
    ArchiveCase("truncated-10", truncated(0.10), "not_a_zip", "not a readable ZIP archive"),
    ArchiveCase("truncated-50", truncated(0.50), "not_a_zip", "not a readable ZIP archive"),
    ArchiveCase("truncated-99", truncated(0.99), "not_a_zip", "not a readable ZIP archive"),
    ArchiveCase("truncated-last-byte", lambda: package_zip()[:-1], "not_a_zip", "not a readable ZIP archive"),
    ArchiveCase(
        "truncated-member-data",
        lambda: raw_zip([
            Raw(r.name, r.data[: len(r.data) // 2], r.method, r.crc, r.size) if r.name == b"model.joblib" else r
            for r in package_entries()
        ]),
        "not_a_zip", "'model.joblib' holds",
    ),
    ArchiveCase(
        "non-utf8-name", _hostile(b"m\xff\xfe.txt", flags=0x800),
        "unsafe_archive", "b'm\\xff\\xfe.txt' is flagged as UTF-8 but its name is not valid UTF-8",
    ),
    ArchiveCase("nul-in-name", _hostile(b"model.joblib\x00.txt"), "unsafe_archive", "NUL or control character"),
    ArchiveCase(
        "local-header-names-another-file", _hostile("notes.txt", local_name=b"model.job"),
        "unsafe_archive", "is named b'model.job' in its local header",
    ),
    ArchiveCase("folder-with-data", _hostile("notes/", b"hidden"), "unsafe_archive",
                "folder entry 'notes/' holds 6 bytes"),
    ArchiveCase(
        "prepended-script", lambda: b"#!/bin/sh\nrm -rf ~\n" + package_zip(),
        "not_a_zip", "19 bytes of other data before the ZIP archive",
    ),
    ArchiveCase(
        "prepended-binary", lambda: b"MZ" + bytes(4094) + package_zip(),
        "not_a_zip", "4096 bytes of other data before the ZIP archive",
    ),
    ArchiveCase("unknown-method", lambda: with_hostile(Raw(b"x.bin", b"abc", 99, 0, 3)), "not_a_zip",
                "compression method 99"),
    ArchiveCase("empty-archive", lambda: raw_zip([]), "not_a_zip", "The archive is empty."),
]


# --------------------------------------------------------------------------- observation helpers


def outside_home(root: Path, home: Path) -> dict[str, str]:
    """Every path under `root` except the home, with a file's sha256 (links and specials by kind)."""
    listing: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == home:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if here / d != home]
        for name in dirs + files:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                listing[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                listing[rel] = "dir"
            elif path.is_file():
                listing[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                listing[rel] = "special"
    return listing


def written_bytes() -> int:
    """Bytes this process passed to write() so far, all threads (the server runs in this process)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


@dataclass
class Observed:
    code: str
    message: str
    elapsed_s: float
    written: int


async def refused(client: Any, request: pytest.FixtureRequest, tmp_path: Path, home: Path,
                  **arguments: Any) -> Observed:
    """Call import_zip expecting an error; check that the store and everything outside the home are unchanged."""
    store_before = store_state(home)
    outside_before = outside_home(tmp_path, home)
    written_before = written_bytes()
    started = time.perf_counter()
    code, message = await call_error(client, "import_zip", **arguments)
    elapsed = time.perf_counter() - started
    written = written_bytes() - written_before
    # Kept with the test's report (junit XML `-o junit_family=legacy`), not asserted: no timed tests.
    request.node.user_properties.append(("elapsed_s", round(elapsed, 4)))
    request.node.user_properties.append(("written_bytes", written))
    assert store_state(home) == store_before
    assert outside_home(tmp_path, home) == outside_before
    staging = home / "staging"
    assert not staging.exists() or os.listdir(staging) == []
    return Observed(code, message, elapsed, written)


# --------------------------------------------------------------------------- archive tests


# Sent inline too: the same checks must hold for bytes that never were a file on the server's disk.
BASE64_CASES = {
    "dotdot", "absolute", "symlink-member", "duplicate-model", "encrypted", "bomb-honest-4gib",
    "bomb-understated-2gib", "bomb-overlapping-entries", "ten-thousand-members", "truncated-50",
    "non-utf8-name", "prepended-binary",
}
ARCHIVE_CALLS = [
    pytest.param(case, via, id=f"{case.id}-{via}")
    for case in ARCHIVE_CASES
    for via in ("path", "base64")
    if via == "path" or case.id in BASE64_CASES
]


@pytest.mark.parametrize(("case", "via"), ARCHIVE_CALLS)
async def test_import_refuses_hostile_archives(client, tmp_path, home, request, case: ArchiveCase, via: str):
    data = case.build()
    upload = tmp_path / "upload.zip"
    upload.write_bytes(data)
    arguments = {"path": str(upload)} if via == "path" else {"content_base64": base64.b64encode(data).decode()}
    observed = await refused(client, request, tmp_path, home, **arguments)
    assert (observed.code, case.fragment in observed.message) == (case.code, True), observed.message
    assert observed.written < MAX_WRITTEN
    assert not (home / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_the_bombs_really_are_bombs() -> None:
    """The corpus is what it claims: Python's zipfile alone would unpack these to gigabytes."""
    honest = next(c for c in ARCHIVE_CASES if c.id == "bomb-honest-4gib").build()
    with zipfile.ZipFile(io.BytesIO(honest)) as archive:
        assert archive.getinfo("data.bin").file_size == 3900 * MIB
    assert len(honest) < 8 * MIB
    overlapping = overlapping_bomb(60, 64)
    with zipfile.ZipFile(io.BytesIO(overlapping)) as archive:
        assert sum(info.file_size for info in archive.infolist()) == 60 * 64 * MIB
        with archive.open("f0") as member:  # the shared data really inflates to 64 MiB
            assert member.read(MIB) == bytes(MIB)
    assert len(overlapping) < 200_000
    understated = zlib.decompressobj(-15).decompress(zeros_stream(2048), 3 * MIB)
    assert len(understated) == 3 * MIB  # more than the 1 MiB it declares


async def test_a_valid_package_written_by_the_raw_writer_imports(client, tmp_path):
    """The wrapper around each hostile part is itself a package the server accepts."""
    upload = tmp_path / "upload.zip"
    upload.write_bytes(package_zip())
    answer = await call(client, "import_zip", path=str(upload))
    assert (answer["status"], answer["extra_files"]) == ("available", [])


@dataclass(frozen=True)
class PathCase:
    id: str
    make: Callable[[Path], Path]
    code: str
    fragment: str


def _symlink_to_package(tmp_path: Path) -> Path:
    real = tmp_path / "real.zip"
    real.write_bytes(package_zip())
    link = tmp_path / "link.zip"
    link.symlink_to(real)
    return link


def _dangling_link(tmp_path: Path) -> Path:
    link = tmp_path / "dangling.zip"
    link.symlink_to(tmp_path / "nowhere.zip")
    return link


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    return fifo


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "folder.zip"
    folder.mkdir()
    return folder


PATH_CASES = [
    PathCase("symlink-to-a-package", _symlink_to_package, "unsafe_archive", "is a symbolic link"),
    PathCase("symlink-to-etc-passwd", lambda t: _link(t, "/etc/passwd"), "unsafe_archive", "is a symbolic link"),
    PathCase("dangling-symlink", _dangling_link, "unsafe_archive", "is a symbolic link"),
    PathCase("fifo", _fifo, "unsafe_archive", "is a FIFO, not a regular .zip file"),
    PathCase("folder", _folder, "unsafe_archive", "is a folder, not a regular .zip file"),
    PathCase("char-device", lambda t: Path("/dev/null"), "unsafe_archive", "is a device, not a regular .zip file"),
    PathCase("missing", lambda t: t / "missing.zip", "not_found", "There is no file at"),
    PathCase("missing-parent", lambda t: t / "no-folder" / "p.zip", "not_found", "There is no file at"),
]


def _link(tmp_path: Path, target: str) -> Path:
    link = tmp_path / "passwd.zip"
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("case", PATH_CASES, ids=[c.id for c in PATH_CASES])
async def test_import_refuses_paths_that_are_not_regular_files(client, tmp_path, home, request, case: PathCase):
    path = case.make(tmp_path)
    observed = await refused(client, request, tmp_path, home, path=str(path))
    assert (observed.code, case.fragment in observed.message) == (case.code, True), observed.message


async def test_a_nested_zip_is_kept_as_a_plain_file_and_never_unpacked(client, tmp_path, home):
    inner = zipped({"../../escape.txt": b"evil", "model.joblib": b"not this one", "/etc/evil": b"x"})
    upload = tmp_path / "upload.zip"
    upload.write_bytes(with_hostile(stored("inner.zip", inner)))
    outside_before = outside_home(tmp_path, home)
    answer = await call(client, "import_zip", path=str(upload))
    assert answer["status"] == "available"
    assert answer["extra_files"] == ["inner.zip"]
    stored_dir = home / "models" / answer["version"]
    assert sorted(p.relative_to(stored_dir).as_posix() for p in stored_dir.rglob("*")) == sorted(
        [*package(), "inner.zip"]
    )
    assert (stored_dir / "inner.zip").read_bytes() == inner
    assert (stored_dir / "model.joblib").read_bytes() == package()["model.joblib"]
    assert not any(p.name == "escape.txt" for p in home.rglob("*"))
    assert outside_home(tmp_path, home) == outside_before


# --------------------------------------------------------------------------- pickle corpus


class _Call:
    """Pickles as `func(*args)`: what a hostile `__reduce__` writes."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


class _ReduceEx:
    """Pickles as whatever `__reduce_ex__` hands back: the hook that wins over `__reduce__`."""

    def __init__(self, value: tuple[Any, ...]) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:  # never used: __reduce_ex__ takes precedence
        return (int, (0,))

    def __reduce_ex__(self, protocol: int) -> tuple[Any, ...]:
        return self.value


def _text(value: str) -> bytes:
    data = value.encode()
    if len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    return b"X" + struct.pack("<I", len(data)) + data


def _global(module: str, name: str) -> bytes:
    return _text(module) + _text(name) + b"\x93"


def _value(obj: Any) -> bytes:
    """The opcodes that push `obj` (a protocol-2 dump without PROTO and STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _call(module: str, name: str, *args: Any) -> bytes:
    """Protocol 4: STACK_GLOBAL module name, then REDUCE with args."""
    return b"\x80\x04" + _global(module, name) + _value(args) + b"R."


@dataclass
class Arena:
    """Where hostile payloads aim: every effect they could have lands in `markers`."""

    root: Path
    markers: Path
    module: str  # an importable module that writes a marker when imported

    @property
    def marker(self) -> Path:
        return self.markers / "pwned"

    @property
    def touch(self) -> str:
        return f"touch {self.marker}"

    @property
    def evil_pickle(self) -> Path:
        """A file whose naive loading (pickle, joblib, numpy allow_pickle) writes the marker."""
        path = self.root / "evil.pkl"
        if not path.exists():
            path.write_bytes(pickle.dumps(_Call(os.system, self.touch), protocol=2))
        return path

    @property
    def evil_npy(self) -> Path:
        path = self.root / "evil.npy"
        if not path.exists():
            np.save(path, np.array([_Call(os.system, self.touch)], dtype=object), allow_pickle=True)
        return path

    @property
    def evil_script(self) -> Path:
        path = self.root / "evil_script.py"
        path.write_text(f"open({str(self.marker)!r}, 'w').close()\n")
        return path


def make_arena(root: Path) -> Arena:
    root.mkdir(parents=True, exist_ok=True)
    markers = root / "markers"
    markers.mkdir()
    module = f"evil_{uuid.uuid4().hex}"
    (root / f"{module}.py").write_text(f"open({str(markers / 'imported')!r}, 'w').close()\nvalue = 1\n")
    return Arena(root, markers, module)


@dataclass(frozen=True)
class PickleCase:
    id: str
    build: Callable[[Arena], bytes]
    code: str
    fragment: str
    runs_naively: bool = True  # plain joblib.load of the payload leaves a file in `markers`


def _wrapper(shape: tuple[int, ...], dtype: str = "float64") -> bytes:
    """A joblib array header (NumpyArrayWrapper) claiming `shape`, followed by 64 bytes of data."""
    wrapper = NumpyArrayWrapper(np.ndarray, shape, "C", np.dtype(dtype))
    return pickle.dumps(wrapper, protocol=2)[:-1] + b"\x00" + bytes(64) + b"."


def _joblib_bytes(obj: Any, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, **kwargs)
    return buffer.getvalue()


def _object_array_in_model(arena: Arena, compress: int) -> bytes:
    model = IsolationForest(n_estimators=3, random_state=0).fit(np.random.default_rng(0).normal(size=(64, 8)))
    model.audit_ = np.array([1, _Call(os.system, arena.touch)], dtype=object)
    return _joblib_bytes(model, compress=compress)


def _getattr_chain(arena: Arena) -> bytes:
    """getattr(__import__("os"), "system")("touch ...")."""
    return (b"\x80\x04" + _global("builtins", "getattr") + _global("builtins", "__import__") + _value(("os",))
            + b"R" + _text("system") + b"\x86R" + _value((arena.touch,)) + b"R.")


def _operator_chain(arena: Arena, name: str) -> bytes:
    """attrgetter("system")(os)(cmd), methodcaller("system", cmd)(os), itemgetter("system")(vars(os))(cmd)."""
    imported_os = _global("builtins", "__import__") + _value(("os",)) + b"R"
    if name == "attrgetter":
        return (b"\x80\x04" + _global("operator", name) + _value(("system",)) + b"R" + imported_os + b"\x85R"
                + _value((arena.touch,)) + b"R.")
    if name == "methodcaller":
        return (b"\x80\x04" + _global("operator", name) + _value(("system", arena.touch)) + b"R" + imported_os
                + b"\x85R.")
    return (b"\x80\x04" + _global("operator", "itemgetter") + _value(("system",)) + b"R"
            + _global("builtins", "vars") + imported_os + b"\x85R\x85R" + _value((arena.touch,)) + b"R.")


def _reconstructor_popen(arena: Arena) -> bytes:
    """copyreg._reconstructor(Popen, Popen, argv) runs Popen.__new__ and then Popen.__init__(argv)."""
    return (b"\x80\x04" + _global("copyreg", "_reconstructor") + b"(" + _global("subprocess", "Popen")
            + _global("subprocess", "Popen") + _value(["sh", "-c", arena.touch]) + b"tR.")


def _build_on_trusted_class(arena: Arena) -> bytes:
    """BUILD with a slot state on IsolationForest itself: setattr(IsolationForest, 'predict', ...)."""
    state = _value({"predict": 0})
    return b"\x80\x04" + _global("sklearn.ensemble._iforest", "IsolationForest") + b"N" + state + b"\x86b."


PROTOCOLS = range(6)

PICKLE_CASES: list[PickleCase] = [
    # Every protocol, the classic payload and the builtins an attacker reaches for.
    *(PickleCase(f"os-system-protocol-{p}", lambda a, p=p: pickle.dumps(_Call(os.system, a.touch), protocol=p),
                 "untrusted_model", "`posix.system`") for p in PROTOCOLS),
    *(PickleCase(f"exec-protocol-{p}",
                 lambda a, p=p: pickle.dumps(_Call(exec, f"open({str(a.marker)!r}, 'w').close()"), protocol=p),
                 "untrusted_model", "`builtins.exec`") for p in PROTOCOLS),
    *(PickleCase(f"subprocess-protocol-{p}",
                 lambda a, p=p: pickle.dumps(_Call(subprocess.call, ["touch", str(a.marker)]), protocol=p),
                 "untrusted_model", "`subprocess.call`") for p in PROTOCOLS),
    # Dotted names: pickle walks them attribute by attribute from a trusted module.
    PickleCase("dotted-sklearn-os-system", lambda a: _call("sklearn", "os.system", a.touch),
               "untrusted_model", "`sklearn.os.system`"),
    PickleCase("dotted-joblib-os-system", lambda a: _call("joblib.numpy_pickle", "os.system", a.touch),
               "untrusted_model", "`joblib.numpy_pickle.os.system`"),
    PickleCase("dotted-estimator-globals",
               lambda a: _call("sklearn.ensemble._iforest", "IsolationForest.__init__.__globals__"),
               "untrusted_model", "`sklearn.ensemble._iforest.IsolationForest.__init__.__globals__`",
               runs_naively=False),
    PickleCase("dotted-ndarray-globals", lambda a: _call("numpy", "ndarray.__init__.__globals__"),
               "untrusted_model", "`numpy.ndarray.__init__.__globals__`", runs_naively=False),
    PickleCase("dotted-subprocess-via-joblib",
               lambda a: _call("joblib.parallel", "subprocess.call", ["touch", str(a.marker)]),
               "untrusted_model", "`joblib.parallel.subprocess.call`", runs_naively=False),
    # Functions of allowed packages that read or write files.
    PickleCase("numpy-save", lambda a: _call("numpy", "save", str(a.markers / "saved.npy"), [1, 2]),
               "untrusted_model", "`numpy.save`"),
    PickleCase("numpy-savetxt", lambda a: _call("numpy", "savetxt", str(a.markers / "saved.txt"), [1.0]),
               "untrusted_model", "`numpy.savetxt`"),
    PickleCase("numpy-load-allow-pickle", lambda a: _call("numpy", "load", str(a.evil_npy), None, True),
               "untrusted_model", "`numpy.load`"),
    PickleCase("numpy-fromfile", lambda a: _call("numpy", "fromfile", str(a.evil_npy)),
               "untrusted_model", "`numpy.fromfile`", runs_naively=False),
    PickleCase("joblib-load", lambda a: _call("joblib", "load", str(a.evil_pickle)),
               "untrusted_model", "`joblib.load`"),
    PickleCase("joblib-dump", lambda a: _call("joblib", "dump", [1], str(a.markers / "dumped.joblib")),
               "untrusted_model", "`joblib.dump`"),
    PickleCase("joblib-numpy-pickle-load", lambda a: _call("joblib.numpy_pickle", "load", str(a.evil_pickle)),
               "untrusted_model", "`joblib.numpy_pickle.load`"),
    PickleCase("sklearn-dump-svmlight",
               lambda a: _call("sklearn.datasets", "dump_svmlight_file", [[1.0]], [1], str(a.markers / "x.svm")),
               "untrusted_model", "`sklearn.datasets.dump_svmlight_file`"),
    PickleCase("scipy-savemat", lambda a: _call("scipy.io", "savemat", str(a.markers / "x.mat"), {}),
               "untrusted_model", "`scipy.io.savemat`"),
    PickleCase("builtins-open", lambda a: _call("builtins", "open", str(a.markers / "opened"), "w"),
               "untrusted_model", "`builtins.open`"),
    PickleCase("io-open", lambda a: _call("io", "open", str(a.markers / "opened"), "w"),
               "untrusted_model", "`io.open`"),
    PickleCase("shutil-copyfile", lambda a: _call("shutil", "copyfile", str(a.evil_pickle), str(a.markers / "copy")),
               "untrusted_model", "`shutil.copyfile`"),
    # Loading libraries.
    PickleCase("ctypes-cdll", lambda a: _call("ctypes", "CDLL", "libc.so.6"),
               "untrusted_model", "`ctypes.CDLL`", runs_naively=False),
    PickleCase("ctypes-dotted-loadlibrary", lambda a: _call("ctypes", "cdll.LoadLibrary", "libc.so.6"),
               "untrusted_model", "`ctypes.cdll.LoadLibrary`", runs_naively=False),
    PickleCase("numpy-ctypeslib-load-library", lambda a: _call("numpy.ctypeslib", "load_library", "libc", "/lib"),
               "untrusted_model", "`numpy.ctypeslib.load_library`", runs_naively=False),
    PickleCase("ctypes-dlopen", lambda a: _call("_ctypes", "dlopen", "libc.so.6", 0),
               "untrusted_model", "`_ctypes.dlopen`", runs_naively=False),
    # Importing code.
    PickleCase("import-a-module-by-name", lambda a: _call(a.module, "value"), "untrusted_model", ".value`"),
    PickleCase("builtins-import", lambda a: _call("builtins", "__import__", a.module),
               "untrusted_model", "`builtins.__import__`"),
    PickleCase("importlib-import-module", lambda a: _call("importlib", "import_module", a.module),
               "untrusted_model", "`importlib.import_module`"),
    PickleCase("pkgutil-resolve-name", lambda a: _call("pkgutil", "resolve_name", f"{a.module}:value"),
               "untrusted_model", "`pkgutil.resolve_name`"),
    PickleCase("runpy-run-path", lambda a: _call("runpy", "run_path", str(a.evil_script)),
               "untrusted_model", "`runpy.run_path`"),
    # A nested pickle stream inside an object array (joblib writes those apart from the main stream).
    PickleCase("object-array-stream", lambda a: _joblib_bytes(np.array([1, _Call(os.system, a.touch)], dtype=object)),
               "untrusted_model", "`posix.system`"),
    PickleCase("object-array-stream-compressed",
               lambda a: _joblib_bytes(np.array([1, _Call(os.system, a.touch)], dtype=object), compress=3),
               "untrusted_model", "`posix.system`"),
    PickleCase("object-array-inside-a-real-model", lambda a: _object_array_in_model(a, 0),
               "untrusted_model", "`posix.system`"),
    PickleCase("object-array-inside-a-compressed-model", lambda a: _object_array_in_model(a, 3),
               "untrusted_model", "`posix.system`"),
    # Array headers claiming huge sizes: refused without allocating or reading gigabytes.
    PickleCase("array-header-8-terabytes", lambda a: _wrapper((10**12,)), "model_load_failed",
               "would unpack to more than", runs_naively=False),
    PickleCase("array-header-2d-8-terabytes", lambda a: _wrapper((2**20, 2**20)), "model_load_failed",
               "would unpack to more than", runs_naively=False),
    PickleCase("array-header-2-gib-short-data", lambda a: _wrapper((2**28,)), "model_load_failed",
               "would unpack to more than", runs_naively=False),
    PickleCase("array-header-negative-shape", lambda a: _wrapper((-1,)), "model_load_failed",
               "invalid dtype or shape", runs_naively=False),
    PickleCase("ndarray-reconstruct-huge-shape",
               lambda a: (b"\x80\x04" + _global("numpy._core.multiarray", "_reconstruct") + b"("
                          + _global("numpy", "ndarray") + _value((2**62,)) + _text("b") + b"tR."),
               "model_load_failed", "would unpack to more than", runs_naively=False),
    # getattr and __reduce_ex__ tricks.
    PickleCase("getattr-import-chain", _getattr_chain, "untrusted_model", "`builtins.getattr`"),
    PickleCase("reduce-ex-os-system", lambda a: pickle.dumps(_ReduceEx((os.system, (a.touch,))), protocol=4),
               "untrusted_model", "`posix.system`"),
    PickleCase("reduce-ex-getattr-on-a-trusted-class",
               lambda a: pickle.dumps(_ReduceEx((getattr, (IsolationForest, "fit"))), protocol=4),
               "untrusted_model", "`builtins.getattr`", runs_naively=False),
    # What a `__reduce_ex__` returning copyreg.__newobj__ / __newobj_ex__ writes (the pickler refuses
    # to write it for a class other than the object's own, so these are spelled out): NEWOBJ and
    # NEWOBJ_EX opcodes, which name the class through find_class as well.
    PickleCase("newobj-popen", lambda a: b"\x80\x02csubprocess\nPopen\n)\x81.",
               "untrusted_model", "`subprocess.Popen`", runs_naively=False),
    PickleCase("newobj-ex-popen", lambda a: b"\x80\x04" + _global("subprocess", "Popen") + b")}\x92.",
               "untrusted_model", "`subprocess.Popen`", runs_naively=False),
    PickleCase("build-on-a-trusted-class", _build_on_trusted_class,
               "untrusted_model", "tries to change `sklearn.ensemble._iforest.IsolationForest`", runs_naively=False),
    # copyreg and operator helpers.
    PickleCase("copyreg-reconstructor-popen", _reconstructor_popen, "untrusted_model", "`copyreg._reconstructor`"),
    PickleCase("copyreg-newobj-global", lambda a: _call("copyreg", "__newobj__", subprocess.Popen),
               "untrusted_model", "`copyreg.__newobj__`", runs_naively=False),
    PickleCase("operator-attrgetter", lambda a: _operator_chain(a, "attrgetter"),
               "untrusted_model", "`operator.attrgetter`"),
    PickleCase("operator-methodcaller", lambda a: _operator_chain(a, "methodcaller"),
               "untrusted_model", "`operator.methodcaller`"),
    PickleCase("operator-itemgetter", lambda a: _operator_chain(a, "itemgetter"),
               "untrusted_model", "`operator.itemgetter`"),
    PickleCase("functools-partial", lambda a: pickle.dumps(_Call(functools.partial(os.system, a.touch)), protocol=4),
               "untrusted_model", "`functools.partial`"),
    PickleCase("extension-code", lambda a: b"\x80\x02\x82\x01.", "untrusted_model", "pickle extension code",
               runs_naively=False),
]


@pytest.mark.parametrize("case", PICKLE_CASES, ids=[c.id for c in PICKLE_CASES])
async def test_import_refuses_hostile_pickles_without_running_them(
    client, tmp_path, home, request, monkeypatch, case: PickleCase
):
    arena = make_arena(tmp_path / "arena")
    monkeypatch.syspath_prepend(str(arena.root))  # the module is importable: only the policy stops it
    predict_before = IsolationForest.predict
    files = samples.package_files(extra_files={"model.joblib": case.build(arena)})
    upload = samples.write_zip(files, tmp_path / "upload.zip")
    try:
        observed = await refused(client, request, tmp_path, home, path=str(upload))
    finally:
        changed = IsolationForest.predict is not predict_before
        IsolationForest.predict = predict_before  # type: ignore[method-assign]
    assert (observed.code, case.fragment in observed.message) == (case.code, True), observed.message
    assert list(arena.markers.iterdir()) == []
    assert arena.module not in sys.modules
    assert not changed
    assert observed.written < MAX_WRITTEN


_NAIVE_LOADER = """
import json, sys
import joblib
for path in json.loads(sys.argv[1]):
    try:
        joblib.load(path)
    except BaseException as exc:  # some payloads fail after their effect
        pass
"""


def test_the_hostile_pickles_really_run_when_loaded_naively(tmp_path: Path) -> None:
    """The corpus is not vacuous: joblib.load, in a child process, lets each payload write its marker."""
    cases = [case for case in PICKLE_CASES if case.runs_naively]
    arenas, paths = [], []
    for i, case in enumerate(cases):
        arena = make_arena(tmp_path / f"arena-{i}")
        path = arena.root / "model.joblib"
        path.write_bytes(case.build(arena))
        arenas.append(arena)
        paths.append(str(path))
    search_path = os.pathsep.join(str(a.root) for a in arenas)
    env = {**os.environ, "PYTHONPATH": search_path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", _NAIVE_LOADER, json.dumps(paths)], env=env, check=True,
                   capture_output=True, timeout=120)
    silent = [case.id for case, arena in zip(cases, arenas, strict=True) if not any(arena.markers.iterdir())]
    assert silent == []


@functools.cache
def _sample_forest() -> IsolationForest:
    return samples.build_model("iforest", samples.training_data())


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_real_model_at_every_pickle_protocol(client, tmp_path, home, request, protocol: int):
    """Protocols 2 to 5 import; 0 and 1 pickle plain objects through copyreg, which is not trusted by default."""
    model = _sample_forest()
    files = samples.package_files(extra_files={"model.joblib": _joblib_bytes(model, protocol=protocol)})
    upload = samples.write_zip(files, tmp_path / "upload.zip")
    if protocol >= 2:
        answer = await call(client, "import_zip", path=str(upload))
        assert (answer["status"], answer["validation"]["passed"]) == ("available", True)
    else:
        observed = await refused(client, request, tmp_path, home, path=str(upload))
        assert observed.code == "untrusted_model"
        assert "`copyreg._reconstructor`" in observed.message


# --- models built only from trusted types that are still hostile ------------------------------
def _forest_with_bad_child() -> bytes:
    model = samples.build_model("iforest", samples.training_data(seed=0), seed=0)
    tree = model.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**9  # a child index far past the node array
    tree.__setstate__(dict(state, nodes=nodes))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


async def test_a_tree_pointing_out_of_range_fails_validation_and_never_serves(client, packages, home):
    path = packages(version="bad-tree", extra_files={"model.joblib": _forest_with_bad_child()})
    answer = await call(client, "import_zip", path=str(path))
    assert answer["status"] == "failed"
    assert "model_load" in answer["validation"]["failed_checks"]
    report = await call(client, "validate", version="bad-tree")
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "model_load")
    assert "structure" in detail and "child" in detail
    code, _ = await call_error(client, "deploy", version="bad-tree")
    assert code == "invalid_state"
    # The server is alive and still answers.
    assert (await call(client, "list_models"))["total"] == 1
