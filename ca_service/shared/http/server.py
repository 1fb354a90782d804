"""The HTTP/1.1 server of both ports: one ``asyncio.Protocol`` per connection around the
sans-IO reader, optionally with TLS inside (:mod:`ca_service.shared.http.tls`).

* **Admission**: every connection is admitted by the guard at accept (the cap, eviction of
  the connection that has waited longest, a refusal written at once when all are busy) and
  has one deadline for its request head, counted from the accept (the TLS handshake
  included) or from the end of the previous response.
* **Requests** go to one handler, which returns a :class:`Response`, an awaitable of one
  (run as a task) or a :class:`Pending` that some other protocol resolves later (the
  gateway's proxied request, answered from the upstream connection's callback: no task).
  Bodies are streamed to whoever reads them (:meth:`Request.body`), or, with ``max_body``,
  read whole before the handler is called (:attr:`Request.content`; the head deadline then
  covers the body too). Pipelined requests are answered in order.
* **Malformed requests** get the error page (``error_page(status, message)``) and the
  connection closes: nothing a client sends can raise out of here.
* **Writes** go out as one piece for a whole body (head and body in one TLS record and one
  system call); a streamed body is passed on as it comes, waiting only while the client is
  behind. A client that reads nothing for ``WRITE_TIMEOUT`` is dropped: that is the only
  timer, armed only while the transport's buffer is full. No timer per request.
* **Early answers**: a response marked ``close`` (or any close) while the client is still
  sending its body half-closes the connection and drops, unparsed, what still arrives for
  ``LINGER_SECONDS``, so that the client reads the answer rather than a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any, cast
from urllib.parse import parse_qsl

from ca_service.shared.http.messages import (
    ProtocolError,
    chunk,
    encode_head,
    http_date,
    http_date_bytes,
    reason,
)
from ca_service.shared.http.parser import END, MAX_HEAD_BYTES, Incoming, RequestReader
from ca_service.shared.http.tls import ServerTls, TlsSession, TlsSessions
from ca_service.shared.net.admission import Slot
from ca_service.shared.net.guard import ConnectionGuard

__all__ = [
    "AccessLog",
    "Connection",
    "ErrorPage",
    "Handler",
    "HttpServer",
    "Pending",
    "Request",
    "Response",
]

log = logging.getLogger(__name__)

BODY_IDLE_TIMEOUT = 30.0  # seconds a request body may stall between two pieces (408)
FORM_TIMEOUT = 30.0  # for a whole form read by a handler
WRITE_TIMEOUT = 60.0  # a client that reads nothing of the response for this long is dropped
DRAIN_LIMIT = 1024 * 1024  # unread request body read away to keep a connection
# After an answer given before the request's body was read, the connection is half-closed
# and what the client still sends is thrown away, unparsed, for at most this long: closing at
# once, with its data unread, would reset the connection and could erase the answer from the
# client's buffers before it read it (RFC 9112 §9.6).
LINGER_SECONDS = 2.0
_BODY_BUFFER = 64 * 1024  # request body held for a handler before reading pauses
_BACKLOG = 64  # pipelined messages parsed ahead before reading pauses

_NO_EVENTS: deque[object] = deque(maxlen=0)  # shared, always empty: most connections need no queue
_SPARE_READERS = 64
_REUSED_HEADS = 1024  # encoded heads kept for Response.reuse (a few hundred KB at most)
_STATUS_LINES = {status: f"HTTP/1.1 {status} {reason(status)}" for status in range(100, 600)}
# Status line and the start of the Date field, for statuses whose answers carry a body.
_FIELDS_ONLY_HEADS = {
    status: f"{line}\r\nDate: ".encode("latin-1")
    for status, line in _STATUS_LINES.items()
    if status >= 200 and status not in (204, 304)
}

# Why reading is paused (bits).
_BODY_FULL = 1
_WRITE_FULL = 2
_PIPELINE_FULL = 4


class Connection:
    """What a handler may know about the connection: the client's address and the TLS facts
    (plain attributes: a proxied request reads them on every request)."""

    __slots__ = ("certificate_der", "client_address", "resumed", "tls_version")

    def __init__(
        self,
        client_address: str,
        certificate_der: bytes | None,
        tls_version: str | None,
        resumed: bool,
    ) -> None:
        self.client_address = client_address
        self.certificate_der = certificate_der
        self.tls_version = tls_version
        self.resumed = resumed

    def forget_transport(self) -> None:
        """The connection is over (see :class:`_PlainConnection`)."""

    def __repr__(self) -> str:
        return f"Connection({self.client_address!r}, tls={self.tls_version!r})"


class _PlainConnection(Connection):
    """A plain connection: its address is asked of the socket only when someone wants it
    (the CA's OCSP and CRL answers never do)."""

    __slots__ = ("_address", "_transport")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._address: str | None = None
        self._transport: asyncio.BaseTransport | None = transport
        self.certificate_der = None
        self.tls_version = None
        self.resumed = False

    @property
    def client_address(self) -> str:
        if self._address is None:
            peer = self._transport.get_extra_info("peername") if self._transport else None
            self._address = str(peer[0]) if peer else ""
            self._transport = None
        return self._address

    @client_address.setter
    def client_address(self, address: str) -> None:
        self._address = address

    def forget_transport(self) -> None:
        """The transport refers to the protocol, which refers to this (a cycle). An address
        never asked for stays unknown."""
        self._transport = None


class _Body:
    """A request body on its way from the connection to the handler."""

    __slots__ = ("_owner", "_waiter", "done", "error", "pieces", "size")

    def __init__(self, owner: _ServerConnection) -> None:
        self._owner = owner
        self.pieces: deque[bytes] = deque()
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put(self, piece: bytes) -> None:
        self.pieces.append(piece)
        self.size += len(piece)
        if self.size > _BODY_BUFFER:
            self._owner._pause(_BODY_FULL)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._owner._server.loop.create_future()
        try:
            async with asyncio.timeout(BODY_IDLE_TIMEOUT):
                await self._waiter
        except TimeoutError:
            raise ProtocolError("the request body stalled", 408) from None
        finally:
            self._waiter = None

    async def chunks(self) -> AsyncIterator[bytes]:
        pieces = self.pieces
        while True:
            if pieces:
                piece = pieces.popleft()
                self.size -= len(piece)
                if self.size <= _BODY_BUFFER:
                    self._owner._resume(_BODY_FULL)
                yield piece
            elif self.done:
                if self.error is not None:
                    raise self.error
                return
            else:
                await self._wait()


class Request:
    """One request; its body is read at most once, in pieces, by whoever needs it."""

    __slots__ = (
        "_body",
        "_consumed",
        "connection",
        "content",
        "has_body",
        "head",
        "log_fields",
        "method",
        "path",
        "query",
        "target",
    )

    def __init__(
        self,
        head: Incoming,
        connection: Connection,
        body: _Body | None = None,
        content: bytes = b"",
    ) -> None:
        self.head = head
        self.connection = connection
        self.has_body = head.has_body
        self.method, self.target, _ = head.first
        self.path, _, self.query = self.target.partition("?")
        self._body = body
        self._consumed = False
        # The whole body, when the server reads bodies whole (``max_body``).
        self.content = content
        # Extra fields for the access log (user ID, serial), set by the handler.
        self.log_fields: dict[str, Any] = {}

    @property
    def consumed(self) -> bool:
        return self._consumed

    def body(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("the request body was already read")
        self._consumed = True
        if self._body is None:
            return _single(self.content)
        return self._body.chunks()

    async def read_body(self, limit: int) -> bytes:
        """The whole body, for small forms; 413 past ``limit``, 408 when it takes longer
        than ``FORM_TIMEOUT``."""
        data = bytearray()
        try:
            async with asyncio.timeout(FORM_TIMEOUT):
                async for piece in self.body():
                    data += piece
                    if len(data) > limit:
                        raise ProtocolError("request body too large", 413)
        except TimeoutError:
            raise ProtocolError("the request body took too long", 408) from None
        return bytes(data)

    async def form(self, limit: int = 64 * 1024) -> dict[str, str]:
        content_type = (self.head.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise ProtocolError("expected a form", 415)
        try:
            text = (await self.read_body(limit)).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the form is not UTF-8") from None
        return _pairs(text, 64)

    def query_params(self) -> dict[str, str]:
        return _pairs(self.query, 32)

    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        for name, value in self.head.headers:
            if name.lower() == "cookie":
                try:
                    jar.load(value)
                except CookieError:
                    continue
        return {key: morsel.value for key, morsel in jar.items()}


async def _single(content: bytes) -> AsyncIterator[bytes]:
    if content:
        yield content


def _pairs(text: str, most: int) -> dict[str, str]:
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=most))
    except ValueError:
        raise ProtocolError(f"more than {most} fields") from None


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    # For a streamed body whose length is known (sent as Content-Length).
    length: int | None = None
    # Called once the body was written (True) or writing failed (False).
    finished: Callable[[bool], None] | None = None
    # The handler's promise that every response with this key has the same status line and
    # headers: the encoded head (with Date, Content-Length and Connection) is then reused
    # within the second (for pre-signed OCSP answers).
    reuse: Hashable | None = None
    # The connection closes after this answer (``Connection: close``): for an answer given
    # before the request's body was read, whose rest is not worth reading (RFC 9112 §9.6).
    close: bool = False
    # Header fields already encoded and checked (``Name: value\r\n`` each), sent after
    # ``headers``: a proxied answer's fields, relayed as llhttp let them in.
    fields: bytes = b""


class Pending:
    """An answer that arrives later through a callback rather than a task: the handler returns
    it, and whoever has the answer calls :meth:`resolve` once, with the response or with an
    awaitable of one (which then runs as a task, as if the handler had returned it)."""

    __slots__ = ("_connection", "_request")

    def __init__(self) -> None:
        self._connection: _ServerConnection | None = None
        self._request: Request | None = None

    def resolve(self, answer: Response | Awaitable[Response]) -> None:
        connection, request = self._connection, self._request
        self._connection = self._request = None
        if connection is not None and request is not None:
            connection._deliver(request, answer)


Handler = Callable[[Request], "Response | Awaitable[Response] | Pending"]
AccessLog = Callable[[Request, int, int, float], None]
ErrorPage = Callable[[int, str], Response]


class HttpServer:
    """``tls``: the context of every new connection's handshake, or what makes each new
    connection's TLS side (None: plain HTTP).
    ``max_body``: read bodies whole up to this many bytes before calling the handler (413
    past it). ``refusal``: written to a connection refused at accept (all busy); without
    it, such a connection is closed before any TLS work."""

    def __init__(
        self,
        handler: Handler,
        *,
        guard: ConnectionGuard,
        error_page: ErrorPage,
        access_log: AccessLog | None = None,
        tls: ssl.SSLContext | TlsSessions | None = None,
        max_head: int = MAX_HEAD_BYTES,
        max_body: int | None = None,
        refusal: bytes = b"",
    ) -> None:
        self.handler = handler
        self.guard = guard
        self.error_page = error_page
        self.access_log = access_log
        self.tls = tls
        self.max_head = max_head
        self.max_body = max_body
        self.refusal = refusal
        self._servers: list[asyncio.base_events.Server] = []
        # (reuse key, status, length, keep-alive, Date) → encoded head; see Response.reuse.
        self.heads: dict[tuple[Hashable, int, int, bool, str], bytes] = {}
        # Readers of closed connections whose parser stood between two requests, for new
        # connections (making a parser is a good part of a short connection's cost).
        self.spare_readers: list[RequestReader] = []
        # Asked for once: on Python 3.11 every ``asyncio.get_running_loop()`` is a getpid()
        # system call.
        self.loop: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, None)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listens on ``host``:``port``; returns the port (useful with port 0)."""
        loop = self.loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _ServerConnection(self),
            host,
            port,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        self._servers.append(server)
        sockets: Any = server.sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stops listening; connections already open go on."""
        for server in self._servers:
            server.close()
        self._servers.clear()
        self.guard.close()


class _ServerConnection(asyncio.Protocol):
    """One connection. ``_request`` is the request being answered; events parsed ahead
    (pipelining) wait in ``_pending``."""

    __slots__ = (
        "_body",
        "_buffered",
        "_close_after",
        "_closing",
        "_connection",
        "_discarding",
        "_drain",
        "_guard",
        "_lingering",
        "_paused",
        "_pending",
        "_reader",
        "_request",
        "_running",
        "_server",
        "_slot",
        "_started",
        "_task",
        "_tls",
        "_transport",
        "_write_timer",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._guard = server.guard
        self._transport: asyncio.Transport | None = None
        self._tls: TlsSession | None = None
        self._slot: Slot | None = None
        spare = server.spare_readers
        self._reader = (
            spare.pop()
            if spare
            else RequestReader(max_head=server.max_head, max_body=server.max_body)
        )
        self._pending: deque[object] = _NO_EVENTS  # a deque of its own once needed
        self._request: Request | None = None
        self._body: _Body | None = None
        self._buffered: bytearray | None = None
        self._connection: Connection | None = None
        self._closing = False
        self._close_after = False
        self._running = False
        self._discarding = -1  # bytes of an unread body still to throw away; -1: none
        self._paused = 0
        self._drain: asyncio.Future[None] | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- the transport's callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        plain = cast(asyncio.Transport, transport)
        self._slot = self._guard.admit(plain.abort)
        if self._slot is None:
            if self._server.refusal:
                plain.write(self._server.refusal)
                plain.close()
            else:
                plain.abort()
            return
        self._transport = plain
        context = self._server.tls
        if isinstance(context, ssl.SSLContext):
            self._tls = ServerTls(context, plain)
        elif context is not None:
            self._tls = context(plain)
        else:
            self._connection = _PlainConnection(plain)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._closing = True
        reader = self._reader
        spare = self._server.spare_readers
        if reader.between_messages and len(spare) < _SPARE_READERS:
            spare.append(reader)  # its parser waits for a request: the next connection's
        else:
            reader.close()  # no cycle left for the garbage collector
        if self._connection is not None:
            self._connection.forget_transport()
        if self._slot is not None:
            self._guard.release(self._slot)
        if self._body is not None:
            self._body.finish(ConnectionResetError("the client went away"))
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        tls = self._tls
        if tls is not None:
            established = tls.established
            try:
                data = tls.receive(data)
            except (ssl.SSLError, EOFError):
                self._abort()
                return
            if not established and tls.established:
                self._connection = _tls_connection(self._transport, tls)
            if not data:
                return
        events: Sequence[object]
        try:
            events = self._reader.feed(data)
        except ProtocolError as exc:
            events = [exc]
            self._pause(_PIPELINE_FULL)  # nothing after an error is read
        if not events:
            return
        if (
            len(events) == 2
            and events[1] is END
            and not self._pending
            and self._request is None
            and self._discarding < 0
            and type(events[0]) is Incoming
        ):
            # The common case: one request without a body, nothing else waiting.
            self._begin(events[0], ended=True)
            return
        if self._pending is _NO_EVENTS:
            self._pending = deque()
        self._pending.extend(events)
        self._advance()

    def eof_received(self) -> bool | None:
        if self._body is not None:
            self._body.finish(ProtocolError("the client closed the connection in the body"))
        if self._request is None:
            return None  # the transport closes
        # A half-closed client still gets the answer it waits for; then the connection ends.
        self._close_after = True
        return True

    def pause_writing(self) -> None:
        self._pause(_WRITE_FULL)
        if self._write_timer is None and self._transport is not None:
            self._write_timer = self._server.loop.call_later(WRITE_TIMEOUT, self._abort)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._resume(_WRITE_FULL)
        self._wake_writer()

    # -- reading ---------------------------------------------------------------------------

    def _pause(self, reason_bit: int) -> None:
        if not self._paused and self._transport is not None:
            self._transport.pause_reading()
        self._paused |= reason_bit

    def _resume(self, reason_bit: int) -> None:
        if self._paused & reason_bit:
            self._paused &= ~reason_bit
            if not self._paused and self._transport is not None and not self._closing:
                self._transport.resume_reading()

    def _advance(self) -> None:
        """Hands the events parsed so far on, in order, as far as the request in progress
        allows; re-entered only through this loop."""
        if self._running:
            return
        self._running = True
        try:
            pending = self._pending
            while pending and not self._closing:
                event = pending[0]
                if self._discarding >= 0:
                    pending.popleft()
                    self._discard(event)
                elif self._request is None:
                    pending.popleft()
                    if isinstance(event, Incoming):
                        self._begin(event)
                    elif isinstance(event, ProtocolError):
                        self._refuse(event)
                elif isinstance(event, bytes):
                    pending.popleft()
                    if self._body is not None:
                        self._body.put(event)
                    elif self._buffered is not None:
                        self._buffered += event
                elif event is END:
                    pending.popleft()
                    self._end_of_body()
                elif isinstance(event, ProtocolError) and self._body is not None:
                    pending.popleft()
                    self._body.finish(event)  # the handler reading the body sees it
                    self._closing_after()
                elif isinstance(event, ProtocolError) and self._buffered is not None:
                    pending.popleft()
                    self._request = self._buffered = None
                    self._refuse(event)
                else:
                    break  # the next request waits for this one's answer
            if len(pending) > _BACKLOG:
                self._pause(_PIPELINE_FULL)
            elif not pending:
                self._resume(_PIPELINE_FULL)
        finally:
            self._running = False

    def _discard(self, event: object) -> None:
        if event is END:
            self._discarding = -1
        elif isinstance(event, bytes):
            self._discarding -= len(event)
            if self._discarding < 0:
                self._close()
        else:
            self._close()

    def _begin(self, head: Incoming, *, ended: bool = False) -> None:
        """``ended``: the request's END was taken already (it came with the head)."""
        assert self._slot is not None and self._connection is not None
        if head.continue_expected:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        has_body = head.has_body
        if self._server.max_body is None or not has_body:
            self._guard.busy(self._slot)
            self._body = _Body(self) if has_body else None
            request = Request(head, self._connection, self._body)
            self._request = request
            if self._body is None and not ended:
                self._expect_end()
            self._dispatch(request)
        else:
            # Read whole first; the head deadline covers the body.
            self._buffered = bytearray()
            self._request = Request(head, self._connection)

    def _expect_end(self) -> None:
        """A request without a body: its END is next and carries nothing."""
        if self._pending and self._pending[0] is END:
            self._pending.popleft()

    def _end_of_body(self) -> None:
        if self._body is not None:
            self._body.finish()
        elif self._buffered is not None:
            request = self._request
            assert request is not None and self._slot is not None
            request.content = bytes(self._buffered)
            self._buffered = None
            self._guard.busy(self._slot)
            self._dispatch(request)

    def _refuse(self, error: ProtocolError) -> None:
        """For a request too broken to hand to the handler; the connection closes after."""
        if self._slot is not None:
            self._guard.busy(self._slot)
        try:
            response = self._server.error_page(error.status, str(error))
        except Exception:
            log.exception("the error page failed")
            response = Response(error.status, [("Content-Type", "text/plain")], b"")
        self._send_whole(response, None, False)
        self._close()

    # -- answering -------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        if self._server.access_log is not None:
            self._started = time.perf_counter()
        try:
            result = self._server.handler(request)
        except Exception as exc:
            result = self._handler_failed(exc)
        if isinstance(result, Pending):
            result._connection, result._request = self, request
        else:
            self._deliver(request, result)

    def _deliver(self, request: Request, result: Response | Awaitable[Response]) -> None:
        if isinstance(result, Response) and isinstance(result.body, bytes):
            try:
                self._send_whole(result, request, self._keep_alive(request))
                self._finish(request, result.status, len(result.body), True)
            except Exception:
                # Called from another protocol's callback (Pending): nothing may escape.
                log.exception("answering a request failed")
                self._abort()
        else:
            self._task = self._server.loop.create_task(self._answer(request, result))

    def _keep_alive(self, request: Request) -> bool:
        return request.head.keep_alive and not self._reader.closing and not self._close_after

    def _closing_after(self) -> None:
        """The connection closes once the current answer is out."""
        self._close_after = True

    def _handler_failed(self, exc: Exception) -> Response:
        """The answer for a handler that raised ``exc`` (called in its ``except``, for the
        traceback): the request's own fault (:class:`ProtocolError`) or ours (500, logged);
        the connection closes after it either way."""
        self._closing_after()
        if isinstance(exc, ProtocolError):
            return self._server.error_page(exc.status, str(exc))
        log.exception("request handler failed")
        return self._server.error_page(500, "internal error")

    async def _answer(self, request: Request, result: Response | Awaitable[Response]) -> None:
        try:
            if isinstance(result, Response):
                response = result
            else:
                try:
                    response = await result
                except Exception as exc:
                    response = self._handler_failed(exc)
            if isinstance(response.body, bytes):
                self._send_whole(response, request, self._keep_alive(request))
                self._finish(request, response.status, len(response.body), True)
            else:
                sent, ok = await self._send_streamed(response, request)
                self._finish(request, response.status, sent, ok)
        except Exception:
            log.exception("answering a request failed")
            self._abort()

    def _head(
        self, response: Response, request: Request | None, keep_alive: bool, length: int | None
    ) -> tuple[bytes, bool]:
        """The response head, and whether the body goes chunked."""
        status = response.status
        if (
            keep_alive
            and response.fields
            and not response.headers
            and length is not None
            and not response.close
            and status in _FIELDS_ONLY_HEADS
        ):
            # The common proxied answer: its fields encoded and checked already, a length.
            return b"%s%s\r\n%sContent-Length: %d\r\n\r\n" % (
                _FIELDS_ONLY_HEADS[status],
                http_date_bytes(),
                response.fields,
                length,
            ), False
        headers = [("Date", http_date()), *response.headers]
        if response.close:
            keep_alive = False
        chunked = False
        if length is not None:
            if status != 304 and status != 204:
                headers.append(("Content-Length", str(length)))
        elif request is not None and request.method == "HEAD":
            pass
        elif request is None or request.head.first[2] == "HTTP/1.1":
            headers.append(("Transfer-Encoding", "chunked"))
            chunked = True
        else:
            keep_alive = False  # an HTTP/1.0 client reads the body until the close
        if not keep_alive:
            headers.append(("Connection", "close"))
            self._closing_after()
        first = _STATUS_LINES.get(status) or f"HTTP/1.1 {status} {reason(status)}"
        head = encode_head(first, headers)
        if response.fields:
            head = head[:-2] + response.fields + b"\r\n"
        return head, chunked

    def _send_whole(self, response: Response, request: Request | None, keep_alive: bool) -> None:
        body = response.body
        assert isinstance(body, bytes)
        try:
            if response.reuse is None:
                head, _ = self._head(response, request, keep_alive, len(body))
            else:
                head = self._reused_head(response, request, keep_alive, len(body))
        except ProtocolError as exc:
            log.error("cannot send the response: %s", exc)
            response = Response(502, [("Content-Type", "text/plain")], b"bad response\n")
            body = b"bad response\n"
            head, _ = self._head(response, request, False, len(body))
        no_body = (request is not None and request.method == "HEAD") or response.status in (
            204,
            304,
        )
        self._write(head if no_body else head + body)
        if response.finished is not None:
            response.finished(True)

    def _reused_head(
        self, response: Response, request: Request | None, keep_alive: bool, length: int
    ) -> bytes:
        heads = self._server.heads
        key = (response.reuse, response.status, length, keep_alive, http_date())
        head = heads.get(key)
        if head is None:
            if len(heads) >= _REUSED_HEADS:
                heads.clear()
            head = heads[key] = self._head(response, request, keep_alive, length)[0]
        elif not keep_alive:
            self._closing_after()
        return head

    async def _send_streamed(self, response: Response, request: Request) -> tuple[int, bool]:
        """Writes a streamed body; (bytes sent, whether the connection is still usable)."""
        body = response.body
        assert not isinstance(body, bytes)
        sent = 0
        ok = True
        no_body = request.method == "HEAD" or response.status in (204, 304)
        try:
            head, chunked = self._head(
                response, request, self._keep_alive(request), response.length
            )
            pending: bytes | None = head  # goes out with the first piece
            async for piece in body:
                if no_body:
                    continue
                framed = chunk(piece) if chunked else piece
                if pending is not None:
                    framed, pending = pending + framed, None
                if framed:
                    self._write(framed)
                sent += len(piece)
                if self._paused & _WRITE_FULL:
                    await self._writable()
            self._write((pending or b"") + (b"0\r\n\r\n" if chunked and not no_body else b""))
        except (ConnectionError, ProtocolError, OSError, TimeoutError) as exc:
            # The upstream or the client broke off in the middle: the client cannot tell a
            # truncated body from a whole one unless the connection closes.
            log.warning("response body broke off after %d bytes: %s", sent, exc)
            ok = False
        finally:
            if response.finished is not None:
                response.finished(ok)
        if response.length is not None and sent != response.length and not no_body:
            ok = False
        return sent, ok

    async def _writable(self) -> None:
        if self._transport is None:
            raise ConnectionResetError("the client went away")
        self._drain = self._server.loop.create_future()
        try:
            await self._drain
        finally:
            self._drain = None
        if self._transport is None:
            raise ConnectionResetError("the client went away")

    def _wake_writer(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _finish(self, request: Request, status: int, sent: int, ok: bool) -> None:
        access_log = self._server.access_log
        if access_log is not None:
            access_log(request, status, sent, time.perf_counter() - self._started)
        if self._request is not request:
            return
        self._request = None
        if not ok or self._close_after or self._reader.closing or self._transport is None:
            self._close()
            return
        body, self._body = self._body, None
        if body is not None:
            if body.error is not None:
                self._close()
                return
            if not body.done:
                # The handler did not read the whole body: read it away (up to a limit).
                self._discarding = max(0, DRAIN_LIMIT - body.size)
            body.pieces.clear()
        self._resume(_BODY_FULL)
        assert self._slot is not None
        self._guard.waiting(self._slot)
        if self._pending:
            self._advance()

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._tls is not None:
            self._tls.send(data)
        else:
            transport.write(data)

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        transport = self._transport
        if transport is None:
            return
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError, OSError):
                self._tls.close()
        body = self._body
        if body is not None and not body.done and transport.can_write_eof():
            self._linger(transport)
        else:
            transport.close()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-closes a connection whose client is still sending a body: the answer and a
        FIN go out, what arrives is dropped unread (``data_received`` ignores a closing
        connection) until the client closes or ``LINGER_SECONDS`` pass."""
        with contextlib.suppress(OSError, RuntimeError):
            transport.write_eof()
        self._paused = 0
        transport.resume_reading()
        self._lingering = self._server.loop.call_later(LINGER_SECONDS, transport.close)

    def _abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()


def _tls_connection(transport: asyncio.BaseTransport | None, tls: TlsSession) -> Connection:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return Connection(
        str(peer[0]) if peer else "",  # the gateway needs it for every request
        tls.peer_certificate(),
        tls.version(),
        tls.resumed(),
    )
