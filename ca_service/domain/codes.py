"""One-time authentication codes (SPEC B2) and the opaque handles and tickets of enrollment.

Randomness is passed in (a ``randbelow``-like function) so the rules stay testable; the
codes are stored only as keyed MACs, bound to the authentication (handle) that made them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta

__all__ = [
    "CODE_DIGITS",
    "CODE_MAX_TRIES",
    "CODE_TTL",
    "TICKET_TTL",
    "code_mac",
    "code_problem",
    "new_code",
    "token_key",
]

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=30)
# SPEC B2: at most 5 wrong tries, then the code is void.
CODE_MAX_TRIES = 5
# A ticket proves a verified code; it only has to outlive the [発行] confirmation.
TICKET_TTL = timedelta(minutes=10)


def new_code(randbelow: Callable[[int], int]) -> str:
    """A uniformly random code of 6 half-width digits (leading zeros kept)."""
    return f"{randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_problem(code: str) -> str | None:
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return f"the authentication code is {CODE_DIGITS} half-width digits"
    return None


def code_mac(key: bytes, handle: str, code: str) -> str:
    """Keyed hash of a code, bound to the authentication handle it was sent for."""
    return hmac.new(key, f"{handle}\x00{code}".encode(), hashlib.sha256).hexdigest()


def token_key(token: str) -> str:
    """Where a bearer token (handle, ticket) is stored: its hash, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()
