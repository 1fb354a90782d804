"""The OCSP responder (RFC 6960; RFC 5019 profile for GET): good / revoked / unknown for
the issuing CA's certificates, signed by a delegated responder key.

Responses without a nonce are signed once per CertID (whatever else the request carries)
and served from memory until half of their validity has passed; the memory is bounded in
bytes (least recently used answers go first), and a revocation anywhere (the revocation
feed) drops the affected answers at once. A request with a nonce is signed on demand,
since the nonce must be echoed. Every input gets a well-formed OCSP answer:
malformedRequest for what does not parse, unauthorized for another issuer's certificates,
tryLater while the store cannot be read.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_service.errors import StoreError
from ca_service.pki import der
from ca_service.pki.ocsp import (
    CertStatus,
    OcspMalformed,
    OcspRequest,
    SingleStatus,
    build_response,
    error_response,
    parse_request,
    plain_cert_id,
)
from ca_service.pki.signer import Signer, signs_in_process
from ca_service.ports import CertificateStore, Clock, RevocationFeed, RevocationStore
from ca_service.services.ocsp_cache import AnswerCache

__all__ = ["OcspAnswer", "OcspResponder"]

log = logging.getLogger(__name__)

_HASHES = ("sha1", "sha256", "sha384", "sha512")


# Compared and hashed by identity, and weakly referable: the HTTP adapter keeps what it
# renders for an answer only as long as the answer itself lives.
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
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
        revocations: RevocationStore,
        clock: Clock,
        cache_bytes: int,
        validity: timedelta = timedelta(hours=1),
    ) -> None:
        """``cache_bytes`` bounds the memory of pre-signed answers (CA_OCSP_CACHE_BYTES)."""
        self._signer = signer
        self._certificate = responder_certificate
        self._key_id = responder_key_id
        self._certificates = certificates
        self._revocations = revocations
        self._clock = clock
        self._validity = validity
        key_bits = der.spki_key_bits(issuer_public_key)
        # The (name hash, key hash) pairs, per hash algorithm, that identify our issuer.
        self._issuer = {
            name: (hashlib.new(name, issuer_name).digest(), hashlib.new(name, key_bits).digest())
            for name in _HASHES
        }
        self.cache: AnswerCache[OcspAnswer] = AnswerCache(cache_bytes)
        self._last_sequence = 0

    def use_key(self, signer: Signer, certificate: bytes, key_id: bytes) -> None:
        """Switches to a rotated responder key; answers signed by the old one are dropped."""
        if certificate == self._certificate:
            return
        self._signer, self._certificate, self._key_id = signer, certificate, key_id
        self.cache.clear()
        log.info("OCSP responder key rotated")

    # -- keeping the cache honest ----------------------------------------------------------

    async def catch_up(self) -> None:
        """Drops cached answers for certificates revoked since we last looked."""
        while True:
            batch = await self._revocations.since(self._last_sequence)
            for record in batch:
                self.cache.drop_serial(record.serial)
            if batch:
                self._last_sequence = batch[-1].sequence
            if len(batch) < 1000:
                return

    async def run(self, stop: asyncio.Event, feed: RevocationFeed) -> None:
        self._last_sequence = await self._revocations.latest_sequence()
        while not stop.is_set():
            try:
                await self.catch_up()
            except StoreError:
                pass  # the outage is logged once, by the store's availability
            except Exception as exc:
                log.warning("OCSP cache catch-up failed: %s", type(exc).__name__)
            await feed.wait(1.0)

    # -- answering -------------------------------------------------------------------------

    def cached(self, request_der: bytes) -> OcspAnswer | None:
        """The answer from memory when there is a fresh one for a request of the plain
        shape (one CertID, nothing else): no parsing, no awaiting — the fast path."""
        cert_id = plain_cert_id(request_der)
        return None if cert_id is None else self.cached_answer(cert_id)

    def cached_answer(self, cert_id: bytes) -> OcspAnswer | None:
        """The fresh answer in memory for ``cert_id``, a CertID found by
        :func:`~ca_service.pki.ocsp.plain_cert_id`."""
        return self.cache.get(cert_id, self._clock.now())

    async def respond(self, request_der: bytes) -> OcspAnswer:
        try:
            request = parse_request(request_der)
        except OcspMalformed:
            return OcspAnswer(error_response("malformed_request"))
        try:
            return await self._answer(request)
        except StoreError:
            # RFC 6960 2.3: the responder cannot answer now (the outage is logged once).
            return OcspAnswer(error_response("try_later"))
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

    async def _answer(self, request: OcspRequest) -> OcspAnswer:
        for cert_id in request.cert_ids:
            if self._issuer.get(cert_id.hash_algorithm) != (
                cert_id.issuer_name_hash,
                cert_id.issuer_key_hash,
            ):
                # RFC 6960 2.3: we are not authoritative for that issuer.
                return OcspAnswer(error_response("unauthorized"))
        # One CertID and no nonce: the answer echoes nothing but the CertID, so any
        # request for it (whatever its other fields) shares one signed answer.
        shared = len(request.cert_ids) == 1 and request.nonce is None
        if shared:
            remembered = self.cache.get(request.cert_ids[0].der, self._clock.now())
            if remembered is not None:
                return remembered
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
        build = functools.partial(
            build_response,
            self._signer,
            responder_key_id=self._key_id,
            responder_certificate=self._certificate,
            produced_at=now,
            statuses=statuses,
            nonce=request.nonce,
        )
        # An HSM's signature may wait on the device: not on the event loop.
        body = build() if signs_in_process(self._signer) else await asyncio.to_thread(build)
        if request.nonce is not None:
            return OcspAnswer(body)
        answer = OcspAnswer(body, now, next_update)
        # An unknown serial is not remembered: it may be issued by another process a
        # moment later.
        if shared and statuses[0].status is not CertStatus.UNKNOWN:
            cert_id = request.cert_ids[0]
            self.cache.put(cert_id.der, cert_id.serial, answer, len(body), now + self._validity / 2)
        return answer
