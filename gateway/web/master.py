"""A master user's page (SPEC B6, A5, C6): the users of its organisation with their lock
state and their certificate (有効 / 失効 / 期限切れ / なし, expiry, whether renewal is open),
unlocking a general user, registering a general user (its initial password shown once),
resetting a general user's password (the new initial password shown once) and revoking a
general user's certificate for a PC change or a lost PC (issue 11). The CA audits each
with the master user's ID and refuses users of other organisations.

Only for a logged-in master user: the certificate and the session's login must be the same
user's, and the CA's record must say master.

The forms answer with a redirect (POST/redirect/GET): a reload repeats nothing. An initial
password the CA just made — a new user's, or a reset one — waits for that GET in one way
(:class:`_Initial`): sealed in the master user's session under the key in its cookie, for
at most ``ONE_TIME_SECONDS``, so that no other session and not Redis alone can read it. A
new user's is shown by ``/master/users/created``: a reload shows it again instead of
registering the user a second time, and [確認しました] erases it. A reset one is shown on
the list and erased as it is shown (the list is the page a master reloads most)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

from ca_service.api import ErrorReason
from ca_service.shared.japan import format_japan_date, format_japan_time, format_lock_end
from gateway.accounts import (
    CertificateHolding,
    HeldCertificate,
    RevocationCause,
    UserRecord,
    UserRole,
    UserState,
)
from gateway.ca_client import CaRefusal
from gateway.server import Response, behind
from gateway.web import messages
from gateway.web.base import ONE_TIME_SECONDS, Journey, Route, Visit, behind_form
from gateway.web.login import with_next
from gateway.web.pages import redirect

__all__ = ["MasterScreens", "state_label"]

_SEALED_CREATED = "sealed_created_user"
_SEALED_RESET = "sealed_reset_password"
# The CA's name of a refused field (ErrorInfo metadata) → its input on this page.
_NEW_USER_FIELDS = {"user_id": "new_user_id", "email": "new_email"}

_ROLE_LABELS = {UserRole.MASTER: "マスター", UserRole.GENERAL: "一般", UserRole.UNKNOWN: "一般"}


def state_label(state: UserState, locked_until: datetime | None) -> str:
    if state is UserState.BLOCKED:
        return "閉塞"
    if state is UserState.LOCKED:
        # Rounded up: the lock has lifted by the minute shown.
        when = f"（{format_lock_end(locked_until)} 解除）" if locked_until else ""
        return "ロック中" + when
    return "利用可能"


_HOLDING_LABELS = {
    CertificateHolding.VALID: "有効",
    CertificateHolding.REVOKED: "失効",
    CertificateHolding.EXPIRED: "期限切れ",
    CertificateHolding.NONE: "なし",
}
_CAUSE_LABELS = {RevocationCause.PC_CHANGE: "PC変更", RevocationCause.LOST_PC: "PC紛失"}


def _certificate_columns(held: HeldCertificate | None) -> dict[str, object]:
    """The certificate's cells of a user's row: 電子証明書, 有効期限, 更新."""
    if held is None:
        return {"holding": "", "certificate_label": "", "not_after_label": "", "renewal_label": ""}
    renewal = "発行できます"
    if held.holding is CertificateHolding.VALID:
        renewal = "更新できます"
        if not held.renewal_open and held.renewal_opens_at is not None:
            renewal = f"{format_japan_date(held.renewal_opens_at)}から更新できます"
    return {
        "holding": held.holding.value,
        "certificate_label": _HOLDING_LABELS[held.holding],
        "not_after_label": format_japan_time(held.not_after) if held.not_after else "",
        "renewal_label": renewal,
    }


def _row(user: UserRecord) -> SimpleNamespace:
    general = user.role is UserRole.GENERAL
    held = user.certificate
    return SimpleNamespace(
        user_id=user.user_id,
        role_label=_ROLE_LABELS[user.role],
        state_label=state_label(user.state, user.locked_until)
        + ("（初期パスワード未変更）" if user.password_given else ""),
        email=user.email,
        can_unlock=general and user.state is not UserState.ACTIVE,
        manageable=general,
        can_revoke=general and held is not None and held.holding is CertificateHolding.VALID,
        **_certificate_columns(held),
    )


@dataclass(frozen=True, slots=True)
class _Initial:
    """An initial password the CA made for ``user_id`` at ``at`` (epoch seconds), waiting
    sealed to be shown to the master user once."""

    user_id: str
    initial_password: str
    at: float

    @property
    def shown_until(self) -> str:
        return format_japan_time(datetime.fromtimestamp(self.at + ONE_TIME_SECONDS, UTC))


@dataclass(frozen=True, slots=True)
class _Master:
    """The logged-in master user a page is for."""

    user_id: str
    organization_id: str


class MasterScreens(Journey):
    def routes(self) -> Sequence[Route]:
        return (
            Route("GET", "/master/users", self._users),
            Route("POST", "/master/users/unlock", self._unlock),
            Route("POST", "/master/users/new", self._create_user),
            Route("GET", "/master/users/created", self._created),
            Route("POST", "/master/users/created", self._created_seen),
            Route("POST", "/master/users/reset", self._reset_password),
            Route("POST", "/master/users/revoke", self._revoke),
        )

    async def _master(self, visit: Visit) -> _Master | Response:
        """The logged-in master user, else the page that refuses the visit."""
        identity = await self.certificate(visit)
        if isinstance(identity, Response):
            return identity
        if not visit.session.logged_in_with(identity.user_id, identity.serial):
            # Back here after the login (a form's POST cannot be repeated: its page instead).
            page = visit.request.target if visit.request.method == "GET" else "/master/users"
            return redirect(with_next("/login/password", page))
        user = await self.ca.user(identity.user_id)
        if user is None or user.role is not UserRole.MASTER:
            return self.error_page(403, messages.MASTERS_ONLY, back_url="/")
        return _Master(user.user_id, user.organization_id)

    def _refused(self, visit: Visit, refusal: CaRefusal) -> Response:
        """The users' page again, saying why the CA refused what the form asked."""
        return self.redirect_to(visit, "/master/users", error=self.says(refusal))

    async def _users_page(
        self,
        visit: Visit,
        master: _Master,
        *,
        reset: _Initial | None = None,
    ) -> Response:
        users = await self.ca.users(master.user_id)
        rows = [_row(u) for u in users]
        organization_name = next((u.organization_name for u in users), "")
        return self.render(
            visit,
            "master_users.html",
            organization_name=organization_name,
            organization_id=master.organization_id,
            users=rows,
            reset=reset,
        )

    @behind(_master)
    async def _users(self, visit: Visit, master: _Master) -> Response:
        return await self._users_page(visit, master, reset=await self._take_reset(visit))

    async def _seal_initial(self, visit: Visit, name: str, user_id: str, password: str) -> None:
        initial = _Initial(user_id, password, self.now())
        await self.sessions.seal(
            visit.session, name, json.dumps(dataclasses.asdict(initial)), ONE_TIME_SECONDS
        )

    async def _unseal_initial(self, visit: Visit, name: str) -> _Initial | None:
        """The initial password sealed as ``name`` this session may still show."""
        sealed = await self.sessions.unseal(visit.session, name)
        if sealed is None:
            return None
        try:
            return _Initial(**json.loads(sealed))
        except (ValueError, TypeError):  # sealed in another shape (by an older gateway)
            return None

    async def _take_reset(self, visit: Visit) -> _Initial | None:
        """The password reset just made, once: it is erased as it is shown."""
        if not self.sessions.holds(visit.session, _SEALED_RESET):
            return None  # most visits of the list: no reset waits, Redis is not asked
        reset = await self._unseal_initial(visit, _SEALED_RESET)
        await self.sessions.erase(visit.session, _SEALED_RESET)
        return reset

    @behind_form(_master)
    async def _reset_password(
        self, visit: Visit, master: _Master, form: dict[str, str]
    ) -> Response:
        user_id = form.get("user_id", "")
        try:
            secret = await self.ca.reset_password(master.user_id, user_id)
        except CaRefusal as refusal:
            return self._refused(visit, refusal)
        await self._seal_initial(visit, _SEALED_RESET, user_id, secret)
        return redirect("/master/users")

    @behind_form(_master)
    async def _revoke(self, visit: Visit, master: _Master, form: dict[str, str]) -> Response:
        user_id = form.get("user_id", "")
        try:
            cause = RevocationCause(form.get("cause", ""))
        except ValueError:
            return self.redirect_to(
                visit, "/master/users", error=self.says_reason(ErrorReason.INVALID_REASON)
            )
        try:
            count = await self.ca.revoke_certificates(master.user_id, user_id, cause)
        except CaRefusal as refusal:
            return self._refused(visit, refusal)
        return self.redirect_to(
            visit,
            "/master/users",
            notice=(
                f"{user_id} の電子証明書（{count}件）を失効しました"
                f"（理由: {_CAUSE_LABELS[cause]}）。"
                "ご本人は[電子証明書発行]から新しい電子証明書を発行できます。"
            ),
        )

    @behind_form(_master)
    async def _unlock(self, visit: Visit, master: _Master, form: dict[str, str]) -> Response:
        user_id = form.get("user_id", "")
        try:
            await self.ca.unlock(master.user_id, user_id)
        except CaRefusal as refusal:
            return self._refused(visit, refusal)
        return self.redirect_to(
            visit, "/master/users", notice=f"{user_id} のロック・閉塞を解除しました。"
        )

    @behind_form(_master)
    async def _create_user(self, visit: Visit, master: _Master, form: dict[str, str]) -> Response:
        user_id = form.get("user_id", "").strip()
        try:
            user, initial = await self.ca.create_user(
                master.user_id, master.organization_id, user_id, form.get("email", "").strip()
            )
        except CaRefusal as refusal:
            shown = await self._unseal_initial(visit, _SEALED_CREATED)
            if shown is not None and shown.user_id == user_id:
                # The form again after its answer was lost (a reload): the answer it should
                # have had, not "this user ID is taken".
                return redirect("/master/users/created")
            return self.redirect_to(
                visit,
                "/master/users",
                error=self.says(refusal),
                new_user_id=form.get("user_id", ""),
                new_email=form.get("email", ""),
                error_field=_NEW_USER_FIELDS.get(refusal.metadata.get("field", ""), ""),
            )
        await self._seal_initial(visit, _SEALED_CREATED, user.user_id, initial)
        return redirect("/master/users/created")

    @behind(_master)
    async def _created(self, visit: Visit, master: _Master) -> Response:
        """一般ユーザー登録完了: the initial password, to this session only, until seen."""
        created = await self._unseal_initial(visit, _SEALED_CREATED)
        if created is None:
            return self.redirect_to(visit, "/master/users", notice=messages.INITIAL_NO_LONGER_SHOWN)
        return self.render(visit, "master_user_created.html", created=created)

    @behind_form(_master)
    async def _created_seen(self, visit: Visit, master: _Master, form: dict[str, str]) -> Response:
        """[確認しました]: the initial password is erased."""
        await self.sessions.erase(visit.session, _SEALED_CREATED)
        return redirect("/master/users")
