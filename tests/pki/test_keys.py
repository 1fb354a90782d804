"""CA keys at rest (issue 9, item 7): PKCS#8 PBES2 with PBKDF2-HMAC-SHA256 at 600,000
iterations and AES-256-CBC, read back with asn1crypto and read by openssl."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ca_service.pki.keys import (
    KEY_KDF_ITERATIONS,
    KeyAlgorithm,
    decrypt_private_key,
    encrypt_private_key,
    generate_key,
    key_protection,
)
from tests.support import pbes2_parameters, run

PASSPHRASE = b"key-passphrase-9#x"


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm), ids=lambda a: a.value)
def test_keys_rest_under_pbkdf2_sha256_at_600000_iterations(
    algorithm: KeyAlgorithm, tmp_path: Path
) -> None:
    key = generate_key(algorithm)
    pem = encrypt_private_key(key, PASSPHRASE)
    parameters = pbes2_parameters(pem)
    assert parameters["scheme"] == "pbes2" and parameters["kdf"] == "pbkdf2"
    assert parameters["iterations"] == KEY_KDF_ITERATIONS >= 600_000
    assert parameters["prf"] == "sha256" and parameters["cipher"] == "aes256_cbc"
    assert len(parameters["salt"]) == 16 and len(parameters["iv"]) == 16  # type: ignore[arg-type]
    assert key_protection(pem).current

    # Our reader and OpenSSL's both open it; the wrong passphrase opens nothing.
    assert decrypt_private_key(pem, PASSPHRASE).private_numbers() == key.private_numbers()
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    shown = run(
        ["openssl", "pkey", "-in", str(path), "-passin", "env:PASS", "-noout", "-text"],
        {"PASS": PASSPHRASE.decode(), "PATH": "/usr/bin:/bin"},
    )
    assert "Private-Key" in shown.stdout
    with pytest.raises(ValueError, match="wrong passphrase or damaged file"):
        decrypt_private_key(pem, b"another passphrase")


def test_each_file_gets_its_own_salt_and_iv() -> None:
    key = generate_key(KeyAlgorithm.EC_P256)
    first, second = (pbes2_parameters(encrypt_private_key(key, PASSPHRASE)) for _ in range(2))
    assert first["salt"] != second["salt"] and first["iv"] != second["iv"]


def test_older_files_are_recognised_as_weaker() -> None:
    """What versions before this one wrote: cryptography's PBES2 with 2,048 iterations."""
    key = generate_key(KeyAlgorithm.EC_P256)
    old = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    protection = key_protection(old)
    assert protection.iterations == 2048 and not protection.current
    assert decrypt_private_key(old, PASSPHRASE).private_numbers() == key.private_numbers()
    with pytest.raises(ValueError):
        key_protection(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
