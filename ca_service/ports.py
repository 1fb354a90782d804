"""The interfaces the services depend on; adapters implement them."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ca_service.domain.lockout import Event, LockoutState
from ca_service.domain.records import CertificateRecord

__all__ = [
    "CertificateStore",
    "Clock",
    "CodeCheck",
    "CodeOutcome",
    "CodeStore",
    "LockoutChange",
    "LockoutStore",
    "UserChanged",
]


@dataclass(frozen=True, slots=True)
class LockoutChange:
    applied: bool
    before: LockoutState
    after: LockoutState


class CodeOutcome(enum.Enum):
    MATCH = "match"
    WRONG = "wrong"  # tries remain
    VOIDED = "voided"  # this miss used up the tries
    UNKNOWN = "unknown"  # expired, used, replaced or never issued


@dataclass(frozen=True, slots=True)
class CodeCheck:
    outcome: CodeOutcome
    user_id: str | None = None
    tries_left: int = 0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""


class CertificateStore(Protocol):
    async def record_issued(self, record: CertificateRecord, actor: str = "operator") -> None:
        """Durably records a signed certificate, with its audit entry naming ``actor``;
        returns only after the commit.

        Raises :class:`ca_service.errors.AlreadyExists` when the serial is taken."""

    async def by_serial(self, serial: int) -> CertificateRecord | None: ...

    async def by_fingerprint(self, fingerprint_sha256: str) -> CertificateRecord | None: ...

    async def for_user(self, user_id: str) -> Sequence[CertificateRecord]: ...


# -- enrollment (SPEC A, B) --------------------------------------------------------------


class LockoutStore(Protocol):
    """Lockout counters shared by every ca-service process (SPEC B3–B7), updated atomically.

    The transition rules are ``ca_service.domain.lockout.transition``; an adapter must apply
    exactly those, atomically per user ID, with ``now`` as given (never its own clock)."""

    async def state(self, user_id: str) -> LockoutState:
        """The current state (a fresh state for an ID never seen)."""

    async def record(self, user_id: str, event: Event, now: datetime) -> LockoutChange:
        """Applies ``event`` atomically. FAILURE and SUCCESS are refused (state unchanged,
        ``applied`` False) when the ID is locked or blocked at ``now``."""


class CodeStore(Protocol):
    """Authentication codes (SPEC B2), stored only as keyed MACs with a TTL."""

    async def put(
        self, user_id: str, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> None:
        """Stores the code of a new authentication; any earlier code of the user is void."""

    async def check(self, handle_key: str, mac: str, max_tries: int, now: datetime) -> CodeCheck:
        """Compares atomically; a match consumes the code, the ``max_tries``-th miss voids it."""

    async def put_ticket(
        self, ticket_key: str, user_id: str, expires_at: datetime, now: datetime
    ) -> None: ...

    async def take_ticket(self, ticket_key: str, now: datetime) -> str | None:
        """The user ID of an unexpired ticket, which is consumed; None otherwise."""


# Announces that a user's lock state or record changed (lock, block, unlock, reset), so that
# gateways following the revocation stream drop their cached copy.
UserChanged = Callable[[str], Awaitable[None]]
