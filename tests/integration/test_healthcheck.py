"""`ca-service healthcheck`, the probe of the Kubernetes manifests: the CA's gRPC health over
mutual TLS, exit 0 only when SERVING."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ca_service.cli.healthcheck import probe_address
from tests.support import CaProcess, ca_env, free_port, init_ca, run, tool


def _healthcheck(data_dir: Path, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return run([tool("ca-service"), "healthcheck", *args], ca_env(data_dir, **env), check=False)


@pytest.mark.parametrize(
    ("listen", "probed"),
    [
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "127.0.0.1:50051"),
        (":50051", "127.0.0.1:50051"),
        ("10.1.2.3:50051", "10.1.2.3:50051"),
        ("localhost:7000", "localhost:7000"),
    ],
)
def test_probe_address_turns_a_wildcard_into_loopback(listen: str, probed: str) -> None:
    assert probe_address(listen) == probed


@pytest.mark.parametrize("listen", ["50051", "host:", "host:port"])
def test_probe_address_refuses_what_is_not_host_port(listen: str) -> None:
    with pytest.raises(ValueError):
        probe_address(listen)


def test_serving_with_a_service_credential_from_the_listen_address(
    ca_server: CaProcess, ca_dir: Path, tmp_path: Path
) -> None:
    """The probe's own credential (role `service`, as the manifests mount it) passes; the
    listen address's wildcard host is probed on loopback."""
    run(
        [tool("ca-service"), "credential", "--name", "probe-hc", "--role", "service"],
        ca_env(ca_dir),
    )
    port = ca_server.address.rsplit(":", 1)[1]
    result = _healthcheck(
        ca_dir,
        "--credential",
        str(ca_dir / "credentials" / "probe-hc"),
        CA_GRPC_ADDRESS=f"0.0.0.0:{port}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"127.0.0.1:{port}: SERVING"
    named = _healthcheck(
        ca_dir, "--address", ca_server.address, "--service", "ca.v1.CertificateAuthority"
    )
    assert named.returncode == 0, named.stderr


def test_not_serving_answers_fail_with_the_reason(ca_server: CaProcess, ca_dir: Path) -> None:
    unknown = _healthcheck(ca_dir, "--address", ca_server.address, "--service", "no.Such")
    assert unknown.returncode == 1
    assert "is not serving: NOT_FOUND" in unknown.stderr

    started = time.monotonic()
    down = _healthcheck(ca_dir, "--address", f"127.0.0.1:{free_port()}", "--timeout", "2")
    assert down.returncode == 1
    assert "is not serving: UNAVAILABLE" in down.stderr
    assert time.monotonic() - started < 15


def test_a_credential_of_another_ca_fails_the_handshake(
    ca_server: CaProcess, tmp_path: Path
) -> None:
    """mTLS still applies to the health service: a certificate the services CA did not
    issue gets no answer."""
    other = tmp_path / "other"
    init_ca(other)
    result = _healthcheck(other, "--address", ca_server.address, "--timeout", "2")
    assert result.returncode == 1
    assert "is not serving: UNAVAILABLE" in result.stderr


def test_the_credential_comes_from_ca_admin_credentials_when_not_given(
    ca_server: CaProcess, ca_dir: Path, tmp_path: Path
) -> None:
    """As for ca-admin: CA_ADMIN_CREDENTIALS wins over DATA_DIR/credentials/operator (here
    of another CA, which would fail the handshake)."""
    other = tmp_path / "other"
    init_ca(other)
    result = _healthcheck(
        other,
        "--address",
        ca_server.address,
        CA_ADMIN_CREDENTIALS=str(ca_dir / "credentials" / "gateway"),
    )
    assert result.returncode == 0, result.stderr
