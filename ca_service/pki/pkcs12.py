"""PKCS#12 files for server-generated keys (SPEC C4): AES-256-CBC with PBKDF2-SHA256 and a
SHA-256 MAC whose key derivation runs as many iterations as the bags' PBKDF2, readable by
OpenSSL 3 without ``-legacy``.

The file is protected by the user's login password, so a stolen file is attacked at its
cheapest part. cryptography's encryption builder sets the bags' PBKDF2 rounds
(``kdf_rounds``) but always writes the MAC with 2,048 iterations of the PKCS#12 key
derivation (it has no setting for it), so the MAC is computed again here (RFC 7292 4 and
appendix B) with ``kdf_rounds`` iterations and a fresh 16-octet salt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from ca_service.pki import der

__all__ = [
    "DEFAULT_KDF_ROUNDS",
    "build_pkcs12",
    "build_pkcs12_from_der",
    "pkcs12_kdf",
    "with_mac",
]

DEFAULT_KDF_ROUNDS = 100_000
_MAC_SALT_OCTETS: Final = 16
# RFC 7292 B.3: the "ID" byte that says what the derived bits are for.
_MAC_KEY_ID: Final = 3
# The MAC hash (cryptography writes the digest algorithm; this must match it), with its
# block size v and output size u in octets (RFC 7292 B.2).
_MAC_HASHES: Final = {
    "sha256": (64, 32),
    "sha1": (64, 20),
    "sha384": (128, 48),
    "sha512": (128, 64),
}


def _fill(data: bytes, v: int) -> bytes:
    """``data`` repeated to the next multiple of ``v`` octets (RFC 7292 B.2 steps 2 and 3);
    nothing stays nothing."""
    if not data:
        return b""
    size = v * -(-len(data) // v)
    return (data * (size // len(data) + 1))[:size]


def pkcs12_kdf(
    password: str, salt: bytes, key_id: int, iterations: int, length: int, hash_name: str
) -> bytes:
    """The PKCS#12 key derivation (RFC 7292 appendix B.2), with the password as a BMPString
    (UTF-16BE with two zero octets at the end, B.1)."""
    if iterations < 1:
        raise ValueError("iterations must be positive")
    v, u = _MAC_HASHES[hash_name]
    digest = getattr(hashlib, hash_name)
    diversifier = bytes((key_id,)) * v
    input_ = _fill(salt, v) + _fill(password.encode("utf-16-be") + b"\0\0", v)
    blocks: list[bytes] = []
    while True:
        block = digest(diversifier + input_).digest()
        for _ in range(iterations - 1):
            block = digest(block).digest()
        blocks.append(block)
        if len(blocks) * u >= length:
            return b"".join(blocks)[:length]
        # Step 6.C: each v-octet block of I becomes (I_j + B + 1) mod 2^(8v).
        increment = int.from_bytes(_fill(block, v)[:v], "big") + 1
        input_ = b"".join(
            ((int.from_bytes(input_[i : i + v], "big") + increment) % (1 << (8 * v))).to_bytes(
                v, "big"
            )
            for i in range(0, len(input_), v)
        )


def with_mac(pfx: bytes, password: str, iterations: int) -> bytes:
    """``pfx`` with its MAC computed again (same hash) over the unchanged authenticated
    safe, from ``iterations`` rounds of the PKCS#12 key derivation and a new salt."""
    parsed = asn1_pkcs12.Pfx.load(pfx, strict=True)
    mac_data = parsed["mac_data"]
    algorithm = mac_data["mac"]["digest_algorithm"]
    hash_name = algorithm["algorithm"].native
    if hash_name not in _MAC_HASHES:
        raise ValueError(f"unsupported PKCS#12 MAC hash {hash_name}")
    auth_safe = parsed["auth_safe"]
    if auth_safe["content_type"].native != "data":
        raise ValueError("the authenticated safe is not id-data (a public-key-signed PFX?)")
    content = auth_safe["content"].native
    salt = secrets.token_bytes(_MAC_SALT_OCTETS)
    key = pkcs12_kdf(password, salt, _MAC_KEY_ID, iterations, _MAC_HASHES[hash_name][1], hash_name)
    new_mac_data = asn1_pkcs12.MacData(
        {
            "mac": {
                "digest_algorithm": algorithm,
                "digest": hmac.new(key, content, hash_name).digest(),
            },
            "mac_salt": salt,
            "iterations": iterations,
        }
    )
    # The version and the authenticated safe keep their exact octets.
    return der.sequence(parsed["version"].dump(), auth_safe.dump(), new_mac_data.dump())


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
    pfx = pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"), key, certificate, list(chain), encryption
    )
    return with_mac(pfx, password, kdf_rounds)


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
