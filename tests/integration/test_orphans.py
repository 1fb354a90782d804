"""Children end with their parent (issue 9, item 6): a SIGKILLed ca-service leaves no
PKCS#12 pool worker and no multiprocessing resource tracker behind, and a SIGKILLed
supervisor (CA_GRPC_WORKERS=2) leaves none of its server processes (nor their children)."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import secure_channel, stub
from tests.processes import ProcessInfo, descendants, kill, wait_gone
from tests.support import CaProcess, ca_env, create_user, free_port, init_ca

pytestmark = pytest.mark.serial

PASSWORD = "Orph4n-Pass!"


def _issue_pkcs12(address: str, files: CaFiles, user_id: str) -> None:
    """A server-side key in a PKCS#12: built in the PKCS#12 worker pool."""
    with secure_channel(address, files.client_credential("operator")) as channel:
        response = stub(channel).IssueCertificate(
            pb.IssueCertificateRequest(
                user_id=user_id,
                pkcs12_password=PASSWORD,
                override_renewal_window=True,
            )
        )
    assert response.pkcs12


def _describe(infos: list[ProcessInfo]) -> str:
    return "; ".join(f"{info.pid} {info.command[:120]}" for info in infos)


def test_sigkill_of_the_server_leaves_no_pool_worker_or_resource_tracker(
    tmp_path: Path, redis_server: str
) -> None:
    data_dir = tmp_path / "ca"
    files = init_ca(data_dir)
    env = ca_env(data_dir, CA_REDIS_URL=redis_server, CA_REDIS_PREFIX="orphans1:")
    server = CaProcess(data_dir, env, tmp_path / "ca.log").start()
    children: list[ProcessInfo] = []
    try:
        create_user(server.address, files.client_credential("operator"), "orphan01")
        _issue_pkcs12(server.address, files, "orphan01")
        assert server.process is not None
        children = descendants(server.process.pid)
        workers = [c for c in children if "multiprocessing.spawn" in c.command]
        trackers = [c for c in children if "resource_tracker" in c.command]
        assert workers and trackers, _describe(children)

        server.kill()  # SIGKILL, no chance to clean up
        left = wait_gone([child.pid for child in children], timeout=2)
        assert not left, "still running 2 s after SIGKILL: " + _describe(
            [c for c in children if c.pid in left]
        )
    finally:
        server.stop()
        kill(child.pid for child in children)


def test_sigkill_of_the_supervisor_stops_every_server_process(
    tmp_path: Path, redis_server: str
) -> None:
    data_dir = tmp_path / "ca"
    files = init_ca(data_dir)
    env = ca_env(
        data_dir,
        CA_REDIS_URL=redis_server,
        CA_REDIS_PREFIX="orphans2:",
        CA_GRPC_WORKERS="2",
        CA_GRPC_ADDRESS=f"127.0.0.1:{free_port()}",
        CA_HTTP_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    supervisor = CaProcess(data_dir, env, tmp_path / "ca.log").start()
    tree: list[ProcessInfo] = []
    try:
        create_user(supervisor.address, files.client_credential("operator"), "orphan02")
        # New connections spread over both processes (SO_REUSEPORT).
        for _ in range(4):
            _issue_pkcs12(supervisor.address, files, "orphan02")
        assert supervisor.process is not None
        tree = descendants(supervisor.process.pid)
        servers = [p for p in tree if p.ppid == supervisor.process.pid]
        assert len(servers) == 2, _describe(tree)
        assert any("multiprocessing.spawn" in p.command for p in tree), _describe(tree)

        supervisor.process.send_signal(signal.SIGKILL)
        supervisor.process.wait(10)
        # The servers get SIGTERM and stop gracefully (in-flight calls finish).
        left = wait_gone([p.pid for p in tree], timeout=5)
        assert not left, "still running after the supervisor's SIGKILL: " + _describe(
            [p for p in tree if p.pid in left]
        )
        with grpc.insecure_channel(supervisor.address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                raise AssertionError("something still listens on the gRPC port")
            except grpc.FutureTimeoutError:
                pass
    finally:
        supervisor.stop()
        kill(p.pid for p in tree)
