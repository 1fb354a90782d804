#!/usr/bin/env python3
"""Which way of doing TLS on an accepted connection costs the server least, on uvloop: server
CPU per full mTLS handshake (+ one request, close) and per kept-alive request, each way serving
the same fixed answer, driven by bench/loadgen.c (client certificate, no session reuse).

* ``accept+ssl-transport``: the gateway of issue 9: its own accept loop, then
  ``loop.connect_accepted_socket(ssl=...)`` (the loop's TLS transport; a task per connection);
* ``loop.start_tls`` from a plain server's protocol is not measured: on uvloop the client's
  ClientHello, sent right after connect, reaches the plain protocol (pausing reading in
  ``connection_made`` comes too late) before ``start_tls`` can take over, and the handshake
  hangs; loadgen's handshakes all failed that way;
* ``memory-bio``: the loop's plain server and ``ssl.SSLObject`` over memory BIOs inside the
  protocol (``ca_service.shared.http.tls``), what the gateway did until issue 11 (and what
  the CA's HTTP servers do);
* ``pyopenssl-bio``: the same arrangement with pyOpenSSL and a verify callback that takes any
  client certificate (``ca_service.shared.http.openssl_tls``, the context of
  ``gateway.tls``), what the gateway does now;
* ``loop-ssl-server``: the loop's own TLS server (``create_server(ssl=...)``), for reference
  only: it shows a connection after its handshake, so no cap or deadline could see one.

Rounds alternate the ways; the medians are printed. P-256 certificates made on the fly.

    .venv/bin/python bench/tls_paths.py [--rounds 3] [--seconds 4] [--connections 16]
        [--modes memory-bio,pyopenssl-bio]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import build_loadgen

MODES = ("accept+ssl-transport", "memory-bio", "pyopenssl-bio", "loop-ssl-server")
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
CLOSING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


# -- certificates ---------------------------------------------------------------------------


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_certificates(directory: Path) -> None:
    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("bench CA", ca_key, None, None, ca=True)
    write("ca", ca, ca_key)
    for name, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, _certificate(name, key, ca.subject, ca_key, usage=usage), key)


def server_context(directory: Path) -> ssl.SSLContext:
    """As gateway.tls builds it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "server.pem", directory / "server-key.pem")
    context.load_verify_locations(cafile=str(directory / "ca.pem"))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


# -- the servers ------------------------------------------------------------------------------


class Plaintext(asyncio.Protocol):
    """Answers every request head; closes after one that asks to."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received(data)

    def received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            closing = b"onnection: close" in head
            self.write(CLOSING if closing else ANSWER)
            if closing:
                self.close()
                return

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


class MemoryBio(Plaintext):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self.context = context

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        from ca_service.shared.http.tls import ServerTls

        self.transport = transport  # type: ignore[assignment]
        self.tls = ServerTls(self.context, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        try:
            plain = self.tls.receive(data)
        except (ssl.SSLError, EOFError):
            assert self.transport is not None
            self.transport.abort()
            return
        if plain:
            self.received(plain)

    def write(self, data: bytes) -> None:
        self.tls.send(data)

    def close(self) -> None:
        self.tls.close()
        super().close()


class OpenSslBio(MemoryBio):
    def __init__(self, sessions: Callable[[asyncio.Transport], object]) -> None:
        Plaintext.__init__(self)
        self.sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.tls = self.sessions(transport)  # type: ignore[arg-type,assignment]


async def _accept_loop(context: ssl.SSLContext, port: int) -> None:
    loop = asyncio.get_running_loop()
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", port))
    listening.listen(1024)
    listening.setblocking(False)

    tasks: set[asyncio.Task[None]] = set()

    async def serve(connection: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(Plaintext, connection, ssl=context)
        except (OSError, ssl.SSLError):
            connection.close()

    def accept() -> None:
        for _ in range(128):
            try:
                connection, _ = listening.accept()
            except BlockingIOError:
                return
            connection.setblocking(False)
            task = loop.create_task(serve(connection))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    loop.add_reader(listening.fileno(), accept)
    await asyncio.Event().wait()


async def _serve(mode: str, port: int, directory: Path) -> None:
    context = server_context(directory)
    loop = asyncio.get_running_loop()
    if mode == "accept+ssl-transport":
        await _accept_loop(context, port)
    elif mode == "memory-bio":
        await loop.create_server(lambda: MemoryBio(context), "127.0.0.1", port, backlog=1024)
    elif mode == "pyopenssl-bio":
        from gateway.tls import ReloadingServerContext, TlsFiles

        sessions = ReloadingServerContext(
            TlsFiles(directory / "server.pem", directory / "server-key.pem", directory / "ca.pem")
        )
        await loop.create_server(lambda: OpenSslBio(sessions), "127.0.0.1", port, backlog=1024)
    else:
        await loop.create_server(Plaintext, "127.0.0.1", port, ssl=context, backlog=1024)
    await asyncio.Event().wait()


# -- the driver -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    loadgen: Path, directory: Path, mode: str, kind: str, seconds: float, connections: int
) -> float:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, str(port), str(directory)],
        env=dict(os.environ, PYTHONMALLOC="malloc"),
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        argv = [str(loadgen), "-m", kind, "-a", "127.0.0.1", "-p", str(port), "-u", "/"]
        argv += ["-c", str(connections), "-w", "1", "-d", str(seconds), "-t", "-s", "localhost"]
        argv += ["-C", str(directory / "client.pem"), "-K", str(directory / "client-key.pem")]
        generator = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert generator.stdout is not None
        before = after = 0.0
        result: dict[str, float] = {}
        for line in generator.stdout:
            if line.startswith("MEASURE"):
                before = _cpu(server.pid)
            elif line.startswith("DONE"):
                after = _cpu(server.pid)
            elif line.startswith("{"):
                result = json.loads(line)
        generator.wait(30)
        if not result or not result["ok"]:
            raise SystemExit(f"{mode} {kind}: no answers ({result})")
        return (after - before) / result["ok"] * 1e6
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        mode, port, directory = args.serve
        uvloop.run(_serve(mode, int(port), Path(directory)))
        return
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        make_certificates(directory)
        loadgen = build_loadgen(directory)
        figures: dict[tuple[str, str], list[float]] = {}
        modes = tuple(mode for mode in MODES if mode in args.modes.split(","))
        for round_number in range(args.rounds):
            order = modes[round_number % len(modes) :] + modes[: round_number % len(modes)]
            for mode in order:
                for kind in ("handshake", "keepalive"):
                    value = _measure(loadgen, directory, mode, kind, args.seconds, args.connections)
                    figures.setdefault((mode, kind), []).append(value)
                    print(
                        f"round {round_number + 1} {mode:22} {kind:9} {value:8.1f} µs", flush=True
                    )
        print(
            f"\nserver CPU, medians of {args.rounds} rounds (load average {os.getloadavg()[0]:.2f})"
        )
        print(f"{'':22} {'per handshake+GET':>18} {'per kept-alive GET':>19}")
        for mode in modes:
            handshake = statistics.median(figures[(mode, "handshake")])
            keepalive = statistics.median(figures[(mode, "keepalive")])
            print(f"{mode:22} {handshake:15.0f} µs {keepalive:16.1f} µs")


if __name__ == "__main__":
    main()
