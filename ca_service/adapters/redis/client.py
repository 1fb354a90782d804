"""The CA's Redis: the shared peer (:mod:`ca_service.shared.redis_peer`), with replies
decoded to ``str`` and a lost connection raised as the CA's :class:`RedisUnavailable`."""

from __future__ import annotations

import redis.asyncio

from ca_service.errors import RedisUnavailable
from ca_service.shared.redis_peer import RedisPeer, open_peer

__all__ = ["connect", "peer"]


def peer(client: redis.asyncio.Redis) -> RedisPeer:
    """The CA's peer for an open ``client`` (tests, tools)."""
    return RedisPeer(client, error=RedisUnavailable)


def connect(url: str) -> RedisPeer:
    """The CA's peer for ``url`` (``redis://…`` or ``redis+sentinel://…``), with the replica
    acknowledgements a Sentinel URL asks for."""
    return open_peer(url, decode_responses=True, error=RedisUnavailable)
