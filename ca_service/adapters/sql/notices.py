"""The SQL side of the certificate notices (SPEC C3): which certificates may be due, and
queueing each notice exactly once (the outbox's unique ``dedupe_key``), re-checked in the
inserting transaction. The policy is :mod:`ca_service.services.notices`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ca_service.adapters.mail.outbox import Condition, enqueue
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.mail import MailKind, NoticeCandidate, OutgoingMail, notice_key

__all__ = ["SqlNoticeStore"]

# Notices queued per write transaction: keeps each transaction (and the single writer it
# holds) short when a backlog is first processed.
_CHUNK = 200

# "No later-issued certificate for the same user" (ties on issued_at broken by serial, so
# that exactly one certificate of a user is the newest). Uses certificates_by_user.
_NEWEST = (
    "NOT EXISTS (SELECT 1 FROM certificates n WHERE n.user_id = c.user_id"
    " AND (n.issued_at > c.issued_at"
    " OR (n.issued_at = c.issued_at AND n.serial > c.serial)))"
)

_CANDIDATES = (
    "SELECT c.serial, c.user_id, c.not_after, u.email FROM certificates c"
    " JOIN users u ON u.user_id = c.user_id"
    " WHERE c.not_after < ? AND c.revoked_at IS NULL"
    f" AND {_NEWEST}"
    # Still valid and renewal not queued, or expired and expiry not queued.
    " AND ((c.not_after >= ? AND NOT EXISTS (SELECT 1 FROM outbox o"
    f" WHERE o.dedupe_key = '{notice_key(MailKind.RENEWAL, '')}' || c.serial))"
    " OR (c.not_after < ? AND NOT EXISTS (SELECT 1 FROM outbox o"
    f" WHERE o.dedupe_key = '{notice_key(MailKind.EXPIRY, '')}' || c.serial)))"
    " ORDER BY c.serial"
)

# Re-checked inside the inserting transaction: the certificate may have been revoked or
# superseded since the read.
_STILL_DUE = Condition(
    "EXISTS (SELECT 1 FROM certificates c WHERE c.serial = ?"
    f" AND c.revoked_at IS NULL AND {_NEWEST})"
)


def _writer(chunk: Sequence[tuple[str, OutgoingMail]], now: datetime) -> Callable[[Cursor], int]:
    def work(cursor: Cursor) -> int:
        return sum(
            enqueue(cursor, mail, now, only_if=Condition(_STILL_DUE.sql, (serial,)))
            for serial, mail in chunk
        )

    return work


class SqlNoticeStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def candidates(
        self, *, expiring_before: datetime, now: datetime, expired_before: datetime
    ) -> list[NoticeCandidate]:
        params = (epoch(expiring_before), epoch(now), epoch(expired_before))

        def read(cursor: Cursor) -> list[NoticeCandidate]:
            rows = cursor.execute(_CANDIDATES, params).fetchall()
            return [
                NoticeCandidate(str(serial), user_id, instant(not_after), email)
                for serial, user_id, not_after, email in rows
            ]

        return await self._database.read(read)

    async def queue(self, notices: Sequence[tuple[str, OutgoingMail]], now: datetime) -> int:
        # One order for every process, so that two concurrent runs on PostgreSQL wait on
        # each other's dedupe keys in the same order and cannot deadlock.
        ordered = sorted(notices, key=lambda notice: notice[1].dedupe_key or "")
        queued = 0
        for start in range(0, len(ordered), _CHUNK):
            queued += await self._database.write(_writer(ordered[start : start + _CHUNK], now))
        return queued
