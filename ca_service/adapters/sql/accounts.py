"""Organisations, users and initial passwords in the SQL store. Every change is written
together with its audit entry and the mail that reports it, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ca_service.adapters.mail.outbox import enqueue
from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.adapters.sql.time import epoch, epoch_ms, instant, instant_ms
from ca_service.domain.accounts import (
    Account,
    AccountRole,
    AuditEntry,
    InitialPassword,
    Organization,
)
from ca_service.domain.mail import OutgoingMail
from ca_service.errors import AlreadyExists, ErrorReason, FailedPrecondition, NotFound

__all__ = ["SqlAccountStore"]

_ACCOUNT_COLUMNS = (
    "u.user_id, u.organization_id, o.name, u.role, u.email, u.password_hash, u.blocked_at,"
    " u.created_at, u.password_initial, u.password_changed_at_ms"
)
_ACCOUNT_SELECT = (
    f"SELECT {_ACCOUNT_COLUMNS} FROM users u"
    " JOIN organizations o ON o.organization_id = u.organization_id"
)


def _account(row: tuple[Any, ...]) -> Account:
    (user_id, organization_id, name, role, email, password_hash, blocked_at, created_at) = row[:8]
    return Account(
        user_id=user_id,
        organization_id=organization_id,
        organization_name=name,
        role=AccountRole(role),
        email=email,
        password_hash=password_hash,
        blocked_at=instant(blocked_at),
        created_at=instant(created_at),
        password_initial=bool(row[8]),
        password_changed_at=None if row[9] is None else instant_ms(int(row[9])),
    )


# domain.accounts.password_stamp in one statement (the previous stamp is read and replaced
# under the row's lock, so concurrent changes on several CA processes still order).
_STAMP = (
    "password_changed_at_ms = CASE"
    " WHEN password_changed_at_ms IS NULL OR password_changed_at_ms < ? THEN ?"
    " ELSE password_changed_at_ms + 1 END"
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
        " blocked_at, created_at, updated_at, password_initial)"
        " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
        (
            account.user_id,
            account.organization_id,
            account.role.value,
            account.email,
            account.password_hash,
            now,
            now,
            int(account.password_initial),
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
                (organization.organization_id, organization.name, epoch(organization.created_at)),
            )
            self._put_initial(cursor, initial)
            append_audit(cursor, audit)

        try:
            await self._database.write(write)
        except IntegrityError:
            raise AlreadyExists(
                f"an organisation with ID {organization.organization_id} or name "
                f"{organization.name!r} already exists",
                reason=ErrorReason.ORGANIZATION_EXISTS,
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
                epoch(initial.issued_at),
                epoch(initial.expires_at),
            ),
        )

    async def put_initial_password(self, initial: InitialPassword, audit: AuditEntry) -> None:
        def write(cursor: Cursor) -> None:
            self._put_initial(cursor, initial)
            if initial.reset_user_id is not None:
                # The operator's reset of a master user: its sessions end now, not only once
                # it registers again (the reset is for a forgotten or a leaked password).
                stamp = epoch_ms(initial.issued_at)
                cursor.execute(
                    f"UPDATE users SET {_STAMP} WHERE user_id = ?",
                    (stamp, stamp, initial.reset_user_id),
                )
            append_audit(cursor, audit)

        await self._database.write(write)

    async def initial_password(self, organization_id: str) -> InitialPassword | None:
        row = await self._database.read_row(
            "SELECT organization_id, password_hash, reset_user_id, issued_at, expires_at"
            " FROM initial_passwords WHERE organization_id = ?",
            (organization_id,),
        )
        if row is None:
            return None
        return InitialPassword(
            row[0],
            row[1],
            row[2],
            instant(row[3]),
            instant(row[4]),
        )

    async def organization(self, organization_id: str) -> Organization | None:
        row = await self._database.read_row(
            "SELECT organization_id, name, created_at FROM organizations WHERE organization_id = ?",
            (organization_id,),
        )
        return None if row is None else Organization(row[0], row[1], instant(row[2]))

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
                    "the initial password has already been used",
                    reason=ErrorReason.INITIAL_PASSWORD_USED,
                )
            now = epoch(audit.at)
            if initial.reset_user_id is None:
                _insert_user(cursor, account, now)
            else:
                stamp = epoch_ms(audit.at)
                cursor.execute(
                    "UPDATE users SET email = ?, password_hash = ?, blocked_at = NULL,"
                    f" updated_at = ?, {_STAMP} WHERE user_id = ?",
                    (
                        account.email,
                        account.password_hash,
                        now,
                        stamp,
                        stamp,
                        initial.reset_user_id,
                    ),
                )
            append_audit(cursor, audit)

        try:
            await self._database.write(write)
        except IntegrityError:
            raise AlreadyExists(
                f"user ID {account.user_id} is already taken", reason=ErrorReason.USER_EXISTS
            ) from None

    async def create_user(self, account: Account, audit: AuditEntry) -> None:
        def write(cursor: Cursor) -> None:
            _insert_user(cursor, account, epoch(audit.at))
            append_audit(cursor, audit)

        try:
            await self._database.write(write)
        except IntegrityError:
            raise AlreadyExists(
                f"user ID {account.user_id} is already taken", reason=ErrorReason.USER_EXISTS
            ) from None

    async def account(self, user_id: str) -> Account | None:
        row = await self._database.read_row(f"{_ACCOUNT_SELECT} WHERE u.user_id = ?", (user_id,))
        return None if row is None else _account(row)

    async def accounts(self, organization_id: str) -> list[Account]:
        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.execute(
                f"{_ACCOUNT_SELECT} WHERE u.organization_id = ? ORDER BY u.role, u.user_id",
                (organization_id,),
            ).fetchall()

        return [_account(row) for row in await self._database.read(read)]

    async def set_password(
        self,
        user_id: str,
        password_hash: str,
        now: datetime,
        audit: Sequence[AuditEntry] = (),
        *,
        initial: bool | None = None,
    ) -> datetime | None:
        def write(cursor: Cursor) -> datetime | None:
            if initial is None:
                cursor.execute(
                    "UPDATE users SET password_hash = ?, updated_at = ? WHERE user_id = ?",
                    (password_hash, epoch(now), user_id),
                )
                if cursor.rowcount != 1:
                    raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
                _side_effects(cursor, audit, (), now)
                return None
            # A new password (the user's own, or a reset): sessions from before end. The
            # stamp written is returned, not read again: a reset right after must not
            # lend its own to the session that made this change.
            stamp = epoch_ms(now)
            row = cursor.execute(
                "UPDATE users SET password_hash = ?, password_initial = ?, updated_at = ?,"
                f" {_STAMP} WHERE user_id = ? RETURNING password_changed_at_ms",
                (password_hash, int(initial), epoch(now), stamp, stamp, user_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no user {user_id}", reason=ErrorReason.USER_NOT_FOUND)
            _side_effects(cursor, audit, (), now)
            return instant_ms(int(row[0]))

        return await self._database.write(write)

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
                (epoch(blocked_at), epoch(now), user_id),
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
