"""Password hashing with Argon2id (SPEC A3). The parameters travel inside every hash (PHC
string), so they can be raised later: a hash made with weaker ones is replaced at the
user's next successful login."""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["Argon2Passwords", "generate_initial_password", "generate_login_password"]

# Unambiguous characters for passwords that are read from paper and typed by hand.
_PAPER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_SYMBOLS = "!#$%&*+-=?@"


class Argon2Passwords:
    def __init__(
        self, *, time_cost: int = 2, memory_kib: int = 19_456, parallelism: int = 1
    ) -> None:
        # Defaults: OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane), ~35 ms here.
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified against when the user ID is unknown, so that the answer takes as long
        # as for a real user (SPEC B9).
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and (
                password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def generate_initial_password() -> str:
    """A one-time registration password for paper: 16 characters in groups of four."""
    raw = "".join(secrets.choice(_PAPER_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def generate_login_password() -> str:
    """A random 12-character password that satisfies SPEC A3 (all four classes)."""
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS]
    chars = [secrets.choice(c) for c in classes]
    pool = "".join(classes)
    chars += [secrets.choice(pool) for _ in range(12 - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
