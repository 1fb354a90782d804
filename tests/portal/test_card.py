"""The person's basic information from the gateway's card headers (pure)."""

from __future__ import annotations

from urllib.parse import quote

from gateway.card_headers import CARD_HEADERS
from gateway.portal.card import CardHeaders, birth_date_text, card_from_headers, sex_text

NAMES = CardHeaders(*(name.lower() for name in CARD_HEADERS))


def test_the_headers_give_the_card() -> None:
    headers = {
        "x-card-name": quote("共済 太郎"),
        "x-card-address": quote("東京都港区虎ノ門3-5-1"),
        "x-card-birth-date": "1990-04-01",
        "x-card-sex": "1",
        "x-card-fingerprint": "AB" * 32,
    }
    card = card_from_headers(headers.get, NAMES)
    assert card is not None
    assert (card.name, card.address, card.birth_date, card.sex) == (
        "共済 太郎",
        "東京都港区虎ノ門3-5-1",
        "1990-04-01",
        "1",
    )
    assert card.fingerprint == "ab" * 32


def test_without_a_fingerprint_there_is_no_card() -> None:
    assert card_from_headers({"x-card-name": "x"}.get, NAMES) is None
    assert card_from_headers({"x-card-fingerprint": "not hex"}.get, NAMES) is None
    assert card_from_headers({"x-card-fingerprint": "ab" * 31}.get, NAMES) is None


def test_how_the_screens_show_the_attributes() -> None:
    assert birth_date_text("1990-04-01") == "1990年04月01日"
    assert birth_date_text("19900401") == "1990年04月01日"
    assert birth_date_text("平成2年4月1日") == "平成2年4月1日"
    assert [sex_text(code) for code in ("1", "2", "3", "男性")] == [
        "男性",
        "女性",
        "その他",
        "男性",
    ]
