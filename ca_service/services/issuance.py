"""Issuing certificates: check the request, apply the profile, sign, record, return.

A certificate is committed to the store before this service hands it to anyone, so a crash
can never leave a certificate in a client's hands that the CA does not know about. The
signed DER is recorded in the same single write as its serial, so there is no window in
which the store holds a reserved serial without its certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import lru_cache, partial

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ca_service.domain.identifiers import organization_problem, user_id_problem
from ca_service.domain.naming import client_subject_string, pkcs12_file_name
from ca_service.domain.records import CertificateRecord, KeySource
from ca_service.domain.validity import validity_for
from ca_service.errors import (
    AlreadyExists,
    ErrorReason,
    InvalidArgument,
    InvalidCsr,
    NotFound,
    StoreError,
)
from ca_service.pki.certificates import ClientCertificateFactory, ClientSubject, new_serial
from ca_service.pki.csr import CsrRejected, accepted_public_key
from ca_service.pki.pkcs12 import build_pkcs12_from_der
from ca_service.ports import CertificateStore, Clock

__all__ = ["IssuanceService", "IssuedKeyPair", "parse_fingerprint", "parse_serial"]

log = logging.getLogger(__name__)

_MAX_PASSWORD = 128
_SERIAL_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class IssuedKeyPair:
    record: CertificateRecord
    pkcs12: bytes
    file_name: str


def _subject(user_id: str, organization: str) -> ClientSubject:
    problem = user_id_problem(user_id)
    if problem is not None:
        raise InvalidArgument(
            problem, reason=ErrorReason.INVALID_USER_ID, metadata={"field": "user_id"}
        )
    problem = organization_problem(organization)
    if problem is not None:
        raise InvalidArgument(
            problem, reason=ErrorReason.INVALID_ORGANIZATION, metadata={"field": "organization"}
        )
    return ClientSubject(user_id=user_id, organization=organization)


def _hex(value: str, what: str) -> str:
    cleaned = value.strip().replace(":", "").lower()
    if not cleaned or any(ch not in "0123456789abcdef" for ch in cleaned):
        raise InvalidArgument(
            f"{what} must be hexadecimal",
            reason=ErrorReason.INVALID_ARGUMENT,
            metadata={"field": what.replace(" ", "_")},
        )
    return cleaned


def parse_serial(value: str) -> int:
    serial = int(_hex(value, "serial number"), 16)
    if serial <= 0 or serial.bit_length() > 160:
        raise InvalidArgument(
            "serial number must be positive and at most 20 octets",
            metadata={"field": "serial_number"},
        )
    return serial


def parse_fingerprint(value: str) -> str:
    fingerprint = _hex(value, "fingerprint sha256")
    if len(fingerprint) != 64:
        raise InvalidArgument(
            "a SHA-256 fingerprint has 64 hexadecimal digits",
            metadata={"field": "fingerprint_sha256"},
        )
    return fingerprint


# Every certificate issued within one second gets the same validity; computing it (time
# zone conversions) once per second keeps it off the hot path.
_validity = lru_cache(maxsize=8)(validity_for)


class IssuanceService:
    def __init__(
        self,
        *,
        factory: ClientCertificateFactory,
        store: CertificateStore,
        clock: Clock,
        chain: Sequence[x509.Certificate],
        pkcs12_kdf_rounds: int,
        pkcs12_executor: Executor | None = None,
    ) -> None:
        """``pkcs12_executor``: where PKCS#12 files are built (a process pool keeps their
        GIL-holding key derivation off the event loop); None runs them in a thread."""
        self._factory = factory
        self._store = store
        self._clock = clock
        self._chain = tuple(chain)
        self._kdf_rounds = pkcs12_kdf_rounds
        self._pkcs12_executor = pkcs12_executor
        self._chain_der = [certificate.public_bytes(Encoding.DER) for certificate in chain]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Issuing CA first, then the root."""
        return self._chain

    async def _issue(
        self,
        subject: ClientSubject,
        spki: bytes,
        source: KeySource,
        actor: str,
        details: Mapping[str, str] | None,
    ) -> CertificateRecord:
        for _attempt in range(_SERIAL_ATTEMPTS):
            issued_at = self._clock.now()
            validity = _validity(
                issued_at.replace(microsecond=0), self._factory.profile.not_before_skew
            )
            serial = new_serial()
            build = partial(
                self._factory.build, serial=serial, subject=subject, spki=spki, validity=validity
            )
            der = build() if self._factory.signs_in_process else await asyncio.to_thread(build)
            record = CertificateRecord(
                serial=serial,
                fingerprint_sha256=hashlib.sha256(der).hexdigest(),
                user_id=subject.user_id,
                organization=subject.organization,
                subject=client_subject_string(subject.user_id, subject.organization),
                not_before=validity.not_before,
                not_after=validity.not_after,
                issued_at=issued_at,
                key_source=source,
                der=der,
            )
            try:
                await self._store.record_issued(record, actor, details)
            except AlreadyExists:
                log.warning(
                    "serial collision on %s; signing again with a new serial", record.serial_hex
                )
                continue
            log.info(
                "issued serial=%s user=%s source=%s",
                record.serial_hex,
                subject.user_id,
                source.value,
            )
            return record
        raise StoreError("could not find a free serial number", reason=ErrorReason.SERIAL_CONFLICT)

    async def sign_csr(
        self,
        csr: bytes,
        *,
        user_id: str,
        organization: str,
        actor: str,
        details: Mapping[str, str] | None = None,
    ) -> CertificateRecord:
        """Signs for ``user_id`` under ``organization`` as given: callers check the
        account (enrollment, AccountIssuance). ``actor`` and ``details`` go to the audit
        entry."""
        subject = _subject(user_id, organization)
        try:
            spki = accepted_public_key(csr)
        except CsrRejected as exc:
            raise InvalidCsr(str(exc), metadata={"field": "csr"}) from None
        return await self._issue(subject, spki, KeySource.CSR, actor, details)

    async def issue_with_server_key(
        self,
        *,
        user_id: str,
        organization: str,
        password: str,
        actor: str,
        details: Mapping[str, str] | None = None,
    ) -> IssuedKeyPair:
        subject = _subject(user_id, organization)
        if not password:
            raise InvalidArgument(
                "a PKCS#12 password is required",
                reason=ErrorReason.INVALID_PASSWORD,
                metadata={"field": "pkcs12_password"},
            )
        if len(password) > _MAX_PASSWORD or not password.isprintable():
            raise InvalidArgument(
                f"the PKCS#12 password must be printable and at most {_MAX_PASSWORD} characters",
                reason=ErrorReason.INVALID_PASSWORD,
                metadata={"field": "pkcs12_password"},
            )
        # The key lives only in this call (and, over a pipe, in the worker that builds the
        # PKCS#12): it goes into the PKCS#12 and is never stored.
        key = ec.generate_private_key(ec.SECP256R1())
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        record = await self._issue(subject, spki, KeySource.SERVER, actor, details)
        key_der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        pkcs12 = await asyncio.get_running_loop().run_in_executor(
            self._pkcs12_executor,
            build_pkcs12_from_der,
            user_id,
            key_der,
            record.der,
            self._chain_der,
            password,
            self._kdf_rounds,
        )
        return IssuedKeyPair(record, pkcs12, pkcs12_file_name(user_id, record.issued_at))

    async def by_serial(self, serial: str) -> CertificateRecord:
        record = await self._store.by_serial(parse_serial(serial))
        if record is None:
            raise NotFound(
                f"no certificate with serial number {serial}",
                reason=ErrorReason.CERTIFICATE_NOT_FOUND,
            )
        return record

    async def by_fingerprint(self, fingerprint: str) -> CertificateRecord:
        record = await self._store.by_fingerprint(parse_fingerprint(fingerprint))
        if record is None:
            raise NotFound(
                f"no certificate with SHA-256 fingerprint {fingerprint}",
                reason=ErrorReason.CERTIFICATE_NOT_FOUND,
            )
        return record

    async def for_user(self, user_id: str) -> Sequence[CertificateRecord]:
        problem = user_id_problem(user_id)
        if problem is not None:
            raise InvalidArgument(
                problem, reason=ErrorReason.INVALID_USER_ID, metadata={"field": "user_id"}
            )
        return await self._store.for_user(user_id)
