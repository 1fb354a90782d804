"""E-mail verification (SPEC D1) and the portal's completion mail over gRPC/mTLS: two real
ca-service processes on one store, a real Redis, the mail through the outbox to a real
SMTP server. The link in the delivered mail works once, from either process; the old
address is told; the token is in no log, and not in the store in clear."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import aio_secure_channel, stub
from ca_service.shared.credentials import ClientCredential
from tests.smtp_sink import SmtpSink
from tests.stack_support import Stack, new_org, reason_of
from tests.support import run, tool

GATEWAY_BASE = "https://gw.example.jp/email/verify"
PORTAL_BASE = "https://portal.example.jp/procedures/verify"
TOKEN = re.compile(r"\?token=([A-Za-z0-9_-]{43})\n")


@pytest.fixture(scope="module")
def portal(stack: Stack) -> ClientCredential:
    run([tool("ca-service"), "credential", "--name", "portal", "--role", "portal"], stack.env)
    return CaFiles(stack.data_dir).client_credential("portal")


def _link_mail(smtp: SmtpSink, address: str, count: int = 1) -> EmailMessage:
    return smtp.wait_for(
        lambda m: address in str(m["To"]) and "メール認証URL" in str(m["Subject"]), count=count
    )[-1]


def _token(message: EmailMessage, base: str) -> str:
    body = message.get_content()
    assert f"{base}?token=" in body, body
    match = TOKEN.search(body)
    assert match, body
    return match.group(1)


def _refusal(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)  # type: ignore[operator]
    return reason_of(caught.value)


def test_a_user_changes_address_through_the_link_once(stack: Stack, smtp: SmtpSink) -> None:
    _, old = new_org(stack, smtp, "mailer01")
    new = "mailer01.new@example.jp"
    gateway, other = stack.api(stack.gateway, 0), stack.api(stack.gateway, 1)
    requested = gateway.RequestEmailVerification(
        pb.RequestEmailVerificationRequest(
            purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
            user_id="mailer01",
            address=new,
            link_base_url=GATEWAY_BASE,
        )
    )
    assert requested.masked_address == "m***@example.jp"
    expires = requested.expires_at.ToDatetime(tzinfo=UTC)
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    token = _token(_link_mail(smtp, new), GATEWAY_BASE)
    user = pb.GetUserRequest(user_id="mailer01", acting_user_id="mailer01")
    assert gateway.GetUser(user).email == old  # not before the link is opened

    looked = other.ConfirmEmailVerification(
        pb.ConfirmEmailVerificationRequest(token=token, check_only=True)
    )
    assert (looked.address, looked.user_id) == (new, "mailer01")
    assert gateway.GetUser(user).email == old  # a look changes nothing
    # Opened through the other process: the store is the one truth.
    confirmed = other.ConfirmEmailVerification(pb.ConfirmEmailVerificationRequest(token=token))
    assert (confirmed.purpose, confirmed.address, confirmed.user_id) == (
        pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
        new,
        "mailer01",
    )
    assert gateway.GetUser(user).email == new
    notice = smtp.wait_for(lambda m: old in str(m["To"]) and "変更のお知らせ" in str(m["Subject"]))
    assert "m***@example.jp" in notice[0].get_content()
    confirm = pb.ConfirmEmailVerificationRequest(token=token)
    for api in (gateway, other):
        assert _refusal(api.ConfirmEmailVerification, confirm) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "EMAIL_LINK_USED",
        )
    unknown = pb.ConfirmEmailVerificationRequest(token="A" * 43)
    assert _refusal(gateway.ConfirmEmailVerification, unknown) == (
        grpc.StatusCode.NOT_FOUND,
        "EMAIL_LINK_UNKNOWN",
    )
    # The operator (ca-admin user set-email) asks too; the new link replaces no other user's.
    operator = stack.api(stack.operator)
    operator.RequestEmailVerification(
        pb.RequestEmailVerificationRequest(
            purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
            user_id="mailer01",
            address=old,
            link_base_url=GATEWAY_BASE,
        )
    )
    _link_mail(smtp, old)
    assert _refusal(
        operator.RequestEmailVerification,
        pb.RequestEmailVerificationRequest(
            purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
            user_id="mailer01",
            address=new,
            link_base_url=GATEWAY_BASE,
        ),
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "EMAIL_UNCHANGED")


async def test_concurrent_opens_in_two_processes_succeed_once(stack: Stack, smtp: SmtpSink) -> None:
    new_org(stack, smtp, "racer001")
    address = "racer001.new@example.jp"
    stack.api(stack.gateway).RequestEmailVerification(
        pb.RequestEmailVerificationRequest(
            purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
            user_id="racer001",
            address=address,
            link_base_url=GATEWAY_BASE,
        )
    )
    token = _token(_link_mail(smtp, address), GATEWAY_BASE)
    channels = [aio_secure_channel(s.address, stack.gateway) for s in stack.servers]
    try:
        calls = [
            stub(channel).ConfirmEmailVerification(pb.ConfirmEmailVerificationRequest(token=token))
            for channel in channels
            for _ in range(3)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for channel in channels:
            await channel.close()
    successes = [r for r in results if isinstance(r, pb.ConfirmEmailVerificationResponse)]
    refusals = [reason_of(r) for r in results if isinstance(r, grpc.RpcError)]
    assert len(successes) == 1, results
    assert refusals == [(grpc.StatusCode.FAILED_PRECONDITION, "EMAIL_LINK_USED")] * 5


def test_portal_registration_and_completion_mail(
    stack: Stack, smtp: SmtpSink, portal: ClientCredential
) -> None:
    api, gateway = stack.api(portal), stack.api(stack.gateway)
    rules = api.GetRules(pb.GetRulesRequest())
    assert rules.email_link_validity.ToTimedelta() == timedelta(hours=24)
    api.RequestEmailVerification(
        pb.RequestEmailVerificationRequest(
            purpose=pb.EMAIL_PURPOSE_PORTAL_REGISTRATION,
            address="taro_kyosai@example.jp",
            link_base_url=PORTAL_BASE,
        )
    )
    mail = _link_mail(smtp, "taro_kyosai@example.jp")
    assert str(mail["Subject"]) == "【オンライン手続きポータル】メール認証URLのご案内"
    token = _token(mail, PORTAL_BASE)
    confirm = pb.ConfirmEmailVerificationRequest(token=token)
    # A gateway does not see the portal's links (and does not use them up).
    assert _refusal(gateway.ConfirmEmailVerification, confirm) == (
        grpc.StatusCode.NOT_FOUND,
        "EMAIL_LINK_UNKNOWN",
    )
    confirmed = api.ConfirmEmailVerification(confirm)
    assert (confirmed.purpose, confirmed.address, confirmed.user_id) == (
        pb.EMAIL_PURPOSE_PORTAL_REGISTRATION,
        "taro_kyosai@example.jp",
        "",
    )
    submitted = Timestamp(seconds=int(datetime(2026, 11, 21, 1, 20, 30, tzinfo=UTC).timestamp()))
    completion = pb.SendProcedureCompletionMailRequest(
        address="taro_kyosai@example.jp",
        receipt_number="S0101-20261121102030-00042",
        submitted_at=submitted,
    )
    assert api.SendProcedureCompletionMail(completion).queued
    assert not api.SendProcedureCompletionMail(completion).queued  # a retried call
    (done,) = smtp.wait_for(lambda m: "受付完了" in str(m["Subject"]))
    body = done.get_content()
    assert "受付番号：S0101-20261121102030-00042" in body
    assert "受付日時：2026年11月21日 10:20" in body


def test_roles(stack: Stack, portal: ClientCredential) -> None:
    api, gateway = stack.api(portal), stack.api(stack.gateway)
    denied = (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    change = pb.RequestEmailVerificationRequest(
        purpose=pb.EMAIL_PURPOSE_USER_EMAIL_CHANGE,
        user_id="mailer01",
        address="x@example.jp",
        link_base_url=GATEWAY_BASE,
    )
    assert _refusal(api.RequestEmailVerification, change) == denied
    registration = pb.RequestEmailVerificationRequest(
        purpose=pb.EMAIL_PURPOSE_PORTAL_REGISTRATION,
        address="x@example.jp",
        link_base_url=PORTAL_BASE,
    )
    assert _refusal(gateway.RequestEmailVerification, registration) == denied
    completion = pb.SendProcedureCompletionMailRequest(
        address="x@example.jp",
        receipt_number="S0101-20261121102030-00043",
        submitted_at=Timestamp(seconds=1),
    )
    assert _refusal(gateway.SendProcedureCompletionMail, completion) == denied
    # The portal is no certificate caller.
    assert _refusal(api.GetCertificate, pb.GetCertificateRequest(serial_number="01")) == denied
    assert (
        _refusal(
            api.IssueCertificate,
            pb.IssueCertificateRequest(user_id="mailer01", pkcs12_password="x"),
        )
        == denied
    )
    assert _refusal(api.ListUsers, pb.ListUsersRequest(organization_id="x")) == denied
    assert len(api.GetCaChain(pb.GetCaChainRequest()).certificates) == 2
    assert _refusal(
        api.RequestEmailVerification,
        pb.RequestEmailVerificationRequest(address="x@example.jp", link_base_url=PORTAL_BASE),
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_ca_admin_user_set_email(stack: Stack, smtp: SmtpSink) -> None:
    _, old = new_org(stack, smtp, "admin001")
    new = "admin001.new@example.jp"

    def admin(*args: str) -> str:
        command = [tool("ca-admin"), "--address", stack.servers[0].address, *args]
        return run(command, stack.env).stdout

    shown = json.loads(
        admin(
            "--json", "user", "set-email", "admin001", "--email", new, "--link-base", GATEWAY_BASE
        )
    )
    assert shown["sent_to"] == "a***@example.jp" and shown["user_id"] == "admin001"
    assert json.loads(admin("--json", "user", "show", "admin001"))["email"] == old
    token = _token(_link_mail(smtp, new), GATEWAY_BASE)
    stack.api(stack.gateway).ConfirmEmailVerification(
        pb.ConfirmEmailVerificationRequest(token=token)
    )
    assert json.loads(admin("--json", "user", "show", "admin001"))["email"] == new
    refused = run(
        [
            tool("ca-admin"),
            "--address",
            stack.servers[0].address,
            "user",
            "set-email",
            "admin001",
            "--email",
            new,
            "--link-base",
            GATEWAY_BASE,
        ],
        stack.env,
        check=False,
    )
    assert refused.returncode == 1 and refused.stderr.strip().endswith("(EMAIL_UNCHANGED)")


def test_no_token_in_the_logs_or_in_the_store(stack: Stack, smtp: SmtpSink) -> None:
    """Runs last in this module: every token mailed so far."""
    tokens = {
        match.group(1)
        for message in list(smtp.messages)
        if "メール認証URL" in str(message["Subject"])
        for match in [TOKEN.search(message.get_content())]
        if match
    }
    assert len(tokens) >= 4
    logs = "".join(path.read_text(errors="replace") for path in stack.logs)
    assert "published base CRL" in logs  # the servers' whole output
    database = sqlite3.connect(stack.data_dir / "ca.db")
    try:
        dump = "\n".join(database.iterdump())
        bodies = database.execute(
            "SELECT status, body FROM outbox WHERE kind = 'email_verification'"
        ).fetchall()
    finally:
        database.close()
    for token in tokens:
        assert token not in logs
        assert token not in dump
    # Delivered link mails keep no body (the link) in the outbox.
    sent = [body for status, body in bodies if status == "sent"]
    assert sent and set(sent) == {"[redacted after delivery]"}
