"""A clock the test moves by hand, for anything that takes a ``Clock`` (``now()``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    def __init__(self, now: datetime = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta
