"""Rules for the names a certificate carries: user IDs (SPEC A2) and organisation names."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "ORGANIZATION_MAX",
    "USER_ID_MAX",
    "USER_ID_MIN",
    "organization_problem",
    "user_id_problem",
]

USER_ID_MIN = 6
USER_ID_MAX = 12
# X.520 ub-organization-name.
ORGANIZATION_MAX = 64

# Explicit ASCII classes: \w and str.isalnum() would also admit full-width and other
# Unicode letters and digits, which SPEC A2 excludes.
_ONLY_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_ASCII_DIGIT = re.compile(r"[0-9]")


def user_id_problem(user_id: str) -> str | None:
    """Returns which SPEC A2 rule ``user_id`` breaks, or None when it is acceptable."""
    if not USER_ID_MIN <= len(user_id) <= USER_ID_MAX:
        return f"user ID must be {USER_ID_MIN}-{USER_ID_MAX} characters long"
    if not _ONLY_ASCII_ALNUM.fullmatch(user_id):
        return "user ID may contain only half-width ASCII letters and digits"
    if not _ASCII_LETTER.search(user_id):
        return "user ID must contain at least one letter"
    if not _ASCII_DIGIT.search(user_id):
        return "user ID must contain at least one digit"
    return None


@lru_cache(maxsize=1024)
def organization_problem(organization: str) -> str | None:
    """Returns why ``organization`` cannot name a certificate's organisation, or None."""
    if not organization.strip():
        return "organization must not be empty"
    if organization != organization.strip():
        return "organization must not start or end with white space"
    if len(organization) > ORGANIZATION_MAX:
        return f"organization must be at most {ORGANIZATION_MAX} characters long"
    # Full-width spaces are common in Japanese company names; control, format and
    # unassigned characters (Unicode category C*) are not names.
    if any(unicodedata.category(ch).startswith("C") for ch in organization):
        return "organization must not contain control characters or format characters"
    return None
