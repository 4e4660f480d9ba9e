"""Read an uploaded file from the request as it arrives, within the limits.

The form is ``multipart/form-data`` with a ``file`` part and an optional ``org`` part. The
body is parsed while it streams in and the file goes straight to a temporary file, so a
file past the size limit (docs/flex-data-standard.md, "Files flexbench accepts") is refused
as soon as its bytes pass the limit, never held in memory, and a client that sends too
slowly is cut off at the time limit.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

#: Bytes of form fields other than the file (the ODS code), and of multipart framing.
MAX_FIELD_BYTES = 1024
MAX_OVERHEAD_BYTES = 64 * 1024
MAX_PARTS = 8


class UploadError(Exception):
    """The upload itself is at fault (not the file's content).

    Attributes
    ----------
    status : int
        The HTTP status to answer with (400, 408, 413, 415).
    rule : str
        A rule id in the standard's words when there is one (``too-large``), else the kind
        of problem (``no-file``, ``bad-form``, ``too-slow``).
    field : str
        The form field to point at in the error summary (``file`` or ``org``).
    """

    def __init__(self, status: int, rule: str, message: str, field: str = "file") -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule
        self.field = field


@dataclass
class Upload:
    """A file received: where it was saved, its name as sent, the form's ODS code."""

    path: Path
    name: str
    size: int
    org: str | None


def safe_name(raw: str) -> str:
    """The file's base name as sent, without control characters, at most 120 characters."""
    name = re.split(r"[\\/]", raw)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:120] or "upload"


def too_large(max_bytes: int) -> UploadError:
    return UploadError(
        413,
        "too-large",
        f"A publication may be at most {max_bytes:,} bytes ({max_bytes / 2**20:.0f} MiB); "
        "this file is larger",
    )


async def receive(
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
    folder: Path,
    seconds: float,
    max_bytes: int,
) -> Upload:
    """Parse the form from ``chunks`` into ``folder`` within ``seconds``, the file at most
    ``max_bytes``; raise UploadError."""
    ctype, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadError(415, "bad-form", "Send the file as a form upload (multipart/form-data)")
    limit = max_bytes + MAX_OVERHEAD_BYTES
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise too_large(max_bytes)  # refused before a byte of the body is read
    reader = _FormReader(folder / "upload", max_bytes)
    parser = MultipartParser(boundary, reader.callbacks())
    received = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise too_large(max_bytes)
                try:
                    parser.write(chunk)
                except MultipartParseError:
                    raise UploadError(400, "bad-form", "The form upload is malformed") from None
                if reader.error:
                    raise reader.error
    except TimeoutError:
        raise UploadError(
            408, "too-slow", f"The upload did not arrive within {seconds:.0f} seconds"
        ) from None
    finally:
        reader.close()
    if reader.error:
        raise reader.error
    if reader.name is None or (not reader.name and reader.size == 0):  # nothing chosen
        raise UploadError(400, "no-file", "Select a CSV or XLSX file to check")
    org = reader.fields.get("org", "").strip().upper() or None
    if org and not re.fullmatch(r"[A-Z0-9]{3,5}", org):
        raise UploadError(
            400,
            "org-code-format",
            "The ODS code must be 3 to 5 letters or digits, for example RJ1",
            field="org",
        )
    return Upload(reader.path, safe_name(reader.name), reader.size, org)


class _FormReader:
    """Callbacks for the multipart parser: the file part to disk, small fields to memory."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.name: str | None = None
        self.size = 0
        self.fields: dict[str, str] = {}
        self.error: UploadError | None = None
        self._parts = 0
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._current: str | None = None
        self._buffer = bytearray()
        self._file = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        self._disposition = b""
        self._current = None
        self._buffer.clear()
        if self._parts > MAX_PARTS and not self.error:
            self.error = UploadError(400, "bad-form", "The form has too many parts")

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file" and self._file is None:
            self._current = "file"
            self.name = options.get(b"filename", b"").decode("utf-8", "replace")
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        elif name in ("org",):
            self._current = name
        else:
            self._current = None  # anything else is read past and dropped

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error:
            return
        n = end - start
        if self._current == "file":
            self.size += n
            if self.size > self.max_bytes:
                self.error = too_large(self.max_bytes)
                return
            self._file.write(data[start:end])
        elif self._current is not None:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                self.error = UploadError(400, "bad-form", "A form field is too long", "org")

    def _part_end(self) -> None:
        if self._current not in (None, "file"):
            self.fields[self._current] = self._buffer.decode("utf-8", "replace")
        self._current = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
