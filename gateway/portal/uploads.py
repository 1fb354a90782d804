"""Receiving the re-submission form (multipart/form-data) as it streams in: text fields
into memory (small, few), each file straight to disk with its SHA-256 and a running total.
Past the allowance of files or bytes the rest of the body is not read: the partial files are
deleted and :class:`UploadTooLarge` names the limit. The parser is python-multipart's
streaming one; this module only decides what to keep."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.portal.errors import MalformedUpload, UploadTooLarge

__all__ = ["FORM_OVERHEAD", "ReceivedFile", "ReceivedForm", "receive_form"]

# Bytes of a form besides its files' contents: boundaries, part headers, the text fields.
# A body whose Content-Length passes the allowance by more is refused before it is read.
FORM_OVERHEAD = 64 * 1024
_MAX_FIELDS = 16
_MAX_FIELD_BYTES = 4096
_MAX_NAME_CHARACTERS = 200


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    name: str
    content_type: str
    size: int
    sha256: str
    path: Path


@dataclass(slots=True)
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[ReceivedFile] = field(default_factory=list)


@dataclass(slots=True)
class _Part:
    """The part being read: a text field (``text``) or a file (``handle``)."""

    name: str = ""
    # "field", "file", or "skip" (a file input with nothing chosen)
    kind: str = "field"
    filename: str | None = None
    content_type: str = "application/octet-stream"
    text: bytearray = field(default_factory=bytearray)
    handle: IO[bytes] | None = None
    path: Path | None = None
    size: int = 0
    digest: hashlib._Hash | None = None


class _Receiver:
    """The parser's callbacks; ``limit`` is raised from inside ``write`` and ends the read."""

    def __init__(self, directory: Path, max_files: int, max_bytes: int) -> None:
        self.directory = directory
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.form = ReceivedForm()
        self.total = 0
        self.ended = False
        self.part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self.open_paths: list[Path] = []

    # -- parser callbacks ------------------------------------------------------------------

    def on_part_begin(self) -> None:
        self.part = _Part()
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        kind, options = parse_options_header(self._headers.get("content-disposition", b""))
        if kind != b"form-data" or b"name" not in options:
            raise MalformedUpload("a part without a form-data name")
        part = self.part
        part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.form.fields) >= _MAX_FIELDS:
                raise MalformedUpload("too many fields")
            return
        filename = _display_name(options[b"filename"])
        if not filename:
            part.kind = "skip"  # a file input with nothing chosen
            return
        if len(self.form.files) + 1 > self.max_files:
            raise UploadTooLarge("too many files")
        part.kind, part.filename = "file", filename
        content_type = self._headers.get("content-type", b"").decode("latin-1").strip()
        part.content_type = content_type[:100] or "application/octet-stream"
        part.path = self.directory / secrets.token_hex(16)
        self.open_paths.append(part.path)
        part.handle = open(part.path, "xb")  # noqa: SIM115 - closed in on_part_end/cleanup
        part.digest = hashlib.sha256()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        piece = data[start:end]
        if part.handle is not None and part.digest is not None:
            self.total += len(piece)
            if self.total > self.max_bytes:
                raise UploadTooLarge("too many bytes")
            part.handle.write(piece)
            part.digest.update(piece)
            part.size += len(piece)
        elif part.kind == "field":
            part.text += piece
            if len(part.text) > _MAX_FIELD_BYTES:
                raise MalformedUpload(f"field {part.name!r} too long")

    def on_part_end(self) -> None:
        part = self.part
        if part.handle is not None and part.path is not None and part.digest is not None:
            part.handle.close()  # made durable with the others once the form is read
            part.handle = None
            if part.size == 0:
                raise MalformedUpload("an empty file")
            self.form.files.append(
                ReceivedFile(
                    part.filename or "",
                    part.content_type,
                    part.size,
                    part.digest.hexdigest(),
                    part.path,
                )
            )
        elif part.kind == "field":
            try:
                self.form.fields[part.name] = part.text.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedUpload("a field that is not UTF-8") from None

    def on_end(self) -> None:
        self.ended = True

    def cleanup(self) -> None:
        """The read failed: nothing of it stays on disk."""
        if self.part.handle is not None:
            self.part.handle.close()
        for path in self.open_paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _make_durable(directory: Path, paths: list[Path]) -> None:
    """The files' contents and their names in ``directory`` survive a crash from here on."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _display_name(raw: bytes) -> str:
    """The file's name as the person's computer called it (no directories), for display."""
    name = raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:_MAX_NAME_CHARACTERS]


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not boundary:
        raise MalformedUpload("expected multipart/form-data")
    return boundary


async def receive_form(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    directory: Path,
    *,
    max_files: int,
    max_bytes: int,
) -> ReceivedForm:
    """Reads the form; its files are in ``directory``, fsynced (and the directory too),
    before this returns. On any error none of them is left there."""
    receiver = _Receiver(directory, max_files, max_bytes)
    callbacks = {
        name: getattr(receiver, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_end",
        )
    }
    parser = MultipartParser(boundary_of(content_type), callbacks)  # type: ignore[arg-type]
    try:
        async for piece in chunks:
            parser.write(piece)
        parser.finalize()
        if not receiver.ended:
            raise MalformedUpload("the form ended before its closing boundary")
        if receiver.form.files:
            # fsync blocks for as long as the disk takes: off the event loop.
            await asyncio.to_thread(_make_durable, directory, [f.path for f in receiver.form.files])
    except FormParserError as exc:
        receiver.cleanup()
        raise MalformedUpload(f"broken multipart body: {exc}") from None
    except UploadTooLarge as exc:
        receiver.cleanup()
        raise UploadTooLarge(str(exc), receiver.form.fields) from None
    except BaseException:
        receiver.cleanup()
        raise
    return receiver.form
