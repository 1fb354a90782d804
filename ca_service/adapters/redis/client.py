"""The one way this service opens Redis.

Responses are decoded to ``str``: everything the adapters store is text (user IDs, hex
MACs, decimal numbers), and the stores parse replies as such.
"""

from __future__ import annotations

import redis.asyncio

__all__ = ["connect"]


def connect(url: str) -> redis.asyncio.Redis:
    """A client (with its own connection pool) for ``url``, e.g. ``redis://host:6379/0``."""
    return redis.asyncio.Redis.from_url(url, decode_responses=True)
