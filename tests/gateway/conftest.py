"""Per test module: an SMTP sink and a whole stack (CA, sample upstream, gateway); per test:
a client of the session's throw-away Redis and the gateway's peer on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from ca_service.shared.redis_peer import RedisPeer
from gateway.errors import RedisUnavailable
from tests.gateway.gateway_stack import GatewayStack, start_gateway_stack
from tests.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def gateway_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, smtp: SmtpSink
) -> Iterator[GatewayStack]:
    stack = start_gateway_stack(tmp_path_factory.mktemp("gw"), redis_server, smtp)
    yield stack
    stack.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def peer(redis: Redis) -> RedisPeer:
    """The gateway's peer on ``redis``: a lost connection is the gateway's RedisUnavailable."""
    return RedisPeer(redis, error=RedisUnavailable)
