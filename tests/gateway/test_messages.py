"""gateway.web.messages: the screens' Japanese answers to the CA's refusals (SPEC E4), a
table keyed by the CA's reasons, with the rule figures the CA reports."""

from __future__ import annotations

from datetime import timedelta

import grpc

from ca_service.api import ErrorReason
from gateway.ca_client import reason_of
from gateway.identity import Refusal
from gateway.web.messages import (
    CA_REFUSALS,
    busy_message,
    duration_text,
    for_ca_reason,
    rate_limited_message,
    refusal_message,
)
from tests.gateway.rules import OTHER_RULES, RULES


def test_locked_says_when_the_lock_lifts_in_japan_time() -> None:
    text = for_ca_reason(ErrorReason.LOCKED, {"locked_until": "2026-11-22T03:30:00+00:00"}, RULES)
    assert "ロック" in text and "2026年11月22日 12:30" in text
    # Rounded up to the minute: the lock has lifted by the time shown.
    text = for_ca_reason(ErrorReason.LOCKED, {"locked_until": "2026-11-22T03:30:01+00:00"}, RULES)
    assert "2026年11月22日 12:31" in text


def test_already_issued_says_when_renewal_opens() -> None:
    text = for_ca_reason(
        ErrorReason.ALREADY_ISSUED, {"renewal_opens_at": "2027-10-21T15:00:00+00:00"}, RULES
    )
    assert "既に電子証明書が発行されている" in text and "2027年10月22日から" in text


def test_blocked_says_whom_to_contact() -> None:
    text = for_ca_reason(ErrorReason.BLOCKED, {}, RULES)
    assert "閉塞" in text and "マスターユーザー" in text and "ヘルプデスク" in text


def test_codes() -> None:
    assert "あと3回" in for_ca_reason(ErrorReason.CODE_INVALID, {"tries_left": "3"}, RULES)
    assert "無効" in for_ca_reason(ErrorReason.CODE_INVALID, {"tries_left": "0"}, RULES)
    assert "有効期限" in for_ca_reason(ErrorReason.CODE_EXPIRED, {}, RULES)


def test_unknown_reasons_and_every_refusal_have_a_message() -> None:
    # A reason newer than this gateway, or none at all: a general message.
    assert reason_of("SOMETHING_NEW", grpc.StatusCode.UNKNOWN) is ErrorReason.INTERNAL
    assert reason_of("", grpc.StatusCode.PERMISSION_DENIED) is ErrorReason.PERMISSION_DENIED
    assert reason_of("LOCKED", grpc.StatusCode.FAILED_PRECONDITION) is ErrorReason.LOCKED
    assert for_ca_reason(ErrorReason.INTERNAL, {}, RULES)
    assert for_ca_reason(ErrorReason.INVALID_CREDENTIALS, {}, RULES) == (
        "ユーザーIDまたはパスワードが正しくありません。"
    )
    for refusal in Refusal:
        heading, message = refusal_message(refusal, RULES)
        assert heading and message


def test_the_figures_come_from_the_cas_rules() -> None:
    """Other rules, other words: nothing in the messages is a copy of a figure."""
    other = OTHER_RULES
    assert "連続して5回" in for_ca_reason(ErrorReason.LOCKED, {}, other)
    assert "20分後に" in for_ca_reason(ErrorReason.LOCKED, {}, other)
    assert "20分経過後" in refusal_message(Refusal.LOCKED, other)[1]
    assert "（90秒）" in for_ca_reason(ErrorReason.CODE_EXPIRED, {}, other)
    assert "半角数字8桁" in for_ca_reason(ErrorReason.CODE_INVALID, {}, other)
    assert "切れる14日前から" in for_ca_reason(ErrorReason.ALREADY_ISSUED, {}, other)
    assert "4～16桁" in for_ca_reason(ErrorReason.INVALID_USER_ID, {}, other)
    assert "10～32桁" in for_ca_reason(ErrorReason.INVALID_PASSWORD, {}, other)
    # And SPEC's own, as the CA reports them.
    assert "連続して6回" in for_ca_reason(ErrorReason.LOCKED, {}, RULES)
    assert "60分後に" in for_ca_reason(ErrorReason.LOCKED, {}, RULES)
    assert "（30分）" in for_ca_reason(ErrorReason.CODE_EXPIRED, {}, RULES)


def test_the_table_is_keyed_by_the_cas_reasons() -> None:
    assert all(isinstance(reason, ErrorReason) for reason in CA_REFUSALS)
    # Every reason the screens' calls can meet and a user can act on has its own words.
    for reason in (
        ErrorReason.INVALID_CREDENTIALS,
        ErrorReason.LOCKED,
        ErrorReason.BLOCKED,
        ErrorReason.ALREADY_ISSUED,
        ErrorReason.CODE_INVALID,
        ErrorReason.CODE_EXPIRED,
        ErrorReason.TICKET_INVALID,
        ErrorReason.INVALID_USER_ID,
        ErrorReason.INVALID_PASSWORD,
        ErrorReason.INVALID_EMAIL,
        ErrorReason.USER_EXISTS,
    ):
        assert reason in CA_REFUSALS, reason


def test_durations_are_said_in_whole_minutes_or_seconds() -> None:
    assert duration_text(timedelta(minutes=60)) == "60分"
    assert duration_text(timedelta(minutes=30)) == "30分"
    assert duration_text(timedelta(seconds=2)) == "2秒"


def test_waits_are_said_in_seconds_or_whole_minutes_rounded_up() -> None:
    assert "59秒ほど待って" in rate_limited_message(59)[1]
    assert "1分ほど待って" in rate_limited_message(60)[1]
    assert "2分ほど待って" in rate_limited_message(61)[1]
    heading, text = busy_message(1)
    assert heading == "ただいま混み合っています" and "1秒ほど待って" in text


def test_issue_11_refusals() -> None:
    soon = for_ca_reason(
        ErrorReason.RESEND_LIMITED,
        {"retry_at": "2026-11-22T03:30:20+00:00", "retry_after_seconds": "40"},
        RULES,
    )
    assert "40秒ほど待ってから" in soon and "1分以上あけて、30分に5回まで" in soon
    later = for_ca_reason(
        ErrorReason.RESEND_LIMITED,
        {"retry_at": "2026-11-22T03:30:20+00:00", "retry_after_seconds": "900"},
        RULES,
    )
    assert "2026年11月22日 12:31（日本時間）以降に" in later  # rounded up
    assert "2分以上あけて、45分に7回まで" in for_ca_reason(
        ErrorReason.RESEND_LIMITED, {}, OTHER_RULES
    )
    assert "初期パスワード" in for_ca_reason(ErrorReason.PASSWORD_CHANGE_REQUIRED, {}, RULES)
    assert "現在のパスワードと異なる" in for_ca_reason(ErrorReason.PASSWORD_UNCHANGED, {}, RULES)
    assert "有効な電子証明書がありません" in for_ca_reason(
        ErrorReason.CERTIFICATE_NOT_FOUND, {}, RULES
    )
