"""The CA with its keys in an HSM (SoftHSM2, a token of the test's own): `ca-service init`
makes the issuing CA's key in the token, `serve` issues over gRPC, signs CRLs and OCSP
answers there; openssl verifies each and pkilint finds nothing. The keys are sensitive and
not extractable: reading the private value and wrapping the key out are both refused."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from ca_service.adapters.keystore import CaFiles, TokenKeys
from ca_service.adapters.pkcs11 import Pkcs11Signer, Pkcs11Token
from ca_service.errors import ConfigurationError
from ca_service.pki.keys import KeyAlgorithm, generate_key
from ca_service.pki.signer import SoftwareSigner
from tests.integration.revocation_support import (
    fetch,
    is_listed,
    issue,
    new_user,
    revoke,
    url_of,
    wait_for_crl,
)
from tests.softhsm import MODULE, SoftHsmToken, make_token
from tests.support import (
    PASSPHRASE,
    CaProcess,
    ca_env,
    check_crl,
    free_port,
    openssl_ocsp,
    openssl_verify,
    pkilint_certificate,
    pkilint_ocsp_response,
    run,
    tool,
)

_ISSUING_LABEL = "issuing-ca"


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    return make_token(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, token: SoftHsmToken
) -> Iterator[CaProcess]:
    data_dir = tmp_path_factory.mktemp("hsm") / "ca"
    port = free_port()
    extra = {
        "CA_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CA_REDIS_URL": redis_server,
        "CA_REDIS_PREFIX": "hsmtest:",
        "SOFTHSM2_CONF": str(token.config),
    }
    # init takes the token on its command line, the PIN as a file.
    run(
        [
            tool("ca-service"),
            "init",
            "--pkcs11-module",
            str(MODULE),
            "--pkcs11-token",
            token.label,
            "--pkcs11-pin-file",
            str(token.pin_file),
        ],
        ca_env(data_dir, **extra),
    )
    process = CaProcess(
        data_dir, ca_env(data_dir, **{**extra, **token.env}), data_dir.parent / "ca.log"
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def opened(token: SoftHsmToken) -> Iterator[Pkcs11Token]:
    """The test's own session on the token the server uses."""
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(token.config)
    opened = Pkcs11Token(MODULE, token.label, token.pin)
    yield opened
    opened.close()
    pkcs11.unload(str(MODULE))
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(Encoding.PEM))
    return path


def test_no_ca_key_file_and_the_certificate_names_the_token_key(
    server: CaProcess, opened: Pkcs11Token
) -> None:
    files = CaFiles(server.data_dir)
    assert not files.path("issuing", "key.pem").exists()
    assert not files.path("ocsp", "key.pem").exists()
    assert files.path("ocsp", "cert.pem").exists()
    issuing = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    assert opened.signer(_ISSUING_LABEL).public_key_der == _spki(issuing)
    issuing.verify_directly_issued_by(
        x509.load_pem_x509_certificate(files.path("root", "ca.pem").read_bytes())
    )


def _assert_locked_in(signer: Pkcs11Signer, opened: Pkcs11Token) -> None:
    attributes = signer.attributes()
    assert attributes.sensitive and attributes.always_sensitive
    assert not attributes.extractable and attributes.never_extractable
    with pytest.raises(pkcs11.AttributeSensitive):
        opened.read_private_value(signer.lookup)


def test_keys_are_sensitive_and_not_extractable(
    server: CaProcess, opened: Pkcs11Token, tmp_path: Path
) -> None:
    files = CaFiles(server.data_dir)
    issuing = opened.signer(_ISSUING_LABEL)
    _assert_locked_in(issuing, opened)
    responder = x509.load_pem_x509_certificate(files.path("ocsp", "cert.pem").read_bytes())
    _assert_locked_in(opened.signer_for(_spki(responder)), opened)

    # Wrapping it out under a key of our own (what a backup tool would do) is refused too.
    with opened._session() as pooled:
        session = pooled.session
        wrapping = session.generate_key(pkcs11.KeyType.AES, 256, store=False)
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=_ISSUING_LABEL)
        with pytest.raises(pkcs11.KeyUnextractable):
            wrapping.wrap_key(private, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)

    # A second CA cannot take the label: init refuses rather than shadowing the key.
    other = tmp_path / "other"
    result = run(
        [tool("ca-service"), "init"],
        ca_env(other, SOFTHSM2_CONF=server.env["SOFTHSM2_CONF"], **_token_env(server)),
        check=False,
    )
    assert result.returncode != 0
    assert "already holds a key labelled 'issuing-ca'" in result.stderr
    assert not (other / "issuing").exists()


def _token_env(server: CaProcess) -> dict[str, str]:
    return {k: v for k, v in server.env.items() if k.startswith("CA_PKCS11_")}


def test_issue_crl_and_ocsp_signed_in_the_token(
    server: CaProcess, token: SoftHsmToken, tmp_path: Path
) -> None:
    files = CaFiles(server.data_dir)
    root_pem, issuing_pem = files.path("root", "ca.pem"), files.path("issuing", "ca.pem")
    revoked_cert = issue(server, new_user(server, "hsm"))
    kept_cert = issue(server, new_user(server, "hsm"))
    for name, certificate in (("revoked", revoked_cert), ("kept", kept_cert)):
        leaf = _pem(tmp_path / f"{name}.pem", certificate)
        openssl_verify(root_pem, issuing_pem, leaf)
        pkilint_certificate(leaf)

    crl_url = url_of(revoked_cert, x509.CRLDistributionPoints)
    status, _, base_der = fetch(crl_url)
    assert status == 200
    check_crl(base_der, issuing_pem, tmp_path / "base.crl")

    revoke(server, revoked_cert.serial_number)
    delta_url = url_of(revoked_cert, x509.FreshestCRL)
    delta, delta_der = wait_for_crl(delta_url, lambda crl: is_listed(crl, revoked_cert))
    assert not is_listed(delta, kept_cert)
    check_crl(delta_der, issuing_pem, tmp_path / "delta.crl")

    chain = tmp_path / "chain.pem"
    chain.write_bytes(issuing_pem.read_bytes() + root_pem.read_bytes())
    ocsp_url = server.http + "/ocsp"
    for name, expected in (("revoked", "revoked"), ("kept", "good")):
        leaf = tmp_path / f"{name}.pem"
        response = tmp_path / f"{name}.ocsp"
        deadline = time.monotonic() + 10
        while True:
            output = openssl_ocsp(
                issuing_pem, chain, leaf, ocsp_url, "-no_nonce", "-respout", str(response)
            )
            if f"{leaf}: {expected}" in output or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "Response verify OK" in output and f"{leaf}: {expected}" in output, output
        pkilint_ocsp_response(response)
    # The PIN never reaches the log.
    assert token.pin not in server.log_path.read_text()


def test_a_wrong_pin_is_a_clear_error_without_the_pin(
    server: CaProcess, token: SoftHsmToken, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("not-the-pin-0000\n")
    env = ca_env(server.data_dir, **{**_token_env(server), "CA_PKCS11_PIN_FILE": str(wrong)})
    env["SOFTHSM2_CONF"] = str(token.config)
    result = run([tool("ca-service"), "sign-arl"], env, check=False)
    # sign-arl needs no token; server-cert signs with the issuing CA's key, so it logs in.
    assert result.returncode == 0, result.stderr
    result = run(
        [tool("ca-service"), "server-cert", "--name", "web", "--dns", "web.example.jp"],
        env,
        check=False,
    )
    assert result.returncode != 0
    assert f"the PIN of the PKCS#11 token {token.label!r} is wrong" in result.stderr
    assert "not-the-pin-0000" not in result.stdout + result.stderr


def test_backup_and_restore_keep_the_key_in_the_token(
    server: CaProcess, token: SoftHsmToken, tmp_path: Path
) -> None:
    """A backup of an HSM CA carries no issuing key; the restored CA signs with the token's."""
    env = {**server.env}
    backup = tmp_path / "backup"
    result = run([tool("ca-service"), "backup", "--to", str(backup)], env)
    assert "not in it" in result.stdout  # the token's keys: backed up by the HSM's means
    assert json.loads((backup / "manifest.json").read_text())["pkcs11"] is True
    assert not (backup / "data" / "issuing" / "key.pem").exists()
    assert not (backup / "data" / "ocsp" / "key.pem").exists()

    restored = tmp_path / "restored"
    restored_env = {**env, "CA_DATA_DIR": str(restored)}
    run([tool("ca-service"), "restore", "--from", str(backup)], restored_env)
    run(
        [tool("ca-service"), "server-cert", "--name", "web", "--dns", "web.example.jp"],
        restored_env,
    )
    leaf = x509.load_pem_x509_certificate((restored / "tls" / "web" / "cert.pem").read_bytes())
    leaf.verify_directly_issued_by(
        x509.load_pem_x509_certificate((restored / "issuing" / "ca.pem").read_bytes())
    )


def test_signatures_from_many_threads_at_once(opened: Pkcs11Token) -> None:
    """The module is initialised without locking (C_Initialize(NULL)): the token's lock
    keeps concurrent signers (event loop, worker threads) from corrupting it."""
    signer = opened.signer(_ISSUING_LABEL)
    public = load_der_public_key(signer.public_key_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)

    def sign(index: int) -> tuple[bytes, bytes]:
        data = index.to_bytes(4, "big") * 64
        return data, signer.sign(data)

    with ThreadPoolExecutor(8) as pool:
        signed = list(pool.map(sign, range(400)))
    for data, signature in signed:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


def test_the_responder_key_rotates_in_the_token(
    server: CaProcess, opened: Pkcs11Token, tmp_path: Path
) -> None:
    """A rotation makes a new responder key pair in the token and certifies it; the one it
    replaces stays (the running server still signs with it)."""
    data_dir = tmp_path / "copy"
    shutil.copytree(server.data_dir, data_dir, ignore=shutil.ignore_patterns("ca.db*"))
    files = CaFiles(data_dir, TokenKeys(opened, _ISSUING_LABEL))
    loaded = files.load(PASSPHRASE.encode())
    now = datetime.now(UTC)
    current = files.ocsp_responder(loaded, PASSPHRASE.encode(), now)
    assert current.certificate_der == x509.load_pem_x509_certificate(
        (server.data_dir / "ocsp" / "cert.pem").read_bytes()
    ).public_bytes(Encoding.DER)
    rotated = files.ocsp_responder(loaded, PASSPHRASE.encode(), now + timedelta(days=61))
    certificate = x509.load_der_x509_certificate(rotated.certificate_der)
    certificate.verify_directly_issued_by(loaded.issuing)
    assert rotated.signer.public_key_der == _spki(certificate) != current.signer.public_key_der
    _assert_locked_in(opened.signer_for(_spki(certificate)), opened)
    opened.signer_for(current.signer.public_key_der)  # kept
    assert not (data_dir / "ocsp" / "key.pem").exists()


def test_prune_deletes_the_key_pairs_not_kept(opened: Pkcs11Token) -> None:
    made = [
        opened.generate(KeyAlgorithm.EC_P256, "prune-test", label_may_repeat=True) for _ in range(3)
    ]
    opened.prune("prune-test", {made[1].lookup[1], made[2].lookup[1]})
    with pytest.raises(ConfigurationError, match="holds 0 public keys"):
        opened.signer_for(made[0].public_key_der)
    for kept in made[1:]:
        assert opened.signer_for(kept.public_key_der).sign(b"x")
    opened.prune("prune-test", set())


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_3072]
)
def test_every_ca_key_algorithm_signs_like_the_software_key(
    opened: Pkcs11Token, algorithm: KeyAlgorithm
) -> None:
    label = f"algorithm-{algorithm.value}"
    signer = opened.generate(algorithm, label)
    try:
        software = SoftwareSigner(generate_key(algorithm))
        assert signer.signature_algorithm == software.signature_algorithm
        public = load_der_public_key(signer.public_key_der)
        data = b"to be signed" * 40
        signature = signer.sign(data)
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            digest = hashes.SHA384() if algorithm is KeyAlgorithm.EC_P384 else hashes.SHA256()
            public.verify(signature, data, ec.ECDSA(digest))
        _assert_locked_in(signer, opened)
    finally:
        opened.destroy(signer.lookup)
