"""The delegated OCSP responder certificate: issued by the issuing CA on first use, kept
while fresh, rotated once two thirds of its lifetime have passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from tests.support import PASSPHRASE, init_ca, pkilint_certificate


def test_responder_certificate_is_issued_kept_and_rotated(tmp_path: Path) -> None:
    files = init_ca(tmp_path / "ca")
    loaded = files.load(PASSPHRASE.encode())
    now = datetime.now(UTC)
    first = files.ocsp_responder(loaded, PASSPHRASE.encode(), now)
    certificate = x509.load_der_x509_certificate(first.certificate_der)
    certificate.verify_directly_issued_by(loaded.issuing)
    assert certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    )
    assert certificate.extensions.get_extension_for_oid(ExtensionOID.OCSP_NO_CHECK)
    pkilint_certificate(files.path("ocsp", "cert.pem"))
    assert (
        files.path("ocsp", "key.pem")
        .read_bytes()
        .startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    )

    again = files.ocsp_responder(loaded, PASSPHRASE.encode(), now + timedelta(days=59))
    assert again.certificate_der == first.certificate_der
    rotated = files.ocsp_responder(loaded, PASSPHRASE.encode(), now + timedelta(days=61))
    assert rotated.certificate_der != first.certificate_der
    assert x509.load_der_x509_certificate(rotated.certificate_der).not_valid_after_utc > (
        certificate.not_valid_after_utc
    )
