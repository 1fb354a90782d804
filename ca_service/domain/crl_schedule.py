"""When to publish a new base (full) CRL or a new delta CRL (RFC 5280 5.2.4; SPEC F2).

A base CRL lists every unexpired revocation and is made on a fixed schedule; each delta CRL
names the current base (its DeltaCRLIndicator carries the base's CRL number) and lists every
revocation after it. So a revocation needs a new delta, not a new base: relying parties that
use deltas download a few entries, and the big list changes once per interval.

Pure decisions, no I/O and no clock: the publisher passes what is stored and the time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["CrlSchedule", "CrlState", "Due", "due"]


@dataclass(frozen=True, slots=True)
class CrlSchedule:
    # nextUpdate of a base CRL, and of a delta CRL, after its thisUpdate.
    validity: timedelta = timedelta(hours=24)
    delta_validity: timedelta = timedelta(hours=1)
    # A new base this often; a delta at least this often (and after every revocation).
    interval: timedelta = timedelta(minutes=30)
    # A base CRL recorded whose DER is still not stored this long after its thisUpdate was
    # abandoned by its publisher (it died after serving it: the DER is written seconds
    # after). Shorter would let two processes that both believe they lead replace each
    # other's bases while they are being stored; the lease (a few seconds) moves the duty
    # after a crash in about this time anyway.
    unstored_grace: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.interval < self.delta_validity <= self.validity:
            raise ValueError(
                "the CRL interval must be shorter than the delta CRL validity, which must not "
                "exceed the CRL validity (a CRL is replaced before its nextUpdate)"
            )


@dataclass(frozen=True, slots=True)
class CrlState:
    """What a published CRL says about itself, as far as scheduling is concerned."""

    number: int
    this_update: datetime
    # Every revocation up to this sequence number is in this CRL (or in its base).
    through_sequence: int
    # The base CRL's number, for a delta CRL.
    base_number: int | None = None
    # False while its DER is not in the store yet: a base CRL is numbered, signed and served
    # by its publisher before its tens of megabytes are written (see services/crl.py).
    stored: bool = True


class Due(enum.Enum):
    NOTHING = "nothing"
    # A delta CRL over the current base.
    DELTA = "delta"
    # A new base CRL (which comes with a new, empty delta CRL).
    BASE = "base"


def due(
    base: CrlState | None,
    delta: CrlState | None,
    latest_sequence: int,
    now: datetime,
    schedule: CrlSchedule,
    *,
    storing: int | None = None,
) -> Due:
    """What must be published now, given the stored base and delta CRLs and the latest
    revocation's sequence number. ``storing`` is the number of the base CRL whose DER the
    caller itself is writing: any other base whose DER has not reached the store within
    ``unstored_grace`` (its publisher died after serving it) is replaced by a new base,
    with a higher number."""
    if (
        base is None
        or now >= base.this_update + schedule.interval
        or (
            not base.stored
            and base.number != storing
            and now >= base.this_update + schedule.unstored_grace
        )
    ):
        return Due.BASE
    if (
        delta is None
        or delta.base_number != base.number
        or delta.number <= base.number
        or delta.through_sequence < latest_sequence
        or now >= delta.this_update + schedule.interval
    ):
        return Due.DELTA
    return Due.NOTHING
