"""The pure rules of the re-submission (SPEC D3): receipt numbers, contract numbers, the
addresses of the registration, the file limits."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ca_service.shared.japan import JAPAN
from gateway.portal import procedure
from gateway.portal.procedure import (
    MAX_FILES,
    MAX_TOTAL_BYTES,
    Invalid,
    check_addresses,
    check_files,
    check_member_number,
    make_receipt_number,
    parse_receipt_number,
    upload_allowance,
)

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # 18:00 in Japan


def test_the_seed_example_is_a_receipt_number() -> None:
    number = parse_receipt_number("S0101-20230101102030-12345", NOW)
    assert number.received_at == datetime(2023, 1, 1, 10, 20, 30, tzinfo=JAPAN)
    assert number.serial == 12345
    assert str(number) == "S0101-20230101102030-12345"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "S0101-20230101102030-1234",  # serial too short
        "S0101-20230101102030-123456",
        "S0102-20230101102030-12345",  # another procedure
        "s0101-20230101102030-12345",
        "S0101_20230101102030_12345",
        " S0101-20230101102030-12345",
        "S0101-20230101102030-12345\n",
        "S0101-２０２３0101102030-12345",  # full-width digits
        "S0101-202301011020-12345",
        "S0101-20230101102030-1234５",
    ],
)
def test_malformed_receipt_numbers_are_refused(text: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_receipt_number(text, NOW)
    assert refused.value.field == "receipt_number"
    assert "S0101-" in refused.value.message


@pytest.mark.parametrize(
    "stamp",
    [
        "20230230102030",
        "20231301102030",
        "20230101242030",
        "20230101106030",
        "20230101102060",
        "20230000102030",
        "20230229000000",
    ],
)
def test_a_receipt_number_names_a_real_date_time(stamp: str) -> None:
    with pytest.raises(Invalid, match="正しい日時"):
        parse_receipt_number(f"S0101-{stamp}-00001", NOW)


def test_a_leap_day_is_a_real_date() -> None:
    assert parse_receipt_number("S0101-20240229235959-00000", NOW).serial == 0


def test_a_receipt_number_from_the_future_is_refused() -> None:
    japan_now = NOW.astimezone(JAPAN)
    ahead = japan_now + timedelta(seconds=1)
    with pytest.raises(Invalid, match="未来"):
        parse_receipt_number(f"S0101-{ahead:%Y%m%d%H%M%S}-00001", NOW)
    assert parse_receipt_number(f"S0101-{japan_now:%Y%m%d%H%M%S}-00001", NOW)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(0, 99_999),
)
def test_made_receipt_numbers_parse_back(when: datetime, serial: int) -> None:
    instant = when.replace(tzinfo=UTC)
    text = make_receipt_number(instant, serial)
    parsed = parse_receipt_number(text, instant + timedelta(days=1))
    assert parsed.serial == serial
    assert parsed.received_at == instant.astimezone(JAPAN).replace(microsecond=0)
    assert len(text) == len("S0101-20230101102030-12345")


def test_receipt_numbers_are_made_in_japan_time() -> None:
    assert make_receipt_number(NOW, 7) == "S0101-20261203180000-00007"
    with pytest.raises(ValueError):
        make_receipt_number(NOW, 100_000)


@given(st.text(max_size=12))
def test_member_numbers_are_nine_ascii_digits_or_nothing(text: str) -> None:
    valid = text == "" or (len(text) == 9 and all(c in "0123456789" for c in text))
    if valid:
        assert check_member_number(text) == text
    else:
        with pytest.raises(Invalid):
            check_member_number(text)


def test_member_number_examples() -> None:
    assert check_member_number("123456789") == "123456789"
    assert check_member_number("") == ""
    for bad in ("12345678", "1234567890", "１２３４５６７８９", "12345678a", " 123456789"):
        with pytest.raises(Invalid, match="9桁"):
            check_member_number(bad)


def test_the_address_is_typed_twice_and_the_terms_accepted() -> None:
    assert check_addresses("taro_kyosai@test.ne.jp", "taro_kyosai@test.ne.jp", True)
    cases = [
        (("", "", True), "address"),
        (("taro", "taro", True), "address"),
        (("taro@localhost", "taro@localhost", True), "address"),
        (("a@b.example", "a@c.example", True), "address_again"),
        (("a@b.example", "a@b.example", False), "consent"),
        (("x" * 250 + "@b.jp", "x" * 250 + "@b.jp", True), "address"),
    ]
    for arguments, field in cases:
        with pytest.raises(Invalid) as refused:
            check_addresses(*arguments)
        assert refused.value.field == field


def test_file_limits() -> None:
    check_files([1])
    check_files([MAX_TOTAL_BYTES // MAX_FILES] * MAX_FILES)
    check_files([MAX_TOTAL_BYTES])
    with pytest.raises(Invalid, match="1つ以上"):
        check_files([])
    with pytest.raises(Invalid, match="5つまで、かつ合計10MBまで"):
        check_files([1] * (MAX_FILES + 1))
    with pytest.raises(Invalid, match="合計サイズ"):
        check_files([MAX_TOTAL_BYTES, 1])
    assert MAX_TOTAL_BYTES == 10 * 1024 * 1024 and MAX_FILES == 5  # SPEC D3


@given(st.lists(st.integers(1, MAX_TOTAL_BYTES), max_size=MAX_FILES))
def test_the_allowance_is_what_is_left(sizes: list[int]) -> None:
    files, size = upload_allowance(sizes, len(sizes))
    assert files == MAX_FILES - len(sizes)
    assert size == max(0, MAX_TOTAL_BYTES - sum(sizes))


def test_the_limit_text_names_the_figures() -> None:
    assert procedure.limit_text() == "5つまで、かつ合計10MBまで"


PORTAL = Path(procedure.__file__).parent
# The portal's figures with the units its screens say them in: files (つ), megabytes, digits,
# hours (the link's validity, from the CA).
PORTAL_FIGURE = re.compile(r"(?<![\d.\-])\d+\s*(?:MB|つ|桁|時間)")


def _portal_texts() -> list[tuple[str, str]]:
    """Every template line, and every string literal of the portal's code but the rules'
    own module (docstrings aside)."""
    found = [
        (f"{template.name}:{number}", line)
        for template in sorted((PORTAL / "templates").glob("*.html"))
        for number, line in enumerate(template.read_text().splitlines(), 1)
    ]
    for module in sorted(PORTAL.glob("*.py")):
        if module.name == "procedure.py":
            continue
        tree = ast.parse(module.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found += [
            (f"{module.name}:{node.lineno}", node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ]
    return found


def test_the_portal_takes_its_figures_from_the_rules_module() -> None:
    assert PORTAL_FIGURE.search("合計10MBまで") and PORTAL_FIGURE.search("24時間")
    texts = _portal_texts()
    assert any("添付書類" in text for _, text in texts) and len(texts) > 100  # it reads them
    found = [f"{where}: {text!r}" for where, text in texts if PORTAL_FIGURE.search(text)]
    assert found == [], "take the figure from gateway.portal.procedure (or the CA's rules)"
