"""The portal's login (SPEC E4) over gRPC/mTLS: real ca-service processes, a real Redis and a
real SMTP server. Login checks the login password under the same lockout as
StartAuthentication (SPEC B3-B5, B9) and answers with the User."""

from __future__ import annotations

import grpc
import pytest

from ca_service.api import pb
from ca_service.client import api_error
from tests.smtp_sink import SmtpSink
from tests.stack_support import (
    MASTER_PASSWORD,
    Stack,
    authenticate,
    choose_password,
    new_org,
    reason_of,
)

WRONG = "Wr0ng-pass!"


def _general_user(stack: Stack, smtp: SmtpSink, master: str, user_id: str) -> tuple[str, str]:
    """A new organisation with a master and one general user; returns (org ID, password)."""
    organization_id, _ = new_org(stack, smtp, master)
    created = stack.api(stack.gateway).CreateUser(
        pb.CreateUserRequest(acting_user_id=master, user_id=user_id, email=f"{user_id}@example.jp")
    )
    return organization_id, choose_password(stack, user_id, created.initial_password)


def _login_error(api: object, user_id: str, password: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        api.Login(pb.LoginRequest(user_id=user_id, password=password))
    return caught.value


def test_right_password_returns_the_user(stack: Stack, smtp: SmtpSink) -> None:
    organization_id, password = _general_user(stack, smtp, "lgmast01", "lguser01")
    gateway, operator = stack.api(stack.gateway), stack.api(stack.operator)

    user = gateway.Login(pb.LoginRequest(user_id="lguser01", password=password))
    assert (user.user_id, user.organization_id, user.organization_name) == (
        "lguser01",
        organization_id,
        "lgmast01 株式会社",
    )
    assert (user.role, user.state, user.email) == (
        pb.USER_ROLE_GENERAL,
        pb.USER_STATE_ACTIVE,
        "lguser01@example.jp",
    )
    assert (user.consecutive_failures, user.lock_count) == (0, 0)
    assert not user.HasField("locked_until")

    master = gateway.Login(pb.LoginRequest(user_id="lgmast01", password=MASTER_PASSWORD))
    assert (master.role, master.state) == (pb.USER_ROLE_MASTER, pb.USER_STATE_ACTIVE)

    # A successful login is audited, with the user as the actor.
    audited = operator.ListAudit(pb.ListAuditRequest(user_id="lguser01", action="login"))
    assert [(r.actor, r.action) for r in audited.records] == [("lguser01", "login")]


def test_login_is_not_issuance_no_renewal_window(stack: Stack, smtp: SmtpSink) -> None:
    """With a valid certificate StartAuthentication answers ALREADY_ISSUED (SPEC C2); Login
    does not look at certificates."""
    _, password = _general_user(stack, smtp, "lgmast02", "lguser02")
    gateway = stack.api(stack.gateway)
    ticket = authenticate(stack, smtp, "lguser02", password, "lguser02@example.jp")
    gateway.IssueCertificate(
        pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password)
    )
    with pytest.raises(grpc.RpcError) as caught:
        gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id="lguser02", password=password)
        )
    assert reason_of(caught.value)[1] == "ALREADY_ISSUED"
    user = gateway.Login(pb.LoginRequest(user_id="lguser02", password=password))
    assert user.state == pb.USER_STATE_ACTIVE


def test_wrong_password_and_unknown_user_answer_alike(stack: Stack, smtp: SmtpSink) -> None:
    _, password = _general_user(stack, smtp, "lgmast03", "lguser03")
    gateway = stack.api(stack.gateway)
    answers = [
        api_error(_login_error(gateway, user_id, secret))
        for user_id, secret in (
            ("lguser03", WRONG),
            ("nobody77", WRONG),
            ("nobody77", password),
        )
    ]
    assert answers[0].code is grpc.StatusCode.UNAUTHENTICATED
    assert answers[0].reason == "INVALID_CREDENTIALS"
    assert answers[0] == answers[1] == answers[2]
    # The same answer as StartAuthentication gives (SPEC B9).
    with pytest.raises(grpc.RpcError) as caught:
        gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id="nobody77", password=WRONG)
        )
    assert api_error(caught.value) == answers[0]


def test_login_and_start_authentication_share_one_lockout(stack: Stack, smtp: SmtpSink) -> None:
    _, password = _general_user(stack, smtp, "lgmast04", "lguser04")
    gateway, operator = stack.api(stack.gateway), stack.api(stack.operator)
    for index in range(3):  # 3 wrong through StartAuthentication, on both processes
        with pytest.raises(grpc.RpcError) as caught:
            stack.api(stack.gateway, index % 2).StartAuthentication(
                pb.StartAuthenticationRequest(user_id="lguser04", password=WRONG)
            )
        assert reason_of(caught.value)[1] == "INVALID_CREDENTIALS"
    reasons = [
        reason_of(_login_error(stack.api(stack.gateway, index % 2), "lguser04", WRONG))
        for index in range(3)
    ]
    assert reasons[:2] == [(grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")] * 2
    assert reasons[2][1] == "LOCKED"  # the 6th consecutive wrong password (SPEC B3)

    # Locked for both methods, even with the right password; the answer names the unlock time.
    locked = api_error(_login_error(gateway, "lguser04", password))
    assert locked.reason == "LOCKED" and "locked_until" in locked.metadata
    with pytest.raises(grpc.RpcError) as caught:
        gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id="lguser04", password=password)
        )
    assert api_error(caught.value).metadata == locked.metadata
    shown = operator.GetUser(pb.GetUserRequest(user_id="lguser04"))
    assert (shown.state, shown.lock_count) == (pb.USER_STATE_LOCKED, 1)
    smtp.wait_for(lambda m: "lguser04@" in str(m["To"]) and "ロック" in str(m["Subject"]))

    # Unknown IDs lock the same way through Login (SPEC B9).
    unknown = [reason_of(_login_error(gateway, "nobody78", WRONG))[1] for _ in range(6)]
    assert unknown == ["INVALID_CREDENTIALS"] * 5 + ["LOCKED"]


def test_a_successful_login_resets_the_consecutive_failures(stack: Stack, smtp: SmtpSink) -> None:
    _, password = _general_user(stack, smtp, "lgmast05", "lguser05")
    gateway, operator = stack.api(stack.gateway), stack.api(stack.operator)
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            gateway.StartAuthentication(
                pb.StartAuthenticationRequest(user_id="lguser05", password=WRONG)
            )
    for _ in range(3):
        assert reason_of(_login_error(gateway, "lguser05", WRONG))[1] == "INVALID_CREDENTIALS"
    before = operator.GetUser(pb.GetUserRequest(user_id="lguser05"))
    assert before.consecutive_failures == 5

    user = gateway.Login(pb.LoginRequest(user_id="lguser05", password=password))
    assert (user.state, user.consecutive_failures) == (pb.USER_STATE_ACTIVE, 0)

    # Five more wrong passwords do not lock: the count started again from zero.
    for _ in range(5):
        assert reason_of(_login_error(gateway, "lguser05", WRONG))[1] == "INVALID_CREDENTIALS"
    shown = operator.GetUser(pb.GetUserRequest(user_id="lguser05"))
    assert (shown.state, shown.consecutive_failures) == (pb.USER_STATE_ACTIVE, 5)


def test_only_a_gateway_may_call_login(stack: Stack, smtp: SmtpSink) -> None:
    _, password = _general_user(stack, smtp, "lgmast06", "lguser06")
    operator = stack.api(stack.operator)
    for secret in (password, WRONG):
        error = _login_error(operator, "lguser06", secret)
        assert reason_of(error) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    # The refused calls never reached the password check: nothing counted, nothing audited.
    shown = operator.GetUser(pb.GetUserRequest(user_id="lguser06"))
    assert (shown.state, shown.consecutive_failures) == (pb.USER_STATE_ACTIVE, 0)
    assert not operator.ListAudit(pb.ListAuditRequest(user_id="lguser06", action="login")).records
