"""Shared pieces of the Redis adapter tests: a client per scenario and the pure reference."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from redis.asyncio import Redis

from ca_service.adapters.redis.client import connect
from ca_service.domain.lockout import Event, LockoutState, transition

# Whole seconds: stored instants are whole seconds, so with this the adapters and the pure
# machine agree exactly (sub-second rounding has its own tests).
NOW = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)


@asynccontextmanager
async def client(url: str) -> AsyncIterator[Redis]:
    """A client bound to the running event loop, closed afterwards."""
    redis = connect(url).client
    try:
        yield redis
    finally:
        await redis.aclose()


def pure(state: LockoutState, event: Event, now: datetime) -> tuple[bool, LockoutState]:
    """What the domain machine does: (applied, state after); a refused event changes nothing."""
    try:
        return True, transition(state, event, now)
    except ValueError:
        return False, state


def pure_fold(events: Iterable[tuple[Event, datetime]]) -> LockoutState:
    state = LockoutState()
    for event, now in events:
        _, state = pure(state, event, now)
    return state
