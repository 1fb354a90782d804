"""CRLs over HTTP at the URLs written in the certificates: a base CRL that stays put when a
certificate is revoked and a delta CRL over it that shows the revocation within seconds,
used together by `openssl verify -use_deltas`; the root's CRL (ARL) named in the issuing
CA's certificate; every CRL verified by openssl and linted by pkilint; sane caching headers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from cryptography import x509

from ca_service.adapters.keystore import CaFiles
from tests.integration.revocation_support import (
    ca_issuers_url,
    crl_number,
    delta_base,
    fetch,
    is_listed,
    issue,
    new_user,
    pem,
    revoke,
    url_of,
    wait_for_crl,
)
from tests.support import CaProcess, ca_env, init_ca, run, start_http_ca, tool


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[CaProcess]:
    # The default schedule (a new base every 30 minutes): within this module the base
    # published at start-up stays the current base.
    process = start_http_ca(tmp_path_factory.mktemp("crl") / "ca", redis_server, "crltest:")
    yield process
    process.stop()


def _check_crl(der: bytes, issuer_pem: Path, tmp_path: Path, name: str) -> None:
    """openssl verifies its signature; pkilint finds nothing at WARNING or above."""
    path = tmp_path / f"{name}.crl"
    path.write_bytes(der)
    command = ["openssl", "crl", "-inform", "DER", "-in", str(path), "-CAfile", str(issuer_pem)]
    result = subprocess.run(
        [*command, "-verify", "-noout"],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in result.stdout + result.stderr, result.stdout + result.stderr
    lint = run(
        [tool("lint_crl"), "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(path)],
        check=False,
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout


def _openssl_verify_with_crls(
    files: CaFiles, leaf: x509.Certificate, crls: list[bytes], tmp_path: Path, *deltas: str
) -> str:
    """`openssl verify` of the whole path, every certificate checked against the CRLs."""
    leaf_path = tmp_path / "leaf.pem"
    leaf_path.write_bytes(pem(leaf))
    crl_path = tmp_path / "crls.pem"
    crl_path.write_bytes(b"".join(pem(x509.load_der_x509_crl(der)) for der in crls))
    trust = ["-CAfile", str(files.path("root", "ca.pem"))]
    chain = ["-untrusted", str(files.path("issuing", "ca.pem")), str(leaf_path)]
    result = subprocess.run(
        ["openssl", "verify", "-crl_check_all", *deltas, "-CRLfile", str(crl_path), *trust, *chain],
        capture_output=True,
        text=True,
    )
    return result.stdout + result.stderr


def test_a_revocation_reaches_the_delta_crl_and_leaves_the_base_alone(
    server: CaProcess, tmp_path: Path
) -> None:
    files = CaFiles(server.data_dir)
    revoked_cert = issue(server, new_user(server, "crl"))
    kept_cert = issue(server, new_user(server, "crl"))
    crl_url = url_of(revoked_cert, x509.CRLDistributionPoints)
    delta_url = url_of(revoked_cert, x509.FreshestCRL)
    assert crl_url == f"{server.http}/crl/issuing.crl"
    assert delta_url == f"{server.http}/crl/issuing-delta.crl"

    status, headers, older_base_der = fetch(crl_url)
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl"
    older_base = x509.load_der_x509_crl(older_base_der)
    assert not is_listed(older_base, revoked_cert)
    # The base CRL names the delta too (FreshestCRL, RFC 5280 5.2.6).
    assert url_of(older_base, x509.FreshestCRL) == delta_url  # type: ignore[arg-type]
    delta_before = x509.load_der_x509_crl(fetch(delta_url)[2])
    assert delta_base(delta_before) == crl_number(older_base) < crl_number(delta_before)
    assert not is_listed(delta_before, revoked_cert)

    # Caching never outlives nextUpdate; a conditional GET answers 304.
    max_age = int(headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    next_update = older_base.next_update_utc
    assert next_update is not None
    assert max_age <= (next_update - datetime.now(UTC)).total_seconds()
    assert parsedate_to_datetime(headers["Expires"]) == next_update
    assert fetch(crl_url, headers["ETag"])[0] == 304

    started = time.monotonic()
    revoke(server, revoked_cert.serial_number)
    delta, delta_der = wait_for_crl(delta_url, lambda crl: is_listed(crl, revoked_cert))
    elapsed = time.monotonic() - started
    print(f"the delta CRL listed the revocation after {elapsed:.2f} s")
    assert elapsed < 5
    entry = delta.get_revoked_certificate_by_serial_number(revoked_cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    # One counter: the delta's number grew past its predecessor's; its base is unchanged.
    assert crl_number(delta) > crl_number(delta_before)
    assert delta_base(delta) == crl_number(older_base)
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).critical
    # The base CRL did not change: same ETag, same number, still without the revocation.
    assert fetch(crl_url, headers["ETag"])[0] == 304
    assert not is_listed(x509.load_der_x509_crl(fetch(crl_url)[2]), revoked_cert)

    # The issuing CA's certificate names the root's CRL; every certificate of the path is
    # checked (-crl_check_all), the older base with the fresh delta.
    issuing = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    status, _, root_crl_der = fetch(url_of(issuing, x509.CRLDistributionPoints))
    assert status == 200
    crls = [root_crl_der, older_base_der, delta_der]
    deltas = "-use_deltas"
    assert "certificate revoked" in _openssl_verify_with_crls(
        files, revoked_cert, crls, tmp_path, deltas
    )
    assert (
        _openssl_verify_with_crls(files, kept_cert, crls, tmp_path, deltas).strip().endswith(": OK")
    )
    # Without the delta the older base alone does not know yet: the delta is what tells.
    alone = _openssl_verify_with_crls(files, revoked_cert, crls[:2], tmp_path, deltas)
    assert alone.strip().endswith(": OK"), alone

    _check_crl(older_base_der, files.path("issuing", "ca.pem"), tmp_path, "base")
    _check_crl(delta_der, files.path("issuing", "ca.pem"), tmp_path, "delta")


def test_the_root_crl_is_served_where_the_issuing_ca_certificate_says(
    server: CaProcess, tmp_path: Path
) -> None:
    files = CaFiles(server.data_dir)
    issuing = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    root = x509.load_pem_x509_certificate(files.path("root", "ca.pem").read_bytes())
    url = url_of(issuing, x509.CRLDistributionPoints)
    assert url == f"{server.http}/crl/root.crl"
    status, headers, body = fetch(url)
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl"
    arl = x509.load_der_x509_crl(body)
    assert arl.issuer == root.subject and len(arl) == 0
    assert arl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    next_update = arl.next_update_utc
    assert next_update is not None and (next_update - datetime.now(UTC)).days >= 29
    assert fetch(url, headers["ETag"])[0] == 304
    _check_crl(body, files.path("root", "ca.pem"), tmp_path, "root")
    # AIA caIssuers of the issuing CA: the root's certificate.
    status, headers, body = fetch(ca_issuers_url(issuing))
    assert status == 200 and headers["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(body) == root


def test_ca_issuers_url_serves_the_issuing_ca(server: CaProcess) -> None:
    certificate = issue(server, new_user(server, "crl"))
    status, headers, body = fetch(ca_issuers_url(certificate))
    assert status == 200 and headers["Content-Type"] == "application/pkix-cert"
    issuing = x509.load_der_x509_certificate(body)
    certificate.verify_directly_issued_by(issuing)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"POST /crl/issuing.crl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"garbage\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", b"413"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    ],
)
def test_bad_http_requests_get_clear_errors(server: CaProcess, raw: bytes, expected: bytes) -> None:
    host, port = server.http.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(raw)
        answer = connection.recv(4096)
    assert answer.split(b" ")[1] == expected, answer[:200]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_on_one_database_publish_one_story(
    backend: str, tmp_path: Path, redis_server: str, request: pytest.FixtureRequest
) -> None:
    """Two ca-service processes share a database (and, as deployed, the data directory);
    revocations go to either while new bases are cut every 3 s. Every CRL either serves
    belongs to one sequence: numbers only grow, each delta names the base served with it,
    and once quiet both serve the same pair, which holds every revocation."""
    extra = {
        "CA_REDIS_URL": redis_server,
        "CA_REDIS_PREFIX": f"two{backend}:",
        "CA_CRL_INTERVAL_MINUTES": "0.05",
    }
    if backend == "postgresql":
        extra["CA_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    data_dir = tmp_path / "ca"
    init_ca(data_dir, **extra)
    env = ca_env(data_dir, **extra)
    servers = [CaProcess(data_dir, env, tmp_path / f"ca{i}.log").start() for i in range(2)]
    try:
        certificates = [issue(servers[i % 2], new_user(servers[i % 2], "two")) for i in range(8)]
        seen: dict[str, dict[int, int]] = {"full": {}, "delta": {}}  # number -> base number

        def observe(server: CaProcess) -> tuple[x509.CertificateRevocationList, ...]:
            base = x509.load_der_x509_crl(fetch(f"{server.http}/crl/issuing.crl")[2])
            delta = x509.load_der_x509_crl(fetch(f"{server.http}/crl/issuing-delta.crl")[2])
            seen["full"][crl_number(base)] = 0
            seen["delta"][crl_number(delta)] = delta_base(delta)
            # Never a delta of an older base than the one served (fetched first): a process
            # switches base and delta together.
            assert delta_base(delta) >= crl_number(base)
            return base, delta

        last = {0: (0, 0), 1: (0, 0)}
        started = time.monotonic()
        for i, certificate in enumerate(certificates):
            revoke(servers[i % 2], certificate.serial_number)
            for _ in range(5):
                for index, server in enumerate(servers):
                    base, delta = observe(server)
                    numbers = (crl_number(base), crl_number(delta))
                    # What one process serves never goes back.
                    assert numbers[0] >= last[index][0] and numbers[1] >= last[index][1]
                    last[index] = numbers
                time.sleep(0.15)
        # Every delta anyone served is over a base that was served, and numbered above it.
        for number, base_number in seen["delta"].items():
            assert number > base_number and base_number in seen["full"]
        assert len(seen["full"]) >= 2, "no new base was cut while revoking"
        deadline = time.monotonic() + 10
        while True:
            pairs = [observe(server) for server in servers]
            numbers = {(crl_number(b), crl_number(d)) for b, d in pairs}
            base, delta = pairs[0]
            listed = {entry.serial_number for entry in base} | {e.serial_number for e in delta}
            if len(numbers) == 1 and listed >= {c.serial_number for c in certificates}:
                break
            assert time.monotonic() < deadline, (numbers, len(listed))
            time.sleep(0.2)
        assert delta_base(delta) == crl_number(base)
        print(
            f"{len(seen['full'])} bases, {len(seen['delta'])} deltas in "
            f"{time.monotonic() - started:.1f} s"
        )
    finally:
        for server in servers:
            server.stop()
