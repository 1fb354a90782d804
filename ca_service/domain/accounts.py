"""Organisations and users (SPEC A1–A5) as value objects, and who may manage whom (B6)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "OPERATOR_ACTOR",
    "SYSTEM_ACTOR",
    "Account",
    "AccountRole",
    "AuditAction",
    "AuditEntry",
    "AuditRow",
    "InitialPassword",
    "Organization",
    "email_problem",
    "mask_email",
    "may_manage",
    "password_stamp",
]


class AccountRole(enum.Enum):
    MASTER = "master"
    GENERAL = "general"


@dataclass(frozen=True, slots=True)
class Organization:
    organization_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str
    organization_id: str
    organization_name: str
    role: AccountRole
    email: str
    password_hash: str
    blocked_at: datetime | None
    created_at: datetime
    # The password was given to the user (by a master user or the operator: a new general
    # user, a reset), not chosen: it must be changed before issuance or login (SPEC A5).
    password_initial: bool = False
    # When the password last changed or was reset (millisecond precision); None: not since
    # this was recorded. Gateways end every session of the user logged in before it.
    password_changed_at: datetime | None = None


def password_stamp(previous_ms: int | None, now_ms: int) -> int:
    """The ``password_changed_at`` (milliseconds since the epoch) of a password change at
    ``now_ms`` after one stamped ``previous_ms``: now, but always after the previous one, so
    that two changes within a millisecond, or on two CA hosts whose clocks differ a little,
    still order (a gateway ends a session that holds an earlier stamp)."""
    return now_ms if previous_ms is None or now_ms > previous_ms else previous_ms + 1


@dataclass(frozen=True, slots=True)
class InitialPassword:
    """The operator's one-time password for an organisation's master registration (A4)."""

    organization_id: str
    password_hash: str
    reset_user_id: str | None
    issued_at: datetime
    expires_at: datetime


class AuditAction(enum.StrEnum):
    """What an audit entry records (SPEC F3); ``ca-admin audit list --action`` filters by it."""

    CREATE_ORGANIZATION = "create_organization"
    REGISTER_MASTER = "register_master"
    RESET_MASTER = "reset_master"
    REGISTER_USER = "register_user"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (an action, not a password)
    CHANGE_PASSWORD = "change_password"  # noqa: S105 (an action, not a password)
    LOGIN = "login"
    LOCK = "lock"
    BLOCK = "block"
    UNLOCK = "unlock"
    ISSUE = "issue"
    REVOKE = "revoke"
    # SPEC D1: a user's new e-mail address was asked for, and became active.
    REQUEST_EMAIL_CHANGE = "request_email_change"
    CHANGE_EMAIL = "change_email"
    RESTORE = "restore"  # the store was restored from a backup (``ca-service restore``)


# Actors that are not a user ID or a caller credential (``Caller.actor``).
OPERATOR_ACTOR = "operator"
SYSTEM_ACTOR = "system"  # the service itself, e.g. a lock after wrong passwords


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: AuditAction
    user_id: str | None
    details: dict[str, str]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """A stored audit entry with its place in the hash chain (SPEC F3)."""

    id: int
    at: datetime
    actor: str
    action: str
    user_id: str | None
    details: str  # JSON
    prev_hash: str
    hash: str


def may_manage(actor: Account | None, target: Account) -> bool:
    """SPEC A5/B6: the operator (``actor`` None) manages everyone; a master user manages
    the general users of its own organisation; nobody else manages anyone."""
    if actor is None:
        return True
    return (
        actor.role is AccountRole.MASTER
        and target.role is AccountRole.GENERAL
        and actor.organization_id == target.organization_id
    )


# Deliberately plain: one @, a dot in the domain, printable ASCII, no spaces. Whether the
# address works is proven by delivering mail to it, not by a pattern.
_EMAIL = re.compile(r"[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def email_problem(email: str) -> str | None:
    if len(email) > 254 or not _EMAIL.fullmatch(email) or email.count("@") != 1:
        return "e-mail address must look like name@example.jp (half-width ASCII)"
    return None


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
