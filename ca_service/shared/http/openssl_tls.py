"""TLS inside a connection's protocol done by pyOpenSSL instead of the standard library's
``ssl``, for a server that must take any client certificate at the handshake.

Python's ``ssl`` verifies a presented client certificate itself and ends the handshake when it
does not chain to a loaded CA (``CERT_OPTIONAL`` included); it has no verify callback. pyOpenSSL
exposes OpenSSL's ``SSL_CTX_set_verify`` with a callback, so a server can ask for a client
certificate, accept whatever the client presents (OpenSSL still checks that the client holds
its key: CertificateVerify) and judge the certificate itself, per request, with a page saying
why it is refused (README, "TLS: any client certificate at the handshake"). The connection
is the same memory-BIO arrangement as :class:`ca_service.shared.http.tls.ServerTls`;
OpenSSL's errors surface as ``ssl.SSLError`` so that the HTTP core handles both the same way.
"""

from __future__ import annotations

import contextlib
import ssl

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _openssl

from ca_service.shared.http.tls import Writer

__all__ = ["AnyClientCertificateTls", "accept_any_certificate"]

# As in ``tls.py``: plaintext is read into one buffer shared by every connection (the event
# loop runs one callback at a time), and what TLS has to send is read out of the BIO into
# another. The data path calls OpenSSL through pyOpenSSL's own binding: its ``Connection``
# methods cost several microseconds of Python per call (argument checks, a buffer per read,
# an exception for every "nothing more"), about as much as the TLS records themselves.
_READ = 16 * 1024
_BUFFER = bytearray(_READ)
_VIEW = memoryview(_BUFFER)
_C_BUFFER = _ffi.from_buffer(_BUFFER)
_OUT = 64 * 1024
_OUT_BUFFER = bytearray(_OUT)
_OUT_VIEW = memoryview(_OUT_BUFFER)
_C_OUT = _ffi.from_buffer(_OUT_BUFFER)
_NULL = _ffi.NULL
_WANT_READ = _openssl.SSL_ERROR_WANT_READ
_ZERO_RETURN = _openssl.SSL_ERROR_ZERO_RETURN


def accept_any_certificate(
    connection: SSL.Connection, certificate: crypto.X509, error: int, depth: int, ok: int
) -> bool:
    """OpenSSL's verify callback: every presented chain is accepted at the handshake."""
    return True


class AnyClientCertificateTls:
    """The server side of one TLS connection over memory BIOs with a pyOpenSSL context (made
    to ask for a client certificate with :func:`accept_any_certificate`)."""

    __slots__ = ("_in", "_out", "_ssl", "_transport", "connection", "established")

    def __init__(self, context: SSL.Context, transport: Writer) -> None:
        self._transport = transport
        connection = self.connection = SSL.Connection(context, None)
        connection.set_accept_state()
        self._ssl = connection._ssl
        self._in = connection._into_ssl
        self._out = connection._from_ssl
        self.established = False

    def _flush(self) -> None:
        pending = _openssl.BIO_get_mem_data(self._out, _NULL)
        while pending > 0:
            size = _openssl.BIO_read(self._out, _C_OUT, min(pending, _OUT))
            if size <= 0:
                return
            self._transport.write(_OUT_VIEW[:size].tobytes())
            pending -= size

    def _failed(self, result: int) -> ssl.SSLError:
        """The error OpenSSL reported for ``result``, as pyOpenSSL words it."""
        try:
            self.connection._raise_ssl_error(self._ssl, result)
        except SSL.Error as exc:
            return ssl.SSLError(f"TLS: {exc}")
        return ssl.SSLError("TLS: failed")

    def receive(self, data: bytes) -> bytes:
        if type(data) is not bytes:
            data = bytes(data)
        _openssl.BIO_write(self._in, data, len(data))
        tls = self._ssl
        if not self.established:
            try:
                self.connection.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return b""
            except SSL.Error as exc:
                self._flush()  # the alert
                raise ssl.SSLError(f"TLS: {exc}") from None
            self.established = True
            self._flush()  # Finished, and TLS 1.3 session tickets
        pieces: list[bytes] = []
        while True:
            size = _openssl.SSL_read(tls, _C_BUFFER, _READ)
            if size <= 0:
                error = _openssl.SSL_get_error(tls, size)
                if error == _WANT_READ:
                    break
                if error == _ZERO_RETURN:
                    raise EOFError
                self._flush()
                raise self._failed(size)
            pieces.append(_VIEW[:size].tobytes())
            if not _openssl.BIO_get_mem_data(self._in, _NULL) and not _openssl.SSL_pending(tls):
                break  # all read: no further call to be told so
        self._flush()  # e.g. the answer to a key update
        if len(pieces) == 1:
            return pieces[0]
        return b"".join(pieces)

    def send(self, data: bytes) -> None:
        if not data:
            return
        # pyOpenSSL's contexts allow partial writes: each SSL_write may take just one record.
        with _ffi.from_buffer(data) as pointer:
            written, size = 0, len(data)
            while written < size:
                result = _openssl.SSL_write(self._ssl, pointer + written, size - written)
                if result <= 0:
                    raise self._failed(result)
                written += result
        self._flush()

    def close(self) -> None:
        if not self.established:
            return
        with contextlib.suppress(SSL.Error):
            self.connection.shutdown()
        self._flush()

    def peer_certificate(self) -> bytes | None:
        certificate = self.connection.get_peer_certificate()
        if certificate is None:
            return None
        return crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate)

    def version(self) -> str | None:
        return self.connection.get_protocol_version_name()

    def resumed(self) -> bool:
        return bool(_openssl.SSL_session_reused(self.connection._ssl))
