"""The Signer protocol: whatever holds a CA key signs bytes through it.

Certificates (and later CRLs and OCSP responses) are assembled as DER and only the
to-be-signed bytes go to the signer, so a PKCS#11 key can replace the software key without
touching the builders.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from asn1crypto import algos, core
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["Signer", "SoftwareSigner", "signs_in_process"]


@runtime_checkable
class Signer(Protocol):
    @property
    def signature_algorithm(self) -> bytes:
        """DER AlgorithmIdentifier of the signatures this signer makes."""

    @property
    def public_key_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the signing key."""

    def sign(self, data: bytes) -> bytes:
        """The signature value over ``data`` (for ECDSA, a DER Ecdsa-Sig-Value)."""


_EC_HASHES: dict[str, tuple[hashes.HashAlgorithm, str]] = {
    "secp256r1": (hashes.SHA256(), "sha256_ecdsa"),
    "secp384r1": (hashes.SHA384(), "sha384_ecdsa"),
}


class SoftwareSigner:
    """Signs with a private key held in process memory (loaded from an encrypted PKCS#8)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self._key = private_key
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if private_key.curve.name not in _EC_HASHES:
                raise ValueError(f"unsupported CA curve {private_key.curve.name}")
            hash_algorithm, algorithm_name = _EC_HASHES[private_key.curve.name]
            self._ecdsa = ec.ECDSA(hash_algorithm)
            # RFC 5758 3.2: the parameters field is absent for ECDSA.
            algorithm = algos.SignedDigestAlgorithm({"algorithm": algorithm_name})
        elif isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < 2048:
                raise ValueError("RSA CA keys must have at least 2048 bits")
            self._hash = hashes.SHA256()
            # RFC 4055 5: sha256WithRSAEncryption carries NULL parameters.
            algorithm = algos.SignedDigestAlgorithm(
                {"algorithm": "sha256_rsa", "parameters": core.Null()}
            )
        else:
            raise TypeError(f"unsupported CA key type {type(private_key).__name__}")
        self._algorithm_der: bytes = algorithm.dump()
        self._public_key_der = private_key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def signature_algorithm(self) -> bytes:
        return self._algorithm_der

    @property
    def public_key_der(self) -> bytes:
        return self._public_key_der

    def sign(self, data: bytes) -> bytes:
        signature: bytes
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            signature = self._key.sign(data, self._ecdsa)
        else:
            signature = self._key.sign(data, padding.PKCS1v15(), self._hash)
        return signature


def signs_in_process(signer: Signer) -> bool:
    """Whether ``signer`` signs in this process, in tens of microseconds, so that callers
    on the event loop may call it directly. Any other (an HSM: a library call that may wait
    on a device or the network) is called from a worker thread."""
    return isinstance(signer, SoftwareSigner)
