"""CRLs over HTTP at the URLs written in the certificates: fetched, verified by openssl,
linted by pkilint, regenerated shortly after a revocation, with sane caching headers."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from cryptography import x509

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import secure_channel, stub
from tests.support import CaProcess, make_csr, run, start_http_ca, tool


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[CaProcess]:
    process = start_http_ca(tmp_path_factory.mktemp("crl") / "ca", redis_server, "crltest:")
    yield process
    process.stop()


def _issue(server: CaProcess, user_id: str) -> x509.Certificate:
    csr = make_csr()
    with secure_channel(server.address, server.operator()) as channel:
        response = stub(channel).SignCsr(
            pb.SignCsrRequest(csr=csr, user_id=user_id, organization="CRL Test")
        )
    return x509.load_der_x509_certificate(response.certificate.der)


def _revoke(server: CaProcess, serial: int, reason: str) -> None:
    with secure_channel(server.address, server.operator()) as channel:
        stub(channel).RevokeCertificate(
            pb.RevokeCertificateRequest(serial_number=format(serial, "x"), reason=reason)
        )


def _fetch(url: str, etag: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _urls(certificate: x509.Certificate) -> tuple[str, str]:
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl_url = points[0].full_name[0].value
    return crl_url, crl_url.replace("issuing.crl", "issuing-delta.crl")


def _wait_for_crl(
    url: str, predicate: object, timeout: float = 10
) -> x509.CertificateRevocationList:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = _fetch(url)
        if status == 200:
            crl = x509.load_der_x509_crl(body)
            if predicate(crl):  # type: ignore[operator]
                return crl
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching CRL at {url} within {timeout} s")
        time.sleep(0.2)


def _openssl_verify(der: bytes, files: CaFiles, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.crl"
    path.write_bytes(der)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        files.path("issuing", "ca.pem").read_bytes() + files.path("root", "ca.pem").read_bytes()
    )
    result = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(path),
            "-CAfile",
            str(chain),
            "-verify",
            "-noout",
        ],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in result.stdout + result.stderr, result.stdout + result.stderr
    lint = run(
        [tool("lint_crl"), "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(path)],
        check=False,
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout


def test_full_and_delta_crl_follow_revocations(server: CaProcess, tmp_path: Path) -> None:
    files = CaFiles(server.data_dir)
    certificate = _issue(server, "crluser1")
    crl_url, delta_url = _urls(certificate)
    assert crl_url.startswith(server.http)

    status, headers, body = _fetch(crl_url)
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl"
    before = x509.load_der_x509_crl(body)
    assert before.get_revoked_certificate_by_serial_number(certificate.serial_number) is None
    freshest = before.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == delta_url

    # Caching never outlives nextUpdate; a conditional GET answers 304.
    max_age = int(headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    next_update = before.next_update_utc
    assert next_update is not None
    assert max_age <= (next_update - datetime.now(UTC)).total_seconds()
    assert parsedate_to_datetime(headers["Expires"]) == next_update
    assert _fetch(crl_url, headers["ETag"])[0] == 304

    started = time.monotonic()
    _revoke(server, certificate.serial_number, "key_compromise")
    after = _wait_for_crl(
        crl_url,
        lambda crl: (
            crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
        ),
    )
    assert time.monotonic() - started < 5
    entry = after.get_revoked_certificate_by_serial_number(certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    number = after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    _openssl_verify(_fetch(crl_url)[2], files, tmp_path, "full")

    delta = _wait_for_crl(
        delta_url,
        lambda crl: (
            crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
            >= number
        ),
    )
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).critical
    _openssl_verify(_fetch(delta_url)[2], files, tmp_path, "delta")


def test_ca_issuers_url_serves_the_issuing_ca(server: CaProcess) -> None:
    certificate = _issue(server, "crluser2")
    access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    url = next(
        d.access_location.value
        for d in access
        if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS
    )
    status, headers, body = _fetch(url)
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
