"""The CRL as the revocation view's fallback source (SPEC E2): while the WatchRevocations
stream cannot prove the view current, the gateway polls the CA's full CRL over HTTP.

A CRL counts only when its signature verifies against the issuing CA, it names that CA as
issuer and it has not passed nextUpdate. A successful fetch (200 with a verified CRL, or 304
for the one already held) proves the view as current as the CA's published CRL, which the CA
rebuilds about a second after each revocation: on the fallback a revocation takes effect
within the poll interval plus that delay instead of within a second.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from gateway.http1 import ProtocolError, body_chunks, encode_head, framing, read_head

__all__ = ["CrlFetch", "CrlSource"]

log = logging.getLogger(__name__)

MAX_CRL_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CrlFetch:
    """A successful poll: the revoked serials, or None when the CRL has not changed."""

    serials: frozenset[int] | None


class CrlSource:
    def __init__(self, url: str, issuer_der: bytes, *, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the CRL URL must be an http:// URL, not {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._target = parts.path or "/"
        self._authority = parts.netloc
        self._issuer = x509.load_der_x509_certificate(issuer_der)
        self._timeout = timeout
        self._etag: str | None = None

    async def fetch(self) -> CrlFetch | None:
        """None when the CA cannot be reached or its answer does not verify."""
        try:
            async with asyncio.timeout(self._timeout):
                status, etag, body = await self._get()
        except (OSError, TimeoutError, ProtocolError) as exc:
            log.debug("CRL fetch failed: %s", exc)
            return None
        if status == 304 and self._etag is not None:
            return CrlFetch(None)
        if status != 200:
            log.warning("CRL fetch answered %d", status)
            return None
        serials = self._verified_serials(body)
        if serials is None:
            return None
        self._etag = etag
        return CrlFetch(serials)

    async def _get(self) -> tuple[int, str | None, bytes]:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            headers = [("Host", self._authority), ("Connection", "close")]
            if self._etag:
                headers.append(("If-None-Match", self._etag))
            writer.write(encode_head(f"GET {self._target} HTTP/1.1", headers))
            head = await read_head(reader)
            if head is None:
                raise ProtocolError("the CA closed the connection")
            status = int(head.first[1])
            frame = framing(head, request=False, status=status)
            body = bytearray()
            async for piece in body_chunks(reader, frame):
                body += piece
                if len(body) > MAX_CRL_BYTES:
                    raise ProtocolError("CRL too large")
            return status, head.get("etag"), bytes(body)
        finally:
            writer.close()

    def _verified_serials(self, der: bytes) -> frozenset[int] | None:
        try:
            crl = x509.load_der_x509_crl(der)
            valid = crl.is_signature_valid(self._issuer.public_key())  # type: ignore[arg-type]
        except (ValueError, TypeError, InvalidSignature):
            valid = False
        if not valid or crl.issuer != self._issuer.subject:
            log.warning("the CRL from the CA does not verify; ignored")
            return None
        next_update = crl.next_update_utc
        if next_update is None or next_update <= datetime.now(UTC):
            log.warning("the CRL from the CA is past its nextUpdate; ignored")
            return None
        return frozenset(entry.serial_number for entry in crl)
