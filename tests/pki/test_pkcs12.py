"""PKCS#12 files (SPEC C4; issue 9, item 7): the MAC is derived with as many iterations as
the bags' PBKDF2, and OpenSSL 3 reads the file without -legacy. The PKCS#12 key derivation
is checked against OpenSSL's own (PKCS12KDF), the files against `openssl pkcs12` and
cryptography's reader, their parameters read back with asn1crypto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ca_service.pki.pkcs12 import DEFAULT_KDF_ROUNDS, build_pkcs12, pkcs12_kdf, with_mac
from tests.support import run


@pytest.mark.parametrize(
    ("password", "salt", "key_id", "iterations", "length", "hash_name"),
    [
        ("Pa55-word!", "0102030405060708", 3, 1000, 32, "sha256"),
        ("Pa55-wörd!", "a1" * 16, 3, 2048, 32, "sha256"),
        ("x", "00" * 20, 1, 7, 70, "sha256"),  # several output blocks (B.2 step 6.C)
        ("Sh0rt-pw!", "ff" * 8, 3, 100, 20, "sha1"),
        ("Long-Passw0rd!" * 6, "5a" * 64, 2, 3, 100, "sha512"),
    ],
)
def test_kdf_matches_openssl(
    password: str, salt: str, key_id: int, iterations: int, length: int, hash_name: str
) -> None:
    bmp = (password.encode("utf-16-be") + b"\0\0").hex()
    expected = run(
        [
            "openssl",
            "kdf",
            "-keylen",
            str(length),
            "-kdfopt",
            f"digest:{hash_name.upper()}",
            "-kdfopt",
            f"hexpass:{bmp}",
            "-kdfopt",
            f"hexsalt:{salt}",
            "-kdfopt",
            f"iter:{iterations}",
            "-kdfopt",
            f"id:{key_id}",
            "PKCS12KDF",
        ]
    ).stdout.strip()
    derived = pkcs12_kdf(password, bytes.fromhex(salt), key_id, iterations, length, hash_name)
    assert derived.hex(":").upper() == expected


def _leaf() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.Certificate]:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PKCS#12 Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "user0001")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    return key, leaf, ca


@pytest.mark.parametrize(
    ("password", "rounds"), [("Pa55-wörd!", DEFAULT_KDF_ROUNDS), ("S3cret-pass!", 20_000)]
)
def test_mac_iterations_equal_the_kdf_rounds_and_openssl_3_reads_it(
    tmp_path: Path, password: str, rounds: int
) -> None:
    key, leaf, ca = _leaf()
    data = build_pkcs12(
        friendly_name="user0001",
        key=key,
        certificate=leaf,
        chain=[ca],
        password=password,
        kdf_rounds=rounds,
    )
    # Read back with asn1crypto: the MAC's own parameters.
    mac_data = asn1_pkcs12.Pfx.load(data)["mac_data"]
    assert mac_data["iterations"].native == rounds
    assert mac_data["mac"]["digest_algorithm"]["algorithm"].native == "sha256"
    assert len(mac_data["mac_salt"].native) == 16

    path = tmp_path / "user.p12"
    path.write_bytes(data)
    env = {"P12PASS": password, "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    info = run(
        ["openssl", "pkcs12", "-in", str(path), "-passin", "env:P12PASS", "-info", "-noout"], env
    )
    details = info.stdout + info.stderr
    assert f"MAC: sha256, Iteration {rounds}" in details, details
    assert details.count(f"PBES2, PBKDF2, AES-256-CBC, Iteration {rounds}, PRF hmacWithSHA256") == 2
    # Imported without -legacy: key and both certificates.
    dump = run(["openssl", "pkcs12", "-in", str(path), "-passin", "env:P12PASS", "-nodes"], env)
    assert dump.stdout.count("BEGIN CERTIFICATE") == 2 and "BEGIN PRIVATE KEY" in dump.stdout
    wrong = run(
        ["openssl", "pkcs12", "-in", str(path), "-passin", "pass:Wrong-pass1", "-nodes"],
        check=False,
    )
    assert wrong.returncode != 0 and "Mac verify error" in wrong.stderr

    loaded_key, loaded_leaf, loaded_chain = pkcs12.load_key_and_certificates(
        data, password.encode()
    )
    assert loaded_leaf == leaf and loaded_chain == [ca]
    assert loaded_key is not None and loaded_key.public_key() == key.public_key()


def test_a_tampered_file_fails_the_mac(tmp_path: Path) -> None:
    key, leaf, ca = _leaf()
    data = bytearray(
        build_pkcs12(
            friendly_name="user0001", key=key, certificate=leaf, chain=[ca], password="Pa55-word!"
        )
    )
    # A byte inside the authenticated safe (the certificate bag): the MAC must catch it.
    data[200] ^= 0x01
    path = tmp_path / "tampered.p12"
    path.write_bytes(bytes(data))
    result = run(
        ["openssl", "pkcs12", "-in", str(path), "-passin", "pass:Pa55-word!", "-nodes"],
        check=False,
    )
    assert result.returncode != 0 and "Mac verify error" in result.stderr


def test_with_mac_keeps_the_authenticated_safe_and_refuses_unknown_hashes() -> None:
    key, leaf, ca = _leaf()
    data = build_pkcs12(
        friendly_name="user0001", key=key, certificate=leaf, chain=[ca], password="Pa55-word!"
    )
    again = with_mac(data, "Pa55-word!", 5)
    before, after = asn1_pkcs12.Pfx.load(data), asn1_pkcs12.Pfx.load(again)
    assert before["auth_safe"].dump() == after["auth_safe"].dump()
    assert after["mac_data"]["iterations"].native == 5
    assert pkcs12.load_key_and_certificates(again, b"Pa55-word!")[1] == leaf
    with pytest.raises(ValueError, match="iterations must be positive"):
        with_mac(data, "Pa55-word!", 0)
