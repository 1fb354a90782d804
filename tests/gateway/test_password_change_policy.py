"""Which gateway sessions a password change ends (pure): a logged-in session holds the
user's ``password_changed_at`` as its login (or its own change) answered it, and ends when
the user's record carries a later one."""

from __future__ import annotations

from datetime import UTC, datetime

from ca_service.api import pb
from gateway.accounts import UserRecord
from gateway.sessions import PASSWORD_STAMP, Session


def _session(**data: object) -> Session:
    return Session("id", bytes(32), 0.0, {"csrf": "t", **data})


def test_a_later_change_ends_a_logged_in_session() -> None:
    session = _session(user_id="user0001", serial=1)
    session.note_password_change(1_000)
    assert session.data[PASSWORD_STAMP] == 1_000
    assert not session.ended_by_password_change(1_000)  # the same change: the login's
    assert not session.ended_by_password_change(999)  # a record cached from before it
    assert session.ended_by_password_change(1_001)


def test_a_session_that_made_the_change_holds_the_new_stamp() -> None:
    session = _session(user_id="user0001", serial=1)
    session.note_password_change(1_000)
    session.note_password_change(2_000)  # its own change, as the CA answered it
    assert not session.ended_by_password_change(2_000)
    # Another worker's cache still holds the record from before the change.
    assert not session.ended_by_password_change(1_000)


def test_never_changed_never_ends_and_anonymous_sessions_are_not_concerned() -> None:
    logged_in = _session(user_id="user0001", serial=1)
    logged_in.note_password_change(0)
    assert not logged_in.ended_by_password_change(0)
    anonymous = _session()
    assert not anonymous.ended_by_password_change(10**15)


def test_a_session_from_before_the_stamp_ends_at_any_recorded_change() -> None:
    # Logged in by a gateway that did not keep the value (before the upgrade).
    legacy = _session(user_id="user0001", serial=1)
    assert not legacy.ended_by_password_change(0)
    assert legacy.ended_by_password_change(1)
    # A value that is not a number (a hand-edited Redis) counts as none.
    odd = _session(user_id="user0001", serial=1, **{PASSWORD_STAMP: "2000"})
    assert odd.ended_by_password_change(1)


def test_the_record_carries_the_stamp_in_milliseconds() -> None:
    message = pb.User(user_id="user0001")
    assert UserRecord.from_message(message).password_changed_ms == 0
    at = datetime(2026, 12, 3, 1, 2, 3, 456000, tzinfo=UTC)
    message.password_changed_at.FromDatetime(at)
    assert UserRecord.from_message(message).password_changed_ms == int(at.timestamp()) * 1000 + 456
