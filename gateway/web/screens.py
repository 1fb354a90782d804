"""The end-user screens of seed 000 (SPEC E4, A4, A5, B1–B8, C4, C4a) and the portal login,
one module per journey: ``login``, ``registration``, ``enrollment``, ``master``, ``email``,
``account`` (パスワード変更; what they share is in ``base``). This router finds the route,
applies the per-client limit to the forms that check a password or a code, loads and saves the
session, and turns what stops a handler (a form without the session's CSRF token, a busy or
unavailable CA) into a page.

Every POST carries the session's CSRF token and is answered with a redirect (POST/redirect/
GET, ``base``); the pages say the CA's refusals in Japanese (``messages``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from ca_service.shared.clock import Clock
from gateway.accounts import Rules
from gateway.ca_client import CaBusy, CaClient, CaUnavailable
from gateway.errors import CsrfRejected, RateLimited
from gateway.server import Request, Response
from gateway.sessions import COOKIE_NAME, SessionStore
from gateway.web import messages
from gateway.web.account import AccountScreens
from gateway.web.base import Identify, Route, ScreenContext, Visit
from gateway.web.email import EmailScreens
from gateway.web.enrollment import EnrollmentScreens
from gateway.web.login import LoginScreens, end_after_password_change, local_path, with_next
from gateway.web.master import MasterScreens
from gateway.web.pages import Pages, redirect
from gateway.web.registration import RegistrationScreens

__all__ = ["Limit", "Screens"]

log = logging.getLogger(__name__)

# Takes one password or code check from the client's allowance; raises RateLimited.
Limit = Callable[[Request], Awaitable[None]]


class Screens:
    def __init__(
        self,
        *,
        ca: CaClient,
        sessions: SessionStore,
        pages: Pages,
        identify: Identify,
        rules: Rules,
        clock: Clock,
        limit: Limit | None = None,
    ) -> None:
        context = ScreenContext(ca, sessions, pages, identify, rules, clock)
        journeys = (
            LoginScreens(context),
            RegistrationScreens(context),
            EnrollmentScreens(context),
            MasterScreens(context),
            EmailScreens(context),
            AccountScreens(context),
        )
        self._routes: dict[tuple[str, str], Route] = {}
        for journey in journeys:
            for route in journey.routes():
                key = (route.method, route.path)
                if key in self._routes:
                    raise ValueError(f"two routes for {route.method} {route.path}")
                self._routes[key] = route
        self._paths = frozenset(path for _, path in self._routes)
        self._ca = ca
        self._sessions = sessions
        self._pages = pages
        self._limit = limit

    def serves(self, path: str) -> bool:
        return path in self._paths

    def limited(self) -> frozenset[tuple[str, str]]:
        """(method, path) of the forms the per-client limit applies to."""
        return frozenset(key for key, route in self._routes.items() if route.limited)

    async def handle(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        route = self._routes.get((method, request.path))
        if route is None:
            allowed = sorted({m for m, p in self._routes if p == request.path})
            heading, text = messages.NOT_ALLOWED
            response = self._pages.error(405, heading, text)
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        if self._limit is not None and route.limited:
            try:
                # Before the session is even loaded: a refused request costs one Redis call.
                await self._limit(request)
            except RateLimited as limited:
                return self._wait_page(
                    429,
                    messages.rate_limited_message,
                    limited.retry_after,
                    self._form_page(request),
                )
        cookie = request.cookies().get(COOKIE_NAME)
        session = await self._sessions.load(cookie) or self._sessions.new()
        visit = Visit(request, session)
        try:
            response = await self._ended(visit, method) or await route.handler(visit)
        except CsrfRejected:
            heading, text = messages.CSRF_EXPIRED
            response = self._pages.error(403, heading, text, back_url=self._form_page(request))
        except CaBusy as busy:
            response = self._wait_page(
                503, messages.busy_message, busy.retry_after, self._form_page(request)
            )
        except CaUnavailable:
            # Not a line per request: the CA's health changes are logged once (gateway.health).
            log.debug("the CA is unavailable for %s %s", method, request.path)
            heading, text = messages.CA_UNAVAILABLE
            response = self._pages.error(503, heading, text)
        await self._sessions.save(visit.session)
        if visit.session.fresh:
            response.headers.append(("Set-Cookie", self._sessions.cookie_header(visit.session)))
        return response

    async def _ended(self, visit: Visit, method: str) -> Response | None:
        """For a session logged in before its user's password changed: ends it and answers
        with the login menu, which says why (after a GET, with ``next`` the page asked
        for). The user's record is the one protected requests use (cached for
        GATEWAY_USER_CACHE_SECONDS, dropped when the CA announces the change)."""
        session = visit.session
        if session.user_id is None:
            return None
        user = await self._ca.user(session.user_id)
        if user is None or not session.ended_by_password_change(user.password_changed_ms):
            return None
        visit.session = await end_after_password_change(
            self._sessions, session, user.password_changed_ms
        )
        target = visit.request.target
        if method != "GET" or visit.request.path.startswith("/login"):
            return redirect("/login")
        return redirect(with_next("/login", target))

    def _form_page(self, request: Request) -> str:
        """The page of the form that was posted (its query keeps a deep link's ``next``),
        else the login menu."""
        if ("GET", request.path) in self._routes:
            return local_path(request.target) or "/login"
        return "/login"

    def _wait_page(
        self,
        status: int,
        message: Callable[[int], tuple[str, str]],
        retry_after: float,
        back_url: str,
    ) -> Response:
        """A page asking to come back in ``retry_after`` seconds (also in Retry-After), with
        a way back to the form (every limited POST has its form at the same path, whose
        query keeps a deep link's ``next``)."""
        seconds = max(1, math.ceil(retry_after))
        heading, text = message(seconds)
        response = self._pages.error(status, heading, text, back_url=back_url)
        response.headers.append(("Retry-After", str(seconds)))
        return response
