"""gateway.identity: every refusal of SPEC E2 and the identity headers of E3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca_service.domain.profiles import CaProfile, ClientCertificateProfile
from ca_service.domain.validity import Validity, validity_for
from ca_service.pki import hierarchy
from ca_service.pki.certificates import (
    ClientCertificateFactory,
    ClientSubject,
    build_certificate,
    extension,
    name_der,
    new_serial,
)
from ca_service.pki.keys import KeyAlgorithm
from ca_service.pki.signer import SoftwareSigner
from gateway.identity import (
    Identity,
    Refusal,
    Refused,
    identify,
    identity_headers,
    strip_identity_headers,
    xfcc,
)

NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
PROFILE = ClientCertificateProfile(
    crl_url="http://ca.example.jp/crl",
    ocsp_url="http://ca.example.jp/ocsp",
    ca_issuers_url="http://ca.example.jp/ca.der",
    user_uri_prefix="https://ca.example.jp/users/",
)


class View:
    def __init__(self, revoked: set[int] | None = None, fresh: bool = True) -> None:
        self.revoked = revoked or set()
        self.fresh = fresh

    def is_revoked(self, serial: int) -> bool:
        return serial in self.revoked

    def is_fresh(self) -> bool:
        return self.fresh


def _ca(name: str) -> tuple[hierarchy.IssuedCa, SoftwareSigner]:
    profile = CaProfile(
        organization="テスト銀行",
        root_common_name=f"{name} Root",
        issuing_common_name=f"{name} Issuing",
        services_common_name="s",
    )
    pair = hierarchy.create_pair(KeyAlgorithm.EC_P256, profile, NOW)
    return pair.issuing, SoftwareSigner(pair.issuing_key)


ISSUING, SIGNER = _ca("Ours")
OTHER, OTHER_SIGNER = _ca("Other")


def _spki() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


def _client(
    issuing: hierarchy.IssuedCa = ISSUING,
    signer: SoftwareSigner = SIGNER,
    validity: Validity | None = None,
    organization: str = "株式会社テスト",
) -> bytes:
    factory = ClientCertificateFactory(
        signer, issuer_name=issuing.subject, issuer_key_id=issuing.key_id, profile=PROFILE
    )
    return factory.build(
        serial=new_serial(),
        subject=ClientSubject("taro0001", organization),
        spki=_spki(),
        validity=validity or validity_for(NOW),
    )


def _identify(der: bytes, view: View | None = None, now: datetime = NOW) -> Identity:
    return identify(der, issuer_der=ISSUING.certificate_der, now=now, revocations=view or View())


def test_valid_certificate_maps_to_identity() -> None:
    der = _client()
    identity = _identify(der)
    certificate = x509.load_der_x509_certificate(der)
    assert (identity.user_id, identity.organization, identity.role) == (
        "taro0001",
        "株式会社テスト",
        "user",
    )
    assert identity.serial == certificate.serial_number
    assert identity.uri == "https://ca.example.jp/users/taro0001"


@pytest.mark.parametrize(
    ("make", "view", "when", "refusal"),
    [
        (lambda: b"garbage", None, NOW, Refusal.MALFORMED),
        (lambda: _client(OTHER, OTHER_SIGNER), None, NOW, Refusal.NOT_OURS),
        (_client, None, NOW + timedelta(days=400), Refusal.EXPIRED),
        (_client, None, NOW - timedelta(days=1), Refusal.NOT_YET_VALID),
        (_client, View(fresh=False), NOW, Refusal.STALE),
    ],
)
def test_refusals(make: object, view: View | None, when: datetime, refusal: Refusal) -> None:
    with pytest.raises(Refused) as caught:
        _identify(make(), view, when)  # type: ignore[operator]
    assert caught.value.refusal is refusal


def test_revoked_certificate_is_refused_on_every_request() -> None:
    der = _client()
    view = View()
    _identify(der, view)
    view.revoked.add(x509.load_der_x509_certificate(der).serial_number)
    with pytest.raises(Refused) as caught:
        _identify(der, view)  # the parse is cached; the revocation check is not
    assert caught.value.refusal is Refusal.REVOKED


def test_certificate_without_client_auth_is_refused() -> None:
    spki = _spki()
    der = build_certificate(
        SIGNER,
        serial=new_serial(),
        issuer=ISSUING.subject,
        not_before=NOW - timedelta(hours=1),
        not_after=NOW + timedelta(days=30),
        subject=name_der(organization="x", common_name="server01"),
        spki=spki,
        extensions=[extension("extended_key_usage", ["server_auth"])],
    )
    with pytest.raises(Refused) as caught:
        _identify(der)
    assert caught.value.refusal is Refusal.NO_CLIENT_AUTH


def test_headers_strip_client_sent_identity_and_stay_ascii() -> None:
    incoming = [
        ("X-User-Id", "admin"),
        ("x-forwarded-client-cert", "forged"),
        ("X-ORG-ID", "x"),
        ("x-user-role", "operator"),
        ("Accept", "*/*"),
    ]
    assert strip_identity_headers(incoming) == [("Accept", "*/*")]
    identity = _identify(_client())
    headers = dict(identity_headers(identity, by="spiffe://gateway"))
    assert headers["x-user-id"] == "taro0001" and headers["x-user-role"] == "user"
    assert all(value.isascii() for value in headers.values())
    assert headers["x-org-id"] == "%E6%A0%AA%E5%BC%8F%E4%BC%9A%E7%A4%BE%E3%83%86%E3%82%B9%E3%83%88"
    value = xfcc(identity, "spiffe://gateway")
    assert value.startswith("By=spiffe://gateway;Hash=" + identity.fingerprint_sha256 + ";")
    assert ';Subject="CN=taro0001,O=' in value
    assert value.endswith(";URI=https://ca.example.jp/users/taro0001")
    renamed = dict(identity_headers(identity, names={"x-user-id": "x-remote-user"}))
    assert renamed["x-remote-user"] == "taro0001" and "x-user-id" not in renamed
