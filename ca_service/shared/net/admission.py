"""Admission of inbound connections: pure policy, no I/O and no clock (times are passed in).

A process holds at most ``capacity`` connections. A connection is *waiting* from its accept
(the TLS handshake included) until its first request head is complete, and again from the end
of each response until the next head is complete (keep-alive). Waiting has one deadline,
``head_timeout`` after it began, however many bytes trickle in meanwhile: a client sending
one byte every few seconds is closed like a silent one.

When the cap is reached, a new connection takes the place of the connection that has been
waiting longest (nginx drains its "reusable" connections the same way), so a flood of slow
connections cannot keep an honest client out; only when every admitted connection is in the
middle of a request is the newcomer refused. Waiting connections are kept in one queue in the
order they began waiting; with one timeout for all, that is also the order of their
deadlines, so expiry and eviction both take from its front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "Counters", "Slot", "connection_cap"]


def connection_cap(descriptor_limit: int, configured: int, reserve: int) -> int:
    """The connections one process may hold: ``configured``, but never so many that fewer
    than ``reserve`` descriptors are left for everything else (gRPC, the SQL store, Redis,
    log files). The reserve takes at most half of a small limit."""
    if descriptor_limit <= 0 or configured <= 0 or reserve < 0:
        raise ValueError("the descriptor limit and the cap must be positive")
    reserve = min(reserve, descriptor_limit // 2)
    return max(1, min(configured, descriptor_limit - reserve))


class Slot:
    """One admitted connection; ``close`` aborts it."""

    __slots__ = ("close", "released", "since")

    def __init__(self, close: Callable[[], None], since: float) -> None:
        self.close = close
        self.since = since
        self.released = False


@dataclass(slots=True)
class Counters:
    """Totals since start; a reader subtracts two readings for a rate."""

    admitted: int = 0
    evicted: int = 0
    refused: int = 0
    expired: int = 0


class Admission:
    def __init__(self, capacity: int, head_timeout: float) -> None:
        if capacity <= 0 or head_timeout <= 0:
            raise ValueError("capacity and head_timeout must be positive")
        self.capacity = capacity
        self.head_timeout = head_timeout
        self.open = 0
        self.counters = Counters()
        # Insertion-ordered: the front has waited longest and has the nearest deadline.
        self._waiting: dict[Slot, None] = {}

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admit(self, close: Callable[[], None], now: float) -> Slot | None:
        """A new connection, waiting for its first request head; None: refuse it (every
        admitted connection is busy with a request)."""
        if self.open >= self.capacity:
            if not self._waiting:
                self.counters.refused += 1
                return None
            self._drop(next(iter(self._waiting)))
            self.counters.evicted += 1
        slot = Slot(close, now)
        self.open += 1
        self.counters.admitted += 1
        self._waiting[slot] = None
        return slot

    def busy(self, slot: Slot) -> None:
        """A request head is complete: no deadline, never evicted, until ``waiting``."""
        self._waiting.pop(slot, None)

    def waiting_again(self, slot: Slot, now: float) -> None:
        """The response was sent on a kept-alive connection: the next head has a deadline."""
        if slot.released:
            return
        self._waiting.pop(slot, None)
        slot.since = now
        self._waiting[slot] = None

    def release(self, slot: Slot) -> None:
        """The connection closed (idempotent; an evicted or expired slot is already free)."""
        if not slot.released:
            slot.released = True
            self.open -= 1
            self._waiting.pop(slot, None)

    def expire(self, now: float, most: int) -> float | None:
        """Closes up to ``most`` connections whose head deadline has passed; returns the next
        deadline (in the past when more are due), or None when nobody waits."""
        deadline = now - self.head_timeout
        due: list[Slot] = []
        for slot in self._waiting:
            if slot.since > deadline or len(due) >= most:
                break
            due.append(slot)
        for slot in due:
            self._drop(slot)
        self.counters.expired += len(due)
        front = next(iter(self._waiting), None)
        return None if front is None else front.since + self.head_timeout

    def _drop(self, slot: Slot) -> None:
        self.release(slot)
        slot.close()
