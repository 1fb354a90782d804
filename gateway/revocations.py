"""The gateway's view of revoked serials, kept current from the CA's WatchRevocations stream
(SPEC E2): catch-up by sequence after every reconnect, so nothing is missed; fail-closed when
the view cannot be proved fresh (no message — revocation or heartbeat — for longer than
``max_staleness``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from ca_service.api import pb
from ca_service.client import stub

__all__ = ["RevocationFollower"]

log = logging.getLogger(__name__)


class RevocationFollower:
    """A :class:`gateway.identity.RevocationView` fed by one gRPC stream."""

    def __init__(
        self,
        channel_factory: Callable[[], grpc.aio.Channel],
        *,
        max_staleness: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_revocation: Callable[[str], None] | None = None,
    ) -> None:
        self._channel_factory = channel_factory
        self._max_staleness = max_staleness
        self._monotonic = monotonic
        # Told the user ID of each revocation (the identity cache drops that user's record).
        self._on_revocation = on_revocation
        self._revoked: set[int] = set()
        self.last_sequence = 0
        self._last_heard: float | None = None
        self.connected = asyncio.Event()

    # -- RevocationView ------------------------------------------------------------------

    def is_revoked(self, serial: int) -> bool:
        return serial in self._revoked

    def is_fresh(self) -> bool:
        return (
            self._last_heard is not None
            and self._monotonic() - self._last_heard <= self._max_staleness
        )

    def staleness(self) -> float | None:
        """Seconds since the CA last proved the view current (for the health endpoint)."""
        return None if self._last_heard is None else self._monotonic() - self._last_heard

    # -- following the stream ------------------------------------------------------------

    def _apply(self, message: pb.WatchRevocationsResponse) -> None:
        for revocation in message.revocations:
            self._revoked.add(int(revocation.serial_number, 16))
            if self._on_revocation is not None and revocation.user_id:
                self._on_revocation(revocation.user_id)
            self.last_sequence = max(self.last_sequence, revocation.sequence)
        if self.last_sequence >= message.latest_sequence:
            # Only a message that brings us up to the server's latest sequence proves freshness;
            # a catch-up page in the middle of a backlog does not.
            self._last_heard = self._monotonic()
            self.connected.set()

    async def follow_once(self) -> None:
        """One connection: reads until the stream breaks."""
        async with self._channel_factory() as channel:
            stream = stub(channel).WatchRevocations(
                pb.WatchRevocationsRequest(since_sequence=self.last_sequence)
            )
            async for message in stream:
                self._apply(message)

    async def run(self, stop: asyncio.Event, retry_delay: float = 0.5) -> None:
        """Follows until ``stop``, reconnecting after any failure."""
        while not stop.is_set():
            task = asyncio.ensure_future(self.follow_once())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not task.done():
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if stop.is_set():
                    return
            except Exception as exc:
                log.warning(
                    "revocation stream broke (%s); reconnecting from sequence %d",
                    type(exc).__name__,
                    self.last_sequence,
                )
            self.connected.clear()
            if not stop.is_set():
                await asyncio.sleep(retry_delay)
