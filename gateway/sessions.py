"""Server-side sessions in Redis (SPEC E4, C4a), shared by every gateway process.

The cookie holds two random values: the session ID and a key. Redis holds the session under
a hash of the ID (a Redis dump does not yield cookies) and never sees the key. Secrets that
must wait in the session — the login password between user authentication and issuance
(C4a), the initial password between the two registration steps — are kept only encrypted
under that key (AES-256-GCM), so neither the server nor Redis alone can read them.

The session's data itself (the logged-in user's ID, the flash with the fields of a refused
form, e-mail addresses among them) is stored encrypted under the same key as well: Redis
holds only the session's creation time in the clear, and a cookie with the right ID but
another key opens nothing.

Each sealed secret is its own Redis key with its own lifetime (the code's 30 minutes for the
password), so it expires on time however long the session lives, and erasing it is a DEL that
no concurrent save of the session can undo.

Sessions expire after ``idle`` without use (the Redis TTL, renewed on each use) and after
``absolute`` in any case. A destroyed session is never written back by a request that loaded
it before (saves of existing sessions use SET XX).

A logged-in session also ends when its user's password changes (:meth:`Session.
ended_by_password_change`): it keeps the CA's ``password_changed_at`` of its login, and a
later one in the user's record (the gateway reads it for every request anyway) ends it. No
index of sessions per user is needed, and a change made anywhere — another gateway, the
operator's ``ca-admin`` — counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ca_service.shared.clock import Clock
from ca_service.shared.redis_peer import RedisPeer

__all__ = ["COOKIE_NAME", "PASSWORD_STAMP", "Session", "SessionStore"]

COOKIE_NAME = "__Host-gw_session"
_PREFIX = "gw:session:"
# The session's key for the user's ``password_changed_at`` (ms) as its login answered it.
PASSWORD_STAMP = "password_changed_ms"  # noqa: S105 (a key name, not a password)


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
        # compare_digest takes str only when it is ASCII; a token is never anything else.
        return token is not None and token.isascii() and hmac.compare_digest(self.csrf, token)

    @property
    def user_id(self) -> str | None:
        value = self.data.get("user_id")
        return str(value) if value else None

    def logged_in_with(self, user_id: str, serial: int) -> bool:
        """The login of ``user_id`` with the certificate ``serial`` (as ログイン records it):
        a session logged in with another certificate, or as another user, is not."""
        return self.user_id == user_id and self.data.get("serial") == serial

    def note_password_change(self, changed_ms: int) -> None:
        """Records the user's ``password_changed_at`` (ms) as the CA answered the login or
        this session's own password change: the session lives on until a later one."""
        self.data[PASSWORD_STAMP] = changed_ms

    def ended_by_password_change(self, changed_ms: int) -> bool:
        """Whether the user's password changed (``changed_ms``, its record's
        ``password_changed_at``) after this session logged in or made its own change. Both
        values are the CA's, so no clock of the gateway's is compared. A record cached from
        before the session's own change holds an earlier value: not an end. A session logged
        in by a gateway that did not record the value holds none: it ends if the CA has
        recorded any change (a new login at most once, around an upgrade)."""
        if self.user_id is None:
            return False
        held = self.data.get(PASSWORD_STAMP, 0)
        return changed_ms > (held if isinstance(held, int) else 0)

    def cookie_value(self) -> str:
        return f"{self.session_id}.{_b64(self.key)}"

    def forget(self, *names: str) -> None:
        for name in names:
            self.data.pop(name, None)


def _aad(session_id: str) -> bytes:
    return f"session:{session_id}".encode()


def _seal_data(session: Session) -> str:
    nonce = secrets.token_bytes(12)
    plain = json.dumps(session.data, separators=(",", ":")).encode()
    return _b64(nonce + AESGCM(session.key).encrypt(nonce, plain, _aad(session.session_id)))


def _open_data(session_id: str, key: bytes, stored: dict[str, Any]) -> dict[str, Any] | None:
    """The session's data; None when ``key`` does not open it (not this session's cookie).
    A session saved in the clear by an earlier version is read once as it is (the next save
    seals it), so that an upgrade logs nobody out."""
    sealed = stored.get("sealed")
    if not isinstance(sealed, str):
        plain = stored.get("data")
        return dict(plain) if isinstance(plain, dict) else None
    try:
        raw = _unb64(sealed)
        data = json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], _aad(session_id)))
    except (ValueError, InvalidTag):
        return None
    return data if isinstance(data, dict) else None


class SessionStore:
    def __init__(
        self,
        redis: RedisPeer,
        *,
        idle: float,
        absolute: float,
        clock: Clock,
        anonymous_idle: float = 600,
    ) -> None:
        # Every command but the creation of a new session (SET NX) may be sent twice.
        self._redis = redis
        self._clock = clock
        self._client = redis.client
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
        key, ttl_ms = self._sealed_key(session, name), int(ttl * 1000)
        await self._redis.call(
            lambda: self._client.set(key, nonce + sealed, px=ttl_ms), idempotent=True
        )
        names = set(session.data.get("sealed", []))
        names.add(name)
        session.data["sealed"] = sorted(names)

    async def unseal(self, session: Session, name: str) -> str | None:
        key = self._sealed_key(session, name)
        raw = await self._redis.call(lambda: self._client.get(key), idempotent=True)
        if not isinstance(raw, bytes):
            return None
        try:
            aad = f"{name}:{session.session_id}".encode()
            return AESGCM(session.key).decrypt(raw[:12], raw[12:], aad).decode()
        except (ValueError, InvalidTag):
            return None

    def holds(self, session: Session, name: str) -> bool:
        """Whether a secret was sealed as ``name`` and not erased (it may have expired since):
        when not, :meth:`unseal` need not ask Redis."""
        return name in session.data.get("sealed", [])

    async def erase(self, session: Session, *names: str) -> None:
        """Erases sealed secrets now."""
        if names:
            keys = [self._sealed_key(session, name) for name in names]
            await self._redis.call(lambda: self._client.delete(*keys), idempotent=True)
        remaining = set(session.data.get("sealed", [])) - set(names)
        session.data["sealed"] = sorted(remaining)

    def new(self) -> Session:
        return Session(
            secrets.token_urlsafe(32),
            secrets.token_bytes(32),
            self._clock.now().timestamp(),
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
        redis_key = self._key(session_id)
        raw = await self._redis.call(lambda: self._client.get(redis_key), idempotent=True)
        if raw is None:
            return None
        stored = json.loads(raw)
        if self._clock.now().timestamp() - float(stored["created"]) > self._absolute:
            await self._redis.call(lambda: self._client.delete(redis_key), idempotent=True)
            return None
        data = _open_data(session_id, key, stored)
        if data is None:
            return None
        return Session(session_id, key, float(stored["created"]), data)

    async def save(self, session: Session) -> bool:
        """Writes the session and renews its idle timeout; False (and nothing written) when
        it was destroyed meanwhile."""
        payload = json.dumps({"created": session.created, "sealed": _seal_data(session)})
        key = self._key(session.session_id)
        idle = int(self._idle if set(session.data) - {"csrf"} else self._anonymous_idle)
        if session.fresh:
            # Not twice: a second SET NX would find the first one's session and say False.
            return bool(
                await self._redis.call(
                    lambda: self._client.set(key, payload, ex=idle, nx=True), idempotent=False
                )
            )
        return bool(
            await self._redis.call(
                lambda: self._client.set(key, payload, ex=idle, xx=True), idempotent=True
            )
        )

    async def touch(self, session: Session) -> None:
        """Renews the idle timeout without rewriting the session."""
        key, idle = self._key(session.session_id), int(self._idle)
        await self._redis.call(lambda: self._client.expire(key, idle), idempotent=True)

    async def destroy(self, session: Session) -> None:
        """Ends the session (logout, rotation); with Sentinel only once a replica has the
        deletion, so that a failover does not bring an ended session back."""
        names = session.data.get("sealed", [])
        keys = [self._key(session.session_id), *(self._sealed_key(session, n) for n in names)]
        await self._redis.write(lambda client: client.delete(*keys), idempotent=True)

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
