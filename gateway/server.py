"""The gateway's HTTP/1.1 server on asyncio streams over TLS: keep-alive, streamed request
and response bodies, one handler for every request, and the facts about the connection that
the handler needs (the client certificate, TLS version, whether the session was resumed)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from gateway.http1 import (
    Head,
    ProtocolError,
    body_chunks,
    check_request_line,
    chunk,
    encode_head,
    framing,
    read_head,
)

__all__ = ["Connection", "Handler", "HttpServer", "Request", "Response"]

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0  # between requests on a kept-alive connection
HEAD_TIMEOUT = 30.0  # for a started request head to arrive in full
DRAIN_LIMIT = 1024 * 1024  # unread request body we read away to keep a connection
FORM_TIMEOUT = 30.0  # for a whole form posted to the gateway's own screens
WRITE_TIMEOUT = 60.0  # a client that reads nothing of the response for this long is dropped
_WRITE_BUFFER_HIGH = 256 * 1024


@dataclass(frozen=True, slots=True)
class Connection:
    client_address: str
    certificate_der: bytes | None
    tls_version: str | None
    resumed: bool


class Request:
    """One request; its body is read at most once, in chunks, by whoever needs it."""

    __slots__ = (
        "_body",
        "_consumed",
        "connection",
        "has_body",
        "head",
        "log_fields",
        "path",
        "query",
    )

    def __init__(
        self,
        head: Head,
        body: AsyncIterator[bytes],
        connection: Connection,
        *,
        has_body: bool = False,
    ) -> None:
        self.head = head
        self.connection = connection
        # From the framing the server already worked out (Content-Length or chunked).
        self.has_body = has_body
        target = head.first[1]
        self.path, _, self.query = target.partition("?")
        self._body = body
        self._consumed = False
        # Extra fields for the access log (user ID, serial), set by the handler.
        self.log_fields: dict[str, Any] = {}

    @property
    def method(self) -> str:
        return self.head.first[0]

    @property
    def target(self) -> str:
        return self.head.first[1]

    def body(self) -> AsyncIterator[bytes]:
        if self._consumed:
            raise RuntimeError("the request body was already read")
        self._consumed = True
        return self._body

    async def read_body(self, limit: int) -> bytes:
        """The whole body, for the gateway's own small forms; 413 past ``limit``."""
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

    @property
    def consumed(self) -> bool:
        return self._consumed


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    # For a streamed body whose length is known (forwarded as Content-Length).
    length: int | None = None
    # Called once the body was written (True) or writing failed (False).
    finished: Callable[[bool], None] | None = None


Handler = Callable[[Request], Awaitable[Response]]
AccessLog = Callable[[Request, int, int, float], None]


def _pairs(text: str, most: int) -> dict[str, str]:
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=most))
    except ValueError:
        raise ProtocolError(f"more than {most} fields") from None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def _drain(writer: asyncio.StreamWriter) -> None:
    """Waits while the client is behind; only then is a timer armed (most writes fit the
    transport's buffer and need no wait at all)."""
    transport = writer.transport
    if transport.is_closing():
        raise ConnectionResetError("the client went away")
    if transport.get_write_buffer_size() > _WRITE_BUFFER_HIGH:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()


async def _drain_body(body: AsyncIterator[bytes]) -> bool:
    """Reads away an unread request body; False when it is too long to bother."""
    total = 0
    async for piece in body:
        total += len(piece)
        if total > DRAIN_LIMIT:
            return False
    return True


class HttpServer:
    def __init__(
        self,
        handler: Handler,
        context: ssl.SSLContext | None,
        *,
        error_page: Callable[[int, str], Response],
        access_log: AccessLog | None = None,
    ) -> None:
        self._handler = handler
        self._context = context
        self._error_page = error_page
        self._access_log = access_log
        self._server: asyncio.Server | None = None
        self._date = ""
        self._date_second = -1

    def _http_date(self) -> str:
        second = int(time.time())
        if second != self._date_second:
            self._date, self._date_second = formatdate(second, usegmt=True), second
        return self._date

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        self._server = await asyncio.start_server(
            self._serve,
            host,
            port,
            ssl=self._context,
            reuse_port=reuse_port or None,
            backlog=1024,
            limit=64 * 1024,
            **({"ssl_handshake_timeout": 15} if self._context is not None else {}),
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _connection(self, writer: asyncio.StreamWriter) -> Connection:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        tls: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
        if tls is None:
            return Connection(address, None, None, False)
        return Connection(
            address, tls.getpeercert(binary_form=True), tls.version(), tls.session_reused
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            connection = self._connection(writer)
            first = True
            while True:
                try:
                    async with asyncio.timeout(HEAD_TIMEOUT if first else IDLE_TIMEOUT):
                        head = await read_head(reader)
                except ProtocolError as exc:
                    await self._answer_error(writer, exc.status, str(exc))
                    return
                except TimeoutError:
                    return
                if head is None:
                    return
                first = False
                if not await self._exchange(reader, writer, head, connection):
                    return
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            writer.close()

    async def _answer_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        """For a request too broken to hand to the handler; the connection closes after."""
        await self._send(writer, self._error_page(status, message), False, "GET", "HTTP/1.1")

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: Head,
        connection: Connection,
    ) -> bool:
        """Answers one request; False when the connection must close afterwards."""
        started = time.perf_counter()
        method, _, version = head.first
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            await self._answer_error(writer, 505, "only HTTP/1.1 is served")
            return False
        try:
            check_request_line(head)
            frame = framing(head, request=True)
        except ProtocolError as exc:
            await self._answer_error(writer, exc.status, str(exc))
            return False
        tokens = head.tokens("connection")
        keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        expect = head.get("expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                await self._answer_error(writer, 417, "only 100-continue is supported")
                return False
            if version == "HTTP/1.1" and not frame.empty:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request = Request(head, body_chunks(reader, frame), connection, has_body=not frame.empty)
        try:
            response = await self._handler(request)
        except ProtocolError as exc:
            response = self._error_page(exc.status, str(exc))
            keep_alive = False
        except Exception:
            log.exception("request handler failed")
            response = self._error_page(500, "internal error")
            keep_alive = False
        if request.has_body and not request.consumed and keep_alive:
            try:
                keep_alive = await _drain_body(request.body())
            except ProtocolError:
                keep_alive = False
        sent, ok = await self._send(writer, response, keep_alive, method, version)
        if self._access_log is not None:
            self._access_log(request, response.status, sent, time.perf_counter() - started)
        return keep_alive and ok

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        keep_alive: bool,
        method: str,
        version: str,
    ) -> tuple[int, bool]:
        """Writes the response; (body bytes sent, whether the connection is still usable)."""
        status = response.status
        headers = [("Date", self._http_date()), *response.headers]
        no_body = method == "HEAD" or status in (204, 304)
        body = response.body
        chunked = False
        if isinstance(body, bytes):
            if status != 304 and status != 204:
                headers.append(("Content-Length", str(len(body))))
        elif response.length is not None:
            headers.append(("Content-Length", str(response.length)))
        elif version == "HTTP/1.1" and not no_body:
            headers.append(("Transfer-Encoding", "chunked"))
            chunked = True
        elif not no_body:
            keep_alive = False  # an HTTP/1.0 client reads the body until the close
        if not keep_alive:
            headers.append(("Connection", "close"))
        head = encode_head(f"HTTP/1.1 {status} {_reason(status)}", headers)
        sent = 0
        ok = True
        try:
            if isinstance(body, bytes):
                # One write, so head and body usually leave in one TLS record and syscall.
                writer.write(head if no_body else head + body)
                sent = 0 if no_body else len(body)
                await _drain(writer)
            else:
                pending: bytes | None = head  # sent together with the first piece
                async for piece in body:
                    if no_body:
                        continue
                    framed = chunk(piece) if chunked else piece
                    if pending is not None:
                        framed, pending = pending + framed, None
                    if framed:
                        writer.write(framed)
                    sent += len(piece)
                    await _drain(writer)
                tail = b"0\r\n\r\n" if chunked else b""
                writer.write((pending or b"") + tail)
                await _drain(writer)
        except (ConnectionError, ProtocolError, OSError, TimeoutError) as exc:
            # The upstream or the client broke off in the middle: the client cannot tell a
            # truncated body from a whole one unless the connection closes.
            log.warning("response body broke off after %d bytes: %s", sent, exc)
            ok = False
        finally:
            if response.finished is not None:
                response.finished(ok)
        return sent, ok
