"""Publishing CRLs (SPEC F2; RFC 5280 5): a base (full) CRL on a fixed schedule and a delta
CRL over it after each revocation (debounced) and at least every interval.

Several ca-service processes run this against one store. One of them, the holder of the
CRL lease (``leading``, :mod:`ca_service.services.leases`), publishes: it reads what is
stored, decides what is due (:func:`ca_service.domain.crl_schedule.due`), builds it and
stores it only if nobody published meanwhile (compare-and-set in :class:`SqlCrlStore`, which
keeps the CRLs right even if two processes believe they lead). The others adopt what is
stored: they poll the store, so each serves what the leader published within a poll
interval even when the revocation wake-up (Redis) is lost, and poll faster while a CRL is
owed. Any process publishes the very first CRLs, so that none starts without one.

A base CRL is served before its DER is stored: its numbers are taken from the counter
(committed: a number once served is never taken again), it is built and signed, recorded
(numbers, times, sequence; a short transaction that is also the compare-and-set), served
from this process's memory at once, and its DER (tens of megabytes, seconds on a busy
PostgreSQL) written afterwards in the background, off the writer that issuance and
revocations use. If this process dies before the DER is stored, the
next publisher finds the base recorded without it and publishes a new, complete base with a
higher number, so nothing served is ever contradicted by a CRL of the same number. Other
processes adopt a base once its DER is stored (until then they serve the previous one).
One base is written at a time, which bounds the memory to the CRLs being served and stored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from ca_service.domain.crl_schedule import CrlSchedule, Due, due
from ca_service.domain.records import CrlKind, CrlSnapshot, PublishedCrl
from ca_service.errors import StoreError
from ca_service.pki.crl import build_crl
from ca_service.pki.signer import Signer
from ca_service.ports import Clock, CrlStore, RevocationFeed

__all__ = ["CrlPublisher"]

log = logging.getLogger(__name__)

# Publishing rounds per refresh: each lost race (another process published first) costs one.
_MAX_ROUNDS = 5


class CrlPublisher:
    def __init__(
        self,
        *,
        store: CrlStore,
        signer: Signer,
        issuer_name: bytes,
        issuer_key_id: bytes,
        clock: Clock,
        schedule: CrlSchedule,
        freshest_crl_url: str | None = None,
        poll_interval: float = 1.0,
        debounce: float = 1.0,
        leading: Callable[[], bool] = lambda: True,
        store_at_stop: float = 30.0,
    ) -> None:
        self._store = store
        self._signer = signer
        self._issuer_name = issuer_name
        self._issuer_key_id = issuer_key_id
        self._clock = clock
        self._schedule = schedule
        self._freshest_crl_url = freshest_crl_url
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._leading = leading
        self._store_at_stop = store_at_stop
        # What this process serves: the base CRL and the delta CRL.
        self.current: dict[CrlKind, PublishedCrl] = {}
        self._lock = asyncio.Lock()
        # The base CRL this process serves and is writing to the store, and that write.
        self._storing: tuple[int, asyncio.Task[None]] | None = None

    def _now(self) -> datetime:
        return self._clock.now().replace(microsecond=0)

    async def _sign(
        self,
        *,
        number: int,
        this_update: datetime,
        validity: timedelta,
        entries: list[bytes],
        base_number: int | None,
    ) -> bytes:
        return await asyncio.to_thread(
            build_crl,
            self._signer,
            issuer_name=self._issuer_name,
            issuer_key_id=self._issuer_key_id,
            this_update=this_update,
            next_update=this_update + validity,
            crl_number=number,
            entries=entries,
            delta_base=base_number,
            freshest_crl_url=self._freshest_crl_url if base_number is None else None,
        )

    async def stored(self) -> None:
        """Waits until the base CRL being written (if any) is stored or has failed."""
        if self._storing is not None:
            await asyncio.shield(self._storing[1])

    async def _store_base(self, base: PublishedCrl, started: float) -> None:
        try:
            if await self._store.store_base(base):
                log.info(
                    "stored base CRL number %d (%d bytes) in %.2f s",
                    base.number,
                    len(base.der),
                    time.perf_counter() - started,
                )
            else:
                log.info("base CRL number %d was replaced before it was stored", base.number)
        except Exception as exc:
            # Served but not stored: the next look publishes a new base (crl_schedule.due).
            log.warning("storing base CRL number %d failed: %s", base.number, type(exc).__name__)
        finally:
            self._storing = None

    async def _publish_base(self, snapshot: CrlSnapshot) -> bool:
        started = time.perf_counter()
        now = self._now()
        number = await self._store.next_number(2)
        entries, through = await self._store.entries(after_sequence=0, not_expired_at=now)
        read = time.perf_counter()
        base_der = await self._sign(
            number=number,
            this_update=now,
            validity=self._schedule.validity,
            entries=entries,
            base_number=None,
        )
        # The base's first delta, empty: the delta URL never serves a delta of an older base.
        delta_der = await self._sign(
            number=number + 1,
            this_update=now,
            validity=self._schedule.delta_validity,
            entries=[],
            base_number=number,
        )
        base = PublishedCrl(
            CrlKind.BASE, number, None, now, now + self._schedule.validity, through, base_der
        )
        delta = PublishedCrl(
            CrlKind.DELTA,
            number + 1,
            number,
            now,
            now + self._schedule.delta_validity,
            through,
            delta_der,
        )
        built = time.perf_counter()
        count = len(entries)
        del entries  # the CRL holds them now; not kept twice while it is stored
        # One base written at a time (recording this one replaces the row the previous
        # one is written to): the memory holds at most the CRL served, the one being stored
        # and the one being built, and the writer never waits for the previous write.
        await self.stored()
        if not await self._store.publish_base(base, delta, replacing=snapshot):
            return False
        self.current.update({CrlKind.BASE: base, CrlKind.DELTA: delta})
        served = time.perf_counter()
        self._storing = (number, asyncio.create_task(self._store_base(base, served)))
        log.info(
            "published base CRL number %d with %d entries (%d bytes) in %.2f s: read %.2f s,"
            " built and signed %.2f s, recorded %.2f s; served, its DER being stored",
            number,
            count,
            len(base_der),
            served - started,
            read - started,
            built - read,
            served - built,
        )
        return True

    async def _publish_delta(self, snapshot: CrlSnapshot) -> bool:
        assert snapshot.base is not None
        now = self._now()
        number = await self._store.next_number()
        entries, through = await self._store.entries(
            after_sequence=snapshot.base.through_sequence, not_expired_at=now
        )
        der = await self._sign(
            number=number,
            this_update=now,
            validity=self._schedule.delta_validity,
            entries=entries,
            base_number=snapshot.base.number,
        )
        delta = PublishedCrl(
            CrlKind.DELTA,
            number,
            snapshot.base.number,
            now,
            now + self._schedule.delta_validity,
            through,
            der,
        )
        if not await self._store.publish_delta(delta, replacing=snapshot):
            return False
        self.current[CrlKind.DELTA] = delta
        log.info(
            "published delta CRL number %d over base %d with %d entries",
            number,
            snapshot.base.number,
            len(entries),
        )
        return True

    async def _adopt(self, snapshot: CrlSnapshot) -> None:
        """Serves what is stored when it differs from what this process serves; base and
        delta are switched together, so a request never gets a delta of another base."""
        stale = [
            kind
            for kind, state in ((CrlKind.BASE, snapshot.base), (CrlKind.DELTA, snapshot.delta))
            if state is not None
            and (kind not in self.current or self.current[kind].number != state.number)
        ]
        if not stale:
            return
        stored = await self._store.published()
        if CrlKind.BASE not in stored:
            return  # its DER is not stored yet: the previous base is served until it is
        # Never back to older CRLs (this process may have just published newer ones).
        if not any(
            kind in self.current and crl.number < self.current[kind].number
            for kind, crl in stored.items()
        ):
            self.current.update(stored)

    def _serves_base(self, snapshot: CrlSnapshot) -> bool:
        served = self.current.get(CrlKind.BASE)
        return (
            snapshot.base is not None
            and served is not None
            and served.number == snapshot.base.number
        )

    async def refresh(self) -> Due:
        """Publishes what is due (when leading, or when there is no CRL yet or none this
        process can serve); otherwise adopts what another process published. Returns what
        is still due."""
        async with self._lock:
            for _ in range(_MAX_ROUNDS):
                snapshot = await self._store.snapshot()
                await self._adopt(snapshot)
                what = due(
                    snapshot.base,
                    snapshot.delta,
                    snapshot.latest_sequence,
                    self._clock.now(),
                    self._schedule,
                    storing=None if self._storing is None else self._storing[0],
                )
                if what is Due.NOTHING:
                    return what
                if (
                    snapshot.base is not None
                    and CrlKind.BASE in self.current
                    and not self._leading()
                ):
                    return what  # the leader's duty; this process adopts its CRLs
                if what is Due.DELTA and not self._serves_base(snapshot):
                    # A delta over a base this process does not serve (recorded by another
                    # process, its DER not stored yet): served, it would pair with the wrong
                    # base. Wait for that base's DER, or for it to be abandoned.
                    return what
                if what is Due.BASE:
                    await self._publish_base(snapshot)
                else:
                    await self._publish_delta(snapshot)
                # Published or lost a race: either way, look again (a revocation may have
                # come in while this one was being built).
            log.warning("CRL publication did not settle in %d rounds", _MAX_ROUNDS)
            return Due.NOTHING

    async def run(self, stop: asyncio.Event, feed: RevocationFeed) -> None:
        """Keeps the CRLs current until ``stop``."""
        owed = False
        while not stop.is_set():
            try:
                owed = await self.refresh() is not Due.NOTHING and not self._leading()
            except StoreError:
                pass  # the outage is logged once, by the store's availability
            except Exception as exc:
                log.warning("CRL publication failed: %s", type(exc).__name__)
            # A revocation anywhere wakes this at once (feed); the poll catches a lost
            # wake-up and what other processes published. A process that waits for the
            # leader's CRL looks again soon.
            interval = self._poll_interval / 5 if owed else self._poll_interval
            woken = asyncio.ensure_future(feed.wait(interval))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            stopped.cancel()
            if not stop.is_set() and self._leading():
                # Let a burst of revocations end (and, without a lease, spread the processes
                # woken together so that usually one of them publishes and the others adopt
                # its CRLs).
                await asyncio.sleep(self._debounce * random.random())
        # A base served but not stored yet is stored before the process ends, if the store
        # lets it within ``store_at_stop`` seconds: a stop must not hang on an unreachable
        # database. Left unstored, the base is as if this process had died before storing
        # it: recorded without its DER, it is abandoned and replaced by the next base
        # (crl_schedule.due), and no process ever serves it again.
        try:
            await asyncio.wait_for(self.stored(), self._store_at_stop)
        except TimeoutError:
            if self._storing is not None:
                number, storing = self._storing
                storing.cancel()
                log.warning(
                    "stopping without storing base CRL number %d: the store did not answer"
                    " within %.0f s",
                    number,
                    self._store_at_stop,
                )
