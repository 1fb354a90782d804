"""What the operator reads back (SPEC A6, F3): the mail outbox and the audit log, with the
limits of the API applied once here."""

from __future__ import annotations

from datetime import datetime

from ca_service.domain.accounts import AuditRow
from ca_service.domain.mail import MailStatus, OutboxRow
from ca_service.errors import InvalidArgument
from ca_service.ports import AuditLog, MailLog

__all__ = ["AuditTrail", "MailListing"]

_MAIL_DEFAULT, _MAIL_MOST = 100, 1000
_AUDIT_DEFAULT, _AUDIT_MOST = 100, 10_000


class MailListing:
    def __init__(self, log: MailLog) -> None:
        self._log = log

    async def list(self, *, status: str = "", limit: int = 0) -> list[OutboxRow]:
        """The newest mail first, of one status or all (``""``); ``limit`` 0 is the default
        page, and it is capped."""
        statuses = [str(known) for known in MailStatus]
        if status and status not in statuses:
            raise InvalidArgument(
                f"status must be {', '.join(statuses[:-1])} or {statuses[-1]}",
                metadata={"field": "status"},
            )
        return await self._log.list(
            limit=min(limit or _MAIL_DEFAULT, _MAIL_MOST), status=status or None
        )


class AuditTrail:
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def list(
        self,
        *,
        user_id: str = "",
        action: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 0,
    ) -> list[AuditRow]:
        return await self._log.list(
            user_id=user_id or None,
            action=action or None,
            since=since,
            until=until,
            limit=min(limit or _AUDIT_DEFAULT, _AUDIT_MOST),
        )

    async def verify(self) -> tuple[int, int | None, str]:
        """(rows checked, first broken row ID or None, why)."""
        return await self._log.verify()
