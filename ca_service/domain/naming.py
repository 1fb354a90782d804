"""Names derived from certificates: the PKCS#12 file name (SPEC C4) and display strings."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from ca_service.domain.validity import JAPAN

__all__ = ["client_subject_string", "pkcs12_file_name", "rfc4514_value"]

_SPECIAL = frozenset(',+"\\<>;=')


def pkcs12_file_name(user_id: str, issued_at: datetime) -> str:
    """``<userID><YYYYMMDDHHMMSS>.p12`` in Japan time of issue."""
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    return f"{user_id}{issued_at.astimezone(JAPAN):%Y%m%d%H%M%S}.p12"


def rfc4514_value(value: str) -> str:
    """Escapes an attribute value as RFC 4514 section 2.4 requires."""
    last = len(value) - 1
    escaped = []
    for index, ch in enumerate(value):
        if ch in _SPECIAL:
            escaped.append("\\" + ch)
        elif ch == "\x00":
            escaped.append("\\00")
        elif (ch == " " and index in (0, last)) or (ch == "#" and index == 0):
            escaped.append("\\" + ch)
        else:
            escaped.append(ch)
    return "".join(escaped)


@lru_cache(maxsize=4096)
def client_subject_string(user_id: str, organization: str) -> str:
    # RFC 4514 lists the RDNs last-first: the subject is encoded O, CN.
    return f"CN={rfc4514_value(user_id)},O={rfc4514_value(organization)}"
