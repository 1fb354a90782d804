"""Value objects the services and stores exchange."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CertificateRecord", "CertificateStatus", "KeySource", "status_at"]


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
