"""What the CA tells the gateway about users and about its rules, as plain values built from
the API's messages: a user's role and lock state (enums, not strings), an issued
certificate, and the figures of the rules the screens explain (``GetRules``). Pure."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from ca_service.api import pb

__all__ = [
    "CertificateHolding",
    "HeldCertificate",
    "Issued",
    "RevocationCause",
    "Rules",
    "UserRecord",
    "UserRole",
    "UserState",
]


class UserRole(enum.StrEnum):
    """A user's role; its value goes upstream in the role header."""

    MASTER = "master"
    GENERAL = "general"
    # A role this gateway does not know (a newer CA): no master's tools.
    UNKNOWN = "unknown"


class UserState(enum.StrEnum):
    ACTIVE = "active"
    # Too many wrong passwords (SPEC B3): lifts by itself at ``locked_until``.
    LOCKED = "locked"
    # The lock that blocks (SPEC B4): only an unlock helps.
    BLOCKED = "blocked"


_ROLES = {pb.USER_ROLE_MASTER: UserRole.MASTER, pb.USER_ROLE_GENERAL: UserRole.GENERAL}
_STATES = {pb.USER_STATE_LOCKED: UserState.LOCKED, pb.USER_STATE_BLOCKED: UserState.BLOCKED}


def _instant(timestamp: object) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined, no-any-return]


class CertificateHolding(enum.StrEnum):
    """What a master user's page says of a user's certificate (issue 11)."""

    VALID = "valid"  # 有効
    REVOKED = "revoked"  # 失効
    EXPIRED = "expired"  # 期限切れ
    NONE = "none"  # なし


_HOLDINGS = {
    pb.CERTIFICATE_HOLDING_VALID: CertificateHolding.VALID,
    pb.CERTIFICATE_HOLDING_REVOKED: CertificateHolding.REVOKED,
    pb.CERTIFICATE_HOLDING_EXPIRED: CertificateHolding.EXPIRED,
}


class RevocationCause(enum.StrEnum):
    """Why a master user revokes a general user's certificate (SPEC C6, C7); the value is
    what the master user's page posts."""

    PC_CHANGE = "pc_change"  # PC変更
    LOST_PC = "lost_pc"  # PC紛失

    @property
    def message_value(self) -> pb.RevocationCause:
        """The API's ``RevocationCause``."""
        return _CAUSES[self]


_CAUSES: dict[RevocationCause, pb.RevocationCause] = {
    RevocationCause.PC_CHANGE: pb.REVOCATION_CAUSE_PC_CHANGE,
    RevocationCause.LOST_PC: pb.REVOCATION_CAUSE_LOST_PC,
}


@dataclass(frozen=True, slots=True)
class HeldCertificate:
    holding: CertificateHolding
    serial_number: str
    not_after: datetime | None
    renewal_opens_at: datetime | None
    renewal_open: bool

    @classmethod
    def from_message(cls, summary: pb.CertificateSummary) -> HeldCertificate:
        return cls(
            _HOLDINGS.get(summary.holding, CertificateHolding.NONE),
            summary.serial_number,
            _instant(summary.not_after) if summary.HasField("not_after") else None,
            _instant(summary.renewal_opens_at) if summary.HasField("renewal_opens_at") else None,
            summary.renewal_open,
        )


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    organization_id: str
    organization_name: str
    role: UserRole
    email: str
    state: UserState
    locked_until: datetime | None
    # A master user's listing only (ListUsers).
    certificate: HeldCertificate | None = None
    # The password was given (by the master user or the operator) and not yet replaced.
    password_given: bool = False
    # When the password last changed or was reset, in milliseconds since the epoch on the
    # CA's clock, strictly increasing per user; 0: not since the CA recorded it. Only ever
    # compared with another value of the CA's (the one a session's login answered).
    password_changed_ms: int = 0

    @classmethod
    def from_message(cls, user: pb.User) -> UserRecord:
        return cls(
            user.user_id,
            user.organization_id,
            user.organization_name,
            _ROLES.get(user.role, UserRole.UNKNOWN),
            user.email,
            _STATES.get(user.state, UserState.ACTIVE),
            _instant(user.locked_until) if user.HasField("locked_until") else None,
            HeldCertificate.from_message(user.certificate)
            if user.HasField("certificate")
            else None,
            user.password_change_required,
            user.password_changed_at.ToMilliseconds()
            if user.HasField("password_changed_at")
            else 0,
        )

    def state_at(self, now: datetime) -> UserState:
        """The state at ``now``: a lock whose time has passed no longer counts (the record
        may be cached from before)."""
        if (
            self.state is UserState.LOCKED
            and self.locked_until is not None
            and self.locked_until <= now
        ):
            return UserState.ACTIVE
        return self.state


@dataclass(frozen=True, slots=True)
class Issued:
    pkcs12: bytes
    file_name: str
    serial_number: str
    not_after: datetime

    @classmethod
    def from_message(cls, answer: pb.IssueCertificateResponse) -> Issued:
        return cls(
            bytes(answer.pkcs12),
            answer.file_name,
            answer.certificate.serial_number,
            _instant(answer.certificate.not_after),
        )


@dataclass(frozen=True, slots=True)
class Rules:
    """The figures of the CA's rules, as the screens show them (SPEC A2, A3, B2-B4, C1, C2,
    D1).
    The gateway has no copies of its own: it asks the CA once at start-up."""

    user_id_min_length: int
    user_id_max_length: int
    password_min_length: int
    password_max_length: int
    code_digits: int
    code_validity: timedelta
    failures_to_lock: int
    lock_duration: timedelta
    locks_to_block: int
    certificate_validity_days: int
    renewal_window_days: int
    # SPEC D1: how long an e-mail verification link stays valid.
    email_link_validity: timedelta
    resend_interval: timedelta
    resends_per_window: int
    resend_window: timedelta

    def __post_init__(self) -> None:
        for figure in fields(self):
            value = getattr(self, figure.name)
            if value <= (timedelta(0) if isinstance(value, timedelta) else 0):
                raise ValueError(f"the CA's rules lack {figure.name}")

    @classmethod
    def from_message(cls, rules: pb.Rules) -> Rules:
        """Raises ValueError for an answer without every figure (a CA that does not know
        GetRules' fields)."""
        return cls(
            user_id_min_length=rules.user_id_min_length,
            user_id_max_length=rules.user_id_max_length,
            password_min_length=rules.password_min_length,
            password_max_length=rules.password_max_length,
            code_digits=rules.code_digits,
            code_validity=rules.code_validity.ToTimedelta(),
            failures_to_lock=rules.failures_to_lock,
            lock_duration=rules.lock_duration.ToTimedelta(),
            locks_to_block=rules.locks_to_block,
            certificate_validity_days=rules.certificate_validity_days,
            renewal_window_days=rules.renewal_window_days,
            email_link_validity=rules.email_link_validity.ToTimedelta(),
            resend_interval=rules.resend_interval.ToTimedelta(),
            resends_per_window=rules.resends_per_window,
            resend_window=rules.resend_window.ToTimedelta(),
        )
