"""Publishing CRLs (SPEC F2; RFC 5280 5): a full CRL and a delta CRL, rebuilt shortly after
each revocation (debounced) and on a schedule that always beats nextUpdate.

Several ca-service processes may run this; before building, each checks whether the stored
CRL is already current, so a revocation normally produces one new pair, and the CRL numbers
stay monotonic whatever happens (one shared counter in the database).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_service.adapters.sql.crls import PublishedCrl, SqlCrlStore
from ca_service.pki.crl import build_crl
from ca_service.pki.signer import Signer
from ca_service.ports import Clock
from ca_service.services.revocation import RevocationFeed

__all__ = ["CrlPolicy", "CrlPublisher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CrlPolicy:
    validity: timedelta = timedelta(hours=24)
    delta_validity: timedelta = timedelta(hours=1)
    # Rebuild at least this often, so that nextUpdate is never reached.
    interval: timedelta = timedelta(minutes=30)
    # After a revocation, wait this long for more before rebuilding.
    debounce: float = 1.0
    freshest_crl_url: str | None = None

    def __post_init__(self) -> None:
        if not self.interval < self.delta_validity <= self.validity:
            raise ValueError("CRLs must be rebuilt before the delta CRL's nextUpdate")


class CrlPublisher:
    def __init__(
        self,
        *,
        store: SqlCrlStore,
        signer: Signer,
        issuer_name: bytes,
        issuer_key_id: bytes,
        clock: Clock,
        policy: CrlPolicy = CrlPolicy(),
    ) -> None:
        self._store = store
        self._signer = signer
        self._issuer_name = issuer_name
        self._issuer_key_id = issuer_key_id
        self._clock = clock
        self._policy = policy
        self.current: dict[str, PublishedCrl] = {}
        self._lock = asyncio.Lock()

    def _needs_full(self, latest_sequence: int, now: datetime) -> bool:
        full = self.current.get("full")
        return (
            full is None
            or now >= full.this_update + self._policy.interval
            or full.through_sequence < latest_sequence
        )

    async def _build(
        self, kind: str, now: datetime, after_sequence: int, base: PublishedCrl | None
    ) -> PublishedCrl:
        entries, through = await self._store.entries(
            after_sequence=after_sequence, not_expired_at=now
        )
        number = await self._store.next_number()
        this_update = now.replace(microsecond=0)
        validity = self._policy.validity if kind == "full" else self._policy.delta_validity
        crl_der = await asyncio.to_thread(
            build_crl,
            self._signer,
            issuer_name=self._issuer_name,
            issuer_key_id=self._issuer_key_id,
            this_update=this_update,
            next_update=this_update + validity,
            crl_number=number,
            entries=entries,
            delta_base=base.number if base else None,
            freshest_crl_url=self._policy.freshest_crl_url if kind == "full" else None,
        )
        published = PublishedCrl(
            kind,
            number,
            base.number if base else None,
            this_update,
            this_update + validity,
            through,
            crl_der,
        )
        await self._store.save(published)
        log.info("published %s CRL number %d with %d entries", kind, number, len(entries))
        return published

    async def refresh(self) -> None:
        """Publishes what is due; otherwise adopts what another process published."""
        async with self._lock:
            stored = await self._store.published()
            self.current.update(stored)
            now = self._clock.now()
            latest = await self._store.latest_sequence()
            if self._needs_full(latest, now):
                full = await self._build("full", now, 0, None)
                self.current["full"] = full
                self.current["delta"] = await self._build("delta", now, full.through_sequence, full)
                return
            full = self.current["full"]
            delta = self.current.get("delta")
            if (
                delta is None
                or delta.base_number != full.number
                or (now >= delta.this_update + self._policy.interval)
            ):
                self.current["delta"] = await self._build("delta", now, full.through_sequence, full)

    async def run(self, stop: asyncio.Event, feed: RevocationFeed) -> None:
        """Keeps the CRLs current until ``stop``."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("CRL publication failed: %s", type(exc).__name__)
            woken = asyncio.ensure_future(feed.wait(60.0))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({woken, stopped}, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            stopped.cancel()
            if not stop.is_set():
                # Debounce (with jitter, so that several processes do not all rebuild).
                await asyncio.sleep(self._policy.debounce * (1 + random.random()))
