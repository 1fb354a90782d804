"""The gateway's request handling and wiring (SPEC D2, E1–E4).

Every request has its identity headers (ours and the card's) removed. Then:
- ``/-/static/*``, ``/-/health``, ``/-/metrics``: the gateway's own;
- the screens (``/login``, ``/enroll/*``, ``/register/*``, ``/master/*``, ``/account/*``,
  ``/email/verify``): ``web.screens``;
- anything else goes to its route's upstream (``gateway.routes``, longest prefix), by the
  route's mode:
  - ``user`` (``/`` by default): the client certificate is verified on this request (chain,
    validity, clientAuth, revocation, owner neither locked nor blocked) — also on a resumed
    TLS session, which skips the handshake — then, when login is required, the session must
    belong to the certificate's user and be no older than the user's last password change
    (else it ends); the identity headers go upstream;
  - ``card``: an identity card's certificate is verified (``gateway.card``) and the holder's
    attributes go upstream;
  - ``public``: no identity.
  A logged-in session's upstream requests also carry the logout headers (``web.login``);
  a ``user`` route's GET without a login is redirected to the login with ``?next=`` (the
  page asked for), so that the login returns there.
The TLS layer takes any certificate, so each refusal is a page saying why.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from ca_service.shared.clock import Clock
from ca_service.shared.http.messages import encode_fields
from ca_service.shared.redis_peer import REDIS_DOWN, RedisPeer
from gateway import card_headers, metrics
from gateway.accesslog import access_line
from gateway.accounts import Rules, UserRecord, UserState
from gateway.ca_client import NOT_CACHED, CaClient, CaUnavailable
from gateway.card import CardHolder, CardRevocationView, CardTrust
from gateway.errors import RedisUnavailable, UpstreamError
from gateway.health import CaHealth
from gateway.identity import (
    IDENTITY_HEADERS,
    Identity,
    Refusal,
    Refused,
    RevocationView,
    ascii_header_value,
    identify,
    identity_headers,
)
from gateway.proxy import UpstreamPool, forwarded_headers
from gateway.routes import Mode, Route, RouteTable
from gateway.server import Pending, Request, Response
from gateway.sessions import COOKIE_NAME, Session, SessionStore
from gateway.web import messages
from gateway.web.login import (
    LOGOUT_HEADERS,
    end_after_password_change,
    logout_headers,
    with_next,
)
from gateway.web.pages import Pages, redirect, static_file
from gateway.web.screens import Limit, Screens

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

# The gateway's own cookie: taken out of what the upstream sees.
_OWN_COOKIES = frozenset({COOKIE_NAME})

# Metrics are for the local scraper only (they tell an outsider about traffic and refusals).
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


class FollowedRevocations(RevocationView, Protocol):
    """A revocation view that can say how current it is (for the health endpoint)."""

    last_sequence: int

    def staleness(self) -> float | None: ...

    def source(self) -> str | None: ...


class CardRevocations(CardRevocationView, Protocol):
    """The card CAs' revocation view, with what the health endpoint reports of it."""

    def is_fresh(self) -> bool: ...

    def report(self) -> dict[str, object]: ...


class Gateway:
    def __init__(
        self,
        *,
        ca: CaClient,
        issuer_der: bytes,
        revocations: FollowedRevocations,
        sessions: SessionStore,
        redis: RedisPeer,
        upstream: UpstreamPool,
        pages: Pages,
        rules: Rules,
        clock: Clock,
        require_login: bool = True,
        header_names: dict[str, str] | None = None,
        xfcc_by: str | None = None,
        max_staleness: float = 5.0,
        access_lines: Callable[[str], None] | None = None,
        limit: Limit | None = None,
        ca_health: CaHealth | None = None,
        routes: RouteTable | None = None,
        upstreams: dict[str, UpstreamPool] | None = None,
        cards: CardTrust | None = None,
        card_revocations: CardRevocations | None = None,
        card_header_names: dict[str, str] | None = None,
    ) -> None:
        self._ca = ca
        self._redis = redis
        self._ca_health = ca_health
        self._issuer_der = issuer_der
        self._revocations = revocations
        self._sessions = sessions
        self._upstream = upstream
        self._pages = pages
        self._rules = rules
        self._clock = clock
        self._require_login = require_login
        self._header_names = dict(header_names or {})
        self._xfcc_by = xfcc_by or None
        self._max_staleness = max_staleness
        self._access_lines = access_lines
        self._routes = routes or RouteTable((Route("/", Mode.USER, ""),))
        # Each route's pool: one per upstream URL; "/" falls back to ``upstream``.
        pools = dict(upstreams or {})
        # By prefix: a str hashes in C, a Route (a dataclass holding an enum) in Python.
        self._pools: dict[str, UpstreamPool] = {}
        for route in self._routes.routes:
            pool = pools.get(route.upstream) or (upstream if route.prefix == "/" else None)
            if pool is None:
                raise ValueError(f"no connection pool for the upstream {route.upstream}")
            self._pools[route.prefix] = pool
        self._cards = cards
        self._card_revocations = card_revocations
        self._card_names = {
            "name": card_headers.CARD_NAME,
            "address": card_headers.CARD_ADDRESS,
            "birth_date": card_headers.CARD_BIRTH_DATE,
            "sex": card_headers.CARD_SEX,
            "fingerprint": card_headers.CARD_FINGERPRINT,
            **(card_header_names or {}),
        }
        # The default names and the configured ones, ours and the card's: a client may send
        # any of them, on any route.
        self._strip = (
            frozenset(IDENTITY_HEADERS)
            | frozenset(LOGOUT_HEADERS)
            | {name.strip().lower() for name in self._header_names.values()}
            | {name.lower() for name in card_headers.CARD_HEADERS}
            | {name.strip().lower() for name in self._card_names.values()}
        )
        self.screens = Screens(
            ca=ca,
            sessions=sessions,
            pages=pages,
            identify=self.identify,
            rules=rules,
            clock=clock,
            limit=limit,
        )
        self.metrics = metrics.GatewayMetrics()
        # proxy.Forwarder's: the head of an upstream's answer arrived after so many seconds.
        self.upstream_answered: Callable[[float], None] = self.metrics.upstream_seconds
        # (certificate fingerprint, role, organisation) -> (identity with its record, its
        # upstream fields encoded and checked once, serial in hex). The fingerprint stands
        # for the identity, which would hash in Python.
        self._resolved: dict[tuple[str, str, str], tuple[Identity, bytes, str]] = {}
        self._log_second = -1
        self._log_prefix = ""

    # -- identity -------------------------------------------------------------------------

    async def identify(self, request: Request) -> Identity:
        """The verified caller of this request; raises :class:`Refused`."""
        return (await self._verify(request))[0]

    async def _verify(self, request: Request) -> tuple[Identity, bytes, UserRecord]:
        """The verified caller, the identity headers it gets upstream and its CA record."""
        identity, now = self._certified(request)
        try:
            user = await self._ca.user(identity.user_id)
        except CaUnavailable:
            raise self._counted(None, Refused(Refusal.STALE)) from None
        return self._accepted(request, identity, user, now)

    def _certified(self, request: Request) -> tuple[Identity, datetime]:
        """The identity the request's certificate proves (chain, validity, clientAuth,
        revocation) and the instant it was judged at; raises :class:`Refused`."""
        der = request.connection.certificate_der
        if der is None:
            raise Refused(Refusal.MALFORMED)
        now = self._clock.now()
        try:
            identity = identify(
                der, issuer_der=self._issuer_der, now=now, revocations=self._revocations
            )
        except Refused as refused:
            raise self._counted(der, refused) from None
        return identity, now

    def _accepted(
        self, request: Request, identity: Identity, user: UserRecord | None, now: datetime
    ) -> tuple[Identity, bytes, UserRecord]:
        """The certified identity completed by its owner's record, which must exist and be
        neither locked nor blocked; raises :class:`Refused`."""
        if user is None:
            raise self._counted(None, Refused(Refusal.UNKNOWN_USER))
        state = user.state_at(now)
        if state is UserState.BLOCKED:
            raise self._counted(None, Refused(Refusal.BLOCKED))
        if state is UserState.LOCKED:
            raise self._counted(None, Refused(Refusal.LOCKED))
        key = (identity.fingerprint_sha256, user.role, user.organization_id)
        resolved = self._resolved.get(key)
        if resolved is None:
            # Built once per certificate and record, not per request.
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            complete = replace(identity, role=user.role, organization_id=user.organization_id)
            resolved = (
                complete,
                encode_fields(identity_headers(complete, self._xfcc_by, self._header_names)),
                f"{identity.serial:x}",
            )
            self._resolved[key] = resolved
        fields = request.log_fields
        fields["user_id"] = identity.user_id
        fields["serial"] = resolved[2]
        return resolved[0], resolved[1], user

    def _counted(self, der: bytes | None, refused: Refused) -> Refused:
        """``refused`` as the caller is told (a card's certificate on a user route is named
        as such), counted in the metrics."""
        if (
            refused.refusal is Refusal.NOT_OURS
            and der is not None
            and self._cards is not None
            and self._cards.issued(der)
        ):
            refused = Refused(Refusal.CARD_ON_USER_ROUTE)
        self.metrics.refused(refused.refusal.name.lower())
        return refused

    # -- dispatch -------------------------------------------------------------------------

    def error_page(self, status: int, message: str) -> Response:
        """For errors below the handler (malformed requests)."""
        return self._pages.error(status, messages.MALFORMED_REQUEST, message, back_url=None)

    def handle(self, request: Request) -> Response | Awaitable[Response] | Pending:
        """Every request, dispatched once: the gateway's own endpoints, the screens, or a
        route's upstream. A proxied request without a body that needs nothing waited for is
        answered by :meth:`_at_once`; the rest runs as a coroutine."""
        path = request.path
        if path.startswith("/-/"):
            return self._own(request)
        if self.screens.serves(path):
            return self._unless_unavailable(self.screens.handle(request))
        route = self._routes.match(path)
        if not request.has_body:
            at_once = self._at_once(request, route)
            if at_once is not None:
                return at_once
        return self._unless_unavailable(self._proxied(request, route))

    def _at_once(
        self, request: Request, route: Route
    ) -> Response | Awaitable[Response] | Pending | None:
        """A proxied request verified and sent upstream from this call when nothing has to
        be awaited for it (no login session to load, the user's record cached), its answer
        given from the upstream connection's callback (no task); None otherwise."""
        identity: bytes
        if route.mode is Mode.USER:
            if self._require_login or request.connection.certificate_der is None:
                return None
            try:
                certified, now = self._certified(request)
                user = self._ca.cached_user(certified.user_id)
                if user is NOT_CACHED:
                    return None
                identity = self._accepted(request, certified, user, now)[1]
            except Refused as refused:
                return self._refusal_page(refused)
        elif route.mode is Mode.PUBLIC:
            identity = b""
        else:
            return None
        pool = self._pools[route.prefix]
        headers = forwarded_headers(
            request, strip=self._strip, add=identity, own_cookies=_OWN_COOKIES
        )
        return pool.forward_at_once(request, headers, self) or self._sent(request, pool, headers)

    async def _unless_unavailable(self, answer: Awaitable[Response]) -> Response:
        """``answer``, awaited. The one place where a peer that cannot answer (Redis for the
        sessions and any other use, the CA) becomes a 503 page, never a 500."""
        try:
            return await answer
        except REDIS_DOWN as exc:  # a use of the client that does not go through RedisPeer
            self._redis.availability.failed(exc)
            return self._unavailable()
        except (RedisUnavailable, CaUnavailable):
            return self._unavailable()

    async def _proxied(self, request: Request, route: Route) -> Response:
        pool = self._pools[route.prefix]
        if route.mode is Mode.USER:
            return await self._protected(request, pool)
        if route.mode is Mode.CARD:
            return await self._card(request, pool)
        return await self._forward(request, pool, b"")

    def _unavailable(self) -> Response:
        heading, text = messages.UNAVAILABLE
        response = self._pages.error(503, heading, text)
        response.headers.append(("Retry-After", "5"))
        return response

    def _own(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/-/static/"):
            found = static_file(path.removeprefix("/-/static/"))
            if found is not None:
                return found
        elif path == "/-/health":
            return self.health()
        elif path == "/-/metrics" and request.connection.client_address in _LOOPBACK:
            return Response(
                200,
                [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                self.metrics.render(self._revocations, self._upstream).encode(),
            )
        heading, text = messages.NOT_FOUND
        return self._pages.error(404, heading, text)

    def health(self) -> Response:
        """200 "ok"; 503 "stale" while the revocation view is not known to be current
        (protected requests are refused), else 503 "unavailable" while the CA is not serving
        (its store or Redis is down) or the gateway's Redis does not answer, else 200
        "degraded" while a card CA's CRL is not current (card routes are refused)."""
        fresh = self._revocations.is_fresh()
        staleness = self._revocations.staleness()
        redis = self._redis.availability.report()
        ca_serving = self._ca_health is None or self._ca_health.serving
        body: dict[str, object] = {
            "status": "ok",
            "revocations": {
                "fresh": fresh,
                "seconds_since_confirmed": staleness,
                "max_staleness_seconds": self._max_staleness,
                "last_sequence": self._revocations.last_sequence,
                "source": self._revocations.source(),
            },
            "redis": redis.as_dict(),
            "pid": os.getpid(),
        }
        if self._ca_health is not None:
            body["ca"] = self._ca_health.report()
        card_fresh = True
        if self._card_revocations is not None:
            body["card_revocations"] = self._card_revocations.report()
            card_fresh = self._card_revocations.is_fresh()
        if not fresh:
            body["status"] = "stale"
            body["detail"] = (
                "the revocation view is not known to be current; protected requests are refused"
            )
        elif not ca_serving or not redis.available:
            body["status"] = "unavailable"
            body["detail"] = "; ".join(
                cause
                for cause, down in (
                    ("the CA is not serving (its database or Redis is down)", not ca_serving),
                    ("Redis does not answer (sessions)", not redis.available),
                )
                if down
            )
        elif not card_fresh:
            # Only the card routes are refused (503 pages): the instance still serves the
            # rest, so it stays in service (200) and says what is wrong.
            body["status"] = "degraded"
            body["detail"] = "an identity card CA's CRL is not current; card routes are refused"
        healthy = body["status"] in ("ok", "degraded")
        return Response(
            200 if healthy else 503,
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            json.dumps(body).encode(),
        )

    def _refusal_page(self, refused: Refused) -> Response:
        heading, text = messages.refusal_message(refused.refusal, self._rules)
        status = messages.refusal_status(refused.refusal)
        response = self._pages.error(status, heading, text)
        if status == 503:  # revocation status unknown for now: worth trying again
            response.headers.append(("Retry-After", "5"))
        return response

    async def _card(self, request: Request, pool: UpstreamPool) -> Response:
        der = request.connection.certificate_der
        try:
            if der is None:
                raise Refused(Refusal.CARD_NEEDED)
            if self._cards is None or self._card_revocations is None:
                raise Refused(Refusal.NOT_A_CARD)  # no card CA configured
            holder = self._cards.verify(
                der, now=self._clock.now(), revocations=self._card_revocations
            )
        except Refused as refused:
            self.metrics.refused(refused.refusal.name.lower())
            return self._refusal_page(refused)
        request.log_fields["serial"] = f"{holder.serial:x}"  # no personal data in the log
        return await self._forward(request, pool, encode_fields(self._card_headers(holder)))

    def _card_headers(self, holder: CardHolder) -> list[tuple[str, str]]:
        names = self._card_names
        headers = [
            (names[attribute], ascii_header_value(value))
            for attribute, value in holder.attributes().items()
        ]
        headers.append((names["fingerprint"], holder.fingerprint_sha256))
        return headers

    async def _protected(self, request: Request, pool: UpstreamPool) -> Response:
        if request.connection.certificate_der is None:
            if request.method in ("GET", "HEAD"):
                return redirect(with_next("/login", request.target))
            return self._pages.error(401, messages.LOGIN_NEEDED, messages.CERTIFICATE_LOGIN_NEEDED)
        try:
            identity, upstream_identity, user = await self._verify(request)
        except Refused as refused:
            return self._refusal_page(refused)
        if self._require_login:
            session = await self._sessions.load(request.cookies().get(COOKIE_NAME))
            if session is None or not session.logged_in_with(identity.user_id, identity.serial):
                if request.method in ("GET", "HEAD"):
                    return redirect(with_next("/login/password", request.target))
                return self._pages.error(401, messages.LOGIN_NEEDED, messages.LOGIN_EXPIRED)
            if session.ended_by_password_change(user.password_changed_ms):
                return await self._ended(request, session, user.password_changed_ms)
            await self._sessions.touch(session)  # renews the idle timeout
            upstream_identity += encode_fields(logout_headers(session))
        return await self._forward(request, pool, upstream_identity)

    async def _ended(self, request: Request, session: Session, changed_ms: int) -> Response:
        """A session logged in before its user's password changed: ended; a GET goes to the
        login (with ``next``), whose form says why."""
        renewed = await end_after_password_change(self._sessions, session, changed_ms)
        if request.method not in ("GET", "HEAD"):
            return self._pages.error(
                401, messages.LOGIN_NEEDED, messages.PASSWORD_CHANGED_LOGGED_OUT
            )
        await self._sessions.save(renewed)
        response = redirect(with_next("/login/password", request.target))
        response.headers.append(("Set-Cookie", self._sessions.cookie_header(renewed)))
        return response

    async def _forward(self, request: Request, pool: UpstreamPool, identity: bytes) -> Response:
        headers = forwarded_headers(
            request, strip=self._strip, add=identity, own_cookies=_OWN_COOKIES
        )
        return await self._sent(request, pool, headers)

    async def _sent(self, request: Request, pool: UpstreamPool, headers: bytes) -> Response:
        started = time.perf_counter()
        try:
            response = await pool.forward(request, headers)
        except UpstreamError as exc:
            return self.upstream_failed(exc)
        self.upstream_answered(time.perf_counter() - started)
        return response

    # -- what the upstream pool reports (proxy.Forwarder) ---------------------------------

    def upstream_failed(self, error: UpstreamError) -> Response:
        self.metrics.upstream_error(error.http_status)
        log.warning("upstream: %s", error)
        status, (heading, text) = (
            (504, messages.UPSTREAM_TIMEOUT)
            if error.http_status == 504
            else (502, messages.UPSTREAM_UNREACHABLE)
        )
        return self._pages.error(status, heading, text, back_url="/")

    def forward_again(
        self, pool: UpstreamPool, request: Request, headers: bytes
    ) -> Awaitable[Response]:
        return self._sent(request, pool, headers)

    # -- access log -----------------------------------------------------------------------

    def log_access(self, request: Request, status: int, sent: int, seconds: float) -> None:
        self.metrics.request(status, seconds)
        if self._access_lines is None:
            return
        now = self._clock.now().timestamp()
        second = int(now)
        if second != self._log_second:
            self._log_second = second
            self._log_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        connection = request.connection
        fields = request.log_fields
        self._access_lines(
            access_line(
                f"{self._log_prefix}.{int((now - second) * 1000):03d}Z",
                connection.client_address,
                request.method,
                # The query string may carry anything; the path is enough for the log.
                request.path,
                status,
                sent,
                round(seconds * 1000, 2),
                connection.tls_version,
                connection.resumed,
                fields.get("user_id"),
                fields.get("serial"),
            )
        )
