"""SPEC D1 as pure rules: the token, its stored hash, a link's state and who may use it."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from ca_service.domain.email_verification import (
    TOKEN_BYTES,
    EmailVerification,
    LinkState,
    VerificationPurpose,
    link_base_problem,
    link_state,
    link_token_hash,
    may_use,
    new_link_token,
    receipt_number_problem,
    verification_link,
)
from ca_service.domain.profiles import Role
from ca_service.domain.rules import EMAIL_LINK_TTL, Rules

T0 = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def _link(**changes: object) -> EmailVerification:
    values: dict[str, object] = {
        "token_hash": "0" * 64,
        "purpose": VerificationPurpose.USER_EMAIL_CHANGE,
        "user_id": "taro0001",
        "address": "new@example.jp",
        "created_at": T0,
        "expires_at": T0 + EMAIL_LINK_TTL,
    }
    values.update(changes)
    return EmailVerification(**values)  # type: ignore[arg-type]


def test_a_link_is_valid_24_hours() -> None:
    assert timedelta(hours=24) == EMAIL_LINK_TTL == Rules().email_link_validity


def test_token_is_256_random_bits_url_safe() -> None:
    token = new_link_token(secrets.token_bytes)
    assert len(token) == 43 and "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert new_link_token(lambda n: b"\xff" * n) == "_" * 42 + "8"
    assert TOKEN_BYTES * 8 == 256
    with pytest.raises(ValueError):
        new_link_token(lambda n: b"\x00" * (n - 1))


def test_the_stored_hash_is_sha256_of_the_token_and_never_the_token() -> None:
    token = new_link_token(secrets.token_bytes)
    stored = link_token_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored


@pytest.mark.parametrize(
    "token", ["", "short", "x" * 42, "x" * 44, "+" * 43, "a" * 42 + "=", "ａ" * 43, "a b" * 15]
)
def test_strings_no_link_carries_are_unknown_without_a_look_up(token: str) -> None:
    assert link_token_hash(token) is None


def test_states_unknown_valid_expired_used() -> None:
    assert link_state(None, T0) is LinkState.UNKNOWN
    link = _link()
    assert link_state(link, T0) is LinkState.VALID
    assert link_state(link, T0 + EMAIL_LINK_TTL - timedelta(seconds=1)) is LinkState.VALID
    assert link_state(link, T0 + EMAIL_LINK_TTL) is LinkState.EXPIRED
    used = _link(used_at=T0 + timedelta(hours=1))
    assert link_state(used, T0 + timedelta(hours=2)) is LinkState.USED
    # A used link says "used" even after its 24 hours: the more useful answer.
    assert link_state(used, T0 + EMAIL_LINK_TTL * 3) is LinkState.USED


def test_a_user_change_names_the_user_and_a_registration_does_not() -> None:
    with pytest.raises(ValueError):
        _link(user_id=None)
    with pytest.raises(ValueError):
        _link(purpose=VerificationPurpose.PORTAL_REGISTRATION)
    assert _link(purpose=VerificationPurpose.PORTAL_REGISTRATION, user_id=None).user_id is None
    with pytest.raises(ValueError):
        _link(expires_at=T0 - timedelta(seconds=1))
    assert _link(expires_at=T0).expires_at == T0  # replaced within its first second


@pytest.mark.parametrize(
    "url",
    [
        "https://gw.example.jp/email/verify",
        "https://portal.example.jp:8443/procedures/register/verify",
        "http://localhost:8443/email/verify",
        "http://127.0.0.1:9000/email/verify",
    ],
)
def test_link_bases_accepted(url: str) -> None:
    assert link_base_problem(url) is None
    assert verification_link(url, "T" * 43) == f"{url}?token={'T' * 43}"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/email/verify",
        "http://gw.example.jp/email/verify",  # a token must not travel in clear
        "ftp://gw.example.jp/x",
        "https://gw.example.jp/email/verify?next=1",
        "https://gw.example.jp/email/verify#x",
        "https://gw.example.jp/メール",
        "https://gw.example.jp/a b",
    ],
)
def test_link_bases_refused(url: str) -> None:
    assert link_base_problem(url) is not None


def test_who_may_use_which_purpose() -> None:
    change, registration = (
        VerificationPurpose.USER_EMAIL_CHANGE,
        VerificationPurpose.PORTAL_REGISTRATION,
    )
    assert {role for role in Role if may_use(role, change)} == {Role.GATEWAY, Role.OPERATOR}
    assert {role for role in Role if may_use(role, registration)} == {Role.PORTAL}


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("S0101-20230101102030-12345", True),
        ("S0101-20230101102030-1234", False),
        ("s0101-20230101102030-12345", False),
        ("S0101-2023010110203-12345", False),
        ("S0101-20230101102030-12345\n", False),
        ("", False),
    ],
)
def test_receipt_numbers(number: str, ok: bool) -> None:
    assert (receipt_number_problem(number) is None) is ok
