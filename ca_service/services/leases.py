"""Background duties done by one ca-service process at a time (CRL publishing, the notice
scan), chosen by a lease in the shared store (:class:`ca_service.ports.LeaseStore`).

Each process runs a :class:`DutyLease` per duty: it tries to take the lease, and renews it
every ``ttl / 4`` while it holds it. A holder that dies (SIGKILL, power) stops renewing;
its lease runs out after at most ``ttl`` and the next attempt of another process takes it,
so the duty moves within ``ttl + ttl / 4``. A holder that stops gracefully gives the lease
up at once.

The lease saves work and makes one process the author of every CRL; it is not what keeps
the data right. A holder that stalls past its lease and wakes up beside its successor
still cannot do harm: CRLs are stored by compare-and-set (CRL numbers stay strictly
increasing, nothing is published twice), notices are queued under a unique key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ca_service.errors import Unavailable
from ca_service.ports import Clock, LeaseStore

__all__ = ["DutyLease"]

log = logging.getLogger(__name__)


class DutyLease:
    """Whether this process holds lease ``name``, kept current by :meth:`run`."""

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        holder: str,
        clock: Clock,
        ttl: timedelta,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("the lease time must be positive")
        self.name = name
        self.holder = holder
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._monotonic = monotonic
        self.renew_every = ttl.total_seconds() / 4
        # Until when (monotonic) the last successful acquire holds; 0: not held.
        self._held_until = 0.0
        self._changed = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._monotonic() < self._held_until

    async def try_acquire(self) -> bool:
        """Takes or renews the lease; True while this process holds it.

        When the store does not answer, a lease already held counts until its time runs
        out (nobody else can take it before), then it is lost."""
        was = self.held
        started = self._monotonic()
        try:
            taken = await self._store.acquire(self.name, self.holder, self._clock.now(), self._ttl)
        except Unavailable:
            taken = None  # the outage is logged once, by the store's availability
        except Exception as exc:
            log.warning("renewing the lease %r failed: %s", self.name, type(exc).__name__)
            taken = None
        if taken is True:
            # Measured from before the call: the store's expiry is at least this late.
            self._held_until = started + self._ttl.total_seconds()
        elif taken is False:
            self._held_until = 0.0
        now = self.held
        if now != was:
            log.info("%s the lease %r (%s)", "took" if now else "lost", self.name, self.holder)
            self._changed.set()
        return now

    async def run(self, stop: asyncio.Event) -> None:
        """Keeps trying to take, or renewing, the lease until ``stop``; then gives it up."""
        while not stop.is_set():
            await self.try_acquire()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_every)
        if self._held_until:
            self._held_until = 0.0
            with contextlib.suppress(Exception):
                await self._store.release(self.name, self.holder)
            log.info("released the lease %r", self.name)

    async def every(
        self,
        interval: float,
        stop: asyncio.Event,
        work: Callable[[], Awaitable[object]],
        what: str,
    ) -> None:
        """Runs ``work`` every ``interval`` seconds while this process holds the lease, at
        once when it takes the lease over, until ``stop``. A failure is logged and retried
        at the next interval."""
        last = None
        while not stop.is_set():
            if self.held and (last is None or self._monotonic() - last >= interval):
                last = self._monotonic()
                try:
                    await work()
                except Unavailable:
                    pass  # the outage is logged once, by the peer's availability
                except Exception as exc:
                    log.warning("%s failed: %s", what, type(exc).__name__)
            elif not self.held:
                last = None
            self._changed.clear()
            wait = self.renew_every
            if self.held and last is not None:
                wait = max(0.0, min(wait, interval - (self._monotonic() - last)))
            changed = asyncio.ensure_future(self._changed.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {changed, stopped}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            changed.cancel()
            stopped.cancel()
