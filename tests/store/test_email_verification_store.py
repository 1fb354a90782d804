"""The e-mail verification links (SPEC D1) in the SQL store, on SQLite and PostgreSQL:
only the token's hash is stored, a link is consumed once even when opened concurrently
from several processes' connections, and the address change, the notice to the old
address and the audit entry commit with it."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.email_verifications import SqlEmailVerificationStore
from ca_service.domain.accounts import AuditAction, AuditEntry
from ca_service.domain.email_verification import (
    LINK_RECORD_RETENTION,
    EmailVerification,
    VerificationPurpose,
    link_token_hash,
    new_link_token,
)
from ca_service.domain.mail import MailKind, OutgoingMail
from ca_service.domain.rules import EMAIL_LINK_TTL

NOW = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)
OLD, NEW = "taro0001@example.jp", "taro.new@example.jp"


@pytest.fixture
def user(database: Database) -> str:
    def write(cursor: object) -> None:
        cursor.execute(  # type: ignore[attr-defined]
            "INSERT INTO organizations (organization_id, name, created_at) VALUES (?, ?, ?)",
            ("org1", "株式会社テスト", 0),
        )
        cursor.execute(  # type: ignore[attr-defined]
            "INSERT INTO users (user_id, organization_id, role, email, password_hash,"
            " created_at, updated_at) VALUES ('taro0001', 'org1', 'general', ?, 'x', 0, 0)",
            (OLD,),
        )

    database.write_sync(write)
    return "taro0001"


def _link(
    token: str,
    purpose: VerificationPurpose = VerificationPurpose.USER_EMAIL_CHANGE,
    address: str = NEW,
    at: datetime = NOW,
) -> EmailVerification:
    token_hash = link_token_hash(token)
    assert token_hash is not None
    change = purpose is VerificationPurpose.USER_EMAIL_CHANGE
    return EmailVerification(
        token_hash, purpose, "taro0001" if change else None, address, at, at + EMAIL_LINK_TTL
    )


def _mail(token: str, address: str = NEW) -> OutgoingMail:
    return OutgoingMail(
        MailKind.EMAIL_VERIFICATION,
        address,
        "メール認証URLのご案内",
        f"https://gw.example.jp/email/verify?token={token}\n",
        expires_at=NOW + EMAIL_LINK_TTL,
    )


def _notice(old_address: str) -> OutgoingMail:
    return OutgoingMail(MailKind.EMAIL_CHANGED, old_address, "変更のお知らせ", "changed\n")


def _audit() -> list[AuditEntry]:
    return [AuditEntry(NOW, "taro0001", AuditAction.CHANGE_EMAIL, "taro0001", {})]


def _rows(database: Database, sql: str) -> list[tuple[object, ...]]:
    return database.read_sync(lambda cursor: cursor.execute(sql).fetchall())


def _email(database: Database) -> str:
    return str(_rows(database, "SELECT email FROM users WHERE user_id = 'taro0001'")[0][0])


async def test_only_the_hash_is_stored_and_a_link_is_consumed_once(
    database: Database, user: str
) -> None:
    store = SqlEmailVerificationStore(database)
    token = new_link_token(secrets.token_bytes)
    await store.put(_link(token), _mail(token))
    (row,) = _rows(database, "SELECT * FROM email_verifications")
    assert token not in repr(row)
    assert hashlib.sha256(token.encode()).hexdigest() in row
    found = await store.find(link_token_hash(token) or "")
    assert found == _link(token)
    assert _email(database) == OLD  # not before the link is opened

    token_hash = link_token_hash(token) or ""
    consumed = await store.consume(
        token_hash, NOW + timedelta(hours=1), notice=_notice, audit=_audit()
    )
    assert consumed is not None and consumed.used_at == NOW + timedelta(hours=1)
    assert _email(database) == NEW
    assert await store.consume(token_hash, NOW + timedelta(hours=2), notice=_notice) is None
    outbox = _rows(database, "SELECT kind, recipient FROM outbox ORDER BY id")
    assert outbox == [(MailKind.EMAIL_VERIFICATION, NEW), (MailKind.EMAIL_CHANGED, OLD)]
    assert _rows(database, "SELECT action, user_id FROM audit_log") == [
        (AuditAction.CHANGE_EMAIL, "taro0001")
    ]


async def test_an_expired_link_changes_nothing(database: Database, user: str) -> None:
    store = SqlEmailVerificationStore(database)
    token = new_link_token(secrets.token_bytes)
    await store.put(_link(token), _mail(token))
    token_hash = link_token_hash(token) or ""
    assert await store.consume(token_hash, NOW + EMAIL_LINK_TTL, notice=_notice) is None
    assert _email(database) == OLD
    assert len(_rows(database, "SELECT id FROM outbox")) == 1
    assert await store.consume(token_hash, NOW + EMAIL_LINK_TTL - timedelta(seconds=1)) is not None


async def test_a_newer_link_expires_the_older_of_the_same_user_or_address(
    database: Database, user: str
) -> None:
    store = SqlEmailVerificationStore(database)
    first, second = (new_link_token(secrets.token_bytes) for _ in range(2))
    await store.put(_link(first, address="first@example.jp"), _mail(first, "first@example.jp"))
    later = NOW + timedelta(minutes=5)
    await store.put(_link(second, at=later), _mail(second))
    old = await store.find(link_token_hash(first) or "")
    assert old is not None and old.expires_at == later
    # Registrations replace by address, and never touch a user's links.
    registrations = [new_link_token(secrets.token_bytes) for _ in range(3)]
    portal = VerificationPurpose.PORTAL_REGISTRATION
    await store.put(_link(registrations[0], portal, "a@example.jp"), _mail(registrations[0]))
    await store.put(_link(registrations[1], portal, "b@example.jp"), _mail(registrations[1]))
    await store.put(_link(registrations[2], portal, "a@example.jp", later), _mail(registrations[2]))
    expiries = [
        (await store.find(link_token_hash(token) or "")).expires_at  # type: ignore[union-attr]
        for token in (second, *registrations)
    ]
    assert expiries == [
        later + EMAIL_LINK_TTL,
        later,
        NOW + EMAIL_LINK_TTL,
        later + EMAIL_LINK_TTL,
    ]


async def test_a_link_replaced_within_its_first_second_reads_as_expired(
    database: Database, user: str
) -> None:
    store = SqlEmailVerificationStore(database)
    first, second = (new_link_token(secrets.token_bytes) for _ in range(2))
    await store.put(_link(first), _mail(first))
    await store.put(_link(second, address="second@example.jp"), _mail(second))
    replaced = await store.find(link_token_hash(first) or "")
    assert replaced is not None and replaced.expires_at == replaced.created_at == NOW
    assert await store.consume(link_token_hash(first) or "", NOW) is None


async def test_records_past_the_retention_are_deleted(database: Database, user: str) -> None:
    store = SqlEmailVerificationStore(database)
    old, new = (new_link_token(secrets.token_bytes) for _ in range(2))
    await store.put(_link(old), _mail(old))
    much_later = NOW + EMAIL_LINK_TTL + LINK_RECORD_RETENTION + timedelta(seconds=1)
    await store.put(_link(new, at=much_later, address="x@example.jp"), _mail(new))
    assert await store.find(link_token_hash(old) or "") is None
    assert await store.find(link_token_hash(new) or "") is not None


async def test_completion_mail_is_queued_once_per_key(database: Database) -> None:
    store = SqlEmailVerificationStore(database)
    mail = OutgoingMail(
        MailKind.PROCEDURE_COMPLETION, "a@example.jp", "完了", "x\n", dedupe_key="k:1"
    )
    assert await store.queue(mail, NOW)
    assert not await store.queue(mail, NOW)
    assert len(_rows(database, "SELECT id FROM outbox")) == 1


@pytest.fixture
def connections(database_url: str, database: Database) -> Iterator[list[Database]]:
    """Four more stores on the same database: separate connections and writers, as
    four ca-service processes have."""
    opened = [open_database(database_url, readers=1) for _ in range(4)]
    yield opened
    for each in opened:
        each.close()


def _open_at_once(connections: list[Database], token_hash: str) -> list[EmailVerification | None]:
    """Opens the link at the same moment through every connection, twice through each
    (two calls of one writer share a transaction: its group commit)."""
    start = threading.Barrier(len(connections))
    results: list[EmailVerification | None] = []
    errors: list[BaseException] = []

    def open_twice(each: Database) -> None:
        async def both() -> list[EmailVerification | None]:
            store = SqlEmailVerificationStore(each)
            opens = (store.consume(token_hash, NOW, notice=_notice, audit=_audit()) for _ in "ab")
            return list(await asyncio.gather(*opens))

        try:
            start.wait()
            results.extend(asyncio.run(both()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_twice, args=(each,)) for each in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_concurrent_opens_from_several_processes_succeed_exactly_once(
    database: Database, user: str, connections: list[Database]
) -> None:
    rounds = 8
    for round_number in range(rounds):
        token = new_link_token(secrets.token_bytes)
        address = f"round{round_number}@example.jp"
        put = SqlEmailVerificationStore(database).put(
            _link(token, address=address), _mail(token, address)
        )
        asyncio.run(put)
        results = _open_at_once(connections, link_token_hash(token) or "")
        winners = [result for result in results if result is not None]
        assert len(results) == 2 * len(connections) and len(winners) == 1, results
        assert _email(database) == address
    # One notice and one audit entry per round, however many opened it.
    notices = _rows(database, "SELECT COUNT(*) FROM outbox WHERE kind = 'email_changed'")
    assert notices == [(rounds,)]
    assert _rows(database, "SELECT COUNT(*) FROM audit_log") == [(rounds,)]
