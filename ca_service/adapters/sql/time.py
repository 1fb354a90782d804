"""Instants in the SQL store: whole seconds since the epoch (BIGINT), read back in UTC; where a
column needs more, whole milliseconds (``epoch_ms``/``instant_ms``), computed in integers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

__all__ = ["epoch", "epoch_ms", "instant", "instant_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


@overload
def epoch(value: datetime) -> int: ...
@overload
def epoch(value: None) -> None: ...
def epoch(value: datetime | None) -> int | None:
    """The column value of a timezone-aware instant (None stays NULL)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware instant, got naive {value!r}")
    return int(value.timestamp())


@overload
def instant(value: int) -> datetime: ...
@overload
def instant(value: None) -> None: ...
def instant(value: int | None) -> datetime | None:
    """The instant of a column value (NULL stays None)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def epoch_ms(value: datetime) -> int:
    """Whole milliseconds since the epoch of a timezone-aware instant (no float on the way)."""
    if value.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware instant, got naive {value!r}")
    return (value - _EPOCH) // _MILLISECOND


def instant_ms(value: int) -> datetime:
    """The instant of a column in milliseconds, exactly."""
    return _EPOCH + value * _MILLISECOND
