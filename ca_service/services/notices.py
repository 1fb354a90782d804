"""Certificate notices by e-mail (SPEC C3): "please renew" 30 days before expiry, and
"expired; re-issue" once the certificate has expired. Each exactly once per certificate.

Run it periodically (every few minutes) from any number of processes. Exactly-once rests
on the outbox's unique ``dedupe_key`` (``renewal:<serial>``, ``expiry:<serial>``), not on
who ran first: a second run, concurrent or later, finds the key taken and queues nothing.

A notice goes only to the holder of the user's newest certificate (a user who renewed
does not hear about the old one), only for unrevoked certificates of users with an
account, and a certificate first seen already expired gets the expiry notice only.

Cost: one read over the unrevoked certificates whose notAfter is before the end of the
Japan day ``today + 31`` (later ones cannot be due), with index probes per row for "is
there a newer certificate" (certificates_by_user) and "already queued" (the unique index
on outbox.dedupe_key); then one short write per chunk of due notices. Measured with 1e5
users and certificates (half expired): a run with nothing new to queue takes 0.1 s on
SQLite and 0.4 s on PostgreSQL, a day's ~550 notices 0.2 s / 0.5 s; a first run facing a
backlog of 5e4 expiry notices 5 s / 18 s (one INSERT per notice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ca_service.adapters.mail import templates
from ca_service.adapters.mail.outbox import (
    KIND_EXPIRY,
    KIND_RENEWAL,
    Condition,
    OutgoingMail,
    enqueue,
)
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.domain.validity import (
    JAPAN,
    RENEWAL_WINDOW_DAYS,
    expiry_notice_day,
    japan_date,
    renewal_notice_day,
)

__all__ = ["queue_certificate_notices"]

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
    "SELECT c.serial, c.user_id, c.not_after, u.email FROM certificates c"  # noqa: S608 (module constants only)
    " JOIN users u ON u.user_id = c.user_id"
    " WHERE c.not_after < ? AND c.revoked_at IS NULL"
    f" AND {_NEWEST}"
    # Still valid and renewal not queued, or expired and expiry not queued.
    " AND ((c.not_after >= ? AND NOT EXISTS (SELECT 1 FROM outbox o"
    f" WHERE o.dedupe_key = '{KIND_RENEWAL}:' || c.serial))"
    " OR (c.not_after < ? AND NOT EXISTS (SELECT 1 FROM outbox o"
    f" WHERE o.dedupe_key = '{KIND_EXPIRY}:' || c.serial)))"
    " ORDER BY c.serial"
)

# Re-checked inside the inserting transaction: the certificate may have been revoked or
# superseded since the read.
_STILL_DUE = Condition(
    "EXISTS (SELECT 1 FROM certificates c WHERE c.serial = ?"  # noqa: S608 (module constants only)
    f" AND c.revoked_at IS NULL AND {_NEWEST})"
)


@dataclass(frozen=True, slots=True)
class _Candidate:
    serial: str
    user_id: str
    not_after: datetime
    email: str


def _japan_midnight_epoch(day: date) -> int:
    return int(datetime.combine(day, time(0, 0), tzinfo=JAPAN).timestamp())


def _notice(candidate: _Candidate, today: date, now: datetime) -> OutgoingMail | None:
    """The notice due for ``candidate`` today, by the rules of domain.validity."""
    not_after = candidate.not_after
    if expiry_notice_day(not_after) <= today:
        kind, (subject, body) = KIND_EXPIRY, templates.expiry_notice(candidate.user_id, not_after)
    elif renewal_notice_day(not_after) <= today and now <= not_after:
        kind, (subject, body) = KIND_RENEWAL, templates.renewal_notice(candidate.user_id, not_after)
    else:
        return None
    return OutgoingMail(
        kind=kind,
        recipient=candidate.email,
        subject=subject,
        body=body,
        dedupe_key=f"{kind}:{candidate.serial}",
    )


def _writer(chunk: list[tuple[str, OutgoingMail]], now: datetime) -> Callable[[Cursor], int]:
    def work(cursor: Cursor) -> int:
        return sum(
            enqueue(cursor, mail, now, only_if=Condition(_STILL_DUE.sql, (serial,)))
            for serial, mail in chunk
        )

    return work


async def queue_certificate_notices(database: Database, now: datetime) -> int:
    """Queues the renewal and expiry notices due at ``now``; returns how many were queued.

    The read scans every expired certificate that has no newer one, on every run, so its
    cost grows with history. An index on ``certificates (not_after)`` alone does not help
    much (the range ``not_after < bound`` covers all of history); what would is a lower
    bound for expiry notices (say, only certificates expired in the last 30 days) plus
    that index. That is a product decision, so it is not made here.
    """
    today = japan_date(now)
    now_epoch = int(now.timestamp())
    # renewal_notice_day(na) <= today  <=>  Japan date of na <= today + 30
    #                                  <=>  na < 00:00 JST of today + 31.
    renewal_bound = _japan_midnight_epoch(today + timedelta(days=RENEWAL_WINDOW_DAYS + 1))
    # expiry_notice_day(na) <= today  <=>  Japan date of na < today  <=>  na < 00:00 JST today.
    expiry_bound = _japan_midnight_epoch(today)

    def read(cursor: Cursor) -> list[_Candidate]:
        rows = cursor.execute(_CANDIDATES, (renewal_bound, now_epoch, expiry_bound)).fetchall()
        return [
            _Candidate(str(serial), user_id, datetime.fromtimestamp(not_after, UTC), email)
            for serial, user_id, not_after, email in rows
        ]

    notices = [
        (candidate.serial, mail)
        for candidate in await database.read(read)
        if (mail := _notice(candidate, today, now)) is not None
    ]
    # One order for every process, so that two concurrent runs on PostgreSQL wait on each
    # other's dedupe keys in the same order and cannot deadlock.
    notices.sort(key=lambda notice: notice[1].dedupe_key or "")

    queued = 0
    for start in range(0, len(notices), _CHUNK):
        chunk = notices[start : start + _CHUNK]
        queued += await database.write(_writer(chunk, now))
    return queued
