"""ログイン (SPEC E4): the login menu, the password login of the certificate's user, logout.

A login needs both the client certificate and its user's password; the session then names
the user and the certificate's serial, and protected requests must present that
certificate.

Deep links: a protected page asked for without a login leads here with ``?next=`` (the
page's path and query), which the menu's ログイン button, a refused password and the CSRF
page's way back all keep; the login then returns there. Only a path on this site is ever
followed (:func:`local_path`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from urllib.parse import quote

from gateway.ca_client import CaRefusal
from gateway.identity import Identity, Refused
from gateway.server import Response, behind
from gateway.sessions import Session, SessionStore
from gateway.web import messages
from gateway.web.base import Journey, Route, Visit, behind_form, flash_notice
from gateway.web.pages import redirect

__all__ = [
    "CSRF_TOKEN_HEADER",
    "LOGOUT_HEADERS",
    "LOGOUT_URL_HEADER",
    "LoginScreens",
    "end_after_password_change",
    "local_path",
    "logout_headers",
    "with_next",
]

log = logging.getLogger(__name__)

# What a portal needs to offer ログアウト (a form that POSTs the session's CSRF token to the
# logout URL): sent upstream with every request of a logged-in session, removed from what
# clients send. The token gives the portal nothing it lacks: its pages share the gateway's
# origin and could read any gateway form.
LOGOUT_URL_HEADER = "x-gateway-logout-url"
CSRF_TOKEN_HEADER = "x-gateway-csrf-token"  # noqa: S105 - a header name
LOGOUT_HEADERS = (LOGOUT_URL_HEADER, CSRF_TOKEN_HEADER)
_LOGOUT_PATH = "/logout"


def logout_headers(session: Session) -> list[tuple[str, str]]:
    """The headers that tell the portal how to log this session out."""
    return [(LOGOUT_URL_HEADER, _LOGOUT_PATH), (CSRF_TOKEN_HEADER, session.csrf)]


async def end_after_password_change(
    sessions: SessionStore, session: Session, changed_ms: int
) -> Session:
    """Ends ``session``, logged in before its user's password changed at ``changed_ms``
    (the user's own change in another session, a master user's or the operator's reset),
    and returns a new anonymous session whose next page says why."""
    await sessions.destroy(session)
    log.info(
        "session of user %s ended: its password changed at %d ms (epoch), after the login",
        session.user_id,
        changed_ms,
    )
    renewed = sessions.new()
    flash_notice(renewed, messages.PASSWORD_CHANGED_LOGGED_OUT)
    return renewed


# A path on this site: "/" not followed by "/", and only URL characters (no "\\", no spaces
# or control characters that browsers strip and headers split on).
_LOCAL_PATH = re.compile(r"/(?![/])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def local_path(path: str) -> str:
    """``path`` when it is a path on this site (no open redirect, nothing that could split a
    header), else empty."""
    if _LOCAL_PATH.fullmatch(path) and len(path) < 2048:
        return path
    return ""


def with_next(path: str, next_path: str) -> str:
    """``path`` with ``?next=`` naming the page to return to after login (none for the
    portal's start page or a path that is not this site's)."""
    next_path = local_path(next_path)
    if not next_path or next_path == "/":
        return path
    return f"{path}?next={quote(next_path, safe='/')}"


class LoginScreens(Journey):
    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/login", self._menu),
            Route("GET", "/login/password", self._login_form),
            Route("POST", "/login/password", self._login, limited=True),
            Route("POST", _LOGOUT_PATH, self._logout),
        )

    def _next(self, visit: Visit) -> str:
        return local_path(visit.request.query_params().get("next", ""))

    async def _menu(self, visit: Visit) -> Response:
        certificate_user = None
        if visit.request.connection.certificate_der is not None:
            try:
                certificate_user = (await self.identify(visit)).user_id
            except Refused:
                certificate_user = None
        return self.render(
            visit,
            "login_menu.html",
            certificate_user=certificate_user,
            login_url=with_next("/login/password", self._next(visit)),
        )

    async def _certified(self, visit: Visit) -> Identity | Response:
        """The guard of the password login: the caller's certificate, verified (typed for
        this class, as :func:`behind` needs)."""
        return await self.certificate(visit)

    @behind(_certified)
    async def _login_form(self, visit: Visit, identity: Identity) -> Response:
        next_path = self._next(visit)
        return self.render(
            visit,
            "login.html",
            user_id=identity.user_id,
            next_path=next_path,
            form_url=with_next("/login/password", next_path),
        )

    @behind_form(_certified)
    async def _login(self, visit: Visit, identity: Identity, form: dict[str, str]) -> Response:
        user_id = form.get("user_id", "")
        password = form.get("password", "")
        next_path = local_path(form.get("next", "")) or self._next(visit)

        def again(error: str) -> Response:
            return self.redirect_to(
                visit, with_next("/login/password", next_path), error=error, user_id=user_id
            )

        if user_id != identity.user_id:
            # The certificate and the password must belong to the same user (SPEC E4).
            return again(messages.NOT_THE_CERTIFICATE_USER)
        try:
            user = await self.ca.login(user_id, password)
        except CaRefusal as refusal:
            return again(self.says(refusal))
        session = await self.sessions.rotate(visit.session)
        session.data.update(
            {"user_id": user.user_id, "serial": identity.serial, "login_at": self.now()}
        )
        # Until the password changes: then the session ends (``Screens``, ``Gateway``).
        session.note_password_change(user.password_changed_ms)
        visit.session = session
        log.info("user %s logged in (serial %x)", user.user_id, identity.serial)
        return redirect(next_path or "/")

    async def _logout(self, visit: Visit) -> Response:
        await self.form(visit)
        await self.sessions.destroy(visit.session)
        visit.session = self.sessions.new()
        return self.redirect_to(visit, "/login", notice=messages.LOGGED_OUT)
