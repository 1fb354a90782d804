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


LINK = "https://gw.example.jp/email/verify?token=" + "T" * 43


def test_email_verification_for_a_user() -> None:
    expires = datetime(2027, 11, 21, 1, 30, 45, tzinfo=UTC)
    subject, body = templates.email_verification("taro0001", LINK, expires)
    assert "T" * 43 not in subject  # subjects stay in the outbox after delivery
    assert subject == "【電子証明書】メールアドレス変更 メール認証URLのご案内"
    assert body.startswith("taro0001 様\n")
    assert f"\n\n{LINK}\n\n" in body  # alone on its line, so mail programs link all of it
    assert "「24時間以内」（2027年11月21日 10:30まで）" in body
    assert "24時間を超過すると、URLのリンク先ページは無効となります" in body
    assert "一度だけ有効" in body and "変更前のメールアドレスが引き続き使用されます" in body


def test_email_verification_for_the_portal_follows_seed_004() -> None:
    subject, body = templates.email_verification(None, LINK, NOT_AFTER)
    assert subject == "【オンライン手続きポータル】メール認証URLのご案内"
    assert body.startswith("ご利用いただきまして誠にありがとうございます。\n")
    assert "様" not in body and "「24時間以内」" in body and f"\n{LINK}\n" in body


def test_email_changed_tells_the_old_address_without_the_new_one_in_full() -> None:
    subject, body = templates.email_changed("taro0001", "hanako.new@example.jp", NOT_AFTER)
    assert subject == "【重要】登録メールアドレス変更のお知らせ"
    assert "2027年11月21日 23:59に変更されました（変更後：h***@example.jp）" in body
    assert "hanako.new" not in body and "お心当たりのない場合" in body


def test_procedure_completion_quotes_the_receipt_number() -> None:
    submitted = datetime(2026, 11, 21, 1, 20, 30, tzinfo=UTC)
    subject, body = templates.procedure_completion("S0101-20261121102030-00042", submitted)
    assert subject == "【オンライン手続きポータル】オンライン申請受付完了のお知らせ"
    assert "オンライン申請の受付が完了いたしましたので下記受付番号をお伝えします。" in body
    assert "受付番号：S0101-20261121102030-00042\n受付日時：2026年11月21日 10:20" in body
    assert "このメールへの返信はできませんのでご了承ください。" in body
