"""The HTTP/1.1 client side: one ``asyncio.Protocol`` per connection to a server, one exchange
at a time, around the sans-IO response reader; and :func:`fetch`, a one-shot GET.

A response arrives as its head, then its body: whole, when it came with the head (the common
case of a small answer: no iteration, no extra task), else streamed in the pieces the server
sends, reading paused while more than 64 KiB wait for the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, cast

from ca_service.shared.http.messages import ProtocolError, chunk, encode_fields
from ca_service.shared.http.parser import END, Event, Incoming, ResponseReader

__all__ = ["Answered", "ClientConnection", "Fields", "fetch", "open_connection", "request_head"]

_BUFFER = 64 * 1024
_CHUNKED = b"Transfer-Encoding: chunked\r\n"

Fields = list[tuple[str, str]] | bytes
"""A request's header fields: pairs, or lines already encoded (``Name: value\r\n`` each) by
whoever checked them (:func:`~ca_service.shared.http.messages.encode_fields`, or fields that
llhttp checked on their way in)."""


def request_head(method: str, target: str, fields: Fields, framing: bytes = b"") -> bytes:
    """A request's head; ``method`` and ``target`` as llhttp let them in, or the program's own."""
    lines = fields if isinstance(fields, bytes) else encode_fields(fields)
    return f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + lines + framing + b"\r\n"


class Answered(Protocol):
    """Who is told, by :meth:`ClientConnection.submit`, that the answer's head arrived (or
    why none will)."""

    def answered(self, link: ClientConnection, head: Incoming | BaseException) -> None: ...


class ClientConnection(asyncio.Protocol):
    """``idle_since`` (monotonic) is when its last exchange ended; ``waiting_since`` when the
    current request was sent and its answer's head is awaited (0: not waiting).

    An exchange either awaits its answer (:meth:`request`, a coroutine) or is told of it by a
    callback from the protocol itself (:meth:`submit`: no task, no future, no turn of the
    event loop between the answer's arrival and its use)."""

    __slots__ = (
        "_buffered",
        "_events",
        "_listener",
        "_loop",
        "_paused",
        "_reader",
        "_spare",
        "_waiter",
        "_writable",
        "closed",
        "cut_short",
        "idle_since",
        "reused",
        "transport",
        "waiting_since",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._reader: ResponseReader | None = None
        self._spare: ResponseReader | None = None  # the last exchange's, to use again
        self._events: deque[Event | BaseException] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._listener: Answered | None = None  # of a submitted exchange, until its head
        self._writable: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self.waiting_since = 0.0
        self.reused = False
        self.cut_short = False  # the last request's body was not sent whole (an early answer)

    # -- the transport's callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:
            self.closed = True  # bytes nobody asked for: the connection is spoiled
            return
        try:
            events = reader.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if events:
            for event in events:
                if isinstance(event, bytes):
                    self._buffered += len(event)
            self._events.extend(events)
            if self._buffered > _BUFFER and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()
        if reader.extra:
            self.closed = True
        if events:
            self._wake()

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._ended(exc)
        # Parser and reader refer to each other: a cycle for the garbage collector unless
        # broken here (what the reader had to say is in the events by now).
        for reader in (self._spare, self._reader):
            if reader is not None:
                reader.close()
        self._spare = None
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- exchanges -------------------------------------------------------------------------

    def _ended(self, exc: Exception | None) -> None:
        if self.closed and self._reader is None:
            return
        self.closed = True
        reader = self._reader
        if reader is None:
            return
        try:
            events: list[Event | BaseException] = list(reader.feed_eof())
        except (ProtocolError, ConnectionError) as error:
            events = [error]
        self._events.extend(events)
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        self._events.append(exc)
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self._listener is not None:
            self._tell()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _tell(self) -> None:
        """Hands the submitted exchange's answer head (or its failure) to its listener."""
        listener = self._listener
        events = self._events
        if listener is None or not events:
            return
        self._listener = None
        self.waiting_since = 0.0
        event = events.popleft()
        if isinstance(event, Incoming | BaseException):
            listener.answered(self, event)
        else:
            listener.answered(self, ProtocolError("the answer has no head", 502))

    async def _next(self) -> Event:
        events = self._events
        while not events:
            if self.closed and self._reader is None:
                raise ConnectionResetError("the connection is closed")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = events.popleft()
        if isinstance(event, BaseException):
            raise event
        if isinstance(event, bytes):
            self._buffered -= len(event)
            if self._paused and self._buffered <= _BUFFER and self.transport is not None:
                self._paused = False
                self.transport.resume_reading()
        return event

    def fail(self, exc: BaseException) -> None:
        """Ends the exchange in progress with ``exc`` (a timeout) and the connection."""
        self._fail(exc)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise ConnectionResetError("the connection is closed")
        self.transport.write(data)

    async def drain(self) -> None:
        while self._writable is not None:
            await self._writable
        if self.transport is None:
            raise ConnectionResetError("the connection is closed")

    def _expect_answer(self, method: str) -> None:
        """A reader for the answer to a ``method`` request about to be sent (the last
        exchange's again, when it can serve)."""
        spare, self._spare = self._spare, None
        self._reader = ResponseReader(method) if spare is None else spare.next(method)
        self._events.clear()
        self.cut_short = False

    def submit(self, head: bytes, method: str, listener: Answered) -> None:
        """Sends a request without a body (its :func:`request_head`); ``listener`` is told of the
        answer's head from within the protocol's callbacks, the body then being read as
        after :meth:`request`. Raises ``ConnectionResetError`` at once when the connection
        is known to be closed."""
        self._expect_answer(method)
        self.write(head)
        self.waiting_since = time.monotonic()
        self._listener = listener

    async def request(
        self,
        method: str,
        target: str,
        headers: Fields,
        body: AsyncIterator[bytes] | None = None,
        *,
        length: int | None = None,
    ) -> Incoming:
        """Sends a request and returns the head of its answer (1xx heads skipped). ``body`` goes
        with ``Content-Length: length`` when the length is given, else chunked. An answer that
        arrives while the body is still being sent ends the sending at once (RFC 9112 §9.3:
        the server refused it, typically 413): the request is then :attr:`cut_short` and the
        connection is not used again. Raises ``OSError`` (``ConnectionError``) when the
        connection broke, :class:`ProtocolError` when the answer is not HTTP/1.1 (and whatever
        ``body`` raises: the sender's error)."""
        self._expect_answer(method)
        if body is None:
            self.write(request_head(method, target, headers))
        else:
            framing = b"Content-Length: %d\r\n" % length if length is not None else _CHUNKED
            self.write(request_head(method, target, headers, framing))
            await self._send_watching(body, length)
        self.waiting_since = time.monotonic()
        try:
            event = await self._next()
        finally:
            self.waiting_since = 0.0
        if not isinstance(event, Incoming):
            raise ProtocolError("the answer has no head", 502)
        return event

    async def _send_watching(self, body: AsyncIterator[bytes], length: int | None) -> None:
        """Sends ``body`` while watching for the answer: whichever comes first, the end of the
        body or something from the server (an answer, or the connection's end)."""
        sender = self._loop.create_task(self._send_body(body, length))
        self._waiter = watch = self._loop.create_future()
        try:
            await asyncio.wait((sender, watch), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            sender.cancel()
            raise
        finally:
            self._waiter = None
        if sender.done():
            error = sender.exception()
            if error is None:
                return
            if not (isinstance(error, OSError) and self._events):
                raise error
            # The server answered, then closed, while the body was still going out: the
            # answer is what counts.
        else:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
        self.cut_short = True
        self.closed = True  # the server still waits for the rest of the body: never reused

    async def _send_body(self, body: AsyncIterator[bytes], length: int | None) -> None:
        sent = 0
        async for piece in body:
            if piece:
                self.write(piece if length is not None else chunk(piece))
                sent += len(piece)
                if sent == length:
                    # All of it is out: done now, not when the source says it has ended,
                    # lest a prompt answer to the whole body pass for an early one.
                    return
                await self.drain()
        if length is None:
            self.write(b"0\r\n\r\n")

    def whole_body(self) -> bytes | None:
        """The body of the answer when all of it has arrived already (else None)."""
        events = self._events
        if not events or events[-1] is not END:
            return None
        pieces = []
        while True:
            event = events.popleft()
            if event is END:
                break
            assert isinstance(event, bytes)
            pieces.append(event)
        self._buffered = 0
        self._done()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def body(self) -> AsyncIterator[bytes]:
        """The rest of the answer's body, as it arrives."""
        while True:
            event = await self._next()
            if event is END:
                self._done()
                return
            assert isinstance(event, bytes)
            yield event

    def _done(self) -> None:
        reader = self._reader
        if reader is not None and reader.extra:
            self.closed = True
        self._spare = reader
        self._reader = None
        self.idle_since = time.monotonic()
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            if self.cut_short:
                # What is left of a refused body in the write buffer is not worth sending.
                self.transport.abort()
            else:
                self.transport.close()


async def open_connection(host: str, port: int) -> ClientConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(ClientConnection, host, port)
    return protocol


async def fetch(
    host: str, port: int, target: str, headers: list[tuple[str, str]], *, max_bytes: int
) -> tuple[Incoming, bytes]:
    """One GET on a new connection (``Connection: close``): the answer's head and body.
    Raises ``OSError``, and :class:`ProtocolError` for a broken or oversized answer."""
    connection = await open_connection(host, port)
    try:
        head = await connection.request("GET", target, [*headers, ("Connection", "close")])
        whole = connection.whole_body()
        if whole is not None:
            if len(whole) > max_bytes:
                raise ProtocolError("the answer is too large", 502)
            return head, whole
        body = bytearray()
        async for piece in connection.body():
            body += piece
            if len(body) > max_bytes:
                raise ProtocolError("the answer is too large", 502)
        return head, bytes(body)
    finally:
        connection.close()
