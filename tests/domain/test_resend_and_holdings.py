"""Pure rules of issue 11: when a code may be sent again, and what a master user's page
says about a user's certificate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ca_service.domain.holdings import Holding, RevocationCause, summarize
from ca_service.domain.records import CertificateRecord, KeySource
from ca_service.domain.resend import (
    RESEND_INTERVAL,
    RESEND_WINDOW,
    RESENDS_PER_WINDOW,
    ResendLimits,
    resend_retry_at,
)
from ca_service.domain.validity import renewal_opens_at, validity_for
from ca_service.pki.crl import Reason

NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def test_the_figures_are_issue_11s() -> None:
    assert (
        timedelta(minutes=1),
        5,
        timedelta(minutes=30),
    ) == (RESEND_INTERVAL, RESENDS_PER_WINDOW, RESEND_WINDOW)


def test_once_per_interval_after_the_last_code() -> None:
    assert resend_retry_at(None, [], NOW) is None
    assert resend_retry_at(NOW, [], NOW) == NOW + RESEND_INTERVAL
    assert resend_retry_at(NOW, [], NOW + RESEND_INTERVAL - US) == NOW + RESEND_INTERVAL
    assert resend_retry_at(NOW, [], NOW + RESEND_INTERVAL) is None


def test_per_window_counts_only_resends_inside_it() -> None:
    resends = [NOW + i * RESEND_INTERVAL for i in range(RESENDS_PER_WINDOW)]
    last = resends[-1]
    at = last + RESEND_INTERVAL
    assert resend_retry_at(last, resends, at) == NOW + RESEND_WINDOW
    assert resend_retry_at(last, resends, NOW + RESEND_WINDOW - US) == NOW + RESEND_WINDOW
    assert resend_retry_at(last, resends, NOW + RESEND_WINDOW) is None
    # Both limits: the later instant wins.
    assert resend_retry_at(NOW + RESEND_WINDOW - US, resends, NOW + RESEND_WINDOW) == (
        NOW + RESEND_WINDOW - US + RESEND_INTERVAL
    )
    with pytest.raises(ValueError):
        ResendLimits(per_window=0)


def _record(serial: int, issued_at: datetime, revoked: bool = False) -> CertificateRecord:
    validity = validity_for(issued_at)
    return CertificateRecord(
        serial,
        "f" * 64,
        "taro0001",
        "組織",
        "CN=taro0001",
        validity.not_before,
        validity.not_after,
        issued_at,
        KeySource.SERVER,
        b"",
        revoked_at=issued_at + timedelta(days=1) if revoked else None,
    )


def test_summaries() -> None:
    assert summarize([], NOW).holding is Holding.NONE
    current = _record(1, NOW)
    summary = summarize([current], NOW)
    assert (summary.holding, summary.serial_hex, summary.not_after) == (
        Holding.VALID,
        "1",
        current.not_after,
    )
    assert summary.renewal_opens_at == renewal_opens_at(current.not_after)
    assert not summary.renewal_open
    assert summarize([current], renewal_opens_at(current.not_after)).renewal_open
    revoked = _record(2, NOW + timedelta(days=2), revoked=True)
    # A valid certificate counts before a newer revoked one.
    assert summarize([current, revoked], NOW + timedelta(days=4)).serial_hex == "1"
    gone = summarize([revoked], NOW + timedelta(days=4))
    assert (gone.holding, gone.renewal_open) == (Holding.REVOKED, True)
    expired = summarize([current], current.not_after + timedelta(seconds=1))
    assert (expired.holding, expired.renewal_opens_at) == (Holding.EXPIRED, None)


def test_causes_are_published_with_rfc_5280_reasons() -> None:
    assert RevocationCause.PC_CHANGE.reason is Reason.SUPERSEDED
    assert RevocationCause.LOST_PC.reason is Reason.KEY_COMPROMISE
