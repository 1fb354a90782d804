"""Issue 11 over gRPC/mTLS with real ca-service processes, a real Redis, SQLite and a real
SMTP server: ChangePassword under the shared lockout, given passwords, ResendCode and its
limits, ListUsers' certificate summaries and a master user's RevokeUserCertificates."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from ca_service.api import pb
from ca_service.client import api_error
from ca_service.domain.resend import RESEND_INTERVAL, RESEND_WINDOW, RESENDS_PER_WINDOW
from tests.smtp_sink import SmtpSink
from tests.stack_support import (
    Stack,
    authenticate,
    choose_password,
    new_org,
    reason_of,
    start_stack,
)

WRONG = "Wr0ng-pass!"
NEW = "N3w-Chosen!"


def _general(stack: Stack, master: str, user_id: str) -> str:
    """A general user of ``master``'s organisation; returns the password it was given."""
    created = stack.api(stack.gateway).CreateUser(
        pb.CreateUserRequest(acting_user_id=master, user_id=user_id, email=f"{user_id}@example.jp")
    )
    return str(created.initial_password)


def _refused(call: object, request: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)  # type: ignore[operator]
    return reason_of(caught.value)


def test_password_change_shares_the_lockout_of_both_processes(stack: Stack, smtp: SmtpSink) -> None:
    new_org(stack, smtp, "acmast01")
    given = _general(stack, "acmast01", "acuser01")
    first, second = stack.api(stack.gateway, 0), stack.api(stack.gateway, 1)
    # A given password opens neither issuance nor login.
    assert _refused(second.Login, pb.LoginRequest(user_id="acuser01", password=given)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PASSWORD_CHANGE_REQUIRED",
    )
    assert _refused(
        first.ChangePassword,
        pb.ChangePasswordRequest(user_id="acuser01", current_password=given, new_password=given),
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "PASSWORD_UNCHANGED")
    assert _refused(
        first.ChangePassword,
        pb.ChangePasswordRequest(user_id="acuser01", current_password=given, new_password="weak"),
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PASSWORD")
    chosen = choose_password(stack, "acuser01", given)

    # Wrong current passwords on one process and wrong logins on the other: one count.
    for index in range(5):
        api = (first, second)[index % 2]
        assert _refused(
            api.ChangePassword,
            pb.ChangePasswordRequest(user_id="acuser01", current_password=WRONG, new_password=NEW),
        ) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    assert _refused(second.Login, pb.LoginRequest(user_id="acuser01", password=WRONG)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LOCKED",
    )
    # Locked: the right current password changes nothing.
    assert _refused(
        first.ChangePassword,
        pb.ChangePasswordRequest(user_id="acuser01", current_password=chosen, new_password=NEW),
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "LOCKED")
    smtp.wait_for(lambda m: "acuser01@" in str(m["To"]) and "ロック" in str(m["Subject"]))
    stack.api(stack.gateway).UnlockUser(
        pb.UnlockUserRequest(user_id="acuser01", acting_user_id="acmast01")
    )
    changed = second.ChangePassword(
        pb.ChangePasswordRequest(user_id="acuser01", current_password=chosen, new_password=NEW)
    )
    assert (changed.user_id, changed.state) == ("acuser01", pb.USER_STATE_ACTIVE)
    # The instant gateways end the user's other sessions at; the login answers the same.
    assert changed.HasField("password_changed_at")
    logged_in = first.Login(pb.LoginRequest(user_id="acuser01", password=NEW))
    assert logged_in.password_changed_at == changed.password_changed_at
    assert first.Login(pb.LoginRequest(user_id="acuser01", password=NEW)).user_id == "acuser01"
    audited = stack.api(stack.operator).ListAudit(
        pb.ListAuditRequest(user_id="acuser01", action="change_password")
    )
    assert [(r.actor, r.details) for r in audited.records] == [
        ("acuser01", '{"sessions": "others_ended", "was_initial": "false"}'),
        ("acuser01", '{"sessions": "others_ended", "was_initial": "true"}'),
    ]
    # Only gateways change passwords (the user's own act, through the screens).
    assert (
        _refused(
            stack.api(stack.operator).ChangePassword,
            pb.ChangePasswordRequest(user_id="acuser01", current_password=NEW, new_password=WRONG),
        )[0]
        is grpc.StatusCode.PERMISSION_DENIED
    )


def test_an_immediate_resend_is_refused_with_the_instant_to_try_again(
    stack: Stack, smtp: SmtpSink
) -> None:
    new_org(stack, smtp, "acmast02")
    password = choose_password(stack, "acuser02", _general(stack, "acmast02", "acuser02"))
    gateway = stack.api(stack.gateway)
    before = datetime.now(UTC)
    started = gateway.StartAuthentication(
        pb.StartAuthenticationRequest(user_id="acuser02", password=password)
    )
    with pytest.raises(grpc.RpcError) as caught:
        stack.api(stack.gateway, 1).ResendCode(
            pb.ResendCodeRequest(session_handle=started.session_handle)
        )
    problem = api_error(caught.value)
    assert (problem.code, problem.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESEND_LIMITED")
    retry_at = datetime.fromisoformat(problem.metadata["retry_at"])
    assert before + RESEND_INTERVAL <= retry_at <= datetime.now(UTC) + RESEND_INTERVAL
    assert 1 <= int(problem.metadata["retry_after_seconds"]) <= 60
    assert _refused(gateway.ResendCode, pb.ResendCodeRequest(session_handle="nope")) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CODE_EXPIRED",
    )


def test_resend_with_a_short_interval_replaces_the_code_until_the_window_is_full(
    tmp_path: Path, redis_server: str, smtp: SmtpSink
) -> None:
    """A 1-second resend interval by configuration, so the limit per window is reached in
    real time; the window stays SPEC's 30 minutes."""
    short = start_stack(tmp_path, redis_server, smtp, count=2, CA_RESEND_INTERVAL_SECONDS="1")
    try:
        new_org(short, smtp, "acmast03")
        password = choose_password(short, "acuser03", _general(short, "acmast03", "acuser03"))
        gateway = short.api(short.gateway)
        rules = gateway.GetRules(pb.GetRulesRequest())
        assert rules.resend_interval.ToTimedelta() == timedelta(seconds=1)
        assert (rules.resends_per_window, rules.resend_window.ToTimedelta()) == (
            RESENDS_PER_WINDOW,
            RESEND_WINDOW,
        )
        email = "acuser03@example.jp"
        before = len(smtp.code_mails(email))
        started = gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id="acuser03", password=password)
        )
        codes = [smtp.wait_for_code(email, before)]
        first_resend: tuple[datetime, datetime] | None = None  # (before, after) the call
        for index in range(RESENDS_PER_WINDOW):
            time.sleep(1.1)
            count = len(smtp.code_mails(email))
            before = datetime.now(UTC)
            resent = short.api(short.gateway, index % 2).ResendCode(
                pb.ResendCodeRequest(session_handle=started.session_handle)
            )
            first_resend = first_resend or (before, datetime.now(UTC))
            assert resent.session_handle == started.session_handle
            assert resent.masked_email == "a***@example.jp"
            codes.append(smtp.wait_for_code(email, count))
        time.sleep(1.1)
        with pytest.raises(grpc.RpcError) as caught:
            gateway.ResendCode(pb.ResendCodeRequest(session_handle=started.session_handle))
        problem = api_error(caught.value)
        assert problem.reason == "RESEND_LIMITED"
        retry_at = datetime.fromisoformat(problem.metadata["retry_at"])
        assert first_resend is not None
        second = timedelta(seconds=1)  # the CA's clock and this one read whole instants
        assert first_resend[0] - second <= retry_at - RESEND_WINDOW <= first_resend[1] + second
        # Only the last code works; an earlier one is a wrong code now.
        if codes[0] != codes[-1]:
            assert _refused(
                gateway.VerifyCode,
                pb.VerifyCodeRequest(session_handle=started.session_handle, code=codes[0]),
            ) == (grpc.StatusCode.INVALID_ARGUMENT, "CODE_INVALID")
        verified = gateway.VerifyCode(
            pb.VerifyCodeRequest(session_handle=started.session_handle, code=codes[-1])
        )
        assert verified.user_id == "acuser03"
    finally:
        for server in short.servers:
            server.stop()


def test_a_master_sees_certificates_and_revokes_only_in_its_organisation(
    stack: Stack, smtp: SmtpSink
) -> None:
    new_org(stack, smtp, "acmast04")
    new_org(stack, smtp, "acmast05")
    gateway, operator = stack.api(stack.gateway), stack.api(stack.operator)
    password = choose_password(stack, "acuser04", _general(stack, "acmast04", "acuser04"))
    _general(stack, "acmast04", "acuser4b")
    other = choose_password(stack, "acuser05", _general(stack, "acmast05", "acuser05"))
    issued = {}
    for user_id, secret in (("acuser04", password), ("acuser05", other)):
        ticket = authenticate(stack, smtp, user_id, secret, f"{user_id}@example.jp")
        issued[user_id] = gateway.IssueCertificate(
            pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=secret)
        ).certificate

    listed = gateway.ListUsers(pb.ListUsersRequest(acting_user_id="acmast04")).users
    summaries = {u.user_id: u.certificate for u in listed}
    assert set(summaries) == {"acuser04", "acuser4b", "acmast04"}
    mine = summaries["acuser04"]
    assert (mine.holding, mine.serial_number, mine.renewal_open) == (
        pb.CERTIFICATE_HOLDING_VALID,
        issued["acuser04"].serial_number,
        False,
    )
    assert mine.not_after == issued["acuser04"].not_after and mine.HasField("renewal_opens_at")
    assert summaries["acuser4b"].holding == pb.CERTIFICATE_HOLDING_NONE
    changing = {u.user_id: u.password_change_required for u in listed}
    assert changing == {"acuser04": False, "acuser4b": True, "acmast04": False}

    def revoke(acting: str, user_id: str, cause: int) -> tuple[grpc.StatusCode, str]:
        return _refused(
            gateway.RevokeUserCertificates,
            pb.RevokeUserCertificatesRequest(acting_user_id=acting, user_id=user_id, cause=cause),
        )

    lost = pb.REVOCATION_CAUSE_LOST_PC
    assert revoke("acmast04", "acuser05", lost) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    assert revoke("acmast04", "acmast05", lost) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    assert revoke("acmast04", "acmast04", lost)[1] == "PERMISSION_DENIED"
    assert revoke("acmast04", "acuser4b", lost) == (
        grpc.StatusCode.NOT_FOUND,
        "CERTIFICATE_NOT_FOUND",
    )
    assert revoke("acmast04", "acuser04", 0) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REASON")
    assert revoke("", "acuser04", lost)[0] is grpc.StatusCode.PERMISSION_DENIED  # gateway acts
    other_cert = operator.GetCertificate(
        pb.GetCertificateRequest(serial_number=issued["acuser05"].serial_number)
    )
    assert other_cert.status == pb.CERTIFICATE_STATUS_VALID

    answer = gateway.RevokeUserCertificates(
        pb.RevokeUserCertificatesRequest(acting_user_id="acmast04", user_id="acuser04", cause=lost)
    )
    (revocation,) = answer.revocations
    assert (revocation.serial_number, revocation.reason) == (
        issued["acuser04"].serial_number,
        "key_compromise",
    )
    audited = operator.ListAudit(pb.ListAuditRequest(user_id="acuser04", action="revoke"))
    assert [r.actor for r in audited.records] == ["acmast04"]
    listed = gateway.ListUsers(pb.ListUsersRequest(acting_user_id="acmast04")).users
    (after,) = [u.certificate for u in listed if u.user_id == "acuser04"]
    assert (after.holding, after.renewal_open) == (pb.CERTIFICATE_HOLDING_REVOKED, True)
    # The user re-issues at once (SPEC C6); the master resets a forgotten password, shown
    # once, which the user must replace again.
    reset = gateway.ResetPassword(
        pb.ResetPasswordRequest(user_id="acuser04", acting_user_id="acmast04")
    )
    assert _refused(
        gateway.StartAuthentication,
        pb.StartAuthenticationRequest(user_id="acuser04", password=reset.initial_password),
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "PASSWORD_CHANGE_REQUIRED")
    foreign = pb.ResetPasswordRequest(user_id="acuser05", acting_user_id="acmast04")
    assert _refused(gateway.ResetPassword, foreign) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    reset_audit = operator.ListAudit(
        pb.ListAuditRequest(user_id="acuser04", action="reset_password")
    )
    assert [r.actor for r in reset_audit.records] == ["acmast04"]
    renewed = choose_password(stack, "acuser04", reset.initial_password, NEW)
    authenticate(stack, smtp, "acuser04", renewed, "acuser04@example.jp")
