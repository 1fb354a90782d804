"""OCSP requests built by hand (RFC 6960 4.1.1), for tests that need encodings no client
library writes: both encodings of a CertID's hash parameters, and the optional parts that
a nonce-free answer does not depend on."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca_service.pki import der

__all__ = ["HASH_OIDS", "cert_id", "request_der"]

HASH_OIDS = {
    "sha1": bytes.fromhex("06052b0e03021a"),
    "sha256": bytes.fromhex("0609608648016503040201"),
}


def cert_id(
    issuer: x509.Certificate, serial: int, algorithm: str = "sha1", null_params: bool = False
) -> bytes:
    """The CertID of ``serial`` under ``issuer``, hash parameters absent or NULL."""
    algorithm_der = HASH_OIDS[algorithm] + (b"\x05\x00" if null_params else b"")
    key_bits = der.spki_key_bits(
        issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return der.sequence(
        der.sequence(algorithm_der),
        der.octet_string(hashlib.new(algorithm, issuer.subject.public_bytes()).digest()),
        der.octet_string(hashlib.new(algorithm, key_bits).digest()),
        der.integer(serial),
    )


def request_der(
    cert_id: bytes,
    *,
    requestor: bytes | None = None,
    extension: bytes | None = None,
    single_extension: bytes | None = None,
    signature: bytes | None = None,
    acceptable: bool = False,
) -> bytes:
    """An OCSPRequest (RFC 6960 4.1.1) around ``cert_id`` with optional parts that the
    answer does not depend on: a requestor name, request and single-request extensions
    (non-critical, private OID), id-pkix-ocsp-response, an unchecked signature."""
    private_oid = bytes.fromhex("060a2b060104018237fe0101")  # 1.3.6.1.4.1.311.254.1.1
    single = [cert_id]
    if single_extension is not None:
        item = der.sequence(private_oid, der.octet_string(single_extension))
        single.append(der.tlv(0xA0, der.sequence(item)))
    tbs: list[bytes] = []
    if requestor is not None:
        tbs.append(der.tlv(0xA1, der.tlv(0x86, requestor)))  # uniformResourceIdentifier
    tbs.append(der.sequence(der.sequence(*single)))
    extensions = []
    if extension is not None:
        extensions.append(der.sequence(private_oid, der.octet_string(extension)))
    if acceptable:
        basic = bytes.fromhex("06092b0601050507300101")
        extensions.append(
            der.sequence(
                bytes.fromhex("06092b0601050507300104"),
                der.octet_string(der.sequence(basic)),
            )
        )
    if extensions:
        tbs.append(der.tlv(0xA2, der.sequence(*extensions)))
    parts = [der.sequence(*tbs)]
    if signature is not None:
        ecdsa_sha256 = der.sequence(bytes.fromhex("06082a8648ce3d040302"))
        parts.append(der.tlv(0xA0, der.sequence(ecdsa_sha256, der.bit_string(signature))))
    return der.sequence(*parts)
