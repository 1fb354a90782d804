"""What a backup is and what a restore must guarantee (pure policy, no I/O).

A backup directory holds a manifest (this module's :class:`Manifest`), the database's rows
as a logical export and the data directory's files, each named with its SHA-256.

A restored CA must never reuse a CRL number, even though the CA it replaces may have
published CRLs after the backup was taken. CRL numbers come from one counter that grows by
a few per publication, at most a handful per second, so it stays far below the number of
milliseconds since 1970. A restore therefore raises the counter to the milliseconds of the
restore time (:func:`crl_number_floor`): above every number the old CA can have used, and,
since a restored CA counts on from there just as slowly, above every number it uses itself
before a later restore raises it again. Serial numbers need no floor: they are 159 random
bits (``ca_service.pki.certificates.new_serial``), and the store refuses a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["FORMAT", "Manifest", "TableSummary", "crl_number_floor"]

# The manifest's format; a restore refuses any other.
FORMAT = "ca-service-backup/1"


def crl_number_floor(stored: int, now: datetime) -> int:
    """The CRL-number counter after a restore at ``now`` (see the module documentation):
    the next CRL gets a higher number than any CRL either CA can have published."""
    return max(stored, int(now.timestamp() * 1000))


@dataclass(frozen=True)
class TableSummary:
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created_at: datetime
    schema_version: int
    dialect: str
    # Database tables (in creation order, so that referenced rows are restored first).
    tables: Mapping[str, TableSummary]
    # Data-directory files by relative path → SHA-256.
    files: Mapping[str, str]
    # What a restore checks it got back.
    crl_number: int
    audit_head: str
    pkcs11: bool = False
    format: str = FORMAT

    def dumps(self) -> str:
        return json.dumps(
            {
                "format": self.format,
                "created_at": self.created_at.isoformat(),
                "schema_version": self.schema_version,
                "dialect": self.dialect,
                "tables": {
                    name: {"rows": table.rows, "sha256": table.sha256}
                    for name, table in self.tables.items()
                },
                "files": dict(self.files),
                "crl_number": self.crl_number,
                "audit_head": self.audit_head,
                "pkcs11": self.pkcs11,
            },
            indent=2,
            ensure_ascii=False,
        )

    @classmethod
    def loads(cls, text: str) -> Manifest:
        """Raises ValueError for a manifest of another format or a malformed one."""
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} manifest (format {raw.get('format')!r})")
            return cls(
                created_at=datetime.fromisoformat(raw["created_at"]),
                schema_version=int(raw["schema_version"]),
                dialect=str(raw["dialect"]),
                tables={
                    str(name): TableSummary(int(table["rows"]), str(table["sha256"]))
                    for name, table in raw["tables"].items()
                },
                files={str(path): str(digest) for path, digest in raw["files"].items()},
                crl_number=int(raw["crl_number"]),
                audit_head=str(raw["audit_head"]),
                pkcs11=bool(raw.get("pkcs11", False)),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed backup manifest: {exc}") from None
