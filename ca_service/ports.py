"""The interfaces the services depend on; adapters implement them."""

from __future__ import annotations

import builtins
import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ca_service.domain.accounts import (
    Account,
    AuditEntry,
    AuditRow,
    InitialPassword,
    Organization,
)
from ca_service.domain.email_verification import EmailVerification
from ca_service.domain.lockout import Event, LockoutState
from ca_service.domain.mail import NoticeCandidate, OutboxRow, OutgoingMail
from ca_service.domain.records import (
    CertificateRecord,
    CrlKind,
    CrlSnapshot,
    PublishedCrl,
    RevocationRecord,
)
from ca_service.pki.crl import Reason

__all__ = [
    "AccountStore",
    "AuditLog",
    "CertificateStore",
    "Clock",
    "CodeCheck",
    "CodeOutcome",
    "CodeStore",
    "CrlStore",
    "EmailVerificationStore",
    "LeaseStore",
    "LockoutChange",
    "LockoutStore",
    "MailLog",
    "MailTemplates",
    "NoticeStore",
    "OldAddressNotice",
    "PasswordHasher",
    "RenderedMail",
    "ResendLimiter",
    "RevocationFeed",
    "RevocationStore",
    "UserChanged",
]


@dataclass(frozen=True, slots=True)
class LockoutChange:
    applied: bool
    before: LockoutState
    after: LockoutState


class CodeOutcome(enum.Enum):
    MATCH = "match"
    WRONG = "wrong"  # tries remain
    VOIDED = "voided"  # this miss used up the tries
    UNKNOWN = "unknown"  # expired, used, replaced or never issued


@dataclass(frozen=True, slots=True)
class CodeCheck:
    outcome: CodeOutcome
    user_id: str | None = None
    tries_left: int = 0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""


class CertificateStore(Protocol):
    async def record_issued(
        self,
        record: CertificateRecord,
        actor: str = "operator",
        details: Mapping[str, str] | None = None,
    ) -> None:
        """Durably records a signed certificate, with its audit entry naming ``actor``
        (and ``details`` besides the serial and key source); returns only after the
        commit.

        Raises :class:`ca_service.errors.AlreadyExists` when the serial is taken."""

    async def by_serial(self, serial: int) -> CertificateRecord | None: ...

    async def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None: ...

    async def for_user(self, user_id: str) -> Sequence[CertificateRecord]: ...


# -- enrollment (SPEC A, B) --------------------------------------------------------------


class LockoutStore(Protocol):
    """Lockout counters shared by every ca-service process (SPEC B3–B7), updated atomically.

    The transition rules are ``ca_service.domain.lockout.transition``; an adapter must apply
    exactly those, atomically per user ID, with ``now`` as given (never its own clock)."""

    async def state(self, user_id: str) -> LockoutState:
        """The current state (a fresh state for an ID never seen)."""

    async def record(self, user_id: str, event: Event, now: datetime) -> LockoutChange:
        """Applies ``event`` atomically. FAILURE and SUCCESS are refused (state unchanged,
        ``applied`` False) when the ID is locked or blocked at ``now``."""


class CodeStore(Protocol):
    """Authentication codes (SPEC B2), stored only as keyed MACs with a TTL."""

    async def put(
        self, user_id: str, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> None:
        """Stores the code of a new authentication; any earlier code of the user is void."""

    async def check(self, handle_key: str, mac: str, max_tries: int, now: datetime) -> CodeCheck:
        """Compares atomically; a match consumes the code, the ``max_tries``-th miss voids it."""

    async def holder(self, handle_key: str, now: datetime) -> str | None:
        """The user ID of the authentication ``handle_key`` while its code is live
        (unexpired, unused, not voided, not replaced); None otherwise."""

    async def renew(
        self, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> str | None:
        """Gives a live authentication a new code (a resend): the old code is void, the
        tries start again, ``expires_at`` is the new code's. Returns the user ID, or None
        (nothing changed) when the authentication is no longer live."""

    async def put_ticket(
        self, ticket_key: str, user_id: str, expires_at: datetime, now: datetime
    ) -> None: ...

    async def take_ticket(self, ticket_key: str, now: datetime) -> str | None:
        """The user ID of an unexpired ticket, which is consumed; None otherwise."""


class ResendLimiter(Protocol):
    """When codes went to each user, for the resend limits of ``domain.resend``, shared by
    every ca-service process and updated atomically."""

    async def sent(self, user_id: str, now: datetime) -> None:
        """Notes that a new authentication sent the user a code at ``now``."""

    async def take_resend(self, user_id: str, now: datetime) -> datetime | None:
        """Notes a resend at ``now`` and returns None when the limits allow it; otherwise
        changes nothing and returns the earliest instant they will."""


# Announces that a user's lock state or record changed (lock, block, unlock, reset), so that
# gateways following the revocation stream drop their cached copy.
UserChanged = Callable[[str], Awaitable[None]]


# -- accounts, passwords and mail (SPEC A, B5, C3) -------------------------------------


class AccountStore(Protocol):
    """Organisations, users and initial passwords. Every change is written with its audit
    entries and the mail that reports it, in one transaction."""

    async def create_organization(
        self, organization: Organization, initial: InitialPassword, audit: AuditEntry
    ) -> None:
        """Raises :class:`ca_service.errors.AlreadyExists` when the ID or name is taken."""

    async def put_initial_password(self, initial: InitialPassword, audit: AuditEntry) -> None:
        """Replaces the organisation's pending initial password; a reset of a master user
        (``initial.reset_user_id``) also stamps its ``password_changed_at``."""

    async def initial_password(self, organization_id: str) -> InitialPassword | None: ...

    async def organization(self, organization_id: str) -> Organization | None: ...

    async def register_master(
        self, initial: InitialPassword, account: Account, audit: AuditEntry
    ) -> None:
        """Consumes ``initial`` (FailedPrecondition when already used) and creates the
        master user, or (a reset) replaces the password and e-mail of
        ``initial.reset_user_id``, clears its block and stamps its ``password_changed_at``."""

    async def create_user(self, account: Account, audit: AuditEntry) -> None:
        """Raises :class:`ca_service.errors.AlreadyExists` when the user ID is taken."""

    async def account(self, user_id: str) -> Account | None: ...

    async def accounts(self, organization_id: str) -> list[Account]:
        """The organisation's users by role (general, then master), then by user ID."""

    async def set_password(
        self,
        user_id: str,
        password_hash: str,
        now: datetime,
        audit: Sequence[AuditEntry] = (),
        *,
        initial: bool | None = None,
    ) -> datetime | None:
        """Replaces the password hash; ``initial`` says whether the password was given to the
        user (True) or chosen by it (False), None keeps what it was (a rehash). A new password
        (``initial`` not None) stamps ``password_changed_at``
        (:func:`ca_service.domain.accounts.password_stamp`) and returns the stamp it wrote;
        a rehash does not (None). Raises
        :class:`ca_service.errors.NotFound` for an unknown user."""

    async def set_blocked(
        self,
        user_id: str,
        blocked_at: datetime | None,
        now: datetime,
        audit: Sequence[AuditEntry],
        mail: Sequence[OutgoingMail],
    ) -> None:
        """Records a block (durable, unlike the lockout counters) or its removal."""

    async def record(
        self, now: datetime, audit: Sequence[AuditEntry], mail: Sequence[OutgoingMail] = ()
    ) -> None:
        """Audit entries and mail that change no account row (e.g. a lock, a code)."""


class PasswordHasher(Protocol):
    """Argon2id hashing with a cap on concurrent work (SPEC A3, B9)."""

    async def verify(
        self, password_hash: str | None, password: str, *, refusable: bool = True
    ) -> bool:
        """Whether ``password`` matches; ``None`` (an unknown user) costs the same work and
        is False. Raises :class:`ca_service.errors.Busy`, before any work, when
        ``refusable`` and too many checks are under way."""

    async def hash(self, password: str) -> str: ...

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with weaker parameters than today's."""


# (subject, body)
RenderedMail = tuple[str, str]


class MailTemplates(Protocol):
    """The end user's mails (Japanese), rendered from the figures of ``domain``."""

    def authentication_code(
        self, user_id: str, code: str, expires_at: datetime
    ) -> RenderedMail: ...

    def locked(self, user_id: str, unlocks_at: datetime) -> RenderedMail: ...

    def blocked(self, user_id: str, is_master: bool) -> RenderedMail: ...

    def unlocked(self, user_id: str) -> RenderedMail: ...

    def renewal_notice(self, user_id: str, not_after: datetime) -> RenderedMail: ...

    def expiry_notice(self, user_id: str, not_after: datetime) -> RenderedMail: ...

    def email_verification(
        self, user_id: str | None, link: str, expires_at: datetime
    ) -> RenderedMail:
        """SPEC D1: the link to open within its validity; ``user_id`` None for the
        procedure portal's registration."""

    def email_changed(self, user_id: str, new_address: str, changed_at: datetime) -> RenderedMail:
        """To the old address: the user's address is now ``new_address``."""

    def procedure_completion(self, receipt_number: str, submitted_at: datetime) -> RenderedMail:
        """Seed 004: the online application was received under ``receipt_number``."""


class MailLog(Protocol):
    """What the outbox holds, for the operator (never a body)."""

    async def list(self, limit: int = 100, status: str | None = None) -> builtins.list[OutboxRow]:
        """The newest rows first, optionally of one status."""


class NoticeStore(Protocol):
    """The certificates whose renewal or expiry notice may be due, and queueing them
    exactly once (the notice's ``dedupe_key`` decides, whoever runs first)."""

    async def candidates(
        self, *, expiring_before: datetime, now: datetime, expired_before: datetime
    ) -> list[NoticeCandidate]:
        """Each user's newest unrevoked certificate with ``not_after < expiring_before``
        that is still valid at ``now`` with no renewal notice queued, or expired before
        ``expired_before`` with no expiry notice queued (users with an account only)."""

    async def queue(self, notices: Sequence[tuple[str, OutgoingMail]], now: datetime) -> int:
        """Queues each ``(serial, mail)`` whose certificate is still unrevoked and the
        user's newest, unless its ``dedupe_key`` is taken; returns how many were queued."""


# Renders the mail that tells a user's old address about the change, given that address;
# called inside the store's transaction, with the address it finds there.
OldAddressNotice = Callable[[str], OutgoingMail]


class EmailVerificationStore(Protocol):
    """E-mail verification links (SPEC D1), by the SHA-256 of their token, with the mail
    and audit entries they cause, each change in one transaction."""

    async def put(
        self,
        link: EmailVerification,
        mail: OutgoingMail,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """Stores a new link and queues its mail. Every unused, unexpired link of the same
        user (an e-mail change) or the same address (a registration) expires at
        ``link.created_at``. Records expired longer than the retention may be deleted."""

    async def find(self, token_hash: str) -> EmailVerification | None: ...

    async def consume(
        self,
        token_hash: str,
        now: datetime,
        *,
        notice: OldAddressNotice | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> EmailVerification | None:
        """Marks the link used if it is unused and unexpired at ``now`` — atomically, so of
        concurrent calls exactly one gets the link back; the others (and a link in any
        other state) get None. For a user's e-mail change it also makes the address the
        user's, queues ``notice(old address)`` when the address changed, and writes
        ``audit``, in the same transaction. NotFound (USER_NOT_FOUND) when the user is gone
        (and the link stays unused)."""

    async def queue(self, mail: OutgoingMail, now: datetime) -> bool:
        """Queues ``mail`` alone; False when its ``dedupe_key`` was queued already."""


class AuditLog(Protocol):
    """Reading the hash-chained audit log (SPEC F3); entries are written by the stores,
    with the change they record."""

    async def list(
        self,
        *,
        user_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditRow]:
        """Newest first."""

    async def verify(self) -> tuple[int, int | None, str]:
        """(rows checked, first broken row ID or None, why) over the whole chain."""


# -- revocation and CRLs (SPEC C6, C7, F1, F2) ---------------------------------------------


class RevocationStore(Protocol):
    """Revocations, numbered by one sequence that commits in order."""

    async def revoke(
        self,
        *,
        serial: int | None,
        user_id: str | None,
        reason: Reason,
        invalidity_date: datetime | None,
        actor: str,
        now: datetime,
    ) -> list[RevocationRecord]:
        """Revokes one certificate (``serial``) or every valid certificate of ``user_id``,
        with the audit entries, at once. NotFound (CERTIFICATE_NOT_FOUND) when there is
        nothing to revoke, FailedPrecondition (ALREADY_REVOKED) for a revoked serial."""

    async def since(self, sequence: int, limit: int = 1000) -> list[RevocationRecord]:
        """The revocations after ``sequence``, in order."""

    async def of_serial(self, serial: int) -> RevocationRecord | None: ...

    async def latest_sequence(self) -> int:
        """0 before the first revocation."""


class CrlStore(Protocol):
    """The entries to publish and the CRLs last published, agreed on by compare-and-set
    between the processes that publish into one store."""

    async def entries(
        self, *, after_sequence: int, not_expired_at: datetime
    ) -> tuple[list[bytes], int]:
        """The pre-encoded entries of unexpired revocations after ``after_sequence``, and
        the highest sequence there is (what a CRL of them is current through)."""

    async def latest_sequence(self) -> int: ...

    async def next_number(self, count: int = 1) -> int:
        """The first of ``count`` new consecutive CRL numbers (base and delta share one
        counter)."""

    async def snapshot(self) -> CrlSnapshot: ...

    async def publish_base(
        self, base: PublishedCrl, delta: PublishedCrl, *, replacing: CrlSnapshot
    ) -> bool:
        """Records a base (all but its DER: ``stored`` is false in the snapshot until
        :meth:`store_base` wrote it) with its first delta, unless another process published
        since ``replacing`` was read. Durable when it returns: the numbers are taken."""

    async def store_base(self, base: PublishedCrl) -> bool:
        """Writes the DER of the recorded base ``base``, without holding up other writes;
        False when that base is no longer the recorded one."""

    async def publish_delta(self, delta: PublishedCrl, *, replacing: CrlSnapshot) -> bool:
        """Stores a delta over the stored base unless another process published since."""

    async def published(self, kind: CrlKind | None = None) -> dict[CrlKind, PublishedCrl]:
        """The stored CRLs with their DER (or only the one of ``kind``); a base whose DER is
        not stored yet is left out."""


class LeaseStore(Protocol):
    """Named leases with an expiry, shared by every ca-service process on one store: the
    holder of a lease does the background duty it names, the others stand by."""

    async def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Takes lease ``name`` for ``holder`` until ``now + ttl`` if it is free, expired or
        already ``holder``'s (a renewal); False while another holder's lease runs."""

    async def release(self, name: str, holder: str) -> None:
        """Gives the lease up at once (if ``holder`` still holds it)."""

    async def holder(self, name: str, now: datetime) -> str | None:
        """Who holds lease ``name`` at ``now`` (None when free or expired)."""


class RevocationFeed(Protocol):
    """Wakes watchers in every process when a revocation may have happened or a user's
    lock state changed. The store stays the truth: a lost wake-up costs a poll."""

    async def publish(self, sequence: int) -> None:
        """Announces revocations up to ``sequence``."""

    async def publish_user_change(self, user_id: str) -> None:
        """Announces that a user's lock state or record changed."""

    def user_changes(self) -> AbstractContextManager[set[str]]:
        """A set that collects the user IDs changed while the block runs."""

    async def wait(self, seconds: float) -> None:
        """Returns at the next announcement, or after ``seconds``."""
