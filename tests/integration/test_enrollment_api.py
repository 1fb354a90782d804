"""Enrollment end to end over gRPC/mTLS: real ca-service processes, a real Redis, a real SMTP
server (aiosmtpd) whose mail carries the code, openssl reading the PKCS#12."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import redis

from ca_service.api import pb
from ca_service.client import aio_secure_channel, api_error, stub
from ca_service.domain.validity import renewal_opens_at
from tests.smtp_sink import SmtpSink, code_from
from tests.stack_support import (
    Stack,
    authenticate,
    choose_password,
    new_org,
    reason_of,
    start_stack,
)
from tests.support import make_csr, run, tool


def test_master_registers_a_general_user_who_enrolls(
    stack: Stack, smtp: SmtpSink, tmp_path: Path
) -> None:
    organization_id, _ = new_org(stack, smtp, "master01")
    gateway = stack.api(stack.gateway)
    created = gateway.CreateUser(
        pb.CreateUserRequest(
            acting_user_id="master01", user_id="staff001", email="staff001@example.jp"
        )
    )
    assert created.user.organization_id == organization_id
    password = choose_password(stack, "staff001", created.initial_password)

    ticket = authenticate(stack, smtp, "staff001", password, "staff001@example.jp")
    issued = gateway.IssueCertificate(
        pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password)
    )
    assert re.fullmatch(r"staff001\d{14}\.p12", issued.file_name)
    p12 = tmp_path / issued.file_name
    p12.write_bytes(issued.pkcs12)
    dump = run(
        ["openssl", "pkcs12", "-in", str(p12), "-passin", "env:P", "-nodes"],
        {"P": password, "PATH": "/usr/bin:/bin"},
    )
    assert "CN=staff001" in dump.stdout.replace(" = ", "=")

    with pytest.raises(grpc.RpcError) as caught:  # the ticket is single use
        gateway.IssueCertificate(
            pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password)
        )
    assert reason_of(caught.value) == (grpc.StatusCode.FAILED_PRECONDITION, "TICKET_INVALID")

    # SPEC C2: with a valid certificate, authentication answers ALREADY_ISSUED.
    with pytest.raises(grpc.RpcError) as caught:
        gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id="staff001", password=password)
        )
    problem = api_error(caught.value)
    assert (problem.code, problem.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_ISSUED")
    not_after = issued.certificate.not_after.ToDatetime(tzinfo=UTC)
    assert problem.metadata["renewal_opens_at"] == renewal_opens_at(not_after).isoformat()

    # A gateway cannot issue without a ticket.
    with pytest.raises(grpc.RpcError) as caught:
        gateway.IssueCertificate(
            pb.IssueCertificateRequest(
                user_id="staff001", organization="x", pkcs12_password=password
            )
        )
    assert reason_of(caught.value) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


def test_enrollment_with_a_csr(stack: Stack, smtp: SmtpSink) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    new_org(stack, smtp, "master02")
    gateway = stack.api(stack.gateway)
    created = gateway.CreateUser(
        pb.CreateUserRequest(
            acting_user_id="master02", user_id="staff002", email="staff002@example.jp"
        )
    )
    password = choose_password(stack, "staff002", created.initial_password)
    ticket = authenticate(stack, smtp, "staff002", password, "staff002@example.jp")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key=key)
    issued = gateway.IssueCertificate(pb.IssueCertificateRequest(issuance_ticket=ticket, csr=csr))
    assert issued.pkcs12 == b"" and issued.certificate.user_id == "staff002"
    assert x509.load_der_x509_certificate(issued.certificate.der).public_key() == key.public_key()


def test_lock_mail_state_and_unlock_by_master(stack: Stack, smtp: SmtpSink) -> None:
    new_org(stack, smtp, "master03")
    gateway, operator = stack.api(stack.gateway), stack.api(stack.operator)
    created = gateway.CreateUser(
        pb.CreateUserRequest(
            acting_user_id="master03", user_id="staff003", email="staff003@example.jp"
        )
    )
    password = choose_password(stack, "staff003", created.initial_password)
    for attempt in range(6):
        with pytest.raises(grpc.RpcError) as caught:
            gateway.StartAuthentication(
                pb.StartAuthenticationRequest(user_id="staff003", password="Wr0ng-pass!")
            )
        expected = "LOCKED" if attempt == 5 else "INVALID_CREDENTIALS"
        assert reason_of(caught.value)[1] == expected
    assert "locked_until" in api_error(caught.value).metadata
    smtp.wait_for(lambda m: "staff003@" in str(m["To"]) and "ロック" in str(m["Subject"]))
    shown = operator.GetUser(pb.GetUserRequest(user_id="staff003"))
    assert shown.state == pb.USER_STATE_LOCKED and shown.lock_count == 1

    # Another organisation's master sees nothing; a master cannot unlock a master.
    new_org(stack, smtp, "master04")
    with pytest.raises(grpc.RpcError) as caught:
        gateway.UnlockUser(pb.UnlockUserRequest(user_id="staff003", acting_user_id="master04"))
    assert reason_of(caught.value) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    with pytest.raises(grpc.RpcError) as caught:
        gateway.GetUser(pb.GetUserRequest(user_id="staff003"))  # no acting user
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED

    unlocked = gateway.UnlockUser(
        pb.UnlockUserRequest(user_id="staff003", acting_user_id="master03")
    )
    assert unlocked.state == pb.USER_STATE_ACTIVE and unlocked.lock_count == 0
    smtp.wait_for(lambda m: "staff003@" in str(m["To"]) and "解除" in str(m["Subject"]))
    authenticate(stack, smtp, "staff003", password, "staff003@example.jp")


def test_parallel_wrong_passwords_on_two_processes_lock_exactly_once(
    stack: Stack, smtp: SmtpSink
) -> None:
    new_org(stack, smtp, "master05")
    gateway = stack.api(stack.gateway)
    gateway.CreateUser(
        pb.CreateUserRequest(
            acting_user_id="master05", user_id="staff005", email="staff005@example.jp"
        )
    )

    async def fire() -> list[str]:
        channels = [aio_secure_channel(server.address, stack.gateway) for server in stack.servers]
        apis = [stub(channel) for channel in channels]

        async def attempt(index: int) -> str:
            try:
                await apis[index % 2].StartAuthentication(
                    pb.StartAuthenticationRequest(user_id="staff005", password=f"Wr0ng-{index}!")
                )
            except grpc.aio.AioRpcError as error:
                return api_error(error).reason
            return "OK"

        try:
            return list(await asyncio.gather(*(attempt(i) for i in range(60))))
        finally:
            for channel in channels:
                await channel.close()

    reasons = asyncio.run(fire())
    assert set(reasons) <= {"INVALID_CREDENTIALS", "LOCKED"}
    # Exactly the 6 attempts that reached the counter before the lock were wrong passwords.
    assert reasons.count("INVALID_CREDENTIALS") + reasons.count("LOCKED") == 60
    shown = stack.api(stack.operator).GetUser(pb.GetUserRequest(user_id="staff005"))
    assert (shown.state, shown.lock_count, shown.consecutive_failures) == (
        pb.USER_STATE_LOCKED,
        1,
        0,
    )
    assert reasons.count("INVALID_CREDENTIALS") == 5
    mails = smtp.wait_for(lambda m: "staff005@" in str(m["To"]) and "ロック" in str(m["Subject"]))
    assert len(mails) == 1


def test_parallel_wrong_codes_on_two_processes_count_exactly_five(
    stack: Stack, smtp: SmtpSink
) -> None:
    new_org(stack, smtp, "master06")
    gateway = stack.api(stack.gateway)
    created = gateway.CreateUser(
        pb.CreateUserRequest(
            acting_user_id="master06", user_id="staff006", email="staff006@example.jp"
        )
    )
    password = choose_password(stack, "staff006", created.initial_password)
    started = gateway.StartAuthentication(
        pb.StartAuthenticationRequest(user_id="staff006", password=password)
    )
    mail = smtp.wait_for(lambda m: "staff006@" in str(m["To"]))[-1]
    code = code_from(mail)
    wrong = f"{(int(code) + 7) % 10**6:06d}"

    async def fire() -> list[str]:
        channels = [aio_secure_channel(server.address, stack.gateway) for server in stack.servers]
        apis = [stub(channel) for channel in channels]

        async def attempt(index: int) -> str:
            try:
                await apis[index % 2].VerifyCode(
                    pb.VerifyCodeRequest(session_handle=started.session_handle, code=wrong)
                )
            except grpc.aio.AioRpcError as error:
                return api_error(error).reason
            return "OK"

        try:
            return list(await asyncio.gather(*(attempt(i) for i in range(20))))
        finally:
            for channel in channels:
                await channel.close()

    reasons = asyncio.run(fire())
    assert reasons.count("CODE_INVALID") == 5
    assert reasons.count("CODE_EXPIRED") == 15
    with pytest.raises(grpc.RpcError) as caught:  # the right code no longer works
        gateway.VerifyCode(pb.VerifyCodeRequest(session_handle=started.session_handle, code=code))
    assert reason_of(caught.value)[1] == "CODE_EXPIRED"


def test_admin_commands_for_accounts_and_mail(stack: Stack, smtp: SmtpSink) -> None:
    env = dict(stack.env, CA_GRPC_ADDRESS=stack.servers[0].address)
    created = run(
        [
            tool("ca-admin"),
            "--json",
            "org",
            "create",
            "--name",
            "管理テスト株式会社",
            "--id",
            "ADMIN-ORG",
        ],
        env,
    ).stdout
    assert '"organization_id": "ADMIN-ORG"' in created
    human = run(
        [
            tool("ca-admin"),
            "user",
            "create",
            "--org",
            "ADMIN-ORG",
            "--user",
            "admin007",
            "--email",
            "admin007@example.jp",
        ],
        env,
    ).stdout
    assert "initial password (shown once):" in human and "general" in human
    shown = run([tool("ca-admin"), "user", "show", "admin007"], env).stdout
    assert "state:        active" in shown
    assert "password:     given; the user must change it" in shown  # SPEC A5
    reset = run([tool("ca-admin"), "user", "reset-password", "admin007"], env).stdout
    assert "new initial password for admin007" in reset
    listed = run([tool("ca-admin"), "user", "list", "--org", "ADMIN-ORG"], env).stdout
    assert "admin007" in listed
    unlocked = run([tool("ca-admin"), "user", "unlock", "admin007"], env).stdout
    assert "state:        active" in unlocked
    mail = run([tool("ca-admin"), "mail", "list", "--limit", "200"], env).stdout
    # Earlier tests in this module sent codes; unlocking admin007 (never locked) sent nothing.
    assert " sent " in mail and " code " in mail and "admin007@example.jp" not in mail
    bad = run(
        [tool("ca-admin"), "user", "create", "--org", "ADMIN-ORG", "--user", "x", "--email", "bad"],
        env,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "ca-admin: error: user ID must be 6-12 characters long (INVALID_USER_ID)"
    )


def test_no_secret_in_logs_or_redis(stack: Stack, smtp: SmtpSink) -> None:
    """Runs a whole enrollment with known secrets, then greps every log line and every
    Redis key and value for them."""
    operator, gateway = stack.api(stack.operator), stack.api(stack.gateway)
    created = operator.CreateOrganization(pb.CreateOrganizationRequest(name="秘密テスト"))
    gateway.RegisterMaster(
        pb.RegisterMasterRequest(
            organization_id=created.organization.organization_id,
            initial_password=created.initial_password,
            user_id="secret01",
            password="S3cret-Mstr!",
            email="secret01@example.jp",
        )
    )
    started = gateway.StartAuthentication(
        pb.StartAuthenticationRequest(user_id="secret01", password="S3cret-Mstr!")
    )
    code = code_from(smtp.wait_for(lambda m: "secret01@" in str(m["To"]))[-1])
    verified = gateway.VerifyCode(
        pb.VerifyCodeRequest(session_handle=started.session_handle, code=code)
    )
    for _ in range(6):
        with pytest.raises(grpc.RpcError):
            gateway.StartAuthentication(
                pb.StartAuthenticationRequest(user_id="secret01", password="Wr0ng-Secret9")
            )
    secrets_used = [
        "S3cret-Mstr!",
        "Wr0ng-Secret9",
        created.initial_password,
        code,
        started.session_handle,
        verified.issuance_ticket,
    ]
    client = redis.Redis.from_url(stack.redis_url)
    try:
        dump = []
        for key in client.scan_iter(match=f"{stack.prefix}*"):
            dump.append(key)
            kind = client.type(key)
            if kind == b"hash":
                dump += [item for pair in client.hgetall(key).items() for item in pair]
            elif kind == b"string":
                dump.append(client.get(key) or b"")
    finally:
        client.close()
    redis_text = b"\n".join(dump).decode(errors="replace")
    assert redis_text, "the scenario should have written to Redis"
    logs = "\n".join(path.read_text(errors="replace") for path in stack.logs)
    for secret in secrets_used:
        assert secret not in redis_text, f"a secret is in Redis: {secret[:3]}…"
        assert secret not in logs, f"a secret is in the logs: {secret[:3]}…"


def test_real_short_lock_duration_three_locks_block(
    tmp_path: Path, redis_server: str, smtp: SmtpSink
) -> None:
    """Durations set by configuration: a 2-second lock, so the 3rd lock (BLOCKED) is
    reached in real time."""
    short = start_stack(tmp_path, redis_server, smtp, count=1, CA_LOCK_SECONDS="2")
    try:
        new_org(short, smtp, "master09")
        gateway = short.api(short.gateway)
        created = gateway.CreateUser(
            pb.CreateUserRequest(
                acting_user_id="master09", user_id="staff009", email="staff009@example.jp"
            )
        )
        password = choose_password(short, "staff009", created.initial_password)
        outcomes = []
        for lock in range(3):
            for _ in range(6):
                with pytest.raises(grpc.RpcError) as caught:
                    gateway.StartAuthentication(
                        pb.StartAuthenticationRequest(user_id="staff009", password="Wr0ng-pass!")
                    )
            outcomes.append(reason_of(caught.value)[1])
            if lock < 2:
                import time

                time.sleep(3.1)  # 2 s, stored rounded up to the whole second
        assert outcomes == ["LOCKED", "LOCKED", "BLOCKED"]
        with pytest.raises(grpc.RpcError) as caught:  # even the right password
            gateway.StartAuthentication(
                pb.StartAuthenticationRequest(user_id="staff009", password=password)
            )
        assert reason_of(caught.value)[1] == "BLOCKED"
        smtp.wait_for(lambda m: "staff009@" in str(m["To"]) and "閉塞" in str(m["Subject"]))
        shown = short.api(short.operator).GetUser(pb.GetUserRequest(user_id="staff009"))
        assert shown.state == pb.USER_STATE_BLOCKED and shown.lock_count == 3
        gateway.UnlockUser(pb.UnlockUserRequest(user_id="staff009", acting_user_id="master09"))
        authenticate(short, smtp, "staff009", password, "staff009@example.jp")
    finally:
        for server in short.servers:
            server.stop()


def test_reset_master_password_with_a_new_initial_password(stack: Stack, smtp: SmtpSink) -> None:
    organization_id, email = new_org(stack, smtp, "master10")
    operator, gateway = stack.api(stack.operator), stack.api(stack.gateway)
    with pytest.raises(grpc.RpcError) as caught:  # masters are reset by the operator only
        gateway.ResetPassword(
            pb.ResetPasswordRequest(user_id="master10", acting_user_id="master10")
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    reset = operator.ResetPassword(pb.ResetPasswordRequest(user_id="master10"))
    assert reset.HasField("expires_at")
    registered = gateway.RegisterMaster(
        pb.RegisterMasterRequest(
            organization_id=organization_id,
            initial_password=reset.initial_password,
            user_id="ignored1",
            password="N3w-Master!",
            email=email,
        )
    )
    assert registered.user_id == "master10"
    authenticate(stack, smtp, "master10", "N3w-Master!", email)
    assert datetime.now(UTC) < reset.expires_at.ToDatetime(tzinfo=UTC)
