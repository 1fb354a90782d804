"""gateway.revocations against real ca-service processes: a revocation reaches the gateway's
view within a second; when the CA goes away the view turns stale (fail closed); after a
reconnect to another process the catch-up by sequence misses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import grpc
import pytest

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import aio_secure_channel, secure_channel, stub
from gateway.revocations import RevocationFollower
from tests.smtp_sink import SmtpSink
from tests.stack_support import new_org, start_stack
from tests.support import CaProcess, ca_env, create_user, init_ca, make_csr, run, tool

pytestmark = pytest.mark.serial


def _issue(server: CaProcess) -> int:
    create_user(server.address, server.operator(), "follow01", "Follow")
    with secure_channel(server.address, server.operator()) as channel:
        response = stub(channel).SignCsr(
            pb.SignCsrRequest(csr=make_csr(), user_id="follow01", override_renewal_window=True)
        )
    return int(response.certificate.serial_number, 16)


def _revoke(server: CaProcess, serial: int) -> None:
    with secure_channel(server.address, server.operator()) as channel:
        stub(channel).RevokeCertificate(
            pb.RevokeCertificateRequest(serial_number=format(serial, "x"))
        )


def test_follower_sees_revocations_fails_closed_and_catches_up(
    tmp_path: Path, redis_server: str
) -> None:
    data_dir = tmp_path / "ca"
    extra = {"CA_REDIS_URL": redis_server, "CA_REDIS_PREFIX": "follow:"}
    init_ca(data_dir, **extra)
    env = ca_env(data_dir, **extra)
    run([tool("ca-service"), "credential", "--name", "gw", "--role", "gateway"], env)
    credential = CaFiles(data_dir).client_credential("gw")
    first = CaProcess(data_dir, env, tmp_path / "a.log").start()
    second = CaProcess(data_dir, env, tmp_path / "b.log").start()
    serials = [_issue(first) for _ in range(3)]
    target = {"server": first}

    def channel() -> grpc.aio.Channel:
        return aio_secure_channel(target["server"].address, credential)

    async def scenario() -> None:
        told: list[str] = []
        follower = RevocationFollower(channel, max_staleness=1.5, forget_user=told.append)
        stop = asyncio.Event()
        task = asyncio.create_task(follower.run(stop, retry_delay=0.2))
        await asyncio.wait_for(follower.connected.wait(), 10)
        assert follower.is_fresh() and not follower.is_revoked(serials[0])

        started = time.monotonic()
        await asyncio.to_thread(_revoke, second, serials[0])  # through the other process
        while not follower.is_revoked(serials[0]):
            assert time.monotonic() - started < 1.0, "revocation took more than 1 s"
            await asyncio.sleep(0.02)
        assert told == ["follow01"]  # the identity cache is told whose record to drop

        first.kill()  # the CA the gateway follows is gone: the view must turn stale
        await asyncio.sleep(2.0)
        assert not follower.is_fresh()
        await asyncio.to_thread(_revoke, second, serials[1])  # made while disconnected

        target["server"] = second  # the next reconnect reaches the other process
        deadline = time.monotonic() + 10
        while not (follower.is_fresh() and follower.is_revoked(serials[1])):
            assert time.monotonic() < deadline, "no catch-up after reconnecting"
            await asyncio.sleep(0.05)
        assert not follower.is_revoked(serials[2])
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        first.kill()
        second.stop()


def test_the_crl_keeps_the_view_current_while_the_stream_is_down(
    tmp_path: Path, redis_server: str
) -> None:
    from cryptography import x509 as x509_
    from cryptography.hazmat.primitives.serialization import Encoding

    from gateway.crl_fallback import CrlSource

    data_dir = tmp_path / "ca"
    extra = {"CA_REDIS_URL": redis_server, "CA_REDIS_PREFIX": "crlfb:"}
    files = init_ca(data_dir, **extra)
    env = ca_env(data_dir, **extra)
    credential = files.client_credential("gateway")  # made by ca-service init
    streaming = CaProcess(data_dir, env, tmp_path / "a.log").start()
    publishing = CaProcess(data_dir, env, tmp_path / "b.log").start()
    serials = [_issue(streaming) for _ in range(2)]
    issuer_der = x509_.load_pem_x509_certificate(
        files.path("issuing", "ca.pem").read_bytes()
    ).public_bytes(Encoding.DER)

    def channel() -> grpc.aio.Channel:
        return aio_secure_channel(streaming.address, credential)

    async def scenario() -> None:
        crl = CrlSource(publishing.http + "/crl/issuing.crl", issuer_der)
        follower = RevocationFollower(channel, max_staleness=2.0, crl=crl, crl_interval=0.3)
        stop = asyncio.Event()
        task = asyncio.create_task(follower.run(stop, retry_delay=0.2))
        await asyncio.wait_for(follower.connected.wait(), 10)
        assert follower.source() == "stream"

        streaming.kill()  # the stream is gone; the CA's HTTP side (another process) is not
        await asyncio.sleep(3.0)
        assert follower.is_fresh() and follower.source() == "crl"
        started = time.monotonic()
        await asyncio.to_thread(_revoke, publishing, serials[0])
        while not follower.is_revoked(serials[0]):
            # The CA republishes about a second after a revocation; polled every 0.3 s.
            assert time.monotonic() - started < 5.0, "the CRL fallback missed a revocation"
            await asyncio.sleep(0.05)
        assert not follower.is_revoked(serials[1])

        publishing.stop()  # neither source now: fail closed after max_staleness
        await asyncio.sleep(2.5)
        assert not follower.is_fresh()
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        streaming.kill()
        publishing.stop()


def test_lock_and_unlock_reach_the_follower_through_the_stream(
    tmp_path: Path, redis_server: str, smtp: SmtpSink
) -> None:
    stack = start_stack(tmp_path, redis_server, smtp, count=2)
    new_org(stack, smtp, "watch001")
    heard: list[tuple[float, str]] = []

    def channel() -> grpc.aio.Channel:
        return aio_secure_channel(stack.servers[0].address, stack.gateway)

    def lock_then_unlock() -> tuple[float, float]:
        other = stack.api(stack.gateway, 1)  # the change happens at the other process
        for _ in range(6):
            with contextlib.suppress(grpc.RpcError):
                other.StartAuthentication(  # type: ignore[attr-defined]
                    pb.StartAuthenticationRequest(user_id="watch001", password="Wrong-pass1!")
                )
        locked_at = time.monotonic()
        time.sleep(1.5)
        # Taken before the call: the notice may reach the follower before the call returns.
        unlock_started = time.monotonic()
        stack.api(stack.operator, 1).UnlockUser(  # type: ignore[attr-defined]
            pb.UnlockUserRequest(user_id="watch001")
        )
        return locked_at, unlock_started

    async def scenario() -> None:
        follower = RevocationFollower(
            channel, forget_user=lambda user: heard.append((time.monotonic(), user))
        )
        stop = asyncio.Event()
        task = asyncio.create_task(follower.run(stop, retry_delay=0.2))
        await asyncio.wait_for(follower.connected.wait(), 10)
        locked_at, unlock_started = await asyncio.to_thread(lock_then_unlock)
        deadline = time.monotonic() + 5
        while len([u for _, u in heard if u == "watch001"]) < 2:
            assert time.monotonic() < deadline, heard
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        times = [at for at, user in heard if user == "watch001"]
        assert times[0] - locked_at < 1.0  # the lock, within a second
        assert any(0 <= at - unlock_started < 1.0 for at in times[1:]), (times, unlock_started)

    try:
        asyncio.run(scenario())
    finally:
        for server in stack.servers:
            server.stop()
