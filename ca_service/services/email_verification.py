"""E-mail verification (SPEC A6, D1): a single-use link, valid 24 hours, mailed through the
outbox; a CA user's new address becomes active only when its link is opened, and the old
address is told. The procedure portal verifies its applicants' addresses the same way and
sends their completion mail (seed 004, SPEC D3).

The token exists only in the mail: the store keeps its SHA-256 (see
``ca_service.domain.email_verification``), and no log line or error message carries it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ca_service.domain.accounts import (
    OPERATOR_ACTOR,
    AuditAction,
    AuditEntry,
    email_problem,
    mask_email,
)
from ca_service.domain.email_verification import (
    EmailVerification,
    LinkState,
    VerificationPurpose,
    link_base_problem,
    link_state,
    link_token_hash,
    may_use,
    new_link_token,
    receipt_number_problem,
    verification_link,
)
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.domain.profiles import Caller, Role
from ca_service.domain.rules import EMAIL_LINK_TTL
from ca_service.errors import (
    CAError,
    ErrorReason,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from ca_service.ports import (
    AccountStore,
    Clock,
    EmailVerificationStore,
    MailTemplates,
    UserChanged,
)

__all__ = ["EmailVerificationService", "LinkRequested", "VerifiedAddress"]


@dataclass(frozen=True, slots=True)
class LinkRequested:
    expires_at: datetime
    masked_address: str


@dataclass(frozen=True, slots=True)
class VerifiedAddress:
    purpose: VerificationPurpose
    address: str
    user_id: str | None


def _refusal(state: LinkState) -> CAError:
    """The answer for a link that cannot be opened. Messages never quote the token."""
    if state is LinkState.EXPIRED:
        return FailedPrecondition(
            "the e-mail verification link has expired or was replaced by a newer one",
            reason=ErrorReason.EMAIL_LINK_EXPIRED,
        )
    if state is LinkState.USED:
        return FailedPrecondition(
            "the e-mail verification link was used already", reason=ErrorReason.EMAIL_LINK_USED
        )
    return NotFound("no such e-mail verification link", reason=ErrorReason.EMAIL_LINK_UNKNOWN)


def _invalid(problem: str | None, field: str, reason: ErrorReason) -> None:
    if problem is not None:
        raise InvalidArgument(problem, reason=reason, metadata={"field": field})


class EmailVerificationService:
    def __init__(
        self,
        *,
        links: EmailVerificationStore,
        accounts: AccountStore,
        templates: MailTemplates,
        clock: Clock,
        user_changed: UserChanged | None = None,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._links = links
        self._accounts = accounts
        self._templates = templates
        self._clock = clock
        self._user_changed = user_changed
        self._token_bytes = token_bytes

    async def request(
        self,
        caller: Caller,
        purpose: VerificationPurpose,
        *,
        user_id: str,
        address: str,
        link_base_url: str,
    ) -> LinkRequested:
        """Mails a new link for ``address`` (and expires the older ones of the same user,
        or of the same address for a registration)."""
        if not may_use(caller.role, purpose):
            raise PermissionDenied(f"role {caller.role.value} may not verify {purpose.value}")
        _invalid(email_problem(address), "address", ErrorReason.INVALID_EMAIL)
        _invalid(link_base_problem(link_base_url), "link_base_url", ErrorReason.INVALID_ARGUMENT)
        now = self._clock.now()
        audit: list[AuditEntry] = []
        if purpose is VerificationPurpose.USER_EMAIL_CHANGE:
            account = await self._accounts.account(user_id) if user_id else None
            if account is None:
                raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
            if account.email == address:
                raise InvalidArgument(
                    "the address is the user's current address",
                    reason=ErrorReason.EMAIL_UNCHANGED,
                    metadata={"field": "address"},
                )
            actor = OPERATOR_ACTOR if caller.role is Role.OPERATOR else user_id
            audit.append(
                AuditEntry(
                    now,
                    actor,
                    AuditAction.REQUEST_EMAIL_CHANGE,
                    user_id,
                    {"address": mask_email(address)},
                )
            )
        elif user_id:
            raise InvalidArgument("a registration names no user", metadata={"field": "user_id"})
        token = new_link_token(self._token_bytes)
        token_hash = link_token_hash(token)
        assert token_hash is not None  # a token we made is well-formed
        expires_at = now + EMAIL_LINK_TTL
        link = EmailVerification(
            token_hash=token_hash,
            purpose=purpose,
            user_id=user_id or None,
            address=address,
            created_at=now,
            expires_at=expires_at,
        )
        subject, body = self._templates.email_verification(
            link.user_id, verification_link(link_base_url, token), expires_at
        )
        # The mail is pointless once the link has expired; its body (the link) is erased
        # from the outbox once it is sent.
        mail = OutgoingMail(
            MailKind.EMAIL_VERIFICATION, address, subject, body, expires_at=expires_at
        )
        await self._links.put(link, mail, audit)
        return LinkRequested(expires_at, mask_email(address))

    async def confirm(
        self, caller: Caller, token: str, *, check_only: bool = False
    ) -> VerifiedAddress:
        """Opens a link once (``check_only``: only says what opening it would do). A link
        of a purpose the caller does not serve is unknown to it, and stays unused."""
        token_hash = link_token_hash(token)
        link = None if token_hash is None else await self._links.find(token_hash)
        if link is not None and not may_use(caller.role, link.purpose):
            link = None
        now = self._clock.now()
        state = link_state(link, now)
        if link is None or token_hash is None or state is not LinkState.VALID:
            raise _refusal(state)
        if check_only:
            return VerifiedAddress(link.purpose, link.address, link.user_id)
        audit = []
        notice = None
        if link.purpose is VerificationPurpose.USER_EMAIL_CHANGE:
            assert link.user_id is not None
            user_id = link.user_id
            actor = OPERATOR_ACTOR if caller.role is Role.OPERATOR else user_id
            audit.append(
                AuditEntry(
                    now,
                    actor,
                    AuditAction.CHANGE_EMAIL,
                    user_id,
                    {"address": mask_email(link.address)},
                )
            )

            def notice(old_address: str) -> OutgoingMail:
                subject, body = self._templates.email_changed(user_id, link.address, now)
                return OutgoingMail(MailKind.EMAIL_CHANGED, old_address, subject, body)

        consumed = await self._links.consume(token_hash, now, notice=notice, audit=audit)
        if consumed is None:
            # Another open (or a newer link) got there between our read and our write.
            raise _refusal(link_state(await self._links.find(token_hash), now))
        if consumed.user_id is not None and self._user_changed is not None:
            # Gateways drop their cached record of the user (its address changed).
            await self._user_changed(consumed.user_id)
        return VerifiedAddress(consumed.purpose, consumed.address, consumed.user_id)

    async def send_completion(
        self, caller: Caller, *, address: str, receipt_number: str, submitted_at: datetime
    ) -> bool:
        """Queues the procedure portal's completion mail, once per receipt number."""
        if caller.role is not Role.PORTAL:
            raise PermissionDenied("only the procedure portal sends its completion mail")
        _invalid(email_problem(address), "address", ErrorReason.INVALID_EMAIL)
        _invalid(
            receipt_number_problem(receipt_number), "receipt_number", ErrorReason.INVALID_ARGUMENT
        )
        subject, body = self._templates.procedure_completion(receipt_number, submitted_at)
        mail = OutgoingMail(
            MailKind.PROCEDURE_COMPLETION,
            address,
            subject,
            body,
            dedupe_key=f"{MailKind.PROCEDURE_COMPLETION}:{receipt_number}",
        )
        return await self._links.queue(mail, self._clock.now())
