"""TLS inside a connection's protocol, over the event loop's plain TCP transport (an
``ssl.SSLObject`` between two memory BIOs).

A server connection is a protocol from its accept on, so the connection cap and the head
deadline see a TLS handshake in progress like a slow request head, and a refused connection
costs no TLS work at all. Measured against the event loop's own TLS transport (README,
Performance → Gateway), this costs less per handshake and per request: no per-connection read
buffer of 256 KiB, no handshake and shutdown timers, and a read is one call into OpenSSL.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from typing import Protocol, cast

__all__ = ["ServerTls", "TlsSession", "TlsSessions", "Writer"]

# Plaintext is read into one buffer shared by every connection (the event loop runs one
# callback at a time) and copied out at its size: asking OpenSSL for a new bytes object of a
# record's maximum size per read made glibc's malloc consolidate its free lists every time.
_READ = 16 * 1024
_BUFFER = bytearray(_READ)
_VIEW = memoryview(_BUFFER)


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...


class TlsSession(Protocol):
    """The server side of one TLS connection inside a protocol, whatever library does the
    TLS: ``receive`` takes bytes from the network and returns the plaintext they complete,
    ``send`` encrypts, ``close`` sends close_notify. ``ssl.SSLError`` means the connection
    is over; ``EOFError`` that the peer closed it."""

    established: bool

    def receive(self, data: bytes) -> bytes: ...

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def peer_certificate(self) -> bytes | None:
        """The client certificate's DER (also on a resumed session), None without one."""

    def version(self) -> str | None: ...

    def resumed(self) -> bool: ...


# Makes the TLS side of a new connection that writes to the given transport.
TlsSessions = Callable[[Writer], TlsSession]


class ServerTls:
    """The server side of one TLS connection. ``receive`` takes bytes from the network and
    returns the plaintext they complete; ``send`` encrypts; both write what TLS has to say
    (handshake, alerts, tickets, records) to ``transport``. ``ssl.SSLError`` means the
    connection is over (a failed handshake, a forged record)."""

    __slots__ = ("_in", "_out", "_transport", "established", "object")

    def __init__(self, context: ssl.SSLContext, transport: Writer) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._transport = transport
        self.object = context.wrap_bio(self._in, self._out, server_side=True)
        self.established = False

    def _flush(self) -> None:
        if self._out.pending:
            self._transport.write(self._out.read())

    def receive(self, data: bytes) -> bytes:
        """The application data in ``data`` (``b""`` while the handshake goes on or a record
        is incomplete). Raises ``EOFError`` when the peer sent close_notify."""
        self._in.write(data)
        tls = self.object
        if not self.established:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return b""
            self.established = True
            self._flush()  # Finished, and TLS 1.3 session tickets
        pieces: list[bytes] = []
        incoming = self._in
        while True:
            try:
                size = cast(int, tls.read(_READ, _BUFFER))  # into the buffer: a count
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                raise EOFError from None
            if not size:
                break
            pieces.append(_VIEW[:size].tobytes())
            if not incoming.pending and not tls.pending():
                break
        if self._out.pending:  # e.g. the answer to a key update
            self._flush()
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def send(self, data: bytes) -> None:
        self.object.write(data)
        self._transport.write(self._out.read())

    def close(self) -> None:
        """Sends close_notify (the peer's is not awaited)."""
        if not self.established:
            return
        with contextlib.suppress(ssl.SSLError):
            self.object.unwrap()
        self._flush()

    def peer_certificate(self) -> bytes | None:
        return self.object.getpeercert(binary_form=True)

    def version(self) -> str | None:
        return self.object.version()

    def resumed(self) -> bool:
        return self.object.session_reused
