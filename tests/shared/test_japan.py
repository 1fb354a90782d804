"""ca_service.shared.japan: instants in Japan time as the screens and mails show them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ca_service.shared.japan import (
    JAPAN,
    format_japan_date,
    format_japan_time,
    format_lock_end,
    lock_end_minute,
)


def test_japan_time_to_the_minute() -> None:
    instant = datetime(2027, 11, 21, 14, 59, 59, tzinfo=UTC)  # 23:59:59 in Japan
    assert format_japan_time(instant) == "2027年11月21日 23:59"
    assert format_japan_time(instant, round_up=True) == "2027年11月22日 00:00"
    exact = datetime(2027, 11, 21, 3, 30, tzinfo=UTC)
    assert format_japan_time(exact, round_up=True) == "2027年11月21日 12:30"
    assert format_japan_date(instant) == "2027年11月21日"
    assert format_japan_date(datetime(2027, 11, 21, 15, 0, tzinfo=UTC)) == "2027年11月22日"


def test_a_lock_end_is_rounded_up_to_the_minute() -> None:
    # A lock that lifts at 22:21:00.4 is still on at 22:21: the minute named is 22:22.
    assert format_lock_end(datetime(2026, 12, 3, 13, 21, 0, 400_000, tzinfo=UTC)) == (
        "2026年12月3日 22:22"
    )
    assert format_lock_end(datetime(2026, 12, 3, 13, 21, 1, tzinfo=UTC)) == "2026年12月3日 22:22"
    assert format_lock_end(datetime(2026, 12, 3, 13, 21, tzinfo=UTC)) == "2026年12月3日 22:21"
    assert format_lock_end(datetime(2026, 12, 31, 14, 59, 30, tzinfo=UTC)) == "2027年1月1日 00:00"
    minute = lock_end_minute(datetime(2026, 12, 3, 13, 21, 0, 400_000, tzinfo=UTC))
    assert minute == datetime(2026, 12, 3, 22, 22, tzinfo=JAPAN) and minute.tzinfo == JAPAN


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_japan_time(datetime(2027, 11, 21, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        format_japan_date(datetime(2027, 11, 21, 12, 0))
