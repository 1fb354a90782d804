"""The backup manifest and the CRL-number floor of a restore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ca_service.domain.backup import Manifest, TableSummary, crl_number_floor

_NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_the_floor_is_above_any_counter_a_ca_reaches_by_publishing() -> None:
    floor = crl_number_floor(41, _NOW)
    assert floor == int(_NOW.timestamp() * 1000)
    # A CA that published ten CRLs a second ever since 1970 would still be below it.
    assert floor > int(_NOW.timestamp()) * 10
    # A counter already above (a second restore soon after the first) is never lowered.
    assert crl_number_floor(floor + 5, _NOW + timedelta(milliseconds=1)) == floor + 5
    # A later restore of the restored CA's backup lands above what it has used since.
    assert crl_number_floor(floor + 5, _NOW + timedelta(hours=1)) > floor + 5


def _manifest() -> Manifest:
    return Manifest(
        created_at=_NOW,
        schema_version=4,
        dialect="sqlite",
        tables={"certificates": TableSummary(3, "ab" * 32)},
        files={"root/ca.pem": "cd" * 32},
        crl_number=7,
        audit_head="ef" * 32,
        pkcs11=True,
    )


def test_manifest_round_trip() -> None:
    assert Manifest.loads(_manifest().dumps()) == _manifest()


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"format": "ca-service-backup/2"}',
        '{"format": "ca-service-backup/1", "created_at": "2026-12-03T08:00:00+00:00"}',
        "not json",
    ],
)
def test_a_foreign_or_broken_manifest_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Manifest.loads(text)
