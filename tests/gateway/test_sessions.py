"""gateway.sessions against a real (throw-away) Redis: sealed secrets (SPEC C4a), rotation,
idle and absolute expiry, and the cookie's attributes."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from ca_service.shared.clock import SystemClock
from ca_service.shared.redis_peer import RedisPeer
from gateway.sessions import COOKIE_NAME, Session, SessionStore
from tests.clock import FakeClock


async def test_a_sealed_secret_is_readable_only_with_the_cookie_key(
    redis: Redis, peer: RedisPeer
) -> None:
    store = SessionStore(peer, idle=60, absolute=3600, clock=SystemClock())
    session = store.new()
    await store.seal(session, "sealed_password", "Secr3t-Pass!", ttl=30)
    await store.save(session)
    # Redis holds neither the secret nor the key nor the session ID itself.
    stored = b"".join([await redis.get(key) for key in await redis.keys("gw:session:*")])
    assert b"Secr3t" not in stored and session.session_id.encode() not in stored
    assert session.cookie_value().split(".")[1].encode() not in stored
    loaded = await store.load(session.cookie_value())
    assert loaded is not None
    assert store.holds(loaded, "sealed_password") and not store.holds(loaded, "other")
    assert await store.unseal(loaded, "sealed_password") == "Secr3t-Pass!"
    # Another key (a forged or mixed-up cookie) cannot open it.
    forged = Session(session.session_id, bytes(32), loaded.created, loaded.data)
    assert await store.unseal(forged, "sealed_password") is None
    # It expires on its own clock, however long the session lives (C4a: the code's 30 min).
    sealed_key = next(
        k for k in await redis.keys("gw:session:*") if k.endswith(b":sealed_password")
    )
    assert 0 < await redis.pttl(sealed_key) <= 30_000
    # Erased at once, and a stale copy of the session saved later cannot bring it back.
    stale = await store.load(session.cookie_value())
    assert stale is not None
    await store.erase(loaded, "sealed_password")
    assert not store.holds(loaded, "sealed_password")
    await store.save(loaded)
    await store.save(stale)
    assert await store.unseal(stale, "sealed_password") is None


async def test_the_session_data_is_stored_only_encrypted(redis: Redis, peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=60, absolute=3600, clock=SystemClock())
    session = store.new()
    session.data["user_id"] = "ippan0042"
    session.data["flash"] = {"error": "x", "values": {"email": "hanako@example.jp"}}
    assert await store.save(session)
    (key,) = await redis.keys("gw:session:*")
    stored = await redis.get(key)
    assert (
        b"ippan0042" not in stored
        and b"hanako" not in stored
        and session.csrf.encode() not in stored
    )
    loaded = await store.load(session.cookie_value())
    assert loaded is not None and loaded.data == session.data
    # The right ID with another key: no session (not its data under a wrong key).
    assert await store.load(f"{session.session_id}.{'A' * 43}") is None
    # A session saved in the clear by an earlier version is read once, then sealed.
    await redis.set(
        key, json.dumps({"created": session.created, "data": {"user_id": "earlier0001"}})
    )
    earlier = await store.load(session.cookie_value())
    assert earlier is not None and earlier.user_id == "earlier0001"
    assert await store.save(earlier)
    assert b"earlier0001" not in await redis.get(key)


async def test_a_destroyed_session_is_not_written_back(peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=60, absolute=3600, clock=SystemClock())
    session = store.new()
    assert await store.save(session)
    session.fresh = False
    concurrent = await store.load(session.cookie_value())
    assert concurrent is not None
    await store.destroy(session)  # logout
    assert not await store.save(concurrent)  # a request that loaded it before logout
    assert await store.load(session.cookie_value()) is None


async def test_rotation_gives_a_new_id_and_drops_the_old_one(redis: Redis, peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=60, absolute=3600, clock=SystemClock())
    session = store.new()
    session.data["user_id"] = "taro0001"
    await store.save(session)
    await store.seal(session, "sealed_password", "x", ttl=30)
    rotated = await store.rotate(session)
    await store.save(rotated)
    assert await store.unseal(rotated, "sealed_password") is None  # sealed under the old key
    assert await redis.keys("gw:session:*sealed*") == []
    assert rotated.session_id != session.session_id and rotated.csrf != session.csrf
    assert await store.load(session.cookie_value()) is None
    reloaded = await store.load(rotated.cookie_value())
    assert reloaded is not None and reloaded.user_id == "taro0001"


async def test_idle_and_absolute_expiry(redis: Redis, peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=1, absolute=3600, clock=SystemClock())
    session = store.new()
    await store.save(session)
    assert 0 < await redis.ttl(next(iter(await redis.keys("gw:session:*")))) <= 1
    await asyncio.sleep(1.2)
    assert await store.load(session.cookie_value()) is None
    clock = FakeClock()
    old = SessionStore(peer, idle=60, absolute=5, clock=clock)
    session = old.new()
    await old.save(session)
    clock.advance(timedelta(seconds=5))
    assert await old.load(session.cookie_value()) is not None
    clock.advance(timedelta(seconds=0.001))
    assert await old.load(session.cookie_value()) is None


@pytest.mark.parametrize("cookie", [None, "", "nodot", "a.!!!", "a." + "A" * 10, "x" * 300])
async def test_malformed_cookies_are_no_session(peer: RedisPeer, cookie: str | None) -> None:
    assert await SessionStore(peer, idle=60, absolute=60, clock=SystemClock()).load(cookie) is None


async def test_csrf_check_and_cookie_attributes(peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=60, absolute=3600, clock=SystemClock())
    session = store.new()
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok("x")
    # Not ASCII: refused, not a TypeError from hmac.compare_digest (issue 9, item 8).
    assert not session.csrf_ok("トークン") and not session.csrf_ok(session.csrf[:-1] + "é")
    header = store.cookie_header(session)
    assert header.startswith(f"{COOKIE_NAME}={session.cookie_value()};")
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert attribute in header
    assert "Max-Age=0" in store.clearing_cookie_header()
    json.dumps(session.data)  # what is stored is plain JSON


async def test_a_visitor_who_only_looked_is_kept_briefly(redis: Redis, peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=1800, absolute=3600, anonymous_idle=600, clock=SystemClock())
    looked = store.new()
    await store.save(looked)
    working = store.new()
    working.data["auth_user"] = "taro0001"
    await store.save(working)
    ttl = {
        name: await redis.ttl(SessionStore._key(session.session_id))
        for name, session in (("looked", looked), ("working", working))
    }
    assert 590 <= ttl["looked"] <= 600 and 1790 <= ttl["working"] <= 1800


async def test_a_login_counts_only_with_its_own_user_and_certificate(peer: RedisPeer) -> None:
    store = SessionStore(peer, idle=60, absolute=3600, clock=SystemClock())
    session = store.new()
    assert not session.logged_in_with("kaiin01", 0x1234)  # no login yet
    session.data.update({"user_id": "kaiin01", "serial": 0x1234})
    await store.save(session)
    loaded = await store.load(session.cookie_value())  # as Redis gives it back
    assert loaded is not None and loaded.logged_in_with("kaiin01", 0x1234)
    assert not loaded.logged_in_with("kaiin01", 0x1235)  # another certificate of the user
    assert not loaded.logged_in_with("kaiin02", 0x1234)
