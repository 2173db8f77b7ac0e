"""Safe ZIP reading and extraction: every archive is built here, with zipfile or by hand."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import stat
import struct
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from model_mcp.core.archive import (
    ArchiveLimits,
    ExtractedFile,
    decode_base64_upload,
    extract_zip,
    hash_file,
    read_end_record,
    read_upload_path,
)
from model_mcp.core.errors import (
    ArchiveTooLargeError,
    NotAZipError,
    NotFoundError,
    UnsafeArchiveError,
)
from model_mcp.settings import Settings

MIB = 1024 * 1024
LIMITS = ArchiveLimits()


# --------------------------------------------------------------------------- builders


def make_zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we build on purpose
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return buffer.getvalue()


def with_mode(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def _central_offset(buf: bytearray, start_dir: int, name: bytes) -> int:
    pos = start_dir
    while buf[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<3H", buf, pos + 28)
        if bytes(buf[pos + 46 : pos + 46 + name_len]) == name:
            return pos
        pos += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"no central entry for {name!r}")


def patch_member(
    data: bytes,
    name: str,
    *,
    flags_or: int = 0,
    method: int | None = None,
    compress_size: int | None = None,
    file_size: int | None = None,
    rename: bytes | None = None,
    local_rename: bytes | None = None,
) -> bytes:
    """Rewrite one member's fields in its local header and its central entry (same offsets + 2)."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
        start_dir = archive.start_dir
    local = info.header_offset
    central = _central_offset(buf, start_dir, name.encode())
    for base in (local, central + 2):
        flags = struct.unpack_from("<H", buf, base + 6)[0]
        struct.pack_into("<H", buf, base + 6, flags | flags_or)
        if method is not None:
            struct.pack_into("<H", buf, base + 8, method)
        if compress_size is not None:
            struct.pack_into("<L", buf, base + 18, compress_size)
        if file_size is not None:
            struct.pack_into("<L", buf, base + 22, file_size)
    for new, places in ((rename, (local + 30, central + 46)), (local_rename, (local + 30,))):
        if new is not None:
            assert len(new) == len(name.encode())
            for at in places:
                buf[at : at + len(new)] = new
    return bytes(buf)


def overlapping_zip(copies: int, payload: bytes) -> bytes:
    """One local header and its deflated data, and `copies` central entries all pointing at it."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = packer.compress(payload) + packer.flush()
    crc = zlib.crc32(payload)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(packed), len(payload), 2, 0)
    local += b"f0" + packed
    central = b""
    for i in range(copies):
        name = f"f{i}".encode()
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 0x314, 20, 0, 8, 0, 0x21, crc, len(packed), len(payload),
            len(name), 0, 0, 0, 0, 0o100644 << 16, 0,
        ) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, copies, copies, len(central), len(local), 0)
    return local + central + end


@functools.cache
def zeros_bomb() -> bytes:
    """50 MB of zeros, deflated to about 50 KB (ratio about 1000)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("model.joblib", bytes(50_000_000))
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "staging"
    folder.mkdir()
    return folder


def refuse(source: bytes | Path, dest: Path, error: type[Exception], fragment: str,
           limits: ArchiveLimits = LIMITS) -> list[int]:
    """Extraction must raise exactly `error` with `fragment` in its sentence and leave `dest` empty.

    Answers the `bytes_done` values reported by progress (how much was written before the stop).
    """
    done: list[int] = []
    with pytest.raises(error) as caught:
        extract_zip(source, dest, limits, lambda bytes_done, total: done.append(bytes_done))
    assert type(caught.value) is error
    assert fragment in str(caught.value)
    assert list(dest.iterdir()) == []
    return done


PACKAGE = {
    "model.joblib": os.urandom(5000),
    "metadata.json": b'{"model_name": "m"}',
    "deployment_manifest.json": b'{"files": {}}',
}


# --------------------------------------------------------------------------- good archives


def test_flat_package_extracts_with_hashes_and_sizes(dest: Path) -> None:
    data = make_zip(list(PACKAGE.items()))

    result = extract_zip(data, dest, LIMITS)

    assert result.files == {
        name: ExtractedFile(name=name, size=len(content), sha256=sha(content)) for name, content in PACKAGE.items()
    }
    assert result.stripped_prefix is None
    assert result.ignored == []
    assert sorted(p.name for p in dest.iterdir()) == sorted(PACKAGE)
    for name, content in PACKAGE.items():
        assert (dest / name).read_bytes() == content


def test_zipped_folder_is_stripped_and_junk_ignored(dest: Path) -> None:
    notes = b"trained on week 12"
    data = make_zip([
        ("pkg/", b""),
        *((f"pkg/{name}", content) for name, content in PACKAGE.items()),
        ("pkg/docs/notes.txt", notes),
        ("pkg/.DS_Store", b"junk"),
        ("__MACOSX/pkg/._model.joblib", b"junk"),
    ])

    result = extract_zip(data, dest, LIMITS)

    assert result.stripped_prefix == "pkg"
    assert sorted(result.files) == sorted([*PACKAGE, "docs/notes.txt"])
    assert result.files["docs/notes.txt"] == ExtractedFile("docs/notes.txt", len(notes), sha(notes))
    assert result.files["model.joblib"].sha256 == sha(PACKAGE["model.joblib"])
    assert result.ignored == ["pkg/", "pkg/.DS_Store", "__MACOSX/pkg/._model.joblib"]
    assert sorted(p.name for p in dest.iterdir()) == sorted([*PACKAGE, "docs"])
    assert (dest / "docs" / "notes.txt").read_bytes() == notes


def test_no_stripping_when_a_file_sits_at_the_root(dest: Path) -> None:
    result = extract_zip(make_zip([("README.md", b"r"), ("pkg/model.joblib", b"m")]), dest, LIMITS)

    assert result.stripped_prefix is None
    assert sorted(result.files) == ["README.md", "pkg/model.joblib"]


def test_no_stripping_with_two_top_level_folders(dest: Path) -> None:
    result = extract_zip(make_zip([("a/x.txt", b"x"), ("b/y.txt", b"y")]), dest, LIMITS)

    assert result.stripped_prefix is None
    assert sorted(result.files) == ["a/x.txt", "b/y.txt"]


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["stored", "deflate", "bzip2", "lzma"],
)
def test_every_supported_method_extracts_exact_bytes(dest: Path, method: int) -> None:
    content = os.urandom(1_500_000) + b"abc" * 700_000  # several output chunks, part compressible
    result = extract_zip(make_zip([("model.joblib", content), ("empty.txt", b"")], method), dest, LIMITS)

    assert result.files["model.joblib"] == ExtractedFile("model.joblib", len(content), sha(content))
    assert result.files["empty.txt"] == ExtractedFile("empty.txt", 0, sha(b""))
    assert (dest / "model.joblib").read_bytes() == content


def test_nested_zip_is_kept_as_a_plain_file(dest: Path) -> None:
    inner = make_zip([("inside.txt", b"not unpacked")])
    result = extract_zip(make_zip([("model.joblib", b"m"), ("inner.zip", inner)]), dest, LIMITS)

    assert result.files["inner.zip"] == ExtractedFile("inner.zip", len(inner), sha(inner))
    assert sorted(p.name for p in dest.iterdir()) == ["inner.zip", "model.joblib"]


def test_only_folders_unpack_to_nothing(dest: Path) -> None:
    result = extract_zip(make_zip([("pkg/", b""), ("pkg/sub/", b"")]), dest, LIMITS)

    assert result.files == {}
    assert result.ignored == ["pkg/", "pkg/sub/"]
    assert list(dest.iterdir()) == []


def test_extracts_from_a_path_and_reports_progress(dest: Path, tmp_path: Path) -> None:
    content = os.urandom(9 * MIB)
    upload = tmp_path / "package.zip"
    upload.write_bytes(make_zip([("model.joblib", content)], zipfile.ZIP_STORED))
    calls: list[tuple[int, int]] = []

    result = extract_zip(upload, dest, LIMITS, lambda done, total: calls.append((done, total)))

    assert result.files["model.joblib"].sha256 == sha(content)
    assert calls[0] == (0, len(content))
    assert calls[-1] == (len(content), len(content))
    assert len(calls) >= 3  # at least one report while streaming
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_hash_file_matches_hashlib(tmp_path: Path) -> None:
    content = os.urandom(2 * MIB + 17)
    path = tmp_path / "blob"
    path.write_bytes(content)

    assert hash_file(path, chunk=4096) == (sha(content), len(content))


def test_limits_come_from_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_upload_bytes=11, max_unpacked_bytes=22, max_members=3,
                        max_ratio=4.5, ratio_min_member_bytes=6)

    assert ArchiveLimits.from_settings(settings) == ArchiveLimits(11, 22, 3, 4.5, 6)
    assert ArchiveLimits.from_settings(Settings(home=tmp_path)) == ArchiveLimits()


def test_destination_must_be_empty(dest: Path) -> None:
    (dest / "left-over").write_bytes(b"x")
    with pytest.raises(ValueError):
        extract_zip(make_zip([("a.txt", b"a")]), dest, LIMITS)


# --------------------------------------------------------------------------- unsafe names


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../evil.txt", "'..' part"),
        ("pkg/../../evil.txt", "'..' part"),
        ("/etc/evil.txt", "absolute path"),
        ("C:/evil.txt", "drive letter"),
        ("c:evil.txt", "drive letter"),
        ("..\\evil.txt", "backslash"),
        ("pkg\\model.joblib", "backslash"),
        ("pkg//model.joblib", "empty or '.' part"),
        ("./model.joblib", "empty or '.' part"),
        ("a\x07b.txt", "control character"),
        ("report\u202etxt.exe", "control character"),
        ("x" * 256, "longer than 255 bytes"),
    ],
)
def test_import_rejects_unsafe_member_names(dest: Path, name: str, fragment: str) -> None:
    done = refuse(make_zip([("ok.txt", b"fine"), (name, b"evil")]), dest, UnsafeArchiveError, fragment)
    assert done == []  # refused before anything was written


def test_import_rejects_nul_in_a_name(dest: Path) -> None:
    # zipfile itself would cut the name at the NUL and extract 'a'.
    data = patch_member(make_zip([("aXb.txt", b"evil")]), "aXb.txt", rename=b"a\x00b.txt")
    refuse(data, dest, UnsafeArchiveError, "'a\\x00b.txt' has a NUL or control character")


def test_import_rejects_names_that_are_not_utf8(dest: Path) -> None:
    data = patch_member(make_zip([("mAB.txt", b"x")]), "mAB.txt", flags_or=0x800, rename=b"m\xff\xfe.txt")
    with pytest.raises(UnicodeDecodeError):  # what zipfile alone would do
        zipfile.ZipFile(io.BytesIO(data))
    refuse(data, dest, UnsafeArchiveError, "b'm\\xff\\xfe.txt'")


def test_import_rejects_local_header_naming_another_file(dest: Path) -> None:
    data = patch_member(make_zip([("model.txt", b"x")]), "model.txt", local_rename=b"other.txt")
    refuse(data, dest, UnsafeArchiveError, "b'other.txt' in its local header")


# --------------------------------------------------------------------------- unsafe types and flags


def test_import_rejects_symlink_member(dest: Path) -> None:
    data = make_zip([("ok.txt", b"fine"), (with_mode("model.joblib", stat.S_IFLNK | 0o777), b"/etc/passwd")])
    refuse(data, dest, UnsafeArchiveError, "'model.joblib' is a symbolic link")


@pytest.mark.parametrize(
    ("kind", "described"),
    [(stat.S_IFCHR, "a device"), (stat.S_IFBLK, "a device"), (stat.S_IFIFO, "a FIFO"), (stat.S_IFSOCK, "a socket")],
)
def test_import_rejects_special_file_members(dest: Path, kind: int, described: str) -> None:
    data = make_zip([(with_mode("dev", kind | 0o644), b"")])
    refuse(data, dest, UnsafeArchiveError, f"'dev' is {described}")


def test_regular_and_typeless_modes_are_files(dest: Path) -> None:
    data = make_zip([(with_mode("a.txt", stat.S_IFREG | 0o755), b"a"), (with_mode("b.txt", 0o600), b"b")])
    assert sorted(extract_zip(data, dest, LIMITS).files) == ["a.txt", "b.txt"]


def test_import_rejects_encrypted_member(dest: Path) -> None:
    data = patch_member(make_zip([("model.joblib", b"secret")]), "model.joblib", flags_or=0x1)
    refuse(data, dest, UnsafeArchiveError, "'model.joblib' is encrypted")


def test_import_rejects_folder_entry_with_data(dest: Path) -> None:
    refuse(make_zip([("pkg/", b"hidden")]), dest, UnsafeArchiveError, "folder entry 'pkg/' holds 6 bytes")


def test_unsupported_compression_is_not_a_zip(dest: Path) -> None:
    data = patch_member(make_zip([("model.joblib", b"m" * 100)]), "model.joblib", method=9)
    refuse(data, dest, NotAZipError, "compression method 9")


# --------------------------------------------------------------------------- duplicates


def test_import_rejects_duplicate_names(dest: Path) -> None:
    data = make_zip([("model.joblib", b"good"), ("model.joblib", b"evil")])
    refuse(data, dest, UnsafeArchiveError, "'model.joblib' appears twice")


def test_import_rejects_names_differing_only_by_case(dest: Path) -> None:
    data = make_zip([("Model.joblib", b"one"), ("model.joblib", b"two")])
    refuse(data, dest, UnsafeArchiveError, "'model.joblib' collides with 'Model.joblib'")


def test_import_rejects_a_file_used_as_a_folder(dest: Path) -> None:
    data = make_zip([("pkg", b"file"), ("pkg/model.joblib", b"m")])
    refuse(data, dest, UnsafeArchiveError, "'pkg' is a file, but 'pkg/model.joblib' uses it as a folder")


# --------------------------------------------------------------------------- bombs and limits


def test_import_rejects_overlapping_entries_bomb(dest: Path) -> None:
    payload = bytes(MIB)
    data = overlapping_zip(50, payload)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # zipfile alone accepts it: 50 MiB from ~1 KB
        assert len(archive.infolist()) == 50
        assert archive.read("f0") == payload
    assert len(data) < 5000

    done = refuse(data, dest, UnsafeArchiveError, "overlap")
    assert done == []


def test_import_rejects_member_whose_data_covers_the_next_one(dest: Path) -> None:
    # The 'quoted overlap' construction: the first entry's data runs over the second's header and data.
    plain = make_zip([("a.txt", b"A" * 100), ("b.txt", b"B" * 100)], zipfile.ZIP_STORED)
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        a_data_start = 30 + len("a.txt")
        b_data_end = archive.getinfo("b.txt").header_offset + 30 + len("b.txt") + 100
    covering = b_data_end - a_data_start
    data = patch_member(plain, "a.txt", compress_size=covering, file_size=covering)
    refuse(data, dest, UnsafeArchiveError, "'a.txt' and 'b.txt' overlap")


def test_import_rejects_high_ratio_bomb_before_writing(dest: Path) -> None:
    done = refuse(zeros_bomb(), dest, ArchiveTooLargeError, "a ratio over the limit of 200")
    assert done == []


def test_import_stops_bomb_that_understates_its_size(dest: Path) -> None:
    # Declares 5 MiB (ratio 100, allowed) but inflates to 50 MB: writing stops at the declared size.
    data = patch_member(zeros_bomb(), "model.joblib", file_size=5 * MIB)
    done = refuse(data, dest, ArchiveTooLargeError, "'model.joblib' declares 5242880 bytes but holds more")
    assert max(done) <= 5 * MIB


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflate"])
def test_import_rejects_member_holding_more_than_declared(dest: Path, method: int) -> None:
    data = patch_member(make_zip([("model.joblib", os.urandom(10_000))], method), "model.joblib", file_size=1000)
    refuse(data, dest, ArchiveTooLargeError, "declares 1000 bytes but holds more")


def test_import_rejects_too_many_members(dest: Path) -> None:
    data = make_zip([(f"f{i}.txt", b"x") for i in range(101)])
    refuse(data, dest, ArchiveTooLargeError, "more than 100 members")


def test_import_rejects_ten_thousand_members_quickly(dest: Path) -> None:
    data = make_zip([(f"f{i}.txt", b"") for i in range(10_000)], zipfile.ZIP_STORED)
    started = time.perf_counter()
    done = refuse(data, dest, ArchiveTooLargeError, "more than 100 members")
    assert time.perf_counter() - started < 5
    assert done == []


@functools.cache
def zip64_archive() -> bytes:
    """A real Zip64 archive: more members than the 16-bit count holds, so zipfile writes the Zip64
    end record and locator, and leaves 0xFFFF in the plain end record."""
    return make_zip([(f"f{i}", b"") for i in range(0x10000 + 4464)], zipfile.ZIP_STORED)


def test_the_one_end_record_reader_reads_zip64_as_zipfile_does(tmp_path: Path) -> None:
    data = zip64_archive()
    assert struct.unpack_from("<H", data, len(data) - 22 + 10)[0] == 0xFFFF  # the plain record gives up
    end = read_end_record(io.BytesIO(data), len(data))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert end is not None and end.zip64
    assert end.entries == len(archive.infolist()) == 70_000
    assert end.directory_end - end.directory_size == archive.start_dir
    small = make_zip([("a.txt", b"a"), ("b.txt", b"b")])
    end = read_end_record(io.BytesIO(small), len(small))
    assert (end.entries, end.zip64, end.directory_end - end.directory_size) == (
        2, False, zipfile.ZipFile(io.BytesIO(small)).start_dir)
    assert read_end_record(io.BytesIO(small[:-10]), len(small) - 10) is None  # still being written
    # The import's guard and the training scan both count through it: the Zip64 count, not 0xFFFF.
    (tmp_path / "out").mkdir()
    refuse(data, tmp_path / "out", ArchiveTooLargeError, "more than 100 members")
    from model_mcp.core.training import scan_training_dir

    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "big.zip").write_bytes(data)
    [pkg] = scan_training_dir(tmp_path / "training", max_members=100)
    assert pkg.problems == ["It holds 70000 members; the limit is 100."]


def test_import_rejects_total_unpacked_over_limit(dest: Path) -> None:
    limits = ArchiveLimits(max_unpacked_bytes=1000)
    data = make_zip([("a.bin", os.urandom(600)), ("b.bin", os.urandom(600))])
    done = refuse(data, dest, ArchiveTooLargeError, "would unpack to 1200 bytes", limits)
    assert done == []


def test_import_rejects_upload_over_limit(dest: Path) -> None:
    data = make_zip([("a.bin", os.urandom(600))])
    refuse(data, dest, ArchiveTooLargeError, "the limit is 500 bytes", ArchiveLimits(max_upload_bytes=500))


# --------------------------------------------------------------------------- not a zip


def test_random_bytes_are_not_a_zip(dest: Path) -> None:
    refuse(os.urandom(4096), dest, NotAZipError, "not a readable ZIP")


def test_empty_upload_is_not_a_zip(dest: Path) -> None:
    refuse(b"", dest, NotAZipError, "not a readable ZIP")


def test_empty_archive_is_not_a_zip(dest: Path) -> None:
    refuse(make_zip([]), dest, NotAZipError, "The archive is empty.")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_archive_is_not_a_zip(dest: Path, keep: float) -> None:
    data = make_zip(list(PACKAGE.items()))
    refuse(data[: int(len(data) * keep)], dest, NotAZipError, "not a readable ZIP")


def test_data_prepended_is_not_a_zip(dest: Path) -> None:
    data = b"#!/bin/sh\nexit 0\n" + make_zip(list(PACKAGE.items()))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:  # zipfile alone accepts it
        assert archive.read("model.joblib") == PACKAGE["model.joblib"]
    refuse(data, dest, NotAZipError, "17 bytes of other data before the ZIP archive")


def test_corrupt_member_is_not_a_zip_and_earlier_files_are_removed(dest: Path) -> None:
    data = bytearray(make_zip([("a.txt", b"first"), ("sub/b.txt", b"B" * 200)], zipfile.ZIP_STORED))
    at = data.rindex(b"B" * 200)
    data[at + 100] = ord("C")
    done = refuse(bytes(data), dest, NotAZipError, "'sub/b.txt' is corrupt (its CRC-32 check failed)")
    assert done == [0]  # writing had started: a.txt and sub/ were written, then removed


def test_corrupt_deflate_stream_is_not_a_zip(dest: Path) -> None:
    data = bytearray(make_zip([("a.txt", os.urandom(1000) + b"z" * 5000)]))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("a.txt")
    start = info.header_offset + 30 + len("a.txt")
    data[start : start + info.compress_size] = b"\xff" * info.compress_size
    refuse(bytes(data), dest, NotAZipError, "'a.txt' is corrupt")


# --------------------------------------------------------------------------- upload paths and base64


def test_read_upload_path_accepts_a_regular_file(tmp_path: Path) -> None:
    upload = tmp_path / "p.zip"
    upload.write_bytes(make_zip([("a.txt", b"a")]))
    assert read_upload_path(str(upload), LIMITS) == upload.resolve()


def test_read_upload_path_missing_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="There is no file at"):
        read_upload_path(tmp_path / "nope.zip", LIMITS)


def test_read_upload_path_rejects_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "p.zip"
    real.write_bytes(make_zip([("a.txt", b"a")]))
    link = tmp_path / "link.zip"
    link.symlink_to(real)
    with pytest.raises(UnsafeArchiveError, match="is a symbolic link"):
        read_upload_path(link, LIMITS)


def test_read_upload_path_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match="is a folder, not a regular"):
        read_upload_path(tmp_path, LIMITS)


def test_read_upload_path_and_extract_reject_a_fifo(tmp_path: Path, dest: Path) -> None:
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeArchiveError, match="is a FIFO, not a regular"):
        read_upload_path(fifo, LIMITS)
    # Also when swapped in after the check: opening must not block waiting for a writer.
    refuse(fifo, dest, UnsafeArchiveError, "is a FIFO")


def test_read_upload_path_rejects_oversized_file(tmp_path: Path) -> None:
    upload = tmp_path / "p.zip"
    upload.write_bytes(b"x" * 101)
    with pytest.raises(ArchiveTooLargeError, match="101 bytes; the limit is 100 bytes"):
        read_upload_path(upload, ArchiveLimits(max_upload_bytes=100))


def test_decode_base64_round_trips_also_when_wrapped() -> None:
    data = make_zip([("a.txt", os.urandom(300))])
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))

    assert decode_base64_upload(encoded, LIMITS) == data
    assert decode_base64_upload(wrapped, LIMITS) == data


@pytest.mark.parametrize("bad", ["not base64!!", "QUJD$A==", "QUJDRA=", "ÄÖÜ=", "QUJD-_=="])
def test_decode_base64_rejects_bad_input(bad: str) -> None:
    with pytest.raises(NotAZipError, match="not valid base64"):
        decode_base64_upload(bad, LIMITS)


def test_decode_base64_rejects_empty_upload() -> None:
    with pytest.raises(NotAZipError, match="The upload is empty."):
        decode_base64_upload("", LIMITS)


def test_decode_base64_refuses_oversized_before_decoding() -> None:
    # Not even valid base64: the size alone decides, before any decoding.
    with pytest.raises(ArchiveTooLargeError, match="the limit is 100 bytes"):
        decode_base64_upload("!" * 200, ArchiveLimits(max_upload_bytes=100))
    exactly_at_limit = base64.b64encode(b"x" * 100).decode()
    assert decode_base64_upload(exactly_at_limit, ArchiveLimits(max_upload_bytes=100)) == b"x" * 100
