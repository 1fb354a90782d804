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
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ca_service.shared.clock import Clock
from ca_service.shared.redis_peer import REDIS_DOWN, RedisPeer
from gateway import card_headers, metrics
from gateway.accesslog import access_line
from gateway.accounts import Rules, UserRecord, UserState
from gateway.ca_client import CaClient, CaUnavailable
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
from gateway.server import Request, Response
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
        self._pools: dict[Route, UpstreamPool] = {}
        for route in self._routes.routes:
            pool = pools.get(route.upstream) or (upstream if route.prefix == "/" else None)
            if pool is None:
                raise ValueError(f"no connection pool for the upstream {route.upstream}")
            self._pools[route] = pool
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
        self._resolved: dict[
            tuple[Identity, str, str], tuple[Identity, list[tuple[str, str]], str]
        ] = {}
        self._log_second = -1
        self._log_prefix = ""

    # -- identity -------------------------------------------------------------------------

    async def identify(self, request: Request) -> Identity:
        """The verified caller of this request; raises :class:`Refused`."""
        return (await self._verify(request))[0]

    async def _verify(self, request: Request) -> tuple[Identity, list[tuple[str, str]], UserRecord]:
        """The verified caller, the identity headers it gets upstream and its CA record."""
        der = request.connection.certificate_der
        if der is None:
            raise Refused(Refusal.MALFORMED)
        now = self._clock.now()
        try:
            identity = identify(
                der, issuer_der=self._issuer_der, now=now, revocations=self._revocations
            )
            try:
                user = await self._ca.user(identity.user_id)
            except CaUnavailable:
                raise Refused(Refusal.STALE) from None
            if user is None:
                raise Refused(Refusal.UNKNOWN_USER)
            state = user.state_at(now)
            if state is UserState.BLOCKED:
                raise Refused(Refusal.BLOCKED)
            if state is UserState.LOCKED:
                raise Refused(Refusal.LOCKED)
        except Refused as refused:
            if (
                refused.refusal is Refusal.NOT_OURS
                and self._cards is not None
                and self._cards.issued(der)
            ):
                refused = Refused(Refusal.CARD_ON_USER_ROUTE)
            self.metrics.refused(refused.refusal.name.lower())
            raise refused from None
        key = (identity, user.role, user.organization_id)
        resolved = self._resolved.get(key)
        if resolved is None:
            # Built once per certificate and record, not per request.
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            complete = replace(identity, role=user.role, organization_id=user.organization_id)
            resolved = (
                complete,
                identity_headers(complete, self._xfcc_by, self._header_names),
                f"{identity.serial:x}",
            )
            self._resolved[key] = resolved
        request.log_fields["user_id"] = identity.user_id
        request.log_fields["serial"] = resolved[2]
        return resolved[0], resolved[1], user

    # -- dispatch -------------------------------------------------------------------------

    def error_page(self, status: int, message: str) -> Response:
        """For errors below the handler (malformed requests)."""
        return self._pages.error(status, messages.MALFORMED_REQUEST, message, back_url=None)

    async def handle(self, request: Request) -> Response:
        """Every request. The one place where a peer that cannot answer (Redis for the
        sessions and any other use, the CA) becomes a 503 page, never a 500."""
        try:
            path = request.path
            if path.startswith("/-/"):
                return self._own(request)
            if self.screens.serves(path):
                return await self.screens.handle(request)
            route = self._routes.match(path)
            pool = self._pools[route]
            if route.mode is Mode.USER:
                return await self._protected(request, pool)
            if route.mode is Mode.CARD:
                return await self._card(request, pool)
            return await self._forward(request, pool, ())
        except REDIS_DOWN as exc:  # a use of the client that does not go through RedisPeer
            self._redis.availability.failed(exc)
            return self._unavailable()
        except (RedisUnavailable, CaUnavailable):
            return self._unavailable()

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
        return await self._forward(request, pool, self._card_headers(holder))

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
            upstream_identity = [*upstream_identity, *logout_headers(session)]
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

    async def _forward(
        self, request: Request, pool: UpstreamPool, identity: list[tuple[str, str]] | tuple[()]
    ) -> Response:
        headers = forwarded_headers(
            request,
            strip=self._strip,
            add=identity,
            own_cookies=(COOKIE_NAME,),
        )
        started = time.perf_counter()
        try:
            response = await pool.forward(request, headers)
        except UpstreamError as exc:
            self.metrics.upstream_error(exc.http_status)
            log.warning("upstream: %s", exc)
            status, (heading, text) = (
                (504, messages.UPSTREAM_TIMEOUT)
                if exc.http_status == 504
                else (502, messages.UPSTREAM_UNREACHABLE)
            )
            return self._pages.error(status, heading, text, back_url="/")
        self.metrics.upstream_seconds(time.perf_counter() - started)
        return response

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
