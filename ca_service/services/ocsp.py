"""The OCSP responder (RFC 6960; RFC 5019 profile for GET): good / revoked / unknown for
the issuing CA's certificates, signed by a delegated responder key.

Responses without a nonce are signed once per CertID and served from memory until half
of their validity has passed; a revocation anywhere (the revocation feed) drops the
affected entries at once. A request with a nonce is signed on demand, since the nonce
must be echoed. Every input gets a well-formed OCSP answer: malformedRequest for what does
not parse, unauthorized for another issuer's certificates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_service.adapters.sql.revocations import SqlRevocationStore
from ca_service.pki import der
from ca_service.pki.ocsp import (
    CertStatus,
    OcspMalformed,
    OcspRequest,
    SingleStatus,
    build_response,
    error_response,
    parse_request,
)
from ca_service.pki.signer import Signer
from ca_service.ports import CertificateStore, Clock
from ca_service.services.revocation import RevocationFeed

__all__ = ["OcspAnswer", "OcspResponder"]

log = logging.getLogger(__name__)

_HASHES = ("sha1", "sha256", "sha384", "sha512")


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    body: bytes
    # Set for a cacheable (signed, nonce-free) answer: when it was made and until when
    # it is valid, for the HTTP caching headers (RFC 5019 6).
    this_update: datetime | None = None
    next_update: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Status:
    status: CertStatus
    revoked_at: datetime | None = None
    reason: int | None = None


class OcspResponder:
    def __init__(
        self,
        *,
        signer: Signer,
        responder_certificate: bytes,
        responder_key_id: bytes,
        issuer_name: bytes,
        issuer_public_key: bytes,
        certificates: CertificateStore,
        revocations: SqlRevocationStore,
        clock: Clock,
        validity: timedelta = timedelta(hours=1),
        cache_size: int = 1_000_000,
    ) -> None:
        self._signer = signer
        self._certificate = responder_certificate
        self._key_id = responder_key_id
        self._certificates = certificates
        self._revocations = revocations
        self._clock = clock
        self._validity = validity
        self._cache_size = cache_size
        key_bits = der.spki_key_bits(issuer_public_key)
        # The (name hash, key hash) pairs, per hash algorithm, that identify our issuer.
        self._issuer = {
            name: (hashlib.new(name, issuer_name).digest(), hashlib.new(name, key_bits).digest())
            for name in _HASHES
        }
        self._answers: OrderedDict[bytes, tuple[OcspAnswer, datetime, int]] = OrderedDict()
        self._by_serial: dict[int, set[bytes]] = {}
        self._last_sequence = 0

    def use_key(self, signer: Signer, certificate: bytes, key_id: bytes) -> None:
        """Switches to a rotated responder key; answers signed by the old one are dropped."""
        if certificate == self._certificate:
            return
        self._signer, self._certificate, self._key_id = signer, certificate, key_id
        self._answers.clear()
        self._by_serial.clear()
        log.info("OCSP responder key rotated")

    # -- keeping the cache honest ----------------------------------------------------------

    async def catch_up(self) -> None:
        """Drops cached answers for certificates revoked since we last looked."""
        while True:
            batch = await self._revocations.since(self._last_sequence)
            for record in batch:
                for key in self._by_serial.pop(record.serial, ()):
                    self._answers.pop(key, None)
            if batch:
                self._last_sequence = batch[-1].sequence
            if len(batch) < 1000:
                return

    async def run(self, stop: asyncio.Event, feed: RevocationFeed) -> None:
        self._last_sequence = await self._revocations.latest_sequence()
        while not stop.is_set():
            try:
                await self.catch_up()
            except Exception as exc:
                log.warning("OCSP cache catch-up failed: %s", type(exc).__name__)
            await feed.wait(1.0)

    # -- answering -------------------------------------------------------------------------

    def cached(self, request_der: bytes) -> OcspAnswer | None:
        """The answer from memory when there is a fresh one (no awaiting: the fast path)."""
        entry = self._answers.get(request_der)
        if entry is None:
            return None
        answer, refresh_at, _ = entry
        if self._clock.now() >= refresh_at:
            return None
        return answer

    async def respond(self, request_der: bytes) -> OcspAnswer:
        try:
            request = parse_request(request_der)
        except OcspMalformed:
            return OcspAnswer(error_response("malformed_request"))
        try:
            return await self._answer(request, request_der)
        except Exception:
            log.exception("OCSP answer failed")
            return OcspAnswer(error_response("internal_error"))

    async def _status(self, serial: int) -> _Status:
        record = await self._certificates.by_serial(serial)
        if record is None:
            return _Status(CertStatus.UNKNOWN)
        if record.revoked_at is None:
            return _Status(CertStatus.GOOD)
        revocation = await self._revocations.of_serial(serial)
        reason = int(revocation.reason) if revocation is not None else None
        return _Status(CertStatus.REVOKED, record.revoked_at, reason or None)

    async def _answer(self, request: OcspRequest, request_der: bytes) -> OcspAnswer:
        for cert_id in request.cert_ids:
            if self._issuer.get(cert_id.hash_algorithm) != (
                cert_id.issuer_name_hash,
                cert_id.issuer_key_hash,
            ):
                # RFC 6960 2.3: we are not authoritative for that issuer.
                return OcspAnswer(error_response("unauthorized"))
        now = self._clock.now().replace(microsecond=0)
        next_update = now + self._validity
        statuses = []
        for cert_id in request.cert_ids:
            status = await self._status(cert_id.serial)
            statuses.append(
                SingleStatus(
                    cert_id.der, status.status, now, next_update, status.revoked_at, status.reason
                )
            )
        body = build_response(
            self._signer,
            responder_key_id=self._key_id,
            responder_certificate=self._certificate,
            produced_at=now,
            statuses=statuses,
            nonce=request.nonce,
        )
        if request.nonce is not None:
            return OcspAnswer(body)
        answer = OcspAnswer(body, now, next_update)
        # An unknown serial is not remembered: it may be issued by another process a
        # moment later.
        if len(request.cert_ids) == 1 and statuses[0].status is not CertStatus.UNKNOWN:
            self._remember(request_der, answer, request.cert_ids[0].serial, now)
        return answer

    def _remember(self, key: bytes, answer: OcspAnswer, serial: int, now: datetime) -> None:
        self._answers[key] = (answer, now + self._validity / 2, serial)
        self._answers.move_to_end(key)
        self._by_serial.setdefault(serial, set()).add(key)
        while len(self._answers) > self._cache_size:
            old_key, (_, _, old_serial) = self._answers.popitem(last=False)
            keys = self._by_serial.get(old_serial)
            if keys is not None:
                keys.discard(old_key)
                if not keys:
                    del self._by_serial[old_serial]
