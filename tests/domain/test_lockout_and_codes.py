"""SPEC B2-B4 as pure rules: the lockout transition table and the code helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service.domain import codes
from ca_service.domain.lockout import (
    LOCK_DURATION,
    Access,
    Event,
    LockoutState,
    access,
    transition,
)

T0 = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def _fail(state: LockoutState, times: int, now: datetime = T0) -> LockoutState:
    for _ in range(times):
        state = transition(state, Event.FAILURE, now)
    return state


def test_sixth_consecutive_failure_locks_for_60_minutes() -> None:
    state = _fail(LockoutState(), 5)
    assert state == LockoutState(failures=5) and access(state, T0) is Access.OPEN
    state = _fail(state, 1)
    assert state == LockoutState(failures=0, locks=1, locked_until=T0 + LOCK_DURATION)
    assert access(state, T0 + LOCK_DURATION - timedelta(seconds=1)) is Access.LOCKED
    assert access(state, T0 + LOCK_DURATION) is Access.OPEN


def test_attempts_while_locked_are_illegal_moves() -> None:
    state = _fail(LockoutState(), 6)
    for event in (Event.FAILURE, Event.SUCCESS):
        with pytest.raises(ValueError, match="locked"):
            transition(state, event, T0 + timedelta(minutes=1))


def test_third_lock_blocks_until_unlocked() -> None:
    state, now = LockoutState(), T0
    for _ in range(3):
        state = _fail(state, 6, now)
        now += LOCK_DURATION
    assert state.blocked and state.locks == 3
    assert access(state, now + timedelta(days=365)) is Access.BLOCKED
    assert transition(state, Event.UNLOCK, now) == LockoutState()


def test_success_resets_failures_and_lock_count() -> None:
    state = _fail(_fail(LockoutState(), 6), 3, T0 + LOCK_DURATION)
    assert (state.locks, state.failures) == (1, 3)
    assert transition(state, Event.SUCCESS, T0 + LOCK_DURATION) == LockoutState()


def test_lock_duration_can_be_shortened_for_tests() -> None:
    state = _fail(LockoutState(failures=5), 0)
    state = transition(state, Event.FAILURE, T0, lock_duration=timedelta(seconds=2))
    assert state.locked_until == T0 + timedelta(seconds=2)


@pytest.mark.parametrize(
    "kwargs",
    [{"failures": 6}, {"locks": 4, "blocked": True}, {"locks": 3}, {"locks": 1, "blocked": True}],
)
def test_impossible_states_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LockoutState(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Event)), st.integers(0, 7200)), max_size=60))
def test_invariants_hold_for_any_sequence(steps: list[tuple[Event, int]]) -> None:
    state, now, consecutive = LockoutState(), T0, 0
    for event, seconds in steps:
        now += timedelta(seconds=seconds)
        try:
            after = transition(state, event, now)
        except ValueError:
            assert access(state, now) is not Access.OPEN and event is not Event.UNLOCK
            continue
        if event is Event.FAILURE:
            consecutive += 1
            assert after.locks == state.locks + (1 if consecutive % 6 == 0 else 0)
        else:
            consecutive = 0
            assert after == LockoutState()
        state = after
        assert state.blocked == (state.locks == 3)


def test_codes_are_six_uniform_digits() -> None:
    assert codes.new_code(lambda bound: 42) == "000042"
    assert codes.new_code(lambda bound: bound - 1) == "999999"
    seen: list[int] = []
    codes.new_code(lambda bound: seen.append(bound) or 0)  # type: ignore[func-returns-value]
    assert seen == [10**6]


@pytest.mark.parametrize("code", ["12345", "1234567", "12345a", "１２３４５６", " 12345", ""])
def test_malformed_codes(code: str) -> None:
    assert codes.code_problem(code) is not None


def test_code_mac_is_bound_to_key_handle_and_code() -> None:
    base = codes.code_mac(b"k" * 32, "handle", "123456")
    assert base == codes.code_mac(b"k" * 32, "handle", "123456")
    assert base != codes.code_mac(b"j" * 32, "handle", "123456")
    assert base != codes.code_mac(b"k" * 32, "handle2", "123456")
    assert base != codes.code_mac(b"k" * 32, "handle", "123457")
    assert "123456" not in base and codes.token_key("handle") != "handle"
