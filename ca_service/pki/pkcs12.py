"""PKCS#12 files for server-generated keys (SPEC C4): AES-256-CBC with PBKDF2-SHA256 and a
SHA-256 MAC, readable by OpenSSL 3 without ``-legacy``."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

__all__ = ["DEFAULT_KDF_ROUNDS", "build_pkcs12", "build_pkcs12_from_der"]

DEFAULT_KDF_ROUNDS = 100_000


def build_pkcs12(
    *,
    friendly_name: str,
    key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    password: str,
    kdf_rounds: int = DEFAULT_KDF_ROUNDS,
) -> bytes:
    if not password:
        raise ValueError("a PKCS#12 password is required")
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(kdf_rounds)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"), key, certificate, list(chain), encryption
    )


def build_pkcs12_from_der(
    friendly_name: str,
    key_der: bytes,
    certificate_der: bytes,
    chain_der: Sequence[bytes],
    password: str,
    kdf_rounds: int = DEFAULT_KDF_ROUNDS,
) -> bytes:
    """:func:`build_pkcs12` on DER inputs, so that it can run in a worker process: the
    PBKDF2 work holds the GIL, and in the server's own process it would stall every other
    request for tens of milliseconds."""
    key = serialization.load_der_private_key(key_der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("an EC private key was expected")
    return build_pkcs12(
        friendly_name=friendly_name,
        key=key,
        certificate=x509.load_der_x509_certificate(certificate_der),
        chain=[x509.load_der_x509_certificate(der) for der in chain_der],
        password=password,
        kdf_rounds=kdf_rounds,
    )
