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

from datetime import date, datetime, time, timedelta

from ca_service.domain.mail import MailKind, NoticeCandidate, OutgoingMail, notice_key
from ca_service.domain.validity import (
    JAPAN,
    RENEWAL_WINDOW_DAYS,
    expiry_notice_day,
    japan_date,
    renewal_notice_day,
)
from ca_service.ports import MailTemplates, NoticeStore

__all__ = ["CertificateNotices"]


def _japan_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=JAPAN)


class CertificateNotices:
    def __init__(self, *, store: NoticeStore, templates: MailTemplates) -> None:
        self._store = store
        self._templates = templates

    def _notice(
        self, candidate: NoticeCandidate, today: date, now: datetime
    ) -> OutgoingMail | None:
        """The notice due for ``candidate`` today, by the rules of domain.validity."""
        not_after = candidate.not_after
        if expiry_notice_day(not_after) <= today:
            kind = MailKind.EXPIRY
            subject, body = self._templates.expiry_notice(candidate.user_id, not_after)
        elif renewal_notice_day(not_after) <= today and now <= not_after:
            kind = MailKind.RENEWAL
            subject, body = self._templates.renewal_notice(candidate.user_id, not_after)
        else:
            return None
        return OutgoingMail(
            kind=kind,
            recipient=candidate.email,
            subject=subject,
            body=body,
            dedupe_key=notice_key(kind, candidate.serial),
        )

    async def queue_due(self, now: datetime) -> int:
        """Queues the renewal and expiry notices due at ``now``; returns how many were queued.

        The read scans every expired certificate that has no newer one, on every run, so its
        cost grows with history. An index on ``certificates (not_after)`` alone does not help
        much (the range ``not_after < bound`` covers all of history); what would is a lower
        bound for expiry notices (say, only certificates expired in the last 30 days) plus
        that index. That is a product decision, so it is not made here.
        """
        today = japan_date(now)
        candidates = await self._store.candidates(
            # renewal_notice_day(na) <= today  <=>  Japan date of na <= today + 30
            #                                  <=>  na < 00:00 JST of today + 31.
            expiring_before=_japan_midnight(today + timedelta(days=RENEWAL_WINDOW_DAYS + 1)),
            now=now,
            # expiry_notice_day(na) <= today  <=>  Japan date of na < today
            #                                 <=>  na < 00:00 JST today.
            expired_before=_japan_midnight(today),
        )
        notices = [
            (candidate.serial, mail)
            for candidate in candidates
            if (mail := self._notice(candidate, today, now)) is not None
        ]
        return await self._store.queue(notices, now) if notices else 0
