"""Key generation and the encrypted PKCS#8 form CA keys rest in.

Keys at rest are PKCS#8 ``EncryptedPrivateKeyInfo`` with PBES2 (RFC 8018): PBKDF2 with
HMAC-SHA256 at :data:`KEY_KDF_ITERATIONS` iterations (OWASP's figure for PBKDF2-SHA256),
a 16-octet salt per file, and AES-256-CBC. cryptography writes PBES2 with 2,048 iterations
and has no setting for more, so the structure is built here with asn1crypto; every
PKCS#8 reader (cryptography, ``openssl pkey``) reads it. :func:`key_protection` reads the
parameters of a file back, so that weaker files can be found and encrypted again.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import Final

from asn1crypto import algos, core
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

__all__ = [
    "KEY_KDF_ITERATIONS",
    "CaPrivateKey",
    "KeyAlgorithm",
    "KeyProtection",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_key",
    "key_protection",
    "unencrypted_pem",
]

KEY_KDF_ITERATIONS: Final = 600_000
_SALT_OCTETS: Final = 16
_PEM_LABEL: Final = "ENCRYPTED PRIVATE KEY"

CaPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyAlgorithm(enum.Enum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_3072 = "rsa-3072"


def generate_key(algorithm: KeyAlgorithm) -> CaPrivateKey:
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@dataclass(frozen=True, slots=True)
class KeyProtection:
    """How an encrypted PKCS#8 file is protected, as its parameters say."""

    scheme: str  # "pbes2", or a PBES1 / PKCS#12 scheme's name
    kdf: str | None  # "pbkdf2" or "scrypt" (PBES2 only)
    iterations: int | None  # PBKDF2 iterations
    prf: str | None  # PBKDF2's HMAC hash, e.g. "sha256"
    cipher: str | None  # e.g. "aes256_cbc"

    @property
    def current(self) -> bool:
        """As strong as what :func:`encrypt_private_key` writes now."""
        return (
            self.scheme == "pbes2"
            and self.kdf == "pbkdf2"
            and self.prf == "sha256"
            and self.cipher == "aes256_cbc"
            and (self.iterations or 0) >= KEY_KDF_ITERATIONS
        )


def key_protection(pem: bytes) -> KeyProtection:
    """The protection parameters of a PEM ``ENCRYPTED PRIVATE KEY``; ValueError for
    anything else (an unencrypted key included)."""
    try:
        label, _, der_bytes = asn1_pem.unarmor(pem)
        if label != _PEM_LABEL:
            raise ValueError(f"not an {_PEM_LABEL} but {label}")
        algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der_bytes)["encryption_algorithm"]
        scheme = algorithm["algorithm"].native
        if scheme != "pbes2":
            return KeyProtection(scheme, None, None, None, None)
        parameters = algorithm["parameters"]
        kdf = parameters["key_derivation_func"]
        kdf_name = kdf["algorithm"].native
        if kdf_name != "pbkdf2":
            return KeyProtection(scheme, kdf_name, None, None, None)
        kdf_parameters = kdf["parameters"]
        return KeyProtection(
            scheme,
            kdf_name,
            int(kdf_parameters["iteration_count"].native),
            kdf_parameters["prf"]["algorithm"].native,
            parameters["encryption_scheme"]["algorithm"].native,
        )
    except ValueError:
        raise
    except Exception as exc:  # asn1crypto raises several types for damaged input
        raise ValueError(f"not a readable encrypted PKCS#8 key: {type(exc).__name__}") from exc


def encrypt_private_key(key: CaPrivateKey, passphrase: bytes) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` (PKCS#8, PBES2: PBKDF2-HMAC-SHA256 at
    :data:`KEY_KDF_ITERATIONS` iterations, AES-256-CBC)."""
    if not passphrase:
        raise ValueError("a non-empty passphrase is required to store a CA key")
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, iv = secrets.token_bytes(_SALT_OCTETS), secrets.token_bytes(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, KEY_KDF_ITERATIONS).derive(passphrase)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": algos.Pbkdf2Salt(name="specified", value=salt),
                            "iteration_count": KEY_KDF_ITERATIONS,
                            "prf": {"algorithm": "sha256", "parameters": core.Null()},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": encrypted,
        }
    )
    return bytes(asn1_pem.armor(_PEM_LABEL, info.dump()))


def decrypt_private_key(pem: bytes, passphrase: bytes) -> CaPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise ValueError("cannot decrypt the CA key: wrong passphrase or damaged file") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported CA key type {type(key).__name__}")
    return key


def unencrypted_pem(key: CaPrivateKey) -> bytes:
    """For TLS credentials that the gRPC runtime must read in clear."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
