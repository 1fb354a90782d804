"""Mail as the services and the outbox exchange it (SPEC A6): what to send, of which kind,
and what the operator sees of a queued row."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "MailKind",
    "MailStatus",
    "NoticeCandidate",
    "OutboxRow",
    "OutgoingMail",
    "notice_key",
]


class MailKind(enum.StrEnum):
    CODE = "code"
    LOCKED = "locked"
    BLOCKED = "blocked"
    UNLOCKED = "unlocked"
    RENEWAL = "renewal"
    EXPIRY = "expiry"
    EMAIL_VERIFICATION = "email_verification"
    EMAIL_CHANGED = "email_changed"
    PROCEDURE_COMPLETION = "procedure_completion"


class MailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"


def _single_line(name: str, value: str) -> None:
    # A CR or LF in a header value would let a caller inject headers into the message.
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must be a single line")


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """A mail to queue. ``dedupe_key`` makes it unique (one notice per certificate);
    ``expires_at`` is when sending it becomes pointless (a code's end of validity)."""

    kind: str
    recipient: str
    subject: str
    body: str
    dedupe_key: str | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("kind must not be empty")
        _single_line("recipient", self.recipient)
        _single_line("subject", self.subject)
        local, at, domain = self.recipient.rpartition("@")
        if not (local and at and domain) or "," in self.recipient or " " in self.recipient:
            raise ValueError("recipient must be one plain e-mail address")
        if self.expires_at is not None and self.expires_at.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware instant, got naive {self.expires_at!r}")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """What ``ca-admin mail list`` shows: everything but the body."""

    id: int
    kind: str
    recipient: str
    subject: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime | None
    sent_at: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str | None
    dedupe_key: str | None


@dataclass(frozen=True, slots=True)
class NoticeCandidate:
    """An unrevoked, newest certificate of a user with an account whose renewal or expiry
    notice may be due (SPEC C3)."""

    serial: str
    user_id: str
    not_after: datetime
    email: str


def notice_key(kind: MailKind, serial: str) -> str:
    """The outbox's unique key of a certificate's notice: one of each kind per certificate."""
    return f"{kind}:{serial}"
