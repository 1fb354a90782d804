"""Password rules (SPEC A3)."""

from __future__ import annotations

import re

__all__ = ["PASSWORD_MAX", "PASSWORD_MIN", "password_problem"]

PASSWORD_MIN = 8
PASSWORD_MAX = 12

_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_DIGIT = re.compile(r"[0-9]")
_SYMBOL = re.compile(r"[^A-Za-z0-9]")


def password_problem(password: str) -> str | None:
    """Returns which SPEC A3 rule ``password`` breaks, or None when it is acceptable.

    Half-width means printable ASCII; a space is not allowed (it is easily lost when the
    password is typed or copied)."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long"
    if not _PRINTABLE_ASCII.fullmatch(password):
        return "password may contain only half-width (printable ASCII) characters, no spaces"
    if not _UPPER.search(password):
        return "password must contain an upper-case letter"
    if not _LOWER.search(password):
        return "password must contain a lower-case letter"
    if not _DIGIT.search(password):
        return "password must contain a digit"
    if not _SYMBOL.search(password):
        return "password must contain a symbol"
    return None
