"""Enrollment: user authentication (SPEC B1), the e-mailed code (B2) and its resending
(issue 11), lockout (B3–B5, B9), the renewal window (C2), and issuance against a
single-use ticket (C4); also the portal's login (E4) and the password change (A5), which
check the same password under the same lockout.

A password given to the user (a new general user's, a reset one) opens neither issuance
nor login: its user must first choose their own (PASSWORD_CHANGE_REQUIRED), so that the
master user who handed it over does not know the password of the user's PKCS#12 (A5).

Every answer to a bad user ID or password is the same INVALID_CREDENTIALS, and unknown IDs
run through the same password work and the same lockout counters as real ones (B9).
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ca_service.domain import codes
from ca_service.domain.accounts import (
    SYSTEM_ACTOR,
    Account,
    AccountRole,
    AuditAction,
    AuditEntry,
    mask_email,
)
from ca_service.domain.credentials import password_problem
from ca_service.domain.identifiers import user_id_problem
from ca_service.domain.lockout import FAILURES_TO_LOCK, Access, Event, LockoutState, access
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.domain.records import CertificateRecord
from ca_service.domain.validity import JAPAN
from ca_service.errors import (
    Blocked,
    ErrorReason,
    FailedPrecondition,
    InvalidArgument,
    InvalidCredentials,
    Locked,
    ResourceExhausted,
    Unavailable,
)
from ca_service.ports import (
    AccountStore,
    CertificateStore,
    Clock,
    CodeOutcome,
    CodeStore,
    LockoutStore,
    MailTemplates,
    PasswordHasher,
    ResendLimiter,
    UserChanged,
)
from ca_service.services.accounts import UserView
from ca_service.services.issuance import IssuanceService, IssuedKeyPair
from ca_service.services.renewal import renewal_refusal
from ca_service.shared.japan import lock_end_minute

__all__ = ["AuthenticationStarted", "CodeVerified", "EnrollmentService", "EnrollmentTimes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EnrollmentTimes:
    """SPEC B2 durations; only tests with real short durations change them. (The lock
    duration belongs to the LockoutStore, which applies it atomically.)"""

    code_ttl: timedelta = codes.CODE_TTL
    ticket_ttl: timedelta = codes.TICKET_TTL


@dataclass(frozen=True, slots=True)
class AuthenticationStarted:
    session_handle: str
    code_expires_at: datetime
    masked_email: str


@dataclass(frozen=True, slots=True)
class CodeVerified:
    ticket: str
    ticket_expires_at: datetime
    user_id: str


def _locked(until: datetime) -> Locked:
    return Locked(
        f"the user ID is locked after {FAILURES_TO_LOCK} consecutive wrong passwords until "
        f"{lock_end_minute(until):%Y-%m-%d %H:%M} (Japan time)",
        metadata={"locked_until": until.isoformat()},
    )


def _blocked() -> Blocked:
    # The same words for every ID, known or not, master or general (SPEC B9).
    return Blocked(
        "the user ID is blocked after repeated locks; a general user asks its master user "
        "to unlock it, a master user asks the help desk"
    )


def _refusal(state: LockoutState, now: datetime) -> Locked | Blocked | None:
    state_access = access(state, now)
    if state_access is Access.BLOCKED:
        return _blocked()
    if state_access is Access.LOCKED and state.locked_until is not None:
        return _locked(state.locked_until)
    return None


class EnrollmentService:
    def __init__(
        self,
        *,
        accounts: AccountStore,
        certificates: CertificateStore,
        lockouts: LockoutStore,
        codes_store: CodeStore,
        passwords: PasswordHasher,
        templates: MailTemplates,
        issuance: IssuanceService,
        clock: Clock,
        code_key: bytes,
        times: EnrollmentTimes = EnrollmentTimes(),
        user_changed: UserChanged | None = None,
        resends: ResendLimiter | None = None,
    ) -> None:
        self._accounts = accounts
        self._certificates = certificates
        self._lockouts = lockouts
        self._codes = codes_store
        self._passwords = passwords
        self._templates = templates
        self._issuance = issuance
        self._clock = clock
        self._code_key = code_key
        self._times = times
        self._user_changed = user_changed
        self._resends = resends

    # -- step 1: user ID and password ---------------------------------------------------

    async def _check_password(self, user_id: str, password: str) -> Account | None:
        """The account when the password is right; None for a wrong password or an unknown
        ID, after the same amount of work. Raises Busy (before any check, so nothing is
        counted) while too many password checks are under way."""
        account = await self._accounts.account(user_id)
        ok = await self._passwords.verify(account.password_hash if account else None, password)
        return account if ok and account is not None else None

    async def _authenticate(
        self, user_id: str, password: str, now: datetime, *, initial_allowed: bool = False
    ) -> Account:
        problem = user_id_problem(user_id)
        if problem is not None or not password or len(password) > 128:
            # The format rules are public; failing them says nothing about existence.
            raise InvalidCredentials("wrong user ID or password")
        refusal = _refusal(await self._lockouts.state(user_id), now)
        if refusal is not None:
            raise refusal
        account = await self._check_password(user_id, password)
        if account is not None and account.blocked_at is not None:
            raise _blocked()
        event = Event.SUCCESS if account is not None else Event.FAILURE
        change = await self._lockouts.record(user_id, event, now)
        if not change.applied:
            # Another attempt locked the ID while this one was checking the password.
            raise _refusal(change.before, now) or _blocked()
        if account is None:
            await self._report_failure(user_id, change.before, change.after, now)
            refusal = _refusal(change.after, now)
            raise refusal or InvalidCredentials("wrong user ID or password")
        if self._passwords.needs_rehash(account.password_hash):
            new_hash = await self._passwords.hash(password)
            await self._accounts.set_password(user_id, new_hash, now)
        if account.password_initial and not initial_allowed:
            # Told only after the right password: it says nothing about existence (B9).
            raise FailedPrecondition(
                "the password was given to this user and must be changed first "
                "(general user's initial registration or password change)",
                reason=ErrorReason.PASSWORD_CHANGE_REQUIRED,
            )
        return account

    async def _report_failure(
        self, user_id: str, before: LockoutState, after: LockoutState, now: datetime
    ) -> None:
        """Audits and mails a lock or block that this failure caused (SPEC B5, F3)."""
        if after.locks == before.locks:
            return
        account = await self._accounts.account(user_id)
        if self._user_changed is not None:
            await self._user_changed(user_id)  # gateways drop their cached record now
        action = AuditAction.BLOCK if after.blocked else AuditAction.LOCK
        audit = AuditEntry(
            now,
            SYSTEM_ACTOR,
            action,
            user_id,
            {"locks": str(after.locks), "known_user": str(account is not None)},
        )
        log.warning(
            "user %s %s after %d consecutive wrong passwords",
            user_id,
            "blocked" if after.blocked else "locked",
            FAILURES_TO_LOCK,
        )
        if account is None:
            await self._accounts.record(now, [audit])
            return
        if after.blocked:
            subject, body = self._templates.blocked(user_id, account.role is AccountRole.MASTER)
            mail = OutgoingMail(MailKind.BLOCKED, account.email, subject, body)
            await self._accounts.set_blocked(user_id, now, now, [audit], [mail])
        else:
            assert after.locked_until is not None
            subject, body = self._templates.locked(user_id, after.locked_until)
            await self._accounts.record(
                now, [audit], [OutgoingMail(MailKind.LOCKED, account.email, subject, body)]
            )

    async def start_authentication(self, user_id: str, password: str) -> AuthenticationStarted:
        now = self._clock.now()
        account = await self._authenticate(user_id, password, now)
        refusal = renewal_refusal(await self._certificates.for_user(user_id), now)
        if refusal is not None:
            raise refusal
        handle = secrets.token_urlsafe(32)
        code = codes.new_code(secrets.randbelow)
        expires_at = now + self._times.code_ttl
        mac = codes.code_mac(self._code_key, handle, code)
        await self._codes.put(user_id, codes.token_key(handle), mac, expires_at, now)
        if self._resends is not None:
            await self._resends.sent(user_id, now)
        await self._mail_code(account, code, expires_at, now)
        return AuthenticationStarted(handle, expires_at, mask_email(account.email))

    async def _mail_code(
        self, account: Account, code: str, expires_at: datetime, now: datetime
    ) -> None:
        subject, body = self._templates.authentication_code(account.user_id, code, expires_at)
        # The mail expires with the code: a code delivered too late is useless.
        await self._accounts.record(
            now,
            [],
            [OutgoingMail(MailKind.CODE, account.email, subject, body, expires_at=expires_at)],
        )

    # -- 認証コードの再送 (issue 11) ------------------------------------------------------

    async def resend_code(self, session_handle: str) -> AuthenticationStarted:
        """A new code for a live authentication, mailed like the first; the old code is
        void and the tries start again. Limited per user (``domain.resend``): a refusal is
        RESEND_LIMITED with ``metadata.retry_at``. An authentication whose code expired,
        was used, voided or replaced is CODE_EXPIRED: authenticate again."""
        if self._resends is None:
            raise Unavailable("resending codes is not configured on this server")
        now = self._clock.now()
        expired = FailedPrecondition(
            "the authentication has expired; start again", reason=ErrorReason.CODE_EXPIRED
        )
        if not session_handle or len(session_handle) > 128:
            raise expired
        handle_key = codes.token_key(session_handle)
        user_id = await self._codes.holder(handle_key, now)
        account = await self._accounts.account(user_id) if user_id else None
        if account is None:
            raise expired
        refusal = _refusal(await self._lockouts.state(account.user_id), now)
        if refusal is not None:
            raise refusal  # locked meanwhile (someone else guessing): no more codes
        if account.blocked_at is not None:
            raise _blocked()
        retry_at = await self._resends.take_resend(account.user_id, now)
        if retry_at is not None:
            wait = max(1, math.ceil((retry_at - now).total_seconds()))
            raise ResourceExhausted(
                "the code cannot be sent again yet; try again at "
                f"{retry_at.astimezone(JAPAN):%Y-%m-%d %H:%M:%S} (Japan time)",
                reason=ErrorReason.RESEND_LIMITED,
                metadata={"retry_at": retry_at.isoformat(), "retry_after_seconds": str(wait)},
            )
        code = codes.new_code(secrets.randbelow)
        expires_at = now + self._times.code_ttl
        mac = codes.code_mac(self._code_key, session_handle, code)
        if await self._codes.renew(handle_key, mac, expires_at, now) is None:
            raise expired  # used or replaced while this resend was being allowed
        await self._mail_code(account, code, expires_at, now)
        return AuthenticationStarted(session_handle, expires_at, mask_email(account.email))

    # -- the portal's login (SPEC E4) ---------------------------------------------------

    async def login(self, user_id: str, password: str) -> UserView:
        """The portal's ログイン: the login password, checked like step 1 with the same
        lockout counter and the same answers (SPEC B3–B5, B9). Login is not issuance: no
        renewal window (C2), no code. Returns the account and its lockout state."""
        now = self._clock.now()
        account = await self._authenticate(user_id, password, now)
        await self._accounts.record(now, [AuditEntry(now, user_id, AuditAction.LOGIN, user_id, {})])
        return UserView(account, await self._lockouts.state(user_id), now)

    # -- パスワード変更 (SPEC A5) ---------------------------------------------------------

    async def change_password(
        self, user_id: str, current_password: str, new_password: str
    ) -> UserView:
        """The user's own password change: the current password is checked like step 1,
        under the same lockout (a wrong one counts, a locked or blocked ID is refused before
        any check), so this is no way around the lockout. The new password must follow
        SPEC A3 and differ from the current one (a given password must really be
        replaced). Also the way a given password is replaced by the user's own."""
        now = self._clock.now()
        problem = password_problem(new_password)
        if problem is not None:
            # Before the current password is checked: the rules are public, nothing counts.
            raise InvalidArgument(
                problem, reason=ErrorReason.INVALID_PASSWORD, metadata={"field": "new_password"}
            )
        account = await self._authenticate(user_id, current_password, now, initial_allowed=True)
        if new_password == current_password:
            raise InvalidArgument(
                "the new password must differ from the current one",
                reason=ErrorReason.PASSWORD_UNCHANGED,
                metadata={"field": "new_password"},
            )
        audit = AuditEntry(
            now,
            user_id,
            AuditAction.CHANGE_PASSWORD,
            user_id,
            # The gateways end the user's other sessions (Account.password_changed_at).
            {"was_initial": str(account.password_initial).lower(), "sessions": "others_ended"},
        )
        new_hash = await self._passwords.hash(new_password)
        stamp = await self._accounts.set_password(user_id, new_hash, now, [audit], initial=False)
        if self._user_changed is not None:
            await self._user_changed(user_id)  # gateways end its other sessions now
        changed = await self._accounts.account(user_id)
        assert changed is not None
        # This change's stamp, which the session that made it keeps (a reset since then
        # has a later one, which must end that session too).
        changed = replace(changed, password_changed_at=stamp)
        return UserView(changed, await self._lockouts.state(user_id), now)

    # -- step 2: the code -------------------------------------------------------------

    async def verify_code(self, session_handle: str, code: str) -> CodeVerified:
        now = self._clock.now()
        problem = codes.code_problem(code)
        if problem is not None:
            raise InvalidArgument(
                problem, reason=ErrorReason.CODE_INVALID, metadata={"field": "code"}
            )
        if not session_handle or len(session_handle) > 128:
            raise FailedPrecondition(
                "the authentication has expired; start again", reason=ErrorReason.CODE_EXPIRED
            )
        mac = codes.code_mac(self._code_key, session_handle, code)
        check = await self._codes.check(
            codes.token_key(session_handle), mac, codes.CODE_MAX_TRIES, now
        )
        if check.outcome is CodeOutcome.MATCH and check.user_id is not None:
            ticket = secrets.token_urlsafe(32)
            expires_at = now + self._times.ticket_ttl
            await self._codes.put_ticket(codes.token_key(ticket), check.user_id, expires_at, now)
            return CodeVerified(ticket, expires_at, check.user_id)
        if check.outcome is CodeOutcome.WRONG:
            raise InvalidArgument(
                f"wrong authentication code; {check.tries_left} tries left",
                reason=ErrorReason.CODE_INVALID,
                metadata={"tries_left": str(check.tries_left)},
            )
        if check.outcome is CodeOutcome.VOIDED:
            raise InvalidArgument(
                "wrong authentication code; the code is now void, request a new one",
                reason=ErrorReason.CODE_INVALID,
                metadata={"tries_left": "0"},
            )
        raise FailedPrecondition(
            "the authentication code has expired or was replaced; request a new one",
            reason=ErrorReason.CODE_EXPIRED,
        )

    # -- step 3: issuance -------------------------------------------------------------

    async def _ticket_holder(self, ticket: str, now: datetime) -> Account:
        user_id = None
        if ticket and len(ticket) <= 128:
            user_id = await self._codes.take_ticket(codes.token_key(ticket), now)
        account = await self._accounts.account(user_id) if user_id else None
        if account is None:
            raise FailedPrecondition(
                "the issuance ticket is invalid, used or expired; authenticate again",
                reason=ErrorReason.TICKET_INVALID,
            )
        refusal = renewal_refusal(await self._certificates.for_user(account.user_id), now)
        if refusal is not None:
            raise refusal  # a valid certificate was issued meanwhile
        return account

    async def issue_pkcs12(self, ticket: str, password: str) -> IssuedKeyPair:
        """SPEC C4: a server-side key in a PKCS#12 protected by the login password."""
        now = self._clock.now()
        account = await self._ticket_holder(ticket, now)
        # Not refusable: the single-use ticket is already taken, and it took a password and
        # an e-mailed code to get one.
        if not await self._passwords.verify(account.password_hash, password, refusable=False):
            raise InvalidCredentials("the PKCS#12 password must be the login password")
        # The issuance is audited with the certificate itself, in the same transaction.
        return await self._issuance.issue_with_server_key(
            user_id=account.user_id,
            organization=account.organization_name,
            password=password,
            actor=account.user_id,
        )

    async def sign_csr(self, ticket: str, csr: bytes) -> CertificateRecord:
        now = self._clock.now()
        account = await self._ticket_holder(ticket, now)
        return await self._issuance.sign_csr(
            csr,
            user_id=account.user_id,
            organization=account.organization_name,
            actor=account.user_id,
        )
