"""In-memory implementations of the ports (``ca_service.ports``) and a hand-moved clock,
for unit tests of the services that need no Redis, SQL or network.

They keep the contracts the ports document (single-use tickets, the lockout table applied
atomically, compare-and-set of CRLs, dedupe keys of notices, audit and mail written with
the change), so a service test that passes here exercises the same rules as the
integration tests against the real adapters.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ca_service import ports
from ca_service.adapters.redis.revocation_feed import RedisRevocationFeed
from ca_service.domain.accounts import (
    Account,
    AuditAction,
    AuditEntry,
    AuditRow,
    InitialPassword,
    Organization,
    password_stamp,
)
from ca_service.domain.crl_schedule import CrlState
from ca_service.domain.email_verification import (
    LINK_RECORD_RETENTION,
    EmailVerification,
    VerificationPurpose,
)
from ca_service.domain.lockout import (
    LOCK_DURATION,
    Access,
    Event,
    LockoutState,
    access,
    transition,
)
from ca_service.domain.mail import MailKind, NoticeCandidate, OutboxRow, OutgoingMail, notice_key
from ca_service.domain.records import (
    CertificateRecord,
    CrlKind,
    CrlSnapshot,
    PublishedCrl,
    RevocationRecord,
)
from ca_service.domain.resend import DEFAULT_RESEND_LIMITS, ResendLimits, resend_retry_at
from ca_service.errors import (
    AlreadyExists,
    Busy,
    ErrorReason,
    FailedPrecondition,
    NotFound,
    StoreError,
)
from ca_service.pki.crl import Reason, encode_entry
from ca_service.ports import CodeCheck, CodeOutcome, LockoutChange

__all__ = [
    "FakeClock",
    "Journal",
    "MemoryAccounts",
    "MemoryAudit",
    "MemoryCertificates",
    "MemoryCodes",
    "MemoryCrls",
    "MemoryEmailVerifications",
    "MemoryFeed",
    "MemoryLockouts",
    "MemoryNotices",
    "MemoryPasswords",
    "MemoryRevocations",
    "MemoryStores",
]

START = datetime(2027, 10, 21, 1, 2, 3, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (the services never read the system clock)."""

    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


# -- certificates, accounts, audit and mail ----------------------------------------------


@dataclass
class Journal:
    """What the stores wrote besides their rows: the audit log and the outbox."""

    audit: list[AuditEntry] = field(default_factory=list)
    mail: list[tuple[datetime, OutgoingMail]] = field(default_factory=list)

    def write(
        self, audit: Sequence[AuditEntry], mail: Sequence[OutgoingMail], now: datetime
    ) -> None:
        self.audit.extend(audit)
        self.mail.extend((now, message) for message in mail)

    def queue_once(self, mail: OutgoingMail, now: datetime) -> bool:
        if mail.dedupe_key is not None and any(
            queued.dedupe_key == mail.dedupe_key for _, queued in self.mail
        ):
            return False
        self.mail.append((now, mail))
        return True

    def mail_to(self, recipient: str) -> list[OutgoingMail]:
        return [mail for _, mail in self.mail if mail.recipient == recipient]

    def actions(self) -> list[str]:
        return [entry.action for entry in self.audit]

    async def list(self, limit: int = 100, status: str | None = None) -> list[OutboxRow]:
        """The :class:`MailLog` view: every queued mail is pending here (no delivery)."""
        rows = [
            OutboxRow(
                id=number,
                kind=mail.kind,
                recipient=mail.recipient,
                subject=mail.subject,
                status="pending",
                attempts=0,
                created_at=at,
                next_attempt_at=at,
                expires_at=mail.expires_at,
                sent_at=None,
                claimed_by=None,
                claimed_until=None,
                last_error=None,
                dedupe_key=mail.dedupe_key,
            )
            for number, (at, mail) in enumerate(self.mail, start=1)
        ]
        return [row for row in reversed(rows) if status in (None, row.status)][:limit]


class MemoryCertificates:
    """:class:`ca_service.ports.CertificateStore`."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal or Journal()
        self.records: dict[int, CertificateRecord] = {}

    async def record_issued(
        self,
        record: CertificateRecord,
        actor: str = "operator",
        details: Mapping[str, str] | None = None,
    ) -> None:
        if record.serial in self.records:
            raise AlreadyExists(f"serial {record.serial_hex} is taken")
        self.records[record.serial] = record
        audit_details = {**(details or {}), "serial": record.serial_hex}
        audit_details["key_source"] = record.key_source.value
        self.journal.audit.append(
            AuditEntry(record.issued_at, actor, AuditAction.ISSUE, record.user_id, audit_details)
        )

    async def by_serial(self, serial: int) -> CertificateRecord | None:
        return self.records.get(serial)

    async def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None:
        found = [r for r in self.records.values() if r.fingerprint_sha256 == fingerprint_sha256]
        return found[0] if found else None

    async def for_user(self, user_id: str) -> Sequence[CertificateRecord]:
        return sorted(
            (r for r in self.records.values() if r.user_id == user_id),
            key=lambda r: (r.issued_at, r.serial),
        )


class MemoryAccounts:
    """:class:`ca_service.ports.AccountStore`; audit entries and mail go to ``journal``."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal or Journal()
        self.organizations: dict[str, Organization] = {}
        self.users: dict[str, Account] = {}
        self.initial: dict[str, InitialPassword] = {}

    async def create_organization(
        self, organization: Organization, initial: InitialPassword, audit: AuditEntry
    ) -> None:
        if organization.organization_id in self.organizations or any(
            o.name == organization.name for o in self.organizations.values()
        ):
            raise AlreadyExists(
                f"organisation {organization.organization_id} exists",
                reason=ErrorReason.ORGANIZATION_EXISTS,
            )
        self.organizations[organization.organization_id] = organization
        self.initial[organization.organization_id] = initial
        self.journal.write([audit], [], audit.at)

    def _stamped(self, account: Account, now: datetime) -> Account:
        previous = account.password_changed_at
        stamp = password_stamp(
            None if previous is None else round(previous.timestamp() * 1000),
            int(now.timestamp() * 1000),
        )
        changed_at = datetime.fromtimestamp(stamp // 1000, UTC) + timedelta(
            milliseconds=stamp % 1000
        )
        return replace(account, password_changed_at=changed_at)

    async def put_initial_password(self, initial: InitialPassword, audit: AuditEntry) -> None:
        self.initial[initial.organization_id] = initial
        if initial.reset_user_id is not None:
            reset = self.users[initial.reset_user_id]
            self.users[reset.user_id] = self._stamped(reset, initial.issued_at)
        self.journal.write([audit], [], audit.at)

    async def initial_password(self, organization_id: str) -> InitialPassword | None:
        return self.initial.get(organization_id)

    async def organization(self, organization_id: str) -> Organization | None:
        return self.organizations.get(organization_id)

    async def register_master(
        self, initial: InitialPassword, account: Account, audit: AuditEntry
    ) -> None:
        if self.initial.get(initial.organization_id) != initial:
            raise FailedPrecondition(
                "the initial password has already been used",
                reason=ErrorReason.INITIAL_PASSWORD_USED,
            )
        if initial.reset_user_id is None:
            if account.user_id in self.users:
                raise AlreadyExists("user ID taken", reason=ErrorReason.USER_EXISTS)
            self.users[account.user_id] = account
        else:
            old = self.users[initial.reset_user_id]
            self.users[old.user_id] = replace(
                self._stamped(old, audit.at),
                email=account.email,
                password_hash=account.password_hash,
                blocked_at=None,
            )
        del self.initial[initial.organization_id]
        self.journal.write([audit], [], audit.at)

    async def create_user(self, account: Account, audit: AuditEntry) -> None:
        if account.user_id in self.users:
            raise AlreadyExists("user ID taken", reason=ErrorReason.USER_EXISTS)
        self.users[account.user_id] = account
        self.journal.write([audit], [], audit.at)

    async def account(self, user_id: str) -> Account | None:
        return self.users.get(user_id)

    async def accounts(self, organization_id: str) -> list[Account]:
        members = [a for a in self.users.values() if a.organization_id == organization_id]
        return sorted(members, key=lambda a: (a.role.value, a.user_id))

    async def set_password(
        self,
        user_id: str,
        password_hash: str,
        now: datetime,
        audit: Sequence[AuditEntry] = (),
        *,
        initial: bool | None = None,
    ) -> datetime | None:
        if user_id not in self.users:
            raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
        old = self.users[user_id]
        if initial is not None:
            old = self._stamped(old, now)
        self.users[user_id] = replace(
            old,
            password_hash=password_hash,
            password_initial=old.password_initial if initial is None else initial,
        )
        self.journal.write(audit, [], now)
        return None if initial is None else old.password_changed_at

    async def set_blocked(
        self,
        user_id: str,
        blocked_at: datetime | None,
        now: datetime,
        audit: Sequence[AuditEntry],
        mail: Sequence[OutgoingMail],
    ) -> None:
        if user_id in self.users:
            self.users[user_id] = replace(self.users[user_id], blocked_at=blocked_at)
        self.journal.write(audit, mail, now)

    async def record(
        self, now: datetime, audit: Sequence[AuditEntry], mail: Sequence[OutgoingMail] = ()
    ) -> None:
        self.journal.write(audit, mail, now)


class MemoryAudit:
    """:class:`ca_service.ports.AuditLog` over a journal (no chain: nothing to break)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def list(
        self,
        *,
        user_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditRow]:
        rows = [
            AuditRow(n, e.at, e.actor, e.action, e.user_id, repr(e.details), "", "")
            for n, e in enumerate(self._journal.audit, start=1)
            if user_id in (None, e.user_id)
            and action in (None, e.action)
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
        ]
        return rows[::-1][:limit]

    async def verify(self) -> tuple[int, int | None, str]:
        return len(self._journal.audit), None, ""


class MemoryPasswords:
    """:class:`ca_service.ports.PasswordHasher` with a salted SHA-256 instead of Argon2id
    (fast), and the cap on concurrent checks as a plain count of refusals to make."""

    def __init__(self, *, version: int = 1) -> None:
        self.version = version
        self.refuse_next = 0
        self.verified = 0

    async def hash(self, password: str) -> str:
        salt = secrets.token_hex(8)
        digest = hashlib.sha256(f"{salt}{password}".encode()).hexdigest()
        return f"v{self.version}${salt}${digest}"

    async def verify(
        self, password_hash: str | None, password: str, *, refusable: bool = True
    ) -> bool:
        if refusable and self.refuse_next:
            self.refuse_next -= 1
            raise Busy("too many password checks at once")
        self.verified += 1
        if password_hash is None:
            return False
        _, salt, digest = password_hash.split("$")
        expected = hashlib.sha256(f"{salt}{password}".encode()).hexdigest()
        return hmac.compare_digest(expected, digest)

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"v{self.version}$")


# -- enrollment -----------------------------------------------------------------------------


class MemoryLockouts:
    """:class:`ca_service.ports.LockoutStore`: the transition table of domain.lockout."""

    def __init__(self, lock_duration: timedelta = LOCK_DURATION) -> None:
        self.states: dict[str, LockoutState] = {}
        self._lock_duration = lock_duration

    async def state(self, user_id: str) -> LockoutState:
        return self.states.get(user_id, LockoutState())

    async def record(self, user_id: str, event: Event, now: datetime) -> LockoutChange:
        before = await self.state(user_id)
        if event is not Event.UNLOCK and access(before, now) is not Access.OPEN:
            return LockoutChange(False, before, before)
        after = transition(before, event, now, self._lock_duration)
        self.states[user_id] = after
        return LockoutChange(True, before, after)


@dataclass
class _Code:
    user_id: str
    mac: str
    expires_at: datetime
    tries: int = 0


class MemoryCodes:
    """:class:`ca_service.ports.CodeStore`: one live code per user, single-use tickets."""

    def __init__(self) -> None:
        self.codes: dict[str, _Code] = {}
        self.tickets: dict[str, tuple[str, datetime]] = {}

    async def put(
        self, user_id: str, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> None:
        for key in [k for k, code in self.codes.items() if code.user_id == user_id]:
            del self.codes[key]
        self.codes[handle_key] = _Code(user_id, mac, expires_at)

    async def check(self, handle_key: str, mac: str, max_tries: int, now: datetime) -> CodeCheck:
        code = self.codes.get(handle_key)
        if code is None or now >= code.expires_at:
            return CodeCheck(CodeOutcome.UNKNOWN)
        if hmac.compare_digest(code.mac, mac):
            del self.codes[handle_key]
            return CodeCheck(CodeOutcome.MATCH, code.user_id, max_tries - code.tries)
        code.tries += 1
        if code.tries >= max_tries:
            del self.codes[handle_key]
            return CodeCheck(CodeOutcome.VOIDED, code.user_id, 0)
        return CodeCheck(CodeOutcome.WRONG, code.user_id, max_tries - code.tries)

    async def holder(self, handle_key: str, now: datetime) -> str | None:
        code = self.codes.get(handle_key)
        return None if code is None or now >= code.expires_at else code.user_id

    async def renew(
        self, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> str | None:
        user_id = await self.holder(handle_key, now)
        if user_id is not None:
            self.codes[handle_key] = _Code(user_id, mac, expires_at)
        return user_id

    async def put_ticket(
        self, ticket_key: str, user_id: str, expires_at: datetime, now: datetime
    ) -> None:
        self.tickets[ticket_key] = (user_id, expires_at)

    async def take_ticket(self, ticket_key: str, now: datetime) -> str | None:
        taken = self.tickets.pop(ticket_key, None)
        if taken is None or now >= taken[1]:
            return None
        return taken[0]


class MemoryEmailVerifications:
    """:class:`ca_service.ports.EmailVerificationStore`: links by token hash; mail and
    audit go to the accounts' journal, address changes to its users."""

    def __init__(self, accounts: MemoryAccounts) -> None:
        self.accounts = accounts
        self.journal = accounts.journal
        self.links: dict[str, EmailVerification] = {}

    async def put(
        self,
        link: EmailVerification,
        mail: OutgoingMail,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        now = link.created_at
        for key, old in list(self.links.items()):
            same = (
                old.user_id == link.user_id
                if link.purpose is VerificationPurpose.USER_EMAIL_CHANGE
                else old.address == link.address
            )
            pending = old.used_at is None and old.expires_at > now
            if old.purpose is link.purpose and same and pending:
                self.links[key] = replace(old, expires_at=now)
            elif old.expires_at < now - LINK_RECORD_RETENTION:
                del self.links[key]
        self.links[link.token_hash] = link
        self.journal.write(audit, [mail], now)

    async def find(self, token_hash: str) -> EmailVerification | None:
        return self.links.get(token_hash)

    async def consume(
        self,
        token_hash: str,
        now: datetime,
        *,
        notice: ports.OldAddressNotice | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> EmailVerification | None:
        link = self.links.get(token_hash)
        if link is None or link.used_at is not None or now >= link.expires_at:
            return None
        mail = []
        if link.purpose is VerificationPurpose.USER_EMAIL_CHANGE:
            assert link.user_id is not None
            account = self.accounts.users.get(link.user_id)
            if account is None:
                raise NotFound(f"no user {link.user_id}", reason=ErrorReason.USER_NOT_FOUND)
            self.accounts.users[link.user_id] = replace(account, email=link.address)
            if notice is not None and account.email != link.address:
                mail.append(notice(account.email))
        used = replace(link, used_at=now)
        self.links[token_hash] = used
        self.journal.write(audit, mail, now)
        return used

    async def queue(self, mail: OutgoingMail, now: datetime) -> bool:
        return self.journal.queue_once(mail, now)


# -- revocation and CRLs ------------------------------------------------------------------


class MemoryRevocations:
    """:class:`ca_service.ports.RevocationStore` over :class:`MemoryCertificates`."""

    def __init__(self, certificates: MemoryCertificates) -> None:
        self._certificates = certificates
        self.revocations: list[RevocationRecord] = []
        self.entries: list[bytes] = []

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
        records = self._certificates.records
        if serial is not None:
            if serial not in records:
                raise NotFound("no such certificate", reason=ErrorReason.CERTIFICATE_NOT_FOUND)
            if records[serial].revoked_at is not None:
                raise FailedPrecondition("revoked", reason=ErrorReason.ALREADY_REVOKED)
            targets = [records[serial]]
        else:
            targets = [
                r
                for r in await self._certificates.for_user(user_id or "")
                if r.revoked_at is None and r.not_after >= now
            ]
            if not targets:
                raise NotFound("nothing valid", reason=ErrorReason.CERTIFICATE_NOT_FOUND)
        revoked = []
        for target in targets:
            at = now.replace(microsecond=0)
            records[target.serial] = replace(target, revoked_at=at)
            record = RevocationRecord(
                len(self.revocations) + 1,
                target.serial,
                target.user_id,
                at,
                reason,
                invalidity_date,
                target.not_after,
            )
            self.revocations.append(record)
            self.entries.append(encode_entry(target.serial, at, reason, invalidity_date))
            details = {"serial": target.serial_hex, "reason": reason.name.lower()}
            self._certificates.journal.audit.append(
                AuditEntry(now, actor, AuditAction.REVOKE, target.user_id, details)
            )
            revoked.append(record)
        return revoked

    async def since(self, sequence: int, limit: int = 1000) -> list[RevocationRecord]:
        return [r for r in self.revocations if r.sequence > sequence][:limit]

    async def of_serial(self, serial: int) -> RevocationRecord | None:
        found = [r for r in self.revocations if r.serial == serial]
        return found[0] if found else None

    async def latest_sequence(self) -> int:
        return len(self.revocations)


class MemoryCrls:
    """:class:`ca_service.ports.CrlStore` over :class:`MemoryRevocations`."""

    def __init__(self, revocations: MemoryRevocations) -> None:
        self._revocations = revocations
        self.stored: dict[CrlKind, PublishedCrl] = {}
        self._counter = 0
        self.store_gate = asyncio.Event()
        self.store_gate.set()
        self.fail_store = False

    async def entries(
        self, *, after_sequence: int, not_expired_at: datetime
    ) -> tuple[list[bytes], int]:
        through = len(self._revocations.revocations)
        entries = [
            entry
            for record, entry in zip(
                self._revocations.revocations, self._revocations.entries, strict=True
            )
            if after_sequence < record.sequence and record.not_after >= not_expired_at
        ]
        return entries, through

    async def latest_sequence(self) -> int:
        return len(self._revocations.revocations)

    async def next_number(self, count: int = 1) -> int:
        self._counter += count
        return self._counter - count + 1

    def _state(self, kind: CrlKind) -> CrlState | None:
        crl = self.stored.get(kind)
        return None if crl is None else crl.state

    async def snapshot(self) -> CrlSnapshot:
        return CrlSnapshot(
            self._state(CrlKind.BASE), self._state(CrlKind.DELTA), await self.latest_sequence()
        )

    def _unchanged(self, replacing: CrlSnapshot) -> bool:
        """The stored CRLs' numbers are those read (as SqlCrlStore compares them)."""

        def number(state: CrlState | None) -> int | None:
            return None if state is None else state.number

        return number(self._state(CrlKind.BASE)) == number(replacing.base) and number(
            self._state(CrlKind.DELTA)
        ) == number(replacing.delta)

    async def publish_base(
        self, base: PublishedCrl, delta: PublishedCrl, *, replacing: CrlSnapshot
    ) -> bool:
        if not self._unchanged(replacing):
            return False
        self.stored.update({CrlKind.BASE: replace(base, der=b""), CrlKind.DELTA: delta})
        return True

    async def store_base(self, base: PublishedCrl) -> bool:
        """Holds while ``store_gate`` is closed, as a slow write of a big CRL would."""
        await self.store_gate.wait()
        if self.fail_store:
            raise StoreError("the database connection failed: OperationalError")
        recorded = self.stored.get(CrlKind.BASE)
        if recorded is None or recorded.number != base.number:
            return False
        self.stored[CrlKind.BASE] = base
        return True

    async def publish_delta(self, delta: PublishedCrl, *, replacing: CrlSnapshot) -> bool:
        if not self._unchanged(replacing) or replacing.base is None:
            return False
        self.stored[CrlKind.DELTA] = delta
        return True

    async def published(self, kind: CrlKind | None = None) -> dict[CrlKind, PublishedCrl]:
        return {k: crl for k, crl in self.stored.items() if kind in (None, k) and crl.der}


class MemoryFeed(RedisRevocationFeed):
    """:class:`ca_service.ports.RevocationFeed` without Redis (the adapter wakes only this
    process's watchers then), remembering what was published."""

    def __init__(self) -> None:
        super().__init__(None, "memory")
        self.published: list[int] = []

    async def publish(self, sequence: int) -> None:
        self.published.append(sequence)
        await super().publish(sequence)


# -- notices --------------------------------------------------------------------------------


class MemoryNotices:
    """:class:`ca_service.ports.NoticeStore` over the certificates, accounts and journal."""

    def __init__(self, certificates: MemoryCertificates, accounts: MemoryAccounts) -> None:
        self._certificates = certificates
        self._accounts = accounts

    def _newest_unrevoked(self) -> dict[str, CertificateRecord]:
        newest: dict[str, CertificateRecord] = {}
        for record in self._certificates.records.values():
            held = newest.get(record.user_id)
            if held is None or (record.issued_at, record.serial) > (held.issued_at, held.serial):
                newest[record.user_id] = record
        return {user: r for user, r in newest.items() if r.revoked_at is None}

    def _queued(self, key: str) -> bool:
        return any(mail.dedupe_key == key for _, mail in self._accounts.journal.mail)

    async def candidates(
        self, *, expiring_before: datetime, now: datetime, expired_before: datetime
    ) -> list[NoticeCandidate]:
        found = []
        for user_id, record in sorted(self._newest_unrevoked().items()):
            account = self._accounts.users.get(user_id)
            if account is None or record.not_after >= expiring_before:
                continue
            serial = record.serial_hex
            renewal_due = record.not_after >= now and not self._queued(
                notice_key(MailKind.RENEWAL, serial)
            )
            expiry_due = record.not_after < expired_before and not self._queued(
                notice_key(MailKind.EXPIRY, serial)
            )
            if renewal_due or expiry_due:
                found.append(NoticeCandidate(serial, user_id, record.not_after, account.email))
        return found

    async def queue(self, notices: Sequence[tuple[str, OutgoingMail]], now: datetime) -> int:
        still_due = {r.serial_hex for r in self._newest_unrevoked().values()}
        return sum(
            self._accounts.journal.queue_once(mail, now)
            for serial, mail in notices
            if serial in still_due
        )


class MemoryResends:
    """:class:`ca_service.ports.ResendLimiter`: the rule of domain.resend."""

    def __init__(self, limits: ResendLimits = DEFAULT_RESEND_LIMITS) -> None:
        self.last_sent: dict[str, datetime] = {}
        self.resends: dict[str, list[datetime]] = {}
        self._limits = limits

    async def sent(self, user_id: str, now: datetime) -> None:
        self.last_sent[user_id] = now

    async def take_resend(self, user_id: str, now: datetime) -> datetime | None:
        history = self.resends.setdefault(user_id, [])
        retry_at = resend_retry_at(self.last_sent.get(user_id), history, now, self._limits)
        if retry_at is None:
            history.append(now)
            self.last_sent[user_id] = now
        return retry_at


@dataclass
class MemoryStores:
    """Every port a service needs, sharing one journal (audit log and outbox)."""

    journal: Journal = field(default_factory=Journal)
    lockouts: MemoryLockouts = field(default_factory=MemoryLockouts)
    codes: MemoryCodes = field(default_factory=MemoryCodes)
    resends: MemoryResends = field(default_factory=MemoryResends)
    passwords: MemoryPasswords = field(default_factory=MemoryPasswords)
    feed: MemoryFeed = field(default_factory=MemoryFeed)

    def __post_init__(self) -> None:
        self.certificates = MemoryCertificates(self.journal)
        self.accounts = MemoryAccounts(self.journal)
        self.audit = MemoryAudit(self.journal)
        self.revocations = MemoryRevocations(self.certificates)
        self.crls = MemoryCrls(self.revocations)
        self.notices = MemoryNotices(self.certificates, self.accounts)
        self.email_links = MemoryEmailVerifications(self.accounts)


def _satisfies_the_ports(stores: MemoryStores) -> None:
    """Never called: mypy checks here that every fake implements its port."""
    certificates: ports.CertificateStore = stores.certificates
    accounts: ports.AccountStore = stores.accounts
    audit: ports.AuditLog = stores.audit
    mail: ports.MailLog = stores.journal
    lockouts: ports.LockoutStore = stores.lockouts
    codes: ports.CodeStore = stores.codes
    passwords: ports.PasswordHasher = stores.passwords
    revocations: ports.RevocationStore = stores.revocations
    crls: ports.CrlStore = stores.crls
    feed: ports.RevocationFeed = stores.feed
    notices: ports.NoticeStore = stores.notices
    email_links: ports.EmailVerificationStore = stores.email_links
    resends: ports.ResendLimiter = stores.resends
    del certificates, accounts, audit, mail, lockouts, codes, passwords
    del revocations, crls, feed, notices, email_links, resends
