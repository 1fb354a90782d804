"""The proxy's callback path (``UpstreamPool.forward_at_once``) on real sockets, between a raw
client and a raw upstream: a request without a body that finds an idle pooled connection is
sent from the handler's call and answered from the upstream connection's callback, with no
task. Every way an exchange can end is answered as on the coroutine path: a pooled
connection the upstream closed meanwhile (sent again on a fresh one), a slow upstream (504),
a broken answer (502), a long answer (streamed), HEAD, and a client gone before the answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field

import pytest

from ca_service.shared.http.server import HttpServer, Pending, Request, Response
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard
from gateway.errors import UpstreamError
from gateway.proxy import Upstream, UpstreamPool, forwarded_headers

pytestmark = [pytest.mark.timeout(60)]

BIG = 1024 * 1024

# Answers llhttp refuses; their fields would otherwise be relayed as received, so what it lets
# through must be what the proxy may write (token names; no CTL but HTAB in a value).
_BROKEN = {
    "/broken": b"HTTP/1.1 2x0 Nonsense\r\n\r\n",
    "/broken-value": b"HTTP/1.1 200 OK\r\nX-A: a\x0bb\r\nContent-Length: 0\r\n\r\n",
    "/broken-del": b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 0\r\n\r\n",
    "/broken-name": b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 0\r\n\r\n",
    "/broken-split": b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: b\r\nContent-Length: 0\r\n\r\n",
}


@dataclass
class RawUpstream:
    """Answers by path: ``/ok`` a small answer, ``/close`` the same then closes the connection
    without saying so, ``/hang`` nothing, ``/broken`` bytes that are not HTTP, ``/big`` 1 MiB
    in pieces. Counts connections and requests."""

    connections: int = 0
    requests: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                method, target, _ = head.split("\r\n", 1)[0].split(" ")
                self.requests.append(f"{method} {target}")
                if target == "/hang":
                    await asyncio.sleep(30)
                    return
                if target in _BROKEN:
                    writer.write(_BROKEN[target])
                    await writer.drain()
                    return
                if target == "/big":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
                    if method != "HEAD":
                        for _ in range(BIG // 65536):
                            writer.write(b"b" * 65536)
                            await writer.drain()
                            await asyncio.sleep(0)
                    continue
                answer = b"answer to " + target.encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Upstream: yes\r\n"
                    + b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(answer)
                    + (b"" if method == "HEAD" else answer)
                )
                await writer.drain()
                if target == "/close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # cancelled: the test's end, or a test closing the upstream's side
        finally:
            writer.close()


@dataclass
class Forwarder:
    """What the gateway does with the outcomes (proxy.Forwarder), recorded."""

    pool: UpstreamPool
    failures: list[int] = field(default_factory=list)
    again: int = 0
    answered: list[float] = field(default_factory=list)

    def upstream_failed(self, error: UpstreamError) -> Response:
        self.failures.append(error.http_status)
        return Response(error.http_status, [], f"upstream: {error}".encode())

    def forward_again(
        self, pool: UpstreamPool, request: Request, headers: bytes
    ) -> Awaitable[Response]:
        self.again += 1
        return pool.forward(request, headers)

    def upstream_answered(self, seconds: float) -> None:
        self.answered.append(seconds)


@dataclass
class Stack:
    upstream: RawUpstream
    pool: UpstreamPool
    forwarder: Forwarder
    port: int
    at_once: list[bool]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    upstream = RawUpstream()
    listening = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    upstream_port = listening.sockets[0].getsockname()[1]
    pool = UpstreamPool(Upstream("127.0.0.1", upstream_port, response_timeout=1.0))
    forwarder = Forwarder(pool)
    at_once: list[bool] = []

    async def answer_failures_of(result: Awaitable[Response]) -> Response:
        try:
            return await result
        except UpstreamError as exc:
            return forwarder.upstream_failed(exc)

    def handler(request: Request) -> Response | Awaitable[Response] | Pending:
        headers = forwarded_headers(request, strip=(), add=b"X-Identity: test\r\n")
        pending = pool.forward_at_once(request, headers, forwarder)
        at_once.append(pending is not None)
        return pending or answer_failures_of(pool.forward(request, headers))

    gateway = HttpServer(
        handler,
        guard=ConnectionGuard(Admission(64, 10.0), name="test"),
        error_page=lambda status, text: Response(status, [], text.encode()),
    )
    port = await gateway.start("127.0.0.1", 0)
    yield Stack(upstream, pool, forwarder, port, at_once)
    await gateway.stop()
    await pool.close()
    listening.close()


async def _get(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, path: str, method: str = "GET"
) -> tuple[str, bytes]:
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    length = int(head.lower().split("content-length:", 1)[1].split("\r\n", 1)[0])
    body = b"" if method == "HEAD" else await asyncio.wait_for(reader.readexactly(length), 10)
    return head, body


async def test_a_pooled_connection_carries_the_next_request_from_its_callback(
    stack: Stack,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    first, body = await _get(writer, reader, "/ok")
    assert first.startswith("HTTP/1.1 200") and body == b"answer to /ok"
    second, body = await _get(writer, reader, "/ok?again")
    assert second.startswith("HTTP/1.1 200") and body == b"answer to /ok?again"
    # The first request opened the connection (coroutine path), the second took it idle.
    assert stack.at_once == [False, True] and stack.upstream.connections == 1
    assert len(stack.forwarder.answered) == 1
    # The upstream's fields go on (not its Date: the answer is dated once, by the proxy).
    assert "x-upstream: yes" in second.lower() and second.lower().count("date:") == 1
    assert "Thu, 01 Jan 2026" not in second
    writer.close()


async def test_a_pooled_connection_closed_meanwhile_is_replaced(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/close"))[0].startswith("HTTP/1.1 200")
    await asyncio.sleep(0.2)  # the upstream's close has arrived, or is on its way
    head, body = await _get(writer, reader, "/ok")
    assert head.startswith("HTTP/1.1 200") and body == b"answer to /ok"
    assert stack.upstream.connections == 2 and stack.forwarder.failures == []
    assert stack.forwarder.again == 0  # the closed link was seen before it was taken
    writer.close()


async def test_a_closed_link_found_only_by_the_answer_is_sent_again(stack: Stack) -> None:
    """The upstream closes the pooled connection at the very moment the request goes out:
    the request is written, the end of the connection comes back instead of an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    link = stack.pool._idle[0]
    assert link.transport is not None
    # The upstream closes its side; the proxy reads nothing on that link until the request
    # has gone out on it, then finds the end of the connection instead of an answer.
    link.transport.pause_reading()
    for task in asyncio.all_tasks():
        if task.get_coro().__qualname__.startswith("RawUpstream.serve"):  # type: ignore[union-attr]
            task.cancel()
    await asyncio.sleep(0.2)
    asyncio.get_running_loop().call_later(0.3, link.transport.resume_reading)
    head, body = await _get(writer, reader, "/ok?fresh")
    assert head.startswith("HTTP/1.1 200") and body == b"answer to /ok?fresh"
    assert stack.at_once[-1] is True and stack.forwarder.again == 1
    assert stack.forwarder.failures == [] and stack.upstream.connections == 2
    writer.close()


async def test_a_slow_upstream_is_a_504_and_a_broken_answer_a_502(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    head, body = await _get(writer, reader, "/hang")
    assert head.startswith("HTTP/1.1 504") and b"did not answer in time" in body
    assert stack.at_once[-1] is True
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    head, body = await _get(writer, reader, "/broken")
    assert head.startswith("HTTP/1.1 502") and b"broken" in body
    assert stack.at_once[-1] is True and stack.forwarder.failures == [504, 502]
    writer.close()


async def test_a_broken_answer_is_a_502_on_either_path_never_a_400(stack: Stack) -> None:
    """llhttp refuses the upstream's answer: the upstream's fault (502), not the client's."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    head, _ = await _get(writer, reader, "/broken")  # no pooled connection: the coroutine
    assert head.startswith("HTTP/1.1 502") and stack.at_once == [False]
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    head, _ = await _get(writer, reader, "/broken")  # a pooled one: the callback
    assert head.startswith("HTTP/1.1 502") and stack.at_once == [False, False, True]
    assert stack.forwarder.failures == [502, 502]
    writer.close()


@pytest.mark.parametrize("path", sorted(_BROKEN))
async def test_nothing_llhttp_refuses_in_an_answer_is_relayed(stack: Stack, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    head, _ = await _get(writer, reader, path)  # on the pooled connection: relayed as bytes
    assert head.startswith("HTTP/1.1 502") and stack.at_once[-1] is True
    assert "x-a" not in head.lower() and "set-cookie" not in head.lower()
    writer.close()


async def test_a_long_answer_streams_and_head_keeps_the_length(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    head, body = await _get(writer, reader, "/big")
    assert head.startswith("HTTP/1.1 200") and body == b"b" * BIG
    head, body = await _get(writer, reader, "/big", method="HEAD")
    assert head.startswith("HTTP/1.1 200") and f"Content-Length: {BIG}" in head and body == b""
    assert (await _get(writer, reader, "/ok"))[1] == b"answer to /ok"
    assert stack.at_once[1:] == [True, True, True] and stack.upstream.connections == 1
    writer.close()


async def test_a_client_gone_before_the_answer_leaves_the_link_in_the_pool(
    stack: Stack,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[0].startswith("HTTP/1.1 200")
    writer.write(b"GET /ok?gone HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    for _ in range(50):
        if len(stack.upstream.requests) == 2 and stack.pool._idle:
            break
        await asyncio.sleep(0.05)
    assert stack.upstream.requests[-1] == "GET /ok?gone" and len(stack.pool._idle) == 1
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    assert (await _get(writer, reader, "/ok"))[1] == b"answer to /ok"
    assert stack.upstream.connections == 1
    writer.close()
