"""The interfaces the services depend on; adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ca_service.domain.records import CertificateRecord

__all__ = ["CertificateStore", "Clock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""


class CertificateStore(Protocol):
    async def record_issued(self, record: CertificateRecord) -> None:
        """Durably records a signed certificate; returns only after the commit.

        Raises :class:`ca_service.errors.AlreadyExists` when the serial is taken."""

    async def by_serial(self, serial: int) -> CertificateRecord | None: ...

    async def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None: ...

    async def for_user(self, user_id: str) -> Sequence[CertificateRecord]: ...
