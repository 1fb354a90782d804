"""E-mail verification links (SPEC D1): who asks for one, the token, and what state a
presented link is in. Pure: randomness and time are passed in.

The token is 256 bits from the caller's CSPRNG, sent only in the mail. The store keeps
only its SHA-256: a token that strong cannot be found from its hash by trying candidates,
so a slow or keyed hash (as passwords and 6-digit codes need) would add nothing, and a
plain hash lets any process look a link up without a shared key. A leaked table or backup
therefore gives no working link.
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from ca_service.domain.codes import token_key
from ca_service.domain.profiles import Role

__all__ = [
    "LINK_RECORD_RETENTION",
    "TOKEN_BYTES",
    "EmailVerification",
    "LinkState",
    "VerificationPurpose",
    "link_base_problem",
    "link_state",
    "link_token_hash",
    "may_use",
    "new_link_token",
    "receipt_number_problem",
    "verification_link",
]

# 256 bits: guessing a live link is hopeless, and its SHA-256 is safe to store (above).
TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
# How long a used or expired link's record is kept, so that opening it says "used" or
# "expired" rather than "unknown"; after that it is deleted and reads as unknown.
LINK_RECORD_RETENTION = timedelta(days=30)
# SPEC D3: the receipt number of an online application, e.g. S0101-20230101102030-12345.
_RECEIPT_NUMBER = re.compile(r"S\d{4}-\d{14}-\d{5}")


class VerificationPurpose(enum.StrEnum):
    """What confirming the address does: a CA user's new address becomes active, or the
    procedure portal learns that the applicant owns the address."""

    USER_EMAIL_CHANGE = "user_email_change"
    PORTAL_REGISTRATION = "portal_registration"


class LinkState(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"  # past its 24 hours, or replaced by a newer link
    USED = "used"  # opened once already
    UNKNOWN = "unknown"  # never issued (or its record is gone)


@dataclass(frozen=True, slots=True)
class EmailVerification:
    """A link as stored: the token's hash, never the token."""

    token_hash: str
    purpose: VerificationPurpose
    user_id: str | None
    address: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.purpose is VerificationPurpose.USER_EMAIL_CHANGE) != bool(self.user_id):
            raise ValueError("a user's e-mail change names the user; a registration does not")
        # A link replaced by a newer one made in the same second expires as it is made.
        if self.expires_at < self.created_at:
            raise ValueError("a link cannot expire before it is made")


def new_link_token(token_bytes: Callable[[int], bytes]) -> str:
    """A URL-safe token of ``TOKEN_BYTES`` random bytes (43 characters, no padding)."""
    raw = token_bytes(TOKEN_BYTES)
    if len(raw) != TOKEN_BYTES:
        raise ValueError(f"expected {TOKEN_BYTES} random bytes")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def link_token_hash(token: str) -> str | None:
    """Where a link is stored (SHA-256, hex); None for a string that no link can carry
    (so that it is unknown without a look-up)."""
    if not _TOKEN.fullmatch(token):
        return None
    return token_key(token)


def link_state(record: EmailVerification | None, now: datetime) -> LinkState:
    """A used link says so even after its 24 hours (the more useful answer)."""
    if record is None:
        return LinkState.UNKNOWN
    if record.used_at is not None:
        return LinkState.USED
    if now >= record.expires_at:
        return LinkState.EXPIRED
    return LinkState.VALID


def link_base_problem(base_url: str) -> str | None:
    """The page the link opens: an absolute https URL (http only for a loopback host, for
    development), without a query or fragment, since ``?token=`` is appended."""
    parts = urlsplit(base_url)
    if not base_url.isascii() or any(ch.isspace() for ch in base_url):
        return "link_base_url must be an ASCII URL without spaces"
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.netloc or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        return "link_base_url must be an absolute https URL"
    if parts.query or parts.fragment:
        return "link_base_url must have no query or fragment"
    return None


def verification_link(base_url: str, token: str) -> str:
    return f"{base_url}?token={token}"


def may_use(role: Role, purpose: VerificationPurpose) -> bool:
    """Who may ask for, and open, links of ``purpose``: gateways (for their logged-in
    users) and the operator change CA users' addresses; the procedure portal verifies its
    applicants' addresses. Nobody else does either."""
    if purpose is VerificationPurpose.USER_EMAIL_CHANGE:
        return role in (Role.GATEWAY, Role.OPERATOR)
    return role is Role.PORTAL


def receipt_number_problem(receipt_number: str) -> str | None:
    if not _RECEIPT_NUMBER.fullmatch(receipt_number):
        return "receipt number must look like S0101-20230101102030-12345"
    return None
