"""A logical export of every table, read in one consistent snapshot, and its import into an
empty database of either dialect.

Rows are JSON arrays, one a line, in primary-key order; bytes are ``{"b64": ...}``. The same
export restores into SQLite or PostgreSQL (pg_dump's output would bind a backup to one
server version and to PostgreSQL). Tables are listed from the database itself, in creation
order, so a table a later migration adds is exported without a change here, and rows that
others reference are imported first.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ca_service.adapters.sql.database import Cursor

__all__ = [
    "TableExport",
    "decode_row",
    "encode_row",
    "export_tables",
    "has_rows",
    "import_rows",
    "tables",
]

# Bookkeeping of the engines and of the migrations, not data: a restore makes its own.
_SKIPPED = frozenset({"schema_migrations", "sqlite_sequence"})


@dataclass(frozen=True)
class TableExport:
    name: str
    columns: list[str]
    rows: list[list[Any]]


def tables(cursor: Cursor) -> list[str]:
    """The data tables, oldest first."""
    if cursor.dialect == "sqlite":
        rows = cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"
        ).fetchall()
    else:
        rows = cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.oid"
        ).fetchall()
    return [str(name) for (name,) in rows if str(name) not in _SKIPPED]


def _columns(cursor: Cursor, table: str) -> list[str]:
    if cursor.dialect == "sqlite":
        rows = cursor.execute(f'PRAGMA table_info("{table}")').fetchall()
        return [str(row[1]) for row in rows]
    rows = cursor.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(name) for (name,) in rows]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def has_rows(cursor: Cursor, table: str) -> bool:
    return cursor.execute(f"SELECT 1 FROM {_quoted(table)} LIMIT 1").fetchone() is not None


def export_tables(cursor: Cursor) -> list[TableExport]:
    """Every data table's rows; run it inside :meth:`Database.snapshot_sync`."""
    exported = []
    for table in tables(cursor):
        columns = _columns(cursor, table)
        rows = cursor.execute(f"SELECT * FROM {_quoted(table)} ORDER BY 1").fetchall()
        exported.append(TableExport(table, columns, [list(row) for row in rows]))
    return exported


def encode_row(row: Iterable[Any]) -> str:
    def value(item: Any) -> Any:
        if isinstance(item, bytes | bytearray | memoryview):
            return {"b64": base64.b64encode(bytes(item)).decode("ascii")}
        return item

    return json.dumps([value(item) for item in row], ensure_ascii=False, separators=(",", ":"))


def decode_row(line: str) -> list[Any]:
    return [
        base64.b64decode(item["b64"]) if isinstance(item, dict) else item
        for item in json.loads(line)
    ]


def import_rows(cursor: Cursor, table: str, columns: list[str], rows: Iterator[list[Any]]) -> int:
    """Replaces ``table``'s rows (a migration may have seeded some, e.g. the CRL counter)
    with ``rows``; returns how many. PostgreSQL identity columns continue after the
    highest value imported."""
    known = _columns(cursor, table)
    if set(columns) - set(known):
        raise ValueError(f"table {table}: columns {sorted(set(columns) - set(known))} unknown")
    cursor.execute(f"DELETE FROM {_quoted(table)}")
    placeholders = ", ".join("?" for _ in columns)
    statement = (
        f"INSERT INTO {_quoted(table)} ({', '.join(map(_quoted, columns))}) VALUES ({placeholders})"
    )
    batch: list[list[Any]] = []
    count = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= 1000:
            cursor.executemany(statement, batch)
            count += len(batch)
            batch = []
    if batch:
        cursor.executemany(statement, batch)
        count += len(batch)
    if cursor.dialect == "postgresql":
        identities = cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = ? AND is_identity = 'YES'",
            (table,),
        ).fetchall()
        for (column,) in identities:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), MAX({_quoted(column)}))"
                f" FROM {_quoted(table)} HAVING MAX({_quoted(column)}) IS NOT NULL",
                (table, column),
            )
    return count
