"""Both real HTTP ports, the CA's (CRL, OCSP; plain HTTP) and the gateway's (TLS), refuse every
request of the one shared table (tests/malformed_http.py) with the same status, at once, and
close the connection."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from tests.gateway.gateway_stack import GatewayStack
from tests.malformed_http import MALFORMED

PORTS = ["ca-http", "gateway"]


def _connect(stack: GatewayStack, port: str) -> socket.socket:
    if port == "ca-http":
        host, number = stack.ca.servers[0].http.removeprefix("http://").split(":")
        return socket.create_connection((host, int(number)), timeout=5)
    gateway = stack.gateways[0]
    raw = socket.create_connection((gateway.host, gateway.port), timeout=5)
    context = ssl.create_default_context(cafile=str(stack.trust))
    return context.wrap_socket(raw, server_hostname="localhost")


def _answer_then_close(connection: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (or 5 s pass: then False)."""
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data, True


@pytest.mark.parametrize("port", PORTS)
@pytest.mark.parametrize(
    ("raw", "status"),
    [(raw, status) for _, raw, status in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_both_ports_refuse_at_once_and_close(
    gateway_stack: GatewayStack, port: str, raw: bytes, status: int
) -> None:
    with _connect(gateway_stack, port) as connection:
        started = time.monotonic()
        connection.sendall(raw)
        answer, closed = _answer_then_close(connection)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0] + b"\r\n"
    print(f"refused {status} and closed after {elapsed * 1000:.1f} ms")  # pytest -s shows it
    assert closed and elapsed < 2.0, elapsed  # before: bare LF got no answer for 30 s


@pytest.mark.parametrize("port", PORTS)
def test_a_well_formed_request_on_the_same_connection_pattern_is_answered(
    gateway_stack: GatewayStack, port: str
) -> None:
    """The refusals above are the table's doing, not the way the test talks to the ports."""
    with _connect(gateway_stack, port) as connection:
        connection.sendall(b"GET /-/health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        answer, closed = _answer_then_close(connection)
    assert closed and answer.split(b" ")[1] in (b"200", b"404"), answer[:200]
