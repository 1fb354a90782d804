"""The mail outbox (table ``outbox``, migration 3): queue, claim, and record delivery.

Mail is written in the same transaction as the state change it reports (a lock, a code,
a notice), so it is never lost and never sent for a change that rolled back. Workers in
any number of processes claim due rows with a lease, send them, and mark each one sent or
failed; a failed attempt backs off exponentially and, after ``max_attempts``, stays in the
table as ``failed`` for the operator to see (SPEC A6: never silently dropped).

Every statement that a write transaction starts with is itself a write (INSERT/UPDATE),
so that SQLite takes its write lock at once instead of failing to upgrade a stale read
snapshot when another process committed in between.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.mail import MailKind, MailStatus, OutboxRow, OutgoingMail

__all__ = [
    "REDACTED_BODY",
    "ClaimedMail",
    "Condition",
    "SqlOutbox",
    "backoff",
    "claim",
    "describe_error",
    "enqueue",
    "expire",
    "mark_failed",
    "mark_sent",
]

REDACTED_BODY = "[redacted after delivery]"
# Kinds whose body is a secret: it is erased as soon as the row leaves 'pending', so an
# authentication code or an e-mail verification link does not rest in the database (or its
# backups) once it is delivered or useless.
_SECRET_KINDS = (MailKind.CODE, MailKind.EMAIL_VERIFICATION)

_FIRST_RETRY = timedelta(seconds=5)
_LONGEST_RETRY = timedelta(minutes=10)
_MAX_ERROR_CHARS = 200

_REDACT_IF_SECRET = (
    "CASE WHEN kind IN (" + ", ".join(f"'{kind}'" for kind in _SECRET_KINDS) + ")"
    f" THEN '{REDACTED_BODY}' ELSE body END"
)


# SQL text below is assembled from this module's constants only (hence the S608 waivers);
# every value is a bound parameter.


@dataclass(frozen=True, slots=True)
class Condition:
    """An SQL predicate (``?`` placeholders) that must hold, in the inserting
    transaction, for :func:`enqueue` to queue the mail at all."""

    sql: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    """A row a worker has leased for sending."""

    id: int
    kind: str
    recipient: str
    subject: str
    body: str
    attempts: int
    created_at: datetime


def enqueue(
    cursor: Cursor, mail: OutgoingMail, now: datetime, *, only_if: Condition | None = None
) -> bool:
    """Queues ``mail`` inside the caller's transaction.

    False when a row with the same ``dedupe_key`` exists (or ``only_if`` is false). The
    unique key decides, not an earlier read, so concurrent callers queue it exactly once.
    """
    condition = only_if or Condition("1 = 1")
    # INSERT ... SELECT rather than VALUES so that ``only_if`` is checked atomically with
    # the insert. The casts give PostgreSQL a type for parameters that may be NULL.
    # RETURNING (SQLite >= 3.35) reports whether a row went in: the Cursor has no rowcount.
    # fetchall() everywhere below steps each statement to its end before the commit.
    rows = cursor.execute(
        "INSERT INTO outbox (dedupe_key, kind, recipient, subject, body, status, attempts,"
        " next_attempt_at, expires_at, created_at)"
        " SELECT ?, ?, ?, ?, ?, 'pending', 0,"
        " CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT)"
        f" WHERE {condition.sql}"
        " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        (
            mail.dedupe_key,
            mail.kind,
            mail.recipient,
            mail.subject,
            mail.body,
            epoch(now),
            None if mail.expires_at is None else epoch(mail.expires_at),
            epoch(now),
            *condition.params,
        ),
    ).fetchall()
    return bool(rows)


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: 5 s, 10 s, 20 s, … at most 10 min."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    # Capping the exponent first keeps 2**n small however many attempts were made.
    doublings = min(attempts - 1, 16)
    return min(_FIRST_RETRY * (1 << doublings), _LONGEST_RETRY)


def claim(
    cursor: Cursor, worker_id: str, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedMail]:
    """Leases up to ``limit`` due rows to ``worker_id`` until ``now + lease``.

    A row is due when pending, its next attempt has come, it has not expired, and nobody
    holds a live lease on it (a crashed worker's lease runs out and the row is retried).
    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets concurrent workers pass over each
    other's rows instead of waiting; on SQLite the statement runs under the database's
    single write lock, so two claims cannot interleave.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    lock = " FOR UPDATE SKIP LOCKED" if cursor.dialect == "postgresql" else ""
    current = epoch(now)
    # MATERIALIZED: the CTE (and its row locks) is evaluated exactly once, so the UPDATE
    # can never touch more rows than were selected and locked.
    rows = cursor.execute(
        "WITH due AS MATERIALIZED ("  # noqa: S608
        " SELECT id FROM outbox"
        " WHERE status = 'pending' AND next_attempt_at <= ?"
        " AND (expires_at IS NULL OR expires_at > ?)"
        " AND (claimed_until IS NULL OR claimed_until <= ?)"
        f" ORDER BY next_attempt_at, id LIMIT ?{lock})"
        " UPDATE outbox SET claimed_by = ?, claimed_until = ?"
        " WHERE id IN (SELECT id FROM due)"
        " RETURNING id, kind, recipient, subject, body, attempts, created_at",
        (current, current, current, limit, worker_id, epoch(now + lease)),
    ).fetchall()
    claimed = [
        ClaimedMail(
            id=int(row[0]),
            kind=row[1],
            recipient=row[2],
            subject=row[3],
            body=row[4],
            attempts=int(row[5]),
            created_at=instant(row[6]),
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda mail: mail.id)


def mark_sent(cursor: Cursor, mail_id: int, now: datetime) -> bool:
    """Records a delivery; a secret body is erased. False if the row was no longer
    pending (an operator or expiry got there first).

    Not conditional on the lease: the mail has left, and recording that is what prevents
    one more copy even if our lease ran out meanwhile."""
    rows = cursor.execute(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"  # noqa: S608
        f" claimed_by = NULL, claimed_until = NULL, body = {_REDACT_IF_SECRET}"
        " WHERE id = ? AND status = 'pending' RETURNING id",
        (epoch(now), mail_id),
    ).fetchall()
    return bool(rows)


def describe_error(error: BaseException) -> str:
    """A short, single-line ``Class: message`` for ``last_error`` (never a mail body)."""
    text = f"{type(error).__name__}: {error}".replace("\r", " ").replace("\n", " ")
    return text[:_MAX_ERROR_CHARS]


def mark_failed(
    cursor: Cursor,
    mail: ClaimedMail,
    worker_id: str,
    error: str,
    now: datetime,
    max_attempts: int,
) -> str | None:
    """Records a failed attempt of a row leased to ``worker_id``: retry after
    :func:`backoff`, or status 'failed' once ``max_attempts`` attempts have failed.

    Returns the new status, or None when the lease had passed to another worker (whose
    outcome then counts)."""
    attempts = mail.attempts + 1
    next_attempt = now + backoff(attempts)
    rows = cursor.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,"  # noqa: S608
        " claimed_by = NULL, claimed_until = NULL,"
        " status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'pending' END,"
        f" body = CASE WHEN attempts + 1 >= ? THEN {_REDACT_IF_SECRET} ELSE body END"
        " WHERE id = ? AND claimed_by = ? AND status = 'pending' RETURNING status",
        (
            epoch(next_attempt),
            error[:_MAX_ERROR_CHARS],
            max_attempts,
            max_attempts,
            mail.id,
            worker_id,
        ),
    ).fetchall()
    return str(rows[0][0]) if rows else None


def expire(cursor: Cursor, now: datetime) -> int:
    """Marks 'expired' the pending rows whose ``expires_at`` has come (a code mail that
    could not go out within the code's 30 minutes: a dead code is useless), except rows
    under a live lease, whose worker will record the outcome. Returns how many."""
    current = epoch(now)
    rows = cursor.execute(
        "UPDATE outbox SET status = 'expired', claimed_by = NULL, claimed_until = NULL,"  # noqa: S608
        f" body = {_REDACT_IF_SECRET}"
        " WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= ?"
        " AND (claimed_until IS NULL OR claimed_until <= ?) RETURNING id",
        (current, current),
    ).fetchall()
    return len(rows)


_LIST_COLUMNS = (
    "id, kind, recipient, subject, status, attempts, created_at, next_attempt_at,"
    " expires_at, sent_at, claimed_by, claimed_until, last_error, dedupe_key"
)


def _row(values: Sequence[Any]) -> OutboxRow:
    created_at = instant(values[6])
    next_attempt_at = instant(values[7])
    assert created_at is not None and next_attempt_at is not None  # NOT NULL columns
    return OutboxRow(
        id=int(values[0]),
        kind=values[1],
        recipient=values[2],
        subject=values[3],
        status=values[4],
        attempts=int(values[5]),
        created_at=created_at,
        next_attempt_at=next_attempt_at,
        expires_at=instant(values[8]),
        sent_at=instant(values[9]),
        claimed_by=values[10],
        claimed_until=instant(values[11]),
        last_error=values[12],
        dedupe_key=values[13],
    )


class SqlOutbox:
    """The outbox for callers that are not already inside a transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def enqueue(self, mail: OutgoingMail, now: datetime) -> bool:
        """Queues ``mail`` in a transaction of its own; False if ``dedupe_key`` exists."""
        return await self._database.write(lambda cursor: enqueue(cursor, mail, now))

    async def list(self, limit: int = 100, status: str | None = None) -> builtins.list[OutboxRow]:
        """The newest rows first, without bodies, optionally of one status."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if status is not None and status not in tuple(MailStatus):
            raise ValueError(f"status must be one of {', '.join(MailStatus)}")
        where = "" if status is None else " WHERE status = ?"
        params: tuple[Any, ...] = (limit,) if status is None else (status, limit)

        def select(cursor: Cursor) -> builtins.list[OutboxRow]:
            return [
                _row(values)
                for values in cursor.execute(
                    f"SELECT {_LIST_COLUMNS} FROM outbox{where} ORDER BY id DESC LIMIT ?",  # noqa: S608
                    params,
                ).fetchall()
            ]

        return await self._database.read(select)
