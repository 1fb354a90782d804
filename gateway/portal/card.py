"""The person's basic information as the gateway passes it from the card certificate
(SPEC D2), and how the screens show it. Pure."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["Card", "CardHeaders", "birth_date_text", "card_from_headers", "sex_text"]

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_ISO_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})", re.ASCII)
# ISO/IEC 5218 codes, and the words a certificate may carry instead.
_SEXES = {"1": "男性", "2": "女性", "3": "その他", "9": "その他", "male": "男性", "female": "女性"}


@dataclass(frozen=True, slots=True)
class Card:
    """The person's basic information as the gateway read it from the card certificate."""

    fingerprint: str
    name: str
    address: str
    birth_date: str
    sex: str


@dataclass(frozen=True, slots=True)
class CardHeaders:
    """The header names (lower case) the gateway is configured with."""

    name: str
    address: str
    birth_date: str
    sex: str
    fingerprint: str


def card_from_headers(get: Callable[[str], str | None], names: CardHeaders) -> Card | None:
    """The card the gateway vouched for, or None when the request carries none (it did not
    come through a ``card`` route)."""
    fingerprint = (get(names.fingerprint) or "").strip().lower()
    if not _FINGERPRINT.fullmatch(fingerprint):
        return None

    def text(name: str) -> str:
        return unquote(get(name) or "", encoding="utf-8", errors="replace")

    return Card(
        fingerprint=fingerprint,
        name=text(names.name),
        address=text(names.address),
        birth_date=text(names.birth_date),
        sex=text(names.sex),
    )


def birth_date_text(value: str) -> str:
    """``1990-04-01`` (or ``19900401``) as ``1990年04月01日``; anything else as it is."""
    match = _ISO_DATE.fullmatch(value.strip())
    if match is None:
        return value
    year, month, day = match.groups()
    return f"{year}年{month}月{day}日"


def sex_text(value: str) -> str:
    return _SEXES.get(value.strip().lower(), value)
