"""The stand-in identity card CA (``ca-test-card-ca``): its certificates and CRLs pass
pkilint, carry the holder's attributes where the card profile puts them, and a revocation
shows in the next CRL fetched over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from ca_service.devtools.card_ca import (
    ADDRESS_OID,
    BIRTH_DATE_OID,
    NAME_OID,
    SEX_OID,
    CardCa,
    CardHolder,
    issue,
    make_card_ca,
    revoke,
    serve_crl,
)
from ca_service.shared.http.client import fetch
from tests.support import pkilint_certificate, pkilint_crl, run

HOLDER = CardHolder("共済 太郎", "東京都港区虎ノ門３－５－１", "1990-04-01", "1")


def test_the_certificates_carry_the_attributes_and_pass_pkilint(tmp_path: Path) -> None:
    ca = make_card_ca(tmp_path / "card-ca")
    out = issue(ca, HOLDER, tmp_path / "taro", p12_password="pass")
    pkilint_certificate(ca.certificate_path)
    pkilint_certificate(out / "cert.pem")
    certificate = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    certificate.verify_directly_issued_by(ca.certificate())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    values = {
        other.type_id: core.UTF8String.load(other.value).native
        for other in san.get_values_for_type(x509.OtherName)
    }
    assert values == {
        NAME_OID: "共済 太郎",
        SEX_OID: "1",
        BIRTH_DATE_OID: "419900401",
        ADDRESS_OID: "東京都港区虎ノ門３－５－１",
    }
    key, cert, chain = pkcs12.load_key_and_certificates((out / "card.p12").read_bytes(), b"pass")
    assert key is not None and cert == certificate and chain == [ca.certificate()]
    run(["openssl", "verify", "-CAfile", str(ca.certificate_path), str(out / "cert.pem")])


async def test_a_revocation_is_in_the_next_crl_served(tmp_path: Path) -> None:
    ca = await asyncio.to_thread(make_card_ca, tmp_path / "card-ca")
    out = await asyncio.to_thread(issue, ca, HOLDER, tmp_path / "taro")
    server, port = await serve_crl(ca, "127.0.0.1", 0)
    try:
        head, before = await fetch("127.0.0.1", port, "/crl", [("Host", "x")], max_bytes=10**6)
        assert head.first[1] == "200"
        crl = x509.load_der_x509_crl(before)
        assert crl.is_signature_valid(ca.certificate().public_key())
        assert len(crl) == 0
        serial = revoke(CardCa(ca.directory), (out / "cert.pem").read_bytes())
        _, after = await fetch("127.0.0.1", port, "/crl", [("Host", "x")], max_bytes=10**6)
        revoked = x509.load_der_x509_crl(after)
        assert revoked.get_revoked_certificate_by_serial_number(serial) is not None
        (tmp_path / "crl.der").write_bytes(after)
        await asyncio.to_thread(pkilint_crl, tmp_path / "crl.der")
    finally:
        await server.stop()
