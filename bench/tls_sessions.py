#!/usr/bin/env python3
"""The server side's TLS cost alone, in process: the standard library's ``ssl`` session
(``ca_service.shared.http.tls.ServerTls``, client certificate verified by OpenSSL against the
CA) against the gateway's pyOpenSSL session taking any client certificate
(``gateway.tls``), each fed by an in-memory ``ssl`` client presenting a client certificate.
Only the server's calls are timed (process CPU time), so neither a load generator nor the
event loop is in the figures: per full TLS 1.3 handshake plus one request and answer, and per
kept-alive request and answer. Medians of the rounds.

    .venv/bin/python bench/tls_sessions.py [--rounds 5] [--handshakes 300] [--requests 20000]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tls_paths import make_certificates, server_context
from ca_service.shared.http.tls import ServerTls
from gateway.tls import ReloadingServerContext, TlsFiles

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Session(Protocol):
    def receive(self, data: bytes) -> bytes: ...

    def send(self, data: bytes) -> None: ...


class Wire:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


class Pair:
    """A client over memory BIOs and the server session under test; ``spent`` is the server's
    CPU time."""

    def __init__(self, client: ssl.SSLContext, make: Callable[[Wire], Session]) -> None:
        self.wire = Wire()
        self.server = make(self.wire)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.client = client.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.spent = 0.0

    def _to_server(self) -> bytes:
        data = self.outgoing.read()
        if not data:
            return b""
        started = time.process_time()
        received = self.server.receive(data)
        self.spent += time.process_time() - started
        return received

    def _to_client(self) -> None:
        if self.wire.data:
            self.incoming.write(bytes(self.wire.data))
            self.wire.data.clear()

    def handshake(self) -> None:
        while True:
            try:
                self.client.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._to_server()
                self._to_client()
        self._to_server()  # the client's Finished (and its certificate, in TLS 1.3)
        self._to_client()

    def exchange(self) -> None:
        self.client.write(REQUEST)
        assert self._to_server() == REQUEST
        started = time.process_time()
        self.server.send(ANSWER)
        self.spent += time.process_time() - started
        self._to_client()
        self.wire.data.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--handshakes", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        make_certificates(directory)
        client = ssl.create_default_context(cafile=str(directory / "ca.pem"))
        client.load_cert_chain(directory / "client.pem", directory / "client-key.pem")
        standard = server_context(directory)
        any_certificate = ReloadingServerContext(
            TlsFiles(directory / "server.pem", directory / "server-key.pem", directory / "ca.pem")
        )
        ways: dict[str, Callable[[Wire], Session]] = {
            "ssl, certificate verified": lambda wire: ServerTls(standard, wire),
            "pyOpenSSL, any certificate": any_certificate,
        }
        figures: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for way, make in ways.items():
                spent = 0.0
                for _ in range(args.handshakes):
                    pair = Pair(client, make)
                    pair.handshake()
                    pair.exchange()
                    spent += pair.spent
                figures.setdefault((way, "handshake"), []).append(spent / args.handshakes)
                pair = Pair(client, make)
                pair.handshake()
                pair.spent = 0.0
                for _ in range(args.requests):
                    pair.exchange()
                figures.setdefault((way, "request"), []).append(pair.spent / args.requests)
        print(f"server CPU, medians of {args.rounds} rounds")
        print(f"{'':28} {'per handshake+request':>22} {'per kept-alive request':>23}")
        for way in ways:
            handshake = statistics.median(figures[(way, "handshake")]) * 1e6
            request = statistics.median(figures[(way, "request")]) * 1e6
            print(f"{way:28} {handshake:19.0f} µs {request:20.1f} µs")


if __name__ == "__main__":
    main()
