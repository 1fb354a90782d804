"""When a base CRL and when a delta CRL is due (RFC 5280 5.2.4; SPEC F2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ca_service.domain.crl_schedule import CrlSchedule, CrlState, Due, due

NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
SCHEDULE = CrlSchedule(
    validity=timedelta(hours=24),
    delta_validity=timedelta(hours=1),
    interval=timedelta(minutes=30),
)
BASE = CrlState(number=10, this_update=NOW - timedelta(minutes=10), through_sequence=7)
DELTA = CrlState(
    number=12, this_update=NOW - timedelta(minutes=1), through_sequence=9, base_number=10
)


def test_nothing_is_due_while_the_delta_is_current() -> None:
    assert due(BASE, DELTA, 9, NOW, SCHEDULE) is Due.NOTHING


def test_a_revocation_makes_a_delta_not_a_base() -> None:
    assert due(BASE, DELTA, 10, NOW, SCHEDULE) is Due.DELTA
    assert due(BASE, DELTA, 1_000_000, NOW, SCHEDULE) is Due.DELTA


def test_the_base_is_due_on_its_schedule_only() -> None:
    assert due(BASE, DELTA, 9, BASE.this_update + timedelta(minutes=29, seconds=59), SCHEDULE) is (
        Due.NOTHING
    )
    assert due(BASE, DELTA, 9, BASE.this_update + SCHEDULE.interval, SCHEDULE) is Due.BASE
    # Also when revocations are waiting: the new base holds them.
    assert due(BASE, DELTA, 50, BASE.this_update + SCHEDULE.interval, SCHEDULE) is Due.BASE


def test_no_base_yet() -> None:
    assert due(None, None, 0, NOW, SCHEDULE) is Due.BASE
    assert due(None, DELTA, 0, NOW, SCHEDULE) is Due.BASE


@pytest.mark.parametrize(
    "delta",
    [
        None,
        # over another base
        CrlState(number=12, this_update=NOW, through_sequence=9, base_number=8),
        # numbered below its base (openssl would never apply it)
        CrlState(number=9, this_update=NOW, through_sequence=9, base_number=10),
        # older than the interval: renewed long before its nextUpdate
        CrlState(
            number=12,
            this_update=NOW - SCHEDULE.interval,
            through_sequence=9,
            base_number=10,
        ),
    ],
    ids=["missing", "other-base", "numbered-below-base", "old"],
)
def test_a_delta_is_due_when_the_one_stored_does_not_fit(delta: CrlState | None) -> None:
    assert due(BASE, delta, 9, NOW, SCHEDULE) is Due.DELTA


@pytest.mark.parametrize(
    ("interval", "delta_validity", "validity"),
    [
        (timedelta(minutes=60), timedelta(minutes=60), timedelta(hours=24)),
        (timedelta(minutes=30), timedelta(hours=25), timedelta(hours=24)),
        (timedelta(0), timedelta(minutes=60), timedelta(hours=24)),
    ],
)
def test_schedules_that_would_let_a_crl_expire_are_refused(
    interval: timedelta, delta_validity: timedelta, validity: timedelta
) -> None:
    with pytest.raises(ValueError, match="shorter than the delta CRL validity"):
        CrlSchedule(validity=validity, delta_validity=delta_validity, interval=interval)


def test_a_base_not_stored_is_replaced_once_abandoned_unless_the_caller_stores_it() -> None:
    recorded = CrlState(number=10, this_update=NOW, through_sequence=7, stored=False)
    delta = CrlState(number=11, this_update=NOW, through_sequence=7, base_number=10)
    # Its DER is on its way to the store: nothing to do, for anyone.
    assert due(recorded, delta, 7, NOW, SCHEDULE) is Due.NOTHING
    # Its publisher died after serving it: a new base, once the grace is over.
    late = NOW + SCHEDULE.unstored_grace
    assert due(recorded, delta, 7, late - timedelta(seconds=1), SCHEDULE) is Due.NOTHING
    assert due(recorded, delta, 7, late, SCHEDULE) is Due.BASE
    # Not for the process writing it, however long that takes.
    assert due(recorded, delta, 7, late, SCHEDULE, storing=10) is Due.NOTHING
    assert due(recorded, delta, 8, late, SCHEDULE, storing=10) is Due.DELTA
    # Nor for another base being stored by the caller.
    assert due(recorded, delta, 7, late, SCHEDULE, storing=12) is Due.BASE
