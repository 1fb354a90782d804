"""The streaming reverse proxy (SPEC E3): forwards a request to the upstream application with
the identity headers the gateway vouches for, and streams both bodies.

A request body keeps its framing (Content-Length or chunked). An answer the upstream gives
before the body is through (a 413 on the head alone) is relayed at once: the rest of the body
is neither read nor sent, and both connections close after the answer.

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
from functools import lru_cache
from urllib.parse import urlsplit

from ca_service.shared.http.client import ClientConnection, open_connection
from ca_service.shared.http.messages import HOP_BY_HOP, ProtocolError
from ca_service.shared.http.parser import Incoming
from gateway.errors import UpstreamError
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


class _StaleLink(Exception):
    """A pooled connection turned out to be closed before the request reached the upstream."""


class UpstreamPool:
    """Kept-alive connections to the upstream, per worker. The answer's head is awaited for
    at most ``response_timeout``: one sweep timer for the whole pool checks the connections
    waiting (at a quarter of the timeout, at most every second), not a timer per request."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._idle: list[ClientConnection] = []
        self._busy: set[ClientConnection] = set()
        self._sweeping: asyncio.TimerHandle | None = None
        self.opened = 0
        self.open_links = 0

    def _drop(self, link: ClientConnection) -> None:
        if link in self._busy:
            self._busy.discard(link)
            self.open_links -= 1
        link.close()

    async def _open(self) -> ClientConnection:
        if self.open_links >= self.upstream.max_connections:
            raise UpstreamError(502, "too many connections to the upstream are open")
        try:
            async with asyncio.timeout(self.upstream.connect_timeout):
                link = await open_connection(self.upstream.host, self.upstream.port)
        except TimeoutError:
            raise UpstreamError(504, "connecting to the upstream timed out") from None
        except OSError as exc:
            raise UpstreamError(502, f"cannot connect to the upstream: {exc.strerror}") from None
        self.opened += 1
        self.open_links += 1
        self._busy.add(link)
        return link

    def _take(self) -> ClientConnection | None:
        now = time.monotonic()
        while self._idle:
            link = self._idle.pop()
            self._busy.add(link)
            if now - link.idle_since < self.upstream.idle_seconds and link.usable:
                link.reused = True
                return link
            self._drop(link)
        return None

    def _give_back(self, link: ClientConnection) -> None:
        if len(self._idle) < self.upstream.pool_size and link.usable and link in self._busy:
            self._busy.discard(link)
            link.reused = False
            self._idle.append(link)
        else:
            self._drop(link)

    async def close(self) -> None:
        for link in self._idle:
            link.close()
        self.open_links -= len(self._idle)
        self._idle.clear()
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None

    def _sweep_soon(self) -> None:
        if self._sweeping is None:
            interval = min(1.0, self.upstream.response_timeout / 4)
            self._sweeping = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeping = None
        now = time.monotonic()
        limit = self.upstream.response_timeout
        waiting = False
        for link in list(self._busy):
            if link.waiting_since:
                if now - link.waiting_since >= limit:
                    link.fail(TimeoutError())
                else:
                    waiting = True
        if waiting:
            self._sweep_soon()

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
        self,
        link: ClientConnection,
        request: Request,
        headers: list[tuple[str, str]],
        no_body: bool,
    ) -> Response:
        method = request.method
        self._sweep_soon()
        try:
            head = await link.request(
                method,
                request.target,
                headers,
                None if no_body else request.body(),
                # A body of declared length goes on with that length, so the upstream can
                # refuse it on the head alone; a chunked one stays chunked.
                length=None if no_body else request.head.length,
            )
        except TimeoutError:
            self._drop(link)
            raise UpstreamError(504, "the upstream did not answer in time") from None
        except ProtocolError as exc:
            self._drop(link)
            if exc.status == 502:
                raise UpstreamError(502, f"the upstream's answer is broken: {exc}") from None
            raise  # the client's body was malformed: the client's error
        except OSError as exc:
            self._drop(link)
            if link.reused and no_body:
                raise _StaleLink from None
            raise UpstreamError(502, f"the upstream failed: {exc or type(exc).__name__}") from None
        return self._response(link, head, method)

    def _response(self, link: ClientConnection, head: Incoming, method: str) -> Response:
        dropped = _DROPPED_ANSWER | head.connection if head.connection else _DROPPED_ANSWER
        headers = [(name, value) for name, value in head.headers if name.lower() not in dropped]
        reusable = head.keep_alive
        # An answer before the whole body (a refusal): the client's connection closes after
        # it, the rest of the body unread (RFC 9112 §9.6), as the upstream's link does.
        close = link.cut_short
        whole = link.whole_body()
        if whole is not None:
            if reusable and not link.closed:
                self._give_back(link)
            else:
                self._drop(link)
            if method == "HEAD":
                length = head.get("content-length")
                if length is not None and length.isdigit():
                    # The length of the body a GET would get, as the upstream said.
                    return Response(head.status, headers, _nothing(), length=int(length))
            return Response(head.status, headers, whole, close=close)

        def finished(ok: bool) -> None:
            if ok and reusable and not link.closed:
                self._give_back(link)
            else:
                self._drop(link)

        return Response(
            head.status,
            headers,
            link.body(),
            length=head.length,  # None when chunked or until the close
            finished=finished,
            close=close,
        )


# Not passed on from the upstream's answer: the server frames the body itself, and dates the
# answer itself, as nginx does (passing the upstream's Date on as well made two Date fields).
_DROPPED_ANSWER = HOP_BY_HOP | {"content-length", "date"}


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


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


# End-to-end headers the upstream needs whatever the client's Connection header names
# (RFC 9110 §7.6.1 lets a sender name only hop-by-hop fields there; an HTTP/1.1 request
# without Host is one the upstream must refuse).
_KEPT = frozenset({"host"})


def _without_cookies(value: str, names: frozenset[str]) -> str:
    """A Cookie header's value without the pairs named in ``names``; the other pairs
    unchanged (RFC 6265 §5.4: ``name=value`` pairs separated by ``;``)."""
    pairs = (pair.strip() for pair in value.split(";"))
    return "; ".join(p for p in pairs if p and p.split("=", 1)[0].strip() not in names)


def forwarded_headers(
    request: Request,
    *,
    strip: Iterable[str],
    add: Iterable[tuple[str, str]],
    own_cookies: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """The request's headers as the upstream receives them: hop-by-hop headers, the headers
    named in ``strip`` (lower-case) and whatever else the client's Connection header names
    (but never Host) removed; the cookies named in ``own_cookies`` (the gateway's own, which
    the upstream must never see) taken out of every Cookie header; identity (``add``) and
    X-Forwarded-* added."""
    banned = _banned(strip if isinstance(strip, frozenset) else frozenset(strip))
    named = request.head.connection
    if named:
        banned = banned | (named - _KEPT)
    headers: list[tuple[str, str]] = []
    host = None
    for name, value in request.head.headers:
        lower = name.lower()
        # Names with '_' are dropped, as nginx does: CGI-style upstreams read x_user_id as
        # x-user-id, so an underscore would smuggle an identity header past the strip.
        if lower in banned or "_" in name:
            continue
        if lower == "cookie":
            cookies = frozenset(own_cookies)
            if cookies:
                value = _without_cookies(value, cookies)
                if not value:
                    continue
        elif lower == "host" and host is None:
            host = value
        headers.append((name, value))
    # The gateway is the edge: whatever X-Forwarded-* a client sends is its own claim and is
    # replaced by what the gateway saw.
    headers.append(("X-Forwarded-For", request.connection.client_address))
    headers.append(("X-Forwarded-Proto", "https"))
    if host:
        headers.append(("X-Forwarded-Host", host))
    headers.extend(add)
    return headers


@lru_cache(maxsize=8)
def _banned(strip: frozenset[str]) -> frozenset[str]:
    """The names never forwarded, for one set of stripped identity names (a gateway has
    one): computed once, not per request."""
    return HOP_BY_HOP | _REPLACED | strip
