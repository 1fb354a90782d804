"""The SQL store against both real databases: SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from datetime import UTC, datetime, timedelta

import pytest

from ca_service.adapters.sql.certificates import SqlCertificateStore
from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.migrations import MIGRATIONS, migrate, schema_version
from ca_service.domain.records import CertificateRecord, KeySource
from ca_service.errors import AlreadyExists, StoreError

NOW = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)


def _record(
    user_id: str = "taro0001", serial: int | None = None, offset: int = 0
) -> CertificateRecord:
    der = secrets.token_bytes(300)
    return CertificateRecord(
        serial=serial or int.from_bytes(secrets.token_bytes(16), "big") | 1 << 126,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        user_id=user_id,
        organization="株式会社テスト",
        subject=f"CN={user_id},O=株式会社テスト",
        not_before=NOW - timedelta(minutes=5),
        not_after=NOW + timedelta(days=365),
        issued_at=NOW + timedelta(seconds=offset),
        key_source=KeySource.CSR,
        der=der,
    )


def test_migrations_are_idempotent(database: Database) -> None:
    assert migrate(database) == []
    assert schema_version(database) == max(m.version for m in MIGRATIONS)


def test_schema_newer_than_program_is_refused(database: Database) -> None:
    database.write_sync(
        lambda cursor: cursor.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (999, "future", 0),
        )
    )
    with pytest.raises(StoreError, match="newer than this program"):
        migrate(database)


def test_concurrent_migrations_apply_once(database_url: str) -> None:
    databases = [open_database(database_url, readers=1) for _ in range(4)]
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run(database: Database) -> None:
        try:
            results.append(migrate(database))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in databases:
        database.close()
    assert not errors
    assert sorted(results, key=len) == [[], [], [], [m.version for m in MIGRATIONS]]


def test_record_and_read_back(database: Database) -> None:
    store = SqlCertificateStore(database)
    record = _record()

    async def scenario() -> None:
        await store.record_issued(record)
        assert await store.by_serial(record.serial) == record
        assert await store.by_fingerprint(record.fingerprint_sha256) == record
        assert await store.by_serial(record.serial + 1) is None
        assert list(await store.for_user("taro0001")) == [record]
        assert list(await store.for_user("someone1")) == []

    asyncio.run(scenario())


def test_duplicate_serial_fails_alone_inside_a_group(database: Database) -> None:
    store = SqlCertificateStore(database)
    first = _record()
    duplicate = _record(serial=first.serial)
    others = [_record(offset=i) for i in range(50)]

    async def scenario() -> list[BaseException | None]:
        await store.record_issued(first)
        results = await asyncio.gather(
            *(store.record_issued(r) for r in [*others[:25], duplicate, *others[25:]]),
            return_exceptions=True,
        )
        return list(results)

    results = asyncio.run(scenario())
    failures = [r for r in results if r is not None]
    assert len(failures) == 1 and isinstance(failures[0], AlreadyExists)

    async def count() -> int:
        return len(await store.for_user("taro0001"))

    assert asyncio.run(count()) == 51


def test_many_concurrent_writes_are_all_committed(database_url: str, database: Database) -> None:
    store = SqlCertificateStore(database)
    records = [_record(user_id=f"user{i % 7:04d}", offset=i) for i in range(600)]

    async def scenario() -> None:
        await asyncio.gather(*(store.record_issued(r) for r in records))

    asyncio.run(scenario())
    database.close()
    # A fresh connection sees every row: they were committed, not just cached.
    reopened = open_database(database_url, readers=1)
    try:
        rows = reopened.read_sync(lambda c: c.execute("SELECT serial FROM certificates").fetchall())
    finally:
        reopened.close()
    assert {row[0] for row in rows} == {r.serial_hex for r in records}


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="unsupported database URL scheme"):
        open_database("mysql://localhost/x")
