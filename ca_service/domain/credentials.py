"""Password rules (SPEC A3)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

__all__ = [
    "CONFUSABLE_CHARACTERS",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "generate_initial_password",
    "password_problem",
]

PASSWORD_MIN = 8
PASSWORD_MAX = 12

_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_DIGIT = re.compile(r"[0-9]")
_SYMBOL = re.compile(r"[^A-Za-z0-9]")

# The characters of generated passwords, which are read from paper or a screen and typed by
# hand: none that is easily taken for another (0/O/o, 1/l/I/i, and symbols like | or `).
UPPER_CHARACTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
LOWER_CHARACTERS = "abcdefghjkmnpqrstuvwxyz"
DIGIT_CHARACTERS = "23456789"
SYMBOL_CHARACTERS = "!#$%&*+-=?@"
CONFUSABLE_CHARACTERS = "0Oo1lIi|`'\\\""


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


def generate_initial_password(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A one-time password that meets SPEC A3 at its longest length (all four classes) and
    uses only characters no reader confuses: an organisation's master password on paper,
    a new general user's password on the master user's screen. ``randbelow(n)`` is the
    random source (``secrets.randbelow``; tests pass their own)."""
    classes = [UPPER_CHARACTERS, LOWER_CHARACTERS, DIGIT_CHARACTERS, SYMBOL_CHARACTERS]
    pool = "".join(classes)
    chars = [c[randbelow(len(c))] for c in classes]
    chars += [pool[randbelow(len(pool))] for _ in range(PASSWORD_MAX - len(chars))]
    for i in range(len(chars) - 1, 0, -1):  # Fisher-Yates: a class is in any position
        j = randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)
