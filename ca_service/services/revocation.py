"""Revocation (SPEC C6, F1) and the feed that tells every watcher about it within a second.

The database sequence is the truth. Redis pub/sub (or this process's own revocations) only
wakes watchers early; a watcher also re-reads the database every ``poll_interval`` so a lost
wake-up costs at most that long, never a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from ca_service.domain.records import RevocationRecord
from ca_service.errors import ErrorReason, InvalidArgument
from ca_service.pki.crl import Reason
from ca_service.ports import Clock, RevocationFeed, RevocationStore

__all__ = ["RevocationService", "WatchBatch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchBatch:
    revocations: list[RevocationRecord]
    latest_sequence: int
    as_of: datetime
    # Users whose lock state changed meanwhile (gateways drop their cached records).
    changed_users: tuple[str, ...] = ()


class RevocationService:
    def __init__(
        self,
        *,
        store: RevocationStore,
        feed: RevocationFeed,
        clock: Clock,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._feed = feed
        self._clock = clock
        self._poll_interval = poll_interval
        self._heartbeat_interval = heartbeat_interval

    async def revoke(
        self,
        *,
        serial: int | None,
        user_id: str | None,
        reason_name: str,
        invalidity_date: datetime | None,
        actor: str,
    ) -> list[RevocationRecord]:
        try:
            reason = Reason.from_name(reason_name) if reason_name else Reason.UNSPECIFIED
        except ValueError as exc:
            raise InvalidArgument(
                str(exc), reason=ErrorReason.INVALID_REASON, metadata={"field": "reason"}
            ) from None
        if reason is Reason.REMOVE_FROM_CRL:
            raise InvalidArgument(
                "removeFromCRL is only for delta CRLs, not a revocation",
                reason=ErrorReason.INVALID_REASON,
                metadata={"field": "reason"},
            )
        now = self._clock.now()
        if invalidity_date is not None:
            # CRL and OCSP times carry whole seconds.
            invalidity_date = invalidity_date.replace(microsecond=0)
        if invalidity_date is not None and invalidity_date > now:
            raise InvalidArgument(
                "the invalidity date cannot be in the future", metadata={"field": "invalidity_date"}
            )
        records = await self._store.revoke(
            serial=serial,
            user_id=user_id,
            reason=reason,
            invalidity_date=invalidity_date,
            actor=actor,
            now=now,
        )
        for record in records:
            log.info(
                "revoked serial=%s user=%s reason=%s sequence=%d",
                record.serial_hex,
                record.user_id,
                record.reason.name,
                record.sequence,
            )
        await self._feed.publish(records[-1].sequence)
        return records

    async def watch(self, since_sequence: int) -> AsyncIterator[WatchBatch]:
        """Everything after ``since_sequence`` in order, then new revocations as they come;
        an empty batch at least every ``heartbeat_interval`` proves freshness."""
        if since_sequence < 0:
            raise InvalidArgument(
                "since_sequence must not be negative", metadata={"field": "since_sequence"}
            )
        last = since_sequence
        loop = asyncio.get_running_loop()
        last_sent = float("-inf")
        with self._feed.user_changes() as changed:
            while True:
                batch = await self._store.since(last)
                now_monotonic = loop.time()
                if batch:
                    last = batch[-1].sequence
                users = tuple(sorted(changed))
                changed.clear()
                if batch or users or now_monotonic - last_sent >= self._heartbeat_interval:
                    latest = max(last, await self._store.latest_sequence())
                    yield WatchBatch(batch, latest, self._clock.now(), users)
                    last_sent = now_monotonic
                if len(batch) >= 1000:
                    continue  # catching up: no waiting between pages
                await self._feed.wait(min(self._poll_interval, self._heartbeat_interval))
