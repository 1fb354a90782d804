"""マスターユーザー初期登録 (SPEC A4): the organisation ID and the operator's initial
password, then the master user's account; issuance follows (``enrollment``).

Between the two steps the initial password waits in the session only sealed under the key
in the user's cookie, for at most ``_REGISTRATION_SECONDS``."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from ca_service.api import ErrorReason
from gateway.ca_client import CaRefusal
from gateway.server import Response
from gateway.web import messages
from gateway.web.base import Journey, Route, Visit
from gateway.web.pages import redirect

__all__ = ["RegistrationScreens"]

_SEALED_INITIAL = "sealed_initial_password"
_REGISTRATION_SECONDS = 1800


class RegistrationScreens(Journey):
    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/register/master", self._register_form),
            # The initial password is checked here, and again with the new account.
            Route("POST", "/register/master", self._register_check, limited=True),
            Route("GET", "/register/master/account", self._account_form),
            Route("POST", "/register/master/account", self._register, limited=True),
        )

    async def _register_form(self, visit: Visit) -> Response:
        return self.render(visit, "register_master.html", organization_id="")

    async def _register_check(self, visit: Visit) -> Response:
        form = await self.form(visit)
        organization_id = form.get("organization_id", "").strip()
        initial = form.get("initial_password", "")
        try:
            # Empty account fields: the CA checks the initial password first and, when it
            # is right, stops at the first empty field without registering anything.
            await self.ca.register_master(organization_id, initial, "", "", "")
        except CaRefusal as refusal:
            if refusal.reason is ErrorReason.INVALID_CREDENTIALS:
                return self.redirect_to(
                    visit,
                    "/register/master",
                    error=messages.REGISTRATION_REFUSED,
                    organization_id=organization_id,
                )
        visit.session.data["register_organization_id"] = organization_id
        await self.sessions.seal(visit.session, _SEALED_INITIAL, initial, _REGISTRATION_SECONDS)
        return redirect("/register/master/account")

    async def _account_form(self, visit: Visit) -> Response:
        organization_id = visit.session.data.get("register_organization_id")
        if not organization_id:
            return redirect("/register/master")
        return self.render(
            visit,
            "register_master_account.html",
            organization_id=organization_id,
            organization_name=None,
        )

    async def _register(self, visit: Visit) -> Response:
        form = await self.form(visit)
        organization_id = str(visit.session.data.get("register_organization_id") or "")
        initial = await self.sessions.unseal(visit.session, _SEALED_INITIAL)
        if not organization_id or initial is None:
            return redirect("/register/master")

        def again(error: str, field: str | None = None) -> Response:
            # What was typed stays, except the passwords (never sent back to the browser).
            return self.redirect_to(
                visit,
                "/register/master/account",
                error=error,
                error_field=field or "",
                user_id=form.get("user_id", ""),
                email=form.get("email", "").strip(),
                email_confirm=form.get("email_confirm", "").strip(),
            )

        if form.get("password", "") != form.get("password_confirm", ""):
            return again(messages.PASSWORDS_DIFFER, "password_confirm")
        if form.get("email", "") != form.get("email_confirm", ""):
            return again(messages.EMAILS_DIFFER, "email_confirm")
        try:
            user = await self.ca.register_master(
                organization_id,
                initial,
                form.get("user_id", ""),
                form.get("password", ""),
                form.get("email", "").strip(),
            )
        except CaRefusal as refusal:
            if refusal.reason is ErrorReason.INVALID_CREDENTIALS:
                await self._forget(visit)
                return self.redirect_to(
                    visit,
                    "/register/master",
                    error=messages.REGISTRATION_SPENT,
                    organization_id=organization_id,
                )
            return again(self.says(refusal), refusal.metadata.get("field"))
        await self._forget(visit)
        return self.redirect_to(
            visit,
            "/enroll/auth?user_id=" + quote(user.user_id),
            notice=f"マスターユーザー {user.user_id} を登録しました。"
            "続けて電子証明書を発行してください。",
        )

    async def _forget(self, visit: Visit) -> None:
        """Erases the sealed initial password and the organisation of this registration."""
        await self.sessions.erase(visit.session, _SEALED_INITIAL)
        visit.session.forget("register_organization_id")
