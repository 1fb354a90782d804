"""Schema migrations: an ordered list, applied once each, in one transaction, under a lock
so that several ca-service processes starting together do not race."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ca_service.adapters.sql.database import Cursor, Database
from ca_service.errors import StoreError

__all__ = ["MIGRATIONS", "migrate", "schema_version"]

log = logging.getLogger(__name__)

# Any 64-bit number; it names the advisory lock that serialises migrations in PostgreSQL.
_PG_MIGRATION_LOCK = 0x43415F5343484D41


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Sequence[str]


def _types(sql: str, dialect: str) -> str:
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    return sql.replace("{blob}", blob)


MIGRATIONS: Sequence[Migration] = (
    Migration(
        1,
        "certificates",
        (
            """
            CREATE TABLE certificates (
                serial TEXT PRIMARY KEY,
                fingerprint_sha256 TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                organization TEXT NOT NULL,
                subject TEXT NOT NULL,
                not_before BIGINT NOT NULL,
                not_after BIGINT NOT NULL,
                issued_at BIGINT NOT NULL,
                key_source TEXT NOT NULL CHECK (key_source IN ('csr', 'server')),
                der {blob} NOT NULL,
                revoked_at BIGINT
            )
            """,
            "CREATE INDEX certificates_by_user ON certificates (user_id, issued_at)",
        ),
    ),
)


def _ensure_table(cursor: Cursor) -> None:
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )


def schema_version(database: Database) -> int:
    def read(cursor: Cursor) -> int:
        _ensure_table(cursor)
        row = cursor.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    return database.write_sync(read)


def migrate(database: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Applies the pending migrations and returns their versions."""
    known = max((m.version for m in migrations), default=0)

    def apply(cursor: Cursor) -> list[int]:
        if cursor.dialect == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(?)", (_PG_MIGRATION_LOCK,))
        _ensure_table(cursor)
        row = cursor.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current > known:
            raise StoreError(
                f"database schema version {current} is newer than this program ({known}); "
                "upgrade ca-service",
                reason="SCHEMA_TOO_NEW",
            )
        applied = []
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                cursor.execute(_types(statement, cursor.dialect))
            cursor.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, int(time.time())),
            )
            applied.append(migration.version)
        return applied

    applied = database.write_sync(apply)
    if applied:
        log.info("applied schema migrations %s", applied)
    return applied
