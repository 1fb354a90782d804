"""メールアドレス変更 (SPEC A6, D1): a logged-in user asks for a new address, which becomes
active only when the link mailed to it is opened; the page that link opens.

The link's page first shows the link's state (valid, expired, used, unknown) without using
the link, and uses it only when the person presses the button: mail scanners that fetch
every link in a message would otherwise use it up. Both forms answer with a redirect to a
page (POST → redirect → GET), so reloading never sends a form again.

The token is in the link's query only: the access log records paths without queries, the
pages set no Referer (``Referrer-Policy: no-referrer``), and nothing here logs it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ca_service.api import ErrorReason
from ca_service.shared.japan import format_japan_time
from gateway.ca_client import CaRefusal
from gateway.server import Response, behind
from gateway.web import messages
from gateway.web.base import Journey, Route, Visit, behind_form
from gateway.web.pages import redirect

__all__ = ["EmailScreens", "link_base_url"]

CHANGE_PATH = "/account/email"
VERIFY_PATH = "/email/verify"
DONE_PATH = "/email/verify/done"
# The outcome of the last link opened in this session, for the page after the redirect.
_OUTCOME = "email_link_outcome"
# A Host header this gateway can name itself by: a DNS name or IP literal, maybe a port.
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")


def link_base_url(host: str | None) -> str | None:
    """The link's page on this gateway, as the browser named it (Host); None for a Host
    that is not a plain name. Only a logged-in user's own request leads here, so the name
    is the one that user reached us by."""
    if not host or len(host) > 255 or not _HOST.fullmatch(host):
        return None
    return f"https://{host.lower()}{VERIFY_PATH}"


class EmailScreens(Journey):
    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", CHANGE_PATH, self._change_form),
            # Sends a mail: the per-client limit applies.
            Route("POST", CHANGE_PATH, self._request_change, limited=True),
            Route("GET", VERIFY_PATH, self._look),
            Route("POST", VERIFY_PATH, self._open),
            Route("GET", DONE_PATH, self._done),
        )

    # -- メールアドレス変更 (logged-in users) ---------------------------------------------------

    async def _logged_in(self, visit: Visit) -> str | Response:
        """The user ID of the logged-in user whose certificate this is, else the page."""
        identity = await self.certificate(visit)
        if isinstance(identity, Response):
            return identity
        if not visit.session.logged_in_with(identity.user_id, identity.serial):
            return redirect(f"/login/password?next={CHANGE_PATH}")
        return identity.user_id

    async def _change_page(
        self, visit: Visit, user_id: str, *, status: int = 200, error: str | None = None
    ) -> Response:
        user = await self.ca.user(user_id)
        return self.render(
            visit,
            "account_email.html",
            status=status,
            error=error,
            current_email=user.email if user else "",
        )

    @behind(_logged_in)
    async def _change_form(self, visit: Visit, user_id: str) -> Response:
        return await self._change_page(visit, user_id)

    @behind_form(_logged_in)
    async def _request_change(self, visit: Visit, user_id: str, form: dict[str, str]) -> Response:
        address = form.get("email", "").strip()
        typed = {"email": address, "email_confirm": form.get("email_confirm", "").strip()}
        if address != typed["email_confirm"]:
            return self.redirect_to(visit, CHANGE_PATH, error=messages.EMAILS_DIFFER, **typed)
        base = link_base_url(visit.request.head.get("host"))
        if base is None:
            return self.error_page(400, messages.NOT_ALLOWED, back_url=CHANGE_PATH)
        try:
            expires_at, masked = await self.ca.request_email_change(user_id, address, base)
        except CaRefusal as refusal:
            return self.redirect_to(visit, CHANGE_PATH, error=self.says(refusal), **typed)
        return self.redirect_to(
            visit,
            CHANGE_PATH,
            notice=(
                f"{masked} へ確認用のURLを記載したメールを送信しました。"
                f"{format_japan_time(expires_at)}までにURLへアクセスすると、"
                "新しいメールアドレスが登録されます。それまでは現在のメールアドレスが使用されます。"
            ),
        )

    # -- the link's page (public: the link is the credential) -----------------------------

    def _link_refused(self, visit: Visit, refusal: CaRefusal) -> Response:
        page = messages.email_link_message(refusal.reason, self.rules)
        if page is None:
            return self.error_page(400, ("処理できませんでした", self.says(refusal)), back_url=None)
        heading, message = page
        return self.render(
            visit,
            "email_verify_result.html",
            status=404 if refusal.reason is ErrorReason.EMAIL_LINK_UNKNOWN else 410,
            verified=False,
            heading=heading,
            message=message,
        )

    async def _look(self, visit: Visit) -> Response:
        token = visit.request.query_params().get("token", "")
        try:
            _, address = await self.ca.confirm_email(token, check_only=True)
        except CaRefusal as refusal:
            return self._link_refused(visit, refusal)
        return self.render(visit, "email_verify.html", token=token, address=address)

    async def _open(self, visit: Visit) -> Response:
        form = await self.form(visit)
        try:
            user_id, address = await self.ca.confirm_email(form.get("token", ""))
        except CaRefusal as refusal:
            outcome = {"reason": refusal.reason.value}
        else:
            outcome = {"user_id": user_id, "address": address}
        visit.session.data[_OUTCOME] = outcome
        return redirect(DONE_PATH)

    async def _done(self, visit: Visit) -> Response:
        outcome = visit.session.data.pop(_OUTCOME, None)
        if not isinstance(outcome, dict):
            # Reloaded, or opened directly: the outcome was shown once already.
            return redirect("/login")
        reason = outcome.get("reason")
        if reason is not None:
            refused = ErrorReason(reason) if reason in ErrorReason.__members__ else None
            return self._link_refused(visit, CaRefusal(refused or ErrorReason.INTERNAL, "", {}))
        return self.render(
            visit,
            "email_verify_result.html",
            verified=True,
            heading="メールアドレスの変更が完了しました",
            message=(
                f"ユーザーID {outcome.get('user_id', '')} の登録メールアドレスを"
                f" {outcome.get('address', '')} に変更しました。"
                "変更前のメールアドレスには、変更のお知らせをお送りしました。"
            ),
        )
