"""E-mail verification links (SPEC D1, table ``email_verifications``, migration 5).

Only the SHA-256 of a link's token is stored. A link is consumed by one conditional UPDATE
(unused and unexpired, else no row): on PostgreSQL a concurrent second UPDATE of the row
waits for the first and then finds it used; on SQLite write transactions take the
database's write lock up front. So of two concurrent opens exactly one succeeds, and the
address change, the notice to the old address and the audit entry commit with it or not
at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ca_service.adapters.mail.outbox import enqueue
from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.accounts import AuditEntry
from ca_service.domain.email_verification import (
    LINK_RECORD_RETENTION,
    EmailVerification,
    VerificationPurpose,
)
from ca_service.domain.mail import OutgoingMail
from ca_service.errors import ErrorReason, NotFound
from ca_service.ports import OldAddressNotice

__all__ = ["SqlEmailVerificationStore"]

_COLUMNS = "token_hash, purpose, user_id, address, created_at, expires_at, used_at"


def _link(row: Sequence[Any]) -> EmailVerification:
    token_hash, purpose, user_id, address, created_at, expires_at, used_at = row
    return EmailVerification(
        token_hash=token_hash,
        purpose=VerificationPurpose(purpose),
        user_id=user_id,
        address=address,
        created_at=instant(created_at),
        expires_at=instant(expires_at),
        used_at=instant(used_at),
    )


class SqlEmailVerificationStore:
    """:class:`ca_service.ports.EmailVerificationStore` on the SQL store."""

    def __init__(self, database: Database, mail_queued: Callable[[], None] | None = None) -> None:
        """``mail_queued`` is called after a commit that queued mail (to wake the worker)."""
        self._database = database
        self._mail_queued = mail_queued or (lambda: None)

    async def put(
        self,
        link: EmailVerification,
        mail: OutgoingMail,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        now = epoch(link.created_at)

        def write(cursor: Cursor) -> None:
            # A newer link replaces the older ones of the same user / address.
            if link.purpose is VerificationPurpose.USER_EMAIL_CHANGE:
                subject, value = "user_id", link.user_id
            else:
                subject, value = "address", link.address
            cursor.execute(
                "UPDATE email_verifications SET expires_at = ?"
                f" WHERE purpose = ? AND {subject} = ? AND used_at IS NULL AND expires_at > ?",
                (now, link.purpose.value, value, now),
            )
            cursor.execute(
                "DELETE FROM email_verifications WHERE expires_at < ?",
                (epoch(link.created_at - LINK_RECORD_RETENTION),),
            )
            cursor.execute(
                f"INSERT INTO email_verifications ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    link.token_hash,
                    link.purpose.value,
                    link.user_id,
                    link.address,
                    now,
                    epoch(link.expires_at),
                ),
            )
            enqueue(cursor, mail, link.created_at)
            for entry in audit:
                append_audit(cursor, entry)

        await self._database.write(write)
        self._mail_queued()

    async def find(self, token_hash: str) -> EmailVerification | None:
        row = await self._database.read_row(
            f"SELECT {_COLUMNS} FROM email_verifications WHERE token_hash = ?", (token_hash,)
        )
        return None if row is None else _link(row)

    async def consume(
        self,
        token_hash: str,
        now: datetime,
        *,
        notice: OldAddressNotice | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> EmailVerification | None:
        at = epoch(now)

        def write(cursor: Cursor) -> tuple[EmailVerification | None, bool]:
            rows = cursor.execute(
                "UPDATE email_verifications SET used_at = ?"
                " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?"
                f" RETURNING {_COLUMNS}",
                (at, token_hash, at),
            ).fetchall()
            if not rows:
                return None, False
            link = _link(rows[0])
            queued = False
            if link.purpose is VerificationPurpose.USER_EMAIL_CHANGE:
                found = cursor.execute(
                    "SELECT email FROM users WHERE user_id = ?", (link.user_id,)
                ).fetchone()
                if found is None:
                    # Rolls the transaction back: the link stays unused.
                    raise NotFound(f"no user {link.user_id}", reason=ErrorReason.USER_NOT_FOUND)
                old_address = str(found[0])
                cursor.execute(
                    "UPDATE users SET email = ?, updated_at = ? WHERE user_id = ?",
                    (link.address, at, link.user_id),
                )
                if notice is not None and old_address != link.address:
                    queued = enqueue(cursor, notice(old_address), now)
            for entry in audit:
                append_audit(cursor, entry)
            return link, queued

        link, queued = await self._database.write(write)
        if queued:
            self._mail_queued()
        return link

    async def queue(self, mail: OutgoingMail, now: datetime) -> bool:
        queued = await self._database.write(lambda cursor: enqueue(cursor, mail, now))
        if queued:
            self._mail_queued()
        return queued
