"""adapters.passwords.PasswordHashing with real Argon2id: at most ``concurrency`` hashes run
at once, at most ``queue`` more wait, checks beyond that are refused with Busy at once, and
hashing a new password or a check that must not be refused waits its turn."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ca_service.adapters.passwords import Argon2Passwords, PasswordHashing
from ca_service.errors import Busy


class _Watched(Argon2Passwords):
    """Real Argon2id hashing that also notes how many threads are inside it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.most = 0
        super().__init__(memory_kib=8192, time_cost=3)

    def _inside(self, delta: int) -> None:
        with self._lock:
            self.inside += delta
            self.most = max(self.most, self.inside)

    def verify(self, password_hash: str | None, password: str) -> bool:
        self._inside(1)
        try:
            return super().verify(password_hash, password)
        finally:
            self._inside(-1)

    def hash(self, password: str) -> str:
        self._inside(1)
        try:
            return super().hash(password)
        finally:
            self._inside(-1)


async def _outcome(hashing: PasswordHashing, refusable: bool = True) -> str:
    try:
        return str(await hashing.verify(None, "Wr0ng-pass!", refusable=refusable))
    except Busy as busy:
        assert busy.grpc_status == "RESOURCE_EXHAUSTED" and busy.reason == "BUSY"
        assert busy.metadata["retry_after_seconds"] == "1"
        return "busy"


async def test_checks_beyond_the_cap_and_queue_are_refused_at_once() -> None:
    watched = _Watched()
    hashing = PasswordHashing(watched, concurrency=2, queue=3)
    started = time.monotonic()
    outcomes = await asyncio.gather(*(_outcome(hashing) for _ in range(12)))
    assert outcomes.count("False") == 5 and outcomes.count("busy") == 7
    assert watched.most == 2 and hashing.refused == 7 and hashing.admitted == 0
    # Refusals cost nothing: the 5 admitted checks ran two at a time, so the burst took
    # about three checks' time, not twelve.
    one = time.monotonic()
    await hashing.verify(None, "x")
    single = time.monotonic() - one
    assert time.monotonic() - started < single * 6 + 0.5
    # Once the burst is over, checks are admitted again.
    assert await asyncio.gather(*(_outcome(hashing) for _ in range(5))) == ["False"] * 5


async def test_hashing_and_unrefusable_checks_wait_their_turn() -> None:
    watched = _Watched()
    hashing = PasswordHashing(watched, concurrency=1, queue=0)
    new_hashes = [asyncio.ensure_future(hashing.hash(f"Passw0rd-{i}")) for i in range(3)]
    await asyncio.sleep(0)  # all three are admitted before the checks arrive
    outcomes = await asyncio.gather(
        _outcome(hashing), _outcome(hashing, refusable=False), _outcome(hashing)
    )
    assert outcomes == ["busy", "False", "busy"]
    hashes = await asyncio.gather(*new_hashes)
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert watched.most == 1


def test_the_cap_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        PasswordHashing(Argon2Passwords(), concurrency=0, queue=1)
