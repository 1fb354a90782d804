"""Value objects the services and stores exchange."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from ca_service.domain.crl_schedule import CrlState
from ca_service.pki.crl import Reason

__all__ = [
    "CertificateRecord",
    "CertificateStatus",
    "CrlKind",
    "CrlSnapshot",
    "KeySource",
    "PublishedCrl",
    "RevocationRecord",
    "status_at",
]


class KeySource(enum.Enum):
    CSR = "csr"
    SERVER = "server"


class CertificateStatus(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    NOT_YET_VALID = "not_yet_valid"


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    serial: int
    fingerprint_sha256: str
    user_id: str
    organization: str
    subject: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    key_source: KeySource
    der: bytes
    revoked_at: datetime | None = None

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def status_at(record: CertificateRecord, now: datetime) -> CertificateStatus:
    if record.revoked_at is not None:
        return CertificateStatus.REVOKED
    if now < record.not_before:
        return CertificateStatus.NOT_YET_VALID
    if now > record.not_after:
        return CertificateStatus.EXPIRED
    return CertificateStatus.VALID


@dataclass(frozen=True, slots=True)
class RevocationRecord:
    sequence: int
    serial: int
    user_id: str
    revoked_at: datetime
    reason: Reason
    invalidity_date: datetime | None
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


class CrlKind(enum.StrEnum):
    BASE = "full"  # the base (full) CRL
    DELTA = "delta"


@dataclass(frozen=True, slots=True)
class PublishedCrl:
    kind: CrlKind
    number: int
    base_number: int | None
    this_update: datetime
    next_update: datetime
    through_sequence: int
    der: bytes

    @property
    def state(self) -> CrlState:
        return CrlState(
            self.number, self.this_update, self.through_sequence, self.base_number, bool(self.der)
        )


@dataclass(frozen=True, slots=True)
class CrlSnapshot:
    """What is stored, without the CRLs themselves: enough to decide what is due."""

    base: CrlState | None
    delta: CrlState | None
    latest_sequence: int
