"""The admission policy alone: the cap, eviction of the longest-waiting connection, the head
deadline, refusal when everybody is busy (times are passed in; closers are recorded)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ca_service.shared.net.admission import Admission, Slot, connection_cap


class Closed:
    def __init__(self) -> None:
        self.names: list[str] = []

    def closer(self, name: str) -> Callable[[], None]:
        return lambda: self.names.append(name)


def test_cap_leaves_the_reserve_to_everything_else() -> None:
    assert connection_cap(20_000, 10_000, 1024) == 10_000
    assert connection_cap(4096, 10_000, 1024) == 3072
    # A small limit: the reserve takes at most half of it.
    assert connection_cap(1024, 10_000, 1024) == 512
    assert connection_cap(2, 10, 1024) == 1
    with pytest.raises(ValueError):
        connection_cap(0, 10, 10)


def test_a_full_house_evicts_the_connection_waiting_longest() -> None:
    closed = Closed()
    admission = Admission(3, head_timeout=10)
    first = admission.admit(closed.closer("first"), now=0)
    second = admission.admit(closed.closer("second"), now=1)
    third = admission.admit(closed.closer("third"), now=2)
    assert first and second and third and admission.open == 3
    admission.busy(first)  # its request head arrived: never evicted
    fourth = admission.admit(closed.closer("fourth"), now=3)
    assert fourth is not None
    assert closed.names == ["second"] and second.released and admission.open == 3
    admission.release(second)  # the closed connection reports back later: no double count
    assert admission.open == 3
    assert admission.counters.evicted == 1 and admission.counters.admitted == 4


def test_when_everybody_is_busy_the_newcomer_is_refused() -> None:
    closed = Closed()
    admission = Admission(2, head_timeout=10)
    for name in ("a", "b"):
        slot = admission.admit(closed.closer(name), now=0)
        assert slot is not None
        admission.busy(slot)
    assert admission.admit(closed.closer("c"), now=1) is None
    assert closed.names == [] and admission.counters.refused == 1 and admission.open == 2


def test_the_deadline_counts_from_the_accept_whatever_arrives_meanwhile() -> None:
    closed = Closed()
    admission = Admission(10, head_timeout=5)
    slow = admission.admit(closed.closer("slow"), now=0)
    later = admission.admit(closed.closer("later"), now=2)
    assert slow and later
    # Bytes trickling in change nothing: only a complete head (busy) stops the clock.
    assert admission.expire(now=4.9, most=100) == 5
    assert admission.expire(now=5.0, most=100) == 7
    assert closed.names == ["slow"] and admission.counters.expired == 1
    assert admission.expire(now=7.5, most=100) is None
    assert closed.names == ["slow", "later"] and admission.open == 0


def test_keep_alive_restarts_the_clock_at_the_end_of_the_response() -> None:
    closed = Closed()
    admission = Admission(10, head_timeout=5)
    kept = admission.admit(closed.closer("kept"), now=0)
    other = admission.admit(closed.closer("other"), now=1)
    assert kept and other
    admission.busy(kept)
    admission.waiting_again(kept, now=4)
    # "kept" now waits behind "other": it is evicted and expires after it.
    assert admission.expire(now=6, most=100) == 9
    assert closed.names == ["other"]
    admission.release(kept)
    admission.waiting_again(kept, now=8)  # a released slot stays out of the queue
    assert admission.waiting == 0 and admission.open == 0


def test_expiry_closes_at_most_a_batch_per_call() -> None:
    closed = Closed()
    admission = Admission(100, head_timeout=1)
    slots: list[Slot | None] = [
        admission.admit(closed.closer(str(i)), now=i / 100) for i in range(10)
    ]
    assert all(slots)
    following = admission.expire(now=5, most=4)
    assert closed.names == ["0", "1", "2", "3"]
    assert following is not None and following <= 5  # more are due at once
    admission.expire(now=5, most=100)
    assert len(closed.names) == 10 and admission.open == 0
