"""Japan time, as the screens and mails show it (``2027年11月21日 23:59``). Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["JAPAN", "format_japan_date", "format_japan_time", "format_lock_end", "lock_end_minute"]

JAPAN = ZoneInfo("Asia/Tokyo")
_MINUTE = timedelta(minutes=1)


def _local(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant must be timezone-aware, got naive {instant!r}")
    return instant.astimezone(JAPAN)


def format_japan_time(instant: datetime, *, round_up: bool = False) -> str:
    """``instant`` in Japan time to the minute, e.g. ``2027年11月21日 23:59``.

    Seconds are dropped (a notAfter of 23:59:59 reads 23:59) unless ``round_up``, which a
    "you may try again at" time needs so that it is never earlier than the real instant.
    """
    local = _local(instant)
    floored = local.replace(second=0, microsecond=0)
    if round_up and floored != local:
        floored += _MINUTE
    return f"{floored.year}年{floored.month}月{floored.day}日 {floored:%H:%M}"


def format_japan_date(instant: datetime) -> str:
    """The Japan date of ``instant``, e.g. ``2027年11月21日``."""
    local = _local(instant)
    return f"{local.year}年{local.month}月{local.day}日"


def lock_end_minute(locked_until: datetime) -> datetime:
    """The minute a lock (SPEC B3) is shown to lift, in Japan time: ``locked_until`` rounded
    *up*, so that a user who comes back at the minute named is let in. The one place that
    decides this rounding: the lock mail, the screens and ``ca-admin`` name the same minute."""
    local = _local(locked_until)
    floored = local.replace(second=0, microsecond=0)
    return floored if floored == local else floored + _MINUTE


def format_lock_end(locked_until: datetime) -> str:
    """When a lock lifts, as the screens and mails say it: ``2026年12月3日 22:22``."""
    return format_japan_time(lock_end_minute(locked_until))
