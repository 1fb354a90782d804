"""Password hashing with Argon2id (SPEC A3). The parameters travel inside every hash (PHC
string), so they can be raised later: a hash made with weaker ones is replaced at the
user's next successful login.

:class:`PasswordHashing` is how the services use it: in threads of their own, at most
``concurrency`` hashes at once (Argon2id releases the GIL, so each running hash takes a whole
CPU), and a check of a presented password is refused with :class:`Busy` when ``queue`` more
already wait. A flood of guesses then costs the CPUs it is given and no more, and OCSP,
CRLs and issuance keep theirs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ca_service.errors import Busy

__all__ = [
    "Argon2Passwords",
    "PasswordHashing",
]

_T = TypeVar("_T")


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


class PasswordHashing:
    """:class:`Argon2Passwords` for the event loop, with a cap on concurrent hashing.

    Checks of a password someone presents (``verify``) are admitted while fewer than
    ``concurrency + queue`` hashes are running or waiting, and refused with :class:`Busy`
    beyond that, before any work or counting. Hashing a new password (``hash``) and checks
    made with ``refusable=False`` (the login password again at issuance, after a successful
    authentication and code) always wait for their turn instead."""

    def __init__(self, passwords: Argon2Passwords, *, concurrency: int, queue: int) -> None:
        if concurrency < 1 or queue < 0:
            raise ValueError("concurrency must be at least 1 and queue not negative")
        self._passwords = passwords
        self._admit = concurrency + queue
        # The pool's size is the cap on running hashes; its queue holds the waiting ones.
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="argon2")
        self.admitted = 0  # running or waiting now
        self.refused = 0  # since the start

    async def _run(self, refusable: bool, work: Callable[..., _T], *args: str | None) -> _T:
        if refusable and self.admitted >= self._admit:
            self.refused += 1
            raise Busy(
                "too many password checks at once; try again in a moment",
                metadata={"retry_after_seconds": "1"},
            )
        self.admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self.admitted -= 1

    async def verify(
        self, password_hash: str | None, password: str, *, refusable: bool = True
    ) -> bool:
        """As :meth:`Argon2Passwords.verify` (an unknown user's ``None`` costs the same)."""
        return await self._run(refusable, self._passwords.verify, password_hash, password)

    async def hash(self, password: str) -> str:
        return await self._run(False, self._passwords.hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._passwords.needs_rehash(password_hash)
