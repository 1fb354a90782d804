"""Values as they cross into and out of Redis.

Instants are stored as whole seconds since the Unix epoch.

``now`` travels to Lua as integer microseconds (exact in a Lua double until the year
2255), so comparisons against it are exact; stored instants are whole seconds, rounded in
the safe direction by the caller (a lock ends no earlier, a code dies no later).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "epoch_us", "from_epoch_s", "seconds", "text"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(instant: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is refused (its zone is a guess)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} is naive; pass a timezone-aware datetime")
    return (instant - EPOCH) // _MICROSECOND


def from_epoch_s(value: int) -> datetime:
    return EPOCH + timedelta(seconds=value)


def seconds(duration: timedelta) -> int:
    """A positive whole number of seconds (Redis TTLs and lock durations)."""
    if duration < timedelta(seconds=1) or duration % timedelta(seconds=1):
        raise ValueError(f"{duration} must be a whole number of seconds, at least 1")
    return duration // timedelta(seconds=1)


def text(value: object) -> str:
    """A reply value as text, whether the client decodes responses (``connect``) or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
