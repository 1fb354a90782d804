"""CRL state in the SQL store: the pre-encoded entries to publish and the CRLs last built.

Several ca-service processes publish into one store. They agree by compare-and-set: a new
CRL is stored only if the CRLs it replaces are still the ones its builder read, inside a
transaction that holds the CRL-number counter's row (so on PostgreSQL, too, two publishers
cannot both pass the check). A number is taken from the counter after reading what is
stored, so every stored CRL has a higher number than the one it replaced.

A base CRL is recorded in two steps: ``publish_base`` records it (numbers, times, through
what sequence) with an empty DER, in a short transaction of the writer; its publisher serves
it from then on; ``store_base`` writes the DER (tens of megabytes) afterwards on a
connection of its own, so that issuance and revocations do not wait for it. A CRL's DER is
never empty, so an empty one means "not stored yet"; a base left so (its publisher died)
is replaced by a new one with a higher number (``crl_schedule.due``), and other processes
go on serving the previous base until a base's DER is there.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from itertools import compress
from typing import Any

from ca_service.adapters.sql.database import Cursor, Database
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.crl_schedule import CrlState
from ca_service.domain.records import CrlKind, CrlSnapshot, PublishedCrl

__all__ = ["SqlCrlStore"]


def _published(row: tuple[Any, ...]) -> PublishedCrl:
    kind, number, base, this_update, next_update, through, der = row
    return PublishedCrl(
        CrlKind(kind),
        int(number),
        None if base is None else int(base),
        instant(this_update),
        instant(next_update),
        int(through),
        bytes(der),
    )


def _latest_sequence(cursor: Cursor) -> int:
    row = cursor.execute("SELECT MAX(sequence) FROM revocations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _lock_numbers(cursor: Cursor) -> dict[str, int]:
    """Holds the counter's row until the transaction ends (PostgreSQL row lock; SQLite's
    writer lock is already held) and returns the stored CRLs' numbers."""
    cursor.execute("UPDATE crl_counter SET number = number WHERE id = 1")
    rows = cursor.execute("SELECT kind, number FROM crls").fetchall()
    return {str(kind): int(number) for kind, number in rows}


# A base CRL recorded whose DER is not stored yet (see the module documentation).
_NOT_STORED = b""


def _store(cursor: Cursor, crl: PublishedCrl) -> None:
    cursor.execute("DELETE FROM crls WHERE kind = ?", (crl.kind,))
    cursor.execute(
        "INSERT INTO crls (kind, number, base_number, this_update, next_update,"
        " through_sequence, der) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            crl.kind,
            crl.number,
            crl.base_number,
            epoch(crl.this_update),
            epoch(crl.next_update),
            crl.through_sequence,
            crl.der,
        ),
    )


class _EntryCache:
    """The entries of the unexpired revocations up to ``through``, in sequence order, as
    last read: revocation rows never change once committed, so a base CRL needs to read
    only the revocations since the previous one. Three parallel columns (sequence,
    notAfter, entry); about 80 bytes per entry (a million: ~80 MB, the same order as the
    CRL itself), bounded by the unexpired revocations: expired ones are dropped."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.through = 0
        self.sequences = array("q")
        self.not_after = array("q")
        self.entries: list[bytes] = []
        self.earliest_not_after: int | None = None
        # The latest cutoff entries were dropped at: what expired before it is gone.
        self.cutoff = 0

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Appends (sequence, notAfter, entry) rows in sequence order, column by column (no
        Python loop per row: a cold cache reads a million)."""
        if not rows:
            return
        sequences, not_after, entries = zip(*rows, strict=True)
        self.sequences.extend(sequences)
        self.not_after.extend(not_after)
        self.entries.extend(map(bytes, entries))
        earliest = min(not_after)
        if self.earliest_not_after is None or earliest < self.earliest_not_after:
            self.earliest_not_after = earliest

    def drop_expired(self, cutoff: int) -> None:
        """RFC 5280 5.1.2.6: an entry may drop off once the certificate has expired. The
        cutoff only grows (a clock set back empties the cache first: see ``entries``), so
        what has expired is not needed again."""
        self.cutoff = max(self.cutoff, cutoff)
        if self.earliest_not_after is None or self.earliest_not_after >= cutoff:
            return
        keep = [na >= cutoff for na in self.not_after]
        self.sequences = array("q", compress(self.sequences, keep))
        self.not_after = array("q", compress(self.not_after, keep))
        self.entries = list(compress(self.entries, keep))
        self.earliest_not_after = min(self.not_after, default=None)

    def after(self, sequence: int) -> list[bytes]:
        return self.entries[bisect_right(self.sequences, sequence) :]


# Rows per page while reading revocations into the cache.
_PAGE = 20_000

_SELECT_ENTRIES = (
    "SELECT sequence, not_after, crl_entry FROM revocations"
    " WHERE sequence > ? AND sequence <= ? AND not_after >= ? ORDER BY sequence"
)


class SqlCrlStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._cache = _EntryCache()

    async def entries(
        self, *, after_sequence: int, not_expired_at: datetime
    ) -> tuple[list[bytes], int]:
        """The pre-encoded entries of unexpired revocations after ``after_sequence``, and the
        highest sequence there is (what the CRL is current through).

        Revocations commit in sequence order (see ``SqlRevocationStore.revoke``), so every
        sequence up to the highest one seen is visible here too: a CRL current through N
        holds every revocation up to N. Entries come from this process's cache
        (:class:`_EntryCache`) up to what it last read, and from the store after that."""
        cutoff = epoch(not_expired_at)
        cache = self._cache

        def read(cursor: Cursor) -> tuple[list[bytes], int]:
            with cache.lock:
                through = _latest_sequence(cursor)
                if cache.through < after_sequence:
                    # A delta CRL in a process whose cache is behind (it has not built a
                    # base yet): the few rows it needs, the cache left for the next base.
                    cursor.execute(_SELECT_ENTRIES, (after_sequence, through, cutoff))
                    return [bytes(row[2]) for row in cursor.fetchall()], through
                if cutoff < cache.cutoff:
                    cache.clear()  # the clock went back: entries dropped may be due again
                # Page by page (keyset): neither this process nor the driver ever holds
                # the whole result (a cold cache reads a million rows). Rows up to
                # ``through`` never change, so the pages need no common snapshot.
                last = cache.through
                while True:
                    rows = cursor.execute(
                        _SELECT_ENTRIES + " LIMIT ?", (last, through, cutoff, _PAGE)
                    ).fetchall()
                    cache.add(rows)
                    if len(rows) < _PAGE:
                        break
                    last = int(rows[-1][0])
                cache.through = max(cache.through, through)
                cache.drop_expired(cutoff)
                return cache.after(after_sequence), through

        return await self._database.read(read)

    async def latest_sequence(self) -> int:
        return await self._database.read(_latest_sequence)

    async def next_number(self, count: int = 1) -> int:
        """The first of ``count`` new consecutive CRL numbers; base and delta CRLs share one
        counter (RFC 5280 5.2.3)."""

        def write(cursor: Cursor) -> int:
            row = cursor.execute(
                "UPDATE crl_counter SET number = number + ? WHERE id = 1 RETURNING number",
                (count,),
            ).fetchone()
            assert row is not None
            return int(row[0]) - count + 1

        return await self._database.write(write)

    async def snapshot(self) -> CrlSnapshot:
        def read(cursor: Cursor) -> CrlSnapshot:
            states: dict[str, CrlState] = {}
            # length() reads the stored size, not the value (PostgreSQL: from the pointer
            # to the out-of-line value; SQLite: from the record header).
            for kind, number, base, this_update, through, size in cursor.execute(
                "SELECT kind, number, base_number, this_update, through_sequence, length(der)"
                " FROM crls"
            ).fetchall():
                states[kind] = CrlState(
                    int(number),
                    instant(this_update),
                    int(through),
                    None if base is None else int(base),
                    int(size) > 0,
                )
            return CrlSnapshot(
                states.get(CrlKind.BASE), states.get(CrlKind.DELTA), _latest_sequence(cursor)
            )

        return await self._database.read(read)

    async def publish_base(
        self, base: PublishedCrl, delta: PublishedCrl, *, replacing: CrlSnapshot
    ) -> bool:
        """Records a new base CRL, without its DER (``store_base`` writes it), with its first
        delta CRL, unless the stored base or delta is no longer the one in ``replacing``
        (another process published meanwhile). A short transaction: the writer is not held
        up by the base's size."""
        recorded = replace(base, der=_NOT_STORED)

        def write(cursor: Cursor) -> bool:
            stored = _lock_numbers(cursor)
            if stored.get(CrlKind.BASE) != (replacing.base.number if replacing.base else None):
                return False
            if stored.get(CrlKind.DELTA) != (replacing.delta.number if replacing.delta else None):
                return False
            _store(cursor, recorded)
            _store(cursor, delta)
            return True

        return await self._database.write(write)

    async def store_base(self, base: PublishedCrl) -> bool:
        """Writes the DER of the base recorded as number ``base.number``, on a connection of
        its own (``Database.write_aside``); False when another base replaced it meanwhile.
        Only that row is locked while it is written: publishing a delta, issuance and
        revocations go on."""

        def write(cursor: Cursor) -> bool:
            cursor.execute(
                "UPDATE crls SET der = ? WHERE kind = ? AND number = ?",
                (base.der, CrlKind.BASE, base.number),
            )
            return cursor.rowcount == 1

        return await self._database.write_aside(write)

    async def publish_delta(self, delta: PublishedCrl, *, replacing: CrlSnapshot) -> bool:
        """Stores a new delta CRL over the stored base, unless the stored base or delta is no
        longer the one in ``replacing``."""

        def write(cursor: Cursor) -> bool:
            stored = _lock_numbers(cursor)
            if replacing.base is None or stored.get(CrlKind.BASE) != replacing.base.number:
                return False
            if delta.base_number != replacing.base.number:
                return False
            if stored.get(CrlKind.DELTA) != (replacing.delta.number if replacing.delta else None):
                return False
            _store(cursor, delta)
            return True

        return await self._database.write(write)

    async def published(self, kind: CrlKind | None = None) -> dict[CrlKind, PublishedCrl]:
        """The stored CRLs (with their DER), or only the one of ``kind``."""

        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            columns = "kind, number, base_number, this_update, next_update, through_sequence, der"
            stored = f"SELECT {columns} FROM crls WHERE length(der) > 0"
            if kind is None:
                return cursor.execute(stored).fetchall()
            return cursor.execute(stored + " AND kind = ?", (kind,)).fetchall()

        return {crl.kind: crl for crl in map(_published, await self._database.read(read))}
