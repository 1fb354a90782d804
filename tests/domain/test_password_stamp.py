"""The ``password_changed_at`` rule (pure): now, but always after the previous stamp."""

from __future__ import annotations

import pytest

from ca_service.domain.accounts import password_stamp


@pytest.mark.parametrize(
    ("previous", "now", "stamp"),
    [
        (None, 1_000, 1_000),  # the first change
        (900, 1_000, 1_000),  # later: the clock's instant
        (1_000, 1_000, 1_001),  # the same millisecond: one after
        (5_000, 1_000, 5_001),  # a CA host whose clock is behind: one after
    ],
)
def test_a_stamp_is_now_but_after_the_previous_one(
    previous: int | None, now: int, stamp: int
) -> None:
    assert password_stamp(previous, now) == stamp


def test_stamps_strictly_increase_whatever_the_clock_does() -> None:
    clock = [10, 10, 9, 12, 12, 3, 40]
    stamps: list[int] = []
    for now in clock:
        stamps.append(password_stamp(stamps[-1] if stamps else None, now))
    assert stamps == [10, 11, 12, 13, 14, 15, 40]
