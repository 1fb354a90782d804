"""The gRPC API through a real ca-service process over mTLS, checked with openssl and pkilint."""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ca_service.adapters.keystore import CaFiles, ClientCredential
from ca_service.api import pb
from ca_service.client import api_error, secure_channel, stub
from ca_service.domain.validity import JAPAN
from tests.support import CaProcess, ca_env, openssl_verify, pkilint_certificate, run, tool

ORG = "株式会社テスト商事"


@pytest.fixture(scope="module")
def channel(ca_server: CaProcess) -> Iterator[grpc.Channel]:
    with secure_channel(ca_server.address, ca_server.operator()) as channel:
        yield channel


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> object:
    return stub(channel)


def _csr(key: object, subject: str = "CN=ignored", extra: bool = False) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string(subject)
    )
    if extra:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("evil.example.com")]), critical=False
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    algorithm = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else hashes.SHA256()
    )
    return builder.sign(key, algorithm).public_bytes(Encoding.DER)  # type: ignore[arg-type]


def _write_pem(path: Path, der: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return path


def _reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    problem = api_error(error)
    return problem.code, problem.reason


def test_sign_csr_follows_policy_and_passes_openssl_and_pkilint(
    api: object, ca_dir: Path, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(key, "CN=admin,O=Someone Else", extra=True)
    response = api.SignCsr(pb.SignCsrRequest(csr=csr, user_id="taro0001", organization=ORG))
    message = response.certificate
    certificate = x509.load_der_x509_certificate(message.der)

    assert certificate.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, "taro0001"),
        ]
    )
    extensions = {ext.oid: ext for ext in certificate.extensions}
    assert extensions[x509.BasicConstraints.oid].value.ca is False
    assert extensions[x509.BasicConstraints.oid].critical
    san = extensions[x509.SubjectAlternativeName.oid].value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "https://ca.example.jp/users/taro0001"
    ]
    assert san.get_values_for_type(x509.DNSName) == []
    assert extensions[x509.ExtendedKeyUsage.oid].value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert certificate.public_key() == key.public_key()
    assert certificate.serial_number.bit_length() >= 64
    assert message.serial_number == format(certificate.serial_number, "x")
    assert message.fingerprint_sha256 == hashlib.sha256(message.der).hexdigest()
    assert message.status == pb.CERTIFICATE_STATUS_VALID
    assert message.key_source == pb.KEY_SOURCE_CSR

    # SPEC C1: valid through 23:59:59 Japan time of issue day + 365.
    issued = message.issued_at.ToDatetime(tzinfo=UTC)
    last_day = certificate.not_valid_after_utc.astimezone(JAPAN)
    assert (last_day.date() - issued.astimezone(JAPAN).date()).days == 365
    assert (last_day.hour, last_day.minute, last_day.second) == (23, 59, 59)

    leaf = _write_pem(tmp_path / "leaf.pem", message.der)
    files = CaFiles(ca_dir)
    openssl_verify(files.path("root", "ca.pem"), files.path("issuing", "ca.pem"), leaf)
    pkilint_certificate(leaf)


@pytest.mark.parametrize(
    "key_factory",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate,
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "ed25519", "rsa2048"],
)
def test_sign_csr_accepts_other_key_types(
    api: object, key_factory: object, ca_dir: Path, tmp_path: Path
) -> None:
    key = key_factory()  # type: ignore[operator]
    response = api.SignCsr(pb.SignCsrRequest(csr=_csr(key), user_id="hana0002", organization=ORG))
    leaf = _write_pem(tmp_path / "leaf.pem", response.certificate.der)
    files = CaFiles(ca_dir)
    openssl_verify(files.path("root", "ca.pem"), files.path("issuing", "ca.pem"), leaf)
    pkilint_certificate(leaf)


@pytest.mark.parametrize(
    ("csr", "user_id", "organization", "reason", "words"),
    [
        (b"not a csr", "taro0001", ORG, "INVALID_CSR", "not a valid PKCS#10"),
        (b"", "taro0001", ORG, "INVALID_CSR", "empty"),
        ("rsa1024", "taro0001", ORG, "INVALID_CSR", "1024 bits"),
        ("p521", "taro0001", ORG, "INVALID_CSR", "secp521r1"),
        ("tampered", "taro0001", ORG, "INVALID_CSR", "signature"),
        ("p256", "taro", ORG, "INVALID_USER_ID", "6-12 characters"),
        ("p256", "taroyamada", ORG, "INVALID_USER_ID", "digit"),
        ("p256", "taro0001", "", "INVALID_ORGANIZATION", "empty"),
    ],
)
def test_bad_requests_get_invalid_argument_with_reason(
    api: object, csr: bytes | str, user_id: str, organization: str, reason: str, words: str
) -> None:
    if csr == "rsa1024":
        csr = _csr(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    elif csr == "p521":
        csr = _csr(ec.generate_private_key(ec.SECP521R1()))
    elif csr == "p256":
        csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    elif csr == "tampered":
        good = bytearray(_csr(ec.generate_private_key(ec.SECP256R1())))
        good[-5] ^= 0x01
        csr = bytes(good)
    with pytest.raises(grpc.RpcError) as caught:
        api.SignCsr(pb.SignCsrRequest(csr=csr, user_id=user_id, organization=organization))
    assert _reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert words in caught.value.details()


def test_issue_certificate_returns_pkcs12_that_openssl_reads(
    api: object, ca_dir: Path, tmp_path: Path
) -> None:
    password = "Pa55-wörd!"
    before = datetime.now(UTC).replace(microsecond=0)
    response = api.IssueCertificate(
        pb.IssueCertificateRequest(user_id="jiro0003", organization=ORG, pkcs12_password=password)
    )
    after = datetime.now(UTC)
    match = re.fullmatch(r"jiro0003(\d{14})\.p12", response.file_name)
    assert match, response.file_name
    stamp = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=JAPAN)
    assert before <= stamp <= after
    assert response.certificate.key_source == pb.KEY_SOURCE_SERVER

    p12 = tmp_path / response.file_name
    p12.write_bytes(response.pkcs12)
    env = {"P12PASS": password, "PATH": "/usr/bin:/bin"}
    info = run(
        ["openssl", "pkcs12", "-in", str(p12), "-passin", "env:P12PASS", "-info", "-noout"], env
    )
    details = info.stderr + info.stdout
    assert "PBES2" in details and "AES-256-CBC" in details and "PBKDF2" in details
    assert "MAC: sha256" in details
    dump = run(["openssl", "pkcs12", "-in", str(p12), "-passin", "env:P12PASS", "-nodes"], env)
    assert dump.stdout.count("BEGIN CERTIFICATE") == 3  # leaf, issuing, root
    assert "BEGIN PRIVATE KEY" in dump.stdout
    wrong = run(
        ["openssl", "pkcs12", "-in", str(p12), "-passin", "pass:wrong", "-nodes"], check=False
    )
    assert wrong.returncode != 0

    leaf = _write_pem(tmp_path / "leaf.pem", response.certificate.der)
    files = CaFiles(ca_dir)
    openssl_verify(files.path("root", "ca.pem"), files.path("issuing", "ca.pem"), leaf)
    pkilint_certificate(leaf)


def test_issue_certificate_requires_a_password(api: object) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.IssueCertificate(pb.IssueCertificateRequest(user_id="jiro0003", organization=ORG))
    assert _reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PASSWORD")


def test_get_and_list_certificates(api: object) -> None:
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    issued = [
        api.SignCsr(pb.SignCsrRequest(csr=csr, user_id="saburo04", organization=ORG)).certificate
        for _ in range(3)
    ]
    for message in issued:
        by_serial = api.GetCertificate(
            pb.GetCertificateRequest(serial_number=message.serial_number.upper())
        )
        assert by_serial == message
        colons = ":".join(re.findall("..", message.fingerprint_sha256)).upper()
        assert api.GetCertificate(pb.GetCertificateRequest(fingerprint_sha256=colons)) == message
    listed = api.ListCertificates(pb.ListCertificatesRequest(user_id="saburo04")).certificates
    assert {m.serial_number for m in listed} == {m.serial_number for m in issued}
    assert [m.issued_at.seconds for m in listed] == sorted(
        (m.issued_at.seconds for m in listed), reverse=True
    )
    assert (
        list(api.ListCertificates(pb.ListCertificatesRequest(user_id="nobody99")).certificates)
        == []
    )

    with pytest.raises(grpc.RpcError) as caught:
        api.GetCertificate(pb.GetCertificateRequest(serial_number="0badc0de"))
    assert _reason(caught.value) == (grpc.StatusCode.NOT_FOUND, "CERTIFICATE_NOT_FOUND")
    with pytest.raises(grpc.RpcError) as caught:
        api.GetCertificate(pb.GetCertificateRequest(fingerprint_sha256="abc"))
    assert _reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    with pytest.raises(grpc.RpcError) as caught:
        api.GetCertificate(pb.GetCertificateRequest())
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_ca_chain(api: object, ca_dir: Path) -> None:
    response = api.GetCaChain(pb.GetCaChainRequest())
    files = CaFiles(ca_dir)
    issuing = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    root = x509.load_pem_x509_certificate(files.path("root", "ca.pem").read_bytes())
    assert list(response.certificates) == [
        issuing.public_bytes(Encoding.DER),
        root.public_bytes(Encoding.DER),
    ]
    assert x509.load_pem_x509_certificates(response.pem.encode()) == [issuing, root]
    issuing.verify_directly_issued_by(root)


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "ca.v1.CertificateAuthority"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(
        reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"ca.v1.CertificateAuthority", "grpc.health.v1.Health"} <= names
    # What grpcurl does next: fetch the descriptor of the service to build requests.
    replies = list(
        reflection.ServerReflectionInfo(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="ca.v1.CertificateAuthority"
                    )
                ]
            )
        )
    )
    proto = descriptor_pb2.FileDescriptorProto.FromString(
        replies[0].file_descriptor_response.file_descriptor_proto[0]
    )
    assert proto.package == "ca.v1"
    served = {m.name for m in proto.service[0].method}
    assert served == set(pb.DESCRIPTOR.services_by_name["CertificateAuthority"].methods_by_name)
    assert {"SignCsr", "IssueCertificate", "StartAuthentication", "VerifyCode"} <= served


@pytest.fixture(scope="module")
def gateway_credential(ca_dir: Path) -> ClientCredential:
    run(
        [tool("ca-service"), "credential", "--name", "gateway-test", "--role", "gateway"],
        ca_env(ca_dir),
    )
    return CaFiles(ca_dir).client_credential("gateway-test")


def test_roles_limit_methods(ca_server: CaProcess, gateway_credential: ClientCredential) -> None:
    with secure_channel(ca_server.address, gateway_credential) as channel:
        api = stub(channel)
        assert len(api.GetCaChain(pb.GetCaChainRequest()).certificates) == 2
        csr = _csr(ec.generate_private_key(ec.SECP256R1()))
        with pytest.raises(grpc.RpcError) as caught:
            api.SignCsr(pb.SignCsrRequest(csr=csr, user_id="taro0001", organization=ORG))
        assert _reason(caught.value) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


def test_end_user_certificate_cannot_call_the_api(api: object, ca_server: CaProcess) -> None:
    """A user's client certificate chains to the issuing CA, not to the services CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    response = api.SignCsr(pb.SignCsrRequest(csr=_csr(key), user_id="taro0001", organization=ORG))
    user = ClientCredential(
        certificate_pem=x509.load_der_x509_certificate(response.certificate.der).public_bytes(
            Encoding.PEM
        ),
        key_pem=key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        trust_pem=ca_server.operator().trust_pem,
    )
    with secure_channel(ca_server.address, user) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub(channel).GetCaChain(pb.GetCaChainRequest(), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_connection_without_client_certificate_is_refused(ca_server: CaProcess) -> None:
    trust = ca_server.operator().trust_pem
    credentials = grpc.ssl_channel_credentials(root_certificates=trust)
    with grpc.secure_channel(ca_server.address, credentials) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            stub(channel).GetCaChain(pb.GetCaChainRequest(), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_openssl_s_client_sees_client_certificate_request(
    ca_server: CaProcess, ca_dir: Path
) -> None:
    host, port = ca_server.address.rsplit(":", 1)
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"{host}:{port}",
            "-CAfile",
            str(CaFiles(ca_dir).path("services", "ca.pem")),
            "-alpn",
            "h2",
            "-brief",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )
    output = result.stdout + result.stderr
    assert "Verification: OK" in output, output
