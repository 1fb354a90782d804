"""How often an authentication code may be sent again (認証コードの再送, issue 11): at most
once per ``RESEND_INTERVAL`` after the last code sent to the user, and at most
``RESENDS_PER_WINDOW`` resends in any ``RESEND_WINDOW``. Pure.

The limits are per user ID, whatever the authentication: what they protect is the user's
mailbox (and the code's guessing budget), not a session. The Redis adapter runs the same
rule in one Lua script (``adapters/redis/resend.py``); tests drive both with the same
sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_RESEND_LIMITS",
    "RESENDS_PER_WINDOW",
    "RESEND_INTERVAL",
    "RESEND_WINDOW",
    "ResendLimits",
    "resend_retry_at",
]

# Issue 11: once a minute, 5 resends per 30 minutes.
RESEND_INTERVAL = timedelta(minutes=1)
RESENDS_PER_WINDOW = 5
RESEND_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ResendLimits:
    interval: timedelta = RESEND_INTERVAL
    per_window: int = RESENDS_PER_WINDOW
    window: timedelta = RESEND_WINDOW

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.window <= timedelta(0) or self.per_window < 1:
            raise ValueError("resend limits must be positive")


DEFAULT_RESEND_LIMITS = ResendLimits()


def resend_retry_at(
    last_sent: datetime | None,
    resends: Sequence[datetime],
    now: datetime,
    limits: ResendLimits = DEFAULT_RESEND_LIMITS,
) -> datetime | None:
    """None when a code may be sent again at ``now``; else the earliest instant it may.

    ``last_sent`` is when the user's last code went out (first or resent); ``resends`` are
    the instants of earlier resends (any order; those outside the window do not count)."""
    waits = []
    if last_sent is not None and now < last_sent + limits.interval:
        waits.append(last_sent + limits.interval)
    recent = sorted(t for t in resends if t > now - limits.window)
    if len(recent) >= limits.per_window:
        # The oldest resend that must leave the window before one more fits.
        waits.append(recent[len(recent) - limits.per_window] + limits.window)
    return max(waits, default=None)
