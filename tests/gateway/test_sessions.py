"""gateway.sessions against a real (throw-away) Redis: sealed secrets (SPEC C4a), rotation,
idle and absolute expiry, and the cookie's attributes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.sessions import COOKIE_NAME, Session, SessionStore


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_sealed_secret_is_readable_only_with_the_cookie_key(redis: Redis) -> None:
    store = SessionStore(redis, idle=60, absolute=3600)
    session = store.new()
    session.seal("sealed_password", "Secr3t-Pass!")
    await store.save(session)
    # Redis holds neither the secret nor the key nor the session ID itself.
    (key,) = await redis.keys("gw:session:*")
    stored = (await redis.get(key)).decode()
    assert "Secr3t" not in stored and session.session_id not in stored
    assert session.cookie_value().split(".")[1] not in stored
    loaded = await store.load(session.cookie_value())
    assert loaded is not None and loaded.unseal("sealed_password") == "Secr3t-Pass!"
    # Another key (a forged or mixed-up cookie) cannot open it.
    forged = Session(session.session_id, bytes(32), loaded.created, loaded.data)
    assert forged.unseal("sealed_password") is None
    # A sealed value cannot be moved to another field name.
    loaded.data["sealed_other"] = loaded.data["sealed_password"]
    assert loaded.unseal("sealed_other") is None


async def test_rotation_gives_a_new_id_and_drops_the_old_one(redis: Redis) -> None:
    store = SessionStore(redis, idle=60, absolute=3600)
    session = store.new()
    session.data["user_id"] = "taro0001"
    await store.save(session)
    rotated = await store.rotate(session)
    await store.save(rotated)
    assert rotated.session_id != session.session_id and rotated.csrf != session.csrf
    assert await store.load(session.cookie_value()) is None
    reloaded = await store.load(rotated.cookie_value())
    assert reloaded is not None and reloaded.user_id == "taro0001"


async def test_idle_and_absolute_expiry(redis: Redis) -> None:
    store = SessionStore(redis, idle=1, absolute=3600)
    session = store.new()
    await store.save(session)
    assert 0 < await redis.ttl(next(iter(await redis.keys("gw:session:*")))) <= 1
    await asyncio.sleep(1.2)
    assert await store.load(session.cookie_value()) is None
    old = SessionStore(redis, idle=60, absolute=5)
    session = old.new()
    session.created -= 10
    await old.save(session)
    assert await old.load(session.cookie_value()) is None


@pytest.mark.parametrize("cookie", [None, "", "nodot", "a.!!!", "a." + "A" * 10, "x" * 300])
async def test_malformed_cookies_are_no_session(redis: Redis, cookie: str | None) -> None:
    assert await SessionStore(redis, idle=60, absolute=60).load(cookie) is None


async def test_csrf_check_and_cookie_attributes(redis: Redis) -> None:
    store = SessionStore(redis, idle=60, absolute=3600)
    session = store.new()
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok("x")
    header = store.cookie_header(session)
    assert header.startswith(f"{COOKIE_NAME}={session.cookie_value()};")
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert attribute in header
    assert "Max-Age=0" in store.clearing_cookie_header()
    json.dumps(session.data)  # what is stored is plain JSON
