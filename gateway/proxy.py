"""The streaming reverse proxy (SPEC E3): forwards a request to the upstream application with
the identity headers the gateway vouches for, and streams both bodies.

Headers a client sends under the identity names are always removed, whatever route the
request takes; hop-by-hop headers are not forwarded. Upstream connections are kept alive in a
small pool. A refused or failed connection answers 502, a slow upstream 504.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.errors import UpstreamError
from gateway.http1 import (
    HOP_BY_HOP,
    Head,
    ProtocolError,
    body_chunks,
    chunk,
    encode_head,
    framing,
    read_head,
)
from gateway.server import Request, Response

__all__ = ["Upstream", "UpstreamPool", "forwarded_headers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int
    connect_timeout: float = 5.0
    response_timeout: float = 60.0  # for the response head; bodies may stream for longer
    idle_seconds: float = 30.0  # a pooled connection older than this is not reused
    pool_size: int = 64
    # Open connections per worker, idle or busy: a flood of slow uploads cannot exhaust the
    # upstream's connection slots.
    max_connections: int = 512

    @classmethod
    def from_url(cls, url: str, **options: float | int) -> Upstream:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the upstream must be an http:// URL, not {url!r}")
        return cls(parts.hostname, parts.port or 80, **options)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Link:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float
    reused: bool = False
    closed: bool = False


class UpstreamPool:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._idle: list[_Link] = []
        self.opened = 0
        self.open_links = 0

    def _drop(self, link: _Link) -> None:
        if not link.closed:
            link.closed = True
            self.open_links -= 1
        link.writer.close()

    async def _open(self) -> _Link:
        if self.open_links >= self.upstream.max_connections:
            raise UpstreamError(502, "too many connections to the upstream are open")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.upstream.host, self.upstream.port, limit=64 * 1024),
                self.upstream.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamError(504, "connecting to the upstream timed out") from None
        except OSError as exc:
            raise UpstreamError(502, f"cannot connect to the upstream: {exc.strerror}") from None
        self.opened += 1
        self.open_links += 1
        return _Link(reader, writer, time.monotonic())

    def _take(self) -> _Link | None:
        now = time.monotonic()
        while self._idle:
            link = self._idle.pop()
            if (
                now - link.idle_since < self.upstream.idle_seconds
                and not link.reader.at_eof()
                and not link.writer.is_closing()
            ):
                link.reused = True
                return link
            self._drop(link)
        return None

    def _give_back(self, link: _Link) -> None:
        if len(self._idle) < self.upstream.pool_size and not link.writer.is_closing():
            link.idle_since = time.monotonic()
            link.reused = False
            self._idle.append(link)
        else:
            self._drop(link)

    async def close(self) -> None:
        for link in self._idle:
            self._drop(link)
        self._idle.clear()

    async def forward(self, request: Request, headers: list[tuple[str, str]]) -> Response:
        """Sends ``request`` upstream with ``headers`` (already filtered) and returns the
        streamed response. Raises :class:`UpstreamError`."""
        no_body = not request.has_body
        link = self._take()
        if link is not None and no_body:
            # A pooled connection may have been closed by the upstream meanwhile: a request
            # without a body can safely be sent again on a fresh one.
            try:
                return await self._exchange(link, request, headers, no_body)
            except _StaleLink:
                link = None
        if link is None:
            link = await self._open()
        try:
            return await self._exchange(link, request, headers, no_body)
        except _StaleLink:
            raise UpstreamError(502, "the upstream closed the connection") from None

    async def _exchange(
        self, link: _Link, request: Request, headers: list[tuple[str, str]], no_body: bool
    ) -> Response:
        method = request.method
        has_body = not no_body
        outgoing = list(headers)
        if has_body:
            outgoing.append(("Transfer-Encoding", "chunked"))
        head_bytes = encode_head(f"{method} {request.target} HTTP/1.1", outgoing)
        writer = link.writer
        try:
            writer.write(head_bytes)
            if has_body:
                async for piece in request.body():
                    writer.write(chunk(piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ProtocolError:
            self._drop(link)
            raise
        except OSError as exc:
            self._drop(link)
            if link.reused and not has_body:
                raise _StaleLink from None
            raise UpstreamError(502, f"sending to the upstream failed: {exc}") from None
        try:
            async with asyncio.timeout(self.upstream.response_timeout):
                response_head = await read_head(link.reader)
                while response_head is not None and response_head.first[1].startswith("1"):
                    response_head = await read_head(link.reader)
        except TimeoutError:
            self._drop(link)
            raise UpstreamError(504, "the upstream did not answer in time") from None
        except (ProtocolError, OSError) as exc:
            self._drop(link)
            if link.reused and not has_body and isinstance(exc, OSError):
                raise _StaleLink from None
            raise UpstreamError(502, f"the upstream's answer is broken: {exc}") from None
        if response_head is None:
            self._drop(link)
            if link.reused and not has_body:
                raise _StaleLink
            raise UpstreamError(502, "the upstream closed the connection without answering")
        return self._response(link, response_head, method)

    def _response(self, link: _Link, head: Head, method: str) -> Response:
        try:
            status = int(head.first[1])
            frame = framing(head, request=False, status=status, method=method)
        except (ValueError, ProtocolError):
            self._drop(link)
            raise UpstreamError(502, "the upstream's answer is not HTTP/1.1") from None
        connection_named = head.tokens("connection")
        reusable = (
            head.first[0] == "HTTP/1.1"
            and "close" not in connection_named
            and not frame.until_close
        )
        dropped = HOP_BY_HOP | connection_named | {"content-length"}
        headers = [(name, value) for name, value in head.headers if name.lower() not in dropped]

        def finished(ok: bool) -> None:
            if ok and reusable:
                self._give_back(link)
            else:
                self._drop(link)

        if frame.empty:
            finished(True)
            length = head.get("content-length")
            if method == "HEAD" and length is not None and length.isdigit():
                # The length of the body a GET would get, as the upstream said.
                return Response(status, headers, _nothing(), length=int(length))
            return Response(status, headers, b"")
        return Response(
            status,
            headers,
            body_chunks(link.reader, frame),
            length=frame.length,  # None when chunked or until the close
            finished=finished,
        )


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


class _StaleLink(Exception):
    """A pooled connection turned out to be closed before the request reached the upstream."""


# Replaced by what the gateway itself saw, or answered by the gateway (Expect).
_REPLACED = frozenset(
    {
        "content-length",
        "expect",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-real-ip",
    }
)


def forwarded_headers(
    request: Request,
    *,
    strip: Iterable[str],
    add: Iterable[tuple[str, str]],
) -> list[tuple[str, str]]:
    """The request's headers as the upstream receives them: hop-by-hop headers, the headers
    named in ``strip`` (lower-case) and whatever the client's Connection header names
    removed; identity (``add``) and X-Forwarded-* added."""
    banned = HOP_BY_HOP | _REPLACED | frozenset(strip)
    banned |= request.head.tokens("connection")
    # Names with '_' are dropped, as nginx does: CGI-style upstreams read x_user_id as
    # x-user-id, so an underscore would smuggle an identity header past the strip.
    headers = [(n, v) for n, v in request.head.headers if n.lower() not in banned and "_" not in n]
    # The gateway is the edge: whatever X-Forwarded-* a client sends is its own claim and is
    # replaced by what the gateway saw.
    headers.append(("X-Forwarded-For", request.connection.client_address))
    headers.append(("X-Forwarded-Proto", "https"))
    host = request.head.get("host")
    if host:
        headers.append(("X-Forwarded-Host", host))
    headers.extend(add)
    return headers
