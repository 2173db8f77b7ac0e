"""Request bodies read as they stream, with their size checked before they are held.

- `stream_package`: a ZIP upload, either the raw body (`application/zip`,
  `application/octet-stream`) or the multipart field `package`, written chunk by chunk to a file in
  the home's staging while a byte counter runs; over `max_upload_bytes` the read stops at once with
  `archive_too_large`, so neither memory nor the disk ever holds more than the limit. FastAPI's
  `UploadFile` is not used: Starlette spools the whole part to a temporary file before the route
  sees it, with no limit of ours applied while it reads.
- `read_json_body`: a JSON body up to a byte limit, counted while it arrives.

Writes go straight to the file from the event loop: each is one chunk (64 KiB from uvicorn) into
the page cache, microseconds; a thread hop per chunk would cost more than the write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from model_mcp.core.errors import ArchiveTooLargeError, InvalidInputError
from model_mcp.core.store import storage_error

ZIP_MEDIA_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
PACKAGE_FIELD = "package"
# Multipart framing and small form fields around the package part.
MULTIPART_SLACK_BYTES = 64 * 1024


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _declared_length(request: Request) -> int | None:
    try:
        value = int(request.headers.get("content-length", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _too_large(limit: int, seen: str) -> ArchiveTooLargeError:
    return ArchiveTooLargeError(f"The upload is {seen} bytes; the limit is {limit} bytes (MODEL_MCP_MAX_UPLOAD_BYTES).")


async def stream_package(request: Request, target: Path, limit: int) -> str | None:
    """Write the uploaded ZIP to `target`; answers the client's file name (multipart), if any."""
    declared = _declared_length(request)
    kind = media_type(request)
    slack = MULTIPART_SLACK_BYTES if kind == "multipart/form-data" else 0
    if declared is not None and declared > limit + slack:
        raise _too_large(limit, str(declared))
    try:
        with open(target, "wb") as out:
            if kind == "multipart/form-data":
                return await _stream_multipart(request, out, limit)
            written = 0
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:
                    raise _too_large(limit, f"over {limit}")
                out.write(chunk)
    except ClientDisconnect:
        # Nobody is left to read the answer; say so in the log (as a refusal, not a server fault).
        raise InvalidInputError("The client disconnected before the upload was complete.") from None
    except OSError as exc:  # a full disk or an unwritable staging folder
        raise storage_error(exc, "writing the upload into staging") from exc
    if written == 0:
        raise InvalidInputError("The request body is empty: send the package ZIP's bytes.")
    return None


class _PackagePart:
    """python-multipart callbacks: the `package` part to the file, every other part refused."""

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.written = 0
        self.filename: str | None = None
        self.seen_package = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._in_package = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_field_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._in_package = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_field_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != PACKAGE_FIELD:
            raise InvalidInputError(f"Unknown form field {name[:64]!r}: send the ZIP as the one field "
                                    f"{PACKAGE_FIELD!r}.")
        if self.seen_package:
            raise InvalidInputError(f"The form field {PACKAGE_FIELD!r} was sent twice; send one package.")
        self.seen_package = self._in_package = True
        raw_name = options.get(b"filename")
        self.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_package:
            return
        self.written += end - start
        if self.written > self.limit:
            raise _too_large(self.limit, f"over {self.limit}")
        self.out.write(data[start:end])


async def _stream_multipart(request: Request, out: BinaryIO, limit: int) -> str | None:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInputError("The multipart body has no boundary in its Content-Type.")
    part = _PackagePart(out, limit)
    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit + MULTIPART_SLACK_BYTES:
                raise _too_large(limit, f"over {limit}")
            parser.write(chunk)
        parser.finalize()
    except (ArchiveTooLargeError, InvalidInputError, OSError):
        raise
    except Exception as exc:  # python-multipart's own parse errors: a malformed body
        raise InvalidInputError(f"The multipart body cannot be read ({str(exc)[:200]}).") from None
    if not part.seen_package or part.written == 0:
        raise InvalidInputError(f"The form has no (or an empty) file field {PACKAGE_FIELD!r} holding the ZIP.")
    return part.filename


async def read_json_body(request: Request, limit: int) -> Any:
    """The parsed JSON body (None when empty); unreadable JSON is invalid_input.

    Over `limit` bytes it is archive_too_large (413), like any oversized upload: JSON is how
    `content_base64` imports arrive.
    """
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit, str(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, f"over {limit}")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    from model_mcp import row_matrices

    try:
        # A large body's matrices of numbers (predict's rows) become arrays, not a float object each.
        return row_matrices.loads(raw, errors="strict")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"The body is not readable JSON ({str(exc)[:200]}).") from None
