"""Server-side sessions in Redis (SPEC E4, C4a), shared by every gateway process.

The cookie holds two random values: the session ID and a key. Redis holds the session under
a hash of the ID (a Redis dump does not yield cookies) and never sees the key. Secrets that
must wait in the session — the login password between user authentication and issuance
(C4a), the initial password between the two registration steps — are kept only encrypted
under that key (AES-256-GCM), so neither the server nor Redis alone can read them.

Each sealed secret is its own Redis key with its own lifetime (the code's 30 minutes for the
password), so it expires on time however long the session lives, and erasing it is a DEL that
no concurrent save of the session can undo.

Sessions expire after ``idle`` without use (the Redis TTL, renewed on each use) and after
``absolute`` in any case. A destroyed session is never written back by a request that loaded
it before (saves of existing sessions use SET XX).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

__all__ = ["COOKIE_NAME", "Session", "SessionStore"]

COOKIE_NAME = "__Host-gw_session"
_PREFIX = "gw:session:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(slots=True)
class Session:
    session_id: str
    key: bytes
    created: float
    data: dict[str, Any] = field(default_factory=dict)
    # The cookie must be (re)sent: a new session, or a new ID after login.
    fresh: bool = False

    @property
    def csrf(self) -> str:
        return str(self.data["csrf"])

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, token or "")

    @property
    def user_id(self) -> str | None:
        value = self.data.get("user_id")
        return str(value) if value else None

    def cookie_value(self) -> str:
        return f"{self.session_id}.{_b64(self.key)}"

    def forget(self, *names: str) -> None:
        for name in names:
            self.data.pop(name, None)


class SessionStore:
    def __init__(
        self, redis: Redis, *, idle: float, absolute: float, anonymous_idle: float = 600
    ) -> None:
        self._redis = redis
        self._idle = idle
        self._absolute = absolute
        # A session that holds nothing but its CSRF token (a visitor who only looked at a
        # page) is kept for less time: anyone can make those by the thousand.
        self._anonymous_idle = min(anonymous_idle, idle)

    @staticmethod
    def _key(session_id: str) -> str:
        return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()

    def _sealed_key(self, session: Session, name: str) -> str:
        return f"{self._key(session.session_id)}:{name}"

    async def seal(self, session: Session, name: str, secret: str, ttl: float) -> None:
        """Keeps ``secret`` for at most ``ttl`` seconds, encrypted under the cookie's key."""
        nonce = secrets.token_bytes(12)
        aad = f"{name}:{session.session_id}".encode()
        sealed = AESGCM(session.key).encrypt(nonce, secret.encode(), aad)
        await self._redis.set(self._sealed_key(session, name), nonce + sealed, px=int(ttl * 1000))
        names = set(session.data.get("sealed", []))
        names.add(name)
        session.data["sealed"] = sorted(names)

    async def unseal(self, session: Session, name: str) -> str | None:
        raw = await self._redis.get(self._sealed_key(session, name))
        if not isinstance(raw, bytes):
            return None
        try:
            aad = f"{name}:{session.session_id}".encode()
            return AESGCM(session.key).decrypt(raw[:12], raw[12:], aad).decode()
        except (ValueError, InvalidTag):
            return None

    async def erase(self, session: Session, *names: str) -> None:
        """Erases sealed secrets now."""
        if names:
            await self._redis.delete(*(self._sealed_key(session, name) for name in names))
        remaining = set(session.data.get("sealed", [])) - set(names)
        session.data["sealed"] = sorted(remaining)

    def new(self) -> Session:
        return Session(
            secrets.token_urlsafe(32),
            secrets.token_bytes(32),
            time.time(),
            {"csrf": secrets.token_urlsafe(32)},
            fresh=True,
        )

    async def load(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie or len(cookie) > 200:
            return None
        session_id, _, key_text = cookie.partition(".")
        try:
            key = _unb64(key_text)
        except ValueError:
            return None
        if len(key) != 32:
            return None
        raw = await self._redis.get(self._key(session_id))
        if raw is None:
            return None
        stored = json.loads(raw)
        if time.time() - float(stored["created"]) > self._absolute:
            await self._redis.delete(self._key(session_id))
            return None
        return Session(session_id, key, float(stored["created"]), dict(stored["data"]))

    async def save(self, session: Session) -> bool:
        """Writes the session and renews its idle timeout; False (and nothing written) when
        it was destroyed meanwhile."""
        payload = json.dumps({"created": session.created, "data": session.data})
        key = self._key(session.session_id)
        idle = int(self._idle if set(session.data) - {"csrf"} else self._anonymous_idle)
        if session.fresh:
            return bool(await self._redis.set(key, payload, ex=idle, nx=True))
        return bool(await self._redis.set(key, payload, ex=idle, xx=True))

    async def touch(self, session: Session) -> None:
        """Renews the idle timeout without rewriting the session."""
        await self._redis.expire(self._key(session.session_id), int(self._idle))

    async def destroy(self, session: Session) -> None:
        names = session.data.get("sealed", [])
        await self._redis.delete(
            self._key(session.session_id), *(self._sealed_key(session, n) for n in names)
        )

    async def rotate(self, session: Session) -> Session:
        """The same session under a new ID and key (no session fixation at login or
        authentication). Sealed secrets do not survive: they were sealed under the old key."""
        await self.destroy(session)
        renewed = self.new()
        renewed.data.update({k: v for k, v in session.data.items() if k not in ("csrf", "sealed")})
        return renewed

    def cookie_header(self, session: Session) -> str:
        return (
            f"{COOKIE_NAME}={session.cookie_value()}; Path=/; Secure; HttpOnly; SameSite=Lax; "
            f"Max-Age={int(self._absolute)}"
        )

    @staticmethod
    def clearing_cookie_header() -> str:
        return f"{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
