"""Account administration (SPEC A1–A5, B6): organisations, master and general users,
initial passwords, unlocking. The caller is the operator (``actor`` None) or a master
user on whose behalf a gateway acts."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca_service.domain.accounts import (
    OPERATOR_ACTOR,
    Account,
    AccountRole,
    AuditAction,
    AuditEntry,
    InitialPassword,
    Organization,
    email_problem,
    may_manage,
)
from ca_service.domain.credentials import (
    generate_initial_password,
    password_problem,
)
from ca_service.domain.holdings import CertificateSummary, summarize
from ca_service.domain.identifiers import organization_problem, user_id_problem
from ca_service.domain.lockout import Access, Event, LockoutState, access
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.errors import (
    ErrorReason,
    InvalidArgument,
    InvalidCredentials,
    NotFound,
    PermissionDenied,
)
from ca_service.ports import (
    AccountStore,
    CertificateStore,
    Clock,
    LockoutStore,
    MailTemplates,
    PasswordHasher,
    UserChanged,
)

__all__ = ["AccountService", "NewSecret", "UserView"]

_ORGANIZATION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_ORGANIZATION_ID = re.compile(r"[A-Za-z0-9-]{4,32}")


@dataclass(frozen=True, slots=True)
class UserView:
    account: Account
    lockout: LockoutState
    now: datetime
    # A master user's (or the operator's) listing only.
    certificate: CertificateSummary | None = None


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A password shown once to whoever asked for it; only its hash is kept."""

    value: str
    expires_at: datetime | None


# The audit detail of a password change or reset: the gateways end the user's sessions logged
# in before it (``Account.password_changed_at``); the user's own change keeps the session
# that made it.
_SESSIONS_END = "ended"


def _require(problem: str | None, reason: ErrorReason, field: str) -> None:
    if problem is not None:
        raise InvalidArgument(problem, reason=reason, metadata={"field": field})


class AccountService:
    def __init__(
        self,
        *,
        accounts: AccountStore,
        lockouts: LockoutStore,
        passwords: PasswordHasher,
        templates: MailTemplates,
        clock: Clock,
        initial_password_ttl: timedelta = timedelta(days=14),
        user_changed: UserChanged | None = None,
        certificates: CertificateStore | None = None,
    ) -> None:
        self._accounts = accounts
        self._certificates = certificates
        self._lockouts = lockouts
        self._passwords = passwords
        self._templates = templates
        self._clock = clock
        self._initial_ttl = initial_password_ttl
        self._user_changed = user_changed

    async def _announce(self, user_id: str) -> None:
        """Tells gateways that this user's record changed (they drop their cached copy)."""
        if self._user_changed is not None:
            await self._user_changed(user_id)

    async def _hash(self, password: str) -> str:
        return await self._passwords.hash(password)

    async def _actor(self, acting_user_id: str) -> Account | None:
        """None for the operator; the acting master user's account otherwise."""
        if not acting_user_id:
            return None
        actor = await self._accounts.account(acting_user_id)
        if actor is None or actor.role is not AccountRole.MASTER:
            raise PermissionDenied("only the operator or a master user may manage users")
        return actor

    async def managed(self, acting_user_id: str, user_id: str) -> tuple[Account | None, Account]:
        """(the acting master user or None for the operator, the target) when the caller may
        manage the target (SPEC A5, B6). Another organisation's user is USER_NOT_FOUND, as
        if it did not exist; a master user managing another master is PERMISSION_DENIED."""
        return await self._managed(acting_user_id, user_id)

    async def _managed(self, acting_user_id: str, user_id: str) -> tuple[Account | None, Account]:
        actor = await self._actor(acting_user_id)
        target = await self._accounts.account(user_id)
        if target is None or (
            actor is not None and target.organization_id != actor.organization_id
        ):
            # A master user learns nothing about other organisations' users.
            raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
        if not may_manage(actor, target) and not (actor and actor.user_id == target.user_id):
            raise PermissionDenied(
                "a master user manages only the general users of its "
                "organisation; master users are managed by the operator"
            )
        return actor, target

    # -- organisations and master users (A4) ------------------------------------------

    async def create_organization(
        self, name: str, organization_id: str = ""
    ) -> tuple[Organization, NewSecret]:
        _require(organization_problem(name), ErrorReason.INVALID_ORGANIZATION, "name")
        if organization_id and not _ORGANIZATION_ID.fullmatch(organization_id):
            raise InvalidArgument(
                "organization ID must be 4-32 ASCII letters, digits or '-'",
                reason=ErrorReason.INVALID_ORGANIZATION_ID,
                metadata={"field": "organization_id"},
            )
        now = self._clock.now()
        organization_id = organization_id or "".join(
            secrets.choice(_ORGANIZATION_ALPHABET) for _ in range(10)
        )
        organization = Organization(organization_id, name, now)
        secret = generate_initial_password()
        initial = InitialPassword(
            organization_id, await self._hash(secret), None, now, now + self._initial_ttl
        )
        await self._accounts.create_organization(
            organization,
            initial,
            AuditEntry(
                now,
                OPERATOR_ACTOR,
                AuditAction.CREATE_ORGANIZATION,
                None,
                {"organization_id": organization_id, "name": name},
            ),
        )
        return organization, NewSecret(secret, initial.expires_at)

    async def register_master(
        self,
        *,
        organization_id: str,
        initial_password: str,
        user_id: str,
        password: str,
        email: str,
    ) -> Account:
        now = self._clock.now()
        initial = await self._accounts.initial_password(organization_id)
        # Refused with Busy (nothing checked) while too many checks are under way.
        ok = await self._passwords.verify(
            initial.password_hash if initial else None, initial_password
        )
        if initial is None or not ok or now >= initial.expires_at:
            raise InvalidCredentials(
                "wrong organization ID or initial password, or the initial password has expired"
            )
        if initial.reset_user_id is not None:
            user_id = initial.reset_user_id
        _require(user_id_problem(user_id), ErrorReason.INVALID_USER_ID, "user_id")
        _require(password_problem(password), ErrorReason.INVALID_PASSWORD, "password")
        _require(email_problem(email), ErrorReason.INVALID_EMAIL, "email")
        organization = await self._accounts.organization(organization_id)
        assert organization is not None
        account = Account(
            user_id,
            organization_id,
            organization.name,
            AccountRole.MASTER,
            email,
            await self._hash(password),
            None,
            now,
        )
        action = AuditAction.RESET_MASTER if initial.reset_user_id else AuditAction.REGISTER_MASTER
        details = {"organization_id": organization_id}
        if initial.reset_user_id is not None:
            details["sessions"] = _SESSIONS_END
        await self._accounts.register_master(
            initial, account, AuditEntry(now, user_id, action, user_id, details)
        )
        if initial.reset_user_id is not None:
            # A reset also clears a lock or block: the operator vouched for the person.
            await self._lockouts.record(user_id, Event.UNLOCK, now)
            await self._announce(user_id)
        registered = await self._accounts.account(user_id)
        assert registered is not None
        return registered

    # -- general users (A5) -------------------------------------------------------------

    async def create_user(
        self, *, acting_user_id: str, organization_id: str, user_id: str, email: str
    ) -> tuple[Account, NewSecret]:
        actor = await self._actor(acting_user_id)
        if actor is not None:
            organization_id = organization_id or actor.organization_id
            if organization_id != actor.organization_id:
                raise PermissionDenied("a master user registers users of its own organisation")
        _require(user_id_problem(user_id), ErrorReason.INVALID_USER_ID, "user_id")
        _require(email_problem(email), ErrorReason.INVALID_EMAIL, "email")
        organization = await self._accounts.organization(organization_id)
        if organization is None:
            raise NotFound(
                f"no organisation {organization_id}", reason=ErrorReason.ORGANIZATION_NOT_FOUND
            )
        now = self._clock.now()
        secret = generate_initial_password()
        account = Account(
            user_id,
            organization_id,
            organization.name,
            AccountRole.GENERAL,
            email,
            await self._hash(secret),
            None,
            now,
            # SPEC A5: the user chooses its own at its initial registration.
            password_initial=True,
        )
        await self._accounts.create_user(
            account,
            AuditEntry(
                now,
                actor.user_id if actor else OPERATOR_ACTOR,
                AuditAction.REGISTER_USER,
                user_id,
                {"organization_id": organization_id},
            ),
        )
        return account, NewSecret(secret, None)

    # -- state, unlock, reset (B6) ------------------------------------------------------

    async def own_record(self, user_id: str) -> UserView:
        """A user's own record: what the gateway asks for the user whose certificate it
        has just verified (role, organisation, lock state)."""
        target = await self._accounts.account(user_id)
        if target is None:
            raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
        return UserView(target, await self._lockouts.state(user_id), self._clock.now())

    async def user(self, *, acting_user_id: str, user_id: str) -> UserView:
        actor = await self._actor(acting_user_id)
        target = await self._accounts.account(user_id)
        if target is None or (
            actor is not None and target.organization_id != actor.organization_id
        ):
            raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
        return UserView(target, await self._lockouts.state(user_id), self._clock.now())

    async def users(self, *, acting_user_id: str, organization_id: str) -> list[UserView]:
        actor = await self._actor(acting_user_id)
        if actor is not None:
            organization_id = organization_id or actor.organization_id
            if organization_id != actor.organization_id:
                raise PermissionDenied("a master user sees only its own organisation")
        if await self._accounts.organization(organization_id) is None:
            raise NotFound(
                f"no organisation {organization_id}", reason=ErrorReason.ORGANIZATION_NOT_FOUND
            )
        now = self._clock.now()
        accounts = await self._accounts.accounts(organization_id)
        states = await asyncio.gather(*(self._lockouts.state(a.user_id) for a in accounts))
        summaries: list[CertificateSummary | None] = [None] * len(accounts)
        certificates = self._certificates
        if certificates is not None:
            held = await asyncio.gather(*(certificates.for_user(a.user_id) for a in accounts))
            summaries = [summarize(records, now) for records in held]
        return [UserView(a, s, now, c) for a, s, c in zip(accounts, states, summaries, strict=True)]

    async def unlock(self, *, acting_user_id: str, user_id: str) -> UserView:
        actor, target = await self._managed(acting_user_id, user_id)
        if actor is not None and actor.user_id == target.user_id:
            raise PermissionDenied("a master user cannot unlock itself; ask the operator")
        now = self._clock.now()
        change = await self._lockouts.record(user_id, Event.UNLOCK, now)
        was = access(change.before, now) if target.blocked_at is None else Access.BLOCKED
        subject, body = self._templates.unlocked(user_id)
        # Tell the user only when something was actually cleared.
        mail = (
            []
            if was is Access.OPEN
            else [OutgoingMail(MailKind.UNLOCKED, target.email, subject, body)]
        )
        actor_name = actor.user_id if actor else OPERATOR_ACTOR
        audit = AuditEntry(now, actor_name, AuditAction.UNLOCK, user_id, {"was": was.value})
        await self._accounts.set_blocked(user_id, None, now, [audit], mail)
        await self._announce(user_id)
        return await self.user(acting_user_id=acting_user_id, user_id=user_id)

    async def reset_password(self, *, acting_user_id: str, user_id: str) -> NewSecret:
        actor, target = await self._managed(acting_user_id, user_id)
        now = self._clock.now()
        actor_name = actor.user_id if actor else OPERATOR_ACTOR
        if target.role is AccountRole.MASTER:
            if actor is not None:
                raise PermissionDenied("a master user's password is reset by the operator")
            secret = generate_initial_password()
            initial = InitialPassword(
                target.organization_id,
                await self._hash(secret),
                target.user_id,
                now,
                now + self._initial_ttl,
            )
            await self._accounts.put_initial_password(
                initial,
                AuditEntry(
                    now,
                    actor_name,
                    AuditAction.RESET_PASSWORD,
                    user_id,
                    {"role": AccountRole.MASTER.value, "sessions": _SESSIONS_END},
                ),
            )
            await self._announce(user_id)  # gateways end its sessions now
            return NewSecret(secret, initial.expires_at)
        secret = generate_initial_password()
        await self._accounts.set_password(
            user_id,
            await self._hash(secret),
            now,
            initial=True,  # the user replaces it with its own (SPEC A5)
            audit=[
                AuditEntry(
                    now,
                    actor_name,
                    AuditAction.RESET_PASSWORD,
                    user_id,
                    {"role": AccountRole.GENERAL.value, "sessions": _SESSIONS_END},
                )
            ],
        )
        await self._announce(user_id)  # gateways end its sessions now
        return NewSecret(secret, None)
