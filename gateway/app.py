"""The gateway's request handling and wiring (SPEC E1–E4).

Every request has its identity headers removed. Then:
- ``/-/static/*``, ``/-/health``, ``/-/metrics``: the gateway's own;
- the screens (``/login``, ``/enroll/*``, ``/register/*``, ``/master/*``): ``web.screens``;
- anything else is protected: the client certificate is verified on this request (chain,
  validity, clientAuth, revocation, owner neither locked nor blocked) — also on a resumed
  TLS session, which skips the handshake's checks — then, when login is required, the
  session must belong to the certificate's user; then the request goes upstream with the
  identity headers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from gateway import metrics
from gateway.ca_client import CaClient, CaUnavailable
from gateway.errors import UpstreamError
from gateway.identity import (
    IDENTITY_HEADERS,
    Identity,
    Refusal,
    Refused,
    RevocationView,
    identify,
    identity_headers,
)
from gateway.proxy import UpstreamPool, forwarded_headers
from gateway.server import Request, Response
from gateway.sessions import COOKIE_NAME, SessionStore
from gateway.web import messages
from gateway.web.pages import Pages, redirect, static_file
from gateway.web.screens import Screens

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

# Metrics are for the local scraper only (they tell an outsider about traffic and refusals).
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


class FollowedRevocations(RevocationView, Protocol):
    """A revocation view that can say how current it is (for the health endpoint)."""

    last_sequence: int

    def staleness(self) -> float | None: ...

    def source(self) -> str | None: ...


class Gateway:
    def __init__(
        self,
        *,
        ca: CaClient,
        issuer_der: bytes,
        revocations: FollowedRevocations,
        sessions: SessionStore,
        upstream: UpstreamPool,
        pages: Pages,
        require_login: bool = True,
        header_names: dict[str, str] | None = None,
        xfcc_by: str | None = None,
        max_staleness: float = 5.0,
        access_lines: Callable[[str], None] | None = None,
    ) -> None:
        self._ca = ca
        self._issuer_der = issuer_der
        self._revocations = revocations
        self._sessions = sessions
        self._upstream = upstream
        self._pages = pages
        self._require_login = require_login
        self._header_names = dict(header_names or {})
        self._xfcc_by = xfcc_by or None
        self._max_staleness = max_staleness
        self._access_lines = access_lines
        # The default names and the configured ones: a client may send either.
        self._strip = frozenset(IDENTITY_HEADERS) | {
            name.strip().lower() for name in self._header_names.values()
        }
        self.screens = Screens(ca=ca, sessions=sessions, pages=pages, identify=self.identify)
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

    async def _verify(self, request: Request) -> tuple[Identity, list[tuple[str, str]]]:
        """The verified caller and the identity headers it gets upstream."""
        der = request.connection.certificate_der
        if der is None:
            raise Refused(Refusal.MALFORMED)
        now = datetime.now(UTC)
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
            if user.state == "blocked":
                raise Refused(Refusal.BLOCKED)
            if user.state == "locked" and (user.locked_until is None or user.locked_until > now):
                raise Refused(Refusal.LOCKED)
        except Refused as refused:
            self.metrics.refused(refused.refusal.name.lower())
            raise
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
        return resolved[0], resolved[1]

    # -- dispatch -------------------------------------------------------------------------

    def error_page(self, status: int, message: str) -> Response:
        """For errors below the handler (malformed requests)."""
        return self._pages.error(status, "リクエストを処理できません", message, back_url=None)

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/-/"):
            return self._own(request)
        if self.screens.serves(path):
            return await self.screens.handle(request)
        return await self._protected(request)

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
        return self._pages.error(404, "ページが見つかりません", "指定されたページはありません。")

    def health(self) -> Response:
        fresh = self._revocations.is_fresh()
        staleness = self._revocations.staleness()
        body = {
            "status": "ok" if fresh else "stale",
            "revocations": {
                "fresh": fresh,
                "seconds_since_confirmed": staleness,
                "max_staleness_seconds": self._max_staleness,
                "last_sequence": self._revocations.last_sequence,
                "source": self._revocations.source(),
            },
            "pid": os.getpid(),
        }
        if not fresh:
            body["detail"] = (
                "the revocation view is not known to be current; protected requests are refused"
            )
        return Response(
            200 if fresh else 503,
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            json.dumps(body).encode(),
        )

    async def _protected(self, request: Request) -> Response:
        if request.connection.certificate_der is None:
            if request.method in ("GET", "HEAD"):
                return redirect("/login")
            return self._pages.error(
                401, "ログインしてください", "この操作には電子証明書によるログインが必要です。"
            )
        try:
            identity, upstream_identity = await self._verify(request)
        except Refused as refused:
            heading, text = messages.refusal_message(refused.refusal)
            response = self._pages.error(
                403 if refused.refusal is not Refusal.STALE else 503, heading, text
            )
            return response
        if self._require_login:
            session = await self._sessions.load(request.cookies().get(COOKIE_NAME))
            if (
                session is None
                or session.user_id != identity.user_id
                or session.data.get("serial") != identity.serial
            ):
                if request.method in ("GET", "HEAD"):
                    return redirect("/login/password?next=" + quote(request.target, safe="/"))
                return self._pages.error(
                    401, "ログインしてください", "ログインの有効期限が切れました。"
                )
            await self._sessions.touch(session)  # renews the idle timeout
        headers = forwarded_headers(
            request,
            strip=self._strip,
            add=upstream_identity,
        )
        started = time.perf_counter()
        try:
            response = await self._upstream.forward(request, headers)
        except UpstreamError as exc:
            self.metrics.upstream_error(exc.http_status)
            log.warning("upstream: %s", exc)
            if exc.http_status == 504:
                return self._pages.error(
                    504,
                    "応答がありません",
                    "業務システムからの応答が時間内にありませんでした。しばらくしてからもう一度"
                    "お試しください。",
                    back_url="/",
                )
            return self._pages.error(
                502,
                "業務システムに接続できません",
                "業務システムに接続できませんでした。しばらくしてからもう一度お試しください。",
                back_url="/",
            )
        self.metrics.upstream_seconds(time.perf_counter() - started)
        return response

    # -- access log -----------------------------------------------------------------------

    def log_access(self, request: Request, status: int, sent: int, seconds: float) -> None:
        self.metrics.request(status, seconds)
        if self._access_lines is None:
            return
        now = time.time()
        second = int(now)
        if second != self._log_second:
            self._log_second = second
            self._log_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        connection = request.connection
        entry = {
            "ts": f"{self._log_prefix}.{int((now - second) * 1000):03d}Z",
            "client": connection.client_address,
            "method": request.method,
            # The query string may carry anything; the path is enough for the log.
            "path": request.path,
            "status": status,
            "bytes": sent,
            "ms": round(seconds * 1000, 2),
            "tls": connection.tls_version,
            "resumed": connection.resumed,
            "user_id": request.log_fields.get("user_id"),
            "serial": request.log_fields.get("serial"),
        }
        self._access_lines(json.dumps(entry, ensure_ascii=False))
