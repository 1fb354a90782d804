"""HTTP/1.1 messages as both sides of every port see them (RFC 9110, RFC 9112): the head of a
request or response, the error that ends a connection, and how heads and chunks are written.

Parsing is :mod:`ca_service.shared.http.parser`'s; this module writes, and what it writes is
checked once more so that nothing a handler puts in a header can split into two fields or two
messages downstream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from operator import itemgetter

__all__ = [
    "CHUNK",
    "HOP_BY_HOP",
    "Head",
    "ProtocolError",
    "chunk",
    "encode_fields",
    "encode_head",
    "http_date",
    "http_date_bytes",
    "reason",
]

CHUNK = 64 * 1024  # bodies are passed on in pieces of at most this many bytes

# What a head may hold besides its line ends: HTAB, visible ASCII, space, obs-text (RFC 9110
# §5.5); and what a field name may hold: a token (§5.6.2).
_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_first_name = itemgetter(0)
_LINE_ENDS = [b"\r\n" * (count + 2) for count in range(64)]  # of a head with count fields

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
    """The peer sent something that is not acceptable HTTP/1.1; ``status`` is the answer to
    give (a server) or says what went wrong (a client)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Head:
    """A request or response head: ``first`` is the start line split in three (method, target,
    version; or version, status, reason), ``headers`` the fields in order, names as sent.

    A head received off the wire keeps its fields as the bytes llhttp checked (``raw``) and
    decodes them only when someone asks for ``headers``: a proxied request's fields go on as
    bytes, never decoded."""

    __slots__ = ("_headers", "first", "raw")

    def __init__(
        self,
        first: tuple[str, str, str],
        headers: list[tuple[str, str]] | None = None,
        *,
        raw: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.first = first
        self._headers = headers
        # As received (Latin-1 bytes); None for a head made from ``headers``.
        self.raw = raw

    @property
    def headers(self) -> list[tuple[str, str]]:
        headers = self._headers
        if headers is None:
            raw = self.raw or []
            headers = self._headers = [
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw
            ]
        return headers

    def __repr__(self) -> str:
        return f"Head({self.first!r}, {self.headers!r})"

    def get(self, name: str) -> str | None:
        """The first field called ``name`` (any case)."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def encode_head(first: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """A start line and header fields as bytes (Latin-1), ending with the empty line.

    Raises :class:`ProtocolError` (502) rather than write a name that is not a token or a
    value with a control character (which would split into two fields or two messages
    downstream). The checks are two passes in C over the whole head, not one per field:
    once every allowed byte is deleted, only the line ends may be left."""
    try:
        data = "\r\n".join([first, *map(": ".join, headers), "\r\n"]).encode("latin-1")
        names = "".join(map(_first_name, headers)).encode("latin-1")
    except UnicodeEncodeError:
        raise ProtocolError("refusing to write a head that is not Latin-1", 502) from None
    count = len(headers)
    line_ends = _LINE_ENDS[count] if count < len(_LINE_ENDS) else b"\r\n" * (count + 2)
    if data.translate(None, _VALUE_BYTES) != line_ends:
        raise ProtocolError("refusing to write a header field with a control character", 502)
    if names.translate(None, _TOKEN_BYTES) or b"\n:" in data:
        raise ProtocolError("refusing to write a header field without a token name", 502)
    return data


def encode_fields(headers: Sequence[tuple[str, str]]) -> bytes:
    """Header fields as the lines of a head (``Name: value\r\n`` each), checked as
    :func:`encode_head` checks them: for fields encoded once and sent many times."""
    if not headers:
        return b""
    return encode_head("-", headers)[3:-2]


def chunk(piece: bytes) -> bytes:
    """``piece`` as one chunk of a chunked body (nothing for an empty piece, which would end
    the body)."""
    return b"%x\r\n%b\r\n" % (len(piece), piece) if piece else b""


class _Date:
    second = -1
    text = ""
    raw = b""


def http_date() -> str:
    """Now as an HTTP date, formatted once per second."""
    second = int(time.time())
    if second != _Date.second:
        _Date.text, _Date.second = formatdate(second, usegmt=True), second
        _Date.raw = _Date.text.encode("ascii")
    return _Date.text


def http_date_bytes() -> bytes:
    """:func:`http_date` encoded."""
    if int(time.time()) != _Date.second:
        http_date()
    return _Date.raw
