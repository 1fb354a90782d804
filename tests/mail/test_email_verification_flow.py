"""SPEC D1 end to end in one process, on the real peers: the service on the SQL store
(SQLite and PostgreSQL), the Redis channel that tells other processes a user changed, and
the outbox's delivery worker sending to a real SMTP server, all driven by an injected
clock. The link in the delivered mail works once, not after 24 hours; the old address is
told; a mail the SMTP server refused at first still arrives; the token is in no log line
and not in the store in clear."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from ca_service.adapters.mail import templates
from ca_service.adapters.mail.outbox import REDACTED_BODY, backoff
from ca_service.adapters.mail.worker import MailDelivery
from ca_service.adapters.redis.client import connect
from ca_service.adapters.redis.revocation_feed import RedisRevocationFeed
from ca_service.adapters.sql.accounts import SqlAccountStore
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.email_verifications import SqlEmailVerificationStore
from ca_service.domain.email_verification import VerificationPurpose
from ca_service.domain.profiles import Caller, Role
from ca_service.domain.rules import EMAIL_LINK_TTL
from ca_service.errors import CAError, ErrorReason
from ca_service.services.email_verification import EmailVerificationService
from tests.fakes import FakeClock
from tests.smtp_sink import SmtpSink

GATEWAY = Caller(Role.GATEWAY, "gw")
BASE = "https://gw.example.jp/email/verify"
OLD, NEW = "taro0001@example.jp", "taro.new@example.jp"
TOKEN = re.compile(re.escape(BASE) + r"\?token=([A-Za-z0-9_-]{43})\n")


@dataclass
class Flow:
    service: EmailVerificationService
    worker: MailDelivery
    listener: RedisRevocationFeed
    database: Database
    smtp: SmtpSink
    clock: FakeClock

    async def deliver(self) -> int:
        self.clock.advance(timedelta(seconds=1))
        return await self.worker.run_once()

    async def request(self, address: str = NEW) -> str:
        """Asks for a link and returns the token of the mail that arrived."""
        before = len(self.smtp.to(address))
        await self.service.request(
            GATEWAY,
            VerificationPurpose.USER_EMAIL_CHANGE,
            user_id="taro0001",
            address=address,
            link_base_url=BASE,
        )
        assert await self.deliver() == 1
        messages = self.smtp.to(address)
        assert len(messages) == before + 1
        match = TOKEN.search(messages[-1].get_content())
        assert match, messages[-1].get_content()
        return match.group(1)

    def email(self) -> str:
        row = self.database.read_sync(
            lambda c: c.execute("SELECT email FROM users WHERE user_id = 'taro0001'").fetchone()
        )
        assert row is not None
        return str(row[0])

    def dump(self) -> str:
        """Every row of the tables a token could rest in."""

        def read(cursor: Cursor) -> str:
            rows = []
            for table in ("email_verifications", "outbox", "audit_log", "users"):
                rows += cursor.execute(f"SELECT * FROM {table}").fetchall()
            return repr(rows)

        return self.database.read_sync(read)


@pytest.fixture
async def flow(
    database: Database, redis_url: str, smtp: SmtpSink, clock: FakeClock
) -> AsyncIterator[Flow]:
    def add_user(cursor: Cursor) -> None:
        cursor.execute(
            "INSERT INTO organizations (organization_id, name, created_at) VALUES ('org1', ?, 0)",
            ("株式会社テスト",),
        )
        cursor.execute(
            "INSERT INTO users (user_id, organization_id, role, email, password_hash,"
            " created_at, updated_at) VALUES ('taro0001', 'org1', 'general', ?, 'x', 0, 0)",
            (OLD,),
        )

    database.write_sync(add_user)
    publisher, subscriber = connect(redis_url), connect(redis_url)
    channel = f"flow{id(database)}:revocations"
    feed, listener = (
        RedisRevocationFeed(publisher, channel),
        RedisRevocationFeed(subscriber, channel),
    )
    listener.start()
    service = EmailVerificationService(
        links=SqlEmailVerificationStore(database),
        accounts=SqlAccountStore(database),
        templates=templates,
        clock=clock,
        user_changed=feed.publish_user_change,
    )
    worker = MailDelivery(database, "127.0.0.1", smtp.port, "ca@example.jp", clock=clock, timeout=5)
    yield Flow(service, worker, listener, database, smtp, clock)
    await listener.stop()
    await publisher.aclose()
    await subscriber.aclose()


async def _refused(flow: Flow, token: str) -> ErrorReason:
    with pytest.raises(CAError) as caught:
        await flow.service.confirm(GATEWAY, token)
    assert token not in caught.value.message
    return caught.value.reason


async def test_the_delivered_link_works_once_and_the_old_address_is_told(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await flow.request()
    assert flow.email() == OLD
    dump = flow.dump()
    assert token not in dump  # the link mail's body was erased once sent
    assert hashlib.sha256(token.encode()).hexdigest() in dump
    assert REDACTED_BODY in dump

    flow.clock.advance(EMAIL_LINK_TTL - timedelta(minutes=1))
    await asyncio.sleep(0.2)  # the listener has subscribed
    with flow.listener.user_changes() as changed:
        verified = await flow.service.confirm(GATEWAY, token)
        for _ in range(100):
            if changed:
                break
            await asyncio.sleep(0.05)
    assert changed == {"taro0001"}  # through Redis, as another process would hear it
    assert (verified.address, verified.user_id) == (NEW, "taro0001")
    assert flow.email() == NEW
    assert await flow.deliver() == 1
    (notice,) = flow.smtp.to(OLD)
    assert notice["Subject"] == "【重要】登録メールアドレス変更のお知らせ"
    assert "t***@example.jp" in notice.get_content()

    assert await _refused(flow, token) is ErrorReason.EMAIL_LINK_USED
    assert await flow.deliver() == 0  # no second notice
    assert token not in caplog.text
    assert all(token not in str(record.__dict__) for record in caplog.records)


async def test_a_link_expires_after_24_hours(flow: Flow) -> None:
    token = await flow.request()
    flow.clock.advance(EMAIL_LINK_TTL)
    assert await _refused(flow, token) is ErrorReason.EMAIL_LINK_EXPIRED
    assert flow.email() == OLD
    assert await flow.deliver() == 0 and flow.smtp.to(OLD) == []
    # A new link replaces an older one, which then reads as expired too.
    first = await flow.request()
    second = await flow.request("second@example.jp")
    assert await _refused(flow, first) is ErrorReason.EMAIL_LINK_EXPIRED
    await flow.service.confirm(GATEWAY, second)
    assert flow.email() == "second@example.jp"
    assert await _refused(flow, "A" * 43) is ErrorReason.EMAIL_LINK_UNKNOWN


async def test_a_link_mail_the_server_refused_is_retried_and_arrives(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    flow.smtp.stop()
    await flow.service.request(
        GATEWAY,
        VerificationPurpose.USER_EMAIL_CHANGE,
        user_id="taro0001",
        address=NEW,
        link_base_url=BASE,
    )
    assert await flow.deliver() == 0  # the attempt failed; the row waits for its retry
    flow.smtp.start()
    flow.clock.advance(backoff(1))
    assert await flow.deliver() == 1
    (mail,) = flow.smtp.to(NEW)
    match = TOKEN.search(mail.get_content())
    assert match
    await flow.service.confirm(GATEWAY, match.group(1))
    assert flow.email() == NEW
    assert match.group(1) not in caplog.text
