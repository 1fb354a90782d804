"""SPEC A2 user IDs and the organisation names a certificate carries."""

from __future__ import annotations

import re
import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service.domain.identifiers import (
    ORGANIZATION_MAX,
    USER_ID_MAX,
    USER_ID_MIN,
    organization_problem,
    user_id_problem,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None)

ALNUM = string.ascii_letters + string.digits
# SPEC A2, written independently of the implementation.
A2 = re.compile(r"(?=[A-Za-z0-9]*[A-Za-z])(?=[A-Za-z0-9]*[0-9])[A-Za-z0-9]{6,12}")

LENGTH_RULE = "6-12 characters"
CHARSET_RULE = "half-width ASCII letters and digits"
LETTER_RULE = "at least one letter"
DIGIT_RULE = "at least one digit"


def test_limits() -> None:
    assert (USER_ID_MIN, USER_ID_MAX) == (6, 12)
    assert ORGANIZATION_MAX == 64


# --------------------------------------------------------------------------- user IDs


@pytest.mark.parametrize(
    "user_id",
    [
        "user01",
        "abc123",
        "1abcde",
        "ABCDE1",
        "a12345",
        "Z00000",
        "A1b2C3d4E5f6",
        "abcdefghijk1",
        "1bcdefghijkl",
        "User01",
        "USER01",
    ],
)
def test_valid_user_ids(user_id: str) -> None:
    assert user_id_problem(user_id) is None


def test_user_ids_are_case_sensitive_not_folded() -> None:
    # Both spellings are acceptable, distinct IDs; nothing is normalised.
    assert user_id_problem("User01") is None
    assert user_id_problem("uSER01") is None
    assert "User01" != "uSER01"


@pytest.mark.parametrize(
    ("user_id", "rule"),
    [
        ("", LENGTH_RULE),
        ("a", LENGTH_RULE),
        ("abc12", LENGTH_RULE),  # 5
        ("abcdefghijk12", LENGTH_RULE),  # 13
        ("a1" * 20, LENGTH_RULE),
        ("abc-123", CHARSET_RULE),
        ("abc_123", CHARSET_RULE),
        ("abc 123", CHARSET_RULE),
        ("abc123!", CHARSET_RULE),
        ("abc.123", CHARSET_RULE),
        ("abc@123", CHARSET_RULE),
        (" abc123", CHARSET_RULE),
        ("abc123\n", CHARSET_RULE),
        ("abc123\x00", CHARSET_RULE),
        ("ａｂｃ１２３", CHARSET_RULE),  # full-width letters and digits
        ("abc１２３", CHARSET_RULE),  # full-width digits
        ("ａbc123", CHARSET_RULE),  # one full-width letter
        ("abc\u3000123", CHARSET_RULE),  # ideographic space
        ("あいう123", CHARSET_RULE),
        ("abc١٢٣", CHARSET_RULE),  # Arabic-Indic digits: str.isdigit() is True
        ("abc²³⁴", CHARSET_RULE),  # superscripts: str.isdigit() is True
        ("ßbcd12", CHARSET_RULE),  # str.isalpha() is True
        ("éabc12", CHARSET_RULE),
        ("user\u212a1", CHARSET_RULE),  # KELVIN SIGN, lower()s to ASCII "k"
        ("abcdef", DIGIT_RULE),
        ("ABCDEFGHIJKL", DIGIT_RULE),
        ("123456", LETTER_RULE),
        ("123456789012", LETTER_RULE),
    ],
)
def test_invalid_user_ids_name_the_rule(user_id: str, rule: str) -> None:
    problem = user_id_problem(user_id)
    assert problem is not None
    assert rule in problem


@st.composite
def valid_user_ids(draw: st.DrawFn) -> str:
    letter = draw(st.sampled_from(string.ascii_letters))
    digit = draw(st.sampled_from(string.digits))
    rest = draw(st.text(alphabet=ALNUM, min_size=USER_ID_MIN - 2, max_size=USER_ID_MAX - 2))
    return "".join(draw(st.permutations([letter, digit, *rest])))


not_alnum = st.characters(codec=None).filter(lambda ch: ch not in ALNUM)


@PROPERTY_SETTINGS
@given(valid_user_ids())
def test_property_valid_ids_accepted(user_id: str) -> None:
    assert A2.fullmatch(user_id)
    assert user_id_problem(user_id) is None


@PROPERTY_SETTINGS
@given(
    st.text(alphabet=ALNUM, min_size=USER_ID_MIN - 1, max_size=USER_ID_MAX - 1),
    not_alnum,
    st.data(),
)
def test_property_any_foreign_character_rejected(base: str, bad: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(base)))
    user_id = base[:position] + bad + base[position:]
    assert USER_ID_MIN <= len(user_id) <= USER_ID_MAX
    problem = user_id_problem(user_id)
    assert problem is not None
    assert CHARSET_RULE in problem


@PROPERTY_SETTINGS
@given(st.text(alphabet=st.one_of(st.sampled_from(ALNUM), st.characters()), max_size=16))
def test_property_matches_spec_a2(user_id: str) -> None:
    assert (user_id_problem(user_id) is None) == bool(A2.fullmatch(user_id))


@PROPERTY_SETTINGS
@given(st.text(alphabet=ALNUM, min_size=USER_ID_MIN, max_size=USER_ID_MAX))
def test_property_letters_only_or_digits_only_rejected(user_id: str) -> None:
    problem = user_id_problem(user_id)
    if user_id.isdigit():
        assert problem is not None and LETTER_RULE in problem
    elif not any(ch in string.digits for ch in user_id):
        assert problem is not None and DIGIT_RULE in problem
    else:
        assert problem is None


# --------------------------------------------------------------------------- organisations


@pytest.mark.parametrize(
    "organization",
    [
        "A",
        "Example Corp",
        "株式会社サンプル",
        "O'Reilly & Sons, Inc.",
        "a=b+c;d",
        "#1 Widgets",
        "x" * ORGANIZATION_MAX,
        "社" * ORGANIZATION_MAX,
        "Ünïcödé GmbH",
    ],
)
def test_valid_organizations(organization: str) -> None:
    assert organization_problem(organization) is None


@pytest.mark.parametrize(
    ("organization", "rule"),
    [
        ("", "must not be empty"),
        (" ", "must not be empty"),
        ("\t\n", "must not be empty"),
        ("\u3000", "must not be empty"),
        (" Acme", "white space"),
        ("Acme ", "white space"),
        ("Acme\t", "white space"),
        ("\u3000Acme", "white space"),
        ("x" * (ORGANIZATION_MAX + 1), f"at most {ORGANIZATION_MAX}"),
        ("社" * (ORGANIZATION_MAX + 1), f"at most {ORGANIZATION_MAX}"),
        ("Ac\x00me", "control characters"),
        ("Ac\nme", "control characters"),
        ("Ac\x1bme", "control characters"),
        ("Acme\x7f", "control characters"),
        ("Ac\u200bme", "control characters"),  # zero-width space (Cf)
    ],
)
def test_invalid_organizations_name_the_rule(organization: str, rule: str) -> None:
    problem = organization_problem(organization)
    assert problem is not None
    assert rule in problem


@PROPERTY_SETTINGS
@given(st.text(max_size=ORGANIZATION_MAX + 8))
def test_property_accepted_organizations_are_sane(organization: str) -> None:
    if organization_problem(organization) is not None:
        return
    assert 1 <= len(organization) <= ORGANIZATION_MAX
    assert organization == organization.strip()
    # Printable, except that Unicode spaces (the full-width U+3000 of Japanese company
    # names) are allowed inside the name.
    assert all(not unicodedata.category(ch).startswith("C") for ch in organization)
    organization.encode("utf-8")  # no lone surrogates


@PROPERTY_SETTINGS
@given(
    st.text(
        alphabet=st.characters(categories=["L", "N", "P", "S"]),
        min_size=1,
        max_size=ORGANIZATION_MAX,
    )
)
def test_property_printable_names_accepted(organization: str) -> None:
    assert organization_problem(organization) is None
