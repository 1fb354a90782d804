"""The gateway's TLS server side (SPEC E1, E2): TLS 1.2 and 1.3, a client certificate asked
for but not required at the handshake (enrollment pages work without one), trust anchored at
this CA, and hot reload of the server certificate and the trust bundle.

Hot reload without dropping connections: the listening socket keeps its original context, and
every new handshake is switched (SNI callback) to the newest context, rebuilt when one of the
files changes. Connections already open keep the context they were made with.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReloadingServerContext", "TlsFiles", "build_server_context"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    certificate: Path  # server certificate chain, PEM
    key: Path  # its private key, PEM
    client_trust: Path  # CA certificates that client certificates must chain to, PEM


def build_server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certificate, files.key)
    context.load_verify_locations(cafile=str(files.client_trust))
    # Asked for, not required: without a certificate a browser still reaches the enrollment
    # pages; a certificate that is presented must chain to our CA or the handshake fails.
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


def _stamp(files: TlsFiles) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in (files.certificate, files.key, files.client_trust):
        status = os.stat(path)
        stamps.append((status.st_mtime_ns, status.st_size))
    return tuple(stamps)


class ReloadingServerContext:
    """Gives every new handshake the context built from the files as they are now."""

    def __init__(
        self,
        files: TlsFiles,
        *,
        check_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._files = files
        self._stamp = _stamp(files)
        # Until the first reload, handshakes stay on the listening context itself: switching
        # an SSL object to another context costs a noticeable part of a handshake.
        self.listening = build_server_context(files)
        self.listening.sni_callback = self._switch
        self._current = self.listening
        self._check_interval = check_interval
        self._monotonic = monotonic
        self._checked = monotonic()
        self.reloads = 0

    def current(self) -> ssl.SSLContext:
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
                context = build_server_context(self._files)
            except (OSError, ssl.SSLError, ValueError) as exc:
                # A half-written pair (new certificate, old key) is retried next time.
                log.warning("cannot reload TLS files yet: %s", exc)
                return self._current
            self._current, self._stamp = context, stamp
            self.reloads += 1
            log.info("reloaded the TLS certificate and trust bundle")
        return self._current

    def _switch(
        self,
        connection: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        context: ssl.SSLContext,
    ) -> None:
        current = self.current()
        if current is not context:
            connection.context = current
