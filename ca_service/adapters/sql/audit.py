"""Append-only audit log (SPEC F3): written inside the same transaction as the change."""

from __future__ import annotations

import json

from ca_service.adapters.sql.database import Cursor
from ca_service.domain.accounts import AuditEntry

__all__ = ["append_audit"]


def append_audit(cursor: Cursor, entry: AuditEntry) -> None:
    cursor.execute(
        "INSERT INTO audit_log (at, actor, action, user_id, details) VALUES (?, ?, ?, ?, ?)",
        (
            int(entry.at.timestamp()),
            entry.actor,
            entry.action,
            entry.user_id,
            json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
        ),
    )
