"""Certificate validity and the calendar rules built on it (SPEC C1, C2, C3).

All calendar arithmetic happens on Japan dates (Asia/Tokyo); instants are timezone-aware
``datetime`` values and are returned in UTC. Nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ca_service.shared.japan import JAPAN

__all__ = [
    "JAPAN",
    "RENEWAL_WINDOW_DAYS",
    "VALIDITY_DAYS",
    "Validity",
    "expiry_notice_day",
    "japan_date",
    "last_valid_day",
    "renewal_notice_day",
    "renewal_opens_at",
    "validity_for",
]

# SPEC C1: 366 days including the day of issue.
VALIDITY_DAYS = 366
# SPEC C2/C3: renewal opens, and the renewal notice goes out, 30 days before expiry.
RENEWAL_WINDOW_DAYS = 30

_END_OF_DAY = time(23, 59, 59)


def _require_aware(instant: datetime, name: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {instant!r}")


def japan_date(instant: datetime) -> date:
    """The calendar date in Japan at ``instant``."""
    _require_aware(instant, "instant")
    return instant.astimezone(JAPAN).date()


def _japan_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=JAPAN)


@dataclass(frozen=True, slots=True)
class Validity:
    """The validity period written into a certificate (UTC, whole seconds)."""

    not_before: datetime
    not_after: datetime
    issue_day: date

    def __post_init__(self) -> None:
        _require_aware(self.not_before, "not_before")
        _require_aware(self.not_after, "not_after")
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")


def validity_for(issued_at: datetime, skew: timedelta = timedelta(minutes=5)) -> Validity:
    """Validity of a certificate issued at ``issued_at`` (SPEC C1).

    notAfter is 23:59:59 Japan time of the issue day + 365. notBefore is the issue time less
    ``skew`` (so relying parties with a slightly slow clock accept a fresh certificate), but
    never earlier than the start of the Japan issue day, so that the certificate never covers
    more than the 366 days the rule grants.
    """
    _require_aware(issued_at, "issued_at")
    if skew < timedelta(0):
        raise ValueError("skew must not be negative")
    issue_day = japan_date(issued_at)
    last_day = issue_day + timedelta(days=VALIDITY_DAYS - 1)
    not_after = datetime.combine(last_day, _END_OF_DAY, tzinfo=JAPAN).astimezone(UTC)
    earliest = _japan_midnight(issue_day).astimezone(UTC)
    not_before = max(issued_at.astimezone(UTC) - skew, earliest).replace(microsecond=0)
    return Validity(not_before=not_before, not_after=not_after, issue_day=issue_day)


def last_valid_day(not_after: datetime) -> date:
    """The last Japan date on which a certificate with this notAfter is valid."""
    return japan_date(not_after)


def renewal_opens_at(not_after: datetime) -> datetime:
    """00:00 Japan time, 30 days before the last valid day (SPEC C2), in UTC."""
    opens = last_valid_day(not_after) - timedelta(days=RENEWAL_WINDOW_DAYS)
    return _japan_midnight(opens).astimezone(UTC)


def renewal_notice_day(not_after: datetime) -> date:
    """The Japan date the "please renew" notice goes out (SPEC C3)."""
    return last_valid_day(not_after) - timedelta(days=RENEWAL_WINDOW_DAYS)


def expiry_notice_day(not_after: datetime) -> date:
    """The first Japan date on which the certificate is no longer valid (SPEC C3)."""
    return last_valid_day(not_after) + timedelta(days=1)
