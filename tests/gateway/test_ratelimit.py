"""gateway.ratelimit against a real (throw-away) redis-server: the bucket's burst and rate,
one count across concurrent clients with their own connections, expiry, the per-client
limit on requests, and failing closed when Redis is gone."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from ca_service.shared.http.parser import Incoming
from ca_service.shared.redis_peer import RedisPeer
from gateway.client_address import parse_networks
from gateway.errors import RateLimited, RedisUnavailable
from gateway.ratelimit import ClientLimit, Rate, TokenBuckets
from gateway.server import Connection, Request


async def test_burst_then_the_rate(redis: Redis, peer: RedisPeer) -> None:
    buckets = TokenBuckets(peer)
    rate = Rate(per_minute=600, burst=3)  # one token every 0.1 s
    assert [await buckets.take("a", rate) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await buckets.take("a", rate)
    assert 0.05 < wait <= 0.1
    assert await buckets.take("b", rate) == 0.0  # another bucket is another client
    await asyncio.sleep(wait + 0.02)
    assert await buckets.take("a", rate) == 0.0
    assert await buckets.take("a", rate) > 0
    # The key lives as long as the bucket needs to refill, and a little more.
    assert 0 < await redis.pttl("gw:ratelimit:a") <= 1300


async def test_concurrent_takes_over_separate_connections_count_once_each(
    redis_url: str,
) -> None:
    rate = Rate(per_minute=1, burst=25)
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    try:
        buckets = [TokenBuckets(RedisPeer(client, error=RedisUnavailable)) for client in clients]
        waits = await asyncio.gather(*(buckets[i % 4].take("c", rate) for i in range(200)))
    finally:
        for client in clients:
            await client.aclose()
    assert waits.count(0.0) == 25
    assert all(55 < wait <= 60 for wait in waits if wait)  # the next token in about 60 s


def _request(peer: str, *forwarded: str) -> Request:
    head = Incoming(
        ("POST", "/enroll/auth", "HTTP/1.1"), [("X-Forwarded-For", f) for f in forwarded]
    )
    return Request(head, Connection(peer, None, None, False))


async def test_client_limit_counts_per_client_and_believes_only_trusted_proxies(
    redis: Redis, peer: RedisPeer
) -> None:
    limit = ClientLimit(
        TokenBuckets(peer),
        "auth",
        Rate(per_minute=1, burst=2),
        parse_networks("10.0.0.5"),
        delay=0,
    )
    for _ in range(2):
        await limit.check(_request("203.0.113.7", "198.51.100.1"))
    with pytest.raises(RateLimited) as refused:
        await limit.check(_request("203.0.113.7", "198.51.100.2"))  # its own XFF: ignored
    assert 59 < refused.value.retry_after <= 60
    # Through the trusted proxy each client has its own bucket.
    for _ in range(2):
        await limit.check(_request("10.0.0.5", "198.51.100.1"))
    with pytest.raises(RateLimited):
        await limit.check(_request("10.0.0.5", "198.51.100.1"))
    await limit.check(_request("10.0.0.5", "198.51.100.2"))
    keys = sorted(k.decode() for k in await redis.keys("gw:ratelimit:*"))
    assert keys == [
        "gw:ratelimit:auth:198.51.100.1",
        "gw:ratelimit:auth:198.51.100.2",
        "gw:ratelimit:auth:203.0.113.7",
    ]


async def test_a_refused_client_is_refused_locally_until_its_next_token(
    redis: Redis, peer: RedisPeer
) -> None:
    limit = ClientLimit(TokenBuckets(peer), "auth", Rate(per_minute=600, burst=1), delay=0)
    await limit.check(_request("203.0.113.9"))
    with pytest.raises(RateLimited):
        await limit.check(_request("203.0.113.9"))
    await redis.delete("gw:ratelimit:auth:203.0.113.9")  # Redis would now say yes ...
    with pytest.raises(RateLimited):
        await limit.check(_request("203.0.113.9"))  # ... but the next token is not due yet
    await asyncio.sleep(0.12)
    await limit.check(_request("203.0.113.9"))


async def test_a_refusal_is_answered_after_the_delay(peer: RedisPeer) -> None:
    limit = ClientLimit(TokenBuckets(peer), "auth", Rate(per_minute=6, burst=1), delay=0.3)
    started = time.monotonic()
    await limit.check(_request("203.0.113.11"))
    assert time.monotonic() - started < 0.2
    for _ in range(2):  # refused by Redis, then from the local note: both after the delay
        started = time.monotonic()
        with pytest.raises(RateLimited) as refused:
            await limit.check(_request("203.0.113.11"))
        assert 0.3 <= time.monotonic() - started < 0.6
        assert 8 < refused.value.retry_after < 10


async def test_without_redis_every_check_fails_closed() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    limit = ClientLimit(
        TokenBuckets(RedisPeer(dead, error=RedisUnavailable)),
        "auth",
        Rate(per_minute=600, burst=100),
    )
    started = time.monotonic()
    try:
        with pytest.raises(RedisUnavailable):
            await limit.check(_request("203.0.113.10"))
    finally:
        await dead.aclose()
    assert time.monotonic() - started < 5
