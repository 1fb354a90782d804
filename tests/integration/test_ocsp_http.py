"""The OCSP responder through real clients: openssl ocsp (POST, with and without nonce),
GET per RFC 5019, good → revoked after RevokeCertificate, pkilint on the responses, and
well-formed OCSP errors for garbage and for other issuers."""

from __future__ import annotations

import base64
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import secure_channel, stub
from tests.ocsp_requests import cert_id, request_der
from tests.support import (
    CaProcess,
    create_user,
    make_csr,
    openssl_ocsp,
    pkilint_ocsp_response,
    start_http_ca,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[CaProcess]:
    process = start_http_ca(tmp_path_factory.mktemp("ocsp") / "ca", redis_server, "ocsptest:")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def pems(server: CaProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    files = CaFiles(server.data_dir)
    directory = tmp_path_factory.mktemp("pems")
    issuing = directory / "issuing.pem"
    issuing.write_bytes(files.path("issuing", "ca.pem").read_bytes())
    chain = directory / "chain.pem"
    chain.write_bytes(
        files.path("issuing", "ca.pem").read_bytes() + files.path("root", "ca.pem").read_bytes()
    )
    return {"issuing": issuing, "chain": chain, "dir": directory}


def _issue(server: CaProcess, directory: Path, user_id: str) -> tuple[x509.Certificate, Path]:
    csr = make_csr()
    create_user(server.address, server.operator(), user_id, "OCSP Test")
    with secure_channel(server.address, server.operator()) as channel:
        response = stub(channel).SignCsr(
            pb.SignCsrRequest(csr=csr, user_id=user_id, override_renewal_window=True)
        )
    certificate = x509.load_der_x509_certificate(response.certificate.der)
    path = directory / f"{user_id}.pem"
    path.write_bytes(certificate.public_bytes(Encoding.PEM))
    return certificate, path


def _ocsp_url(certificate: x509.Certificate) -> str:
    access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return next(
        str(d.access_location.value)
        for d in access
        if d.access_method == x509.AuthorityInformationAccessOID.OCSP
    )


def _lint(response_der: bytes, path: Path) -> None:
    path.write_bytes(response_der)
    pkilint_ocsp_response(path)


def test_good_then_revoked_with_openssl(server: CaProcess, pems: dict[str, Path]) -> None:
    certificate, leaf = _issue(server, pems["dir"], "ocspuser1")
    url = _ocsp_url(certificate)
    assert url.startswith(server.http)
    for nonce in ("-nonce", "-no_nonce"):
        output = openssl_ocsp(pems["issuing"], pems["chain"], leaf, url, nonce)
        assert "Response verify OK" in output, output
        assert f"{leaf}: good" in output, output

    with secure_channel(server.address, server.operator()) as channel:
        stub(channel).RevokeCertificate(
            pb.RevokeCertificateRequest(
                serial_number=format(certificate.serial_number, "x"), reason="key_compromise"
            )
        )
    deadline = time.monotonic() + 5
    while True:  # the cached "good" must be dropped at once (well within a second or two)
        output = openssl_ocsp(pems["issuing"], pems["chain"], leaf, url, "-no_nonce")
        if f"{leaf}: revoked" in output or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "Response verify OK" in output and f"{leaf}: revoked" in output, output
    assert "Reason: keyCompromise" in output
    assert "Revocation Time:" in output


def _request(certificate: x509.Certificate, issuer: x509.Certificate, nonce: bool) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _post(url: str, body: bytes) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return dict(response.headers), response.read()


def test_get_post_nonce_caching_and_lint(server: CaProcess, pems: dict[str, Path]) -> None:
    certificate, _ = _issue(server, pems["dir"], "ocspuser2")
    issuer = x509.load_pem_x509_certificate(pems["issuing"].read_bytes())
    url = _ocsp_url(certificate)

    request = _request(certificate, issuer, nonce=False)
    encoded = base64.b64encode(request).decode()
    with urllib.request.urlopen(
        f"{url}/{urllib.request.quote(encoded, safe='')}", timeout=10
    ) as response:
        headers, body = dict(response.headers), response.read()
    assert headers["Content-Type"] == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(body)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert parsed.serial_number == certificate.serial_number
    next_update = parsed.next_update_utc
    assert next_update is not None
    max_age = int(headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= (next_update - parsed.this_update_utc).total_seconds()
    assert "ETag" in headers and "Last-Modified" in headers and "Expires" in headers
    responder = parsed.certificates[0]
    assert (
        x509.ExtendedKeyUsageOID.OCSP_SIGNING
        in responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    responder.verify_directly_issued_by(issuer)
    _lint(body, pems["dir"] / "good.der")

    # The same request again is served from the pre-signed cache: byte-identical.
    assert _post(url, request)[1] == body

    headers, with_nonce = _post(url, _request(certificate, issuer, nonce=True))
    parsed = ocsp.load_der_ocsp_response(with_nonce)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == (
        b"0123456789abcdef"
    )
    assert headers["Cache-Control"] == "no-store"

    with secure_channel(server.address, server.operator()) as channel:
        stub(channel).RevokeCertificate(
            pb.RevokeCertificateRequest(
                serial_number=format(certificate.serial_number, "x"), reason="superseded"
            )
        )
    deadline = time.monotonic() + 5
    while True:
        revoked = ocsp.load_der_ocsp_response(_post(url, request)[1])
        if revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            break
        assert time.monotonic() < deadline, "the revocation did not reach the responder"
        time.sleep(0.1)
    assert revoked.revocation_reason is x509.ReasonFlags.superseded
    _lint(_post(url, request)[1], pems["dir"] / "revoked.der")


def test_unknown_serial_other_issuer_and_garbage(server: CaProcess, pems: dict[str, Path]) -> None:
    certificate, _ = _issue(server, pems["dir"], "ocspuser3")
    issuer = x509.load_pem_x509_certificate(pems["issuing"].read_bytes())
    url = _ocsp_url(certificate)

    stranger_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=stranger")
    import datetime as dt

    stranger = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(stranger_key.public_key())
        .serial_number(7)
        .not_valid_before(dt.datetime(2020, 1, 1))
        .not_valid_after(dt.datetime(2040, 1, 1))
        .sign(stranger_key, hashes.SHA256())
    )
    other = _post(url, _request(stranger, stranger, nonce=False))[1]
    assert ocsp.load_der_ocsp_response(other).response_status is (
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    )

    unknown_request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            issuer_name_hash=ocsp.load_der_ocsp_request(
                _request(certificate, issuer, False)
            ).issuer_name_hash,
            issuer_key_hash=ocsp.load_der_ocsp_request(
                _request(certificate, issuer, False)
            ).issuer_key_hash,
            serial_number=12345,
            algorithm=hashes.SHA1(),
        )
        .build()
        .public_bytes(Encoding.DER)
    )
    unknown = ocsp.load_der_ocsp_response(_post(url, unknown_request)[1])
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN

    for garbage in (b"", b"\x30\x03\x02\x01\x01", b"not ocsp at all", b"\x30" * 500):
        _, body = _post(url, garbage)
        assert ocsp.load_der_ocsp_response(body).response_status is (
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        )
    with urllib.request.urlopen(f"{url}/%%%not-base64", timeout=10) as response:
        assert ocsp.load_der_ocsp_response(response.read()).response_status is (
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        )


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_distinct_requests_for_one_certificate_share_one_signed_answer_per_cert_id(
    server: CaProcess, pems: dict[str, Path]
) -> None:
    """10,000 distinct valid nonce-free requests for one certificate (four CertID
    encodings, each wrapped with random requestor names and non-critical extensions) get
    four signed answers, and the server's memory does not grow with the requests (it used
    to keep one signed answer per distinct request: ~2.4 KB each)."""
    import http.client

    certificate, _ = _issue(server, pems["dir"], "ocspuser4")
    issuer = x509.load_pem_x509_certificate(pems["issuing"].read_bytes())
    cert_ids = [
        cert_id(issuer, certificate.serial_number, algorithm, null_params)
        for algorithm in ("sha1", "sha256")
        for null_params in (False, True)
    ]
    host, port = server.http.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    answers: dict[bytes, set[bytes]] = {}

    def ask(count: int) -> None:
        for index in range(count):
            noise = os.urandom(8).hex().encode()
            which = cert_ids[index % 4]
            body = request_der(which, requestor=b"urn:r:" + noise, extension=noise)
            connection.request(
                "POST", "/ocsp", body=body, headers={"Content-Type": "application/ocsp-request"}
            )
            response = connection.getresponse()
            assert response.status == 200
            answers.setdefault(which, set()).add(response.read())

    assert server.process is not None
    try:
        ask(1000)  # warm up the process (allocator arenas, caches)
        before = _rss_kib(server.process.pid)
        ask(10_000)
        grown = _rss_kib(server.process.pid) - before
    finally:
        connection.close()
    assert {len(bodies) for bodies in answers.values()} == {1}, "answers were signed again"
    for which, bodies in answers.items():
        parsed = ocsp.load_der_ocsp_response(next(iter(bodies)))
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert which in next(iter(bodies))  # the CertID echoed as sent
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 10,000 requests"


def _valid_request(server: CaProcess, pems: dict[str, Path]) -> bytes:
    certificate, _ = _issue(server, pems["dir"], "ocspfuzz1")
    issuer = x509.load_pem_x509_certificate(pems["issuing"].read_bytes())
    return _request(certificate, issuer, nonce=True)


def test_fuzzed_requests_always_get_an_ocsp_answer(
    server: CaProcess, pems: dict[str, Path]
) -> None:
    """Random and mutated requests over HTTP: always HTTP 200 with a well-formed OCSP
    response (an error status or a correct answer), never a 500 or a hang."""
    import http.client
    import random

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    valid = _valid_request(server, pems)
    host, port = server.http.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)

    def mutate(seed: int, kind: int) -> bytes:
        rnd = random.Random(seed)
        data = bytearray(valid)
        if kind == 0:  # flip bits
            for _ in range(rnd.randint(1, 8)):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif kind == 1:  # truncate
            del data[rnd.randrange(len(data)) :]
        elif kind == 2:  # insert bytes
            position = rnd.randrange(len(data))
            data[position:position] = rnd.randbytes(rnd.randint(1, 16))
        else:  # corrupt a length byte
            data[rnd.choice([1, 3, 5, 7])] = rnd.randrange(256)
        return bytes(data)

    def check(body: bytes, method: str) -> None:
        if method == "POST":
            connection.request(
                "POST", "/ocsp", body=body, headers={"Content-Type": "application/ocsp-request"}
            )
        else:
            path = urllib.request.quote(base64.b64encode(body).decode(), safe="")
            connection.request("GET", f"/ocsp/{path}")
        response = connection.getresponse()
        payload = response.read()
        assert response.status == 200, (response.status, payload[:100])
        parsed = ocsp.load_der_ocsp_response(payload)
        if parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL:
            assert parsed.certificate_status in set(ocsp.OCSPCertStatus)

    @settings(
        max_examples=1500, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        st.one_of(
            st.binary(max_size=600), st.builds(mutate, st.integers(0, 2**32), st.integers(0, 3))
        ),
        st.sampled_from(["POST", "GET"]),
    )
    def run(body: bytes, method: str) -> None:
        check(body, method)

    try:
        run()
    finally:
        connection.close()
