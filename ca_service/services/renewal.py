"""SPEC C2, the renewal window: a user holding a valid certificate gets another one only
from 30 days before that certificate expires (after a revocation, at once: C6)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ca_service.domain.records import CertificateRecord, CertificateStatus, status_at
from ca_service.domain.validity import JAPAN, renewal_opens_at
from ca_service.errors import AlreadyIssued

__all__ = ["current_certificate", "renewal_refusal"]


def current_certificate(
    records: Sequence[CertificateRecord], now: datetime
) -> CertificateRecord | None:
    """The user's valid, unrevoked certificate that expires last, if any (SPEC C2/C6)."""
    valid = [r for r in records if status_at(r, now) is CertificateStatus.VALID]
    return max(valid, key=lambda r: r.not_after, default=None)


def renewal_refusal(records: Sequence[CertificateRecord], now: datetime) -> AlreadyIssued | None:
    """ALREADY_ISSUED (with the date renewal opens and the current serial) while the
    user's current certificate is outside its renewal window; None when issuance may go
    ahead."""
    current = current_certificate(records, now)
    if current is None:
        return None
    opens = renewal_opens_at(current.not_after)
    if now >= opens:
        return None
    return AlreadyIssued(
        "a valid certificate has already been issued; renewal opens on "
        f"{opens.astimezone(JAPAN):%Y-%m-%d} (Japan time)",
        metadata={"renewal_opens_at": opens.isoformat(), "serial_number": current.serial_hex},
    )
