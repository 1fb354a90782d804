"""The gateway's proxy on real sockets, between a raw client and a raw upstream: a request
body keeps its framing (Content-Length or chunked), and an upstream that answers before the
body is through (413 on the head alone) has its answer relayed while the client is still
sending — the rest neither read nor sent, both connections closed after the answer, no 502.
Uploads the upstream reads whole are answered as before, on a kept-alive upstream link."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from ca_service.shared.http.client import open_connection
from ca_service.shared.http.server import LINGER_SECONDS, HttpServer, Request, Response
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard
from gateway.proxy import Upstream, UpstreamPool, forwarded_headers

pytestmark = [pytest.mark.timeout(60), pytest.mark.serial]

LIMIT = 1024 * 1024
REFUSAL = b"the limit is 1 MB\n"
_MB = 1024 * 1024


@dataclass
class RawUpstream:
    """An upstream written on bare sockets: it refuses a declared length over ``LIMIT`` on
    the head alone, and a chunked body at its first byte over; it never reads the rest.
    Anything under the limit is read whole and answered with its size."""

    heads: list[str] = field(default_factory=list)
    # Set when the gateway closed a connection on which the upstream had refused a body.
    refused_link_closed: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                self.heads.append(head)
                fields = {
                    line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
                    for line in head.split("\r\n")[1:]
                    if ":" in line
                }
                if "content-length" in fields:
                    length = int(fields["content-length"])
                    if length > LIMIT:
                        await self._refuse(reader, writer)
                        return
                    size = len(await reader.readexactly(length))
                else:
                    size = 0
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        piece = int(line.split(b";")[0], 16)
                        if piece == 0:
                            await reader.readuntil(b"\r\n")
                            break
                        size += len(await reader.readexactly(piece)) if size <= LIMIT else 0
                        await reader.readexactly(2)
                        if size > LIMIT:
                            await self._refuse(reader, writer)
                            return
                answer = f"{size}\n".encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {len(REFUSAL)}\r\nConnection: close\r\n\r\n".encode()
            + REFUSAL
        )
        await writer.drain()
        # What still comes of the body is dropped until the gateway gives the link up.
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while await asyncio.wait_for(reader.read(65536), 10):
                pass
        self.refused_link_closed.set()


@dataclass
class Stack:
    upstream: RawUpstream
    pool: UpstreamPool
    port: int


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    upstream = RawUpstream()
    listening = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    upstream_port = listening.sockets[0].getsockname()[1]
    pool = UpstreamPool(Upstream("127.0.0.1", upstream_port))

    async def proxy(request: Request) -> Response:
        return await pool.forward(request, forwarded_headers(request, strip=(), add=()))

    gateway = HttpServer(
        proxy,
        guard=ConnectionGuard(Admission(64, 10.0), name="test"),
        error_page=lambda status, text: Response(status, [], text.encode()),
    )
    port = await gateway.start("127.0.0.1", 0)
    yield Stack(upstream, pool, port)
    await gateway.stop()
    await pool.close()
    listening.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    length = int(head.lower().split("content-length:", 1)[1].split("\r\n", 1)[0])
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except ConnectionError:
        return True


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_early_answer_reaches_the_client_while_it_is_still_sending(
    stack: Stack, chunked: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    declared = 50 * _MB
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared}"
    writer.write(f"POST /upload HTTP/1.1\r\nHost: portal\r\n{framing}\r\n\r\n".encode())
    piece = b"x" * (64 * 1024)
    sent = 0
    started = time.monotonic()
    # 2 MB of the 50 MB, then nothing more: the answer must come without the rest.
    for _ in range(32):
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        sent += len(piece)
    await writer.drain()
    head, body = await _answer(reader)
    answered = time.monotonic() - started
    assert head.startswith("HTTP/1.1 413 "), head
    assert "connection: close" in head.lower()
    assert body == REFUSAL
    assert sent < declared and answered < 5
    # The gateway says nothing more and half-closes; what the client still sends is dropped.
    writer.write(piece)
    assert await _closed(reader, LINGER_SECONDS + 5)
    # The upstream saw the client's framing: a length it could refuse on the head alone.
    upstream_head = stack.upstream.heads[-1].lower()
    if chunked:
        assert "transfer-encoding: chunked" in upstream_head
        assert "content-length" not in upstream_head
    else:
        assert f"content-length: {declared}" in upstream_head
        assert "transfer-encoding" not in upstream_head
    # The upstream link of the refused body is given up, not kept for another request.
    await asyncio.wait_for(stack.upstream.refused_link_closed.wait(), 10)
    assert stack.pool.open_links == 0 and not stack.pool._idle
    writer.close()
    # The next upload goes on a new link, as usual.
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: portal\r\nContent-Length: 5\r\n\r\nhello")
    head, body = await _answer(reader)
    assert head.startswith("HTTP/1.1 200 ") and body == b"5\n"
    assert "connection: close" not in head.lower() and stack.upstream.connections == 2
    writer.close()


async def test_uploads_read_whole_are_answered_on_a_kept_alive_link(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    body = b"y" * (LIMIT - 1)
    for _ in range(2):
        writer.write(
            f"POST /upload HTTP/1.1\r\nHost: portal\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head, answer = await _answer(reader)
        assert head.startswith("HTTP/1.1 200 ") and answer == f"{len(body)}\n".encode()
        assert "connection: close" not in head.lower()
    chunked = b"".join(f"{n:x}\r\n".encode() + b"z" * n + b"\r\n" for n in (1000, 70000, 1))
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: portal\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n"
    )
    head, answer = await _answer(reader)
    assert head.startswith("HTTP/1.1 200 ") and answer == b"71001\n"
    assert stack.upstream.connections == 1  # one upstream link for all three
    assert "content-length: 1048575" in stack.upstream.heads[0].lower()
    assert "transfer-encoding: chunked" in stack.upstream.heads[2].lower()
    writer.close()


async def test_the_client_side_stops_sending_at_an_early_answer(stack: Stack) -> None:
    """The HTTP core's client alone: the body's source is asked for nothing more once the
    answer is in, and the connection is not used again."""
    link = await open_connection("127.0.0.1", stack.pool.upstream.port)
    asked = 0
    never = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        nonlocal asked
        for _ in range(4):
            asked += 1
            yield b"b" * 65536
        await never.wait()  # a sender that has not sent the rest yet
        asked += 1
        yield b"never sent"

    head = await asyncio.wait_for(
        link.request("PUT", "/upload", [("Host", "x")], body(), length=10 * LIMIT), 10
    )
    assert head.status == 413 and link.cut_short and not link.usable
    assert link.whole_body() == REFUSAL
    assert asked == 4
    link.close()
