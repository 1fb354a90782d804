"""HTTP/1.1 message framing on asyncio streams, for both sides of the gateway: the head
(start line and headers) and streamed bodies (Content-Length, chunked, or until close).

Bodies are never held whole: they are iterated in chunks, so a 10 MB upload passes through
in pieces of at most ``CHUNK`` bytes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

__all__ = [
    "CHUNK",
    "HOP_BY_HOP",
    "Framing",
    "Head",
    "ProtocolError",
    "body_chunks",
    "check_request_line",
    "chunk",
    "encode_head",
    "framing",
    "read_head",
]

CHUNK = 64 * 1024
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
BODY_IDLE_TIMEOUT = 30.0  # seconds a body may stall between two pieces

# RFC 9110 §5.1 token; field values and targets must not carry control characters (a bare LF
# or NUL that one parser keeps and another splits on is how requests are smuggled).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")

# Connection-level headers (RFC 9110 §7.6.1): never forwarded to the other side.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1; ``status`` is the answer to give."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Head:
    """A request or response head. ``first`` is the start line split in three."""

    first: tuple[str, str, str]
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every header ``name``, lower-cased."""
        name = name.lower()
        found: set[str] = set()
        for key, value in self.headers:
            if key.lower() == name:
                found.update(token.strip().lower() for token in value.split(","))
        found.discard("")
        return found


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next head, or None when the peer closed cleanly before sending one."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("connection closed in the middle of a message head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("message head too large", 431) from None
    if len(raw) > MAX_HEAD_BYTES:
        raise ProtocolError("message head too large", 431)
    lines = raw[:-4].decode("latin-1").split("\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # RFC 9112 §2.2: ignore empty lines before a request line
    if not lines:
        raise ProtocolError("empty message head")
    parts = lines[0].split(" ", 2)
    if len(parts) != 3 or _BAD_VALUE.search(lines[0]):
        raise ProtocolError("malformed start line")
    headers: list[tuple[str, str]] = []
    if len(lines) - 1 > MAX_HEADERS:
        raise ProtocolError("too many header fields", 431)
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        # A token before the colon (so no whitespace and no obsolete line folding, RFC 9112
        # §5.1, §5.2) and no control characters in the value.
        if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ProtocolError("malformed header field")
        headers.append((name, value.strip(" \t")))
    return Head((parts[0], parts[1], parts[2]), headers)


def check_request_line(head: Head) -> None:
    """A method token and a target without spaces or control characters."""
    method, target, _ = head.first
    if not _TOKEN.fullmatch(method) or not target or _BAD_TARGET.search(target):
        raise ProtocolError("malformed request line")


@dataclass(frozen=True, slots=True)
class Framing:
    """How a body is delimited: ``length`` bytes, chunked, or until the connection closes."""

    length: int | None = 0
    chunked: bool = False
    until_close: bool = False

    @property
    def empty(self) -> bool:
        return self.length == 0 and not self.chunked and not self.until_close


def framing(head: Head, *, request: bool, status: int = 200, method: str = "GET") -> Framing:
    """RFC 9112 §6.3, for a request (``request=True``) or for the response to ``method``."""
    if not request and (method == "HEAD" or status in (204, 304) or 100 <= status < 200):
        return Framing(0)
    encodings = head.tokens("transfer-encoding")
    if encodings:
        if encodings != {"chunked"}:
            raise ProtocolError("only the chunked transfer coding is supported", 501)
        if head.get("content-length") is not None:
            # Both at once is how request smuggling starts; refuse (RFC 9112 §6.1).
            raise ProtocolError("both Transfer-Encoding and Content-Length")
        return Framing(None, chunked=True)
    lengths = {value.strip() for key, value in head.headers if key.lower() == "content-length"}
    if len(lengths) > 1:
        raise ProtocolError("conflicting Content-Length values")
    if lengths:
        value = lengths.pop()
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise ProtocolError("bad Content-Length")
        return Framing(int(value))
    if request:
        return Framing(0)
    return Framing(None, until_close=True)


async def body_chunks(
    reader: asyncio.StreamReader, frame: Framing, idle_timeout: float = BODY_IDLE_TIMEOUT
) -> AsyncIterator[bytes]:
    """The body's bytes (de-chunked), in pieces of at most :data:`CHUNK`; a peer that sends
    nothing for ``idle_timeout`` seconds is given up on (408)."""
    try:
        if frame.chunked:
            while True:
                async with asyncio.timeout(idle_timeout):
                    size_line = await reader.readuntil(b"\r\n")
                size_text = size_line[:-2].split(b";", 1)[0].rstrip(b" \t")
                if not _CHUNK_SIZE.fullmatch(size_text):
                    raise ProtocolError("bad chunk size")
                size = int(size_text, 16)
                if size == 0:
                    # Trailers are read and dropped.
                    async with asyncio.timeout(idle_timeout):
                        while (await reader.readuntil(b"\r\n")) != b"\r\n":
                            pass
                    return
                while size:
                    async with asyncio.timeout(idle_timeout):
                        piece = await reader.read(min(size, CHUNK))
                    if not piece:
                        raise ProtocolError("connection closed inside a chunk")
                    size -= len(piece)
                    yield piece
                async with asyncio.timeout(idle_timeout):
                    if await reader.readexactly(2) != b"\r\n":
                        raise ProtocolError("chunk not followed by CRLF")
        elif frame.until_close:
            while True:
                async with asyncio.timeout(idle_timeout):
                    piece = await reader.read(CHUNK)
                if not piece:
                    return
                yield piece
        else:
            left = frame.length or 0
            while left:
                async with asyncio.timeout(idle_timeout):
                    piece = await reader.read(min(left, CHUNK))
                if not piece:
                    raise ProtocolError("connection closed before the end of the body")
                left -= len(piece)
                yield piece
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise ProtocolError("connection closed before the end of the body") from None
    except TimeoutError:
        raise ProtocolError("the body stalled", 408) from None


def chunk(piece: bytes) -> bytes:
    """``piece`` as one chunk of a chunked body (nothing for an empty piece, which would
    end the body)."""
    return b"%x\r\n%b\r\n" % (len(piece), piece) if piece else b""


def encode_head(first: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [first]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            # Never write what would split into two fields or two messages downstream.
            raise ProtocolError(f"refusing to write the header field {name!r}", 502)
        lines.append(f"{name}: {value}")
    if _BAD_VALUE.search(first):
        raise ProtocolError("refusing to write a start line with control characters", 502)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
