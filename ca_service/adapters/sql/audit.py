"""Append-only, hash-chained audit log (SPEC F3).

Each row stores the hash of the row before it and its own hash over that and its content,
so changing, inserting or deleting a row breaks the chain at that row. Entries are written
inside the same transaction as the change they record; appends are serialised (SQLite's
write lock; a PostgreSQL advisory lock) so the chain never forks.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.accounts import AuditEntry, AuditRow

__all__ = ["GENESIS", "SqlAuditLog", "append_audit", "chain_hash", "first_broken_row", "rehash_all"]

GENESIS = "0" * 64
# Any 64-bit number; it names the advisory lock that serialises audit appends in PostgreSQL.
_PG_AUDIT_LOCK = 0x4341_5F41_5544_4954


def chain_hash(
    prev_hash: str, at: int, actor: str, action: str, user_id: str | None, details: str
) -> str:
    content = json.dumps(
        [prev_hash, at, actor, action, user_id, details], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _last_hash(cursor: Cursor) -> str:
    row = cursor.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    return str(row[0]) if row and row[0] else GENESIS


def append_audit(cursor: Cursor, entry: AuditEntry) -> None:
    if cursor.dialect == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(?)", (_PG_AUDIT_LOCK,))
    at = epoch(entry.at)
    details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
    prev = _last_hash(cursor)
    cursor.execute(
        "INSERT INTO audit_log (at, actor, action, user_id, details, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            at,
            entry.actor,
            entry.action,
            entry.user_id,
            details,
            prev,
            chain_hash(prev, at, entry.actor, entry.action, entry.user_id, details),
        ),
    )


def rehash_all(cursor: Cursor) -> None:
    """Chains rows written before the chain existed (migration 4)."""
    prev = GENESIS
    rows = cursor.execute(
        "SELECT id, at, actor, action, user_id, details FROM audit_log ORDER BY id"
    ).fetchall()
    for row_id, at, actor, action, user_id, details in rows:
        own = chain_hash(prev, at, actor, action, user_id, details)
        cursor.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev, own, row_id)
        )
        prev = own


def _row(values: Sequence[Any]) -> AuditRow:
    row_id, at, actor, action, user_id, details, prev_hash, own = values
    return AuditRow(
        int(row_id),
        instant(at),
        actor,
        action,
        user_id,
        details,
        prev_hash or "",
        own or "",
    )


def first_broken_row(rows: Sequence[Sequence[Any]], prev: str = GENESIS) -> tuple[int | None, str]:
    """Walks rows (id, at, actor, action, user_id, details, prev_hash, hash) in id order,
    the first of which follows ``prev``; returns the id of the first row that breaks the
    chain and why, or (None, "")."""
    for values in rows:
        row = _row(values)
        if row.prev_hash != prev:
            return row.id, "its previous-hash does not match the row before it"
        expected = chain_hash(prev, epoch(row.at), row.actor, row.action, row.user_id, row.details)
        if row.hash != expected:
            return row.id, "its content does not match its hash"
        prev = row.hash
    return None, ""


class SqlAuditLog:
    """Reading the audit log: filtered listing and verification of the whole chain."""

    _COLUMNS = "id, at, actor, action, user_id, details, prev_hash, hash"

    def __init__(self, database: Database) -> None:
        self._database = database

    async def list(
        self,
        *,
        user_id: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditRow]:
        clauses, params = [], []
        for column, op, value in (
            ("user_id", "=", user_id),
            ("action", "=", action),
            ("at", ">=", since),
            ("at", "<", until),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                params.append(epoch(value) if isinstance(value, datetime) else value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

        def read(cursor: Cursor) -> builtins.list[tuple[Any, ...]]:
            return cursor.execute(
                f"SELECT {self._COLUMNS} FROM audit_log{where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()

        return [_row(values) for values in await self._database.read(read)]

    async def verify(self, page: int = 5000) -> tuple[int, int | None, str]:
        """(rows checked, first broken row id or None, why) over the whole chain."""
        prev, checked, after = GENESIS, 0, 0
        while True:

            def read(cursor: Cursor, after: int = after) -> builtins.list[tuple[Any, ...]]:
                return cursor.execute(
                    f"SELECT {self._COLUMNS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
                    (after, page),
                ).fetchall()

            rows = await self._database.read(read)
            if not rows:
                return checked, None, ""
            broken, why = first_broken_row(rows, prev)
            if broken is not None:
                return checked, broken, why
            checked += len(rows)
            prev, after = rows[-1][7], rows[-1][0]
