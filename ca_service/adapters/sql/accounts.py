"""Organisations, users and initial passwords in the SQL store. Every change is written
together with its audit entry and the mail that reports it, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ca_service.adapters.mail.outbox import OutgoingMail, enqueue
from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.domain.accounts import (
    Account,
    AccountRole,
    AuditEntry,
    InitialPassword,
    Organization,
)
from ca_service.errors import AlreadyExists, FailedPrecondition, NotFound

__all__ = ["SqlAccountStore"]

_ACCOUNT_COLUMNS = (
    "u.user_id, u.organization_id, o.name, u.role, u.email, u.password_hash, u.blocked_at,"
    " u.created_at"
)
_ACCOUNT_SELECT = (
    f"SELECT {_ACCOUNT_COLUMNS} FROM users u"
    " JOIN organizations o ON o.organization_id = u.organization_id"
)


def _epoch(instant: datetime | None) -> int | None:
    return None if instant is None else int(instant.timestamp())


def _instant(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _account(row: tuple[Any, ...]) -> Account:
    user_id, organization_id, name, role, email, password_hash, blocked_at, created_at = row
    return Account(
        user_id=user_id,
        organization_id=organization_id,
        organization_name=name,
        role=AccountRole(role),
        email=email,
        password_hash=password_hash,
        blocked_at=_instant(blocked_at),
        created_at=datetime.fromtimestamp(created_at, UTC),
    )


def _side_effects(
    cursor: Cursor, audit: Sequence[AuditEntry], mail: Sequence[OutgoingMail], now: datetime
) -> None:
    for entry in audit:
        append_audit(cursor, entry)
    for message in mail:
        enqueue(cursor, message, now)


def _insert_user(cursor: Cursor, account: Account, now: int | None) -> None:
    cursor.execute(
        "INSERT INTO users (user_id, organization_id, role, email, password_hash,"
        " blocked_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
        (
            account.user_id,
            account.organization_id,
            account.role.value,
            account.email,
            account.password_hash,
            now,
            now,
        ),
    )


class SqlAccountStore:
    def __init__(self, database: Database, mail_queued: Callable[[], None] | None = None) -> None:
        """``mail_queued`` is called after a commit that queued mail (to wake the worker)."""
        self._database = database
        self._mail_queued = mail_queued or (lambda: None)

    async def create_organization(
        self, organization: Organization, initial: InitialPassword, audit: AuditEntry
    ) -> None:
        def write(cursor: Cursor) -> None:
            cursor.execute(
                "INSERT INTO organizations (organization_id, name, created_at) VALUES (?, ?, ?)",
                (organization.organization_id, organization.name, _epoch(organization.created_at)),
            )
            self._put_initial(cursor, initial)
            append_audit(cursor, audit)

        try:
            await self._database.write(write)
        except IntegrityError:
            raise AlreadyExists(
                f"an organisation with ID {organization.organization_id} or name "
                f"{organization.name!r} already exists",
                reason="ORGANIZATION_EXISTS",
            ) from None

    @staticmethod
    def _put_initial(cursor: Cursor, initial: InitialPassword) -> None:
        # One pending initial password per organisation: a new one replaces the old.
        cursor.execute(
            "DELETE FROM initial_passwords WHERE organization_id = ?", (initial.organization_id,)
        )
        cursor.execute(
            "INSERT INTO initial_passwords (organization_id, password_hash, reset_user_id,"
            " issued_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (
                initial.organization_id,
                initial.password_hash,
                initial.reset_user_id,
                _epoch(initial.issued_at),
                _epoch(initial.expires_at),
            ),
        )

    async def put_initial_password(self, initial: InitialPassword, audit: AuditEntry) -> None:
        def write(cursor: Cursor) -> None:
            self._put_initial(cursor, initial)
            append_audit(cursor, audit)

        await self._database.write(write)

    async def initial_password(self, organization_id: str) -> InitialPassword | None:
        def read(cursor: Cursor) -> tuple[Any, ...] | None:
            return cursor.execute(
                "SELECT organization_id, password_hash, reset_user_id, issued_at, expires_at"
                " FROM initial_passwords WHERE organization_id = ?",
                (organization_id,),
            ).fetchone()

        row = await self._database.read(read)
        if row is None:
            return None
        return InitialPassword(
            row[0],
            row[1],
            row[2],
            datetime.fromtimestamp(row[3], UTC),
            datetime.fromtimestamp(row[4], UTC),
        )

    async def organization(self, organization_id: str) -> Organization | None:
        def read(cursor: Cursor) -> tuple[Any, ...] | None:
            return cursor.execute(
                "SELECT organization_id, name, created_at FROM organizations"
                " WHERE organization_id = ?",
                (organization_id,),
            ).fetchone()

        row = await self._database.read(read)
        return (
            None
            if row is None
            else Organization(row[0], row[1], datetime.fromtimestamp(row[2], UTC))
        )

    async def register_master(
        self, initial: InitialPassword, account: Account, audit: AuditEntry
    ) -> None:
        """Consumes ``initial`` and creates the master user, or (a reset) replaces the
        password and e-mail of ``initial.reset_user_id``."""

        def write(cursor: Cursor) -> None:
            cursor.execute(
                "DELETE FROM initial_passwords WHERE organization_id = ? AND password_hash = ?",
                (initial.organization_id, initial.password_hash),
            )
            if cursor.rowcount != 1:
                raise FailedPrecondition(
                    "the initial password has already been used", reason="INITIAL_PASSWORD_USED"
                )
            now = _epoch(audit.at)
            if initial.reset_user_id is None:
                _insert_user(cursor, account, now)
            else:
                cursor.execute(
                    "UPDATE users SET email = ?, password_hash = ?, blocked_at = NULL,"
                    " updated_at = ? WHERE user_id = ?",
                    (account.email, account.password_hash, now, initial.reset_user_id),
                )
            append_audit(cursor, audit)

        try:
            await self._database.write(write)
        except IntegrityError:
            raise AlreadyExists(
                f"user ID {account.user_id} is already taken", reason="USER_EXISTS"
            ) from None

    async def create_user(self, account: Account, audit: AuditEntry) -> None:
        def write(cursor: Cursor) -> None:
            _insert_user(cursor, account, _epoch(audit.at))
            append_audit(cursor, audit)

        try:
            await self._database.write(write)
        except IntegrityError:
            raise AlreadyExists(
                f"user ID {account.user_id} is already taken", reason="USER_EXISTS"
            ) from None

    async def account(self, user_id: str) -> Account | None:
        def read(cursor: Cursor) -> tuple[Any, ...] | None:
            return cursor.execute(f"{_ACCOUNT_SELECT} WHERE u.user_id = ?", (user_id,)).fetchone()

        row = await self._database.read(read)
        return None if row is None else _account(row)

    async def accounts(self, organization_id: str) -> list[Account]:
        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.execute(
                f"{_ACCOUNT_SELECT} WHERE u.organization_id = ? ORDER BY u.role, u.user_id",
                (organization_id,),
            ).fetchall()

        return [_account(row) for row in await self._database.read(read)]

    async def set_password(
        self, user_id: str, password_hash: str, now: datetime, audit: Sequence[AuditEntry] = ()
    ) -> None:
        def write(cursor: Cursor) -> None:
            cursor.execute(
                "UPDATE users SET password_hash = ?, updated_at = ? WHERE user_id = ?",
                (password_hash, _epoch(now), user_id),
            )
            if cursor.rowcount != 1:
                raise NotFound(f"no user {user_id}", reason="USER_NOT_FOUND")
            _side_effects(cursor, audit, (), now)

        await self._database.write(write)

    async def set_blocked(
        self,
        user_id: str,
        blocked_at: datetime | None,
        now: datetime,
        audit: Sequence[AuditEntry],
        mail: Sequence[OutgoingMail],
    ) -> None:
        """Records a block (durable, unlike the Redis counters) or its removal, with the
        audit entries and mail that report it."""

        def write(cursor: Cursor) -> None:
            cursor.execute(
                "UPDATE users SET blocked_at = ?, updated_at = ? WHERE user_id = ?",
                (_epoch(blocked_at), _epoch(now), user_id),
            )
            _side_effects(cursor, audit, mail, now)

        await self._database.write(write)
        if mail:
            self._mail_queued()

    async def record(
        self, now: datetime, audit: Sequence[AuditEntry], mail: Sequence[OutgoingMail] = ()
    ) -> None:
        """Audit entries and mail that change no account row (e.g. a lock)."""
        await self._database.write(lambda cursor: _side_effects(cursor, audit, mail, now))
        if mail:
            self._mail_queued()
