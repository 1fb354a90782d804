"""The pure parts of メールアドレス変更 (SPEC D1): where the mailed link points, and what
the link's page says for each state (figures from the CA's rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ca_service.api import ErrorReason
from gateway.web import messages
from gateway.web.email import link_base_url
from tests.gateway.rules import OTHER_RULES, RULES


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("localhost:8443", "https://localhost:8443/email/verify"),
        ("Portal.Example.JP", "https://portal.example.jp/email/verify"),
        ("127.0.0.1:9443", "https://127.0.0.1:9443/email/verify"),
        ("[::1]:8443", "https://[::1]:8443/email/verify"),
    ],
)
def test_the_link_points_at_this_gateway(host: str, base: str) -> None:
    assert link_base_url(host) == base


@pytest.mark.parametrize(
    "host",
    [None, "", "evil.example/x", "a b", "host:port", "x@evil.example", "a" * 300, "ホスト.jp"],
)
def test_a_host_that_is_no_plain_name_gives_no_link(host: str | None) -> None:
    assert link_base_url(host) is None


def test_each_link_state_has_its_page() -> None:
    pages = {
        reason: messages.email_link_message(reason, RULES)
        for reason in (
            ErrorReason.EMAIL_LINK_EXPIRED,
            ErrorReason.EMAIL_LINK_USED,
            ErrorReason.EMAIL_LINK_UNKNOWN,
        )
    }
    assert pages[ErrorReason.EMAIL_LINK_EXPIRED] == (
        "URLの有効期限が切れています",
        "このURLは有効期限（24時間）が切れているか、新しいURLが発行されたため無効です。",
    )
    assert pages[ErrorReason.EMAIL_LINK_USED][0] == "このURLは使用済みです"
    assert pages[ErrorReason.EMAIL_LINK_UNKNOWN][0] == "URLが正しくありません"
    assert messages.email_link_message(ErrorReason.INTERNAL, RULES) is None
    expired = messages.email_link_message(ErrorReason.EMAIL_LINK_EXPIRED, OTHER_RULES)
    assert expired is not None and "48時間" in expired[1]


def test_hours_text() -> None:
    assert messages.hours_text(RULES.email_link_validity) == "24時間"
    assert messages.hours_text(RULES.lock_duration) == "1時間"
    assert messages.hours_text(RULES.code_validity) == "30分"
    # The portal's wording of the same rule (gateway/portal/ca.py) is this function too.
    assert messages.hours_text(timedelta(minutes=90)) == "90分"
    assert messages.hours_text(timedelta(0)) == "0分"  # never "0時間"
