"""SPEC C1-C3: certificate validity and the calendar rules built on it.

The worked examples in tests/vectors/validity.csv (a copy of the shared SPEC vectors) are used
exactly as written; the
property tests use an independent oracle (a fixed UTC+09:00 offset: Japan has had no DST
since 1951) rather than the module's own ZoneInfo arithmetic.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service.domain.validity import (
    JAPAN,
    RENEWAL_WINDOW_DAYS,
    VALIDITY_DAYS,
    Validity,
    expiry_notice_day,
    japan_date,
    last_valid_day,
    renewal_notice_day,
    renewal_opens_at,
    validity_for,
)
from tests.vectors import SHARED_VALIDITY_CSV, VALIDITY_CSV

VECTORS = VALIDITY_CSV
COLUMNS = (
    "issued_at",
    "issue_day_jst",
    "not_after_utc",
    "last_valid_day_jst",
    "renewal_opens_jst",
    "renewal_notice_day_jst",
    "expiry_notice_day_jst",
)

JST = timezone(timedelta(hours=9))  # oracle, independent of ZoneInfo("Asia/Tokyo")
DEFAULT_SKEW = timedelta(minutes=5)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None)


def _vector_params() -> list[Any]:
    if not VECTORS.is_file():
        # Not a skip: the vectors are part of the specification and must be present.
        return [pytest.param(None, id="validity.csv-missing")]
    with VECTORS.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [pytest.param(row, id=row.get("issued_at", "?")) for row in rows]


def _require(row: dict[str, str] | None) -> dict[str, str]:
    if row is None:
        pytest.fail(
            f"SPEC C1-C3 test vectors not found at {VECTORS}; they must be present "
            "(see tests/vectors/README.md)"
        )
    return row


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _jst_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=JST)


# --------------------------------------------------------------------------- vectors


def test_vectors_file_is_present_and_well_formed() -> None:
    if not VECTORS.is_file():
        pytest.fail(f"SPEC C1-C3 test vectors not found at {VECTORS}")
    with VECTORS.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == COLUMNS
    assert rows, "validity.csv has no rows"


def test_vectors_match_the_shared_copy() -> None:
    """The project's copy stays identical to the specification's, where that exists."""
    if not SHARED_VALIDITY_CSV.is_file():
        return  # a clone with nothing beside it: the project's copy is the reference
    assert VECTORS.read_bytes() == SHARED_VALIDITY_CSV.read_bytes()


@pytest.mark.parametrize("row", _vector_params())
def test_vector(row: dict[str, str] | None) -> None:
    row = _require(row)
    issued_at = datetime.fromisoformat(row["issued_at"])
    validity = validity_for(issued_at)

    assert japan_date(issued_at) == date.fromisoformat(row["issue_day_jst"])
    assert validity.issue_day == date.fromisoformat(row["issue_day_jst"])
    assert validity.not_after == _utc(row["not_after_utc"])
    assert validity.not_after.utcoffset() == timedelta(0)

    assert last_valid_day(validity.not_after) == date.fromisoformat(row["last_valid_day_jst"])
    opens = renewal_opens_at(validity.not_after)
    assert opens == datetime.fromisoformat(row["renewal_opens_jst"])
    assert opens.utcoffset() == timedelta(0)
    assert renewal_notice_day(validity.not_after) == date.fromisoformat(
        row["renewal_notice_day_jst"]
    )
    assert expiry_notice_day(validity.not_after) == date.fromisoformat(row["expiry_notice_day_jst"])


@pytest.mark.parametrize("row", _vector_params())
def test_vector_not_before(row: dict[str, str] | None) -> None:
    row = _require(row)
    issued_at = datetime.fromisoformat(row["issued_at"])
    midnight = _jst_midnight(date.fromisoformat(row["issue_day_jst"]))
    expected = max(issued_at - DEFAULT_SKEW, midnight).astimezone(UTC)
    validity = validity_for(issued_at)
    assert validity.not_before == expected
    assert validity.not_before.utcoffset() == timedelta(0)


def test_constants() -> None:
    assert VALIDITY_DAYS == 366
    assert RENEWAL_WINDOW_DAYS == 30
    assert JAPAN.key == "Asia/Tokyo"


# --------------------------------------------------------------------------- boundaries

# (issued_at UTC, Japan issue day, notAfter UTC, notBefore UTC with the default 5-minute skew)
BOUNDARIES = [
    # one second before / at / after 00:00 JST on 2026-11-22
    ("2026-11-21T14:59:59Z", "2026-11-21", "2027-11-21T14:59:59Z", "2026-11-21T14:54:59Z"),
    ("2026-11-21T15:00:00Z", "2026-11-22", "2027-11-22T14:59:59Z", "2026-11-21T15:00:00Z"),
    ("2026-11-21T15:00:01Z", "2026-11-22", "2027-11-22T14:59:59Z", "2026-11-21T15:00:00Z"),
    # five minutes after midnight: the skew just fits
    ("2026-11-21T15:05:00Z", "2026-11-22", "2027-11-22T14:59:59Z", "2026-11-21T15:00:00Z"),
    ("2026-11-21T15:05:01Z", "2026-11-22", "2027-11-22T14:59:59Z", "2026-11-21T15:00:01Z"),
    # new year in Japan while it is still the old year in UTC
    ("2026-12-31T14:59:59Z", "2026-12-31", "2027-12-31T14:59:59Z", "2026-12-31T14:54:59Z"),
    ("2026-12-31T15:00:01Z", "2027-01-01", "2028-01-01T14:59:59Z", "2026-12-31T15:00:00Z"),
    # leap day 2028-02-29 (JST)
    ("2028-02-28T14:59:59Z", "2028-02-28", "2029-02-27T14:59:59Z", "2028-02-28T14:54:59Z"),
    ("2028-02-28T15:00:01Z", "2028-02-29", "2029-02-28T14:59:59Z", "2028-02-28T15:00:00Z"),
    ("2028-02-29T14:59:59Z", "2028-02-29", "2029-02-28T14:59:59Z", "2028-02-29T14:54:59Z"),
    ("2028-02-29T15:00:01Z", "2028-03-01", "2029-03-01T14:59:59Z", "2028-02-29T15:00:00Z"),
    # a period that contains 2028-02-29
    ("2027-03-01T14:59:59Z", "2027-03-01", "2028-02-29T14:59:59Z", "2027-03-01T14:54:59Z"),
    ("2027-03-01T15:00:01Z", "2027-03-02", "2028-03-01T14:59:59Z", "2027-03-01T15:00:00Z"),
]


@pytest.mark.parametrize(
    ("issued", "issue_day", "not_after", "not_before"), BOUNDARIES, ids=[b[0] for b in BOUNDARIES]
)
@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati"])
def test_japan_midnight_boundaries(
    issued: str, issue_day: str, not_after: str, not_before: str, zone: str
) -> None:
    # The result depends only on the instant, not on the zone it is expressed in.
    issued_at = datetime.fromisoformat(issued).astimezone(ZoneInfo(zone))
    validity = validity_for(issued_at)
    assert validity.issue_day == date.fromisoformat(issue_day)
    assert validity.not_after == _utc(not_after)
    assert validity.not_before == _utc(not_before)
    assert validity.not_before.tzinfo == UTC
    assert validity.not_after.tzinfo == UTC


def test_ambiguous_local_time_respects_fold() -> None:
    # 01:30 on 2026-11-01 happens twice in Los Angeles (PDT, then PST).
    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    second = first.replace(fold=1)
    assert validity_for(first, timedelta(0)).not_before == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert validity_for(second, timedelta(0)).not_before == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    assert validity_for(second).not_before == datetime(2026, 11, 1, 9, 25, tzinfo=UTC)


def test_not_before_clamped_to_japan_midnight_for_any_skew() -> None:
    issued_at = datetime(2026, 11, 22, 0, 0, 30, tzinfo=JST)
    for skew in (timedelta(seconds=31), timedelta(hours=1), timedelta(days=3)):
        assert validity_for(issued_at, skew).not_before == _jst_midnight(date(2026, 11, 22))


def test_zero_skew_gives_issue_instant() -> None:
    issued_at = datetime(2026, 11, 21, 10, 0, 0, tzinfo=JST)
    assert validity_for(issued_at, timedelta(0)).not_before == issued_at


@pytest.mark.parametrize("microsecond", [1, 500_000, 999_999])
def test_whole_seconds(microsecond: int) -> None:
    issued_at = datetime(2026, 11, 21, 10, 0, 0, microsecond, tzinfo=JST)
    validity = validity_for(issued_at)
    assert validity.not_before.microsecond == 0
    assert validity.not_after.microsecond == 0
    # truncated, never rounded up past the issue instant
    assert validity.not_before == datetime(2026, 11, 21, 9, 55, 0, tzinfo=JST)
    assert validity_for(issued_at, timedelta(0)).not_before == issued_at.replace(microsecond=0)


def test_microseconds_just_after_midnight_clamp_to_midnight() -> None:
    issued_at = datetime(2026, 11, 22, 0, 0, 0, 999_999, tzinfo=JST)
    assert validity_for(issued_at).not_before == _jst_midnight(date(2026, 11, 22))


# --------------------------------------------------------------------------- errors

NAIVE = datetime(2026, 11, 21, 10, 0, 0)


def test_naive_issued_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validity_for(NAIVE)


@pytest.mark.parametrize(
    "function",
    [japan_date, last_valid_day, renewal_opens_at, renewal_notice_day, expiry_notice_day],
)
def test_naive_instants_are_rejected(function: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        function(NAIVE)


@pytest.mark.parametrize(
    "skew", [timedelta(microseconds=-1), timedelta(seconds=-1), timedelta(days=-1)]
)
def test_negative_skew_is_rejected(skew: timedelta) -> None:
    with pytest.raises(ValueError, match="skew"):
        validity_for(datetime(2026, 11, 21, 10, 0, tzinfo=JST), skew)


def test_validity_checks_its_fields() -> None:
    start = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="later"):
        Validity(not_before=start, not_after=start, issue_day=date(2026, 11, 21))
    with pytest.raises(ValueError, match="later"):
        Validity(
            not_before=start, not_after=start - timedelta(seconds=1), issue_day=date(2026, 11, 21)
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        Validity(
            not_before=start.replace(tzinfo=None),
            not_after=start + timedelta(days=1),
            issue_day=date(2026, 11, 21),
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        Validity(
            not_before=start,
            not_after=(start + timedelta(days=1)).replace(tzinfo=None),
            issue_day=date(2026, 11, 21),
        )


# --------------------------------------------------------------------------- properties

ZONES = [UTC, JST, timezone(timedelta(hours=-12)), timezone(timedelta(hours=14))] + [
    ZoneInfo(name)
    for name in (
        "Asia/Tokyo",
        "America/Los_Angeles",
        "Europe/London",
        "America/St_Johns",
        "Australia/Lord_Howe",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    )
]
instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(ZONES),
    allow_imaginary=False,
)
skews = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2))


@PROPERTY_SETTINGS
@given(issued_at=instants)
def test_property_not_after(issued_at: datetime) -> None:
    validity = validity_for(issued_at)
    assert validity.not_after.tzinfo == UTC
    assert validity.not_after.time() == time(14, 59, 59)
    issue_day = issued_at.astimezone(JST).date()
    assert validity.issue_day == issue_day
    last_day = validity.not_after.astimezone(JST).date()
    assert last_day - issue_day == timedelta(days=365)
    assert validity.not_after.astimezone(JST).time() == time(23, 59, 59)
    assert japan_date(issued_at) == issue_day


@PROPERTY_SETTINGS
@given(issued_at=instants, skew=skews)
def test_property_not_before(issued_at: datetime, skew: timedelta) -> None:
    validity = validity_for(issued_at, skew)
    midnight = _jst_midnight(issued_at.astimezone(JST).date())
    assert validity.not_before.tzinfo == UTC
    assert validity.not_before.microsecond == 0
    assert validity.not_before <= issued_at
    assert validity.not_before >= midnight
    # (subtract in UTC: wall-clock arithmetic on a zone-aware value would drop ``fold``)
    earliest = max(issued_at.astimezone(UTC) - skew, midnight)
    assert validity.not_before == earliest.astimezone(UTC).replace(microsecond=0)
    # never more than the 366 Japan days SPEC C1 grants
    assert validity.not_after - validity.not_before < timedelta(days=366)


@PROPERTY_SETTINGS
@given(issued_at=instants)
def test_property_renewal_and_notices(issued_at: datetime) -> None:
    not_after = validity_for(issued_at).not_after
    last_day = not_after.astimezone(JST).date()
    assert last_valid_day(not_after) == last_day

    opens = renewal_opens_at(not_after)
    assert opens.tzinfo == UTC
    assert opens.astimezone(JST).time() == time(0, 0)
    assert last_day - opens.astimezone(JST).date() == timedelta(days=30)
    assert opens == _jst_midnight(last_day - timedelta(days=30))

    assert renewal_notice_day(not_after) == opens.astimezone(JST).date()
    assert expiry_notice_day(not_after) == last_day + timedelta(days=1)
    # the expiry notice day starts one second after notAfter
    assert _jst_midnight(expiry_notice_day(not_after)) == not_after + timedelta(seconds=1)
