"""The OCSP responder's memory of signed, nonce-free answers: one per CertID, bounded in
bytes, least recently used out first.

A nonce-free answer depends on nothing in the request but the CertID it echoes (RFC 6960
4.2.1), so it is kept by the CertID's DER: however a request is wrapped (requestor name,
extensions, a signature nobody checks), every request for one certificate under one
CertID hash algorithm gets the same signed answer, and the number of answers kept is
bounded by the certificates asked about, not by the requests.

No I/O and no clock reads: times are passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

__all__ = ["ENTRY_OVERHEAD", "AnswerCache"]

# What one entry costs beyond the answer's body and the CertID's octets: the entry and
# answer objects, their datetimes, the dictionary slots, the serial index and the HTTP
# adapter's rendered headers for the answer. tests/services/test_ocsp_cache.py measures
# the real cost with tracemalloc and holds this figure above it.
ENTRY_OVERHEAD: Final = 2304

Answer = TypeVar("Answer")


@dataclass(slots=True)
class _Entry(Generic[Answer]):
    answer: Answer
    refresh_at: datetime
    serial: int
    size: int


class AnswerCache(Generic[Answer]):
    """Answers by CertID DER, with the serial number each is about."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self._max_bytes = max_bytes
        self._entries: OrderedDict[bytes, _Entry[Answer]] = OrderedDict()
        self._by_serial: dict[int, list[bytes]] = {}
        self._bytes = 0
        self.evictions = 0

    @property
    def held_bytes(self) -> int:
        """The estimated memory held, never above the bound."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cert_id: bytes, now: datetime) -> Answer | None:
        """The answer for ``cert_id`` unless it is due to be re-signed."""
        entry = self._entries.get(cert_id)
        if entry is None or now >= entry.refresh_at:
            return None
        self._entries.move_to_end(cert_id)
        return entry.answer

    def put(
        self, cert_id: bytes, serial: int, answer: Answer, payload: int, refresh_at: datetime
    ) -> None:
        """Keeps ``answer`` (``payload`` bytes) until ``refresh_at``, evicting the least
        recently used answers while the total is above the bound. An answer larger than
        the whole bound is not kept."""
        self._discard(cert_id)
        size = payload + len(cert_id) + ENTRY_OVERHEAD
        if size > self._max_bytes:
            return
        self._entries[cert_id] = _Entry(answer, refresh_at, serial, size)
        self._by_serial.setdefault(serial, []).append(cert_id)
        self._bytes += size
        while self._bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._discard(oldest)
            self.evictions += 1

    def drop_serial(self, serial: int) -> None:
        """Forgets every answer about ``serial`` (it was revoked)."""
        for cert_id in self._by_serial.get(serial, [])[:]:
            self._discard(cert_id)

    def clear(self) -> None:
        self._entries.clear()
        self._by_serial.clear()
        self._bytes = 0

    def _discard(self, cert_id: bytes) -> None:
        entry = self._entries.pop(cert_id, None)
        if entry is None:
            return
        self._bytes -= entry.size
        keys = self._by_serial[entry.serial]
        keys.remove(cert_id)
        if not keys:
            del self._by_serial[entry.serial]
