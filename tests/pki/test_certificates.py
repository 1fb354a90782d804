"""X.509 assembly (SPEC C5): serials, key identifiers and the client certificate profile."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service.domain.identifiers import organization_problem
from ca_service.domain.profiles import ClientCertificateProfile, IssuingUrls
from ca_service.domain.validity import validity_for
from ca_service.pki import der
from ca_service.pki.certificates import (
    SERIAL_OCTETS,
    ClientCertificateFactory,
    ClientSubject,
    build_certificate,
    key_identifier,
    new_serial,
)
from ca_service.pki.csr import accepted_public_key
from ca_service.pki.hierarchy import create_pair
from ca_service.pki.keys import KeyAlgorithm
from ca_service.pki.signer import SoftwareSigner
from tests.support import EXAMPLE_CA, assert_client_certificate

NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
USER_URI_PREFIX = "https://ca.example.jp/users/"
CRL_URL = "http://crl.ca.example.jp/issuing.crl"
OCSP_URL = "http://ocsp.ca.example.jp/"
CA_ISSUERS_URL = "http://ca.example.jp/issuing.cer"

EXPECTED_EXTENSIONS = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
}

SIGNATURE_OIDS = {
    KeyAlgorithm.EC_P256: SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    KeyAlgorithm.EC_P384: SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    KeyAlgorithm.RSA_3072: SignatureAlgorithmOID.RSA_WITH_SHA256,
}


def _spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


# --------------------------------------------------------------------------- serials


def test_serial_octets() -> None:
    assert SERIAL_OCTETS == 16


def test_new_serial_shape() -> None:
    serials = [new_serial() for _ in range(5000)]
    assert len(set(serials)) == len(serials)
    for serial in serials:
        assert serial > 0
        encoded = der.integer(serial)
        # tag, length 16, then 16 content octets whose top bit is clear (positive, no pad)
        assert encoded[:2] == bytes((0x02, SERIAL_OCTETS))
        assert len(encoded) == 2 + SERIAL_OCTETS
        assert encoded[2] & 0x80 == 0
        assert serial.bit_length() <= 8 * 20 - 1  # RFC 5280 4.1.2.2: at most 20 octets


def test_new_serial_has_at_least_64_random_bits() -> None:
    # Every one of the low 126 bits must take both values over 1000 draws (a constant bit
    # would survive with probability 2**-999); SPEC C5 asks for >= 64 CSPRNG bits.
    serials = [new_serial() for _ in range(1000)]
    ones = 0
    zeros = 0
    for serial in serials:
        ones |= serial
        zeros |= ~serial
    varying = [bit for bit in range(126) if ones >> bit & 1 and zeros >> bit & 1]
    assert len(varying) >= 64
    assert len(varying) == 126


# --------------------------------------------------------------------------- key identifiers

KEY_FACTORIES = {
    "P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "P-384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "P-521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "RSA-2048": lambda: rsa.generate_private_key(65537, 2048),
    "Ed25519": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize("kind", list(KEY_FACTORIES))
def test_key_identifier_matches_cryptography(kind: str) -> None:
    public_key = KEY_FACTORIES[kind]().public_key()
    expected = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    assert key_identifier(_spki(public_key)) == expected
    assert len(expected) == 20


# --------------------------------------------------------------------------- hierarchy


@dataclass(frozen=True)
class Hierarchy:
    algorithm: KeyAlgorithm
    root: x509.Certificate
    issuing: x509.Certificate
    factory: ClientCertificateFactory


CA_PROFILE = EXAMPLE_CA
CLIENT_PROFILE = ClientCertificateProfile(
    crl_url=CRL_URL,
    ocsp_url=OCSP_URL,
    ca_issuers_url=CA_ISSUERS_URL,
    user_uri_prefix=USER_URI_PREFIX,
)


def _hierarchy(algorithm: KeyAlgorithm) -> Hierarchy:
    pair = create_pair(algorithm, CA_PROFILE, NOW)
    root, issuing, issuing_key = pair.root, pair.issuing, pair.issuing_key
    factory = ClientCertificateFactory(
        SoftwareSigner(issuing_key),
        issuer_name=issuing.subject,
        issuer_key_id=issuing.key_id,
        profile=CLIENT_PROFILE,
    )
    return Hierarchy(
        algorithm,
        x509.load_der_x509_certificate(root.certificate_der),
        x509.load_der_x509_certificate(issuing.certificate_der),
        factory,
    )


@pytest.fixture(scope="module", params=list(KeyAlgorithm), ids=lambda a: a.value)
def hierarchy(request: pytest.FixtureRequest) -> Hierarchy:
    return _hierarchy(request.param)


@pytest.fixture(scope="module")
def p256_hierarchy() -> Hierarchy:
    return _hierarchy(KeyAlgorithm.EC_P256)


@pytest.fixture(scope="module")
def client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _issue(
    hierarchy: Hierarchy,
    public_key: Any,
    *,
    user_id: str = "user01",
    organization: str = "株式会社サンプル",
    issued_at: datetime = NOW,
    serial: int | None = None,
) -> tuple[x509.Certificate, bytes, int]:
    serial = new_serial() if serial is None else serial
    certificate_der = hierarchy.factory.build(
        serial=serial,
        subject=ClientSubject(user_id=user_id, organization=organization),
        spki=_spki(public_key),
        validity=validity_for(issued_at),
    )
    return x509.load_der_x509_certificate(certificate_der), certificate_der, serial


def test_ca_hierarchy_chains(hierarchy: Hierarchy) -> None:
    hierarchy.root.verify_directly_issued_by(hierarchy.root)
    hierarchy.issuing.verify_directly_issued_by(hierarchy.root)
    constraints = hierarchy.issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.value.path_length == 0


def test_client_certificate_core_fields(
    hierarchy: Hierarchy, client_key: ec.EllipticCurvePrivateKey
) -> None:
    certificate, certificate_der, serial = _issue(hierarchy, client_key.public_key())
    validity = validity_for(NOW)

    assert certificate.version is x509.Version.v3
    assert certificate.serial_number == serial
    assert certificate.issuer == hierarchy.issuing.subject
    assert certificate.not_valid_before_utc == validity.not_before
    assert certificate.not_valid_after_utc == validity.not_after
    assert _spki(certificate.public_key()) == _spki(client_key.public_key())
    assert certificate.signature_algorithm_oid == SIGNATURE_OIDS[hierarchy.algorithm]
    # the DER we produced is the canonical encoding cryptography re-serialises
    assert certificate.public_bytes(Encoding.DER) == certificate_der


def test_client_certificate_signature_verifies(
    hierarchy: Hierarchy, client_key: ec.EllipticCurvePrivateKey
) -> None:
    certificate, _, _ = _issue(hierarchy, client_key.public_key())
    certificate.verify_directly_issued_by(hierarchy.issuing)
    with pytest.raises(ValueError, match="issuer"):  # names the issuing CA, not the root
        certificate.verify_directly_issued_by(hierarchy.root)


def test_signature_by_another_key_does_not_verify(
    p256_hierarchy: Hierarchy, client_key: ec.EllipticCurvePrivateKey
) -> None:
    # Same issuer name and key id, different key: the signature must not verify.
    impostor = ClientCertificateFactory(
        SoftwareSigner(ec.generate_private_key(ec.SECP256R1())),
        issuer_name=p256_hierarchy.issuing.subject.public_bytes(),
        issuer_key_id=p256_hierarchy.issuing.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest,
        profile=CLIENT_PROFILE,
    )
    certificate = x509.load_der_x509_certificate(
        impostor.build(
            serial=new_serial(),
            subject=ClientSubject(user_id="user01", organization="Example"),
            spki=_spki(client_key.public_key()),
            validity=validity_for(NOW),
        )
    )
    with pytest.raises(InvalidSignature):
        certificate.verify_directly_issued_by(p256_hierarchy.issuing)


def test_client_certificate_subject(
    hierarchy: Hierarchy, client_key: ec.EllipticCurvePrivateKey
) -> None:
    certificate, certificate_der, _ = _issue(
        hierarchy, client_key.public_key(), user_id="AbC123", organization="Example, Inc."
    )
    rdns = list(certificate.subject.rdns)
    # O first, then CN, one attribute per RDN, as UTF8String
    assert [[attribute.oid for attribute in rdn] for rdn in rdns] == [
        [NameOID.ORGANIZATION_NAME],
        [NameOID.COMMON_NAME],
    ]
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Example, Inc."
    )
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "AbC123"
    subject = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]["subject"]
    for rdn in subject.chosen:
        assert len(rdn) == 1
        assert rdn[0]["value"].name == "utf8_string"
    assert certificate.subject.rfc4514_string() == "CN=AbC123,O=Example\\, Inc."


def test_client_certificate_extensions(
    hierarchy: Hierarchy, client_key: ec.EllipticCurvePrivateKey
) -> None:
    certificate, _, _ = _issue(hierarchy, client_key.public_key(), user_id="taro1234")
    extensions = certificate.extensions
    assert len(extensions) == len(EXPECTED_EXTENSIONS)
    assert {extension.oid for extension in extensions} == EXPECTED_EXTENSIONS

    assert_client_certificate(
        certificate, "taro1234", "株式会社サンプル", USER_URI_PREFIX + "taro1234"
    )

    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert not ski.critical  # RFC 5280 4.2.1.2: MUST NOT be critical
    assert (
        ski.value.digest
        == x509.SubjectKeyIdentifier.from_public_key(client_key.public_key()).digest
    )

    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not aki.critical  # RFC 5280 4.2.1.1: MUST NOT be critical
    issuer_ski = hierarchy.issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.value.key_identifier == issuer_ski.value.digest
    assert aki.value.authority_cert_issuer is None
    assert aki.value.authority_cert_serial_number is None

    crl = extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert not crl.critical
    assert list(crl.value) == [
        x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(CRL_URL)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
    ]

    aia = extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert not aia.critical  # RFC 5280 4.2.2.1: MUST NOT be critical
    assert list(aia.value) == [
        x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL)
        ),
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(CA_ISSUERS_URL)
        ),
    ]


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(65537, 2048),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["P-384", "RSA-2048", "Ed25519"],
)
def test_other_subject_key_types(p256_hierarchy: Hierarchy, make_key: Any) -> None:
    public_key = make_key().public_key()
    certificate, _, _ = _issue(p256_hierarchy, public_key)
    certificate.verify_directly_issued_by(p256_hierarchy.issuing)
    assert _spki(certificate.public_key()) == _spki(public_key)
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value.digest == x509.SubjectKeyIdentifier.from_public_key(public_key).digest


def test_csr_subject_and_extensions_do_not_leak(p256_hierarchy: Hierarchy) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Org"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                ]
            )
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example")]), critical=False)
        .add_extension(
            x509.KeyUsage(True, True, True, True, True, True, True, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .sign(key, hashes.SHA256())
    )
    spki = accepted_public_key(csr.public_bytes(serialization.Encoding.DER))
    certificate = x509.load_der_x509_certificate(
        p256_hierarchy.factory.build(
            serial=new_serial(),
            subject=ClientSubject(user_id="user01", organization="Good Org"),
            spki=spki,
            validity=validity_for(NOW),
        )
    )
    assert {extension.oid for extension in certificate.extensions} == EXPECTED_EXTENSIONS
    assert len(certificate.extensions) == len(EXPECTED_EXTENSIONS)
    assert certificate.subject.rfc4514_string() == "CN=user01,O=Good Org"
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ) == [x509.UniformResourceIdentifier(USER_URI_PREFIX + "user01")]


@pytest.mark.parametrize(
    ("issued_at", "not_after"),
    [
        # UTCTime on both sides
        (datetime(2026, 11, 21, 1, 0, tzinfo=UTC), datetime(2027, 11, 21, 14, 59, 59, tzinfo=UTC)),
        # notBefore in 2049 (UTCTime), notAfter in 2050 (GeneralizedTime)
        (datetime(2049, 6, 1, 3, 0, tzinfo=UTC), datetime(2050, 6, 1, 14, 59, 59, tzinfo=UTC)),
        (datetime(2060, 6, 1, 3, 0, tzinfo=UTC), datetime(2061, 6, 1, 14, 59, 59, tzinfo=UTC)),
    ],
)
def test_validity_encoding_across_2050(
    p256_hierarchy: Hierarchy,
    client_key: ec.EllipticCurvePrivateKey,
    issued_at: datetime,
    not_after: datetime,
) -> None:
    certificate, certificate_der, _ = _issue(
        p256_hierarchy, client_key.public_key(), issued_at=issued_at
    )
    assert certificate.not_valid_after_utc == not_after
    assert certificate.not_valid_before_utc == validity_for(issued_at).not_before
    assert certificate.public_bytes(Encoding.DER) == certificate_der


@pytest.mark.parametrize("serial", [1, 127, 128, (1 << 159) - 1])
def test_serial_limits_accepted(
    p256_hierarchy: Hierarchy, client_key: ec.EllipticCurvePrivateKey, serial: int
) -> None:
    certificate, certificate_der, _ = _issue(p256_hierarchy, client_key.public_key(), serial=serial)
    assert certificate.serial_number == serial
    assert certificate.public_bytes(Encoding.DER) == certificate_der


@pytest.mark.parametrize("serial", [0, -1, 1 << 159])
def test_serial_out_of_range_rejected(p256_hierarchy: Hierarchy, serial: int) -> None:
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="serial"):
        build_certificate(
            signer,
            serial=serial,
            issuer=der.sequence(),
            not_before=NOW,
            not_after=NOW + timedelta(days=1),
            subject=der.sequence(),
            spki=signer.public_key_der,
            extensions=[],
        )


user_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=6,
    max_size=12,
)
organizations = st.text(
    alphabet=st.one_of(st.sampled_from(list(',+"\\<>;=# ')), st.characters(codec="utf-8")),
    min_size=1,
    max_size=64,
).filter(lambda org: organization_problem(org) is None)


@settings(max_examples=60, deadline=None, database=None)
@given(user_id=user_ids, organization=organizations)
def test_property_subject_and_san_round_trip(
    p256_hierarchy: Hierarchy,
    client_key: ec.EllipticCurvePrivateKey,
    user_id: str,
    organization: str,
) -> None:
    certificate, certificate_der, _ = _issue(
        p256_hierarchy, client_key.public_key(), user_id=user_id, organization=organization
    )
    assert certificate.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, user_id),
        ]
    )
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.UniformResourceIdentifier(USER_URI_PREFIX + user_id)]
    assert certificate.public_bytes(Encoding.DER) == certificate_der
    certificate.verify_directly_issued_by(p256_hierarchy.issuing)


DELTA_URL = "http://crl.ca.example.jp/issuing-delta.crl"


def test_freshest_crl_names_the_delta_crl(client_key: ec.EllipticCurvePrivateKey) -> None:
    """RFC 5280 4.2.1.15: relying parties that use delta CRLs (pyhanko-certvalidator, which
    otherwise finds a CRL-only check indeterminate) find the delta from the certificate."""
    pair = create_pair(KeyAlgorithm.EC_P256, CA_PROFILE, NOW)
    factory = ClientCertificateFactory(
        SoftwareSigner(pair.issuing_key),
        issuer_name=pair.issuing.subject,
        issuer_key_id=pair.issuing.key_id,
        profile=dataclasses.replace(CLIENT_PROFILE, delta_crl_url=DELTA_URL),
    )
    certificate = x509.load_der_x509_certificate(
        factory.build(
            serial=new_serial(),
            subject=ClientSubject("taro1234", "Example"),
            spki=_spki(client_key.public_key()),
            validity=validity_for(NOW),
        )
    )
    oids = [extension.oid for extension in certificate.extensions]
    assert set(oids) == EXPECTED_EXTENSIONS | {ExtensionOID.FRESHEST_CRL}
    # Next to the CRL distribution point.
    assert (
        oids.index(ExtensionOID.FRESHEST_CRL)
        == oids.index(ExtensionOID.CRL_DISTRIBUTION_POINTS) + 1
    )
    freshest = certificate.extensions.get_extension_for_class(x509.FreshestCRL)
    assert not freshest.critical  # RFC 5280 4.2.1.15: MUST be non-critical
    assert list(freshest.value) == [
        x509.DistributionPoint([x509.UniformResourceIdentifier(DELTA_URL)], None, None, None)
    ]


def test_issuing_ca_names_the_root_crl_and_the_root_certificate() -> None:
    """What Java's PKIX, Windows and pyhanko need to check the issuing CA itself."""
    urls = IssuingUrls("http://ca.example.jp/crl/root.crl", "http://ca.example.jp/ca/root.der")
    pair = create_pair(KeyAlgorithm.EC_P256, CA_PROFILE, NOW, urls)
    issuing = x509.load_der_x509_certificate(pair.issuing.certificate_der)
    root = x509.load_der_x509_certificate(pair.root.certificate_der)
    points = issuing.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert not points.critical
    assert list(points.value) == [
        x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl_url)], None, None, None)
    ]
    access = issuing.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert not access.critical
    # caIssuers only: the root answers for the issuing CA through its CRL, not OCSP.
    assert list(access.value) == [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(urls.ca_issuers_url),
        )
    ]
    # The self-signed root names nothing of the kind.
    assert not any(
        isinstance(e.value, x509.CRLDistributionPoints | x509.AuthorityInformationAccess)
        for e in root.extensions
    )
    with pytest.raises(ValueError, match="root_crl_url"):
        IssuingUrls("https://ca.example.jp/crl/root.crl", urls.ca_issuers_url)
