"""The rules of the attachment re-submission (SPEC D3), as pure functions: the figures
(files, total size), the checks of what a person types (contract number, the original
application's receipt number, e-mail address) and the making of a new receipt number. No
I/O, no clock: the caller passes the instant.

Messages are Japanese, for the screens; they take their figures from the constants here, so
a change of a rule is one edit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ca_service.shared.japan import JAPAN

__all__ = [
    "MAX_FILES",
    "MAX_TOTAL_BYTES",
    "MEMBER_NUMBER_DIGITS",
    "RECEIPT_PREFIX",
    "RECEIPT_SERIAL_DIGITS",
    "Invalid",
    "ReceiptNumber",
    "check_address",
    "check_addresses",
    "check_files",
    "check_member_number",
    "limit_text",
    "make_receipt_number",
    "parse_receipt_number",
    "upload_allowance",
]

# D3: 1 to this many files per submission …
MAX_FILES = 5
# … of at most this many bytes together ("10MB" on the original's screen: 10 MiB here).
MAX_TOTAL_BYTES = 10 * 1024 * 1024
# The contract number printed on the 共済契約締結証書.
MEMBER_NUMBER_DIGITS = 9
# The procedure code of every receipt number this portal issues and accepts.
RECEIPT_PREFIX = "S0101"
RECEIPT_SERIAL_DIGITS = 5
# The longest e-mail address SMTP carries (RFC 5321 path limit less the brackets).
MAX_ADDRESS_LENGTH = 254

_RECEIPT = re.compile(
    rf"{RECEIPT_PREFIX}-(\d{{14}})-(\d{{{RECEIPT_SERIAL_DIGITS}}})", re.ASCII | re.DOTALL
)
_MEMBER = re.compile(rf"\d{{{MEMBER_NUMBER_DIGITS}}}", re.ASCII)
# Deliberately plain: one @, a local part and a dotted domain of printable ASCII; the link
# sent there is the real check.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


class Invalid(ValueError):
    """What a person typed breaks a rule; ``field`` names the form field, the message is
    Japanese and shown next to it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def limit_text() -> str:
    """The limits as the screens name them."""
    return f"{MAX_FILES}つまで、かつ合計{MAX_TOTAL_BYTES // (1024 * 1024)}MBまで"


@dataclass(frozen=True, slots=True)
class ReceiptNumber:
    """``S0101-YYYYMMDDHHMMSS-NNNNN``: the procedure, the Japan time it was received, a
    serial."""

    received_at: datetime
    serial: int

    def __str__(self) -> str:
        return (
            f"{RECEIPT_PREFIX}-{self.received_at:%Y%m%d%H%M%S}-"
            f"{self.serial:0{RECEIPT_SERIAL_DIGITS}d}"
        )


def parse_receipt_number(text: str, now: datetime) -> ReceiptNumber:
    """The original application's receipt number, checked strictly: the exact form (ASCII
    digits, no spaces, no full-width characters), a real Japan date-time, not later than
    ``now``."""
    match = _RECEIPT.fullmatch(text)
    if match is None:
        raise Invalid(
            "receipt_number",
            "受付番号は「S0101-年月日時分秒(14桁)-番号(5桁)」の形式で、半角で入力してください。",
        )
    stamp, serial = match.groups()
    try:
        received_at = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=JAPAN)
    except ValueError:
        raise Invalid(
            "receipt_number", "受付番号の年月日時分秒が正しい日時ではありません。"
        ) from None
    if received_at > now:
        raise Invalid("receipt_number", "受付番号の日時が未来の日時になっています。")
    return ReceiptNumber(received_at, int(serial))


def make_receipt_number(now: datetime, serial: int) -> str:
    """A new receipt number for a submission received at ``now``; ``serial`` is drawn by
    the caller (the store keeps receipt numbers unique and draws again on a clash)."""
    if not 0 <= serial < 10**RECEIPT_SERIAL_DIGITS:
        raise ValueError(f"serial out of range: {serial}")
    return str(ReceiptNumber(now.astimezone(JAPAN).replace(microsecond=0), serial))


def check_member_number(text: str) -> str:
    """The contract number: exactly the digits of the certificate, or empty for an applicant
    who is not yet a member."""
    if text == "" or _MEMBER.fullmatch(text):
        return text
    raise Invalid(
        "member_number",
        f"共済契約者番号は半角数字{MEMBER_NUMBER_DIGITS}桁で入力してください"
        "（加入申込の方は空欄のままにしてください）。",
    )


def check_address(text: str) -> str:
    if len(text) > MAX_ADDRESS_LENGTH or not _ADDRESS.fullmatch(text):
        raise Invalid("address", "メールアドレスの形式が正しくありません。")
    return text


def check_addresses(address: str, again: str, consented: bool) -> str:
    """The registration form: the address, typed twice alike, and consent to the terms."""
    if not address:
        raise Invalid("address", "メールアドレスを入力してください。")
    check_address(address)
    if address != again:
        raise Invalid("address_again", "メールアドレス（確認用）が一致しません。")
    if not consented:
        raise Invalid("consent", "利用規約と個人情報保護管理規程に同意してください。")
    return address


def upload_allowance(staged_sizes: Sequence[int], staged_count: int) -> tuple[int, int]:
    """How many more files and bytes may still be attached, given what is attached."""
    return max(0, MAX_FILES - staged_count), max(0, MAX_TOTAL_BYTES - sum(staged_sizes))


def check_files(sizes: Sequence[int]) -> None:
    """The attached files of a submission: 1 to MAX_FILES, MAX_TOTAL_BYTES together."""
    if not sizes:
        raise Invalid("files", "添付書類を1つ以上添付してください。")
    if len(sizes) > MAX_FILES:
        raise Invalid("files", f"添付書類は{limit_text()}です。ファイルの数を減らしてください。")
    if sum(sizes) > MAX_TOTAL_BYTES:
        raise Invalid("files", f"添付書類は{limit_text()}です。合計サイズを小さくしてください。")
