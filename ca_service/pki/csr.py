"""Checks a caller's PKCS#10 request. Only its key is used; subject and extensions in the
CSR are ignored because they come from the CA's profile (SPEC C5)."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import SignatureAlgorithmOID

__all__ = ["MAX_CSR_BYTES", "CsrRejected", "accepted_public_key"]

MAX_CSR_BYTES = 64 * 1024
_ACCEPTED_CURVES = frozenset({"secp256r1", "secp384r1"})
_RSA_MIN_BITS = 2048
_RSA_MAX_BITS = 8192


class CsrRejected(ValueError):
    """The CSR cannot be signed; the message says why, in words a caller can act on."""


def _load(data: bytes) -> x509.CertificateSigningRequest:
    if not data:
        raise CsrRejected("CSR is empty")
    if len(data) > MAX_CSR_BYTES:
        raise CsrRejected(f"CSR is larger than {MAX_CSR_BYTES} bytes")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise CsrRejected(f"CSR is not a valid PKCS#10 request: {exc}") from None


# Proof of possession must not rest on SHA-1 or MD5; RSA-PSS is checked by cryptography.
_ACCEPTED_SIGNATURES = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.RSASSA_PSS,
        SignatureAlgorithmOID.ED25519,
    }
)
_ECDSA_SIGNATURES = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)


def _signature_valid(csr: x509.CertificateSigningRequest, key: object) -> bool:
    oid = csr.signature_algorithm_oid
    if oid not in _ACCEPTED_SIGNATURES:
        raise CsrRejected(
            f"CSR signature algorithm {oid.dotted_string} is not accepted; use ECDSA, RSA or "
            "RSA-PSS with SHA-256 or stronger, or Ed25519"
        )
    # EC keys (nearly every caller) are verified with the key already loaded above;
    # cryptography's is_signature_valid would parse and check the point a second time.
    if isinstance(key, ec.EllipticCurvePublicKey):
        if oid not in _ECDSA_SIGNATURES:
            return False
        try:
            algorithm = csr.signature_hash_algorithm
        except Exception as exc:  # UnsupportedAlgorithm for unknown signature algorithms
            raise CsrRejected(f"CSR signature algorithm is not supported: {exc}") from None
        if algorithm is None:
            return False
        try:
            key.verify(csr.signature, csr.tbs_certrequest_bytes, ec.ECDSA(algorithm))
        except InvalidSignature:
            return False
        return True
    try:
        return bool(csr.is_signature_valid)
    except Exception as exc:
        raise CsrRejected(f"CSR signature cannot be checked: {exc}") from None


def accepted_public_key(data: bytes) -> bytes:
    """Returns the DER SubjectPublicKeyInfo of a well-formed, self-signed CSR whose key is
    P-256, P-384, Ed25519 or RSA 2048-8192; raises :class:`CsrRejected` otherwise."""
    csr = _load(data)
    try:
        key = csr.public_key()
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise CsrRejected(f"CSR public key cannot be read: {exc}") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for unknown keys
        raise CsrRejected(f"CSR public key type is not supported: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _ACCEPTED_CURVES:
            raise CsrRejected(f"EC curve {key.curve.name} is not accepted; use P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if not _RSA_MIN_BITS <= key.key_size <= _RSA_MAX_BITS:
            raise CsrRejected(
                f"RSA key of {key.key_size} bits is not accepted; "
                f"use {_RSA_MIN_BITS}-{_RSA_MAX_BITS} bits"
            )
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise CsrRejected(
            f"{type(key).__name__.removeprefix('_')} keys are not accepted; "
            "use P-256, P-384, Ed25519 or RSA >= 2048"
        )
    if not _signature_valid(csr, key):
        raise CsrRejected("CSR signature does not verify with its own public key")
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
