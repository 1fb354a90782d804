"""The streaming reverse proxy (SPEC E3): forwards a request to the upstream application with
the identity headers the gateway vouches for, and streams both bodies.

A request body keeps its framing (Content-Length or chunked). An answer the upstream gives
before the body is through (a 413 on the head alone) is relayed at once: the rest of the body
is neither read nor sent, and both connections close after the answer.

Headers a client sends under the identity names are always removed, whatever route the
request takes; hop-by-hop headers are not forwarded. Upstream connections are kept alive in a
small pool. A refused or failed connection answers 502, a slow upstream 504.

A request without a body that finds an idle pooled connection is sent from the request's own
callback and answered from the upstream connection's (:meth:`UpstreamPool.forward_at_once`):
no task and no future between the two; anything else, or a pooled connection found closed on
the way, takes the coroutine path (:meth:`UpstreamPool.forward`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

from ca_service.shared.http.client import ClientConnection, open_connection, request_head
from ca_service.shared.http.messages import HOP_BY_HOP, ProtocolError, encode_fields
from ca_service.shared.http.parser import Incoming
from gateway.errors import UpstreamError
from gateway.server import Pending, Request, Response

__all__ = ["Forwarder", "Upstream", "UpstreamPool", "forwarded_headers"]

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


def _failure(exc: BaseException, link: ClientConnection, no_body: bool) -> Exception:
    """What an exchange's failure means: an :class:`UpstreamError` (answered 502 or 504),
    :class:`_StaleLink` (send it again on a fresh connection), or the client's own error
    (a malformed request body), to be raised as it is."""
    if isinstance(exc, TimeoutError):
        return UpstreamError(504, "the upstream did not answer in time")
    if isinstance(exc, ProtocolError):
        if exc.status == 502:
            return UpstreamError(502, f"the upstream's answer is broken: {exc}")
        return exc  # the client's body was malformed: the client's error
    if isinstance(exc, OSError):
        if link.reused and no_body:
            return _StaleLink()
        return UpstreamError(502, f"the upstream failed: {exc or type(exc).__name__}")
    return exc if isinstance(exc, Exception) else UpstreamError(502, "the exchange broke off")


class Forwarder(Protocol):
    """What the caller of :meth:`UpstreamPool.forward_at_once` does with the outcomes that
    are not a plain answer."""

    def upstream_failed(self, error: UpstreamError) -> Response:
        """The page for a failed exchange."""

    def forward_again(
        self, pool: UpstreamPool, request: Request, headers: bytes
    ) -> Awaitable[Response]:
        """The request sent again through ``pool`` (the pooled connection it went on was
        closed)."""

    def upstream_answered(self, seconds: float) -> None:
        """The head of the answer arrived after ``seconds``."""


class _Exchange(Pending):
    """One request sent by :meth:`UpstreamPool.forward_at_once`, until its answer's head."""

    __slots__ = ("_forwarder", "_headers", "_method", "_pool", "_started", "_to_send")

    def __init__(
        self,
        pool: UpstreamPool,
        forwarder: Forwarder,
        request: Request,
        headers: bytes,
    ) -> None:
        super().__init__()
        self._pool = pool
        self._forwarder = forwarder
        self._to_send = request
        self._headers = headers
        self._method = request.method
        self._started = time.perf_counter()

    def answered(self, link: ClientConnection, head: Incoming | BaseException) -> None:
        pool = self._pool
        if isinstance(head, Incoming):
            self._forwarder.upstream_answered(time.perf_counter() - self._started)
            self.resolve(pool._response(link, head, self._method))
            return
        pool._drop(link)
        failure = _failure(head, link, True)
        if isinstance(failure, _StaleLink):
            self.resolve(self._forwarder.forward_again(pool, self._to_send, self._headers))
        elif isinstance(failure, UpstreamError):
            self.resolve(self._forwarder.upstream_failed(failure))
        else:
            log.error("upstream exchange failed: %r", failure)
            self.resolve(self._forwarder.upstream_failed(UpstreamError(502, str(failure))))


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

    def forward_at_once(
        self, request: Request, headers: bytes, forwarder: Forwarder
    ) -> Pending | None:
        """Sends a request without a body on an idle pooled connection and returns what the
        answer resolves (from the upstream connection's callback); None when no pooled
        connection is idle (the caller takes :meth:`forward`)."""
        link = self._take()
        if link is None:
            return None
        exchange = _Exchange(self, forwarder, request, headers)
        try:
            link.submit(
                request_head(request.method, request.target, headers), request.method, exchange
            )
        except ConnectionResetError:
            self._drop(link)
            return None
        self._sweep_soon()
        return exchange

    async def forward(self, request: Request, headers: bytes) -> Response:
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
        headers: bytes,
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
        except (TimeoutError, ProtocolError, OSError) as exc:
            self._drop(link)
            failure = _failure(exc, link, no_body)
            if failure is exc:
                raise
            raise failure from None
        return self._response(link, head, method)

    def _response(self, link: ClientConnection, head: Incoming, method: str) -> Response:
        dropped = _DROPPED_ANSWER | _names(head.connection) if head.connection else _DROPPED_ANSWER
        # Relayed as the bytes llhttp checked (token names, no CR, LF or NUL in values).
        raw = head.raw or []
        fields = b"".join([b"%s: %s\r\n" % f for f in raw if f[0].lower() not in dropped])
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
                    return Response(head.status, [], _nothing(), length=int(length), fields=fields)
            return Response(head.status, [], whole, close=close, fields=fields)

        def finished(ok: bool) -> None:
            if ok and reusable and not link.closed:
                self._give_back(link)
            else:
                self._drop(link)

        return Response(
            head.status,
            [],
            link.body(),
            length=head.length,  # None when chunked or until the close
            finished=finished,
            close=close,
            fields=fields,
        )


# Not passed on from the upstream's answer: the server frames the body itself, and dates the
# answer itself, as nginx does (passing the upstream's Date on as well made two Date fields).
_DROPPED_ANSWER = frozenset(name.encode() for name in HOP_BY_HOP | {"content-length", "date"})


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


def _without_cookies(value: bytes, names: frozenset[bytes]) -> bytes:
    """A Cookie header's value without the pairs named in ``names``; the other pairs
    unchanged (RFC 6265 §5.4: ``name=value`` pairs separated by ``;``)."""
    pairs = (pair.strip() for pair in value.split(b";"))
    return b"; ".join(p for p in pairs if p and p.split(b"=", 1)[0].strip() not in names)


def forwarded_headers(
    request: Request,
    *,
    strip: Iterable[str],
    add: bytes | Iterable[tuple[str, str]],
    own_cookies: Iterable[str] = (),
) -> bytes:
    """The request's header fields as the upstream receives them, encoded: hop-by-hop fields,
    those named in ``strip`` (lower-case) and whatever else the client's Connection field
    names (but never Host) removed; the cookies named in ``own_cookies`` (the gateway's own,
    which the upstream must never see) taken out of every Cookie field; X-Forwarded-* and
    the identity (``add``: pairs, or lines encoded once by :func:`encode_fields`) added.

    The client's fields go on as the bytes llhttp checked (names are tokens, values have no
    CR, LF or NUL), never decoded and encoded again."""
    banned = _banned(strip if isinstance(strip, frozenset) else frozenset(strip))
    named = request.head.connection
    if named:
        banned = banned | _names(named - _KEPT)
    raw = request.head.raw
    if raw is None:  # a head made in the program, not received: checked as one written
        encode_fields(request.head.headers)
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request.head.headers]
    lines: list[bytes] = []
    host = b""
    cookies = _names(frozenset(own_cookies))
    for name, value in raw:
        lower = name.lower()
        # Names with '_' are dropped, as nginx does: CGI-style upstreams read x_user_id as
        # x-user-id, so an underscore would smuggle an identity header past the strip.
        if lower in banned or b"_" in name:
            continue
        if lower == b"cookie":
            if cookies:
                value = _without_cookies(value, cookies)
                if not value:
                    continue
        elif lower == b"host" and not host:
            host = value
        lines.append(b"%s: %s\r\n" % (name, value))
    # The gateway is the edge: whatever X-Forwarded-* a client sends is its own claim and is
    # replaced by what the gateway saw.
    lines.append(_forwarded_for(request.connection.client_address))
    if host:
        lines.append(b"X-Forwarded-Host: %s\r\n" % host)
    lines.append(add if isinstance(add, bytes) else encode_fields(list(add)))
    return b"".join(lines)


@lru_cache(maxsize=256)
def _forwarded_for(address: str) -> bytes:
    return encode_fields([("X-Forwarded-For", address), ("X-Forwarded-Proto", "https")])


@lru_cache(maxsize=64)
def _names(names: frozenset[str]) -> frozenset[bytes]:
    return frozenset(name.encode("latin-1") for name in names)


@lru_cache(maxsize=8)
def _banned(strip: frozenset[str]) -> frozenset[bytes]:
    """The names never forwarded, for one set of stripped identity names (a gateway has
    one): computed once, not per request."""
    return _names(HOP_BY_HOP | _REPLACED | strip)
