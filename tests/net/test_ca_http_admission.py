"""The CA's HTTP server (asyncio.Protocol) under its guard, on real sockets: a request that
trickles in is cut off at the deadline, and when every admitted connection is busy a
newcomer gets 503 at once."""

from __future__ import annotations

import asyncio

import pytest

from ca_service.adapters.http.router import Router, relying_party_server
from ca_service.shared.http.server import HttpServer, Request, Response
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard


def _server(capacity: int, head_timeout: float, release: asyncio.Event) -> HttpServer:
    router = Router()

    async def slow(_request: Request) -> Response:
        await release.wait()
        return Response(200, [], b"done\n")

    router.route("GET", "/slow", slow)
    return relying_party_server(
        router, ConnectionGuard(Admission(capacity, head_timeout), name="test")
    )


@pytest.mark.timeout(30)
async def test_a_busy_house_refuses_with_503_and_a_trickle_meets_the_deadline() -> None:
    release = asyncio.Event()
    server = _server(capacity=1, head_timeout=0.5, release=release)
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)  # admitted, its request in the handler: busy, not evictable
    refused_reader, refused_writer = await asyncio.open_connection("127.0.0.1", port)
    refused = await asyncio.wait_for(refused_reader.read(), 2)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in refused
    head, _, body = refused.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    release.set()
    answer = await asyncio.wait_for(reader.readuntil(b"done\n"), 2)
    assert answer.startswith(b"HTTP/1.1 200 ")
    writer.close()
    refused_writer.close()
    await asyncio.sleep(0.1)

    # One byte every 0.1 s does not keep a connection: the whole request has 0.5 s.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    ended = False
    for byte in b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n":
        writer.write(bytes([byte]))
        try:
            ended = await asyncio.wait_for(reader.read(), 0.1) == b""
        except TimeoutError:
            continue
        except ConnectionError:
            ended = True
        break
    assert ended and 0.4 < loop.time() - started < 1.0
    writer.close()
    await server.stop()
