"""SIGKILL the CA under concurrent issuance: every certificate a client received must be in
the store (it is committed before the response leaves the process)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import pytest

from ca_service.adapters.sql.database import open_database
from ca_service.api import pb
from ca_service.client import aio_secure_channel, stub
from tests.support import CaProcess, ca_env, create_user, init_ca, make_csr

pytestmark = pytest.mark.serial

CLIENTS = 32


async def _issue_until_killed(
    server: CaProcess, received: list[str], stop: threading.Event
) -> None:
    csr = make_csr()
    async with aio_secure_channel(server.address, server.operator()) as channel:
        api = stub(channel)

        async def client(index: int) -> None:
            while not stop.is_set():
                try:
                    response = await api.SignCsr(
                        pb.SignCsrRequest(
                            csr=csr, user_id=f"crash{index:04d}", override_renewal_window=True
                        ),
                        timeout=5,
                    )
                except grpc.aio.AioRpcError:
                    return
                received.append(response.certificate.fingerprint_sha256)

        await asyncio.gather(*(client(i) for i in range(CLIENTS)))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_received_certificate_survives_sigkill(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, redis_server: str
) -> None:
    data_dir = tmp_path / "ca"
    extra = {}
    if backend == "postgresql":
        extra["CA_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    init_ca(data_dir, **extra)
    database_url = extra.get("CA_DATABASE_URL", f"sqlite:///{data_dir / 'ca.db'}")
    env = ca_env(data_dir, CA_REDIS_URL=redis_server, CA_REDIS_PREFIX=f"crash-{backend}:", **extra)
    server = CaProcess(data_dir, env, tmp_path / "ca.log").start()
    try:
        for index in range(CLIENTS):
            create_user(server.address, server.operator(), f"crash{index:04d}", "Crash Test")
    except BaseException:
        server.kill()
        raise
    received: list[str] = []
    stop = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + 30
        while len(received) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # SIGKILL while the clients are still issuing
        stop.set()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        asyncio.run(_issue_until_killed(server, received, stop))
    finally:
        thread.join()
        server.kill()

    assert len(received) >= 300, "the server was killed before enough certificates were issued"
    database = open_database(database_url, readers=1)
    try:
        stored = {
            row[0]
            for row in database.read_sync(
                lambda c: c.execute("SELECT fingerprint_sha256 FROM certificates").fetchall()
            )
        }
    finally:
        database.close()
    missing = set(received) - stored
    assert not missing, f"{len(missing)} of {len(received)} received certificates are not stored"
    assert len(stored) >= len(set(received))
