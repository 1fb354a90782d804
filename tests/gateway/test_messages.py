"""gateway.web.messages: the screens' Japanese answers to the CA's refusals (SPEC E4)."""

from __future__ import annotations

from gateway.identity import Refusal
from gateway.web.messages import for_ca_reason, refusal_message


def test_locked_says_when_the_lock_lifts_in_japan_time() -> None:
    text = for_ca_reason("LOCKED", {"locked_until": "2026-11-22T03:30:00+00:00"})
    assert "ロック" in text and "2026年11月22日 12:30" in text


def test_already_issued_says_when_renewal_opens() -> None:
    text = for_ca_reason("ALREADY_ISSUED", {"renewal_opens_at": "2027-10-21T15:00:00+00:00"})
    assert "既に電子証明書が発行されている" in text and "2027年10月22日から" in text


def test_blocked_says_whom_to_contact() -> None:
    text = for_ca_reason("BLOCKED", {})
    assert "閉塞" in text and "マスターユーザー" in text and "ヘルプデスク" in text


def test_codes() -> None:
    assert "あと3回" in for_ca_reason("CODE_INVALID", {"tries_left": "3"})
    assert "無効" in for_ca_reason("CODE_INVALID", {"tries_left": "0"})
    assert "有効期限" in for_ca_reason("CODE_EXPIRED", {})


def test_unknown_reasons_and_every_refusal_have_a_message() -> None:
    assert for_ca_reason("SOMETHING_NEW", {})
    assert for_ca_reason("INVALID_CREDENTIALS", {}) == (
        "ユーザーIDまたはパスワードが正しくありません。"
    )
    for refusal in Refusal:
        heading, message = refusal_message(refusal)
        assert heading and message
