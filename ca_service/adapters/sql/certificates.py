"""CertificateStore on the SQL database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.accounts import AuditAction, AuditEntry
from ca_service.domain.records import CertificateRecord, KeySource
from ca_service.errors import AlreadyExists, ErrorReason

__all__ = ["SqlCertificateStore"]

_COLUMNS = (
    "serial, fingerprint_sha256, user_id, organization, subject, not_before, not_after,"
    " issued_at, key_source, der, revoked_at"
)


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
        not_before=instant(not_before),
        not_after=instant(not_after),
        issued_at=instant(issued_at),
        key_source=KeySource(key_source),
        der=bytes(der),
        revoked_at=instant(revoked_at),
    )


class SqlCertificateStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def record_issued(
        self,
        record: CertificateRecord,
        actor: str = "operator",
        details: Mapping[str, str] | None = None,
    ) -> None:
        values = (
            record.serial_hex,
            record.fingerprint_sha256,
            record.user_id,
            record.organization,
            record.subject,
            epoch(record.not_before),
            epoch(record.not_after),
            epoch(record.issued_at),
            record.key_source.value,
            record.der,
            None,
        )

        audit = AuditEntry(
            record.issued_at,
            actor,
            AuditAction.ISSUE,
            record.user_id,
            {
                **(details or {}),
                "serial": record.serial_hex,
                "key_source": record.key_source.value,
            },
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
                f"serial {record.serial_hex} is already recorded",
                reason=ErrorReason.SERIAL_CONFLICT,
            ) from None

    async def _one(self, column: str, value: str) -> CertificateRecord | None:
        row = await self._database.read_row(
            f"SELECT {_COLUMNS} FROM certificates WHERE {column} = ?", (value,)
        )
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
