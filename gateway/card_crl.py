"""The identity card CAs' revocation view (SPEC D2): each card CA's CRL fetched over HTTP,
verified against that CA, and held until its nextUpdate.

Each CRL URL is polled every ``refresh`` seconds (conditional: ETag), and again as soon as
the CRL held reaches its nextUpdate, then every few seconds until a current one arrives. A
CRL counts only when it verifies against one of the card CAs and has not passed nextUpdate;
a card CA without a current CRL makes its certificates refused (fail closed: a 503 page), and
``/-/health`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ca_service.shared.http.client import fetch
from ca_service.shared.http.messages import ProtocolError

__all__ = ["CardRevocations"]

log = logging.getLogger(__name__)

MAX_CRL_BYTES = 256 * 1024 * 1024
_RETRY = 5.0  # seconds between attempts while a CRL is missing or past its nextUpdate


@dataclass(slots=True)
class _Held:
    issuer: x509.Name
    serials: frozenset[int]
    next_update: datetime
    etag: str | None


class _CrlUrl:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"a card CRL URL is an http:// URL, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc
        self.held: _Held | None = None
        self.error: str | None = None
        self.fetched_at: datetime | None = None


class CardRevocations:
    """A :class:`gateway.card.CardRevocationView` over the card CAs' CRLs."""

    def __init__(
        self,
        urls: Sequence[str],
        anchors: Sequence[x509.Certificate],
        *,
        now: Callable[[], datetime],
        refresh: float = 600.0,
        timeout: float = 5.0,
    ) -> None:
        self._urls = [_CrlUrl(url) for url in urls]
        self._anchors = tuple(anchors)
        self._refresh = refresh
        self._timeout = timeout
        self._now = now

    # -- CardRevocationView -----------------------------------------------------------------

    def _current(self, issuer: x509.Name) -> _Held | None:
        now = self._now()
        for source in self._urls:
            held = source.held
            if held is not None and held.issuer == issuer and now < held.next_update:
                return held
        return None

    def card_revoked(self, issuer: x509.Name, serial: int) -> bool | None:
        held = self._current(issuer)
        return None if held is None else serial in held.serials

    def is_fresh(self) -> bool:
        """Every card CA has a current CRL."""
        return all(self._current(anchor.subject) is not None for anchor in self._anchors)

    def report(self) -> dict[str, object]:
        """For ``/-/health``."""
        return {
            "fresh": self.is_fresh(),
            "crls": [
                {
                    "url": source.url,
                    "issuer": source.held.issuer.rfc4514_string() if source.held else None,
                    "next_update": source.held.next_update.isoformat() if source.held else None,
                    "current": source.held is not None and self._now() < source.held.next_update,
                    "last_error": source.error,
                }
                for source in self._urls
            ],
        }

    # -- fetching ---------------------------------------------------------------------------

    async def refresh_once(self) -> None:
        await asyncio.gather(*(self._fetch(source) for source in self._urls))

    def _delay(self) -> float:
        """Seconds until the next poll: the refresh interval, less when a CRL reaches its
        nextUpdate sooner, a few seconds while one is missing or old."""
        now = self._now()
        delay = self._refresh
        for source in self._urls:
            held = source.held
            if held is None or source.error is not None or now >= held.next_update:
                delay = min(delay, _RETRY)
            else:
                delay = min(delay, max((held.next_update - now).total_seconds(), 0.0))
        return max(delay, 0.05)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._delay())

    async def _fetch(self, source: _CrlUrl) -> None:
        headers = [("Host", source.authority)]
        if source.held is not None and source.held.etag:
            headers.append(("If-None-Match", source.held.etag))
        try:
            async with asyncio.timeout(self._timeout):
                head, body = await fetch(
                    source.host, source.port, source.target, headers, max_bytes=MAX_CRL_BYTES
                )
        except (OSError, TimeoutError, ProtocolError) as exc:
            self._failed(source, f"cannot fetch: {exc or type(exc).__name__}")
            return
        if head.status == 304 and source.held is not None:
            source.error = None
            return
        if head.status != 200:
            self._failed(source, f"answered {head.status}")
            return
        held = self._verify(body, head.get("etag"))
        if held is None:
            self._failed(source, "the CRL does not verify against a card CA or is past nextUpdate")
            return
        if source.error is not None:
            log.info("card CRL %s is current again", source.url)
        source.held, source.error, source.fetched_at = held, None, self._now()

    def _failed(self, source: _CrlUrl, error: str) -> None:
        if source.error != error:  # logged once per cause, not at every retry
            log.warning("card CRL %s: %s", source.url, error)
        source.error = error

    def _verify(self, der: bytes, etag: str | None) -> _Held | None:
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError:
            return None
        next_update = crl.next_update_utc
        if next_update is None or next_update <= self._now():
            return None
        for anchor in self._anchors:
            if anchor.subject != crl.issuer:
                continue
            try:
                valid = crl.is_signature_valid(anchor.public_key())  # type: ignore[arg-type]
            except (TypeError, InvalidSignature):
                valid = False
            if valid:
                return _Held(
                    crl.issuer, frozenset(entry.serial_number for entry in crl), next_update, etag
                )
        return None
