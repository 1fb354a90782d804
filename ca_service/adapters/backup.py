"""``ca-service backup`` and ``restore``: the database and the data directory, to a directory
and back into a fresh CA.

Layout of a backup directory (0700)::

    manifest.json              what is in it, each file's SHA-256 (written last)
    database/<table>.jsonl     every table's rows (ca_service.adapters.sql.export)
    data/...                   the data directory's files, modes kept (keys 0600)

The database is read in one snapshot transaction while the CA keeps running; the data
directory's files are copied after it (they change only when the OCSP responder rotates or
the root's CRL is re-signed, and either version is valid). A restore checks every SHA-256
first, then fills an empty database and an empty data directory, raises the CRL-number
counter to its floor (:func:`ca_service.domain.backup.crl_number_floor`), drops the stored
CRLs so that the restored CA's first act is a new full CRL over every revocation, and
records the restore in the audit chain. Keys in an HSM are not in a backup: the token is
backed up by the HSM's own means (README, *Backup and restore*).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ca_service.adapters.sql.audit import GENESIS, append_audit, first_broken_row
from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.export import (
    decode_row,
    encode_row,
    export_tables,
    has_rows,
    import_rows,
    tables,
)
from ca_service.adapters.sql.migrations import MIGRATIONS, migrate, schema_version
from ca_service.domain.accounts import OPERATOR_ACTOR, AuditAction, AuditEntry
from ca_service.domain.backup import Manifest, TableSummary, crl_number_floor
from ca_service.errors import AlreadyExists, ConfigurationError, ErrorReason

__all__ = ["RestoreSummary", "create_backup", "restore_backup"]

_MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _data_files(data_dir: Path, skip: set[Path]) -> Iterator[Path]:
    """The data directory's files, without dot-files (locks, half-written temporaries,
    init's staging) and without ``skip`` (the SQLite database, exported as rows)."""
    for directory, names, files in os.walk(data_dir):
        names[:] = sorted(name for name in names if not name.startswith("."))
        for name in sorted(files):
            path = Path(directory, name)
            if not name.startswith(".") and path.resolve() not in skip:
                yield path


def _sqlite_files(database_file: Path | None) -> set[Path]:
    if database_file is None:
        return set()
    base = database_file.resolve()
    return {base, *(base.with_name(base.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}


def _private_mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def create_backup(
    data_dir: Path,
    database: Database,
    target: Path,
    now: datetime,
    *,
    database_file: Path | None = None,
    pkcs11: bool = False,
) -> Manifest:
    """Writes a backup of ``database`` and ``data_dir`` into ``target`` (new or empty).
    ``database_file``: the SQLite file, when it lies in the data directory."""
    if target.exists() and any(target.iterdir()):
        raise AlreadyExists(f"{target} is not empty; back up into a new directory")
    _private_mkdir(target)

    def read(cursor: Cursor) -> tuple[int, list[tuple[str, list[str], list[list[object]]]]]:
        version = cursor.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return (
            int(version[0]) if version and version[0] is not None else 0,
            [(t.name, t.columns, t.rows) for t in export_tables(cursor)],
        )

    version, exported = database.snapshot_sync(read)
    summaries: dict[str, TableSummary] = {}
    crl_number, audit_head = 0, GENESIS
    _private_mkdir(target / "database")
    for name, columns, rows in exported:
        path = target / "database" / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            handle.write(encode_row(columns) + "\n")
            for row in rows:
                handle.write(encode_row(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        summaries[name] = TableSummary(len(rows), _sha256(path))
        if name == "crl_counter" and rows:
            crl_number = int(rows[0][columns.index("number")])  # type: ignore[call-overload]
        if name == "audit_log" and rows:
            audit_head = str(rows[-1][columns.index("hash")])
    files: dict[str, str] = {}
    for source in _data_files(data_dir, _sqlite_files(database_file)):
        relative = source.relative_to(data_dir)
        copy = target / "data" / relative
        _private_mkdir(copy.parent)
        shutil.copy2(source, copy)
        files[relative.as_posix()] = _sha256(copy)
    manifest = Manifest(
        created_at=now,
        schema_version=version,
        dialect=database.dialect,
        tables=summaries,
        files=files,
        crl_number=crl_number,
        audit_head=audit_head,
        pkcs11=pkcs11,
    )
    # Last: a directory without a manifest is an unfinished backup, and restore refuses it.
    partial = target / f".{_MANIFEST}.partial"
    partial.write_text(manifest.dumps() + "\n", encoding="utf-8")
    os.replace(partial, target / _MANIFEST)
    return manifest


def _damaged(why: str) -> ConfigurationError:
    return ConfigurationError(f"the backup cannot be restored: {why}")


def read_manifest(source: Path) -> Manifest:
    """The manifest of the backup in ``source``, after checking every file's SHA-256."""
    try:
        manifest = Manifest.loads((source / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _damaged(f"{source / _MANIFEST} is missing (an unfinished backup?)") from None
    except ValueError as exc:
        raise _damaged(str(exc)) from None
    expected = {f"database/{name}.jsonl": t.sha256 for name, t in manifest.tables.items()}
    expected |= {f"data/{path}": digest for path, digest in manifest.files.items()}
    for relative, digest in expected.items():
        path = source / relative
        if not path.is_file():
            raise _damaged(f"{relative} is missing")
        if _sha256(path) != digest:
            raise _damaged(f"{relative} does not match its SHA-256 in the manifest")
    return manifest


@dataclass(frozen=True)
class RestoreSummary:
    manifest: Manifest
    rows: dict[str, int]
    audit_rows: int
    crl_number: int


def _rows(path: Path) -> tuple[list[str], Iterator[list[object]]]:
    handle = path.open(encoding="utf-8")
    columns = [str(name) for name in decode_row(handle.readline())]

    def rows() -> Iterator[list[object]]:
        with handle:
            for line in handle:
                yield decode_row(line)

    return columns, rows()


def _is_empty(cursor: Cursor) -> bool:
    """No data but what the migrations seed (the CRL counter at 0)."""
    for table in tables(cursor):
        if table == "crl_counter":
            row = cursor.execute("SELECT MAX(number) FROM crl_counter").fetchone()
            if row and row[0]:
                return False
            continue
        if has_rows(cursor, table):
            return False
    return True


def _check_audit_chain(cursor: Cursor) -> tuple[int, str]:
    rows = cursor.execute(
        "SELECT id, at, actor, action, user_id, details, prev_hash, hash FROM audit_log ORDER BY id"
    ).fetchall()
    broken, why = first_broken_row(rows)
    if broken is not None:
        raise _damaged(f"audit row {broken} breaks the hash chain: {why}")
    return len(rows), str(rows[-1][7]) if rows else GENESIS


def restore_backup(
    source: Path, data_dir: Path, database: Database, now: datetime
) -> RestoreSummary:
    """Restores the backup in ``source`` into an empty ``database`` and a ``data_dir``
    without a CA (see the module documentation)."""
    manifest = read_manifest(source)
    known = max(migration.version for migration in MIGRATIONS)
    if manifest.schema_version > known:
        raise _damaged(
            f"it has schema version {manifest.schema_version}, newer than this program's "
            f"{known}; restore with the ca-service version that made it"
        )
    if (data_dir / "root" / "ca.pem").exists() or (data_dir / "issuing" / "ca.pem").exists():
        raise AlreadyExists(
            f"a CA already exists in {data_dir}; restore into an empty data directory",
            reason=ErrorReason.CA_EXISTS,
        )
    if schema_version(database) > manifest.schema_version:
        raise ConfigurationError("the database is not empty; restore into an empty database")
    # The schema as it was when the backup was made; later migrations run after the import.
    migrate(database, [m for m in MIGRATIONS if m.version <= manifest.schema_version])
    floor = crl_number_floor(manifest.crl_number, now)

    def fill(cursor: Cursor) -> tuple[dict[str, int], int, str]:
        if not _is_empty(cursor):
            raise ConfigurationError("the database is not empty; restore into an empty database")
        counts = {}
        for name in manifest.tables:
            columns, rows = _rows(source / "database" / f"{name}.jsonl")
            counts[name] = import_rows(cursor, name, columns, rows)
            if counts[name] != manifest.tables[name].rows:
                raise _damaged(
                    f"{name}: {counts[name]} rows read, the manifest says "
                    f"{manifest.tables[name].rows}"
                )
        audit_rows, head = _check_audit_chain(cursor)
        if head != manifest.audit_head:
            raise _damaged("the audit chain does not end at the manifest's last hash")
        cursor.execute("UPDATE crl_counter SET number = ? WHERE id = 1", (floor,))
        # The CRLs last published are derived data: the restored CA publishes new ones,
        # numbered above the floor, over every revocation restored.
        cursor.execute("DELETE FROM crls")
        append_audit(
            cursor,
            AuditEntry(
                now,
                OPERATOR_ACTOR,
                AuditAction.RESTORE,
                None,
                {
                    "backup_created_at": manifest.created_at.isoformat(),
                    "crl_number_floor": str(floor),
                },
            ),
        )
        return counts, audit_rows, head

    counts, audit_rows, _ = database.write_sync(fill)
    migrate(database)
    _restore_files(source, data_dir, manifest)
    return RestoreSummary(manifest, counts, audit_rows, floor)


def _restore_files(source: Path, data_dir: Path, manifest: Manifest) -> None:
    """Copies the data directory's files beside it first, then moves them in."""
    _private_mkdir(data_dir)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        for relative in manifest.files:
            copy = staging / relative
            _private_mkdir(copy.parent)
            shutil.copy2(source / "data" / relative, copy)
        for entry in sorted(staging.iterdir()):
            target = data_dir / entry.name
            if target.exists():
                raise AlreadyExists(
                    f"{target} already exists; restore into an empty data directory",
                    reason=ErrorReason.CA_EXISTS,
                )
            entry.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
