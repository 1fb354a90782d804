"""A small HTTP/1.1 server on asyncio protocols, for the relying-party endpoints.

Only what those need: GET and POST, Content-Length bodies up to a limit, keep-alive and
pipelining (answered in order, one request at a time per connection), and a handler per
path prefix that returns a whole response. Anything else gets a clear 4xx; nothing a
client sends can raise out of it. A framework would cost more per request than the OCSP
responder's work itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, cast

__all__ = ["Handler", "HttpServer", "Request", "Response"]

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
_IDLE_TIMEOUT = 30.0

_REASONS = {
    200: "OK",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], "Response | Awaitable[Response]"]


def _plain(status: int, text: str) -> Response:
    return Response(status, text.encode() + b"\n", [("Content-Type", "text/plain")])


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._closing = False
        self._idle: asyncio.TimerHandle | None = None
        self._pending: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._idle is not None:
            self._idle.cancel()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(_IDLE_TIMEOUT, self._close)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._arm_idle()
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while not self._busy and not self._closing and self._transport is not None:
            parsed = self._parse()
            if parsed is None:
                return
            request, keep_alive = parsed
            self._busy = True
            result = self._server.dispatch(request)
            if isinstance(result, Response):
                self._send(result, keep_alive, request.method)
            else:
                self._pending = asyncio.ensure_future(
                    self._finish(result, keep_alive, request.method)
                )
                return

    async def _finish(self, pending: Awaitable[Response], keep_alive: bool, method: str) -> None:
        try:
            response = await pending
        except Exception:
            log.exception("HTTP handler failed")
            response = _plain(500, "internal error")
        self._send(response, keep_alive, method)
        self._next()

    def _reject(self, status: int, text: str) -> None:
        self._busy = True
        self._send(_plain(status, text), False, "GET")

    def _parse(self) -> tuple[Request, bool] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                self._reject(431, "request header too large")
            return None
        if end > MAX_HEADER_BYTES:
            self._reject(431, "request header too large")
            return None
        try:
            head = bytes(self._buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            method, target, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if not _ or not name or name != name.strip():
                    raise ValueError(line)
                headers[name.lower()] = value.strip()
        except ValueError:
            self._reject(400, "malformed request")
            return None
        if "transfer-encoding" in headers:
            self._reject(411, "chunked bodies are not accepted; send Content-Length")
            return None
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._reject(400, "bad Content-Length")
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            self._reject(413, f"bodies are limited to {MAX_BODY_BYTES} bytes")
            return None
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        connection = headers.get("connection", "").lower()
        keep_alive = (
            (connection != "close") if version == "HTTP/1.1" else (connection == "keep-alive")
        )
        return Request(method, target, headers, body), keep_alive

    def _send(self, response: Response, keep_alive: bool, method: str) -> None:
        transport = self._transport
        if transport is None:
            return
        status = response.status
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            f"Date: {self._server.date()}",
            f"Content-Length: {len(response.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in response.headers]
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head if method == "HEAD" or status == 304 else head + response.body)
        self._busy = False
        if not keep_alive:
            self._closing = True
            transport.close()


class HttpServer:
    def __init__(self) -> None:
        self._routes: list[tuple[str, str, Handler]] = []
        self._server: asyncio.base_events.Server | None = None
        self._date = ""
        self._date_second = -1

    def route(self, method: str, prefix: str, handler: Handler) -> None:
        """Requests whose path equals ``prefix`` (or starts with it, when it ends in
        ``/``) go to ``handler``; longer prefixes are tried first."""
        self._routes.append((method, prefix, handler))
        self._routes.sort(key=lambda item: -len(item[1]))

    def date(self) -> str:
        loop = asyncio.get_running_loop()
        second = int(loop.time())
        if second != self._date_second:
            self._date, self._date_second = formatdate(usegmt=True), second
        return self._date

    def dispatch(self, request: Request) -> Response | Awaitable[Response]:
        method = "GET" if request.method == "HEAD" else request.method
        path = request.path.split("?", 1)[0]
        known_path = False
        for route_method, prefix, handler in self._routes:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                known_path = True
                if route_method == method:
                    try:
                        return handler(request)
                    except Exception:
                        log.exception("HTTP handler failed")
                        return _plain(500, "internal error")
        if known_path:
            return _plain(405, "method not allowed")
        return _plain(404, "not found")

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_port=reuse_port or None, backlog=1024
        )
        sockets: Any = self._server.sockets
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
