"""パスワード変更 (SPEC A3, A5; issue 11): any user changes its password with the current
one. The CA checks the current password under the same lockout as ログイン and ユーザー認証
(a wrong one counts, a locked ID is refused), so this screen is limited per client like
theirs and is no way around the lockout.

It works without a certificate, like the enrollment screens (a general user replaces its
given password before it has one); for a logged-in user the user ID is the session's. A
change ends in POST → redirect → GET: the login menu says it was done.

A change ends every other session of the user (the CA stamps ``password_changed_at``; the
router and the proxy end a session logged in before it); the session that made it goes on
under a new ID with the new stamp."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.ca_client import CaRefusal
from gateway.server import Response
from gateway.web import messages
from gateway.web.base import Journey, Route, Visit

__all__ = ["AccountScreens"]


class AccountScreens(Journey):
    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/account/password", self._form),
            # The current password is checked: the per-client limit applies.
            Route("POST", "/account/password", self._change, limited=True),
        )

    def _page(
        self, visit: Visit, *, user_id: str = "", error: str | None = None, status: int = 200
    ) -> Response:
        fixed = visit.session.user_id
        return self.render(
            visit,
            "account_password.html",
            status=status,
            error=error,
            user_id=fixed or user_id,
            user_fixed=fixed is not None,
            back_url="/" if fixed else "/login",
        )

    async def _form(self, visit: Visit) -> Response:
        return self._page(visit)

    async def _change(self, visit: Visit) -> Response:
        form = await self.form(visit)
        user_id = visit.session.user_id or form.get("user_id", "").strip()
        new_password = form.get("new_password", "")
        # Refused or done, the answer is a redirect: a reload never sends the current password
        # again (a wrong one would count twice towards the lock).
        if new_password != form.get("new_password_confirm", ""):
            return self.redirect_to(
                visit, "/account/password", error=messages.NEW_PASSWORDS_DIFFER, user_id=user_id
            )
        try:
            user = await self.ca.change_password(
                user_id, form.get("current_password", ""), new_password
            )
        except CaRefusal as refusal:
            return self.redirect_to(
                visit, "/account/password", error=self.says(refusal), user_id=user_id
            )
        if visit.session.user_id == user_id:
            # A new session ID after a change of credentials (no fixation across it), which
            # outlives the change: the other sessions of the user end.
            visit.session = await self.sessions.rotate(visit.session)
            visit.session.note_password_change(user.password_changed_ms)
        return self.redirect_to(visit, "/login", notice=messages.CHANGE_DONE)
