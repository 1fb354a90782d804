"""Certificate notices (SPEC C3) on SQLite and PostgreSQL, driven by an injected clock."""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest

from ca_service.adapters.mail import templates
from ca_service.adapters.sql.database import Cursor, Database, open_database
from ca_service.adapters.sql.notices import SqlNoticeStore
from ca_service.domain.mail import MailKind
from ca_service.domain.validity import (
    JAPAN,
    expiry_notice_day,
    renewal_notice_day,
    validity_for,
)
from ca_service.services.notices import CertificateNotices
from tests.vectors import VALIDITY_CSV

ONE_SECOND = timedelta(seconds=1)
_serials = itertools.count(0x4000_0000_0000_0001)


@dataclass(frozen=True)
class Vector:
    issued_at: datetime
    not_after: datetime
    renewal_day: date
    expiry_day: date


def _vectors() -> list[Vector]:
    with VALIDITY_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Vector(
            datetime.fromisoformat(row["issued_at"]),
            datetime.fromisoformat(row["not_after_utc"].replace("Z", "+00:00")),
            date.fromisoformat(row["renewal_notice_day_jst"]),
            date.fromisoformat(row["expiry_notice_day_jst"]),
        )
        for row in rows
    ]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=JAPAN)


@pytest.fixture
def organization(database: Database) -> str:
    database.write_sync(
        lambda c: c.execute(
            "INSERT INTO organizations (organization_id, name, created_at) VALUES (?, ?, ?)",
            ("org1", "株式会社テスト", 0),
        )
    )
    return "org1"


def _add_user(database: Database, user_id: str, organization: str = "org1") -> str:
    email = f"{user_id}@example.jp"
    database.write_sync(
        lambda c: c.execute(
            "INSERT INTO users (user_id, organization_id, role, email, password_hash,"
            " created_at, updated_at) VALUES (?, ?, 'general', ?, 'x', 0, 0)",
            (user_id, organization, email),
        )
    )
    return email


def _add_certificate(
    database: Database,
    user_id: str,
    issued_at: datetime,
    *,
    revoked_at: datetime | None = None,
) -> tuple[str, datetime]:
    """A certificate row as issuance writes it; returns (serial, notAfter)."""
    serial = format(next(_serials), "x")
    validity = validity_for(issued_at)

    def insert(cursor: Cursor) -> None:
        cursor.execute(
            "INSERT INTO certificates (serial, fingerprint_sha256, user_id, organization,"
            " subject, not_before, not_after, issued_at, key_source, der, revoked_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'server', ?, ?)",
            (
                serial,
                serial.rjust(64, "0"),
                user_id,
                "株式会社テスト",
                f"CN={user_id},O=株式会社テスト",
                int(validity.not_before.timestamp()),
                int(validity.not_after.timestamp()),
                int(issued_at.timestamp()),
                b"\x30\x00",
                None if revoked_at is None else int(revoked_at.timestamp()),
            ),
        )

    database.write_sync(insert)
    return serial, validity.not_after


def _keys(database: Database) -> set[str]:
    rows = database.read_sync(lambda c: c.execute("SELECT dedupe_key FROM outbox").fetchall())
    return {str(row[0]) for row in rows}


def _notices(database: Database) -> CertificateNotices:
    return CertificateNotices(store=SqlNoticeStore(database), templates=templates)


def _queue(database: Database, now: datetime) -> int:
    return asyncio.run(_notices(database).queue_due(now))


def test_notices_go_out_on_the_vector_days(database: Database, organization: str) -> None:
    """Renewal on renewal_notice_day, expiry on expiry_notice_day, to the second."""
    due: dict[datetime, set[str]] = {}
    vectors = _vectors()
    for n, vector in enumerate(vectors):
        user_id = f"user{n:04d}"
        _add_user(database, user_id)
        serial, not_after = _add_certificate(database, user_id, vector.issued_at)
        assert not_after == vector.not_after
        assert renewal_notice_day(not_after) == vector.renewal_day
        assert expiry_notice_day(not_after) == vector.expiry_day
        due.setdefault(_midnight(vector.renewal_day), set()).add(f"{MailKind.RENEWAL}:{serial}")
        due.setdefault(_midnight(vector.expiry_day), set()).add(f"{MailKind.EXPIRY}:{serial}")
    # In time order: keys absent one second before their Japan midnight are absent because
    # they are not due yet, not because an earlier run missed them.
    for midnight, keys in sorted(due.items()):
        _queue(database, midnight - ONE_SECOND)
        assert not keys & _keys(database), f"queued before {midnight}"
        assert _queue(database, midnight) == len(keys)
        assert keys <= _keys(database), f"not queued at {midnight}"
    assert len(_keys(database)) == 2 * len(vectors)


def test_notice_content(database: Database, organization: str) -> None:
    email = _add_user(database, "taro0001")
    serial, not_after = _add_certificate(
        database, "taro0001", datetime(2026, 11, 21, 1, tzinfo=UTC)
    )
    assert _queue(database, not_after - timedelta(days=20)) == 1
    assert _queue(database, not_after + ONE_SECOND) == 1
    rows = database.read_sync(
        lambda c: c.execute(
            "SELECT dedupe_key, kind, recipient, subject, body, status FROM outbox ORDER BY id"
        ).fetchall()
    )
    assert [row[:3] for row in rows] == [
        (f"renewal:{serial}", MailKind.RENEWAL, email),
        (f"expiry:{serial}", MailKind.EXPIRY, email),
    ]
    assert all(row[5] == "pending" for row in rows)
    assert "taro0001 様" in rows[0][4] and "2027年11月21日 23:59" in rows[0][4]
    assert "有効期限切れ" in rows[1][3]


def test_no_notice_for_a_certificate_superseded_by_a_newer_one(
    database: Database, organization: str
) -> None:
    _add_user(database, "taro0001")
    _, old_not_after = _add_certificate(database, "taro0001", datetime(2026, 11, 21, 1, tzinfo=UTC))
    renewal_day = _midnight(renewal_notice_day(old_not_after))
    # Renewed on the day renewal opened, before the notice job ran that day.
    _add_certificate(database, "taro0001", renewal_day + timedelta(hours=9))
    assert _queue(database, renewal_day + timedelta(hours=10)) == 0
    assert _queue(database, old_not_after + timedelta(days=2)) == 0
    assert _keys(database) == set()


def test_renewal_after_the_notice_prevents_the_expiry_notice(
    database: Database, organization: str
) -> None:
    _add_user(database, "taro0001")
    serial, not_after = _add_certificate(
        database, "taro0001", datetime(2026, 11, 21, 1, tzinfo=UTC)
    )
    assert _queue(database, not_after - timedelta(days=10)) == 1
    _add_certificate(database, "taro0001", not_after - timedelta(days=5))
    assert _queue(database, not_after + timedelta(days=1)) == 0
    assert _keys(database) == {f"renewal:{serial}"}


def test_no_notice_for_revoked_certificates_or_users_without_account(
    database: Database, organization: str
) -> None:
    issued = datetime(2026, 11, 21, 1, tzinfo=UTC)
    _add_user(database, "taro0001")
    _, not_after = _add_certificate(
        database, "taro0001", issued, revoked_at=issued + timedelta(days=3)
    )
    _add_certificate(database, "csrcaller", issued)  # a CSR signed for a non-user
    assert _queue(database, not_after - timedelta(days=1)) == 0
    assert _queue(database, not_after + timedelta(days=1)) == 0


def test_a_certificate_first_seen_expired_gets_only_the_expiry_notice(
    database: Database, organization: str
) -> None:
    _add_user(database, "taro0001")
    serial, not_after = _add_certificate(
        database, "taro0001", datetime(2026, 11, 21, 1, tzinfo=UTC)
    )
    assert _queue(database, not_after + ONE_SECOND) == 1
    assert _keys(database) == {f"expiry:{serial}"}
    assert _queue(database, not_after + timedelta(days=400)) == 0


def test_renewal_notice_until_the_last_second_of_validity(
    database: Database, organization: str
) -> None:
    _add_user(database, "taro0001")
    serial, not_after = _add_certificate(
        database, "taro0001", datetime(2026, 11, 21, 1, tzinfo=UTC)
    )
    # First seen in the last second of validity: the renewal notice still goes out.
    assert _queue(database, not_after) == 1
    assert _keys(database) == {f"renewal:{serial}"}


@pytest.fixture
def second_database(database_url: str, database: Database) -> Iterator[Database]:
    other = open_database(database_url, readers=1)
    yield other
    other.close()


def test_each_notice_once_across_repeated_and_concurrent_runs(
    database: Database, second_database: Database, organization: str
) -> None:
    issued = datetime(2026, 11, 21, 1, tzinfo=UTC)
    not_after = validity_for(issued).not_after
    for n in range(30):
        _add_user(database, f"user{n:04d}")
        _add_certificate(database, f"user{n:04d}", issued + timedelta(seconds=n))

    async def both(now: datetime) -> list[int]:
        return list(
            await asyncio.gather(
                _notices(database).queue_due(now),
                _notices(second_database).queue_due(now),
                _notices(database).queue_due(now),
            )
        )

    for now, kind in (
        (not_after - timedelta(days=3), MailKind.RENEWAL),
        (not_after + timedelta(days=1), MailKind.EXPIRY),
    ):
        counts = asyncio.run(both(now))
        assert sum(counts) == 30, counts
        assert asyncio.run(both(now)) == [0, 0, 0]
        assert _queue(database, now) == 0
        assert sum(key.startswith(f"{kind}:") for key in _keys(database)) == 30
    assert len(_keys(database)) == 60
