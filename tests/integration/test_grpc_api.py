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
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ca_service.adapters.keystore import CaFiles
from ca_service.api import pb
from ca_service.client import api_error, secure_channel, stub
from ca_service.domain.validity import JAPAN
from ca_service.shared.credentials import ClientCredential
from tests.support import (
    CaProcess,
    assert_client_certificate,
    ca_env,
    create_user,
    make_csr,
    openssl_verify,
    pkilint_certificate,
    run,
    tool,
)

ORG = "株式会社テスト商事"


@pytest.fixture(scope="module")
def channel(ca_server: CaProcess) -> Iterator[grpc.Channel]:
    with secure_channel(ca_server.address, ca_server.operator()) as channel:
        yield channel


@pytest.fixture(scope="module")
def api(channel: grpc.Channel, ca_server: CaProcess) -> object:
    # The CA issues only for accounts: the users these tests issue for, in ORG.
    for user_id in ("taro0001", "hana0002", "jiro0003", "saburo04"):
        create_user(ca_server.address, ca_server.operator(), user_id, ORG)
    return stub(channel)


def _csr(key: object) -> bytes:
    return make_csr("CN=ignored", key=key)


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
    csr = make_csr(
        "CN=admin,O=Someone Else",
        key=key,
        extensions=[
            (x509.SubjectAlternativeName([x509.DNSName("evil.example.com")]), False),
            (x509.BasicConstraints(ca=True, path_length=None), True),
        ],
    )
    response = api.SignCsr(
        pb.SignCsrRequest(csr=csr, user_id="taro0001", override_renewal_window=True)
    )
    message = response.certificate
    certificate = x509.load_der_x509_certificate(message.der)

    assert_client_certificate(certificate, "taro0001", ORG, "https://ca.example.jp/users/taro0001")
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
    response = api.SignCsr(
        pb.SignCsrRequest(csr=_csr(key), user_id="hana0002", override_renewal_window=True)
    )
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
        api.SignCsr(
            pb.SignCsrRequest(
                csr=csr,
                user_id=user_id,
                organization=organization,
                override_renewal_window=True,
            )
        )
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
    assert (
        x509.load_der_x509_certificate(response.certificate.der)
        .subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0]
        .value
        == ORG
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
    # The MAC is as costly to attack as the bags (issue 9, item 7): CA_PKCS12_KDF_ROUNDS.
    assert "MAC: sha256, Iteration 100000" in details
    assert details.count("AES-256-CBC, Iteration 100000, PRF hmacWithSHA256") == 2
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
        api.IssueCertificate(
            pb.IssueCertificateRequest(user_id="jiro0003", override_renewal_window=True)
        )
    assert _reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PASSWORD")


def test_get_and_list_certificates(api: object) -> None:
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    issued = [
        api.SignCsr(
            pb.SignCsrRequest(csr=csr, user_id="saburo04", override_renewal_window=True)
        ).certificate
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
    response = api.SignCsr(
        pb.SignCsrRequest(csr=_csr(key), user_id="taro0001", override_renewal_window=True)
    )
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


def _block(ca_dir: Path, user_id: str) -> None:
    """Blocks ``user_id`` the way the CA records a block (SPEC B4) in its store."""
    import asyncio

    from ca_service.adapters.sql.accounts import SqlAccountStore
    from ca_service.adapters.sql.database import open_database
    from ca_service.domain.accounts import SYSTEM_ACTOR, AuditAction, AuditEntry

    async def block() -> None:
        database = open_database(f"sqlite:///{ca_dir / 'ca.db'}", readers=1)
        try:
            now = datetime.now(UTC)
            audit = AuditEntry(now, SYSTEM_ACTOR, AuditAction.BLOCK, user_id, {"locks": "3"})
            await SqlAccountStore(database).set_blocked(user_id, now, now, [audit], [])
        finally:
            database.close()

    asyncio.run(block())


def _audit_of(api: object, user_id: str) -> list[tuple[str, dict[str, str]]]:
    import json

    records = api.ListAudit(pb.ListAuditRequest(user_id=user_id, action="issue")).records
    return [(record.actor, json.loads(record.details)) for record in records]


def test_operator_issuance_is_bound_to_an_existing_unblocked_account(
    api: object, ca_server: CaProcess, ca_dir: Path
) -> None:
    """Issue 9, item 9: no certificate for a user without an account, the organisation
    always the account's, the renewal window unless overridden, blocked users refused,
    every issuance audited with the caller."""
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    for call in (
        lambda: api.SignCsr(pb.SignCsrRequest(csr=csr, user_id="nobody01")),
        lambda: api.IssueCertificate(
            pb.IssueCertificateRequest(user_id="nobody01", pkcs12_password="Pa55-word!")
        ),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert _reason(caught.value) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    assert not api.ListCertificates(pb.ListCertificatesRequest(user_id="nobody01")).certificates

    organization_id = create_user(ca_server.address, ca_server.operator(), "sample01", ORG)
    with pytest.raises(grpc.RpcError) as caught:
        api.SignCsr(pb.SignCsrRequest(csr=csr, user_id="sample01", organization="Evil Corp"))
    assert _reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "ORGANIZATION_MISMATCH")
    assert api_error(caught.value).metadata["field"] == "organization"
    assert not api.ListCertificates(pb.ListCertificatesRequest(user_id="sample01")).certificates

    # The organisation may be named (by ID or name) as a check; the subject is the account's.
    first = api.SignCsr(
        pb.SignCsrRequest(csr=csr, user_id="sample01", organization=organization_id)
    ).certificate
    subject = x509.load_der_x509_certificate(first.der).subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ORG
    assert first.organization == ORG

    # SPEC C2: a valid certificate blocks another one until the renewal window opens ...
    with pytest.raises(grpc.RpcError) as caught:
        api.SignCsr(pb.SignCsrRequest(csr=csr, user_id="sample01"))
    assert _reason(caught.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_ISSUED")
    problem = api_error(caught.value)
    assert problem.metadata["serial_number"] == first.serial_number
    opens = datetime.fromisoformat(problem.metadata["renewal_opens_at"])
    assert (first.not_after.ToDatetime(tzinfo=UTC) - opens).days in (29, 30)
    with pytest.raises(grpc.RpcError) as caught:
        api.IssueCertificate(
            pb.IssueCertificateRequest(user_id="sample01", pkcs12_password="Pa55-word!")
        )
    assert _reason(caught.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_ISSUED")
    # ... unless the caller overrides it, explicitly.
    second = api.SignCsr(
        pb.SignCsrRequest(csr=csr, user_id="sample01", override_renewal_window=True)
    ).certificate

    # A service caller issues under the same rules and is audited by its credential name.
    run(
        [tool("ca-service"), "credential", "--name", "billing", "--role", "service"],
        ca_env(ca_dir),
    )
    with secure_channel(ca_server.address, CaFiles(ca_dir).client_credential("billing")) as ch:
        service = stub(ch)
        with pytest.raises(grpc.RpcError) as caught:
            service.SignCsr(pb.SignCsrRequest(csr=csr, user_id="sample01"))
        assert _reason(caught.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_ISSUED")
        third = service.IssueCertificate(
            pb.IssueCertificateRequest(
                user_id="sample01", pkcs12_password="Pa55-word!", override_renewal_window=True
            )
        ).certificate

        _block(ca_dir, "sample01")
        for caller in (api, service):
            with pytest.raises(grpc.RpcError) as caught:
                caller.SignCsr(
                    pb.SignCsrRequest(csr=csr, user_id="sample01", override_renewal_window=True)
                )
            assert _reason(caught.value) == (grpc.StatusCode.FAILED_PRECONDITION, "BLOCKED")

    audit = _audit_of(api, "sample01")
    assert len(audit) == 3
    by_serial = {details["serial"]: (actor, details) for actor, details in audit}
    assert by_serial[first.serial_number][0] == "operator:operator"
    assert by_serial[first.serial_number][1] | {"serial": ""} == {
        "serial": "",
        "key_source": "csr",
        "caller_role": "operator",
        "caller_credential": "operator",
        "organization_id": organization_id,
        "renewal_window": "open",
    }
    assert by_serial[second.serial_number][1]["renewal_window"] == "overridden"
    actor, details = by_serial[third.serial_number]
    assert actor == "service:billing" and details["caller_role"] == "service"
    assert details["caller_credential"] == "billing" and details["key_source"] == "server"
    assert details["renewal_window"] == "overridden"


def test_a_ticket_cannot_override_the_renewal_window(
    ca_server: CaProcess, gateway_credential: ClientCredential
) -> None:
    with (
        secure_channel(ca_server.address, gateway_credential) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        stub(channel).IssueCertificate(
            pb.IssueCertificateRequest(
                issuance_ticket="x" * 43,
                pkcs12_password="Pa55-word!",
                override_renewal_window=True,
            )
        )
    assert _reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert api_error(caught.value).metadata["field"] == "override_renewal_window"
