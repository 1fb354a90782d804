"""Caller-supplied PKCS#10 requests (SPEC C4): which keys are signed, and why others are not."""

from __future__ import annotations

import base64
import contextlib
import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service.pki import der
from ca_service.pki.csr import MAX_CSR_BYTES, CsrRejected, accepted_public_key
from tests.support import make_csr


def _csr(key: Any, encoding: Encoding = Encoding.DER) -> bytes:
    return make_csr("CN=user01", key=key, encoding=encoding)


def _spki(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


_KEYS: dict[str, Any] = {}


def _key(kind: str) -> Any:
    """Keys are made once per session run of this module (RSA generation is slow)."""
    if kind not in _KEYS:
        _KEYS[kind] = {
            "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
            "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
            "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
            "Ed25519": ed25519.Ed25519PrivateKey.generate,
            "Ed448": ed448.Ed448PrivateKey.generate,
            "RSA-1024": lambda: rsa.generate_private_key(65537, 1024),
            "RSA-2040": lambda: rsa.generate_private_key(65537, 2040),
            "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
            "DSA-1024": lambda: dsa.generate_private_key(1024),
        }[kind]()
    return _KEYS[kind]


ACCEPTED = ["P-256", "P-384", "Ed25519", "RSA-2048"]


def _tamper_signature(csr_der: bytes) -> bytes:
    """Flips one bit in the last octet of the signature BIT STRING (the CSR's last element)."""
    _, start, end = der.read_tlv(csr_der)
    _, _, info_end = der.read_tlv(csr_der, start)
    _, _, algorithm_end = der.read_tlv(csr_der, info_end)
    tag, _, bits_end = der.read_tlv(csr_der, algorithm_end)
    assert tag == 0x03 and bits_end == end == len(csr_der)
    tampered = bytearray(csr_der)
    tampered[-1] ^= 0x01
    return bytes(tampered)


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("encoding", [Encoding.DER, Encoding.PEM], ids=["DER", "PEM"])
@pytest.mark.parametrize("kind", ACCEPTED)
def test_accepted_keys(kind: str, encoding: Encoding) -> None:
    key = _key(kind)
    assert accepted_public_key(_csr(key, encoding)) == _spki(key)


def test_pem_with_leading_white_space_is_accepted() -> None:
    key = _key("P-256")
    assert accepted_public_key(b"\n  \r\n" + _csr(key, Encoding.PEM)) == _spki(key)


def test_subject_and_extensions_do_not_matter() -> None:
    key = _key("P-256")
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    assert accepted_public_key(request.public_bytes(Encoding.DER)) == _spki(key)


# --------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("P-521", "EC curve secp521r1 is not accepted"),
        ("secp256k1", "EC curve secp256k1 is not accepted"),
        ("RSA-1024", "RSA key of 1024 bits is not accepted"),
        ("RSA-2040", "RSA key of 2040 bits is not accepted"),
        ("Ed448", "Ed448PublicKey keys are not accepted"),
        ("DSA-1024", "DSAPublicKey keys are not accepted"),
    ],
)
@pytest.mark.parametrize("encoding", [Encoding.DER, Encoding.PEM], ids=["DER", "PEM"])
def test_rejected_keys(kind: str, message: str, encoding: Encoding) -> None:
    with pytest.raises(CsrRejected, match=message):
        accepted_public_key(_csr(_key(kind), encoding))


def test_empty_rejected() -> None:
    with pytest.raises(CsrRejected, match="empty"):
        accepted_public_key(b"")


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"\x00",
        b"\x30\x03\x02\x01\x01",
        b"-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n",
        b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        b" " * 100,
    ],
    ids=["text", "nul", "wrong-der", "bad-pem-body", "wrong-pem-type", "spaces"],
)
def test_garbage_rejected(data: bytes) -> None:
    with pytest.raises(CsrRejected, match="not a valid PKCS#10 request"):
        accepted_public_key(data)


@pytest.mark.parametrize("kind", ACCEPTED)
def test_truncated_rejected(kind: str) -> None:
    csr_der = _csr(_key(kind))
    for cut in (1, len(csr_der) // 2, len(csr_der) - 1):
        with pytest.raises(CsrRejected, match="not a valid PKCS#10 request"):
            accepted_public_key(csr_der[:cut])


def test_oversized_rejected() -> None:
    valid = _csr(_key("P-256"), Encoding.PEM)
    oversized = valid + b"\n" * (MAX_CSR_BYTES + 1 - len(valid))
    assert len(oversized) == MAX_CSR_BYTES + 1
    with pytest.raises(CsrRejected, match=f"larger than {MAX_CSR_BYTES} bytes"):
        accepted_public_key(oversized)
    with pytest.raises(CsrRejected, match="larger than"):
        accepted_public_key(b"\x30" * (10 * MAX_CSR_BYTES))


def test_size_limit_is_inclusive() -> None:
    # Exactly MAX_CSR_BYTES is not "too large"; it fails only for being garbage.
    with pytest.raises(CsrRejected, match="not a valid PKCS#10 request"):
        accepted_public_key(b"x" * MAX_CSR_BYTES)


def test_certificate_is_not_a_csr() -> None:
    key = _key("P-256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    now = datetime(2026, 11, 21, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    for encoding in (Encoding.DER, Encoding.PEM):
        with pytest.raises(CsrRejected, match="not a valid PKCS#10 request"):
            accepted_public_key(certificate.public_bytes(encoding))


@pytest.mark.parametrize("kind", ACCEPTED)
def test_tampered_signature_rejected(kind: str) -> None:
    csr_der = _csr(_key(kind))
    with pytest.raises(CsrRejected, match="signature does not verify"):
        accepted_public_key(_tamper_signature(csr_der))


@pytest.mark.parametrize("kind", ACCEPTED)
def test_tampered_request_info_rejected(kind: str) -> None:
    # Change the subject (CN=user01 -> CN=user02) after signing.
    csr_der = _csr(_key(kind))
    assert csr_der.count(b"user01") == 1
    with pytest.raises(CsrRejected, match="signature does not verify"):
        accepted_public_key(csr_der.replace(b"user01", b"user02"))


# AlgorithmIdentifier DER for relabelling a P-256/SHA-256 request's signatureAlgorithm.
SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
RSASSA_PSS_SHA256 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f7"
    "0d010108300d06096086480165030402010500a203020120"
)
ED25519 = bytes.fromhex("300506032b6570")
ECDSA_WITH_SHA1 = bytes.fromhex("300906072a8648ce3d0401")
ECDSA_WITH_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
UNKNOWN_ALGORITHM = bytes.fromhex("300606042a030405")  # 1.2.3.4.5


def _split(csr_der: bytes) -> tuple[bytes, bytes, bytes]:
    """(certificationRequestInfo, signatureAlgorithm, signature) element encodings."""
    _, start, end = der.read_tlv(csr_der)
    _, _, info_end = der.read_tlv(csr_der, start)
    _, _, algorithm_end = der.read_tlv(csr_der, info_end)
    return csr_der[start:info_end], csr_der[info_end:algorithm_end], csr_der[algorithm_end:end]


def _relabel(csr_der: bytes, algorithm: bytes) -> bytes:
    info, _, signature = _split(csr_der)
    return der.sequence(info, algorithm, signature)


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (ED25519, "signature does not verify"),
        (ECDSA_WITH_SHA384, "signature does not verify"),
        (UNKNOWN_ALGORITHM, "signature algorithm 1.2.3.4.5 is not accepted"),
    ],
    ids=["Ed25519", "ecdsa-with-SHA384", "unknown-oid"],
)
def test_relabelled_ec_signature_rejected(algorithm: bytes, message: str) -> None:
    relabelled = _relabel(_p256_csr(), algorithm)
    assert not x509.load_der_x509_csr(relabelled).is_signature_valid
    with pytest.raises(CsrRejected, match=message):
        accepted_public_key(relabelled)


@pytest.mark.parametrize(
    "algorithm",
    [SHA256_WITH_RSA, RSASSA_PSS_SHA256],
    ids=["sha256WithRSAEncryption", "RSASSA-PSS-SHA256"],
)
def test_ec_request_with_rsa_signature_algorithm_rejected(algorithm: bytes) -> None:
    # The ECDSA/SHA-256 signature is genuine; only the algorithm label is wrong, so the
    # request is malformed. cryptography's own check (used for every other key type, and
    # for EC keys before the fast path) says the signature is not valid.
    relabelled = _relabel(_p256_csr(), algorithm)
    assert not x509.load_der_x509_csr(relabelled).is_signature_valid
    with pytest.raises(CsrRejected):
        accepted_public_key(relabelled)


def test_ecdsa_with_sha1_rejected() -> None:
    key = _key("P-256")
    info, _, _ = _split(_p256_csr())
    signature = key.sign(info, ec.ECDSA(hashes.SHA1()))
    request = der.sequence(info, ECDSA_WITH_SHA1, der.bit_string(signature))
    assert not x509.load_der_x509_csr(request).is_signature_valid
    with pytest.raises(CsrRejected):
        accepted_public_key(request)


def test_rejection_is_a_value_error() -> None:
    assert issubclass(CsrRejected, ValueError)


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=2000))
def test_property_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with contextlib.suppress(CsrRejected):
        accepted_public_key(data)


@functools.cache
def _p256_csr() -> bytes:
    return _csr(_key("P-256"))


@settings(max_examples=100, deadline=None, database=None)
@given(st.data())
def test_property_any_single_byte_change_is_rejected_or_harmless(data: st.DataObject) -> None:
    key = _key("P-256")
    csr_der = _p256_csr()  # fixed: ECDSA signatures vary in length from one signing to the next
    position = data.draw(st.integers(0, len(csr_der) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = bytearray(csr_der)
    changed[position] ^= flip
    try:
        spki = accepted_public_key(bytes(changed))
    except CsrRejected:
        return
    # Only changes that leave the signed content and key intact may pass.
    assert spki == _spki(key)


# --------------------------------------------------------------------------- messages

# Text that only a parser's internals would produce (cryptography's Rust ASN.1 and PEM
# errors, asn1crypto's), never a rule a caller can act on.
_INTERNALS = re.compile(
    r"ParseError|ShortData|UnexpectedTag|ExtraData|InvalidData|MalformedFraming|asn1|"
    r"Tag \{|cryptography\.io|[{}]|Traceback|Error\b",
    re.IGNORECASE,
)


def _pem(der_bytes: bytes, label: str = "CERTIFICATE REQUEST") -> bytes:
    body = base64.encodebytes(der_bytes)
    return b"-----BEGIN %s-----\n%s-----END %s-----\n" % (label.encode(), body, label.encode())


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("truncated", "it is cut short, or its length is not in DER form"),
        ("indefinite-length", "its length is not in DER form (X.690 10.1)"),
        ("truncated-inside", "a part of it is cut short"),
        ("garbage", "DER-encoded CertificationRequest (a SEQUENCE, RFC 2986 section 4.2)"),
        ("trailing-bytes", "2 bytes follow the end of the DER-encoded request"),
        ("three-parts", "request info, the signature algorithm and the signature"),
        ("wrong-signature", "CSR signature does not verify with its own public key"),
        ("pem-junk", "between the PEM BEGIN and END lines is not base64 (RFC 7468)"),
        ("pem-cut-short", "has no '-----END CERTIFICATE REQUEST-----' line"),
        ("pem-certificate", "the PEM block is a CERTIFICATE; a CSR is a CERTIFICATE REQUEST"),
        ("pem-empty", "the PEM block is empty"),
        ("bad-field", "a field of the request info is not encoded as RFC 2986"),
    ],
)
def test_rejections_name_the_rule_not_the_parser(case: str, rule: str) -> None:
    good = _p256_csr()
    info, algorithm, signature = _split(good)
    data = {
        "truncated": good[:60],
        "indefinite-length": b"\x30\x80" + good[2:] + b"\x00\x00",
        "truncated-inside": der.sequence(info[:-10]),
        "garbage": b"\x01\x02hello world" * 5,
        "trailing-bytes": good + b"\x00\x00",
        "three-parts": der.sequence(info, algorithm),
        "wrong-signature": _tamper_signature(good),
        "pem-junk": b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!!\n"
        b"-----END CERTIFICATE REQUEST-----\n",
        "pem-cut-short": _pem(good)[:100],
        "pem-certificate": _pem(good, "CERTIFICATE"),
        "pem-empty": _pem(b""),
        # The request info's version replaced by a BOOLEAN: the outline is right, a field not.
        "bad-field": der.sequence(
            der.sequence(b"\x01\x01\xff", info[info.index(b"\x30", 2) :]), algorithm, signature
        ),
    }[case]
    with pytest.raises(CsrRejected) as caught:
        accepted_public_key(data)
    message = str(caught.value)
    assert rule in message
    assert not _INTERNALS.search(message), message


@settings(max_examples=300, deadline=None, database=None)
@given(st.data())
def test_property_no_rejection_shows_parser_internals(data: st.DataObject) -> None:
    """Arbitrary bytes, and valid requests (DER and PEM) with bytes changed or cut off."""
    good = _p256_csr()
    source = data.draw(
        st.sampled_from(["random", "der-mutated", "der-cut", "pem-mutated", "pem-cut"])
    )
    if source == "random":
        candidate = data.draw(st.binary(min_size=1, max_size=600))
    else:
        base = good if source.startswith("der") else _pem(good)
        if source.endswith("cut"):
            candidate = base[: data.draw(st.integers(1, len(base) - 1))]
        else:
            changed = bytearray(base)
            changed[data.draw(st.integers(0, len(base) - 1))] ^= data.draw(st.integers(1, 255))
            candidate = bytes(changed)
    try:
        accepted_public_key(candidate)
    except CsrRejected as rejected:
        assert not _INTERNALS.search(str(rejected)), str(rejected)
