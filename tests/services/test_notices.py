"""Certificate notices (SPEC C3) on in-memory ports: which notice is due on which Japan
day, once per certificate, only for the newest unrevoked certificate of an account.
(tests/mail/test_notices.py runs the same rules on SQLite and PostgreSQL.)"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from ca_service.domain.mail import MailKind
from ca_service.domain.validity import (
    JAPAN,
    RENEWAL_WINDOW_DAYS,
    expiry_notice_day,
    renewal_notice_day,
)
from tests.services.conftest import Services


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=JAPAN)


def _kinds(services: Services, user_id: str) -> list[str]:
    return [m.kind for m in services.stores.journal.mail_to(f"{user_id}@example.jp")]


async def test_renewal_then_expiry_each_once_on_their_day(services: Services) -> None:
    record = await services.issued("taro0001")
    renewal_day = renewal_notice_day(record.not_after)
    services.clock.current = _midnight(renewal_day) - timedelta(seconds=1)
    assert await services.notices.queue_due(services.clock.now()) == 0
    services.clock.current = _midnight(renewal_day)
    assert await services.notices.queue_due(services.clock.now()) == 1
    assert await services.notices.queue_due(services.clock.now()) == 0
    (renewal,) = services.stores.journal.mail_to("taro0001@example.jp")
    assert renewal.dedupe_key == f"renewal:{record.serial_hex}"
    assert f"{RENEWAL_WINDOW_DAYS}日前" in renewal.body

    services.clock.current = _midnight(expiry_notice_day(record.not_after))
    assert await services.notices.queue_due(services.clock.now()) == 1
    assert await services.notices.queue_due(services.clock.now() + timedelta(days=9)) == 0
    assert _kinds(services, "taro0001") == [MailKind.RENEWAL, MailKind.EXPIRY]


async def test_only_the_newest_unrevoked_certificate_of_an_account(services: Services) -> None:
    old = await services.issued("renewed1")
    services.clock.advance(timedelta(days=340))
    await services.issued("renewed1")  # renewed: the old one is not noticed
    revoked = await services.issued("revoked1")
    await services.revoke(serial=revoked.serial, actor="op")
    services.clock.current = _midnight(expiry_notice_day(old.not_after))
    assert await services.notices.queue_due(services.clock.now()) == 0
    assert _kinds(services, "renewed1") == _kinds(services, "revoked1") == []


async def test_a_certificate_first_seen_expired_gets_the_expiry_notice_only(
    services: Services,
) -> None:
    record = await services.issued("late0001")
    services.clock.current = record.not_after + timedelta(days=3)
    assert await services.notices.queue_due(services.clock.now()) == 1
    assert _kinds(services, "late0001") == [MailKind.EXPIRY]
