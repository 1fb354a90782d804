"""A running stack for API tests: ca-service processes with a real Redis and SMTP server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import api_error, secure_channel, stub
from ca_service.shared.credentials import ClientCredential
from tests.smtp_sink import SmtpSink
from tests.support import CaProcess, ca_env, init_ca, run, tool

MASTER_PASSWORD = "Mast3r-Pass!"


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    servers: list[CaProcess]
    gateway: ClientCredential
    operator: ClientCredential
    prefix: str
    redis_url: str
    logs: list[Path]

    def api(self, credential: ClientCredential, index: int = 0) -> object:
        return stub(secure_channel(self.servers[index].address, credential))


def start_stack(tmp: Path, redis_url: str, smtp: SmtpSink, count: int = 2, **extra: str) -> Stack:
    data_dir = tmp / "ca"
    init_ca(data_dir)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    env = ca_env(
        data_dir,
        CA_REDIS_URL=redis_url,
        CA_REDIS_PREFIX=prefix,
        CA_SMTP_PORT=str(smtp.port),
        CA_MAIL_POLL_SECONDS="1",
        CA_MAIL_FROM="ca@bank.example.jp",
        **extra,
    )
    run([tool("ca-service"), "credential", "--name", "gw", "--role", "gateway"], env)
    logs = [tmp / f"ca{i}.log" for i in range(count)]
    servers: list[CaProcess] = []
    try:
        for log in logs:
            servers.append(CaProcess(data_dir, env, log).start())
    except BaseException:
        for server in servers:  # none may outlive a failed start
            server.stop()
        raise
    files = CaFiles(data_dir)
    return Stack(
        data_dir,
        env,
        servers,
        files.client_credential("gw"),
        files.client_credential("operator"),
        prefix,
        redis_url,
        logs,
    )


def reason_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    problem = api_error(error)
    return problem.code, problem.reason


def new_org(stack: Stack, smtp: SmtpSink, master: str) -> tuple[str, str]:
    """Creates an organisation and registers its master; returns (org ID, master e-mail)."""
    operator, gateway = stack.api(stack.operator), stack.api(stack.gateway)
    created = operator.CreateOrganization(pb.CreateOrganizationRequest(name=f"{master} 株式会社"))
    email = f"{master}@example.jp"
    registered = gateway.RegisterMaster(
        pb.RegisterMasterRequest(
            organization_id=created.organization.organization_id,
            initial_password=created.initial_password,
            user_id=master,
            password=MASTER_PASSWORD,
            email=email,
        )
    )
    assert registered.role == pb.USER_ROLE_MASTER and registered.state == pb.USER_STATE_ACTIVE
    with pytest.raises(grpc.RpcError) as caught:  # the initial password is single use
        gateway.RegisterMaster(
            pb.RegisterMasterRequest(
                organization_id=created.organization.organization_id,
                initial_password=created.initial_password,
                user_id=master + "x",
                password=MASTER_PASSWORD,
                email=email,
            )
        )
    assert reason_of(caught.value) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    return created.organization.organization_id, email


def authenticate(
    stack: Stack, smtp: SmtpSink, user_id: str, password: str, email: str, index: int = 0
) -> str:
    gateway = stack.api(stack.gateway, index)
    before = len(smtp.code_mails(email))
    started = gateway.StartAuthentication(
        pb.StartAuthenticationRequest(user_id=user_id, password=password)
    )
    assert started.masked_email == f"{email[0]}***@{email.split('@')[1]}"
    code = smtp.wait_for_code(email, before)
    verified = gateway.VerifyCode(
        pb.VerifyCodeRequest(session_handle=started.session_handle, code=code)
    )
    assert verified.user_id == user_id
    return str(verified.issuance_ticket)


# What the general users of these tests choose at their initial registration (SPEC A3, A5).
USER_PASSWORD = "Us3r-Chosen!"


def choose_password(stack: Stack, user_id: str, given: str, password: str = USER_PASSWORD) -> str:
    """一般ユーザーの初期登録's first step: the user replaces the password its master gave
    (which opens neither issuance nor login) with its own; returns the new password."""
    gateway = stack.api(stack.gateway)
    with pytest.raises(grpc.RpcError) as caught:
        gateway.StartAuthentication(pb.StartAuthenticationRequest(user_id=user_id, password=given))
    assert reason_of(caught.value) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PASSWORD_CHANGE_REQUIRED",
    )
    gateway.ChangePassword(
        pb.ChangePasswordRequest(user_id=user_id, current_password=given, new_password=password)
    )
    return password
