"""What a master user's page says about a user's certificate (issue 11, item 6): 有効 with
its expiry and whether renewal is open (SPEC C2), 失効 (revoked), 期限切れ (expired), or
なし (never issued). Pure."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ca_service.domain.records import CertificateRecord, CertificateStatus, status_at
from ca_service.domain.validity import renewal_opens_at
from ca_service.pki.crl import Reason

__all__ = ["CertificateSummary", "Holding", "RevocationCause", "summarize"]


class Holding(enum.Enum):
    VALID = "valid"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    holding: Holding
    # The certificate the summary is about (None for NONE).
    serial_hex: str = ""
    not_after: datetime | None = None
    # When renewal opens (VALID only), and whether a new certificate may be issued now:
    # inside the renewal window, or at once without a valid certificate (SPEC C2, C6).
    renewal_opens_at: datetime | None = None
    renewal_open: bool = True


def summarize(records: Sequence[CertificateRecord], now: datetime) -> CertificateSummary:
    """The user's current certificate (valid, unrevoked, expiring last) if there is one;
    otherwise what became of the newest one."""
    usable = [
        r
        for r in records
        if status_at(r, now) in (CertificateStatus.VALID, CertificateStatus.NOT_YET_VALID)
    ]
    if usable:
        current = max(usable, key=lambda r: r.not_after)
        opens = renewal_opens_at(current.not_after)
        return CertificateSummary(
            Holding.VALID, current.serial_hex, current.not_after, opens, now >= opens
        )
    newest = max(records, key=lambda r: (r.issued_at, r.serial), default=None)
    if newest is None:
        return CertificateSummary(Holding.NONE)
    holding = (
        Holding.REVOKED if status_at(newest, now) is CertificateStatus.REVOKED else Holding.EXPIRED
    )
    return CertificateSummary(holding, newest.serial_hex, newest.not_after)


class RevocationCause(enum.Enum):
    """Why a master user revokes a general user's certificate (SPEC C6, C7), and the RFC 5280
    reason each is published with."""

    PC_CHANGE = "pc_change"  # the key stays on the old PC, which is retired: superseded
    LOST_PC = "lost_pc"  # the key may be in someone else's hands: keyCompromise

    @property
    def reason(self) -> Reason:
        return _CAUSE_REASONS[self]


_CAUSE_REASONS = {
    RevocationCause.PC_CHANGE: Reason.SUPERSEDED,
    RevocationCause.LOST_PC: Reason.KEY_COMPROMISE,
}
