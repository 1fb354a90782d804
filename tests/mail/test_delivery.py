"""Delivery through a real SMTP server (aiosmtpd) from the outbox on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from ca_service.adapters.mail import outbox, templates
from ca_service.adapters.mail.outbox import SqlOutbox
from ca_service.adapters.mail.worker import MailDelivery
from ca_service.adapters.sql.database import Database, open_database
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.domain.validity import JAPAN
from tests.fakes import START, FakeClock
from tests.smtp_sink import SmtpSink

SENDER = "noreply@ca.example.jp"
CODE = "048213"
ROOT = Path(__file__).resolve().parents[2]


def _worker(database: Database, smtp: SmtpSink, clock: FakeClock, **options: Any) -> MailDelivery:
    return MailDelivery(database, "127.0.0.1", smtp.port, SENDER, clock=clock, timeout=5, **options)


def _every_template(now: datetime) -> list[OutgoingMail]:
    not_after = datetime(2027, 11, 21, 23, 59, 59, tzinfo=JAPAN)
    rendered = [
        (
            MailKind.CODE,
            templates.authentication_code("taro0001", CODE, now + timedelta(minutes=30)),
        ),
        (MailKind.LOCKED, templates.locked("taro0002", now + timedelta(minutes=60))),
        (MailKind.BLOCKED, templates.blocked("taro0003", is_master=False)),
        (MailKind.BLOCKED, templates.blocked("master04", is_master=True)),
        (MailKind.UNLOCKED, templates.unlocked("taro0005")),
        (MailKind.RENEWAL, templates.renewal_notice("taro0006", not_after)),
        (MailKind.EXPIRY, templates.expiry_notice("taro0007", not_after)),
        (
            MailKind.EMAIL_VERIFICATION,
            templates.email_verification(
                "taro0008",
                "https://gw.example.jp/email/verify?token=" + "T" * 43,
                now + timedelta(hours=24),
            ),
        ),
        (MailKind.EMAIL_CHANGED, templates.email_changed("taro0009", "n@example.jp", now)),
        (
            MailKind.PROCEDURE_COMPLETION,
            templates.procedure_completion("S0101-20261121102030-00042", now),
        ),
    ]
    return [
        OutgoingMail(
            kind=kind,
            recipient=f"user{n}@example.jp",
            subject=subject,
            body=body,
            expires_at=now + timedelta(minutes=30) if kind == MailKind.CODE else None,
        )
        for n, (kind, (subject, body)) in enumerate(rendered)
    ]


async def _enqueue_all(database: Database, mails: list[OutgoingMail], now: datetime) -> None:
    store = SqlOutbox(database)
    for mail in mails:
        assert await store.enqueue(mail, now)


def _body(database: Database, recipient: str) -> str:
    row = database.read_sync(
        lambda c: c.execute("SELECT body FROM outbox WHERE recipient = ?", (recipient,)).fetchone()
    )
    assert row is not None
    return str(row[0])


def test_every_template_arrives_intact(
    database: Database, smtp: SmtpSink, clock: FakeClock
) -> None:
    mails = _every_template(clock.now())
    worker = _worker(database, smtp, clock)

    async def scenario() -> None:
        await _enqueue_all(database, mails, clock.now())
        clock.advance(timedelta(seconds=1))
        assert await worker.run_once() == len(mails)
        assert await worker.run_once() == 0

    asyncio.run(scenario())
    by_recipient = {item.recipients[0]: item for item in smtp.received}
    assert len(smtp.received) == len(mails) == len(by_recipient)
    rows = {row.recipient: row for row in asyncio.run(SqlOutbox(database).list())}
    for mail in mails:
        received = by_recipient[mail.recipient]
        assert received.sender == SENDER
        # Every header encoded, the body in base64: 7-bit clean for any relay.
        assert received.raw.isascii()
        assert b"=?utf-8?" in received.raw
        message = received.message
        assert message["Subject"] == mail.subject
        assert message["From"] == SENDER
        assert message["To"] == mail.recipient
        assert message.get_content_type() == "text/plain"
        assert message.get_content_charset() == "utf-8"
        assert message.get_content() == mail.body
        row = rows[mail.recipient]
        assert row.status == "sent" and row.attempts == 1
        assert row.sent_at == clock.now().replace(microsecond=0)
        date = parsedate_to_datetime(message["Date"])
        assert date == START.replace(microsecond=0)
        assert date.utcoffset() == timedelta(hours=9)
        created = int(row.created_at.timestamp())
        assert message["Message-ID"] == f"<outbox.{row.id}.{created}@ca.example.jp>"


def test_code_body_is_redacted_after_delivery(
    database: Database, smtp: SmtpSink, clock: FakeClock
) -> None:
    code, *others = _every_template(clock.now())

    async def scenario() -> None:
        await _enqueue_all(database, [code, others[0]], clock.now())
        assert await _worker(database, smtp, clock).run_once() == 2

    asyncio.run(scenario())
    (delivered,) = [m for m in smtp.messages if m["To"] == code.recipient]
    assert f"認証コード：{CODE}" in delivered.get_content()
    assert _body(database, code.recipient) == outbox.REDACTED_BODY
    assert CODE not in _body(database, code.recipient)
    assert _body(database, others[0].recipient) == others[0].body


def test_expired_code_mail_is_not_sent(
    database: Database, smtp: SmtpSink, clock: FakeClock
) -> None:
    code = _every_template(clock.now())[0]
    expires_at = code.expires_at
    assert expires_at is not None

    async def scenario() -> None:
        await _enqueue_all(database, [code], clock.now())
        clock.current = expires_at  # not one second later: the code is dead at expires_at
        assert await _worker(database, smtp, clock).run_once() == 0

    asyncio.run(scenario())
    assert smtp.received == []
    (row,) = asyncio.run(SqlOutbox(database).list(status="expired"))
    assert row.attempts == 0
    assert _body(database, code.recipient) == outbox.REDACTED_BODY


def test_smtp_outage_backs_off_and_loses_nothing(
    database: Database, smtp: SmtpSink, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    mails = _every_template(clock.now())
    store = SqlOutbox(database)
    worker = _worker(database, smtp, clock, batch_size=len(mails))
    run_all = worker.run_once
    smtp.stop()

    async def scenario() -> None:
        await _enqueue_all(database, mails, clock.now())
        assert await run_all() == 0
        rows = await store.list()
        assert {(row.status, row.attempts) for row in rows} == {("pending", 1)}
        assert all(row.last_error and "SMTPConnect" in row.last_error for row in rows)
        assert {row.next_attempt_at for row in rows} == {
            (clock.now() + timedelta(seconds=5)).replace(microsecond=0)
        }
        # Not due yet: nothing is attempted.
        clock.advance(timedelta(seconds=4))
        assert await run_all() == 0
        assert {row.attempts for row in await store.list()} == {1}
        clock.advance(timedelta(seconds=1))
        assert await run_all() == 0
        rows = await store.list()
        assert {(row.status, row.attempts) for row in rows} == {("pending", 2)}
        # The server comes back on the same port; the next attempt is 10 s later.
        smtp.start()
        clock.advance(timedelta(seconds=10))
        assert await run_all() == len(mails)
        assert {(row.status, row.attempts) for row in await store.list()} == {("sent", 3)}
        clock.advance(timedelta(hours=1))
        assert await run_all() == 0

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    counts = Counter(smtp.message_ids())
    assert len(counts) == len(mails) and set(counts.values()) == {1}
    assert "attempt 1 failed" in caplog.text
    for mail in mails:  # a failure is logged without the body, let alone a code
        assert mail.body not in caplog.text
    assert CODE not in caplog.text


def test_run_survives_an_outage_and_stops_on_request(
    database: Database, smtp: SmtpSink, clock: FakeClock
) -> None:
    mails = _every_template(clock.now())[1:3]
    worker = _worker(database, smtp, clock, poll_interval=0.02)
    smtp.stop()

    async def wait_for(condition: Any) -> None:
        for _ in range(500):
            if await condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await _enqueue_all(database, mails, clock.now())

        async def failed_once() -> bool:
            return all(row.attempts == 1 for row in await SqlOutbox(database).list())

        await wait_for(failed_once)
        smtp.start()
        clock.advance(timedelta(seconds=5))

        async def delivered() -> bool:
            return len(smtp.received) == len(mails)

        await wait_for(delivered)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_a_crashed_workers_lease_runs_out(
    database: Database, smtp: SmtpSink, clock: FakeClock
) -> None:
    lease = timedelta(minutes=10)
    mails = _every_template(clock.now())[1:4]
    worker = _worker(database, smtp, clock, lease=lease)

    async def scenario() -> None:
        await _enqueue_all(database, mails, clock.now())
        now = clock.now()
        # Another worker claims the rows and dies before sending.
        await database.write(lambda c: outbox.claim(c, "crashed", now, 10, lease))
        assert await worker.run_once() == 0
        clock.advance(lease)
        assert await worker.run_once() == len(mails)

    asyncio.run(scenario())
    assert len(smtp.received) == len(mails)


def _many(n: int) -> list[OutgoingMail]:
    return [
        OutgoingMail(
            kind=MailKind.UNLOCKED,
            recipient=f"u{i}@example.jp",
            subject=f"件名{i}",
            body=f"本文{i}",
        )
        for i in range(n)
    ]


def test_two_workers_on_one_database_deliver_each_mail_once(
    database: Database, database_url: str, smtp: SmtpSink, clock: FakeClock
) -> None:
    mails = _many(40)
    other = open_database(database_url, readers=1)

    async def drain(worker: MailDelivery) -> int:
        sent = 0
        while n := await worker.run_once():
            sent += n
        return sent

    async def scenario() -> tuple[int, int]:
        await _enqueue_all(database, mails, clock.now())
        first = _worker(database, smtp, clock, batch_size=4)
        second = _worker(other, smtp, clock, batch_size=4)
        return await asyncio.gather(drain(first), drain(second))

    try:
        a, b = asyncio.run(scenario())
    finally:
        other.close()
    assert a + b == len(mails)
    counts = Counter(smtp.message_ids())
    assert len(counts) == len(mails) and set(counts.values()) == {1}


def test_two_worker_processes_deliver_each_mail_once(
    database: Database, database_url: str, smtp: SmtpSink
) -> None:
    mails = _many(60)
    asyncio.run(_enqueue_all(database, mails, datetime.now(JAPAN)))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.mail.deliver_process", database_url, str(smtp.port)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:  # both ready, then both go at once
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        sent = [int(process.communicate(timeout=60)[0]) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert all(process.returncode == 0 for process in processes)
    assert sum(sent) == len(mails), sent
    counts = Counter(smtp.message_ids())
    assert len(counts) == len(mails) and set(counts.values()) == {1}
    assert all(re.fullmatch(r"<outbox\.\d+\.\d+@ca\.example\.jp>", mid) for mid in counts)
