"""What every journey of screens shares (``login``, ``registration``, ``enrollment``,
``master``): the visit (request and session), the routes a journey declares, forms checked
against the session's CSRF token, rendering with that token and the session's flash, the
caller's verified certificate, and the CA's refusals in the screens' words.

POST/redirect/GET: every form answers with a redirect (:meth:`Journey.redirect_to`), never a
page, so that a reload repeats a GET and never the form. What the next page must say — the
refusal, the notice, the fields to fill in again — is the session's *flash*: kept in the
session (Redis), shown by the next page the session renders, then gone. A secret the user
must see once (a new user's initial password) is not a flash: it is sealed in the session
under the cookie's key (:meth:`SessionStore.seal`) for ``ONE_TIME_SECONDS`` and shown by a
page of that session only."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ca_service.api import ErrorReason
from ca_service.shared.clock import Clock
from gateway.accounts import Rules
from gateway.ca_client import CaClient, CaRefusal
from gateway.errors import CsrfRejected
from gateway.identity import Identity, Refused
from gateway.server import Request, Response
from gateway.sessions import Session, SessionStore
from gateway.web import messages
from gateway.web.pages import Pages, redirect

__all__ = [
    "ONE_TIME_SECONDS",
    "Identify",
    "Journey",
    "Route",
    "ScreenContext",
    "Visit",
    "behind_form",
    "flash_notice",
]

# How long a one-time result waits for its session: the issued PKCS#12 for its download, a
# new general user's initial password and a reset one for the master user's eyes.
ONE_TIME_SECONDS = 600
_FLASH = "flash"

Identify = Callable[[Request], Awaitable[Identity]]


def flash_notice(session: Session, notice: str) -> None:
    """Makes the next page ``session`` renders say ``notice`` (once)."""
    session.data[_FLASH] = {"notice": notice}


@dataclass(slots=True)
class Visit:
    request: Request
    # Replaced when a handler rotates or destroys the session; the router saves this one.
    session: Session


Handler = Callable[[Visit], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    # The form makes the CA check a password or a code, or send a code: the per-client
    # limit applies (issue 9, item 12).
    limited: bool = False


@dataclass(frozen=True, slots=True)
class ScreenContext:
    """What the screens are built with."""

    ca: CaClient
    sessions: SessionStore
    pages: Pages
    identify: Identify
    rules: Rules
    clock: Clock


class Journey:
    """The screens of one journey; a subclass declares its :meth:`routes`."""

    def __init__(self, context: ScreenContext) -> None:
        self.ca = context.ca
        self.sessions = context.sessions
        self.pages = context.pages
        self.rules = context.rules
        self._identify = context.identify
        self._clock = context.clock

    def routes(self) -> Sequence[Route]:
        raise NotImplementedError

    def now(self) -> float:
        """Now, in seconds since the epoch (what the session stores)."""
        return self._clock.now().timestamp()

    async def form(self, visit: Visit) -> dict[str, str]:
        """The posted form; :class:`CsrfRejected` without the session's token."""
        form = await visit.request.form()
        if not visit.session.csrf_ok(form.get("csrf")):
            raise CsrfRejected("missing or wrong CSRF token")
        return form

    def render(
        self,
        visit: Visit,
        template: str,
        *,
        status: int = 200,
        error: str | None = None,
        notice: str | None = None,
        **context: Any,
    ) -> Response:
        flash = visit.session.data.pop(_FLASH, None)
        if isinstance(flash, str):  # a notice alone
            flash = {"notice": flash}
        if not isinstance(flash, dict):
            flash = {}
        # The fields the refused form had, filled in again.
        context.update(flash.get("values") or {})
        return self.pages.render(
            template,
            status=status,
            csrf=visit.session.csrf,
            logged_in_user=visit.session.user_id,
            error=error or flash.get("error"),
            notice=notice or flash.get("notice"),
            **context,
        )

    def redirect_to(
        self,
        visit: Visit,
        location: str,
        *,
        error: str | None = None,
        notice: str | None = None,
        **values: str,
    ) -> Response:
        """The answer to a form (POST/redirect/GET): 303 to ``location``, whose page then
        shows ``error`` or ``notice`` and fills its fields with ``values`` — once. Never a
        password in ``values``: the flash is not sealed."""
        flash: dict[str, object] = {}
        if error:
            flash["error"] = error
        if notice:
            flash["notice"] = notice
        if values:
            flash["values"] = values
        if flash:
            visit.session.data[_FLASH] = flash
        else:
            visit.session.data.pop(_FLASH, None)
        return redirect(location)

    def error_page(
        self, status: int, text: tuple[str, str], *, back_url: str | None = "/login"
    ) -> Response:
        heading, message = text
        return self.pages.error(status, heading, message, back_url=back_url)

    def says(self, refusal: CaRefusal) -> str:
        """The screen's words for a refusal of the CA."""
        return messages.for_ca_reason(refusal.reason, refusal.metadata, self.rules)

    def says_reason(self, reason: ErrorReason) -> str:
        """The screen's words for a refusal the gateway knows of before asking the CA."""
        return messages.for_ca_reason(reason, {}, self.rules)

    async def identify(self, visit: Visit) -> Identity:
        """The verified caller; raises :class:`Refused`."""
        return await self._identify(visit.request)

    async def certificate(self, visit: Visit) -> Identity | Response:
        """The caller's verified identity, or the page that says why there is none."""
        if visit.request.connection.certificate_der is None:
            return self.render(
                visit,
                "login_menu.html",
                status=403,
                certificate_user=None,
                error=messages.CERTIFICATE_NEEDED,
            )
        try:
            return await self.identify(visit)
        except Refused as refused:
            heading, message = messages.refusal_message(refused.refusal, self.rules)
            status = messages.refusal_status(refused.refusal)
            return self.pages.error(status, heading, message, csrf=visit.session.csrf)


_Screens = TypeVar("_Screens", bound=Journey)
_Granted = TypeVar("_Granted")


def behind_form(
    guard: Callable[[_Screens, Visit], Awaitable[_Granted | Response]],
) -> Callable[
    [Callable[[_Screens, Visit, _Granted, dict[str, str]], Awaitable[Response]]],
    Callable[[_Screens, Visit], Awaitable[Response]],
]:
    """:func:`gateway.server.behind` for a form's POST: the form is read first (its CSRF
    token checked: :class:`CsrfRejected` before anything else is asked), then ``guard``
    runs; the handler gets what it granted and the form."""

    def decorate(
        handler: Callable[[_Screens, Visit, _Granted, dict[str, str]], Awaitable[Response]],
    ) -> Callable[[_Screens, Visit], Awaitable[Response]]:
        @functools.wraps(handler)
        async def guarded(screens: _Screens, visit: Visit) -> Response:
            form = await screens.form(visit)
            granted = await guard(screens, visit)
            if isinstance(granted, Response):
                return granted
            return await handler(screens, visit, granted, form)

        return guarded

    return decorate
