"""電子証明書発行 (SPEC B1, B2, C4, C4a): ④ ユーザー認証 (ID + password → the CA mails a
code) → ⑤ 認証コード入力 (code → issuance ticket) → ⑥ 電子証明書発行 [発行] (⑦ 発行中 while
it works) → ⑧ 発行結果 (.p12 download). 一般ユーザーの初期登録 takes the same path with the
initial password its master user gave, which the user replaces with its own on the first
screen (SPEC A5: the CA refuses issuance with a given password, and the master user does not
learn the password of the user's .p12). ⑤ offers 認証コードの再送 (issue 11), limited by the
CA; a resend ends in POST → redirect → GET.

Between the first and the last step the login password waits in the session only encrypted
under the key in the user's cookie (C4a), at most as long as the code is valid, and is
erased at issuance. The issued file waits the same way, for the download only
(``ONE_TIME_SECONDS``).

An answer to [発行] that never reached the browser loses nothing: the session remembers the
issuance (until the next ユーザー認証), so sending the form again (a reload), coming back to
電子証明書発行 or going back from 発行結果 says that the certificate was issued and offers
the file while it waits (C7: after that, the way out is revocation and a new issuance)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from ca_service.api import ErrorReason
from ca_service.shared.japan import format_japan_time
from gateway.ca_client import CaRefusal
from gateway.server import Response
from gateway.web import messages
from gateway.web.base import ONE_TIME_SECONDS, Journey, Route, Visit
from gateway.web.pages import redirect

__all__ = ["EnrollmentScreens"]

log = logging.getLogger(__name__)

_SEALED_PASSWORD = "sealed_password"  # noqa: S105 - a session field name
_SEALED_PKCS12 = "sealed_pkcs12"


def _japan_time(seconds: object) -> str:
    return format_japan_time(datetime.fromtimestamp(float(seconds), UTC))  # type: ignore[arg-type]


def _issued_at(issued: dict[str, object]) -> float:
    """When the session's certificate was issued (seconds since the epoch)."""
    at = issued.get("at")
    return float(at) if isinstance(at, (int, float)) else 0.0


class EnrollmentScreens(Journey):
    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/enroll/auth", self._auth_form),
            # The password, then a mailed code.
            Route("POST", "/enroll/auth", self._authenticate, limited=True),
            Route("GET", "/enroll/code", self._code_form),
            Route("POST", "/enroll/code", self._verify_code, limited=True),
            # Sends a code: the per-client limit applies besides the CA's per-user one.
            Route("POST", "/enroll/code/resend", self._resend, limited=True),
            Route("GET", "/enroll/issue", self._issue_form),
            # The password once more, for the PKCS#12 file.
            Route("POST", "/enroll/issue", self._issue, limited=True),
            Route("GET", "/enroll/result", self._result),
            Route("GET", "/enroll/download", self._download),
        )

    # -- ④ ユーザー認証 ---------------------------------------------------------------------

    def _again(self, visit: Visit, error: str, user_id: str = "") -> Response:
        """Back to ユーザー認証 with ``error`` (the journey starts again)."""
        return self.redirect_to(visit, "/enroll/auth", error=error, user_id=user_id)

    async def _auth_form(self, visit: Visit) -> Response:
        query = visit.request.query_params()
        issued = await self._issued(visit)
        return self.render(
            visit,
            "enroll_auth.html",
            general=query.get("kind") == "general",
            user_id=query.get("user_id", "")[: self.rules.user_id_max_length],
            # A file of this session still waits: said and offered before anything else.
            issued=self._issued_view(issued) if issued and self._file_waits(issued) else None,
        )

    async def _authenticate(self, visit: Visit) -> Response:
        form = await self.form(visit)
        user_id = form.get("user_id", "").strip()
        password = form.get("password", "")
        general = form.get("kind") == "general"
        if general:
            # 一般ユーザーの初期登録: the given password is replaced by the user's own first.
            new_password = form.get("new_password", "")
            if new_password != form.get("new_password_confirm", ""):
                return self.redirect_to(
                    visit,
                    "/enroll/auth?kind=general",
                    error=messages.NEW_PASSWORDS_DIFFER,
                    user_id=user_id,
                )
            try:
                await self.ca.change_password(user_id, password, new_password)
            except CaRefusal as refusal:
                return self.redirect_to(
                    visit, "/enroll/auth?kind=general", error=self.says(refusal), user_id=user_id
                )
            password = new_password
        try:
            handle, expires_at, masked_email = await self.ca.start_authentication(user_id, password)
        except CaRefusal as refusal:
            return self.redirect_to(
                visit,
                "/enroll/auth?kind=general" if general else "/enroll/auth",
                error=self.says(refusal),
                user_id=user_id,
            )
        # A new session ID and key for what follows the authentication (no fixation). A
        # file that waited for its download does not follow: it was sealed under the old key.
        visit.session = await self.sessions.rotate(visit.session)
        data = visit.session.data
        data.pop("issued", None)
        data.update(
            {
                "auth_user": user_id,
                "auth_handle": handle,
                "code_expires_at": expires_at.timestamp(),
                "masked_email": masked_email,
            }
        )
        data.pop("ticket", None)
        # C4a: the password waits only sealed, and only as long as the code is valid.
        await self.sessions.seal(
            visit.session, _SEALED_PASSWORD, password, expires_at.timestamp() - self.now()
        )
        return redirect("/enroll/code")

    async def _password_expired(self, visit: Visit) -> bool:
        expires = visit.session.data.get("code_expires_at")
        if not isinstance(expires, (int, float)) or self.now() >= expires:
            await self.sessions.erase(visit.session, _SEALED_PASSWORD)
            visit.session.forget("auth_handle", "ticket")
            return True
        return False

    # -- ⑤ 認証コード入力 -------------------------------------------------------------------

    async def _code_form(self, visit: Visit) -> Response:
        if "auth_handle" not in visit.session.data and await self._issued(visit) is not None:
            # Back from 発行結果 (chromium skips 発行, whose entry the form's own URL
            # replaced): the page that says the certificate was issued.
            return redirect("/enroll/issue")
        if "auth_handle" not in visit.session.data or await self._password_expired(visit):
            return redirect("/enroll/auth")
        data = visit.session.data
        return self.render(
            visit,
            "enroll_code.html",
            masked_email=data.get("masked_email", ""),
            code_expires_at=_japan_time(data["code_expires_at"]),
        )

    async def _verify_code(self, visit: Visit) -> Response:
        form = await self.form(visit)
        handle = visit.session.data.get("auth_handle")
        if not handle or await self._password_expired(visit):
            return self._again(visit, self.says_reason(ErrorReason.CODE_EXPIRED))
        try:
            ticket = await self.ca.verify_code(str(handle), form.get("code", "").strip())
        except CaRefusal as refusal:
            text = self.says(refusal)
            if (
                refusal.reason is ErrorReason.CODE_INVALID
                and refusal.metadata.get("tries_left") != "0"
            ):
                return self.redirect_to(visit, "/enroll/code", error=text, error_field="code")
            await self.sessions.erase(visit.session, _SEALED_PASSWORD)
            visit.session.forget("auth_handle")
            return self._again(visit, text, str(visit.session.data.get("auth_user", "")))
        visit.session.data.pop("auth_handle", None)
        visit.session.data["ticket"] = ticket
        return redirect("/enroll/issue")

    async def _resend(self, visit: Visit) -> Response:
        await self.form(visit)
        handle = visit.session.data.get("auth_handle")
        if not handle or await self._password_expired(visit):
            return self._again(visit, self.says_reason(ErrorReason.CODE_EXPIRED))
        try:
            expires_at, masked_email = await self.ca.resend_code(str(handle))
        except CaRefusal as refusal:
            if refusal.reason is ErrorReason.RESEND_LIMITED:
                # Nothing changed: the code screen again, saying when (POST/redirect/GET).
                return self.redirect_to(visit, "/enroll/code", error=self.says(refusal))
            # Expired, used or replaced, or the ID locked meanwhile: start again.
            await self.sessions.erase(visit.session, _SEALED_PASSWORD)
            visit.session.forget("auth_handle")
            return self._again(
                visit, self.says(refusal), str(visit.session.data.get("auth_user", ""))
            )
        # C4a: the password waits as long as the code now valid, no longer.
        password = await self.sessions.unseal(visit.session, _SEALED_PASSWORD)
        if password is None:
            visit.session.forget("auth_handle")
            return self._again(visit, self.says_reason(ErrorReason.CODE_EXPIRED))
        await self.sessions.seal(
            visit.session, _SEALED_PASSWORD, password, expires_at.timestamp() - self.now()
        )
        visit.session.data.update(
            {"code_expires_at": expires_at.timestamp(), "masked_email": masked_email}
        )
        visit.session.data["flash"] = messages.CODE_RESENT
        return redirect("/enroll/code")

    # -- ⑥ 発行, ⑦ 発行中, ⑧ 発行結果 ----------------------------------------------------------

    async def _issue_form(self, visit: Visit) -> Response:
        if "ticket" not in visit.session.data:
            issued = await self._issued(visit)
            if issued is not None:
                # Back from 発行結果, or a new tab: where the user is, and the file.
                return self._issued_page(visit, issued)
            return redirect("/enroll/auth")
        if await self._password_expired(visit):
            return redirect("/enroll/auth")
        return self.render(
            visit,
            "enroll_issue.html",
            user_id=visit.session.data.get("auth_user", ""),
            renewal=False,
        )

    async def _issue(self, visit: Visit) -> Response:
        await self.form(visit)
        data = visit.session.data
        ticket = data.get("ticket")
        if not ticket and await self._issued(visit) is not None:
            # The form again after the issuance (a reload when the answer was lost): the
            # answer it should have had.
            return redirect("/enroll/result")
        password = await self.sessions.unseal(visit.session, _SEALED_PASSWORD)
        # Erased at issuance whatever happens (C4a); the ticket is single-use anyway.
        await self.sessions.erase(visit.session, _SEALED_PASSWORD)
        visit.session.forget("ticket", "code_expires_at")
        if not ticket or password is None:
            return self._again(visit, self.says_reason(ErrorReason.TICKET_INVALID))
        try:
            issued = await self.ca.issue(str(ticket), password)
        except CaRefusal as refusal:
            return self._again(visit, self.says(refusal), str(data.get("auth_user", "")))
        # The file is protected by the login password; in the session it is also sealed
        # under the cookie's key, and it is kept only for the download.
        await self.sessions.seal(
            visit.session,
            _SEALED_PKCS12,
            base64.b64encode(issued.pkcs12).decode(),
            ONE_TIME_SECONDS,
        )
        data["issued"] = {
            "user_id": data.get("auth_user", ""),
            "file_name": issued.file_name,
            "serial_number": issued.serial_number,
            "not_after": issued.not_after.timestamp(),
            "at": self.now(),
        }
        log.info("issued certificate %s for %s", issued.serial_number, data.get("auth_user"))
        return redirect("/enroll/result")

    async def _issued(self, visit: Visit) -> dict[str, object] | None:
        """What this session issued (kept until the next ユーザー認証); its file is erased
        once its time to wait is over."""
        issued = visit.session.data.get("issued")
        if not isinstance(issued, dict):
            return None
        if not self._file_waits(issued) and _SEALED_PKCS12 in visit.session.data.get("sealed", []):
            await self.sessions.erase(visit.session, _SEALED_PKCS12)
        return issued

    def _file_waits(self, issued: dict[str, object]) -> bool:
        return self.now() - _issued_at(issued) <= ONE_TIME_SECONDS

    def _issued_view(self, issued: dict[str, object]) -> dict[str, object]:
        """What the pages show of an issuance."""
        return {
            "user_id": issued["user_id"],
            "file_name": issued["file_name"],
            "serial_number": issued["serial_number"],
            "issued_at": _japan_time(issued["at"]),
            "not_after": _japan_time(issued["not_after"]),
            "download_until": _japan_time(_issued_at(issued) + ONE_TIME_SECONDS),
            "file_waits": self._file_waits(issued),
        }

    def _issued_page(self, visit: Visit, issued: dict[str, object]) -> Response:
        """電子証明書発行済み: the certificate was issued; the file while it waits, else
        what to do (C7)."""
        return self.render(
            visit,
            "enroll_issued.html",
            issued=self._issued_view(issued),
            reissue=messages.REISSUE_AFTER_REVOCATION,
        )

    async def _result(self, visit: Visit) -> Response:
        issued = await self._issued(visit)
        if issued is None:
            return redirect("/login")
        if not self._file_waits(issued):
            return self._issued_page(visit, issued)
        return self.render(
            visit,
            "enroll_result.html",
            user_id=issued["user_id"],
            file_name=issued["file_name"],
            serial_number=issued["serial_number"],
            not_after=_japan_time(issued["not_after"]),
            download_url="/enroll/download",
        )

    async def _download(self, visit: Visit) -> Response:
        issued = await self._issued(visit)
        sealed = await self.sessions.unseal(visit.session, _SEALED_PKCS12)
        if issued is None or sealed is None or not self._file_waits(issued):
            return self.error_page(404, messages.DOWNLOAD_EXPIRED)
        name = str(issued["file_name"])
        return Response(
            200,
            [
                ("Content-Type", "application/x-pkcs12"),
                ("Content-Disposition", f'attachment; filename="{name}"'),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ],
            base64.b64decode(sealed),
        )
