"""A handler of the HTTP core that raises, on real sockets: the request's own fault
(:class:`ProtocolError`) is answered with its status, anything else with the error page's 500
(and a log line); either way the connection closes after that answer, whether the handler
raised at once or from its coroutine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import pytest

from ca_service.shared.http.messages import ProtocolError
from ca_service.shared.http.server import HttpServer, Request, Response
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard


def _handler(request: Request) -> Response | Awaitable[Response]:
    failure: Exception = (
        ProtocolError("too large for this test", 413)
        if "refused" in request.path
        else RuntimeError("a bug in the handler")
    )
    if request.path.startswith("/now"):
        raise failure

    async def later() -> Response:
        await asyncio.sleep(0)
        raise failure

    return later()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("path", "status", "logged"),
    [
        ("/now/refused", 413, False),
        ("/later/refused", 413, False),
        ("/now/bug", 500, True),
        ("/later/bug", 500, True),
    ],
)
async def test_a_raising_handler_gets_its_status_and_the_connection_closes(
    path: str, status: int, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    server = HttpServer(
        _handler,
        guard=ConnectionGuard(Admission(10, 5), name="test"),
        error_page=lambda status, text: Response(status, [], text.encode()),
    )
    port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with caplog.at_level(logging.ERROR):
            # Two requests pipelined: the second is not answered after the failure.
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            )
            answer = await asyncio.wait_for(reader.read(), 5)  # to the close
    finally:
        writer.close()
        await server.stop()
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert answer.count(b"HTTP/1.1 ") == 1
    expected = b"internal error" if status == 500 else b"too large for this test"
    assert answer.endswith(expected)
    assert ("request handler failed" in caplog.text) is logged
