"""Organisations and users (SPEC A1–A5) as value objects, and who may manage whom (B6)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "Account",
    "AccountRole",
    "AuditEntry",
    "InitialPassword",
    "Organization",
    "email_problem",
    "mask_email",
    "may_manage",
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


@dataclass(frozen=True, slots=True)
class InitialPassword:
    """The operator's one-time password for an organisation's master registration (A4)."""

    organization_id: str
    password_hash: str
    reset_user_id: str | None
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    user_id: str | None
    details: dict[str, str]


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
