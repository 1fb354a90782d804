"""The gateway's TLS server side (SPEC E1, E2): TLS 1.2 and 1.3, a client certificate asked
for but not required at the handshake (enrollment pages work without one) and taken whatever
it is, and hot reload of the server certificate and the trust bundle.

Any client certificate is taken at the handshake (as nginx's ``ssl_verify_client
optional_no_ca``): the gateway verifies it on every request (``gateway.identity`` for our
users, ``gateway.card`` for identity cards), so a certificate from another CA, an expired one
or a card certificate on the wrong page gets a page saying why instead of the browser's TLS
error. The handshake still proves that the client holds the certificate's key. Python's
``ssl`` cannot do this (it ends the handshake on a certificate it cannot verify), so the TLS
is pyOpenSSL's (:mod:`ca_service.shared.http.openssl_tls`; its cost: README, Performance →
Gateway, "Any client certificate").

Hot reload without dropping connections: each new connection gets the context built from the
files as they are now (looked at once a second); connections already open keep theirs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL

from ca_service.shared.http.openssl_tls import AnyClientCertificateTls, accept_any_certificate
from ca_service.shared.http.tls import Writer

__all__ = ["ReloadingServerContext", "TlsFiles", "build_server_context"]

log = logging.getLogger(__name__)

# As Python's ssl module's default for a server (ECDHE with AEAD ciphers only on TLS 1.2).
_CIPHERS = (
    b"@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate: Path  # server certificate chain, PEM
    key: Path  # its private key, PEM
    # CA certificates (PEM) whose names the certificate request carries when
    # ``name_client_cas`` (our CA; the identity cards' CAs are added to it).
    client_trust: Path
    extra_names: tuple[Path, ...] = ()


def _certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    return [
        certificate
        for path in paths
        for certificate in x509.load_pem_x509_certificates(path.read_bytes())
    ]


def _http11(connection: SSL.Connection, offered: list[bytes]) -> bytes:
    return b"http/1.1" if b"http/1.1" in offered else SSL.NO_OVERLAPPING_PROTOCOLS  # type: ignore[return-value]


def build_server_context(files: TlsFiles, *, name_client_cas: bool = False) -> SSL.Context:
    """``name_client_cas``: the certificate request names the trusted CAs, and browsers then
    offer only certificates from them; otherwise it names none and a browser offers every
    certificate it has (a wrong pick gets the gateway's page)."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_SINGLE_ECDH_USE
        | SSL.OP_NO_RENEGOTIATION
    )
    context.set_cipher_list(_CIPHERS)
    context.use_certificate_chain_file(str(files.certificate))
    context.use_privatekey_file(str(files.key))
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER, accept_any_certificate)
    # Sessions (IDs and tickets) are resumable only within this context's ID; OpenSSL refuses
    # to resume a session with a client certificate without one.
    context.set_session_id(b"ca-gateway")
    context.set_alpn_select_callback(_http11)
    trusted = _certificates([files.client_trust, *files.extra_names])  # a bad file fails here
    if name_client_cas:
        for certificate in trusted:
            context.add_client_ca(certificate)
    return context


def _stamp(files: TlsFiles) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in (files.certificate, files.key, files.client_trust, *files.extra_names):
        status = os.stat(path)
        stamps.append((status.st_mtime_ns, status.st_size))
    return tuple(stamps)


class ReloadingServerContext:
    """Gives every new connection the context built from the files as they are now; called
    with a connection's transport, it makes that connection's TLS side
    (``HttpServer(tls=...)``)."""

    def __init__(
        self,
        files: TlsFiles,
        *,
        name_client_cas: bool = False,
        check_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._files = files
        self._name_client_cas = name_client_cas
        self._stamp = _stamp(files)
        self._current = build_server_context(files, name_client_cas=name_client_cas)
        self._check_interval = check_interval
        self._monotonic = monotonic
        self._checked = monotonic()
        self.reloads = 0

    def __call__(self, transport: Writer) -> AnyClientCertificateTls:
        return AnyClientCertificateTls(self.current(), transport)

    def current(self) -> SSL.Context:
        now = self._monotonic()
        if now - self._checked < self._check_interval:
            return self._current  # the files are looked at no more than once a second
        self._checked = now
        try:
            stamp = _stamp(self._files)
        except OSError as exc:
            log.warning("TLS files unreadable (%s); keeping the last good ones", exc.strerror)
            return self._current
        if stamp != self._stamp:
            try:
                context = build_server_context(self._files, name_client_cas=self._name_client_cas)
            except (OSError, SSL.Error, ValueError) as exc:
                # A half-written pair (new certificate, old key) is retried next time.
                log.warning("cannot reload TLS files yet: %s", exc)
                return self._current
            self._current, self._stamp = context, stamp
            self.reloads += 1
            log.info("reloaded the TLS certificate and trust bundle")
        return self._current
