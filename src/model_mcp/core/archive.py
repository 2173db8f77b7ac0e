"""Safe ZIP reading and streaming extraction of model packages.

Python's `zipfile` is used only to parse the central directory. Everything it would trust or
quietly repair is checked here instead, before a single byte is written: it accepts overlapping
entries (a 145 KB file can inflate to 12.9 GiB), sanitizes `../x` instead of refusing it, treats
`\\` and `C:` as ordinary characters, lets a duplicate name win, accepts junk before the archive,
truncates names at a NUL, and leaves partial files behind when it fails midway.

How an upload goes through `extract_zip`:

1. The upload size, then a walk over the central directory's headers that stops as soon as the
   member count passes the limit (so a 10-million-entry directory never becomes 10 million
   `ZipInfo` objects).
2. Every member's name, type, flags and compression method; duplicate and colliding names;
   where each member's bytes lie in the file (no data before the first entry, no overlaps, local
   header present and naming the same file); declared sizes and ratios.
3. Only then each regular file is streamed into the destination folder through our own
   decompressor, counting real bytes (a member may not hold more than it declares), checking the
   total and the ratio as it goes, and hashing SHA-256 and CRC-32 in the same pass.
4. On any failure, every file and folder written so far is removed again and the error raised.

Decisions where the brief left a choice:

- Data before the first entry (a self-extracting or concatenated file) is `not_a_zip`: the upload is
  not a plain ZIP, and other extractors disagree on where such an archive starts.
- A name that is not valid UTF-8 although flagged so is `unsafe_archive`, shown as the raw bytes.
- A local header naming a different file than the central directory is `unsafe_archive`: it is the
  classic trick for showing one extractor a different archive than another.
- Names must be canonical: `.` parts, empty parts (`a//b`), control and invisible format characters,
  a part over 255 bytes or a name over 1024 bytes are `unsafe_archive`. Names that differ only by
  case (or Unicode normalization) collide, as they would on a case-insensitive disk.
- Type bits are read from `external_attr` whatever system wrote the archive: 0 (as `writestr`
  writes) and regular file are files, directory is a folder, a link is refused, anything else
  (device, FIFO, socket) is refused too.
- A folder entry that holds data, or a directory type on a name without a trailing `/`, is
  `unsafe_archive` (hidden data).
- An archive with no entries at all is `not_a_zip`. One with only folders or macOS junk unpacks to
  nothing, so the caller reports the missing required files by name.
- `__MACOSX/...` and any `.DS_Store` are skipped (but their names are still checked).
- Extracted files get mode 0o644 (before umask): permissions in the archive are not kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from model_mcp.core.errors import (
    ArchiveTooLargeError,
    NotAZipError,
    NotFoundError,
    StorageError,
    UnsafeArchiveError,
)

if TYPE_CHECKING:
    from model_mcp.settings import Settings

try:  # optional in some Python builds, as in zipfile itself
    import bz2
except ImportError:  # pragma: no cover
    bz2 = None  # type: ignore[assignment]
try:
    import lzma
except ImportError:  # pragma: no cover
    lzma = None  # type: ignore[assignment]

MIB = 1024 * 1024
_CHUNK = MIB  # compressed bytes read, and decompressed bytes produced, per step
_PROGRESS_EVERY = 4 * MIB
_MAX_PART_BYTES = 255
_MAX_NAME_BYTES = 1024

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_HEADER_SIZE = 46
_LOCAL_HEADER_SIZE = 30
_SIG_EOCD = b"PK\x05\x06"
_SIG_EOCD64_LOCATOR = b"PK\x06\x07"
_SIG_EOCD64 = b"PK\x06\x06"
_SIG_CENTRAL = b"PK\x01\x02"
_SIG_LOCAL = b"PK\x03\x04"

_FLAG_ENCRYPTED = 0x1
_FLAG_STRONG_ENCRYPTION = 0x40
_FLAG_UTF8 = 0x800

_DRIVE = re.compile(r"^[A-Za-z]:")
# Control characters, invisible format characters (bidi overrides, zero-width), line separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_JUNK_TOP = "__MACOSX"
_JUNK_NAME = ".DS_Store"


@dataclass(frozen=True)
class ArchiveLimits:
    """The archive limits (docs/operations.md, Configuration)."""

    max_upload_bytes: int = 512 * MIB
    max_unpacked_bytes: int = 2 * 1024**3
    max_members: int = 100
    max_ratio: float = 200.0
    ratio_min_member_bytes: int = MIB  # the ratio is checked only for members larger than this

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        """Take the limits from the server's settings (fields of the same names)."""
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            max_unpacked_bytes=settings.max_unpacked_bytes,
            max_members=settings.max_members,
            max_ratio=settings.max_ratio,
            ratio_min_member_bytes=settings.ratio_min_member_bytes,
        )


@dataclass(frozen=True)
class ExtractedFile:
    name: str  # path inside the package after stripping the top-level folder, '/'-separated
    size: int  # bytes actually written
    sha256: str  # hex digest of the bytes actually written


@dataclass
class ExtractionResult:
    files: dict[str, ExtractedFile]  # by name, regular files only, in archive order
    stripped_prefix: str | None  # the top-level folder that was stripped (no slash), if any
    ignored: list[str]  # folder entries and macOS junk, by their names in the archive


@dataclass(frozen=True)
class _Member:
    """A member that passed every check and will be written as `parts` under the destination."""

    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    data_start: int

    @property
    def shown(self) -> str:
        return repr(self.info.orig_filename)


# --------------------------------------------------------------------------- uploads


def describe_client_path(path: str | Path) -> str:
    """A path a client gave, quoted; a relative one says the folder the server resolves it against."""
    text = repr(str(path))
    if Path(path).expanduser().is_absolute():
        return text
    return f"{text} (a relative path, resolved against the server's working folder {os.getcwd()!r})"


def read_upload_path(path: str | Path, limits: ArchiveLimits) -> Path:
    """Check a path a client gave: an existing regular file (not a link), within the upload limit.

    `lstat` is used so that a link is refused rather than followed: the client should name the
    archive itself. `extract_zip` opens the file again with `O_NOFOLLOW` and re-checks its type.
    """
    candidate = Path(path)
    try:
        st = os.lstat(candidate)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFoundError(f"There is no file at {describe_client_path(path)}.") from exc
    except OSError as exc:
        raise StorageError(f"The file {str(path)!r} cannot be read ({exc.strerror}).") from exc
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeArchiveError(f"{str(path)!r} is a symbolic link; give the path of the .zip file itself.")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeArchiveError(f"{str(path)!r} is {describe_mode(st.st_mode)}, not a regular .zip file.")
    if st.st_size > limits.max_upload_bytes:
        raise ArchiveTooLargeError(
            f"The upload is {st.st_size} bytes; the limit is {limits.max_upload_bytes} bytes."
        )
    return candidate.resolve(strict=True)


def decode_base64_upload(content_base64: str, limits: ArchiveLimits) -> bytes:
    """Decode an upload sent inline, refusing an oversized one before decoding it.

    Line breaks and spaces (as in MIME-wrapped base64) are allowed; any other character outside
    the standard alphabet is an error rather than silently dropped.
    """
    # Nothing legitimate is more than twice its compact size: refuse before even copying it.
    if len(content_base64) // 2 * 3 // 4 > limits.max_upload_bytes:
        raise ArchiveTooLargeError(_upload_over(len(content_base64) * 3 // 4, limits))
    compact = "".join(content_base64.split())
    padding = len(compact) - len(compact.rstrip("="))
    implied = len(compact) * 3 // 4 - min(padding, 2)
    if implied > limits.max_upload_bytes:
        raise ArchiveTooLargeError(_upload_over(implied, limits))
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotAZipError("The upload's content_base64 is not valid base64.") from exc
    if not data:
        raise NotAZipError("The upload is empty.")
    return data


def hash_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file on disk, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


# --------------------------------------------------------------------------- extraction


def extract_zip(
    source: Path | bytes,
    dest: Path,
    limits: ArchiveLimits,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExtractionResult:
    """Check the whole archive, then stream its regular files into `dest` (an existing empty folder).

    `on_progress(bytes_done, bytes_total_declared)` is called when writing starts, every few MiB
    and at the end; it is never called for an archive refused by the checks. On any failure
    everything written under `dest` is removed (`dest` itself stays) and the error is raised.
    """
    dest = Path(dest)
    if not dest.is_dir() or any(dest.iterdir()):
        raise ValueError("extract_zip needs an existing, empty destination folder")
    fp, size = _open_source(source, limits)
    with fp:
        members, prefix, ignored = _plan(fp, size, limits)
        files = _write_all(fp, members, dest, limits, on_progress)
    return ExtractionResult(files=files, stripped_prefix=prefix, ignored=ignored)


def _open_source(source: Path | bytes, limits: ArchiveLimits) -> tuple[BinaryIO, int]:
    """Open the upload for reading; a path must still be a regular file within the size limit."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = len(source)
        if size > limits.max_upload_bytes:
            raise ArchiveTooLargeError(_upload_over(size, limits))
        return io.BytesIO(source), size
    try:
        # O_NONBLOCK: opening a FIFO swapped in after read_upload_path must not hang.
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise NotFoundError("The uploaded file no longer exists.") from exc
    except OSError as exc:
        raise UnsafeArchiveError("The upload is a link or cannot be opened as a regular file.") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeArchiveError(f"The upload is {describe_mode(st.st_mode)}, not a regular .zip file.")
    if st.st_size > limits.max_upload_bytes:
        os.close(fd)
        raise ArchiveTooLargeError(_upload_over(st.st_size, limits))
    return os.fdopen(fd, "rb"), st.st_size


def _plan(fp: BinaryIO, size: int, limits: ArchiveLimits) -> tuple[list[_Member], str | None, list[str]]:
    """Run every check that needs no writing; answer what to write, the stripped folder, the skipped."""
    _guard_member_count(fp, size, limits.max_members)
    infos, start_dir = _read_directory(fp)
    if not infos:
        raise NotAZipError("The archive is empty.")
    if len(infos) > limits.max_members:
        raise ArchiveTooLargeError(
            f"The archive holds {len(infos)} members; the limit is {limits.max_members}."
        )
    parts_by_index = [_check_member(info) for info in infos]
    _check_collisions(infos, parts_by_index)
    data_starts = _check_layout(fp, size, infos, start_dir)

    chosen: list[tuple[zipfile.ZipInfo, tuple[str, ...], int]] = []
    ignored: list[str] = []
    for info, parts, data_start in zip(infos, parts_by_index, data_starts):
        if info.orig_filename.endswith("/") or parts[0] == _JUNK_TOP or parts[-1] == _JUNK_NAME:
            ignored.append(info.orig_filename)
        else:
            chosen.append((info, parts, data_start))

    prefix = _common_folder([parts for _, parts, _ in chosen])
    skip = 1 if prefix is not None else 0
    members = [_Member(info, parts[skip:], start) for info, parts, start in chosen]
    _check_declared_sizes(members, limits)
    return members, prefix, ignored


@dataclass(frozen=True)
class EndRecord:
    """What a ZIP's end of central directory declares (the Zip64 record's values when there is one)."""

    entries: int  # members in the central directory
    directory_size: int  # bytes of the central directory
    directory_end: int  # where it ends: the offset of the Zip64 record, else of the end record
    zip64: bool


def read_end_record(fp: BinaryIO, size: int) -> EndRecord | None:
    """The end of central directory record, read from the last 64 KiB + 22 bytes without parsing the
    directory: the one reader of it (imports bound the member count with it, training scans judge a
    ZIP still being written by it). None when there is no end record (a ZIP still being written).

    Zip64 is read as `zipfile` reads it, so both see the same directory: a locator right before the
    end record, and the Zip64 record right before the locator, whose values replace the 16/32-bit
    ones (which a Zip64 archive leaves at 0xFFFF / 0xFFFFFFFF). A locator whose record is missing
    leaves the end record's values.
    """
    tail_len = min(size, _EOCD.size + 0xFFFF)
    if tail_len < _EOCD.size:
        return None
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    at = tail.rfind(_SIG_EOCD)
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    fields = _EOCD.unpack_from(tail, at)
    eocd_at = size - tail_len + at
    plain = EndRecord(entries=fields[4], directory_size=fields[5], directory_end=eocd_at, zip64=False)
    locator_at = eocd_at - _EOCD64_LOCATOR.size
    record_at = locator_at - _EOCD64.size
    if record_at < 0:
        return plain
    fp.seek(record_at)
    record = fp.read(_EOCD64.size + _EOCD64_LOCATOR.size)
    if record[_EOCD64.size:_EOCD64.size + 4] != _SIG_EOCD64_LOCATOR or record[:4] != _SIG_EOCD64:
        return plain
    fields64 = _EOCD64.unpack_from(record)
    return EndRecord(entries=int(fields64[7]), directory_size=int(fields64[8]), directory_end=record_at,
                     zip64=True)


def _guard_member_count(fp: BinaryIO, size: int, limit: int) -> None:
    """Count central-directory headers, stopping past `limit`, before zipfile parses them all.

    Any oddity just ends the walk: `zipfile` then judges the archive, and the count is checked
    again on its result. This only keeps a huge directory from costing time and memory.
    """
    end = read_end_record(fp, size)
    if end is None:
        return
    size_cd, cd_end = end.directory_size, end.directory_end
    pos = cd_end - size_cd
    count = 0
    while 0 <= pos and pos + _CENTRAL_HEADER_SIZE <= cd_end:
        fp.seek(pos)
        head = fp.read(_CENTRAL_HEADER_SIZE)
        if head[:4] != _SIG_CENTRAL:
            return
        count += 1
        if count > limit:
            raise ArchiveTooLargeError(f"The archive holds more than {limit} members, the limit.")
        name_len, extra_len, comment_len = struct.unpack_from("<3H", head, 28)
        pos += _CENTRAL_HEADER_SIZE + name_len + extra_len + comment_len


def _read_directory(fp: BinaryIO) -> tuple[list[zipfile.ZipInfo], int]:
    """Parse the central directory with zipfile, translating its failures once."""
    try:
        archive = zipfile.ZipFile(fp)
    except UnicodeDecodeError as exc:
        raw = exc.object if isinstance(exc.object, bytes) else b"?"
        raise UnsafeArchiveError(
            f"The member named {bytes(raw)!r} is flagged as UTF-8 but its name is not valid UTF-8."
        ) from exc
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, struct.error, NotImplementedError) as exc:
        raise NotAZipError(f"The upload is not a readable ZIP archive ({exc}).") from exc
    # A ZipFile over a file object it did not open leaves that object open on close.
    infos, start_dir = archive.infolist(), archive.start_dir
    archive.close()
    return infos, start_dir


def _check_member(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """Check one member's name, type, flags and method; answer its name's parts."""
    parts = _name_parts(info.orig_filename)
    shown = repr(info.orig_filename)
    kind = stat.S_IFMT(info.external_attr >> 16)
    is_folder = info.orig_filename.endswith("/")
    if kind == stat.S_IFLNK:
        raise UnsafeArchiveError(f"The member {shown} is a symbolic link; links are not allowed.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(
            f"The member {shown} is {describe_mode(kind)}; only regular files and folders are allowed."
        )
    if kind == stat.S_IFDIR and not is_folder:
        raise UnsafeArchiveError(f"The member {shown} is marked as a folder but its name does not end with '/'.")
    if is_folder and info.file_size > 0:
        raise UnsafeArchiveError(f"The folder entry {shown} holds {info.file_size} bytes of data.")
    if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
        raise UnsafeArchiveError(f"The member {shown} is encrypted; upload an unencrypted archive.")
    if not is_folder and info.compress_type not in _INFLATERS:
        raise NotAZipError(
            f"The member {shown} uses compression method {info.compress_type}, which is not supported; "
            "use stored, deflate, bzip2 or lzma."
        )
    return parts


def _name_parts(name: str) -> tuple[str, ...]:
    """Refuse any name that is not a plain relative '/'-separated path; answer its parts."""
    shown = repr(name)
    if not name:
        raise UnsafeArchiveError("A member has an empty name.")
    if any(unicodedata.category(char) in _BAD_CATEGORIES for char in name):
        raise UnsafeArchiveError(f"The member {shown} has a NUL or control character in its name.")
    if "\\" in name:
        raise UnsafeArchiveError(f"The member {shown} has a backslash in its name; use '/' between folders.")
    if name.startswith("/"):
        raise UnsafeArchiveError(f"The member {shown} has an absolute path; members must be relative.")
    if _DRIVE.match(name):
        raise UnsafeArchiveError(f"The member {shown} starts with a drive letter; members must be relative.")
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise UnsafeArchiveError(f"The member {shown} has a name longer than {_MAX_NAME_BYTES} bytes.")
    parts = tuple((name[:-1] if name.endswith("/") else name).split("/"))
    for part in parts:
        if part == "..":
            raise UnsafeArchiveError(f"The member {shown} has a '..' part, which would leave the package folder.")
        if part in ("", "."):
            raise UnsafeArchiveError(f"The member {shown} has an empty or '.' part in its path.")
        if len(part.encode("utf-8")) > _MAX_PART_BYTES:
            raise UnsafeArchiveError(f"The member {shown} has a path part longer than {_MAX_PART_BYTES} bytes.")
    return parts


def _check_collisions(infos: list[zipfile.ZipInfo], parts_by_index: list[tuple[str, ...]]) -> None:
    """Refuse duplicate names (also by case), and a file name also used as a folder of other members."""
    seen: dict[str, str] = {}
    folders: dict[str, str] = {}
    for info, parts in zip(infos, parts_by_index):
        keys = [_fold("/".join(parts[: i + 1])) for i in range(len(parts))]
        if keys[-1] in seen:
            first = seen[keys[-1]]
            how = "appears twice" if first == info.orig_filename else f"collides with {first!r}"
            raise UnsafeArchiveError(f"The member {info.orig_filename!r} {how}; names must be unique.")
        seen[keys[-1]] = info.orig_filename
        for key in keys[:-1]:
            folders.setdefault(key, info.orig_filename)
        if info.orig_filename.endswith("/"):
            folders.setdefault(keys[-1], info.orig_filename)
    for info, parts in zip(infos, parts_by_index):
        key = _fold("/".join(parts))
        if not info.orig_filename.endswith("/") and key in folders:
            raise UnsafeArchiveError(
                f"The member {info.orig_filename!r} is a file, but {folders[key]!r} uses it as a folder."
            )


def _fold(path: str) -> str:
    """The form under which two names would land on the same file of a case-insensitive disk."""
    return unicodedata.normalize("NFC", path).casefold()


def _check_layout(fp: BinaryIO, size: int, infos: list[zipfile.ZipInfo], start_dir: int) -> list[int]:
    """Check where each member's bytes lie; answer each member's data offset.

    Each member spans from its local header to the end of its compressed data. Spans must start
    at offset 0 (no data before the archive), stay before the central directory and not overlap:
    overlapping spans are how a small file expands to gigabytes.
    """
    first = min(info.header_offset for info in infos)
    if first != 0:
        raise NotAZipError(
            f"The upload has {first} bytes of other data before the ZIP archive "
            "(a self-extracting or concatenated file); upload a plain .zip."
        )
    starts: list[int] = []
    spans: list[tuple[int, int, str]] = []
    local_names: list[bytes] = []
    for info in infos:
        fp.seek(info.header_offset)
        head = fp.read(_LOCAL_HEADER_SIZE)
        if len(head) < _LOCAL_HEADER_SIZE or head[:4] != _SIG_LOCAL:
            raise NotAZipError(f"The member {info.orig_filename!r} has no local header; the archive is corrupt.")
        name_len, extra_len = struct.unpack_from("<2H", head, 26)
        local_names.append(fp.read(name_len))
        data_start = info.header_offset + _LOCAL_HEADER_SIZE + name_len + extra_len
        data_end = data_start + info.compress_size
        if data_end > size:
            raise NotAZipError(
                f"The member {info.orig_filename!r} runs past the end of the file; the archive is truncated."
            )
        if data_end > start_dir:
            raise UnsafeArchiveError(
                f"The member {info.orig_filename!r} overlaps the archive's central directory."
            )
        starts.append(data_start)
        spans.append((info.header_offset, data_end, info.orig_filename))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise UnsafeArchiveError(
                f"The members {name!r} and {other!r} overlap in the file (a zip-bomb construction)."
            )
    for info, local_name in zip(infos, local_names):
        encoding = "utf-8" if info.flag_bits & _FLAG_UTF8 else "cp437"
        if local_name != info.orig_filename.encode(encoding):
            raise UnsafeArchiveError(
                f"The member {info.orig_filename!r} is named {local_name!r} in its local header; "
                "the two names must agree."
            )
    return starts


def _common_folder(all_parts: list[tuple[str, ...]]) -> str | None:
    """The single top-level folder every file sits in, if there is one and no file is at the root."""
    if not all_parts or any(len(parts) < 2 for parts in all_parts):
        return None
    tops = {parts[0] for parts in all_parts}
    return tops.pop() if len(tops) == 1 else None


def _check_declared_sizes(members: list[_Member], limits: ArchiveLimits) -> None:
    """Refuse on declared sizes first: cheap, and most bombs are honest about them."""
    total = 0
    for member in members:
        info = member.info
        _check_ratio(member, info.file_size, limits, declared=True)
        total += info.file_size
    if total > limits.max_unpacked_bytes:
        raise ArchiveTooLargeError(
            f"The archive would unpack to {total} bytes; the limit is {limits.max_unpacked_bytes} bytes."
        )


def _check_ratio(member: _Member, unpacked: int, limits: ArchiveLimits, *, declared: bool) -> None:
    if unpacked <= limits.ratio_min_member_bytes:
        return
    packed = max(member.info.compress_size, 1)
    if unpacked / packed > limits.max_ratio:
        verb = "declares" if declared else "expands to"
        raise ArchiveTooLargeError(
            f"The member {member.shown} {verb} {unpacked} bytes from {member.info.compress_size} "
            f"compressed bytes, a ratio over the limit of {limits.max_ratio:g}."
        )


# --------------------------------------------------------------------------- writing


class _Progress:
    """Counts bytes written in total and reports them now and then."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self.reported = 0

    def report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)
        self.reported = self.done

    def advance(self, n: int) -> None:
        self.done += n
        if self.done - self.reported >= _PROGRESS_EVERY:
            self.report()


def _write_all(
    fp: BinaryIO,
    members: list[_Member],
    dest: Path,
    limits: ArchiveLimits,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, ExtractedFile]:
    """Write every member; on any failure remove what was written and re-raise."""
    written: list[Path] = []
    made_dirs: list[Path] = []
    progress = _Progress(on_progress, sum(member.info.file_size for member in members))
    files: dict[str, ExtractedFile] = {}
    try:
        progress.report()
        dest_real = dest.resolve()
        for member in members:
            target = _prepare_target(dest, dest_real, member, made_dirs)
            fd = _create(target, member)
            written.append(target)
            try:
                with os.fdopen(fd, "wb") as out:
                    files["/".join(member.parts)] = _stream(fp, member, out, limits, progress)
            except OSError as exc:  # the last buffered bytes are written at close: a full disk shows here
                raise StorageError(f"Could not write {member.shown} ({exc.strerror}).") from exc
        progress.report()
    except BaseException:
        _remove(written, made_dirs)
        raise
    return files


def _prepare_target(dest: Path, dest_real: Path, member: _Member, made_dirs: list[Path]) -> Path:
    """Create the member's parent folders and answer its path, checked to stay under `dest`."""
    parent = dest
    for part in member.parts[:-1]:
        parent = parent / part
        try:
            os.mkdir(parent)
            made_dirs.append(parent)
        except FileExistsError:
            if parent.is_symlink() or not parent.is_dir():
                raise UnsafeArchiveError(
                    f"The member {member.shown} needs a folder where a file already is."
                ) from None
        except OSError as exc:
            raise StorageError(f"Could not create a folder for {member.shown} ({exc.strerror}).") from exc
    target = parent / member.parts[-1]
    resolved = target.resolve()
    if resolved == dest_real or not resolved.is_relative_to(dest_real):
        raise UnsafeArchiveError(f"The member {member.shown} would be written outside the package folder.")
    return target


def _create(target: Path, member: _Member) -> int:
    """Open a new file, never following a link and never reusing an existing file."""
    try:
        return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError as exc:
        raise UnsafeArchiveError(f"The member {member.shown} collides with another member.") from exc
    except OSError as exc:
        raise StorageError(f"Could not create the file for {member.shown} ({exc.strerror}).") from exc


def _stream(
    fp: BinaryIO, member: _Member, out: BinaryIO, limits: ArchiveLimits, progress: _Progress
) -> ExtractedFile:
    """Decompress one member into `out`, counting, hashing and checking every piece before writing it."""
    info = member.info
    inflater = _INFLATERS[info.compress_type](info)
    digest = hashlib.sha256()
    crc = 0
    count = 0
    fp.seek(member.data_start)
    left = info.compress_size
    while True:
        chunk = fp.read(min(_CHUNK, left)) if left else b""
        left -= len(chunk)
        if left and not chunk:
            raise NotAZipError(f"The member {member.shown} is truncated.")
        for piece in _pieces(inflater, chunk, member):
            count += len(piece)
            if count > info.file_size:
                raise ArchiveTooLargeError(
                    f"The member {member.shown} declares {info.file_size} bytes but holds more."
                )
            if progress.done + len(piece) > limits.max_unpacked_bytes:
                raise ArchiveTooLargeError(
                    f"The archive unpacks to more than {limits.max_unpacked_bytes} bytes, the limit "
                    f"(while writing {member.shown})."
                )
            _check_ratio(member, count, limits, declared=False)
            digest.update(piece)
            crc = zlib.crc32(piece, crc)
            try:
                out.write(piece)
            except OSError as exc:
                raise StorageError(f"Could not write {member.shown} ({exc.strerror}).") from exc
            progress.advance(len(piece))
        if not left:
            break
    # An empty member may have no compressed stream at all, whatever its method says.
    if count < info.file_size or (info.compress_size and not inflater.finished()):
        raise NotAZipError(
            f"The member {member.shown} holds {count} of its declared {info.file_size} bytes; "
            "the archive is corrupt or truncated."
        )
    if crc != info.CRC:
        raise NotAZipError(f"The member {member.shown} is corrupt (its CRC-32 check failed).")
    return ExtractedFile(name="/".join(member.parts), size=count, sha256=digest.hexdigest())


def _pieces(inflater: _Inflater, chunk: bytes, member: _Member) -> Iterator[bytes]:
    """The inflater's output for `chunk`, one bounded piece at a time, its failures translated."""
    produced = inflater.feed(chunk)
    while True:
        try:
            piece = next(produced)
        except StopIteration:
            return
        except (zlib.error, OSError, EOFError, ValueError, _LzmaError) as exc:
            raise NotAZipError(f"The member {member.shown} is corrupt ({exc}).") from exc
        yield piece


def _remove(written: list[Path], made_dirs: list[Path]) -> None:
    """Undo a failed extraction: our files, then our folders, deepest first."""
    for path in reversed(written):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    for folder in reversed(made_dirs):
        try:
            folder.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------- decompressors
#
# Our own, not ZipExtFile: it stops quietly at the declared size, so a member holding more than
# it declares would pass as merely corrupt, and its output per read is not bounded for us.


class _Inflater(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the output for `data` in pieces of at most `_CHUNK`; `b""` drains what is pending."""

    def finished(self) -> bool:
        """Whether the compressed stream ended properly."""


class _Stored:
    def __init__(self, info: zipfile.ZipInfo) -> None:
        pass

    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def finished(self) -> bool:
        return True


class _Deflate:
    def __init__(self, info: zipfile.ZipInfo) -> None:
        self._d = zlib.decompressobj(-zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending = data
        while not self._d.eof:
            out = self._d.decompress(pending, _CHUNK)
            pending = self._d.unconsumed_tail
            if out:
                yield out
            elif not pending:
                break

    def finished(self) -> bool:
        return self._d.eof


class _Buffered:
    """bz2 and lzma decompressors: bounded output through `max_length` and `needs_input`."""

    def __init__(self, decompressor: object) -> None:
        self._d = decompressor

    def feed(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        if d.eof:  # type: ignore[attr-defined]
            return
        out = d.decompress(data, _CHUNK)  # type: ignore[attr-defined]
        if out:
            yield out
        while not d.eof and not d.needs_input:  # type: ignore[attr-defined]
            out = d.decompress(b"", _CHUNK)  # type: ignore[attr-defined]
            if not out:
                break
            yield out

    def finished(self) -> bool:
        return bool(self._d.eof)  # type: ignore[attr-defined]


class _Bzip2(_Buffered):
    def __init__(self, info: zipfile.ZipInfo) -> None:
        super().__init__(bz2.BZ2Decompressor())


class _Lzma:
    """ZIP's LZMA: a 4-byte header (version, properties size), the properties, then raw LZMA1."""

    def __init__(self, info: zipfile.ZipInfo) -> None:
        self._head = b""
        self._inner: _Buffered | None = None
        # Without the end-of-stream flag the stream simply stops at its size.
        self._needs_eos = bool(info.flag_bits & 0x2)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inner is None:
            self._head += data
            if len(self._head) < 4:
                return
            props_size = int.from_bytes(self._head[2:4], "little")
            if len(self._head) < 4 + props_size:
                return
            props = self._head[4 : 4 + props_size]
            if props_size != 5:
                raise ValueError("bad LZMA properties")
            data = self._head[4 + props_size :]
            lc_lp_pb = props[0]
            filters = [{
                "id": lzma.FILTER_LZMA1,
                "dict_size": int.from_bytes(props[1:5], "little"),
                "lc": lc_lp_pb % 9,
                "lp": lc_lp_pb // 9 % 5,
                "pb": lc_lp_pb // 45,
            }]
            self._inner = _Buffered(lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters))
        yield from self._inner.feed(data)

    def finished(self) -> bool:
        if self._inner is None:
            return False
        return self._inner.finished() or not self._needs_eos


_LzmaError: type[Exception] = lzma.LZMAError if lzma is not None else ValueError

_INFLATERS: dict[int, Callable[[zipfile.ZipInfo], _Inflater]] = {
    zipfile.ZIP_STORED: _Stored,
    zipfile.ZIP_DEFLATED: _Deflate,
}
if bz2 is not None:
    _INFLATERS[zipfile.ZIP_BZIP2] = _Bzip2
if lzma is not None:
    _INFLATERS[zipfile.ZIP_LZMA] = _Lzma


# --------------------------------------------------------------------------- helpers


def _upload_over(size: int, limits: ArchiveLimits) -> str:
    return f"The upload is {size} bytes; the limit is {limits.max_upload_bytes} bytes."


def describe_mode(mode: int) -> str:
    """What a file of this mode is, for a sentence ('a FIFO')."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
