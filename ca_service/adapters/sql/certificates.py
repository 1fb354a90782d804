"""CertificateStore on the SQL database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.domain.accounts import AuditEntry
from ca_service.domain.records import CertificateRecord, KeySource
from ca_service.errors import AlreadyExists

__all__ = ["SqlCertificateStore"]

_COLUMNS = (
    "serial, fingerprint_sha256, user_id, organization, subject, not_before, not_after,"
    " issued_at, key_source, der, revoked_at"
)


def _epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def _instant(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _row_to_record(row: tuple[Any, ...]) -> CertificateRecord:
    (
        serial,
        fingerprint,
        user_id,
        organization,
        subject,
        not_before,
        not_after,
        issued_at,
        key_source,
        der,
        revoked_at,
    ) = row
    return CertificateRecord(
        serial=int(serial, 16),
        fingerprint_sha256=fingerprint,
        user_id=user_id,
        organization=organization,
        subject=subject,
        not_before=datetime.fromtimestamp(not_before, UTC),
        not_after=datetime.fromtimestamp(not_after, UTC),
        issued_at=datetime.fromtimestamp(issued_at, UTC),
        key_source=KeySource(key_source),
        der=bytes(der),
        revoked_at=_instant(revoked_at),
    )


class SqlCertificateStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def record_issued(self, record: CertificateRecord, actor: str = "operator") -> None:
        values = (
            record.serial_hex,
            record.fingerprint_sha256,
            record.user_id,
            record.organization,
            record.subject,
            _epoch(record.not_before),
            _epoch(record.not_after),
            _epoch(record.issued_at),
            record.key_source.value,
            record.der,
            None,
        )

        audit = AuditEntry(
            record.issued_at,
            actor,
            "issue",
            record.user_id,
            {"serial": record.serial_hex, "key_source": record.key_source.value},
        )

        def insert(cursor: Cursor) -> None:
            cursor.execute(
                f"INSERT INTO certificates ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            append_audit(cursor, audit)

        try:
            await self._database.write(insert)
        except IntegrityError:
            raise AlreadyExists(
                f"serial {record.serial_hex} is already recorded", reason="SERIAL_CONFLICT"
            ) from None

    async def _one(self, column: str, value: str) -> CertificateRecord | None:
        def select(cursor: Cursor) -> tuple[Any, ...] | None:
            return cursor.execute(
                f"SELECT {_COLUMNS} FROM certificates WHERE {column} = ?", (value,)
            ).fetchone()

        row = await self._database.read(select)
        return None if row is None else _row_to_record(row)

    async def by_serial(self, serial: int) -> CertificateRecord | None:
        return await self._one("serial", format(serial, "x"))

    async def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None:
        return await self._one("fingerprint_sha256", fingerprint_sha256)

    async def for_user(self, user_id: str) -> Sequence[CertificateRecord]:
        def select(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.execute(
                f"SELECT {_COLUMNS} FROM certificates WHERE user_id = ?"
                " ORDER BY issued_at DESC, serial",
                (user_id,),
            ).fetchall()

        return [_row_to_record(row) for row in await self._database.read(select)]
