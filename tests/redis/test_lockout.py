"""RedisLockoutStore against a real redis-server: the table of SPEC B3–B6, checked step by
step against ``domain.lockout.transition``, and its atomicity under concurrency (B7)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from ca_service.adapters.redis.client import peer
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.domain.lockout import (
    FAILURES_TO_LOCK,
    LOCK_DURATION,
    Access,
    Event,
    LockoutState,
    access,
)
from ca_service.ports import LockoutChange, LockoutStore
from tests.redis.helpers import NOW, client, pure, pure_fold

ROOT = Path(__file__).resolve().parents[2]
USER = "taro0001"
KEY = f"ca:lockout:{USER}"
F, S, U = Event.FAILURE, Event.SUCCESS, Event.UNLOCK
SECOND = timedelta(seconds=1)


async def _drive(
    store: RedisLockoutStore, steps: list[tuple[Event, datetime]], user: str = USER
) -> list[LockoutChange]:
    """Records each step and checks it against the pure machine: flag, before and after."""
    expected = LockoutState()
    changes = []
    for event, now in steps:
        applied, after = pure(expected, event, now)
        change = await store.record(user, event, now)
        assert change == LockoutChange(applied, expected, after), (event, now)
        assert await store.state(user) == after
        expected = after
        changes.append(change)
    return changes


def _failures(count: int, now: datetime = NOW) -> list[tuple[Event, datetime]]:
    return [(F, now)] * count


def _locked_three_times() -> list[tuple[Event, datetime]]:
    """Three rounds of six failures, each round after the previous lock lifted."""
    return [step for i in range(3) for step in _failures(6, NOW + i * LOCK_DURATION)]


def test_store_satisfies_the_port(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store: LockoutStore = RedisLockoutStore(peer(redis))
            assert await store.state("never0seen") == LockoutState()

    asyncio.run(scenario())


def test_failures_count_up_to_five_then_the_sixth_locks_for_60_minutes(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            changes = await _drive(RedisLockoutStore(peer(redis)), _failures(6))
            assert [c.after.failures for c in changes] == [1, 2, 3, 4, 5, 0]
            assert changes[-1].after == LockoutState(
                failures=0, locks=1, locked_until=NOW + timedelta(minutes=60)
            )
            assert await redis.hgetall(KEY) == {
                "failures": "0",
                "locks": "1",
                "locked_until": str(int((NOW + LOCK_DURATION).timestamp())),
                "blocked": "0",
            }

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("offset", "is_open"),
    [(-SECOND, False), (timedelta(0), True), (SECOND, True)],
    ids=["one second before unlock", "at unlock", "one second after unlock"],
)
@pytest.mark.parametrize("event", [F, S])
def test_lock_lifts_by_time_exactly_after_60_minutes(
    redis_url: str, offset: timedelta, is_open: bool, event: Event
) -> None:
    at = NOW + LOCK_DURATION + offset

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            change = (await _drive(store, [*_failures(6), (event, at)]))[-1]
            assert access(change.before, at) is (Access.OPEN if is_open else Access.LOCKED)
            if not is_open:
                assert not change.applied
                assert change.after == change.before
            elif event is F:
                # B4: the lock count survives a lifted lock; failures start again from 0.
                assert change.after == LockoutState(
                    failures=1, locks=1, locked_until=NOW + LOCK_DURATION
                )

    asyncio.run(scenario())


def test_refused_attempts_while_locked_change_nothing(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            locked = (await _drive(store, _failures(6)))[-1].after
            stored = await redis.hgetall(KEY)
            for minutes in (0, 1, 30, 59):
                for event in (F, S):
                    at = NOW + timedelta(minutes=minutes)
                    change = await store.record(USER, event, at)
                    assert change == LockoutChange(False, locked, locked)
            assert await redis.hgetall(KEY) == stored

    asyncio.run(scenario())


def test_third_lock_blocks_until_unlocked(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            changes = await _drive(store, _locked_three_times())
            assert [c.after.locks for c in changes[5::6]] == [1, 2, 3]
            blocked = LockoutState(failures=0, locks=3, locked_until=None, blocked=True)
            assert changes[-1].after == blocked
            # Blocked is forever: no expiry, and no attempt gets through, however late.
            assert await redis.ttl(KEY) == -1
            late = NOW + timedelta(days=400)
            for event in (F, S):
                assert await store.record(USER, event, late) == LockoutChange(
                    False, blocked, blocked
                )
            assert await store.record(USER, U, late) == LockoutChange(True, blocked, LockoutState())
            assert await redis.exists(KEY) == 0

    asyncio.run(scenario())


def test_success_resets_failures_and_lock_count(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            after_lock = NOW + LOCK_DURATION
            steps = [
                *_failures(6),  # lock 1
                *_failures(6, after_lock),  # lock 2
                *_failures(3, after_lock + LOCK_DURATION),
                (S, after_lock + LOCK_DURATION),
            ]
            changes = await _drive(store, steps)
            assert changes[-1].before == LockoutState(
                failures=3, locks=2, locked_until=after_lock + LOCK_DURATION
            )
            assert changes[-1].after == LockoutState()
            assert await redis.exists(KEY) == 0
            # The count starts again: six more failures are lock 1, not lock 3.
            later = NOW + 3 * LOCK_DURATION
            change = (await _drive(store, _failures(6, later)))[-1]
            assert change.after == LockoutState(locks=1, locked_until=later + LOCK_DURATION)

    asyncio.run(scenario())


@pytest.mark.parametrize("failures", [0, 3, 6, 18], ids=["fresh", "failing", "locked", "blocked"])
def test_unlock_resets_everything(redis_url: str, failures: int) -> None:
    steps = _locked_three_times() if failures == 18 else _failures(failures)
    # While still locked or blocked, if it is.
    at = (steps[-1][1] if steps else NOW) + timedelta(minutes=30)

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            change = (await _drive(store, [*steps, (U, at)]))[-1]
            assert change.applied and change.after == LockoutState()
            assert await redis.exists(KEY) == 0

    asyncio.run(scenario())


def test_sub_second_now_rounds_the_lock_end_up(redis_url: str) -> None:
    now = NOW + timedelta(microseconds=250_000)
    lifts = NOW + LOCK_DURATION + SECOND

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            for _ in range(FAILURES_TO_LOCK):
                change = await store.record(USER, F, now)
            assert change.after.locked_until == lifts
            # Still locked a moment after the exact hour (never shorter than 60 minutes)...
            assert not (await store.record(USER, F, now + LOCK_DURATION)).applied
            assert not (await store.record(USER, F, lifts - timedelta(microseconds=1))).applied
            # ...and open at the whole second.
            assert (await store.record(USER, F, lifts)).applied

    asyncio.run(scenario())


def test_naive_now_is_refused(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            with pytest.raises(ValueError, match="naive"):
                await RedisLockoutStore(peer(redis)).record(USER, F, NOW.replace(tzinfo=None))

    asyncio.run(scenario())


def test_keys_expire_when_idle_but_never_before_their_lock_lifts(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            await store.record(USER, F, NOW)
            assert (
                timedelta(days=30) - timedelta(seconds=5)
                < timedelta(seconds=await redis.ttl(KEY))
                <= timedelta(days=30)
            )

            short = RedisLockoutStore(peer(redis), prefix="short:", idle_ttl=SECOND)
            real_now = datetime.now(UTC)
            for _ in range(FAILURES_TO_LOCK):
                await short.record("locked01", F, real_now)
            await short.record("idle0001", F, real_now)
            assert await redis.ttl("short:lockout:locked01") >= 3599
            await asyncio.sleep(1.5)
            # Real time has passed: Redis itself removed the idle key; the lock stays.
            assert await redis.exists("short:lockout:idle0001") == 0
            assert await short.state("idle0001") == LockoutState()
            assert (await short.state("locked01")).locks == 1

    asyncio.run(scenario())


def test_script_is_reloaded_after_a_script_flush(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            await store.record(USER, F, NOW)
            await redis.script_flush()
            assert (await store.record(USER, F, NOW)).after.failures == 2

    asyncio.run(scenario())


def test_works_with_a_client_that_does_not_decode(redis_url: str) -> None:
    async def scenario() -> None:
        raw = redis.asyncio.Redis.from_url(redis_url)
        try:
            store = RedisLockoutStore(peer(raw))
            await _drive(store, _failures(6))
        finally:
            await raw.aclose()

    asyncio.run(scenario())


# -- the same random sequences through the pure machine and the store --------------------

# Each drawn step is an event, how many times it repeats (bursts of wrong passwords reach
# locks and blocks often enough), and the seconds before it; successes and unlocks are rarer.
_steps = st.tuples(
    st.sampled_from([F] * 10 + [S, U]),
    st.integers(min_value=1, max_value=6),
    st.one_of(
        st.sampled_from([0, 1, 3599, 3600, 3601]),  # bursts and the edges of the lock
        st.integers(min_value=0, max_value=2 * 3600),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(_steps, max_size=25))
def test_store_follows_the_pure_machine(
    redis_server: str, sequence: list[tuple[Event, int, int]]
) -> None:
    user = f"u{uuid.uuid4().hex[:11]}"  # one fresh ID per example on the shared server
    steps, now = [], NOW
    for event, repeat, seconds in sequence:
        now += timedelta(seconds=seconds)
        steps += [(event, now)] * repeat

    async def scenario() -> None:
        async with client(redis_server) as redis:
            changes = await _drive(RedisLockoutStore(peer(redis), prefix="prop:"), steps, user)
            # Shown by --hypothesis-show-statistics: how often examples reach locks and blocks.
            note_event(f"most locks reached: {max((c.after.locks for c in changes), default=0)}")
            refused = sum(not c.applied for c in changes)
            note_event(f"refused attempts: {refused if refused < 3 else '3 or more'}")

    asyncio.run(scenario())


# -- concurrency (SPEC B7: no lost increments) -------------------------------------------

_SIXTY_AT_ONCE = pure_fold(_failures(60))


def test_sixty_concurrent_failures_over_several_connections(redis_url: str) -> None:
    async def scenario() -> None:
        async with (
            client(redis_url) as a,
            client(redis_url) as b,
            client(redis_url) as c,
            client(redis_url) as d,
        ):
            stores = [RedisLockoutStore(peer(r)) for r in (a, b, c, d)]
            changes = await asyncio.gather(*(stores[i % 4].record(USER, F, NOW) for i in range(60)))
            # Each applied change saw a distinct count: the six were serialised.
            assert sorted(c.before.failures for c in changes if c.applied) == [0, 1, 2, 3, 4, 5]
            assert sum(c.applied for c in changes) == FAILURES_TO_LOCK
            assert await stores[0].state(USER) == _SIXTY_AT_ONCE
            assert LockoutState(locks=1, locked_until=NOW + LOCK_DURATION) == _SIXTY_AT_ONCE
            clients = await a.client_list()
            assert len(clients) > 4  # really several connections, not one queue

    asyncio.run(scenario())


def test_sixty_failures_from_two_processes(redis_url: str) -> None:
    ready, go = f"test:ready:{uuid.uuid4().hex}", f"test:go:{uuid.uuid4().hex}"
    argv = [sys.executable, "-m", "tests.redis._fire", redis_url, USER, NOW.isoformat(), "30"]
    processes = [
        subprocess.Popen([*argv, ready, go], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        with redis.Redis.from_url(redis_url) as sync:
            for _ in processes:  # both connected before either starts
                assert sync.blpop([ready], timeout=20), "a worker process did not start"
            sync.rpush(go, "1", "1")
        outputs = [json.loads(p.communicate(timeout=30)[0]) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0, 0]
    assert sum(o["applied"] for o in outputs) == FAILURES_TO_LOCK
    assert sorted(f for o in outputs for f in o["before"]) == [0, 1, 2, 3, 4, 5]

    async def final_state() -> LockoutState:
        async with client(redis_url) as r:
            return await RedisLockoutStore(peer(r)).state(USER)

    assert asyncio.run(final_state()) == _SIXTY_AT_ONCE


def test_only_the_given_now_decides(redis_url: str) -> None:
    """A lock made "in 2001" is still on at 2001 + 59:59: no clock but ``now`` is read."""

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisLockoutStore(peer(redis))
            past = datetime(2001, 1, 1, tzinfo=UTC)
            for _ in range(FAILURES_TO_LOCK):
                await store.record(USER, F, past)
            assert not (await store.record(USER, F, past + LOCK_DURATION - SECOND)).applied

    asyncio.run(scenario())
