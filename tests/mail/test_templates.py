"""The Japanese templates: content, Japan-time formatting, and no secret in a subject."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ca_service.adapters.mail import templates

NOT_AFTER = datetime(2027, 11, 21, 14, 59, 59, tzinfo=UTC)  # 2027-11-21 23:59:59 JST


def test_format_japan_time_drops_seconds_in_japan_time() -> None:
    assert templates.format_japan_time(NOT_AFTER) == "2027年11月21日 23:59"
    assert templates.format_japan_time(datetime(2027, 12, 31, 15, 0, tzinfo=UTC)) == (
        "2028年1月1日 00:00"
    )


def test_format_japan_time_rounds_up_only_when_asked() -> None:
    instant = datetime(2027, 1, 1, 1, 0, 30, tzinfo=UTC)
    assert templates.format_japan_time(instant) == "2027年1月1日 10:00"
    assert templates.format_japan_time(instant, round_up=True) == "2027年1月1日 10:01"
    whole = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)
    assert templates.format_japan_time(whole, round_up=True) == "2027年1月1日 10:00"


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        templates.renewal_notice("taro0001", datetime(2027, 11, 21))


def test_authentication_code() -> None:
    expires = datetime(2027, 11, 21, 1, 30, 45, tzinfo=timezone(timedelta(hours=0)))
    subject, body = templates.authentication_code("taro0001", "012345", expires)
    assert "012345" not in subject  # subjects stay in the outbox after delivery
    assert "認証コード" in subject
    assert body.startswith("taro0001 様\n")
    assert "認証コード：012345" in body
    assert "30分" in body
    assert "2027年11月21日 10:30まで" in body
    assert "お心当たりのない場合" in body and "破棄" in body


@pytest.mark.parametrize("code", ["12345", "1234567", "12345a", "１２３４５６"])
def test_authentication_code_must_be_six_half_width_digits(code: str) -> None:
    with pytest.raises(ValueError):
        templates.authentication_code("taro0001", code, NOT_AFTER)


def test_locked_names_the_rule_and_a_time_not_before_the_unlock() -> None:
    subject, body = templates.locked("taro0001", datetime(2027, 1, 1, 1, 0, 1, tzinfo=UTC))
    assert "ロック" in subject
    assert "連続して6回" in body and "60分間" in body
    assert "2027年1月1日 10:01" in body
    assert "閉塞" in body  # the warning about the third lock


def test_blocked_general_user_asks_the_master_user() -> None:
    subject, body = templates.blocked("hanako01", is_master=False)
    assert "閉塞" in subject
    assert "マスターユーザーにお問い合わせ" in body
    assert "ヘルプデスク" not in body


def test_blocked_master_user_asks_the_help_desk() -> None:
    _, body = templates.blocked("master01", is_master=True)
    assert "ヘルプデスク" in body
    assert "所属団体のマスターユーザー" not in body


def test_unlocked() -> None:
    subject, body = templates.unlocked("taro0001")
    assert "解除" in subject and "解除" in body


def test_renewal_notice() -> None:
    subject, body = templates.renewal_notice("taro0001", NOT_AFTER)
    assert "更新" in subject
    assert "2027年11月21日 23:59" in body
    assert "電子証明書の更新" in body
    assert "30日前" in body


def test_expiry_notice() -> None:
    subject, body = templates.expiry_notice("taro0001", NOT_AFTER)
    assert "有効期限切れ" in subject
    assert "2027年11月21日 23:59" in body
    assert "再発行" in body
