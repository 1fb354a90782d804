"""The end-user screens of seed 000 (SPEC E4, A4, A5, B1–B8, C4, C4a) and the portal login.

Flow of certificate issuance: ユーザー認証 (ID + password → the CA mails a code) →
認証コード入力 (code → issuance ticket) → 電子証明書発行 [発行] (発行中 while it works) →
発行結果 (.p12 download). Between the first and the last step the login password waits in the
session only encrypted under the key in the user's cookie (C4a), at most as long as the code
is valid, and is erased at issuance.

Every POST carries the session's CSRF token. Every answer renders a page; the CA's refusals
become Japanese messages (``messages``).
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from gateway.ca_client import CaClient, CaRefusal, CaUnavailable
from gateway.errors import CsrfRejected
from gateway.identity import Identity, Refused
from gateway.server import Request, Response
from gateway.sessions import COOKIE_NAME, Session, SessionStore
from gateway.web import messages
from gateway.web.pages import Pages, redirect

__all__ = ["Screens"]

log = logging.getLogger(__name__)

_SEALED_PASSWORD = "sealed_password"  # noqa: S105 - a session field name
_SEALED_INITIAL = "sealed_initial_password"
_SEALED_PKCS12 = "sealed_pkcs12"
# A path on this site: "/" not followed by "/", and only URL characters (no "\\", no spaces
# or control characters that browsers strip and headers split on).
_LOCAL_PATH = re.compile(r"/(?![/])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
_DOWNLOAD_SECONDS = 600
_REGISTRATION_SECONDS = 1800

Identify = Callable[[Request], Awaitable[Identity]]


@dataclass(slots=True)
class _Visit:
    request: Request
    session: Session


class Screens:
    def __init__(
        self,
        *,
        ca: CaClient,
        sessions: SessionStore,
        pages: Pages,
        identify: Identify,
    ) -> None:
        self._ca = ca
        self._sessions = sessions
        self._pages = pages
        self._identify = identify
        self._routes: dict[tuple[str, str], Callable[[_Visit], Awaitable[Response]]] = {
            ("GET", "/login"): self._menu,
            ("GET", "/login/password"): self._login_form,
            ("POST", "/login/password"): self._login,
            ("POST", "/logout"): self._logout,
            ("GET", "/register/master"): self._register_form,
            ("POST", "/register/master"): self._register_check,
            ("GET", "/register/master/account"): self._account_form,
            ("POST", "/register/master/account"): self._register,
            ("GET", "/enroll/auth"): self._auth_form,
            ("POST", "/enroll/auth"): self._authenticate,
            ("GET", "/enroll/code"): self._code_form,
            ("POST", "/enroll/code"): self._verify_code,
            ("GET", "/enroll/issue"): self._issue_form,
            ("POST", "/enroll/issue"): self._issue,
            ("GET", "/enroll/result"): self._result,
            ("GET", "/enroll/download"): self._download,
            ("GET", "/master/users"): self._users,
            ("POST", "/master/users/unlock"): self._unlock,
            ("POST", "/master/users/new"): self._create_user,
        }
        self._paths = frozenset(path for _, path in self._routes)

    def serves(self, path: str) -> bool:
        return path in self._paths

    # -- plumbing -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        route = self._routes.get((method, request.path))
        if route is None:
            allowed = sorted({m for m, p in self._routes if p == request.path})
            response = self._pages.error(405, "お取り扱いできません", "この操作はできません。")
            response.headers.append(("Allow", ", ".join(allowed)))
            return response
        cookie = request.cookies().get(COOKIE_NAME)
        session = await self._sessions.load(cookie) or self._sessions.new()
        visit = _Visit(request, session)
        try:
            response = await route(visit)
        except CsrfRejected:
            response = self._pages.error(
                403,
                "画面の有効期限が切れました",
                "画面を開いてから時間が経ったため、処理できませんでした。もう一度操作してください。",
            )
        except CaUnavailable:
            log.warning("the CA is unavailable for %s %s", method, request.path)
            response = self._pages.error(
                503,
                "ただいま処理できません",
                "電子証明書サービスに接続できません。しばらくしてからもう一度お試しください。",
            )
        if visit.session is not None:
            await self._sessions.save(visit.session)
            if visit.session.fresh:
                response.headers.append(("Set-Cookie", self._sessions.cookie_header(visit.session)))
        return response

    async def _form(self, visit: _Visit) -> dict[str, str]:
        form = await visit.request.form()
        if not visit.session.csrf_ok(form.get("csrf")):
            raise CsrfRejected("missing or wrong CSRF token")
        return form

    def _render(
        self,
        visit: _Visit,
        template: str,
        *,
        status: int = 200,
        error: str | None = None,
        notice: str | None = None,
        **context: Any,
    ) -> Response:
        flash = visit.session.data.pop("flash", None)
        return self._pages.render(
            template,
            status=status,
            csrf=visit.session.csrf,
            logged_in_user=visit.session.user_id,
            error=error,
            notice=notice or flash,
            **context,
        )

    async def _certificate(self, visit: _Visit) -> Identity | Response:
        """The caller's verified identity, or the page that says why there is none."""
        if visit.request.connection.certificate_der is None:
            return self._render(
                visit,
                "login_menu.html",
                status=403,
                certificate_user=None,
                error="ログインには電子証明書が必要です。ブラウザで電子証明書を選択してください。",
            )
        try:
            return await self._identify(visit.request)
        except Refused as refused:
            heading, message = messages.refusal_message(refused.refusal)
            return self._pages.error(403, heading, message, csrf=visit.session.csrf)

    # -- ログイン ---------------------------------------------------------------------------

    async def _menu(self, visit: _Visit) -> Response:
        certificate_user = None
        if visit.request.connection.certificate_der is not None:
            try:
                certificate_user = (await self._identify(visit.request)).user_id
            except Refused:
                certificate_user = None
        return self._render(visit, "login_menu.html", certificate_user=certificate_user)

    async def _login_form(self, visit: _Visit) -> Response:
        identity = await self._certificate(visit)
        if isinstance(identity, Response):
            return identity
        next_path = visit.request.query_params().get("next", "")
        return self._render(
            visit, "login.html", user_id=identity.user_id, next_path=_local(next_path)
        )

    async def _login(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        identity = await self._certificate(visit)
        if isinstance(identity, Response):
            return identity
        user_id = form.get("user_id", "")
        password = form.get("password", "")

        def again(error: str) -> Response:
            return self._render(
                visit,
                "login.html",
                status=400,
                user_id=user_id,
                error=error,
                next_path=_local(form.get("next", "")),
            )

        if user_id != identity.user_id:
            # The certificate and the password must belong to the same user (SPEC E4).
            return again(
                "ユーザーIDが選択中の電子証明書と一致しません。電子証明書のユーザーIDで"
                "ログインしてください。"
            )
        try:
            user = await self._ca.login(user_id, password)
        except CaRefusal as refusal:
            return again(messages.for_ca_reason(refusal.reason, refusal.metadata))
        session = await self._sessions.rotate(visit.session)
        session.data.update(
            {"user_id": user.user_id, "serial": identity.serial, "login_at": time.time()}
        )
        visit.session = session
        log.info("user %s logged in (serial %x)", user.user_id, identity.serial)
        return redirect(_local(form.get("next", "")) or "/")

    async def _logout(self, visit: _Visit) -> Response:
        await self._form(visit)
        await self._sessions.destroy(visit.session)
        visit.session = self._sessions.new()
        return redirect("/login")

    # -- マスターユーザー初期登録 (A4) ---------------------------------------------------------

    async def _register_form(self, visit: _Visit) -> Response:
        return self._render(visit, "register_master.html", organization_id="")

    async def _register_check(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        organization_id = form.get("organization_id", "").strip()
        initial = form.get("initial_password", "")
        try:
            # Empty account fields: the CA checks the initial password first and, when it
            # is right, stops at the first empty field without registering anything.
            await self._ca.register_master(organization_id, initial, "", "", "")
        except CaRefusal as refusal:
            if refusal.reason == "INVALID_CREDENTIALS":
                return self._render(
                    visit,
                    "register_master.html",
                    status=400,
                    organization_id=organization_id,
                    error="団体IDまたは初期パスワードが正しくないか、初期パスワードの有効期限が"
                    "切れています。",
                )
        visit.session.data["register_organization_id"] = organization_id
        await self._sessions.seal(visit.session, _SEALED_INITIAL, initial, _REGISTRATION_SECONDS)
        return redirect("/register/master/account")

    async def _account_form(self, visit: _Visit) -> Response:
        organization_id = visit.session.data.get("register_organization_id")
        if not organization_id:
            return redirect("/register/master")
        return self._render(
            visit,
            "register_master_account.html",
            organization_id=organization_id,
            organization_name=None,
        )

    async def _register(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        organization_id = str(visit.session.data.get("register_organization_id") or "")
        initial = await self._sessions.unseal(visit.session, _SEALED_INITIAL)
        if not organization_id or initial is None:
            return redirect("/register/master")

        def again(error: str) -> Response:
            return self._render(
                visit,
                "register_master_account.html",
                status=400,
                organization_id=organization_id,
                organization_name=None,
                error=error,
            )

        if form.get("password", "") != form.get("password_confirm", ""):
            return again("パスワードと確認用パスワードが一致しません。")
        if form.get("email", "") != form.get("email_confirm", ""):
            return again("メールアドレスと確認用メールアドレスが一致しません。")
        try:
            user = await self._ca.register_master(
                organization_id,
                initial,
                form.get("user_id", ""),
                form.get("password", ""),
                form.get("email", "").strip(),
            )
        except CaRefusal as refusal:
            if refusal.reason == "INVALID_CREDENTIALS":
                await self._sessions.erase(visit.session, _SEALED_INITIAL)
                visit.session.forget("register_organization_id")
                return self._render(
                    visit,
                    "register_master.html",
                    status=400,
                    organization_id=organization_id,
                    error="初期パスワードが使用済みか有効期限が切れています。",
                )
            return again(messages.for_ca_reason(refusal.reason, refusal.metadata))
        await self._sessions.erase(visit.session, _SEALED_INITIAL)
        visit.session.forget("register_organization_id")
        visit.session.data["flash"] = (
            f"マスターユーザー {user.user_id} を登録しました。続けて電子証明書を発行してください。"
        )
        return redirect("/enroll/auth?user_id=" + quote(user.user_id))

    # -- ④ ユーザー認証 ---------------------------------------------------------------------

    def _auth_page(
        self,
        visit: _Visit,
        *,
        general: bool,
        user_id: str = "",
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        return self._render(
            visit,
            "enroll_auth.html",
            status=status,
            general=general,
            user_id=user_id,
            error=error,
        )

    async def _auth_form(self, visit: _Visit) -> Response:
        query = visit.request.query_params()
        return self._auth_page(
            visit, general=query.get("kind") == "general", user_id=query.get("user_id", "")[:12]
        )

    async def _authenticate(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        user_id = form.get("user_id", "").strip()
        password = form.get("password", "")
        general = form.get("kind") == "general"
        try:
            handle, expires_at, masked_email = await self._ca.start_authentication(
                user_id, password
            )
        except CaRefusal as refusal:
            return self._auth_page(
                visit,
                general=general,
                user_id=user_id,
                status=400,
                error=messages.for_ca_reason(refusal.reason, refusal.metadata),
            )
        # A new session ID and key for what follows the authentication (no fixation).
        visit.session = await self._sessions.rotate(visit.session)
        data = visit.session.data
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
        await self._sessions.seal(
            visit.session, _SEALED_PASSWORD, password, expires_at.timestamp() - time.time()
        )
        return redirect("/enroll/code")

    async def _password_expired(self, visit: _Visit) -> bool:
        expires = visit.session.data.get("code_expires_at")
        if not isinstance(expires, (int, float)) or time.time() >= expires:
            await self._sessions.erase(visit.session, _SEALED_PASSWORD)
            visit.session.forget("auth_handle", "ticket")
            return True
        return False

    # -- ⑤ 認証コード入力 -------------------------------------------------------------------

    def _code_page(self, visit: _Visit, error: str | None = None, status: int = 200) -> Response:
        data = visit.session.data
        return self._render(
            visit,
            "enroll_code.html",
            status=status,
            error=error,
            masked_email=data.get("masked_email", ""),
            code_expires_at=messages.japan_time(
                datetime.fromtimestamp(float(data["code_expires_at"]), UTC)
            ),
        )

    async def _code_form(self, visit: _Visit) -> Response:
        if "auth_handle" not in visit.session.data or await self._password_expired(visit):
            return redirect("/enroll/auth")
        return self._code_page(visit)

    async def _verify_code(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        handle = visit.session.data.get("auth_handle")
        if not handle or await self._password_expired(visit):
            return self._auth_page(
                visit, general=False, status=400, error=messages.for_ca_reason("CODE_EXPIRED", {})
            )
        try:
            ticket = await self._ca.verify_code(str(handle), form.get("code", "").strip())
        except CaRefusal as refusal:
            text = messages.for_ca_reason(refusal.reason, refusal.metadata)
            if refusal.reason == "CODE_INVALID" and refusal.metadata.get("tries_left") != "0":
                return self._code_page(visit, error=text, status=400)
            await self._sessions.erase(visit.session, _SEALED_PASSWORD)
            visit.session.forget("auth_handle")
            return self._auth_page(
                visit,
                general=False,
                user_id=str(visit.session.data.get("auth_user", "")),
                status=400,
                error=text,
            )
        visit.session.data.pop("auth_handle", None)
        visit.session.data["ticket"] = ticket
        return redirect("/enroll/issue")

    # -- ⑥ 発行, ⑦ 発行中, ⑧ 発行結果 ----------------------------------------------------------

    async def _issue_form(self, visit: _Visit) -> Response:
        if "ticket" not in visit.session.data or await self._password_expired(visit):
            return redirect("/enroll/auth")
        return self._render(
            visit,
            "enroll_issue.html",
            user_id=visit.session.data.get("auth_user", ""),
            renewal=False,
        )

    async def _issue(self, visit: _Visit) -> Response:
        await self._form(visit)
        data = visit.session.data
        ticket = data.get("ticket")
        password = await self._sessions.unseal(visit.session, _SEALED_PASSWORD)
        # Erased at issuance whatever happens (C4a); the ticket is single-use anyway.
        await self._sessions.erase(visit.session, _SEALED_PASSWORD)
        visit.session.forget("ticket", "code_expires_at")
        if not ticket or password is None:
            return self._auth_page(
                visit, general=False, status=400, error=messages.for_ca_reason("TICKET_INVALID", {})
            )
        try:
            issued = await self._ca.issue(str(ticket), password)
        except CaRefusal as refusal:
            return self._auth_page(
                visit,
                general=False,
                user_id=str(data.get("auth_user", "")),
                status=400,
                error=messages.for_ca_reason(refusal.reason, refusal.metadata),
            )
        # The file is protected by the login password; in the session it is also sealed
        # under the cookie's key, and it is kept only for the download.
        await self._sessions.seal(
            visit.session,
            _SEALED_PKCS12,
            base64.b64encode(issued.pkcs12).decode(),
            _DOWNLOAD_SECONDS,
        )
        data["issued"] = {
            "user_id": data.get("auth_user", ""),
            "file_name": issued.file_name,
            "serial_number": issued.serial_number,
            "not_after": issued.not_after.timestamp(),
            "at": time.time(),
        }
        log.info("issued certificate %s for %s", issued.serial_number, data.get("auth_user"))
        return redirect("/enroll/result")

    async def _issued(self, visit: _Visit) -> dict[str, object] | None:
        issued = visit.session.data.get("issued")
        if not isinstance(issued, dict) or time.time() - issued["at"] > _DOWNLOAD_SECONDS:
            await self._sessions.erase(visit.session, _SEALED_PKCS12)
            visit.session.forget("issued")
            return None
        return issued

    async def _result(self, visit: _Visit) -> Response:
        issued = await self._issued(visit)
        if issued is None:
            return redirect("/login")
        return self._render(
            visit,
            "enroll_result.html",
            user_id=issued["user_id"],
            file_name=issued["file_name"],
            serial_number=issued["serial_number"],
            not_after=messages.japan_time(
                datetime.fromtimestamp(float(issued["not_after"]), UTC)  # type: ignore[arg-type]
            ),
            download_url="/enroll/download",
        )

    async def _download(self, visit: _Visit) -> Response:
        issued = await self._issued(visit)
        sealed = await self._sessions.unseal(visit.session, _SEALED_PKCS12)
        if issued is None or sealed is None:
            return self._pages.error(
                404,
                "ダウンロードできません",
                "ダウンロードの有効期限が切れました。電子証明書は発行済みです。インポートできない"
                "場合は運営者に失効を依頼し、再発行してください。",
            )
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

    # -- a master user's page (B6, A5) ------------------------------------------------------

    async def _master(self, visit: _Visit) -> tuple[str, str] | Response:
        """(master user ID, organisation ID) for a logged-in master user, else the page."""
        identity = await self._certificate(visit)
        if isinstance(identity, Response):
            return identity
        if (
            visit.session.user_id != identity.user_id
            or visit.session.data.get("serial") != identity.serial
        ):
            return redirect("/login/password?next=/master/users")
        user = await self._ca.user(identity.user_id)
        if user is None or user.role != "master":
            return self._pages.error(
                403,
                "表示できません",
                "この画面はマスターユーザーだけが利用できます。",
                back_url="/",
            )
        return user.user_id, user.organization_id

    async def _users_page(
        self,
        visit: _Visit,
        master: tuple[str, str],
        *,
        created: object = None,
        error: str | None = None,
        notice: str | None = None,
        status: int = 200,
    ) -> Response:
        users = await self._ca.users(master[0])
        rows = [
            SimpleNamespace(
                user_id=u.user_id,
                role_label="マスター" if u.role == "master" else "一般",
                state_label=_state_label(u.state, u.locked_until),
                email=u.email,
                can_unlock=u.role == "general" and u.state != "active",
            )
            for u in users
        ]
        organization_name = next((u.organization_name for u in users), "")
        return self._render(
            visit,
            "master_users.html",
            status=status,
            organization_name=organization_name,
            organization_id=master[1],
            users=rows,
            created=created,
            error=error,
            notice=notice,
        )

    async def _users(self, visit: _Visit) -> Response:
        master = await self._master(visit)
        if isinstance(master, Response):
            return master
        return await self._users_page(visit, master)

    async def _unlock(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        master = await self._master(visit)
        if isinstance(master, Response):
            return master
        user_id = form.get("user_id", "")
        try:
            await self._ca.unlock(master[0], user_id)
        except CaRefusal as refusal:
            return await self._users_page(
                visit,
                master,
                status=400,
                error=messages.for_ca_reason(refusal.reason, refusal.metadata),
            )
        return await self._users_page(
            visit, master, notice=f"{user_id} のロック・閉塞を解除しました。"
        )

    async def _create_user(self, visit: _Visit) -> Response:
        form = await self._form(visit)
        master = await self._master(visit)
        if isinstance(master, Response):
            return master
        try:
            user, initial = await self._ca.create_user(
                master[0], master[1], form.get("user_id", "").strip(), form.get("email", "").strip()
            )
        except CaRefusal as refusal:
            return await self._users_page(
                visit,
                master,
                status=400,
                error=messages.for_ca_reason(refusal.reason, refusal.metadata),
            )
        return await self._users_page(
            visit, master, created=SimpleNamespace(user_id=user.user_id, initial_password=initial)
        )


def _local(path: str) -> str:
    """``path`` when it is a path on this site (no open redirect, nothing that could split a
    header), else empty."""
    if _LOCAL_PATH.fullmatch(path) and len(path) < 2048:
        return path
    return ""


def _state_label(state: str, locked_until: datetime | None) -> str:
    if state == "blocked":
        return "閉塞"
    if state == "locked":
        when = f"（{messages.japan_time(locked_until)} 解除）" if locked_until else ""
        return "ロック中" + when
    return "利用可能"
