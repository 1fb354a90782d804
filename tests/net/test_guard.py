"""ConnectionGuard on a real event loop: one timer ends connections at the head deadline and
memory is handed back once after a flood has drained (eviction and refusal on real sockets:
tests/net/test_tls_admission.py and test_ca_http_admission.py)."""

from __future__ import annotations

import asyncio

from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard


async def test_waiting_connections_end_at_the_deadline_busy_ones_do_not() -> None:
    closed: list[str] = []
    guard = ConnectionGuard(Admission(10, head_timeout=0.2), name="test")
    first, second, third = (guard.admit(lambda name=name: closed.append(name)) for name in "abc")
    assert first and second and third
    guard.busy(second)
    await asyncio.sleep(0.1)
    assert closed == []
    await asyncio.sleep(0.25)
    assert closed == ["a", "c"] and guard.admission.open == 1
    guard.waiting(second)  # kept alive: a new deadline
    await asyncio.sleep(0.3)
    assert closed == ["a", "c", "b"] and guard.admission.open == 0
    guard.close()


async def test_memory_is_handed_back_once_after_a_flood_has_drained() -> None:
    calls: list[bool] = []
    guard = ConnectionGuard(
        Admission(1000, head_timeout=60),
        name="test",
        release_memory=calls.append,
        flood=50,
        churn=100,
        settle=0.05,
    )
    slots = [guard.admit(lambda: None) for _ in range(200)]
    for index, slot in enumerate(slots):
        assert slot is not None
        guard.release(slot)
        if index % 20 == 0:
            await asyncio.sleep(0.01)  # a drain over some time, not all at once
    await asyncio.sleep(0.3)
    assert calls == [True]  # once, with a garbage collection: few connections are left
    for _ in range(30):  # ordinary coming and going is no flood
        slot = guard.admit(lambda: None)
        assert slot is not None
        guard.release(slot)
    await asyncio.sleep(0.2)
    assert calls == [True]
    for _ in range(80):  # but many of them are: 100 closed since the last release
        slot = guard.admit(lambda: None)
        assert slot is not None
        guard.release(slot)
    await asyncio.sleep(0.2)
    assert calls == [True, True]
    guard.close()
