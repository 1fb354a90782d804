"""Runs an ``Admission`` on the event loop: one timer for the nearest head deadline (not one
per connection), a log line when the cap is reached, and freed memory handed back to the
system once a flood of connections has drained."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from ca_service.shared.net import resources
from ca_service.shared.net.admission import Admission, Counters, Slot, connection_cap
from ca_service.shared.net.resources import raise_descriptor_limit

__all__ = ["ConnectionGuard", "process_guard"]

log = logging.getLogger(__name__)

_LOG_INTERVAL = 10.0
# Connections aborted per loop turn at the deadline, so that a thousand slow connections
# opened in the same second do not stall everybody else when they expire together.
_EXPIRE_BATCH = 256


class ConnectionGuard:
    def __init__(
        self,
        admission: Admission,
        *,
        name: str,
        release_memory: Callable[[bool], object] | None = None,
        flood: int = 256,
        churn: int = 16_384,
        settle: float = 1.0,
    ) -> None:
        """``release_memory`` (e.g. ``resources.return_freed_memory``) is called once after
        a flood: when at least ``flood`` fewer connections are open than at the peak since
        the last call, or ``churn`` connections have closed since then, and their number has
        stopped falling for ``settle`` seconds. Its argument says whether a full garbage
        collection is cheap enough: no more than ``flood`` connections are left."""
        self.admission = admission
        # A request head is complete: no deadline, never evicted, until ``waiting``.
        self.busy: Callable[[Slot], None] = admission.busy
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._logged = Counters()
        self._logged_at = -_LOG_INTERVAL
        self._release_memory = release_memory
        self._flood = flood
        self._churn = churn
        self._settle = settle
        self._settling: asyncio.TimerHandle | None = None
        self._peak = 0
        self._closed_mark = 0  # connections closed before the last release
        self._last_open = 0

    def _now(self) -> float:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def admit(self, close: Callable[[], None]) -> Slot | None:
        """At accept: a slot, or None when the connection must be refused (closed at once)."""
        now = self._now()
        admission = self.admission
        before = admission.counters.evicted
        slot = admission.admit(close, now)
        if slot is None or admission.counters.evicted != before:
            self._report(now)
        if slot is not None:
            self._peak = max(self._peak, admission.open)
            if self._timer is None:
                self._arm(slot.since + admission.head_timeout)
        return slot

    def waiting(self, slot: Slot) -> None:
        self.admission.waiting_again(slot, self._now())
        if self._timer is None and not slot.released:
            self._arm(slot.since + self.admission.head_timeout)

    def release(self, slot: Slot) -> None:
        if not slot.released:
            self.admission.release(slot)
            self._drained()

    def close(self) -> None:
        for handle in (self._timer, self._settling):
            if handle is not None:
                handle.cancel()
        self._timer = self._settling = None

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        before = self.admission.open
        following = self.admission.expire(self._now(), _EXPIRE_BATCH)
        if following is not None:
            self._arm(following)
        if self.admission.open != before:
            self._drained()

    def _report(self, now: float) -> None:
        if now - self._logged_at < _LOG_INTERVAL:
            return
        counters, last = self.admission.counters, self._logged
        log.warning(
            "%s: connection cap reached (%d open, cap %d); since the last report %d waiting "
            "connections evicted, %d refused, %d closed at the head deadline",
            self._name,
            self.admission.open,
            self.admission.capacity,
            counters.evicted - last.evicted,
            counters.refused - last.refused,
            counters.expired - last.expired,
        )
        self._logged = dataclasses.replace(counters)
        self._logged_at = now

    def _drained(self) -> None:
        if self._release_memory is None or self._settling is not None:
            return
        admission = self.admission
        closed = admission.counters.admitted - admission.open
        if self._peak - admission.open >= self._flood or closed - self._closed_mark >= self._churn:
            self._last_open = self.admission.open
            assert self._loop is not None
            self._settling = self._loop.call_later(self._settle, self._settled)

    def _settled(self) -> None:
        """Waits until the flood has drained (fewer than 1/16 of the connections seen a
        second ago have gone), then hands the memory back once."""
        assert self._loop is not None and self._release_memory is not None
        now_open = self.admission.open
        if self._last_open - now_open > max(16, self._last_open // 16):
            self._last_open = now_open
            self._settling = self._loop.call_later(self._settle, self._settled)
            return
        self._settling = None
        self._release_memory(now_open <= self._flood)
        self._peak = now_open
        self._closed_mark = self.admission.counters.admitted - now_open


def process_guard(
    name: str,
    *,
    max_connections: int,
    reserve: int,
    head_timeout: float,
    release_memory: bool = False,
) -> ConnectionGuard:
    """The guard of a server process's listening port: the open-file limit raised to its
    hard limit, the cap derived from it, and (``release_memory``) freed memory handed back
    to the system after floods."""
    descriptors = raise_descriptor_limit()
    cap = connection_cap(descriptors, max_connections, reserve)
    log.info(
        "%s: up to %d connections (open-file limit %d: %d descriptors left for everything "
        "else); request heads due within %g s",
        name,
        cap,
        descriptors,
        descriptors - cap,
        head_timeout,
    )
    return ConnectionGuard(
        Admission(cap, head_timeout),
        name=name,
        release_memory=resources.return_freed_memory if release_memory else None,
    )
