"""The gateway's view of revoked serials, kept current from the CA's WatchRevocations stream
(SPEC E2): catch-up by sequence after every reconnect, so nothing is missed; the CA's CRL as
the fallback while the stream is down (``gateway.crl_fallback``); fail-closed when neither
has proved the view fresh for longer than ``max_staleness``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc

from ca_service.api import pb
from ca_service.client import stub
from ca_service.shared.availability import Availability
from gateway.crl_fallback import CrlSource

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
        forget_user: Callable[[str], None] | None = None,
        crl: CrlSource | None = None,
        crl_interval: float = 1.0,
    ) -> None:
        self._channel_factory = channel_factory
        self._max_staleness = max_staleness
        self._monotonic = monotonic
        # Told the user ID of each revocation and of each user whose lock state changed:
        # the identity cache drops that user's record.
        self._forget_user = forget_user
        self._crl = crl
        self._crl_interval = crl_interval
        self._crl_heard: float | None = None
        self._revoked: set[int] = set()
        self.last_sequence = 0
        self._last_heard: float | None = None
        self.connected = asyncio.Event()
        self._stream = Availability("the CA's revocation stream")

    # -- RevocationView ------------------------------------------------------------------

    def is_revoked(self, serial: int) -> bool:
        return serial in self._revoked

    def is_fresh(self) -> bool:
        staleness = self.staleness()
        return staleness is not None and staleness <= self._max_staleness

    def staleness(self) -> float | None:
        """Seconds since the CA last proved the view current, by the stream or the CRL (for
        the health endpoint, and for every protected request)."""
        heard, crl = self._last_heard, self._crl_heard
        if heard is None or (crl is not None and crl > heard):
            heard = crl
        return None if heard is None else self._monotonic() - heard

    def source(self) -> str | None:
        """Which source proved the view current last: "stream" or "crl"."""
        if self._last_heard is None and self._crl_heard is None:
            return None
        if self._crl_heard is not None and (
            self._last_heard is None or self._crl_heard > self._last_heard
        ):
            return "crl"
        return "stream"

    # -- following the stream ------------------------------------------------------------

    def _apply(self, message: pb.WatchRevocationsResponse) -> None:
        for revocation in message.revocations:
            self._revoked.add(int(revocation.serial_number, 16))
            if self._forget_user is not None and revocation.user_id:
                self._forget_user(revocation.user_id)
            self.last_sequence = max(self.last_sequence, revocation.sequence)
        if self._forget_user is not None:
            for user_id in message.changed_user_ids:
                self._forget_user(user_id)
        if self.last_sequence >= message.latest_sequence:
            # Only a message that brings us up to the server's latest sequence proves freshness;
            # a catch-up page in the middle of a backlog does not.
            self._last_heard = self._monotonic()
            self.connected.set()
            self._stream.succeeded()

    async def follow_once(self) -> None:
        """One connection: reads until the stream breaks."""
        async with self._channel_factory() as channel:
            stream = stub(channel).WatchRevocations(
                pb.WatchRevocationsRequest(since_sequence=self.last_sequence)
            )
            async for message in stream:
                self._apply(message)

    async def _poll_crl(self, stop: asyncio.Event) -> None:
        """While the stream has not proved the view for a poll interval, reads the CRL."""
        assert self._crl is not None
        while not stop.is_set():
            heard = self._last_heard
            if heard is None or self._monotonic() - heard > self._crl_interval:
                fetched = await self._crl.fetch()
                if fetched is not None:
                    if fetched.serials is not None:
                        self._revoked |= fetched.serials
                    self._crl_heard = self._monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._crl_interval)

    async def run(self, stop: asyncio.Event, retry_delay: float = 0.5) -> None:
        """Follows until ``stop``, reconnecting after any failure."""
        polling = asyncio.ensure_future(self._poll_crl(stop)) if self._crl else None
        try:
            await self._follow(stop, retry_delay)
        finally:
            if polling is not None:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling

    async def _follow(self, stop: asyncio.Event, retry_delay: float) -> None:
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
                # Logged once per outage (the availability), not at every retry.
                if isinstance(exc, grpc.aio.AioRpcError):
                    self._stream.failed(f"{exc.code().name}: {exc.details()}")
                else:
                    self._stream.failed(exc)
                log.debug("revocation stream broke; reconnecting from %d", self.last_sequence)
            self.connected.clear()
            if not stop.is_set():
                await asyncio.sleep(retry_delay)
