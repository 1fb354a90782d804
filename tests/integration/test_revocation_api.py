"""Revocation over gRPC: RevokeCertificate, re-issue after revocation (SPEC C6), the
revocation stream across two ca-service processes, and the hash-chained audit log."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import grpc
import pytest

from ca_service.api import pb
from ca_service.client import aio_secure_channel, stub
from tests.smtp_sink import SmtpSink
from tests.stack_support import Stack, authenticate, choose_password, new_org, reason_of
from tests.support import create_user, make_csr, run, tool


def _issue(stack: Stack, user_id: str) -> pb.Certificate:
    """Another certificate for ``user_id`` (an account of 失効テスト, made on first use)."""
    create_user(stack.servers[0].address, stack.operator, user_id, "失効テスト")
    operator = stack.api(stack.operator)
    return operator.SignCsr(
        pb.SignCsrRequest(csr=make_csr(), user_id=user_id, override_renewal_window=True)
    ).certificate


def test_revoke_by_serial_and_by_user(stack: Stack) -> None:
    operator = stack.api(stack.operator)
    first, second, third = (_issue(stack, "revoke01") for _ in range(3))
    revoked = operator.RevokeCertificate(
        pb.RevokeCertificateRequest(serial_number=first.serial_number, reason="key_compromise")
    ).revocations
    assert [r.serial_number for r in revoked] == [first.serial_number]
    assert revoked[0].reason == "key_compromise" and revoked[0].sequence > 0
    shown = operator.GetCertificate(pb.GetCertificateRequest(serial_number=first.serial_number))
    assert shown.status == pb.CERTIFICATE_STATUS_REVOKED

    with pytest.raises(grpc.RpcError) as caught:  # twice is an error, not a second record
        operator.RevokeCertificate(pb.RevokeCertificateRequest(serial_number=first.serial_number))
    assert reason_of(caught.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_REVOKED")

    by_user = operator.RevokeCertificate(
        pb.RevokeCertificateRequest(user_id="revoke01", reason="superseded")
    ).revocations
    assert {r.serial_number for r in by_user} == {second.serial_number, third.serial_number}
    assert by_user[0].sequence > revoked[0].sequence
    assert [r.sequence for r in by_user] == sorted(r.sequence for r in by_user)

    with pytest.raises(grpc.RpcError) as caught:
        operator.RevokeCertificate(pb.RevokeCertificateRequest(user_id="revoke01"))
    assert reason_of(caught.value) == (grpc.StatusCode.NOT_FOUND, "CERTIFICATE_NOT_FOUND")
    with pytest.raises(grpc.RpcError) as caught:
        operator.RevokeCertificate(
            pb.RevokeCertificateRequest(
                serial_number=_issue(stack, "revoke01").serial_number, reason="because"
            )
        )
    assert reason_of(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REASON")
    with pytest.raises(grpc.RpcError) as caught:  # only the operator revokes
        stack.api(stack.gateway).RevokeCertificate(
            pb.RevokeCertificateRequest(serial_number=second.serial_number)
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_reissue_at_once_after_revocation(stack: Stack, smtp: SmtpSink) -> None:
    new_org(stack, smtp, "master21")
    gateway, operator = stack.api(stack.gateway), stack.api(stack.operator)
    created = gateway.CreateUser(
        pb.CreateUserRequest(
            acting_user_id="master21", user_id="staff021", email="staff021@example.jp"
        )
    )
    password = choose_password(stack, "staff021", created.initial_password)
    ticket = authenticate(stack, smtp, "staff021", password, "staff021@example.jp")
    gateway.IssueCertificate(
        pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password)
    )
    with pytest.raises(grpc.RpcError) as caught:
        gateway.StartAuthentication(
            pb.StartAuthenticationRequest(user_id="staff021", password=password)
        )
    assert reason_of(caught.value)[1] == "ALREADY_ISSUED"
    # SPEC C6: a PC change; the operator revokes, the user re-issues at once.
    operator.RevokeCertificate(pb.RevokeCertificateRequest(user_id="staff021", reason="superseded"))
    ticket = authenticate(stack, smtp, "staff021", password, "staff021@example.jp")
    gateway.IssueCertificate(
        pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password)
    )


def test_watch_sees_a_revocation_made_through_the_other_process(stack: Stack) -> None:
    """A watcher on process A, a revocation through process B: delivered within 1 s; a
    watcher that reconnects with its last sequence misses nothing."""
    certificates = [_issue(stack, "watch001") for _ in range(4)]

    async def scenario() -> None:
        async with (
            aio_secure_channel(stack.servers[0].address, stack.gateway) as channel_a,
            aio_secure_channel(stack.servers[1].address, stack.operator) as channel_b,
        ):
            watcher, operator = stub(channel_a), stub(channel_b)
            latest = (
                (
                    await operator.RevokeCertificate(
                        pb.RevokeCertificateRequest(serial_number=certificates[0].serial_number)
                    )
                )
                .revocations[0]
                .sequence
            )
            stream = watcher.WatchRevocations(pb.WatchRevocationsRequest(since_sequence=latest))
            first = await stream.read()  # the heartbeat that says "current up to latest"
            assert first.latest_sequence >= latest and not first.revocations
            for certificate in certificates[1:3]:
                started = time.monotonic()
                made = (
                    await operator.RevokeCertificate(
                        pb.RevokeCertificateRequest(serial_number=certificate.serial_number)
                    )
                ).revocations[0]
                while True:
                    message = await asyncio.wait_for(stream.read(), timeout=2)
                    if message.revocations:
                        break
                elapsed = time.monotonic() - started
                assert [r.sequence for r in message.revocations] == [made.sequence]
                assert message.revocations[0].serial_number == certificate.serial_number
                assert elapsed < 1.0, f"revocation reached the watcher after {elapsed:.2f} s"
                latest = made.sequence
            stream.cancel()

            # Disconnected: a revocation happens; reconnecting with the last sequence seen
            # delivers it first, in order, with nothing skipped.
            missed = (
                await operator.RevokeCertificate(
                    pb.RevokeCertificateRequest(serial_number=certificates[3].serial_number)
                )
            ).revocations[0]
            again = watcher.WatchRevocations(pb.WatchRevocationsRequest(since_sequence=latest))
            message = await asyncio.wait_for(again.read(), timeout=2)
            assert [r.sequence for r in message.revocations] == [missed.sequence]
            again.cancel()

            everything = watcher.WatchRevocations(pb.WatchRevocationsRequest(since_sequence=0))
            message = await asyncio.wait_for(everything.read(), timeout=2)
            sequences = [r.sequence for r in message.revocations]
            assert sequences == sorted(sequences) and missed.sequence in sequences
            everything.cancel()

    asyncio.run(scenario())


def test_audit_chain_verifies_and_tampering_names_the_row(stack: Stack) -> None:
    _issue(stack, "audit001")
    env = dict(stack.env, CA_GRPC_ADDRESS=stack.servers[0].address)
    verified = run([tool("ca-admin"), "audit", "verify"], env).stdout
    assert verified.startswith("audit chain intact:")
    listed = run(
        [tool("ca-admin"), "--json", "audit", "list", "--user", "audit001", "--action", "issue"],
        env,
    ).stdout
    assert '"action": "issue"' in listed and '"user_id": "audit001"' in listed

    database = sqlite3.connect(stack.data_dir / "ca.db")
    try:
        (row_id,) = database.execute(
            "SELECT id FROM audit_log WHERE user_id = 'audit001' AND action = 'issue' ORDER BY id"
        ).fetchone()
        original = database.execute(
            "SELECT details FROM audit_log WHERE id = ?", (row_id,)
        ).fetchone()[0]
        database.execute(
            "UPDATE audit_log SET details = ? WHERE id = ?",
            (original.replace("csr", "server"), row_id),
        )
        database.commit()
        broken = run([tool("ca-admin"), "audit", "verify"], env, check=False)
        assert broken.returncode == 1
        assert broken.stderr.strip().startswith(
            f"ca-admin: error: audit chain broken at row {row_id}:"
        )
    finally:
        database.execute("UPDATE audit_log SET details = ? WHERE id = ?", (original, row_id))
        database.commit()
        database.close()
    assert run([tool("ca-admin"), "audit", "verify"], env).returncode == 0


def test_admin_revoke_command(stack: Stack) -> None:
    certificate = _issue(stack, "cli00021")
    env = dict(stack.env, CA_GRPC_ADDRESS=stack.servers[0].address)
    out = run(
        [
            tool("ca-admin"),
            "cert",
            "revoke",
            certificate.serial_number,
            "--reason",
            "privilege_withdrawn",
        ],
        env,
    ).stdout
    assert f"revoked {certificate.serial_number} (cli00021), reason privilege_withdrawn" in out
    again = run([tool("ca-admin"), "cert", "revoke", certificate.serial_number], env, check=False)
    assert again.returncode == 1 and "(ALREADY_REVOKED)" in again.stderr
    shown = run([tool("ca-admin"), "cert", "show", certificate.serial_number], env).stdout
    assert "status:       revoked" in shown


def test_revocations_are_in_the_audit_log(stack: Stack) -> None:
    certificate = _issue(stack, "audit002")
    stack.api(stack.operator).RevokeCertificate(
        pb.RevokeCertificateRequest(
            serial_number=certificate.serial_number, reason="cessation_of_operation"
        )
    )
    records = stack.api(stack.operator).ListAudit(pb.ListAuditRequest(user_id="audit002")).records
    assert [r.action for r in records] == ["revoke", "issue", "register_user"]
    assert '"reason": "cessation_of_operation"' in records[0].details
    assert records[0].prev_hash and records[0].hash != records[1].hash
