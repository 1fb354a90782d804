"""The revocation feed (:class:`ca_service.ports.RevocationFeed`) over Redis pub/sub.

Every process subscribes to one channel: ``<sequence>`` says a revocation may have happened,
``user:<ID>`` that a user's lock state changed. The database sequence stays the truth, so a
lost message costs the watchers a poll interval, never a gap; without Redis (``None``) the
feed wakes only this process's watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.exceptions import TimeoutError as RedisTimeoutError

from ca_service.errors import RedisUnavailable
from ca_service.shared.redis_peer import REDIS_DOWN, RedisPeer

__all__ = ["RedisRevocationFeed"]

log = logging.getLogger(__name__)

_USER_CHANGE = "user:"


class RedisRevocationFeed:
    """Wakes watchers when a revocation may have happened anywhere, and tells them which
    users' lock state changed (messages ``user:<ID>`` on the same channel)."""

    def __init__(self, redis: RedisPeer | None, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._changed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._user_watchers: list[set[str]] = []

    def start(self) -> None:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.client.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._redis.availability.succeeded()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message.get("data")
                            text = data.decode() if isinstance(data, bytes) else str(data)
                            if text.startswith(_USER_CHANGE):
                                self._deliver(text.removeprefix(_USER_CHANGE))
                            else:
                                self.poke()
            except asyncio.CancelledError:
                raise
            except RedisTimeoutError:
                # Older redis-py apply the socket timeout to a subscriber's wait too.
                continue
            except REDIS_DOWN as exc:
                # Watchers still poll the database; retry the subscription shortly. The
                # outage is logged once (availability), not once a second.
                self._redis.availability.failed(exc)
                await asyncio.sleep(1)
            except Exception as exc:
                log.warning("revocation wake-up channel failed: %s", type(exc).__name__)
                await asyncio.sleep(1)

    def poke(self) -> None:
        self._changed.set()
        # Each waiter sees the event; clear on the next loop turn so late waiters wait.
        asyncio.get_running_loop().call_soon(self._changed.clear)

    async def _publish(self, message: str) -> None:
        """Wakes the other processes; a duplicate wake-up is harmless, a lost one costs a
        poll interval, so an outage is no error here (and is logged once, by Redis'
        availability)."""
        if self._redis is not None:
            peer = self._redis
            try:
                await peer.call(
                    lambda: peer.client.publish(self._channel, message), idempotent=True
                )
            except RedisUnavailable:
                pass
            except Exception as exc:
                log.warning("cannot publish on the revocation channel: %s", type(exc).__name__)

    async def publish(self, sequence: int) -> None:
        self.poke()
        await self._publish(str(sequence))

    def _deliver(self, user_id: str) -> None:
        for changed in self._user_watchers:
            changed.add(user_id)
        self.poke()

    async def publish_user_change(self, user_id: str) -> None:
        self._deliver(user_id)
        await self._publish(_USER_CHANGE + user_id)

    @contextlib.contextmanager
    def user_changes(self) -> Iterator[set[str]]:
        """A set that collects the user IDs changed while the block runs."""
        changed: set[str] = set()
        self._user_watchers.append(changed)
        try:
            yield changed
        finally:
            self._user_watchers.remove(changed)

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
