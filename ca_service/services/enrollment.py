"""Enrollment: user authentication (SPEC B1), the e-mailed code (B2), lockout (B3–B5, B9),
the renewal window (C2), and issuance against a single-use ticket (C4); also the portal's
login (E4), which checks the same password under the same lockout.

Every answer to a bad user ID or password is the same INVALID_CREDENTIALS, and unknown IDs
run through the same password work and the same lockout counters as real ones (B9).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_service.adapters.mail import templates
from ca_service.adapters.mail.outbox import OutgoingMail
from ca_service.adapters.passwords import Argon2Passwords
from ca_service.adapters.sql.accounts import SqlAccountStore
from ca_service.domain import codes
from ca_service.domain.accounts import Account, AccountRole, AuditEntry, mask_email
from ca_service.domain.identifiers import user_id_problem
from ca_service.domain.lockout import Access, Event, LockoutState, access
from ca_service.domain.records import CertificateRecord, CertificateStatus, status_at
from ca_service.domain.validity import JAPAN, renewal_opens_at
from ca_service.errors import (
    AlreadyIssued,
    Blocked,
    FailedPrecondition,
    InvalidArgument,
    InvalidCredentials,
    Locked,
)
from ca_service.ports import (
    CertificateStore,
    Clock,
    CodeOutcome,
    CodeStore,
    LockoutStore,
    UserChanged,
)
from ca_service.services.accounts import UserView
from ca_service.services.issuance import IssuanceService, IssuedKeyPair

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
        f"the user ID is locked after {6} consecutive wrong passwords until "
        f"{until.astimezone(JAPAN):%Y-%m-%d %H:%M} (Japan time)",
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


def current_certificate(
    records: Sequence[CertificateRecord], now: datetime
) -> CertificateRecord | None:
    """The user's valid, unrevoked certificate that expires last, if any (SPEC C2/C6)."""
    valid = [r for r in records if status_at(r, now) is CertificateStatus.VALID]
    return max(valid, key=lambda r: r.not_after, default=None)


class EnrollmentService:
    def __init__(
        self,
        *,
        accounts: SqlAccountStore,
        certificates: CertificateStore,
        lockouts: LockoutStore,
        codes_store: CodeStore,
        passwords: Argon2Passwords,
        issuance: IssuanceService,
        clock: Clock,
        code_key: bytes,
        times: EnrollmentTimes = EnrollmentTimes(),
        user_changed: UserChanged | None = None,
    ) -> None:
        self._accounts = accounts
        self._certificates = certificates
        self._lockouts = lockouts
        self._codes = codes_store
        self._passwords = passwords
        self._issuance = issuance
        self._clock = clock
        self._code_key = code_key
        self._times = times
        self._user_changed = user_changed

    # -- step 1: user ID and password ---------------------------------------------------

    async def _check_password(self, user_id: str, password: str) -> Account | None:
        """The account when the password is right; None for a wrong password or an unknown
        ID, after the same amount of work."""
        account = await self._accounts.account(user_id)
        ok = await asyncio.to_thread(
            self._passwords.verify, account.password_hash if account else None, password
        )
        return account if ok and account is not None else None

    async def _authenticate(self, user_id: str, password: str, now: datetime) -> Account:
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
            new_hash = await asyncio.to_thread(self._passwords.hash, password)
            await self._accounts.set_password(user_id, new_hash, now)
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
        action = "block" if after.blocked else "lock"
        audit = AuditEntry(
            now,
            "system",
            action,
            user_id,
            {"locks": str(after.locks), "known_user": str(account is not None)},
        )
        log.warning(
            "user %s %s after %d consecutive wrong passwords",
            user_id,
            "blocked" if after.blocked else "locked",
            6,
        )
        if account is None:
            await self._accounts.record(now, [audit])
            return
        if after.blocked:
            subject, body = templates.blocked(user_id, account.role is AccountRole.MASTER)
            mail = OutgoingMail("blocked", account.email, subject, body)
            await self._accounts.set_blocked(user_id, now, now, [audit], [mail])
        else:
            assert after.locked_until is not None
            subject, body = templates.locked(user_id, after.locked_until)
            await self._accounts.record(
                now, [audit], [OutgoingMail("locked", account.email, subject, body)]
            )

    async def start_authentication(self, user_id: str, password: str) -> AuthenticationStarted:
        now = self._clock.now()
        account = await self._authenticate(user_id, password, now)
        current = current_certificate(await self._certificates.for_user(user_id), now)
        if current is not None:
            opens = renewal_opens_at(current.not_after)
            if now < opens:
                raise AlreadyIssued(
                    "a valid certificate has already been issued; renewal opens on "
                    f"{opens.astimezone(JAPAN):%Y-%m-%d} (Japan time)",
                    metadata={
                        "renewal_opens_at": opens.isoformat(),
                        "serial_number": current.serial_hex,
                    },
                )
        handle = secrets.token_urlsafe(32)
        code = codes.new_code(secrets.randbelow)
        expires_at = now + self._times.code_ttl
        mac = codes.code_mac(self._code_key, handle, code)
        await self._codes.put(user_id, codes.token_key(handle), mac, expires_at, now)
        subject, body = templates.authentication_code(user_id, code, expires_at)
        # The mail expires with the code: a code delivered too late is useless.
        await self._accounts.record(
            now, [], [OutgoingMail("code", account.email, subject, body, expires_at=expires_at)]
        )
        return AuthenticationStarted(handle, expires_at, mask_email(account.email))

    # -- the portal's login (SPEC E4) ---------------------------------------------------

    async def login(self, user_id: str, password: str) -> UserView:
        """The portal's ログイン: the login password, checked like step 1 with the same
        lockout counter and the same answers (SPEC B3–B5, B9). Login is not issuance: no
        renewal window (C2), no code. Returns the account and its lockout state."""
        now = self._clock.now()
        account = await self._authenticate(user_id, password, now)
        await self._accounts.record(now, [AuditEntry(now, user_id, "login", user_id, {})])
        return UserView(account, await self._lockouts.state(user_id), now)

    # -- step 2: the code -------------------------------------------------------------

    async def verify_code(self, session_handle: str, code: str) -> CodeVerified:
        now = self._clock.now()
        problem = codes.code_problem(code)
        if problem is not None:
            raise InvalidArgument(problem, reason="CODE_INVALID", metadata={"field": "code"})
        if not session_handle or len(session_handle) > 128:
            raise FailedPrecondition(
                "the authentication has expired; start again", reason="CODE_EXPIRED"
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
                reason="CODE_INVALID",
                metadata={"tries_left": str(check.tries_left)},
            )
        if check.outcome is CodeOutcome.VOIDED:
            raise InvalidArgument(
                "wrong authentication code; the code is now void, request a new one",
                reason="CODE_INVALID",
                metadata={"tries_left": "0"},
            )
        raise FailedPrecondition(
            "the authentication code has expired or was replaced; request a new one",
            reason="CODE_EXPIRED",
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
                reason="TICKET_INVALID",
            )
        current = current_certificate(await self._certificates.for_user(account.user_id), now)
        if current is not None and now < renewal_opens_at(current.not_after):
            raise AlreadyIssued("a valid certificate was issued meanwhile")
        return account

    async def issue_pkcs12(self, ticket: str, password: str) -> IssuedKeyPair:
        """SPEC C4: a server-side key in a PKCS#12 protected by the login password."""
        now = self._clock.now()
        account = await self._ticket_holder(ticket, now)
        if not await asyncio.to_thread(self._passwords.verify, account.password_hash, password):
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
