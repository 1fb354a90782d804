"""The outbox on SQLite and PostgreSQL: queueing, dedupe, leases, back-off, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ca_service.adapters.mail import outbox
from ca_service.adapters.mail.outbox import SqlOutbox
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.domain.mail import MailKind, OutgoingMail
from tests.fakes import START, FakeClock

LEASE = timedelta(minutes=10)


def _mail(n: int = 0, **changes: Any) -> OutgoingMail:
    fields: dict[str, Any] = {
        "kind": MailKind.UNLOCKED,
        "recipient": f"user{n}@example.jp",
        "subject": f"件名 {n}",
        "body": f"本文 {n}",
    }
    fields.update(changes)
    return OutgoingMail(**fields)


def _body(database: Database, mail_id: int) -> str:
    row = database.read_sync(
        lambda cursor: cursor.execute("SELECT body FROM outbox WHERE id = ?", (mail_id,)).fetchone()
    )
    assert row is not None
    return str(row[0])


def test_enqueue_dedupes_and_list_has_no_bodies(database: Database) -> None:
    store = SqlOutbox(database)

    async def scenario() -> None:
        assert await store.enqueue(_mail(1, dedupe_key="renewal:01"), START)
        assert not await store.enqueue(_mail(2, dedupe_key="renewal:01"), START)
        # Mail without a dedupe key is never a duplicate (NULLs are distinct).
        assert await store.enqueue(_mail(3), START)
        assert await store.enqueue(_mail(3), START)
        rows = await store.list()
        assert [row.recipient for row in rows] == [
            "user3@example.jp",
            "user3@example.jp",
            "user1@example.jp",
        ]
        assert all(row.status == "pending" and row.attempts == 0 for row in rows)
        assert rows[-1].dedupe_key == "renewal:01"
        assert rows[-1].subject == "件名 1"
        assert rows[-1].created_at == START.replace(microsecond=0)
        assert not hasattr(rows[0], "body")
        assert len(await store.list(limit=1)) == 1
        assert await store.list(status="sent") == []
        with pytest.raises(ValueError):
            await store.list(status="bogus")

    asyncio.run(scenario())


def test_enqueue_is_part_of_the_callers_transaction(database: Database) -> None:
    def work(cursor: Cursor) -> None:
        assert outbox.enqueue(cursor, _mail(), START)
        raise RuntimeError("the state change failed")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="the state change failed"):
            await database.write(work)
        assert await SqlOutbox(database).list() == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "changes",
    [
        {"recipient": "a@example.jp\r\nBcc: x@example.jp"},
        {"recipient": "a@example.jp, b@example.jp"},
        {"recipient": "nobody"},
        {"subject": "件名\nBcc: x@example.jp"},
        {"kind": ""},
    ],
)
def test_outgoing_mail_refuses_header_injection(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _mail(**changes)


def test_backoff_doubles_from_five_seconds_up_to_ten_minutes() -> None:
    assert [outbox.backoff(n).total_seconds() for n in range(1, 10)] == [
        5,
        10,
        20,
        40,
        80,
        160,
        320,
        600,
        600,
    ]
    assert outbox.backoff(10_000) == timedelta(minutes=10)


def test_claims_are_exclusive_until_the_lease_runs_out(database: Database) -> None:
    async def scenario() -> None:
        for n in range(5):
            await SqlOutbox(database).enqueue(_mail(n), START)
        first = await database.write(lambda c: outbox.claim(c, "a", START, 3, LEASE))
        second = await database.write(lambda c: outbox.claim(c, "b", START, 3, LEASE))
        assert len(first) == 3 and len(second) == 2
        assert not {m.id for m in first} & {m.id for m in second}
        assert await database.write(lambda c: outbox.claim(c, "c", START, 3, LEASE)) == []
        # Worker "a" died: its lease runs out and its rows are due again.
        later = START + LEASE
        third = await database.write(lambda c: outbox.claim(c, "c", later, 10, LEASE))
        assert sorted(m.id for m in third) == sorted(m.id for m in first + second)

    asyncio.run(scenario())


def test_failed_attempts_back_off_then_fail_visibly(database: Database) -> None:
    clock = FakeClock()
    code = _mail(kind=MailKind.CODE, body="認証コード：123456")

    async def attempt() -> str | None:
        now = clock.now()
        claimed = await database.write(lambda c: outbox.claim(c, "w", now, 10, LEASE))
        if not claimed:
            return "not due"
        (mail,) = claimed
        return await database.write(
            lambda c: outbox.mark_failed(c, mail, "w", "SMTPConnectError: refused", now, 3)
        )

    async def scenario() -> None:
        store = SqlOutbox(database)
        await store.enqueue(code, clock.now())
        assert await attempt() == "pending"
        assert await attempt() == "not due"
        clock.advance(timedelta(seconds=5))
        assert await attempt() == "pending"
        clock.advance(timedelta(seconds=9))
        assert await attempt() == "not due"
        clock.advance(timedelta(seconds=1))
        assert await attempt() == "failed"
        clock.advance(timedelta(days=1))
        assert await attempt() == "not due"  # given up, never claimed again
        (row,) = await store.list(status="failed")
        assert row.attempts == 3
        assert row.last_error == "SMTPConnectError: refused"
        assert _body(database, row.id) == outbox.REDACTED_BODY

    asyncio.run(scenario())


def test_mark_failed_needs_the_lease(database: Database) -> None:
    async def scenario() -> None:
        await SqlOutbox(database).enqueue(_mail(), START)
        (mail,) = await database.write(lambda c: outbox.claim(c, "a", START, 1, LEASE))
        assert (
            await database.write(lambda c: outbox.mark_failed(c, mail, "b", "x", START, 50)) is None
        )
        assert await database.write(lambda c: outbox.mark_sent(c, mail.id, START))
        assert not await database.write(lambda c: outbox.mark_sent(c, mail.id, START))

    asyncio.run(scenario())


def test_expire_skips_live_leases_and_redacts_codes(database: Database) -> None:
    expires = START + timedelta(minutes=30)
    code = _mail(1, kind=MailKind.CODE, body="認証コード：654321", expires_at=expires)
    leased = _mail(2, kind=MailKind.CODE, body="認証コード：111111", expires_at=expires)
    plain = _mail(3)

    async def scenario() -> None:
        store = SqlOutbox(database)
        for mail in (leased, code, plain):
            await store.enqueue(mail, START)
        at_expiry = expires
        just_before = expires - timedelta(seconds=1)
        (claimed,) = await database.write(lambda c: outbox.claim(c, "w", just_before, 1, LEASE))
        assert claimed.recipient == leased.recipient
        assert await database.write(lambda c: outbox.expire(c, just_before)) == 0
        assert await database.write(lambda c: outbox.expire(c, at_expiry)) == 1
        (expired,) = await store.list(status="expired")
        assert expired.recipient == code.recipient
        assert _body(database, expired.id) == outbox.REDACTED_BODY
        # An expired row is not claimable, even though it was due.
        due = await database.write(lambda c: outbox.claim(c, "w2", at_expiry, 10, LEASE))
        assert [m.recipient for m in due] == [plain.recipient]

    asyncio.run(scenario())
