"""OCSP (SPEC F2; RFC 6960, RFC 5019 profile): the delegated responder certificate, request
parsing and signed responses, checked against cryptography, ``openssl ocsp`` and pkilint."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from zoneinfo import ZoneInfo

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ca_service.domain.profiles import ClientCertificateProfile
from ca_service.domain.validity import validity_for
from ca_service.pki import der
from ca_service.pki.certificates import (
    SERIAL_OCTETS,
    ClientCertificateFactory,
    ClientSubject,
    build_certificate,
    extension,
    key_identifier,
    name_der,
    new_serial,
)
from ca_service.pki.hierarchy import IssuedCa, create_pair
from ca_service.pki.keys import CaPrivateKey, KeyAlgorithm, generate_key
from ca_service.pki.ocsp import (
    MAX_CERT_IDS,
    MAX_REQUEST_SIZE,
    CertId,
    CertStatus,
    OcspMalformed,
    OcspRequest,
    SingleStatus,
    build_response,
    create_ocsp_signing_certificate,
    error_response,
    parse_request,
)
from ca_service.pki.signer import SoftwareSigner
from tests.support import (
    DIGITAL_SIGNATURE_ONLY,
    EXAMPLE_CA,
    pkilint_certificate,
    pkilint_ocsp_response,
    run,
)

# openssl checks certificate validity and thisUpdate/nextUpdate against the real clock, so
# the hierarchy of this module is made "now". Everything else takes this value as input.
NOW = datetime.now(UTC).replace(microsecond=0)
THIS_UPDATE = NOW
NEXT_UPDATE = NOW + timedelta(hours=12)
REVOKED_AT = NOW - timedelta(days=2, hours=3)

CA_PROFILE = EXAMPLE_CA
CLIENT_PROFILE = ClientCertificateProfile(
    crl_url="http://crl.ca.example.jp/issuing.crl",
    ocsp_url="http://ocsp.ca.example.jp/",
    ca_issuers_url="http://ca.example.jp/issuing.cer",
    user_uri_prefix="https://ca.example.jp/users/",
)
HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
OID_SHA1 = bytes.fromhex("06052b0e03021a")
OID_SHA256 = bytes.fromhex("0609608648016503040201")
OID_NONCE = bytes.fromhex("06092b0601050507300102")
OID_ACCEPTABLE_RESPONSES = bytes.fromhex("06092b0601050507300104")
OID_BASIC = bytes.fromhex("06092b0601050507300101")
NULL = b"\x05\x00"
TRUE = b"\x01\x01\xff"


def _spki(key: CaPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _pem(certificate_der: bytes) -> bytes:
    return x509.load_der_x509_certificate(certificate_der).public_bytes(Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    directory: Path
    root: IssuedCa
    issuing: IssuedCa
    issuing_signer: SoftwareSigner
    responder_signer: SoftwareSigner
    responder_key_id: bytes
    responder_der: bytes
    responder: x509.Certificate
    issuing_cert: x509.Certificate
    leaf: x509.Certificate
    other_leaf: x509.Certificate

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def write(self, name: str, data: bytes) -> str:
        (self.directory / name).write_bytes(data)
        return self.path(name)


def _responder_certificate(
    issuing: IssuedCa, issuing_signer: SoftwareSigner, responder_key: CaPrivateKey
) -> bytes:
    return create_ocsp_signing_certificate(
        issuing_signer,
        issuer_name=issuing.subject,
        issuer_key_id=issuing.key_id,
        responder_spki=_spki(responder_key),
        common_name="Example OCSP Responder",
        organization=CA_PROFILE.organization,
        not_before=NOW - timedelta(minutes=5),
        not_after=NOW + timedelta(days=7),
    )


def _make_pki(directory: Path, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> Pki:
    pair = create_pair(algorithm, CA_PROFILE, NOW)
    root, issuing, issuing_key = pair.root, pair.issuing, pair.issuing_key
    issuing_signer = SoftwareSigner(issuing_key)
    responder_key = generate_key(KeyAlgorithm.EC_P256)
    responder_der = _responder_certificate(issuing, issuing_signer, responder_key)
    factory = ClientCertificateFactory(
        issuing_signer,
        issuer_name=issuing.subject,
        issuer_key_id=issuing.key_id,
        profile=CLIENT_PROFILE,
    )
    leaves = []
    for user_id in ("user01", "user02"):
        leaves.append(
            x509.load_der_x509_certificate(
                factory.build(
                    serial=new_serial(),
                    subject=ClientSubject(user_id=user_id, organization="株式会社サンプル"),
                    spki=_spki(ec.generate_private_key(ec.SECP256R1())),
                    validity=validity_for(NOW),
                )
            )
        )
    pki = Pki(
        directory=directory,
        root=root,
        issuing=issuing,
        issuing_signer=issuing_signer,
        responder_signer=SoftwareSigner(responder_key),
        responder_key_id=key_identifier(_spki(responder_key)),
        responder_der=responder_der,
        responder=x509.load_der_x509_certificate(responder_der),
        issuing_cert=x509.load_der_x509_certificate(issuing.certificate_der),
        leaf=leaves[0],
        other_leaf=leaves[1],
    )
    pki.write("root.pem", _pem(root.certificate_der))
    pki.write("issuing.pem", _pem(issuing.certificate_der))
    pki.write("responder.pem", _pem(responder_der))
    pki.write("responder.der", responder_der)
    pki.write("leaf.pem", leaves[0].public_bytes(Encoding.PEM))
    pki.write("other.pem", leaves[1].public_bytes(Encoding.PEM))
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("ocsp"))


def _request(
    pki: Pki,
    algorithm: str = "sha1",
    nonce: bytes | None = None,
    certificate: x509.Certificate | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate or pki.leaf, pki.issuing_cert, HASHES[algorithm]
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _respond(
    pki: Pki,
    request: OcspRequest,
    status: CertStatus = CertStatus.GOOD,
    *,
    reason: int | None = None,
    with_certificate: bool = True,
) -> bytes:
    statuses = [
        SingleStatus(
            cert_id.der,
            status,
            THIS_UPDATE,
            NEXT_UPDATE,
            revoked_at=REVOKED_AT if status is CertStatus.REVOKED else None,
            reason=reason,
        )
        for cert_id in request.cert_ids
    ]
    return build_response(
        pki.responder_signer,
        responder_key_id=pki.responder_key_id,
        responder_certificate=pki.responder_der if with_certificate else None,
        produced_at=NOW,
        statuses=statuses,
        nonce=request.nonce,
    )


# --------------------------------------------------------------------------- responder cert


def test_responder_certificate_profile(pki: Pki) -> None:
    certificate = pki.responder
    certificate.verify_directly_issued_by(pki.issuing_cert)
    assert certificate.issuer == pki.issuing_cert.subject
    assert certificate.subject.rfc4514_string() == ("CN=Example OCSP Responder,O=Example Bank CA")
    assert certificate.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert certificate.not_valid_after_utc == NOW + timedelta(days=7)
    assert der.integer(certificate.serial_number)[1] == SERIAL_OCTETS
    assert certificate.public_bytes(Encoding.DER) == pki.responder_der  # canonical DER

    extensions = certificate.extensions
    assert [e.oid for e in extensions] == [
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.OCSP_NO_CHECK,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ]
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value == x509.BasicConstraints(ca=False, path_length=None)
    key_usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value == DIGITAL_SIGNATURE_ONLY
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    nocheck = extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert not nocheck.critical
    # RFC 6960 4.2.2.2.1: the extension value is NULL.
    raw = asn1_x509.Certificate.load(pki.responder_der)["tbs_certificate"]["extensions"]
    assert [
        bytes(e["extn_value"].contents) for e in raw if e["extn_id"].native == "ocsp_no_check"
    ] == [NULL]
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value.digest == pki.responder_key_id
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == pki.issuing.key_id
    assert aki.value.authority_cert_issuer is None


def test_responder_certificate_serials_are_random(pki: Pki) -> None:
    other = _responder_certificate(
        pki.issuing, pki.issuing_signer, generate_key(KeyAlgorithm.EC_P256)
    )
    assert x509.load_der_x509_certificate(other).serial_number != pki.responder.serial_number


def test_responder_certificate_passes_pkilint(pki: Pki) -> None:
    pkilint_certificate(pki.directory / "responder.der")


def test_responder_certificate_openssl_ocsphelper_purpose(pki: Pki) -> None:
    result = run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "ocsphelper",
            "-CAfile",
            pki.path("root.pem"),
            "-untrusted",
            pki.path("issuing.pem"),
            pki.path("responder.pem"),
        ]
    )
    assert result.stdout.strip().endswith(": OK"), result.stdout


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_3072])
def test_responder_certificate_under_other_issuing_keys(
    tmp_path: Path, algorithm: KeyAlgorithm
) -> None:
    other = _make_pki(tmp_path, algorithm)
    other.responder.verify_directly_issued_by(other.issuing_cert)
    pkilint_certificate(tmp_path / "responder.der")


def test_responder_certificate_drops_fractions_of_seconds(pki: Pki) -> None:
    certificate_der = create_ocsp_signing_certificate(
        pki.issuing_signer,
        issuer_name=pki.issuing.subject,
        issuer_key_id=pki.issuing.key_id,
        responder_spki=pki.responder_signer.public_key_der,
        common_name="r",
        organization="o",
        not_before=NOW + timedelta(microseconds=999_999),
        not_after=NOW + timedelta(days=1, microseconds=5),
    )
    certificate = x509.load_der_x509_certificate(certificate_der)
    assert certificate.not_valid_before_utc == NOW
    assert certificate.not_valid_after_utc == NOW + timedelta(days=1)


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        (NOW, NOW),
        (NOW, NOW - timedelta(seconds=1)),
        (NOW.replace(tzinfo=None), NOW + timedelta(days=1)),
    ],
    ids=["empty", "reversed", "naive"],
)
def test_responder_certificate_rejects_bad_validity(
    pki: Pki, not_before: datetime, not_after: datetime
) -> None:
    with pytest.raises(ValueError, match=r"not_after|timezone"):
        create_ocsp_signing_certificate(
            pki.issuing_signer,
            issuer_name=pki.issuing.subject,
            issuer_key_id=pki.issuing.key_id,
            responder_spki=pki.responder_signer.public_key_der,
            common_name="r",
            organization="o",
            not_before=not_before,
            not_after=not_after,
        )


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("algorithm", list(HASHES))
@pytest.mark.parametrize(
    "nonce", [None, b"\x01" * 16, b"n", bytes(range(32))], ids=["none", "16", "1", "32"]
)
def test_parse_cryptography_request(pki: Pki, algorithm: str, nonce: bytes | None) -> None:
    data = _request(pki, algorithm, nonce)
    request = parse_request(data)
    expected = ocsp.load_der_ocsp_request(data)
    assert request.nonce == nonce
    (cert_id,) = request.cert_ids
    assert cert_id.hash_algorithm == algorithm == expected.hash_algorithm.name
    assert cert_id.issuer_name_hash == expected.issuer_name_hash
    assert cert_id.issuer_key_hash == expected.issuer_key_hash
    assert cert_id.serial == pki.leaf.serial_number == expected.serial_number
    # the issuer key hash is the hash of the issuing CA's public key bits (RFC 6960 4.1.1)
    digest = hashlib.new(algorithm, der.spki_key_bits(pki.issuing_signer.public_key_der))
    assert cert_id.issuer_key_hash == digest.digest()
    tbs_request = asn1_ocsp.OCSPRequest.load(data)["tbs_request"]
    assert cert_id.der == tbs_request["request_list"][0]["req_cert"].dump()
    assert cert_id.der in data


def _openssl_request(pki: Pki, name: str, *options: str) -> bytes:
    path = pki.path(name)
    run(["openssl", "ocsp", "-issuer", pki.path("issuing.pem"), *options, "-reqout", path])
    return Path(path).read_bytes()


@pytest.mark.parametrize(
    ("options", "algorithm", "has_nonce"),
    [
        (["-nonce"], "sha1", True),
        (["-no_nonce"], "sha1", False),
        (["-sha256", "-nonce"], "sha256", True),
        (["-sha256", "-no_nonce"], "sha256", False),
    ],
    ids=["sha1-nonce", "sha1", "sha256-nonce", "sha256"],
)
def test_parse_openssl_request(
    pki: Pki, options: list[str], algorithm: str, has_nonce: bool
) -> None:
    data = _openssl_request(pki, "openssl-req.der", *options, "-cert", pki.path("leaf.pem"))
    request = parse_request(data)
    (cert_id,) = request.cert_ids
    assert cert_id.hash_algorithm == algorithm
    assert cert_id.serial == pki.leaf.serial_number
    assert cert_id.der == parse_request(_request(pki, algorithm)).cert_ids[0].der
    if has_nonce:
        assert request.nonce is not None and len(request.nonce) == 16  # openssl's default
    else:
        assert request.nonce is None


def test_parse_openssl_request_with_two_certificates(pki: Pki) -> None:
    data = _openssl_request(
        pki, "two.der", "-cert", pki.path("leaf.pem"), "-cert", pki.path("other.pem")
    )
    request = parse_request(data)
    assert [c.serial for c in request.cert_ids] == [
        pki.leaf.serial_number,
        pki.other_leaf.serial_number,
    ]


# Requests assembled from parts, to reach the corners that no client library produces.


def _cert_id_der(
    algorithm: bytes = der.sequence(OID_SHA1, NULL),
    name_hash: bytes = b"\x11" * 20,
    key_hash: bytes = b"\x22" * 20,
    serial: bytes = der.integer(0x1234),
) -> bytes:
    return der.sequence(algorithm, der.octet_string(name_hash), der.octet_string(key_hash), serial)


def _extension(oid: bytes, value: bytes, *, critical: bool = False) -> bytes:
    return der.sequence(oid, *([TRUE] if critical else []), der.octet_string(value))


def _nonce_extension(nonce: bytes, *, critical: bool = False) -> bytes:
    return _extension(OID_NONCE, der.octet_string(nonce), critical=critical)


def _raw_request(
    cert_ids: list[bytes] | None = None,
    extensions: list[bytes] | None = None,
    *,
    single_extensions: list[bytes] | None = None,
    prefix: list[bytes] | None = None,
    signature: bytes | None = None,
) -> bytes:
    requests = []
    for cert_id in [_cert_id_der()] if cert_ids is None else cert_ids:
        parts = [cert_id]
        if single_extensions is not None:
            parts.append(der.tlv(0xA0, der.sequence(*single_extensions)))
        requests.append(der.sequence(*parts))
    tbs = [*(prefix or []), der.sequence(*requests)]
    if extensions is not None:
        tbs.append(der.tlv(0xA2, der.sequence(*extensions)))
    outer = [der.sequence(*tbs)]
    if signature is not None:
        outer.append(der.tlv(0xA0, signature))
    return der.sequence(*outer)


def _signature(pki: Pki) -> bytes:
    certs = der.tlv(0xA0, der.sequence(pki.responder_der))
    return der.sequence(
        pki.responder_signer.signature_algorithm, der.bit_string(b"\x30\x00"), certs
    )


ACCEPTED: dict[str, tuple[Callable[[Pki], bytes], Callable[[OcspRequest], bool]]] = {
    "16 CertIDs": (
        lambda _: _raw_request([_cert_id_der(serial=der.integer(i)) for i in range(1, 17)]),
        lambda r: [c.serial for c in r.cert_ids] == list(range(1, 17)),
    ),
    "SHA-256 with absent parameters": (
        lambda _: _raw_request(
            [_cert_id_der(der.sequence(OID_SHA256), b"\x01" * 32, b"\x02" * 32)]
        ),
        lambda r: r.cert_ids[0].hash_algorithm == "sha256",
    ),
    "SHA-1 with absent parameters": (
        lambda _: _raw_request([_cert_id_der(der.sequence(OID_SHA1))]),
        lambda r: r.cert_ids[0].hash_algorithm == "sha1",
    ),
    "1-octet nonce": (
        lambda _: _raw_request(extensions=[_nonce_extension(b"\x00")]),
        lambda r: r.nonce == b"\x00",
    ),
    "32-octet nonce": (
        lambda _: _raw_request(extensions=[_nonce_extension(b"\xff" * 32)]),
        lambda r: r.nonce == b"\xff" * 32,
    ),
    # The nonce is understood, so its critical flag does no harm (RFC 6960 4.4).
    "critical nonce": (
        lambda _: _raw_request(extensions=[_nonce_extension(b"abc", critical=True)]),
        lambda r: r.nonce == b"abc",
    ),
    "unknown non-critical extension": (
        lambda _: _raw_request(
            extensions=[_extension(der.tlv(6, b"\x2a\x03\x04"), b"junk"), _nonce_extension(b"x")]
        ),
        lambda r: r.nonce == b"x",
    ),
    "unknown non-critical single-request extension": (
        lambda _: _raw_request(single_extensions=[_extension(der.tlv(6, b"\x2a\x03"), b"")]),
        lambda r: len(r.cert_ids) == 1,
    ),
    "acceptable responses with basic": (
        lambda _: _raw_request(
            extensions=[_extension(OID_ACCEPTABLE_RESPONSES, der.sequence(OID_BASIC))]
        ),
        lambda r: r.nonce is None,
    ),
    "requestor name": (
        lambda _: _raw_request(
            prefix=[der.tlv(0xA1, der.tlv(0xA4, name_der(organization="o", common_name="c")))]
        ),
        lambda r: len(r.cert_ids) == 1,
    ),
    # DER leaves the default version out, but an explicit v1 is harmless.
    "explicit version v1": (
        lambda _: _raw_request(prefix=[der.tlv(0xA0, der.integer(0))]),
        lambda r: len(r.cert_ids) == 1,
    ),
    # RFC 6960 4.1.2: a signature is optional and ignored here (not required, not checked).
    "signed request": (
        lambda pki: _raw_request(signature=_signature(pki)),
        lambda r: len(r.cert_ids) == 1,
    ),
    # Not ours (our serials are positive), but well formed: answered "unknown".
    "zero serial": (
        lambda _: _raw_request([_cert_id_der(serial=der.integer(0))]),
        lambda r: r.cert_ids[0].serial == 0,
    ),
    "negative serial": (
        lambda _: _raw_request([_cert_id_der(serial=b"\x02\x01\x80")]),
        lambda r: r.cert_ids[0].serial == -128,
    ),
    "20-octet serial": (
        lambda _: _raw_request([_cert_id_der(serial=der.integer((1 << 159) - 1))]),
        lambda r: r.cert_ids[0].serial == (1 << 159) - 1,
    ),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_parse_accepts(pki: Pki, case: str) -> None:
    make, check = ACCEPTED[case]
    data = make(pki)
    request = parse_request(data)
    assert check(request)
    for cert_id in request.cert_ids:
        assert cert_id.der in data
    # and every accepted request can be answered
    _respond(pki, request, CertStatus.UNKNOWN)


def _valid() -> bytes:
    return _raw_request(extensions=[_nonce_extension(b"n" * 16)])


def _nested(depth: int) -> bytes:
    element = NULL
    for _ in range(depth):
        element = der.sequence(element)
    return der.tlv(0xA1, element)


def _append(element: bytes, extra: bytes) -> bytes:
    _, start, end = der.read_tlv(element)
    return der.tlv(element[0], element[start:end] + extra)


def _long_form(element: bytes) -> bytes:
    """The same element with a 3-octet length (a leading zero octet: not minimal)."""
    _, start, end = der.read_tlv(element)
    return element[:1] + b"\x83\x00" + (end - start).to_bytes(2, "big") + element[start:end]


REJECTED: dict[str, Callable[[Pki], object]] = {
    "empty": lambda _: b"",
    "garbage": lambda _: b"GET / HTTP/1.1\r\n\r\n",
    "single byte": lambda _: b"\x30",
    "empty sequence": lambda _: b"\x30\x00",
    "truncated": lambda _: _valid()[:-1],
    "trailing bytes": lambda _: _valid() + b"\x00",
    "two requests": lambda _: _valid() + _valid(),
    "not bytes": lambda pki: _valid().hex(),
    "too large": lambda _: _raw_request(
        extensions=[_extension(der.tlv(6, b"\x2a\x03"), b"\x00" * MAX_REQUEST_SIZE)]
    ),
    "certificate instead of request": lambda pki: pki.responder_der,
    "OCSP response instead of request": lambda _: error_response("malformed_request"),
    "zero CertIDs": lambda _: _raw_request([]),
    "17 CertIDs": lambda _: _raw_request([_cert_id_der()] * (MAX_CERT_IDS + 1)),
    "MD5 CertID": lambda _: _raw_request(
        [
            _cert_id_der(
                der.sequence(bytes.fromhex("06082a864886f70d0205"), NULL),
                b"\x01" * 16,
                b"\x02" * 16,
            )
        ]
    ),
    "SHA-224 CertID": lambda _: _raw_request(
        [
            _cert_id_der(
                der.sequence(bytes.fromhex("0609608648016503040204")), b"\x01" * 28, b"\x02" * 28
            )
        ]
    ),
    "hash parameters not NULL": lambda _: _raw_request(
        [_cert_id_der(der.sequence(OID_SHA1, der.integer(0)))]
    ),
    "SHA-1 name hash of 32 octets": lambda _: _raw_request([_cert_id_der(name_hash=b"\x01" * 32)]),
    "SHA-256 key hash of 20 octets": lambda _: _raw_request(
        [_cert_id_der(der.sequence(OID_SHA256), b"\x01" * 32, b"\x02" * 20)]
    ),
    "21-octet serial": lambda _: _raw_request([_cert_id_der(serial=der.integer(1 << 160))]),
    "serial not minimally encoded": lambda _: _raw_request(
        [_cert_id_der(serial=b"\x02\x02\x00\x01")]
    ),
    "empty serial": lambda _: _raw_request([_cert_id_der(serial=b"\x02\x00")]),
    "serial as OCTET STRING": lambda _: _raw_request([_cert_id_der(serial=b"\x04\x01\x01")]),
    "CertID with a fifth field": lambda _: _raw_request(
        [
            der.sequence(
                der.sequence(OID_SHA1, NULL),
                der.octet_string(b"\x11" * 20),
                der.octet_string(b"\x22" * 20),
                der.integer(1),
                NULL,
            )
        ]
    ),
    "empty nonce": lambda _: _raw_request(extensions=[_nonce_extension(b"")]),
    "33-octet nonce": lambda _: _raw_request(extensions=[_nonce_extension(b"n" * 33)]),
    # RFC 8954 2.1: the nonce is an OCTET STRING inside the extnValue OCTET STRING.
    "nonce without inner OCTET STRING": lambda _: _raw_request(
        extensions=[_extension(OID_NONCE, b"n" * 16)]
    ),
    "nonce with trailing bytes": lambda _: _raw_request(
        extensions=[_extension(OID_NONCE, der.octet_string(b"n" * 16) + b"\x00")]
    ),
    "nonce inner length non-minimal": lambda _: _raw_request(
        extensions=[_extension(OID_NONCE, b"\x04\x81\x10" + b"n" * 16)]
    ),
    "duplicate nonce": lambda _: _raw_request(
        extensions=[_nonce_extension(b"a"), _nonce_extension(b"b")]
    ),
    "empty extension list": lambda _: _raw_request(extensions=[]),
    "17 extensions": lambda _: _raw_request(
        extensions=[_extension(der.tlv(6, bytes((0x2A, i))), b"") for i in range(17)]
    ),
    "unknown critical extension": lambda _: _raw_request(
        extensions=[_extension(der.tlv(6, b"\x2a\x03\x04"), b"", critical=True)]
    ),
    "critical single-request extension": lambda _: _raw_request(
        single_extensions=[_extension(der.tlv(6, b"\x2a\x03"), b"", critical=True)]
    ),
    "critical preferred signature algorithms (not acted on)": lambda _: _raw_request(
        extensions=[
            _extension(
                bytes.fromhex("06092b0601050507300108"),
                der.sequence(der.sequence(bytes.fromhex("06082a8648ce3d040302"))),
                critical=True,
            )
        ]
    ),
    "acceptable responses without basic": lambda _: _raw_request(
        extensions=[_extension(OID_ACCEPTABLE_RESPONSES, der.sequence(der.tlv(6, b"\x2a\x03")))]
    ),
    "version v2": lambda _: _raw_request(prefix=[der.tlv(0xA0, der.integer(1))]),
    "critical flag not DER": lambda _: _raw_request(
        extensions=[
            der.sequence(OID_NONCE, b"\x01\x01\x01", der.octet_string(der.octet_string(b"n")))
        ]
    ),
    "indefinite length (BER)": lambda _: b"\x30\x80" + _valid()[2:] + b"\x00\x00",
    "non-minimal length": lambda _: _long_form(_valid()),
    "constructed OCTET STRING (BER)": lambda _: _raw_request(
        [
            der.sequence(
                der.sequence(OID_SHA1, NULL),
                der.tlv(0x24, der.octet_string(b"\x11" * 20)),
                der.octet_string(b"\x22" * 20),
                der.integer(1),
            )
        ]
    ),
    "high tag number": lambda _: _raw_request(prefix=[b"\x1f\x21\x00"]),
    "deep nesting": lambda _: _raw_request(prefix=[_nested(40)]),
    # asn1crypto on its own would ignore elements after the last field of a SEQUENCE.
    "extra element in OCSPRequest": lambda _: _append(_raw_request(), NULL),
    "extra element in TBSRequest": lambda _: der.sequence(
        der.sequence(der.sequence(der.sequence(_cert_id_der())), NULL)
    ),
    "version after the request list": lambda _: der.sequence(
        der.sequence(der.sequence(der.sequence(_cert_id_der())), der.tlv(0xA0, der.integer(0)))
    ),
    "extra element in Request": lambda _: der.sequence(
        der.sequence(der.sequence(der.sequence(_cert_id_der(), NULL)))
    ),
    "extra element in an extension": lambda _: _raw_request(
        extensions=[der.sequence(OID_NONCE, der.octet_string(der.octet_string(b"n")), NULL)]
    ),
    "extension without value": lambda _: _raw_request(extensions=[der.sequence(OID_NONCE)]),
    "request list as SET": lambda _: der.sequence(
        der.sequence(der.set_of(der.sequence(_cert_id_der())))
    ),
    "signature that is not a Signature": lambda _: _raw_request(signature=der.sequence(NULL)),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_parse_rejects(pki: Pki, case: str) -> None:
    data = REJECTED[case](pki)
    with pytest.raises(OcspMalformed):
        parse_request(data)  # type: ignore[arg-type]


def test_malformed_is_a_value_error() -> None:
    assert issubclass(OcspMalformed, ValueError)


# --------------------------------------------------------------------------- responses


def _verify_signature(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> None:
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert response.signature_hash_algorithm is not None
    public_key.verify(
        response.signature,
        response.tbs_response_bytes,
        ec.ECDSA(response.signature_hash_algorithm),
    )


def _check_common(
    pki: Pki, data: bytes, request_der: bytes, request: OcspRequest
) -> ocsp.OCSPResponse:
    response = ocsp.load_der_ocsp_response(data)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.responder_key_hash == pki.responder_key_id
    assert response.responder_name is None
    assert response.produced_at_utc == NOW
    assert response.certificates == [pki.responder]
    _verify_signature(response, pki.responder)
    expected = ocsp.load_der_ocsp_request(request_der)
    assert response.serial_number == expected.serial_number
    assert response.issuer_name_hash == expected.issuer_name_hash
    assert response.issuer_key_hash == expected.issuer_key_hash
    assert response.hash_algorithm.name == expected.hash_algorithm.name
    assert response.this_update_utc == THIS_UPDATE
    assert response.next_update_utc == NEXT_UPDATE
    assert len(response.single_extensions) == 0
    # the CertID is echoed byte for byte (RFC 6960 4.2.1)
    single = asn1_ocsp.OCSPResponse.load(data).basic_ocsp_response["tbs_response_data"]
    assert single["responses"][0]["cert_id"].dump() == request.cert_ids[0].der
    if request.nonce is None:
        assert len(response.extensions) == 0
    else:
        nonce = response.extensions.get_extension_for_class(x509.OCSPNonce)
        assert not nonce.critical
        assert nonce.value.nonce == request.nonce
        assert len(response.extensions) == 1
    return response


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
@pytest.mark.parametrize("nonce", [None, b"\x42" * 32], ids=["no-nonce", "nonce"])
def test_good_response(pki: Pki, algorithm: str, nonce: bytes | None) -> None:
    request_der = _request(pki, algorithm, nonce)
    request = parse_request(request_der)
    response = _check_common(pki, _respond(pki, request), request_der, request)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.revocation_time_utc is None
    assert response.revocation_reason is None


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
@pytest.mark.parametrize(
    ("reason", "flag"),
    [
        (None, None),
        (0, None),  # RFC 5280 5.3.1: "unspecified" is written by leaving the reason out
        (1, x509.ReasonFlags.key_compromise),
        (4, x509.ReasonFlags.superseded),
        (5, x509.ReasonFlags.cessation_of_operation),
        (9, x509.ReasonFlags.privilege_withdrawn),
    ],
)
def test_revoked_response(
    pki: Pki, algorithm: str, reason: int | None, flag: x509.ReasonFlags | None
) -> None:
    request_der = _request(pki, algorithm, b"nonce")
    request = parse_request(request_der)
    data = _respond(pki, request, CertStatus.REVOKED, reason=reason)
    response = _check_common(pki, data, request_der, request)
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == REVOKED_AT
    assert response.revocation_reason == flag
    revoked = asn1_ocsp.OCSPResponse.load(data).response_data["responses"][0]["cert_status"]
    assert revoked.name == "revoked"
    assert isinstance(revoked.chosen["revocation_reason"], asn1_core.Void) == (flag is None)


def test_unknown_response(pki: Pki) -> None:
    request_der = _request(pki, "sha256")
    request = parse_request(request_der)
    response = _check_common(pki, _respond(pki, request, CertStatus.UNKNOWN), request_der, request)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_response_answers_every_cert_id_in_order(pki: Pki) -> None:
    data = _openssl_request(
        pki, "two.der", "-cert", pki.path("leaf.pem"), "-cert", pki.path("other.pem")
    )
    request = parse_request(data)
    statuses = [
        SingleStatus(request.cert_ids[0].der, CertStatus.GOOD, THIS_UPDATE, NEXT_UPDATE),
        SingleStatus(
            request.cert_ids[1].der,
            CertStatus.REVOKED,
            THIS_UPDATE,
            NEXT_UPDATE,
            revoked_at=REVOKED_AT,
            reason=3,
        ),
    ]
    response_der = build_response(
        pki.responder_signer,
        responder_key_id=pki.responder_key_id,
        responder_certificate=pki.responder_der,
        produced_at=NOW,
        statuses=statuses,
        nonce=request.nonce,
    )
    response = ocsp.load_der_ocsp_response(response_der)
    singles = list(response.responses)
    assert [s.serial_number for s in singles] == [c.serial for c in request.cert_ids]
    assert [s.certificate_status for s in singles] == [
        ocsp.OCSPCertStatus.GOOD,
        ocsp.OCSPCertStatus.REVOKED,
    ]
    assert singles[1].revocation_reason is x509.ReasonFlags.affiliation_changed
    _verify_signature(response, pki.responder)
    # openssl matches both answers to its own CertIDs and checks the nonce
    response_path = pki.write("two-resp.der", response_der)
    _openssl_verify_ok(pki, response_path, pki.path("two.der"))
    result = _openssl_check(
        pki,
        "-respin",
        response_path,
        "-issuer",
        pki.path("issuing.pem"),
        "-cert",
        pki.path("leaf.pem"),
        "-cert",
        pki.path("other.pem"),
        "-no_nonce",
    )
    assert "leaf.pem: good" in result.stdout, result.stdout
    assert "other.pem: revoked" in result.stdout, result.stdout
    assert "Reason: affiliationChanged" in result.stdout, result.stdout


def test_response_without_certificate_and_without_next_update(pki: Pki) -> None:
    request = parse_request(_request(pki))
    data = build_response(
        pki.responder_signer,
        responder_key_id=pki.responder_key_id,
        responder_certificate=None,
        produced_at=NOW,
        statuses=[SingleStatus(request.cert_ids[0].der, CertStatus.GOOD, THIS_UPDATE, None)],
    )
    response = ocsp.load_der_ocsp_response(data)
    assert response.certificates == []
    assert response.next_update_utc is None
    assert isinstance(
        asn1_ocsp.OCSPResponse.load(data).basic_ocsp_response["certs"], asn1_core.Void
    )
    _verify_signature(response, pki.responder)


def test_response_is_canonical_der(pki: Pki) -> None:
    request = parse_request(_request(pki, nonce=b"n" * 20))
    data = _respond(pki, request, CertStatus.REVOKED, reason=1)
    parsed = asn1_ocsp.OCSPResponse.load(data, strict=True)
    _ = parsed.native  # decodes every part
    assert parsed.dump(force=True) == data
    basic = parsed.basic_ocsp_response
    # version DEFAULT v1 left out; GeneralizedTime everywhere (RFC 6960 4.2.1)
    assert bytes(basic["tbs_response_data"].contents).startswith(b"\xa2\x16\x04\x14")
    assert basic["tbs_response_data"]["produced_at"].tag == 24


def test_times_drop_fractions_and_stay_generalized_after_2049(pki: Pki) -> None:
    request = parse_request(_request(pki))
    late = datetime(2061, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    data = build_response(
        pki.responder_signer,
        responder_key_id=pki.responder_key_id,
        responder_certificate=pki.responder_der,
        produced_at=late,
        statuses=[
            SingleStatus(
                request.cert_ids[0].der,
                CertStatus.GOOD,
                late,
                late + timedelta(hours=1),
            )
        ],
    )
    assert b"\x18\x0f20610304050607Z" in data
    response = ocsp.load_der_ocsp_response(data)
    assert response.produced_at_utc == late.replace(microsecond=0)
    assert response.next_update_utc == datetime(2061, 3, 4, 6, 6, 7, tzinfo=UTC)


def test_times_in_other_zones_are_encoded_in_utc(pki: Pki) -> None:
    request = parse_request(_request(pki))
    japan = datetime(2026, 1, 1, 18, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    data = build_response(
        pki.responder_signer,
        responder_key_id=pki.responder_key_id,
        responder_certificate=None,
        produced_at=japan,
        statuses=[SingleStatus(request.cert_ids[0].der, CertStatus.GOOD, japan, None)],
    )
    assert b"\x18\x0f20260101090000Z" in data


def test_issuing_ca_may_sign_its_own_responses(pki: Pki) -> None:
    request_der = _request(pki, nonce=b"n" * 16)
    request = parse_request(request_der)
    data = build_response(
        pki.issuing_signer,
        responder_key_id=pki.issuing.key_id,
        responder_certificate=None,
        produced_at=NOW,
        statuses=[SingleStatus(request.cert_ids[0].der, CertStatus.GOOD, THIS_UPDATE, None)],
        nonce=request.nonce,
    )
    response = ocsp.load_der_ocsp_response(data)
    assert response.responder_key_hash == pki.issuing.key_id
    _verify_signature(response, pki.issuing_cert)
    _openssl_verify_ok(pki, pki.write("ca-signed.der", data), pki.write("ca-req.der", request_der))


def test_signature_does_not_verify_with_another_key(pki: Pki) -> None:
    request = parse_request(_request(pki))
    response = ocsp.load_der_ocsp_response(_respond(pki, request))
    with pytest.raises(InvalidSignature):
        _verify_signature(response, pki.issuing_cert)


# -- argument checks


def _status(**changes: object) -> SingleStatus:
    fields: dict[str, object] = {
        "cert_id_der": _cert_id_der(),
        "status": CertStatus.GOOD,
        "this_update": THIS_UPDATE,
        "next_update": NEXT_UPDATE,
    }
    fields.update(changes)
    return SingleStatus(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"this_update": THIS_UPDATE.replace(tzinfo=None)},
        {"next_update": NEXT_UPDATE.replace(tzinfo=None)},
        {"next_update": THIS_UPDATE},
        {"next_update": THIS_UPDATE - timedelta(seconds=1)},
        {"status": CertStatus.REVOKED},
        {"status": CertStatus.REVOKED, "revoked_at": REVOKED_AT.replace(tzinfo=None)},
        {"status": CertStatus.REVOKED, "revoked_at": REVOKED_AT, "reason": 7},
        {"status": CertStatus.REVOKED, "revoked_at": REVOKED_AT, "reason": 11},
        {"status": CertStatus.REVOKED, "revoked_at": REVOKED_AT, "reason": -1},
        {"revoked_at": REVOKED_AT},
        {"status": CertStatus.UNKNOWN, "reason": 1},
        {"cert_id_der": b""},
        {"cert_id_der": b"\x04\x00"},
        {"cert_id_der": _cert_id_der() + b"\x00"},
        {"cert_id_der": _cert_id_der()[:-1]},
    ],
)
def test_single_status_rejects(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _status(**changes)


def _build(pki: Pki, **changes: object) -> bytes:
    arguments: dict[str, object] = {
        "responder_key_id": pki.responder_key_id,
        "responder_certificate": pki.responder_der,
        "produced_at": NOW,
        "statuses": [_status()],
        "nonce": None,
    }
    arguments.update(changes)
    return build_response(pki.responder_signer, **arguments)  # type: ignore[arg-type]


def test_build_defaults_are_valid(pki: Pki) -> None:
    ocsp.load_der_ocsp_response(_build(pki))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"statuses": []}, "at least one"),
        ({"produced_at": NOW.replace(tzinfo=None)}, "timezone"),
        ({"responder_key_id": b"\x00" * 20}, "responder_key_id"),
        ({"nonce": b""}, "nonce"),
        ({"nonce": b"n" * 33}, "nonce"),
        ({"responder_certificate": b"\x30\x00"}, "responder_certificate"),
    ],
)
def test_build_rejects(pki: Pki, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(pki, **changes)


def test_build_rejects_a_certificate_for_another_key(pki: Pki) -> None:
    # The issuing CA's certificate does not certify the responder key: clients would reject
    # every response, so the mistake is caught when the response is built.
    with pytest.raises(ValueError, match="does not certify"):
        _build(pki, responder_certificate=pki.issuing.certificate_der)


# --------------------------------------------------------------------------- error responses


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("malformed_request", 1, ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("internal_error", 2, ocsp.OCSPResponseStatus.INTERNAL_ERROR),
        ("try_later", 3, ocsp.OCSPResponseStatus.TRY_LATER),
        ("sig_required", 5, ocsp.OCSPResponseStatus.SIG_REQUIRED),
        ("unauthorized", 6, ocsp.OCSPResponseStatus.UNAUTHORIZED),
    ],
)
def test_error_response(
    pki: Pki, status: str, code: int, expected: ocsp.OCSPResponseStatus
) -> None:
    data = error_response(status)
    assert data == bytes((0x30, 0x03, 0x0A, 0x01, code))  # no responseBytes (RFC 6960 2.3)
    assert ocsp.load_der_ocsp_response(data).response_status is expected
    pkilint_ocsp_response(pki.write(f"error-{status}.der", data))


def test_error_response_rejects_unknown_status() -> None:
    for status in ("successful", "sign_required", "", "MALFORMED_REQUEST"):
        with pytest.raises(ValueError, match="unknown OCSP error status"):
            error_response(status)


# --------------------------------------------------------------------------- openssl, pkilint


def _openssl_check(pki: Pki, *options: str, check: bool = True) -> CompletedProcess[str]:
    """``openssl ocsp`` with ``options``, trusting the root alone and given the issuing CA
    to build the responder's chain with."""
    trust = ["-CAfile", pki.path("root.pem"), "-verify_other", pki.path("issuing.pem")]
    return run(["openssl", "ocsp", *options, *trust], check=check)


def _openssl_verify_ok(pki: Pki, response_path: str, request_path: str) -> None:
    """Verifies signature, delegation (responder certificate issued by the issuing CA with
    id-kp-OCSPSigning) and chain to the root as the only trust anchor, and the nonce."""
    result = _openssl_check(pki, "-reqin", request_path, "-respin", response_path, "-x509_strict")
    assert "Response verify OK" in result.stderr, result.stderr
    assert "WARNING" not in result.stderr, result.stderr


def _openssl_status(pki: Pki, response_path: str, algorithm: str) -> str:
    """openssl's per-certificate status lines. With -cert, openssl builds its own request
    (and ignores -reqin), so the nonce is checked by _openssl_verify_ok instead."""
    result = _openssl_check(
        pki,
        "-respin",
        response_path,
        "-issuer",
        pki.path("issuing.pem"),
        *(["-sha256"] if algorithm == "sha256" else []),
        "-cert",
        pki.path("leaf.pem"),
        "-no_nonce",
        "-x509_strict",
    )
    assert "Response verify OK" in result.stderr, result.stderr
    return result.stdout


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
@pytest.mark.parametrize("status", list(CertStatus), ids=lambda s: s.value)
def test_openssl_verifies_response(pki: Pki, algorithm: str, status: CertStatus) -> None:
    request_path = pki.path(f"req-{algorithm}-{status.value}.der")
    run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            pki.path("issuing.pem"),
            *(["-sha256"] if algorithm == "sha256" else []),
            "-cert",
            pki.path("leaf.pem"),
            "-nonce",
            "-reqout",
            request_path,
        ]
    )
    request = parse_request(Path(request_path).read_bytes())
    assert request.nonce is not None
    reason = 1 if status is CertStatus.REVOKED else None
    response_path = pki.write(
        f"resp-{algorithm}-{status.value}.der", _respond(pki, request, status, reason=reason)
    )
    _openssl_verify_ok(pki, response_path, request_path)
    output = _openssl_status(pki, response_path, algorithm)
    assert f"leaf.pem: {status.value}" in output, output
    if status is CertStatus.REVOKED:
        assert "Reason: keyCompromise" in output, output
        assert "Revocation Time:" in output, output


def _openssl_verify_fails(pki: Pki, response_path: str, request_path: str, error: str) -> None:
    result = _openssl_check(pki, "-reqin", request_path, "-respin", response_path, check=False)
    assert result.returncode != 0
    assert error in result.stderr, result.stderr


def test_openssl_rejects_a_nonce_mismatch(pki: Pki) -> None:
    request_path = pki.write("nonce-a.der", _request(pki, nonce=b"a" * 16))
    response = _respond(pki, parse_request(_request(pki, nonce=b"b" * 16)))
    _openssl_verify_fails(pki, pki.write("nonce-b.der", response), request_path, "Nonce Verify")


def test_openssl_rejects_a_responder_without_ocsp_signing(pki: Pki) -> None:
    # Same responder key, certified by the issuing CA but without id-kp-OCSPSigning: this
    # is what makes the delegation (RFC 6960 4.2.2.2), so openssl must refuse.
    spki = pki.responder_signer.public_key_der
    certificate = build_certificate(
        pki.issuing_signer,
        serial=new_serial(),
        issuer=pki.issuing.subject,
        not_before=NOW - timedelta(minutes=5),
        not_after=NOW + timedelta(days=1),
        subject=name_der(organization="o", common_name="not a responder"),
        spki=spki,
        extensions=[
            extension("basic_constraints", {"ca": False}, critical=True),
            extension("key_usage", {"digital_signature"}, critical=True),
            extension("extended_key_usage", ["client_auth"]),
            extension("key_identifier", key_identifier(spki)),
            extension("authority_key_identifier", {"key_identifier": pki.issuing.key_id}),
        ],
    )
    request_der = _request(pki)
    request = parse_request(request_der)
    response = build_response(
        pki.responder_signer,
        responder_key_id=pki.responder_key_id,
        responder_certificate=certificate,
        produced_at=NOW,
        statuses=[SingleStatus(request.cert_ids[0].der, CertStatus.GOOD, THIS_UPDATE, None)],
    )
    _openssl_verify_fails(
        pki,
        pki.write("no-eku.der", response),
        pki.write("no-eku-req.der", request_der),
        "Response Verify Failure",
    )


def test_openssl_rejects_a_forged_signature(pki: Pki) -> None:
    request_der = _request(pki)
    data = bytearray(_respond(pki, parse_request(request_der)))
    # flip a bit of the serial inside tbsResponseData: the signature no longer matches
    position = data.index(der.integer(pki.leaf.serial_number)) + 5
    data[position] ^= 0x01
    _openssl_verify_fails(
        pki,
        pki.write("forged.der", bytes(data)),
        pki.write("forged-req.der", request_der),
        "Response Verify Failure",
    )


@pytest.mark.parametrize("status", list(CertStatus), ids=lambda s: s.value)
@pytest.mark.parametrize("nonce", [None, b"n" * 32], ids=["no-nonce", "nonce"])
def test_pkilint_response(pki: Pki, status: CertStatus, nonce: bytes | None) -> None:
    request = parse_request(_request(pki, "sha256", nonce))
    reason = 1 if status is CertStatus.REVOKED else None
    data = _respond(pki, request, status, reason=reason)
    pkilint_ocsp_response(pki.write(f"lint-{status.value}-{nonce is not None}.der", data))


# --------------------------------------------------------------------------- types


def test_value_objects_are_frozen() -> None:
    cert_id = CertId("sha1", b"", b"", 1, b"")
    with pytest.raises(AttributeError):
        cert_id.serial = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        OcspRequest((cert_id,), None).nonce = b""  # type: ignore[misc]
