"""v2 CRLs (RFC 5280 section 5; SPEC F2): entry encoding, full and delta CRLs, checked
against cryptography, openssl and pkilint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID, SignatureAlgorithmOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ca_service.pki import der
from ca_service.pki.crl import MAX_CRL_NUMBER, Reason, build_crl, encode_entry
from ca_service.pki.hierarchy import create_pair
from ca_service.pki.keys import CaPrivateKey, KeyAlgorithm
from ca_service.pki.signer import SoftwareSigner
from tests.support import EXAMPLE_CA, run, tool

NOW = datetime(2026, 11, 21, 1, 0, 0, tzinfo=UTC)
THIS_UPDATE = NOW + timedelta(hours=2)
NEXT_UPDATE = THIS_UPDATE + timedelta(days=7)
DELTA_URL = "http://crl.ca.example.jp/issuing-delta.crl"

CA_PROFILE = EXAMPLE_CA

SIGNATURE_OIDS = {
    KeyAlgorithm.EC_P256: SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    KeyAlgorithm.RSA_3072: SignatureAlgorithmOID.RSA_WITH_SHA256,
}


@dataclass(frozen=True)
class Ca:
    algorithm: KeyAlgorithm
    key: CaPrivateKey
    signer: SoftwareSigner
    name: bytes
    key_id: bytes
    root: x509.Certificate
    issuing: x509.Certificate


def _ca(algorithm: KeyAlgorithm) -> Ca:
    pair = create_pair(algorithm, CA_PROFILE, NOW)
    root, issuing, issuing_key = pair.root, pair.issuing, pair.issuing_key
    return Ca(
        algorithm,
        issuing_key,
        SoftwareSigner(issuing_key),
        issuing.subject,
        issuing.key_id,
        x509.load_der_x509_certificate(root.certificate_der),
        x509.load_der_x509_certificate(issuing.certificate_der),
    )


@pytest.fixture(scope="module", params=list(SIGNATURE_OIDS), ids=lambda a: a.value)
def ca(request: pytest.FixtureRequest) -> Ca:
    return _ca(request.param)


@pytest.fixture(scope="module")
def p256_ca() -> Ca:
    return _ca(KeyAlgorithm.EC_P256)


@dataclass(frozen=True)
class Revocation:
    serial: int
    revoked_at: datetime
    reason: Reason | None
    invalidity_date: datetime | None = None

    def entry(self) -> bytes:
        return encode_entry(self.serial, self.revoked_at, self.reason, self.invalidity_date)


# Every reason once (removeFromCRL only belongs in a delta CRL, RFC 5280 5.3.1), with and
# without invalidity dates, plus one entry with no reason at all.
FULL_REVOCATIONS = [
    Revocation(
        serial=0x4000_0000_0000_0000_0000_0000_0000_0000 + int(reason),
        revoked_at=NOW + timedelta(minutes=int(reason)),
        reason=reason,
        invalidity_date=NOW - timedelta(days=int(reason)) if int(reason) % 2 else None,
    )
    for reason in Reason
    if reason is not Reason.REMOVE_FROM_CRL
] + [
    Revocation(serial=1, revoked_at=NOW, reason=None),
    Revocation(serial=(1 << 159) - 1, revoked_at=NOW, reason=None, invalidity_date=NOW),
]
DELTA_REVOCATIONS = [
    Revocation(serial=0x1234, revoked_at=THIS_UPDATE, reason=Reason.REMOVE_FROM_CRL),
    Revocation(
        serial=0x5678,
        revoked_at=THIS_UPDATE - timedelta(minutes=5),
        reason=Reason.KEY_COMPROMISE,
        invalidity_date=NOW - timedelta(days=3),
    ),
]


def _build(
    ca: Ca,
    revocations: Sequence[Revocation],
    *,
    crl_number: int = 42,
    delta_base: int | None = None,
    freshest_crl_url: str | None = None,
    this_update: datetime = THIS_UPDATE,
    next_update: datetime = NEXT_UPDATE,
) -> bytes:
    return build_crl(
        ca.signer,
        issuer_name=ca.name,
        issuer_key_id=ca.key_id,
        this_update=this_update,
        next_update=next_update,
        crl_number=crl_number,
        entries=[revocation.entry() for revocation in revocations],
        delta_base=delta_base,
        freshest_crl_url=freshest_crl_url,
    )


def _reason_flag(reason: Reason) -> x509.ReasonFlags:
    return x509.ReasonFlags[reason.name.lower()]


def _check_entries(crl: x509.CertificateRevocationList, revocations: Sequence[Revocation]) -> None:
    entries = list(crl)
    assert [entry.serial_number for entry in entries] == [r.serial for r in revocations]
    for entry, revocation in zip(entries, revocations, strict=True):
        assert entry.revocation_date_utc == revocation.revoked_at.astimezone(UTC)
        expected: dict[x509.ObjectIdentifier, Any] = {}
        if revocation.reason is not None and revocation.reason is not Reason.UNSPECIFIED:
            expected[CRLEntryExtensionOID.CRL_REASON] = x509.CRLReason(
                _reason_flag(revocation.reason)
            )
        if revocation.invalidity_date is not None:
            expected[CRLEntryExtensionOID.INVALIDITY_DATE] = revocation.invalidity_date.astimezone(
                UTC
            )
        assert [extension.oid for extension in entry.extensions] == list(expected)
        for extension in entry.extensions:
            assert not extension.critical  # RFC 5280 5.3.1, 5.3.2: non-critical
            if extension.oid == CRLEntryExtensionOID.INVALIDITY_DATE:
                assert isinstance(extension.value, x509.InvalidityDate)
                assert extension.value.invalidity_date_utc == expected[extension.oid]
            else:
                assert extension.value == expected[extension.oid]


def _check_common(
    crl: x509.CertificateRevocationList,
    crl_der: bytes,
    ca: Ca,
    crl_number: int,
    this_update: datetime = THIS_UPDATE,
    next_update: datetime = NEXT_UPDATE,
) -> None:
    assert crl.is_signature_valid(ca.issuing.public_key())  # type: ignore[arg-type]
    assert not crl.is_signature_valid(ca.root.public_key())  # type: ignore[arg-type]
    assert crl.signature_algorithm_oid == SIGNATURE_OIDS[ca.algorithm]
    assert crl.issuer == ca.issuing.subject
    assert crl.last_update_utc == this_update.astimezone(UTC)
    assert crl.next_update_utc == next_update.astimezone(UTC)
    parsed = asn1_crl.CertificateList.load(crl_der)
    assert parsed["tbs_cert_list"]["version"].native == "v2"
    # canonical DER: asn1crypto re-encoding every field from its value gives the same bytes
    assert parsed.dump(force=True) == crl_der

    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert not number.critical  # RFC 5280 5.2.3
    assert number.value.crl_number == crl_number
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert not aki.critical  # RFC 5280 5.2.1
    issuer_ski = ca.issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.value == x509.AuthorityKeyIdentifier(issuer_ski.value.digest, None, None)


def _tbs_fields(crl_der: bytes) -> list[int]:
    """Tags of the TBSCertList's fields, read straight from the DER."""
    _, tbs_start, _ = der.read_tlv(crl_der)
    _, position, end = der.read_tlv(crl_der, tbs_start)
    tags = []
    while position < end:
        tag, _, position = der.read_tlv(crl_der, position)
        tags.append(tag)
    return tags


# --------------------------------------------------------------------------- Reason


def test_reason_values_are_rfc_5280() -> None:
    assert {int(reason): reason.name.lower() for reason in Reason} == asn1_crl.CRLReason._map
    assert 7 not in {int(reason) for reason in Reason}
    assert int(Reason.UNSPECIFIED) == 0 and int(Reason.AA_COMPROMISE) == 10
    assert Reason.CA_COMPROMISE.rfc_name == "cACompromise"
    assert Reason.REMOVE_FROM_CRL.rfc_name == "removeFromCRL"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("key_compromise", Reason.KEY_COMPROMISE),
        ("keyCompromise", Reason.KEY_COMPROMISE),
        ("KEY_COMPROMISE", Reason.KEY_COMPROMISE),
        ("Key-Compromise", Reason.KEY_COMPROMISE),
        ("superseded", Reason.SUPERSEDED),
        ("cACompromise", Reason.CA_COMPROMISE),
        ("ca_compromise", Reason.CA_COMPROMISE),
        ("aACompromise", Reason.AA_COMPROMISE),
        ("removeFromCRL", Reason.REMOVE_FROM_CRL),
        ("cessation_of_operation", Reason.CESSATION_OF_OPERATION),
        ("unspecified", Reason.UNSPECIFIED),
    ],
)
def test_reason_from_name(name: str, expected: Reason) -> None:
    assert Reason.from_name(name) is expected


def test_reason_from_rfc_name_round_trips() -> None:
    for reason in Reason:
        assert Reason.from_name(reason.rfc_name) is reason
        assert Reason.from_name(reason.name) is reason


@pytest.mark.parametrize("name", ["", "compromised", "7", "key compromise!"])
def test_reason_from_unknown_name(name: str) -> None:
    with pytest.raises(ValueError, match="valid reasons: unspecified, key_compromise") as info:
        Reason.from_name(name)
    assert "aa_compromise" in str(info.value)


# --------------------------------------------------------------------------- entries


def test_entry_known_encoding() -> None:
    assert encode_entry(1, NOW, None) == bytes.fromhex("3012020101170d3236313132313031303030305a")
    assert encode_entry(0x80, NOW, Reason.SUPERSEDED, NOW) == bytes.fromhex(
        "303b"
        "0202 0080"  # a positive INTEGER keeps its leading zero octet
        "170d 3236313132313031303030305a"
        "3026"
        "300a 0603551d15 0403 0a0104"  # reasonCode superseded, non-critical
        "3018 0603551d18 0411 180f 32303236313132313031303030305a"  # invalidityDate
    )


def test_unspecified_reason_leaves_out_the_extension() -> None:
    # RFC 5280 5.3.1: the reason code unspecified SHOULD be absent
    assert encode_entry(5, NOW, Reason.UNSPECIFIED) == encode_entry(5, NOW, None)
    assert encode_entry(5, NOW, Reason.UNSPECIFIED, NOW) == encode_entry(5, NOW, None, NOW)


def test_entry_times_across_2050() -> None:
    last_utc = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
    first_generalized = datetime(2050, 1, 1, tzinfo=UTC)
    assert b"\x17\x0d491231235959Z" in encode_entry(9, last_utc, None)
    assert b"\x18\x0f20500101000000Z" in encode_entry(9, first_generalized, None)
    # a local time is converted to UTC: 2050-01-01 08:59:59 JST is 2049 in UTC
    jst = timezone(timedelta(hours=9))
    assert b"\x17\x0d491231235959Z" in encode_entry(9, last_utc.astimezone(jst), None)
    # invalidityDate is always GeneralizedTime (RFC 5280 5.3.2)
    assert b"\x18\x0f20491231235959Z" in encode_entry(9, last_utc, None, last_utc)


@settings(max_examples=200, deadline=None, database=None)
@given(st.datetimes(min_value=datetime(1950, 1, 2), max_value=datetime(9998, 12, 31)))
def test_entry_time_matches_certificate_time_encoding(instant: datetime) -> None:
    instant = instant.replace(microsecond=0, tzinfo=UTC)
    assert encode_entry(1, instant, None) == der.sequence(der.integer(1), der.x509_time(instant))


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ((0, NOW, None), ValueError, "serial"),
        ((-1, NOW, None), ValueError, "serial"),
        ((1 << 159, NOW, None), ValueError, "serial"),
        ((True, NOW, None), TypeError, "serial"),
        ((1, NOW.replace(tzinfo=None), None), ValueError, "revoked_at must be timezone-aware"),
        ((1, NOW.replace(microsecond=1), None), ValueError, "whole seconds"),
        ((1, NOW, None, NOW.replace(tzinfo=None)), ValueError, "invalidity_date"),
        ((1, NOW, 7), ValueError, "not a CRLReason"),
        ((1, NOW, 11), ValueError, "not a CRLReason"),
    ],
)
def test_entry_rejects(arguments: tuple[Any, ...], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        encode_entry(*arguments)


def test_entry_accepts_plain_int_reason() -> None:
    plain: Any = 1  # e.g. a reason code read back from the store
    assert encode_entry(3, NOW, plain) == encode_entry(3, NOW, Reason.KEY_COMPROMISE)


# --------------------------------------------------------------------------- full, delta, empty


def test_full_crl(ca: Ca) -> None:
    crl_der = _build(ca, FULL_REVOCATIONS, crl_number=42, freshest_crl_url=DELTA_URL)
    crl = x509.load_der_x509_crl(crl_der)
    _check_common(crl, crl_der, ca, 42)
    _check_entries(crl, FULL_REVOCATIONS)
    assert [extension.oid for extension in crl.extensions] == [
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.FRESHEST_CRL,
    ]
    freshest = crl.extensions.get_extension_for_class(x509.FreshestCRL)
    assert not freshest.critical  # RFC 5280 5.2.6
    assert list(freshest.value) == [
        x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(DELTA_URL)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
    ]
    # the stored entries are copied verbatim, in order
    assert b"".join(revocation.entry() for revocation in FULL_REVOCATIONS) in crl_der


def test_full_crl_without_freshest(p256_ca: Ca) -> None:
    crl = x509.load_der_x509_crl(_build(p256_ca, FULL_REVOCATIONS[:2], crl_number=0))
    assert [extension.oid for extension in crl.extensions] == [
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CRL_NUMBER,
    ]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 0


def test_delta_crl(ca: Ca) -> None:
    crl_der = _build(ca, DELTA_REVOCATIONS, crl_number=43, delta_base=42)
    crl = x509.load_der_x509_crl(crl_der)
    _check_common(crl, crl_der, ca, 43)
    _check_entries(crl, DELTA_REVOCATIONS)
    assert [extension.oid for extension in crl.extensions] == [
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.DELTA_CRL_INDICATOR,
    ]
    indicator = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical  # RFC 5280 5.2.4: MUST be critical
    assert indicator.value.crl_number == 42


@pytest.mark.parametrize("delta_base", [None, 41])
def test_empty_crl_has_no_revoked_certificates_field(ca: Ca, delta_base: int | None) -> None:
    crl_der = _build(ca, [], crl_number=42, delta_base=delta_base)
    crl = x509.load_der_x509_crl(crl_der)
    _check_common(crl, crl_der, ca, 42)
    assert len(crl) == 0
    # version, signature, issuer, thisUpdate, nextUpdate, [0] crlExtensions: RFC 5280
    # 5.1.2.6 wants revokedCertificates absent, not an empty SEQUENCE
    assert _tbs_fields(crl_der) == [0x02, 0x30, 0x30, 0x17, 0x17, 0xA0]


def test_tbs_matches_cryptography_builder(p256_ca: Ca) -> None:
    """Byte for byte the TBSCertList that cryptography's own builder produces."""
    revocations = [r for r in FULL_REVOCATIONS if r.reason is not Reason.UNSPECIFIED]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(p256_ca.issuing.subject)
        .last_update(THIS_UPDATE)
        .next_update(NEXT_UPDATE)
        .add_extension(x509.AuthorityKeyIdentifier(p256_ca.key_id, None, None), critical=False)
        .add_extension(x509.CRLNumber(42), critical=False)
        .add_extension(
            x509.FreshestCRL(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(DELTA_URL)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    )
    for revocation in revocations:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(revocation.serial)
            .revocation_date(revocation.revoked_at)
        )
        if revocation.reason is not None:
            revoked = revoked.add_extension(
                x509.CRLReason(_reason_flag(revocation.reason)), critical=False
            )
        if revocation.invalidity_date is not None:
            revoked = revoked.add_extension(
                x509.InvalidityDate(revocation.invalidity_date.replace(tzinfo=None)),
                critical=False,
            )
        builder = builder.add_revoked_certificate(revoked.build())
    theirs = builder.sign(p256_ca.key, hashes.SHA256())
    ours = x509.load_der_x509_crl(
        _build(p256_ca, revocations, crl_number=42, freshest_crl_url=DELTA_URL)
    )
    assert ours.tbs_certlist_bytes == theirs.tbs_certlist_bytes


def test_times_across_2050(p256_ca: Ca) -> None:
    this_update = datetime(2049, 12, 31, 12, 0, tzinfo=UTC)
    next_update = datetime(2050, 1, 7, 12, 0, tzinfo=UTC)
    crl_der = _build(p256_ca, [], this_update=this_update, next_update=next_update)
    assert _tbs_fields(crl_der)[3:5] == [0x17, 0x18]  # UTCTime, then GeneralizedTime
    crl = x509.load_der_x509_crl(crl_der)
    _check_common(crl, crl_der, p256_ca, 42, this_update, next_update)


# --------------------------------------------------------------------------- validation


def _bad_build(p256_ca: Ca, **overrides: Any) -> None:
    arguments: dict[str, Any] = {
        "issuer_name": p256_ca.name,
        "issuer_key_id": p256_ca.key_id,
        "this_update": THIS_UPDATE,
        "next_update": NEXT_UPDATE,
        "crl_number": 42,
        "entries": [],
    }
    arguments.update(overrides)
    build_crl(p256_ca.signer, **arguments)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"this_update": THIS_UPDATE.replace(tzinfo=None)}, "this_update must be timezone-aware"),
        ({"next_update": NEXT_UPDATE.replace(tzinfo=None)}, "next_update must be timezone-aware"),
        ({"next_update": THIS_UPDATE}, "next_update must be after this_update"),
        ({"next_update": THIS_UPDATE - timedelta(seconds=1)}, "after this_update"),
        ({"this_update": THIS_UPDATE.replace(microsecond=5)}, "whole seconds"),
        ({"crl_number": -1}, "crl_number"),
        ({"crl_number": MAX_CRL_NUMBER + 1}, "crl_number"),
        ({"crl_number": True}, "crl_number"),
        ({"delta_base": 42}, "delta_base"),
        ({"delta_base": 43}, "delta_base"),
        ({"delta_base": -1}, "delta_base"),
        ({"delta_base": 41, "freshest_crl_url": DELTA_URL}, "freshest"),
        ({"issuer_key_id": b""}, "issuer_key_id"),
        ({"issuer_name": b"\x31\x00"}, "issuer_name"),
        ({"issuer_name": b"\x30\x00\x00"}, "issuer_name"),
        ({"issuer_name": b"\x30\x05"}, "truncated"),
    ],
)
def test_build_rejects(p256_ca: Ca, overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _bad_build(p256_ca, **overrides)


def test_build_accepts_limits(p256_ca: Ca) -> None:
    crl = x509.load_der_x509_crl(
        _build(p256_ca, [], crl_number=MAX_CRL_NUMBER, delta_base=MAX_CRL_NUMBER - 1)
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == (
        MAX_CRL_NUMBER
    )
    jst = timezone(timedelta(hours=9))
    crl = x509.load_der_x509_crl(
        _build(p256_ca, [], this_update=THIS_UPDATE.astimezone(jst), next_update=NEXT_UPDATE)
    )
    assert crl.last_update_utc == THIS_UPDATE


# --------------------------------------------------------------------------- openssl, pkilint


@pytest.fixture(scope="module")
def bundles(ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp(f"crl-{ca.algorithm.value}")
    root = ca.root.public_bytes(Encoding.PEM)
    issuing = ca.issuing.public_bytes(Encoding.PEM)
    paths = {"bundle": directory / "bundle.pem", "root": directory / "root.pem"}
    paths["bundle"].write_bytes(root + issuing)
    paths["root"].write_bytes(root)
    return paths


KINDS: dict[str, dict[str, Any]] = {
    "empty": {"revocations": [], "crl_number": 40},
    "full": {"revocations": FULL_REVOCATIONS, "crl_number": 42, "freshest_crl_url": DELTA_URL},
    "delta": {"revocations": DELTA_REVOCATIONS, "crl_number": 43, "delta_base": 42},
}


def _write(ca: Ca, kind: str, directory: Path) -> Path:
    options = dict(KINDS[kind])
    path = directory / f"{kind}.crl"
    path.write_bytes(_build(ca, options.pop("revocations"), **options))
    return path


def _openssl_verify(crl: Path, ca_file: Path) -> str:
    crl_options = ["-inform", "DER", "-in", str(crl)]
    result = run(
        ["openssl", "crl", *crl_options, "-CAfile", str(ca_file), "-verify", "-noout"],
        check=False,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("kind", list(KINDS))
def test_openssl_verifies(ca: Ca, bundles: dict[str, Path], kind: str, tmp_path: Path) -> None:
    crl = _write(ca, kind, tmp_path)
    # openssl crl -verify finds the issuer certificate by the CRL's issuer name in CAfile
    # and checks the signature with its key (no path validation): the issuing CA must be
    # in the file; the root alone is not enough.
    assert "verify OK" in _openssl_verify(crl, bundles["bundle"])
    assert "Error getting CRL issuer certificate" in _openssl_verify(crl, bundles["root"])
    text = run(["openssl", "crl", "-inform", "DER", "-in", str(crl), "-text", "-noout"]).stdout
    assert "Version 2 (0x1)" in text
    assert ("Delta CRL Indicator: critical" in text) == (kind == "delta")
    assert ("Freshest CRL" in text) == (kind == "full")
    assert ("Revoked Certificates:" in text) == (kind != "empty")


def test_openssl_rejects_another_key(p256_ca: Ca, tmp_path: Path) -> None:
    impostor = Ca(
        p256_ca.algorithm,
        p256_ca.key,
        SoftwareSigner(ec.generate_private_key(ec.SECP256R1())),
        p256_ca.name,
        p256_ca.key_id,
        p256_ca.root,
        p256_ca.issuing,
    )
    crl = tmp_path / "impostor.crl"
    crl.write_bytes(_build(impostor, FULL_REVOCATIONS))
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(p256_ca.issuing.public_bytes(Encoding.PEM))
    output = _openssl_verify(crl, bundle)
    assert "verify failure" in output and "verify OK" not in output


@pytest.mark.parametrize("kind", list(KINDS))
def test_pkilint_has_no_findings(ca: Ca, kind: str, tmp_path: Path) -> None:
    crl = _write(ca, kind, tmp_path)
    # PKIX profile (RFC 5280). The BR profile is for publicly trusted TLS CAs and forbids
    # some RFC 5280 reason codes (cACompromise, certificateHold, aACompromise,
    # removeFromCRL): a policy that does not apply to this private CA.
    result = run(
        [tool("lint_crl"), "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(crl)],
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"pkilint findings for the {kind} CRL:\n{result.stdout}\n{result.stderr}"
    )


# --------------------------------------------------------------------------- properties

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.builds(
    lambda naive, zone: naive.replace(microsecond=0, tzinfo=zone),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
    offsets,
)
revocation_lists = st.lists(
    st.builds(
        Revocation,
        serial=st.integers(min_value=1, max_value=(1 << 159) - 1),
        revoked_at=instants,
        reason=st.none() | st.sampled_from(Reason),
        invalidity_date=st.none() | instants,
    ),
    max_size=12,
    unique_by=lambda revocation: revocation.serial,
)


@settings(max_examples=100, deadline=None, database=None)
@given(
    revocations=revocation_lists,
    this_update=instants,
    lifetime=st.integers(min_value=1, max_value=400 * 86400).map(lambda s: timedelta(seconds=s)),
    crl_number=st.integers(min_value=1, max_value=MAX_CRL_NUMBER),
    delta=st.booleans(),
    data=st.data(),
)
def test_property_round_trip(
    p256_ca: Ca,
    revocations: list[Revocation],
    this_update: datetime,
    lifetime: timedelta,
    crl_number: int,
    delta: bool,
    data: st.DataObject,
) -> None:
    delta_base = data.draw(st.integers(min_value=0, max_value=crl_number - 1)) if delta else None
    crl_der = _build(
        p256_ca,
        revocations,
        crl_number=crl_number,
        delta_base=delta_base,
        freshest_crl_url=None if delta else DELTA_URL,
        this_update=this_update,
        next_update=this_update + lifetime,
    )
    crl = x509.load_der_x509_crl(crl_der)
    _check_common(crl, crl_der, p256_ca, crl_number, this_update, this_update + lifetime)
    _check_entries(crl, revocations)
    expected_extension = ExtensionOID.DELTA_CRL_INDICATOR if delta else ExtensionOID.FRESHEST_CRL
    assert [extension.oid for extension in crl.extensions][2:] == [expected_extension]
    if delta:
        indicator = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        assert indicator.value.crl_number == delta_base
    has_revoked = 0x30 in _tbs_fields(crl_der)[3:]
    assert has_revoked == bool(revocations)
