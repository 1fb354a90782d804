"""The CRL as the revocation view's fallback source (SPEC E2): while the WatchRevocations
stream cannot prove the view current, the gateway polls the CA's CRLs over HTTP.

The CA publishes a base (full) CRL on a schedule and, after each revocation, a delta CRL
over it, which the base names in its FreshestCRL extension. The gateway polls both: the view
is the base's serials plus the delta's. The delta is fetched from the server of the CRL URL
it was given, at the path FreshestCRL names: the CA serves it there itself, while the host in
FreshestCRL is the public one, which the gateway may not reach (or may reach only through a
cache). A CRL counts only when its signature verifies against
the issuing CA, it names that CA as issuer and it has not passed nextUpdate; a delta counts
only over the base held (RFC 5280 5.2.4: its base number is not above the base's, its own
number is above it), and a delta that names a newer base makes the gateway fetch the base
again. A successful poll (both answered 200 with verified CRLs, or 304 for the ones held)
proves the view as current as the CA's published delta, which the CA rebuilds about a second
after each revocation: on the fallback a revocation takes effect within the poll interval
plus that delay instead of within a second. A base that names a delta which cannot be had
proves nothing (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ca_service.shared.http.client import fetch
from ca_service.shared.http.messages import ProtocolError

__all__ = ["CrlFetch", "CrlSource"]

log = logging.getLogger(__name__)

MAX_CRL_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CrlFetch:
    """A successful poll: the revoked serials, or None when nothing has changed."""

    serials: frozenset[int] | None


@dataclass(frozen=True, slots=True)
class _Verified:
    serials: frozenset[int]
    number: int | None
    # The delta CRL's base number (DeltaCRLIndicator); None for a full CRL.
    base_number: int | None
    # The full CRL's FreshestCRL (where its deltas are).
    delta_url: str | None
    next_update: datetime


class _Document:
    """One CRL URL with the last verified CRL from it and its ETag."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the CRL URL must be an http:// URL, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.target = parts.path or "/"
        self.authority = parts.netloc
        self.etag: str | None = None
        self.held: _Verified | None = None


def _number(crl: x509.CertificateRevocationList, kind: type[x509.ExtensionType]) -> int | None:
    try:
        value = crl.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    return int(value.crl_number)  # type: ignore[attr-defined]


def _freshest_url(crl: x509.CertificateRevocationList) -> str | None:
    try:
        points = crl.extensions.get_extension_for_class(x509.FreshestCRL).value
    except x509.ExtensionNotFound:
        return None
    for point in points:
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith(
                "http://"
            ):
                return name.value
    return None


class CrlSource:
    def __init__(self, url: str, issuer_der: bytes, *, timeout: float = 5.0) -> None:
        self._base = _Document(url)
        self._delta: _Document | None = None
        self._issuer = x509.load_der_x509_certificate(issuer_der)
        self._timeout = timeout

    async def fetch(self) -> CrlFetch | None:
        """None when the CA cannot be reached or its answers do not verify."""
        base_changed = await self._poll(self._base, delta=False)
        if base_changed is None:
            return None
        base = self._base.held
        assert base is not None
        if base.delta_url is None:
            self._delta = None
            return CrlFetch(base.serials if base_changed else None)
        delta_url = self._on_base_server(base.delta_url)
        if self._delta is None or self._delta.url != delta_url:
            self._delta = _Document(delta_url)
        delta_changed = await self._poll(self._delta, delta=True)
        if delta_changed is None:
            return None
        delta = self._delta.held
        assert delta is not None and delta.base_number is not None
        if base.number is None or delta.base_number > base.number:
            # The delta is over a newer base than ours: fetch the base again, unconditionally.
            self._base.etag = None
            refetched = await self._poll(self._base, delta=False)
            if refetched is None:
                return None
            base_changed = base_changed or refetched
            base = self._base.held
            assert base is not None
        if base.number is None or not delta.base_number <= base.number < (delta.number or 0):
            log.warning("the delta CRL does not apply to the full CRL held; ignored")
            return None
        if not (base_changed or delta_changed):
            return CrlFetch(None)
        return CrlFetch(base.serials | delta.serials)

    def _on_base_server(self, url: str) -> str:
        path = urlsplit(url).path or "/"
        return f"http://{self._base.authority}{path}"

    async def _poll(self, document: _Document, *, delta: bool) -> bool | None:
        """Brings ``document`` up to date: True when a new CRL was verified, False when the
        one held is still current (304), None on failure."""
        try:
            async with asyncio.timeout(self._timeout):
                status, etag, body = await self._get(document)
        except (OSError, TimeoutError, ProtocolError) as exc:
            log.debug("CRL fetch from %s failed: %s", document.url, exc)
            return None
        if status == 304 and document.held is not None:
            return False if self._current(document.held.next_update) else None
        if status != 200:
            log.warning("CRL fetch from %s answered %d", document.url, status)
            return None
        verified = self._verify(body, delta=delta)
        if verified is None:
            return None
        document.etag = etag
        document.held = verified
        return True

    @staticmethod
    def _current(next_update: datetime | None) -> bool:
        if next_update is None or next_update <= datetime.now(UTC):
            log.warning("the CRL from the CA is past its nextUpdate; ignored")
            return False
        return True

    async def _get(self, document: _Document) -> tuple[int, str | None, bytes]:
        headers = [("Host", document.authority)]
        if document.etag:
            headers.append(("If-None-Match", document.etag))
        head, body = await fetch(
            document.host, document.port, document.target, headers, max_bytes=MAX_CRL_BYTES
        )
        return head.status, head.get("etag"), body

    def _verify(self, der: bytes, *, delta: bool) -> _Verified | None:
        try:
            crl = x509.load_der_x509_crl(der)
            valid = crl.is_signature_valid(self._issuer.public_key())  # type: ignore[arg-type]
        except (ValueError, TypeError, InvalidSignature):
            valid = False
        if not valid or crl.issuer != self._issuer.subject:
            log.warning("the CRL from the CA does not verify; ignored")
            return None
        next_update = crl.next_update_utc
        if not self._current(next_update):
            return None
        assert next_update is not None
        base_number = _number(crl, x509.DeltaCRLIndicator)
        if (base_number is not None) != delta:
            log.warning("expected a %s CRL from the CA; ignored", "delta" if delta else "full")
            return None
        return _Verified(
            frozenset(entry.serial_number for entry in crl),
            _number(crl, x509.CRLNumber),
            base_number,
            None if delta else _freshest_url(crl),
            next_update,
        )
