"""The HTTP core with TLS inside the connection (the gateway's way) under its guard, on real
sockets: a TLS handshake in progress counts as a connection waiting for its head, so a full
house evicts it and its deadline ends it; a newcomer refused when every admitted connection
is busy is closed before any TLS work."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca_service.shared.http.server import HttpServer, Request, Response
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard


def _server_context(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _ended(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


async def _rest(reader: asyncio.StreamReader) -> bytes:
    """What the server sends before it closes (a reset counts as a close)."""
    try:
        return await asyncio.wait_for(reader.read(), 2)
    except ConnectionError:
        return b""


async def _server(
    tmp_path: Path, capacity: int, head_timeout: float, release: asyncio.Event
) -> tuple[HttpServer, int]:
    async def slow(_request: Request) -> Response:
        await release.wait()
        return Response(200, [], b"done\n")

    server = HttpServer(
        slow,
        guard=ConnectionGuard(Admission(capacity, head_timeout), name="test"),
        error_page=lambda status, text: Response(status, [], text.encode()),
        tls=_server_context(tmp_path),
    )
    return server, await server.start("127.0.0.1", 0)


@pytest.mark.timeout(30)
async def test_a_handshake_in_progress_is_evicted_and_a_busy_house_refuses_before_tls(
    tmp_path: Path,
) -> None:
    release = asyncio.Event()
    server, port = await _server(tmp_path, capacity=2, head_timeout=30, release=release)
    first = await asyncio.open_connection("127.0.0.1", port)  # no ClientHello yet
    await asyncio.sleep(0.1)
    second = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context())
    third = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context())
    assert await _ended(first[0], 2)  # waited longest, in its handshake: evicted
    for _, writer in (second, third):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # both busy now
    await asyncio.sleep(0.2)
    fourth = await asyncio.open_connection("127.0.0.1", port)
    fourth[1].write(b"\x16\x03\x01")  # the start of a ClientHello
    assert await _rest(fourth[0]) == b""  # closed, no TLS byte sent
    release.set()
    for reader, _ in (second, third):
        assert (await asyncio.wait_for(reader.readuntil(b"done\n"), 2)).startswith(b"HTTP/1.1 200")
    counters = server.guard.admission.counters
    assert (counters.evicted, counters.refused) == (1, 1)
    for _, writer in (first, second, third, fourth):
        writer.close()
    await server.stop()


@pytest.mark.timeout(30)
async def test_a_trickled_client_hello_ends_at_the_deadline(tmp_path: Path) -> None:
    server, port = await _server(tmp_path, capacity=10, head_timeout=0.5, release=asyncio.Event())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    hello = bytes.fromhex("16030100c8010000c40303") + bytes(200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    ended = False
    for byte in hello:
        writer.write(bytes([byte]))  # a byte every 0.1 s does not extend the deadline
        if ended := await _ended(reader, 0.1):
            break
    elapsed = loop.time() - started
    assert ended and 0.4 < elapsed < 1.0, elapsed
    writer.close()
    await server.stop()
