"""gateway.accounts: the CA's user records as enums (role, lock state), a lock that has
lifted by the clock, and the rule figures from GetRules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ca_service.api import pb
from gateway.accounts import Rules, UserRecord, UserRole, UserState

NOW = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)


def _user(role: int, state: int, locked_until: datetime | None = None) -> UserRecord:
    message = pb.User(user_id="taro0001", organization_id="ORG00001", role=role, state=state)
    if locked_until is not None:
        message.locked_until.CopyFrom(Timestamp(seconds=int(locked_until.timestamp())))
    return UserRecord.from_message(message)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (pb.USER_ROLE_MASTER, UserRole.MASTER),
        (pb.USER_ROLE_GENERAL, UserRole.GENERAL),
        (pb.USER_ROLE_UNSPECIFIED, UserRole.UNKNOWN),
        (99, UserRole.UNKNOWN),  # a role newer than this gateway
    ],
)
def test_roles(role: int, expected: UserRole) -> None:
    assert _user(role, pb.USER_STATE_ACTIVE).role is expected


def test_the_role_header_carries_the_same_words_as_before() -> None:
    assert [str(role) for role in UserRole] == ["master", "general", "unknown"]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (pb.USER_STATE_ACTIVE, UserState.ACTIVE),
        (pb.USER_STATE_UNSPECIFIED, UserState.ACTIVE),
        (pb.USER_STATE_LOCKED, UserState.LOCKED),
        (pb.USER_STATE_BLOCKED, UserState.BLOCKED),
    ],
)
def test_states(state: int, expected: UserState) -> None:
    assert _user(pb.USER_ROLE_GENERAL, state).state is expected


def test_a_lock_counts_until_the_second_it_lifts() -> None:
    until = NOW + timedelta(minutes=60)
    locked = _user(pb.USER_ROLE_GENERAL, pb.USER_STATE_LOCKED, until)
    assert locked.locked_until == until
    assert locked.state_at(until - timedelta(seconds=1)) is UserState.LOCKED
    assert locked.state_at(until) is UserState.ACTIVE
    # Without a time it stays locked; a block never lifts by itself.
    assert _user(1, pb.USER_STATE_LOCKED).state_at(NOW + timedelta(days=1)) is UserState.LOCKED
    blocked = _user(pb.USER_ROLE_GENERAL, pb.USER_STATE_BLOCKED)
    assert blocked.state_at(NOW + timedelta(days=365)) is UserState.BLOCKED


def test_rules_from_an_answer_without_them_are_refused() -> None:
    with pytest.raises(ValueError, match="user_id_min_length"):
        Rules.from_message(pb.Rules())
