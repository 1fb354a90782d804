"""gateway.revocations against real ca-service processes: a revocation reaches the gateway's
view within a second; when the CA goes away the view turns stale (fail closed); after a
reconnect to another process the catch-up by sequence misses nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import aio_secure_channel, secure_channel, stub
from gateway.revocations import RevocationFollower
from tests.support import CaProcess, ca_env, init_ca, make_csr, run, tool


def _issue(server: CaProcess) -> int:
    with secure_channel(server.address, server.operator()) as channel:
        response = stub(channel).SignCsr(
            pb.SignCsrRequest(csr=make_csr(), user_id="follow01", organization="Follow")
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
        follower = RevocationFollower(channel, max_staleness=1.5, on_revocation=told.append)
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
