"""The lockout state machine of SPEC B3–B6, as a transition table with no I/O.

State per user ID (known or not, SPEC B9): consecutive wrong passwords, locks so far,
the instant a lock lifts, and whether the ID is blocked. Events:

- ``FAILURE``  a wrong password while the ID may authenticate;
- ``SUCCESS``  a right password while the ID may authenticate;
- ``UNLOCK``   a master user or the operator clears a lock or block.

Attempts while LOCKED or BLOCKED are refused before the password is checked and change
nothing: they are not events. The Redis adapter runs the same table in a Lua script
(``adapters/redis/lockout.py``); tests drive both with the same event sequences.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = [
    "FAILURES_TO_LOCK",
    "LOCKS_TO_BLOCK",
    "LOCK_DURATION",
    "Access",
    "Event",
    "LockoutState",
    "access",
    "transition",
]

# SPEC B3: 6 consecutive wrong passwords lock the ID for 60 minutes.
FAILURES_TO_LOCK = 6
LOCK_DURATION = timedelta(minutes=60)
# SPEC B4: the 3rd lock blocks the ID.
LOCKS_TO_BLOCK = 3


class Access(enum.Enum):
    OPEN = "open"
    LOCKED = "locked"
    BLOCKED = "blocked"


class Event(enum.Enum):
    FAILURE = "failure"
    SUCCESS = "success"
    UNLOCK = "unlock"


@dataclass(frozen=True, slots=True)
class LockoutState:
    failures: int = 0
    locks: int = 0
    locked_until: datetime | None = None
    blocked: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.failures < FAILURES_TO_LOCK:
            raise ValueError(f"failures must be 0-{FAILURES_TO_LOCK - 1}")
        if not 0 <= self.locks <= LOCKS_TO_BLOCK:
            raise ValueError(f"locks must be 0-{LOCKS_TO_BLOCK}")
        if self.blocked != (self.locks == LOCKS_TO_BLOCK):
            raise ValueError("blocked exactly when the lock count reaches the limit")


def access(state: LockoutState, now: datetime) -> Access:
    """Whether the ID may try a password at ``now``."""
    if state.blocked:
        return Access.BLOCKED
    if state.locked_until is not None and now < state.locked_until:
        return Access.LOCKED
    return Access.OPEN


def transition(
    state: LockoutState, event: Event, now: datetime, lock_duration: timedelta = LOCK_DURATION
) -> LockoutState:
    """The state after ``event`` at ``now``; raises ValueError for an illegal move.

    ``lock_duration`` is SPEC B3's 60 minutes; only tests with real short durations set
    another value."""
    if event is Event.UNLOCK:
        # SPEC B4/B6: an unlock clears the lock or block and resets both counts.
        return LockoutState()
    if access(state, now) is not Access.OPEN:
        raise ValueError(f"{event.value} while {access(state, now).value}: refuse the attempt")
    if event is Event.SUCCESS:
        # SPEC B3/B4: success resets the consecutive failures and the lock count.
        return LockoutState()
    failures = state.failures + 1
    if failures < FAILURES_TO_LOCK:
        return replace(state, failures=failures)
    locks = state.locks + 1
    if locks == LOCKS_TO_BLOCK:
        return LockoutState(failures=0, locks=locks, locked_until=None, blocked=True)
    return LockoutState(failures=0, locks=locks, locked_until=now + lock_duration)
