"""Checks a caller's PKCS#10 request. Only its key is used; subject and extensions in the
CSR are ignored because they come from the CA's profile (SPEC C5).

Every rejection says, in English, which rule the request breaks (RFC 2986's structure,
RFC 7468's PEM, the accepted keys and signatures); a parser's own error text never reaches
the caller.
"""

from __future__ import annotations

import base64
import binascii
import re

from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import SignatureAlgorithmOID

from ca_service.pki import der

__all__ = ["MAX_CSR_BYTES", "CsrRejected", "accepted_public_key"]

MAX_CSR_BYTES = 64 * 1024
_ACCEPTED_CURVES = frozenset({"secp256r1", "secp384r1"})
_RSA_MIN_BITS = 2048
_RSA_MAX_BITS = 8192


class CsrRejected(ValueError):
    """The CSR cannot be signed; the message says why, in words a caller can act on."""


_INVALID = "CSR is not a valid PKCS#10 request"
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)-----")
# RFC 7468 section 7; "NEW CERTIFICATE REQUEST" is what older tools write.
_PEM_LABELS = frozenset({b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"})
_SEQUENCE = 0x30


def _from_pem(data: bytes) -> bytes:
    """The DER inside one PEM block (RFC 7468), with messages that say what is wrong."""
    begin = _PEM_BEGIN.search(data)
    if begin is None or data[: begin.start()].strip():
        raise CsrRejected(f"{_INVALID}: the PEM text must start with a -----BEGIN line")
    label = begin.group(1)
    if label not in _PEM_LABELS:
        shown = label.decode("ascii")
        raise CsrRejected(
            f"{_INVALID}: the PEM block is a {shown}; a CSR is a CERTIFICATE REQUEST "
            "(RFC 7468 section 7)"
        )
    end_line = b"-----END " + label + b"-----"
    end = data.find(end_line, begin.end())
    if end < 0:
        raise CsrRejected(
            f"{_INVALID}: the PEM text has no '{end_line.decode('ascii')}' line (it may be cut "
            "short)"
        )
    body = b"".join(data[begin.end() : end].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise CsrRejected(
            f"{_INVALID}: the text between the PEM BEGIN and END lines is not base64 (RFC 7468)"
        ) from None


def _check_structure(data: bytes) -> None:
    """The outline RFC 2986 section 4.2 prescribes, in DER: CertificationRequest ::=
    SEQUENCE { certificationRequestInfo SEQUENCE, signatureAlgorithm SEQUENCE, signature
    BIT STRING }, and nothing after it."""
    if data[0] != _SEQUENCE:
        raise CsrRejected(
            f"{_INVALID}: it must be a DER-encoded CertificationRequest (a SEQUENCE, RFC 2986 "
            "section 4.2) or PEM text starting with -----BEGIN CERTIFICATE REQUEST-----"
        )
    try:
        _, start, end = der.read_tlv(data)
    except ValueError:
        raise CsrRejected(
            f"{_INVALID}: it is cut short, or its length is not in DER form (X.690 10.1)"
        ) from None
    if end < len(data):
        raise CsrRejected(
            f"{_INVALID}: {len(data) - end} bytes follow the end of the DER-encoded request"
        )
    tags = []
    position = start
    try:
        while position < end:
            tag, _, position = der.read_tlv(data, position)
            tags.append(tag)
    except ValueError:
        raise CsrRejected(
            f"{_INVALID}: a part of it is cut short or has an invalid DER length"
        ) from None
    if tags != [_SEQUENCE, _SEQUENCE, 0x03]:
        raise CsrRejected(
            f"{_INVALID}: a CertificationRequest holds the request info, the signature "
            "algorithm and the signature (BIT STRING), in that order (RFC 2986 section 4.2)"
        )


def _load(data: bytes) -> x509.CertificateSigningRequest:
    if not data:
        raise CsrRejected("CSR is empty")
    if len(data) > MAX_CSR_BYTES:
        raise CsrRejected(f"CSR is larger than {MAX_CSR_BYTES} bytes")
    if data.lstrip().startswith(b"-----"):
        data = _from_pem(data.strip())
        if not data:
            raise CsrRejected(f"{_INVALID}: the PEM block is empty")
    _check_structure(data)
    try:
        csr = x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion):
        # The library's own text names its parser's internals, not the rule.
        raise CsrRejected(
            f"{_INVALID}: a field of the request info is not encoded as RFC 2986 and X.690 DER "
            "require (version 0, subject Name, SubjectPublicKeyInfo, attributes)"
        ) from None
    return csr


def _key_algorithm(csr: x509.CertificateSigningRequest) -> str:
    """The dotted OID of the CSR's public key algorithm, for messages."""
    try:
        info = asn1_csr.CertificationRequestInfo.load(csr.tbs_certrequest_bytes)
        return str(info["subject_pk_info"]["algorithm"]["algorithm"].dotted)
    except (ValueError, TypeError, KeyError):
        return "(unreadable)"


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
        except Exception:  # UnsupportedAlgorithm for unknown signature algorithms
            raise CsrRejected(
                f"CSR signature algorithm {oid.dotted_string} is not supported"
            ) from None
        if algorithm is None:
            return False
        try:
            key.verify(csr.signature, csr.tbs_certrequest_bytes, ec.ECDSA(algorithm))
        except InvalidSignature:
            return False
        return True
    try:
        return bool(csr.is_signature_valid)
    except Exception:
        raise CsrRejected(
            f"CSR signature cannot be checked: the signature algorithm {oid.dotted_string} "
            "does not fit the CSR's public key"
        ) from None


def accepted_public_key(data: bytes) -> bytes:
    """Returns the DER SubjectPublicKeyInfo of a well-formed, self-signed CSR whose key is
    P-256, P-384, Ed25519 or RSA 2048-8192; raises :class:`CsrRejected` otherwise."""
    csr = _load(data)
    try:
        key = csr.public_key()
    except (ValueError, x509.UnsupportedGeneralNameType):
        raise CsrRejected(
            "CSR public key cannot be read: its SubjectPublicKeyInfo (algorithm "
            f"{_key_algorithm(csr)}) is not a valid key encoding (RFC 5280 4.1.2.7)"
        ) from None
    except Exception:  # cryptography raises UnsupportedAlgorithm for unknown keys
        raise CsrRejected(
            f"CSR public key algorithm {_key_algorithm(csr)} is not accepted; use P-256, "
            "P-384, Ed25519 or RSA >= 2048"
        ) from None
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
