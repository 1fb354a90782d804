"""Existing installations: a CA made before the issuing CA certificate named the root's CRL
gets it by `ca-service upgrade-issuing` (same key, subject, key identifier and validity), and
certificates issued before the upgrade then validate through the whole path in Java's PKIX.
Also the root CRL's upkeep: `sign-arl`, and an offline root (no root key in the data
directory)."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca_service.adapters.keystore import CaFiles
from ca_service.errors import ConfigurationError
from ca_service.pki import hierarchy
from ca_service.pki.keys import decrypt_private_key
from ca_service.pki.signer import SoftwareSigner
from ca_service.services.arl import RootCrlKeeper
from tests.fakes import FakeClock
from tests.integration.revocation_support import (
    ca_issuers_url,
    fetch,
    issue,
    new_user,
    pem,
    url_of,
)
from tests.support import (
    PASSPHRASE,
    CaProcess,
    ca_env,
    free_port,
    init_ca,
    openssl_verify,
    pkilint_certificate,
    run,
    tool,
)

JAVA_SOURCE = Path(__file__).parent / "java" / "ValidatePath.java"


def _make_it_old(files: CaFiles) -> x509.Certificate:
    """Turns a fresh CA into one as `ca-service init` made it before the root CRL existed:
    the issuing CA certificate without CRLDistributionPoints and AIA (same key), no ARL."""
    root = x509.load_pem_x509_certificate(files.path("root", "ca.pem").read_bytes())
    current = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    root_key = decrypt_private_key(files.path("root", "key.pem").read_bytes(), PASSPHRASE.encode())
    ski = current.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    old = hierarchy.reissue_subordinate(
        hierarchy.IssuedCa(root.public_bytes(Encoding.DER), root.subject.public_bytes(), root_ski),
        SoftwareSigner(root_key),
        subject=current.subject.public_bytes(),
        spki=asn1_x509.Certificate.load(current.public_bytes(Encoding.DER))["tbs_certificate"][
            "subject_public_key_info"
        ].dump(),
        key_id=ski,
        not_before=current.not_valid_before_utc,
        not_after=current.not_valid_after_utc,
        urls=None,
    )
    certificate = x509.load_der_x509_certificate(old.certificate_der)
    files.path("issuing", "ca.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
    files.path("root", "crl.der").unlink()
    return certificate


def _java(classes: Path, mode: str, files: CaFiles, issuing: Path, leaf: Path) -> str:
    path = [str(files.path("root", "ca.pem")), str(leaf), str(issuing)]
    result = run(
        ["java", "-cp", str(classes), "ValidatePath", mode, *path], check=False, timeout=120
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("javac") is None:
        if os.environ.get("CI"):
            pytest.fail("javac not found; CI must run the Java relying-party tests")
        pytest.skip("javac not found (Debian: apt-get install default-jdk-headless)")
    classes = tmp_path_factory.mktemp("java")
    run(["javac", "-d", str(classes), str(JAVA_SOURCE)], timeout=120)
    return classes


def test_upgrade_issuing_gives_an_old_installation_the_root_crl(
    tmp_path: Path, redis_server: str, java_classes: Path
) -> None:
    data_dir = tmp_path / "ca"
    port = free_port()
    extra = {
        "CA_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CA_REDIS_URL": redis_server,
        "CA_REDIS_PREFIX": "upgrade:",
    }
    files = init_ca(data_dir, **extra)
    env = ca_env(data_dir, **extra)
    old = _make_it_old(files)
    assert not any(
        isinstance(e.value, x509.CRLDistributionPoints | x509.AuthorityInformationAccess)
        for e in old.extensions
    )

    # The old installation serves; the root CRL appears (its key is here), a warning says
    # what to do, and Java's whole-path check fails at the issuing CA as it did.
    log = tmp_path / "before.log"
    server = CaProcess(data_dir, env, log).start()
    try:
        leaf_cert = issue(server, new_user(server, "upg"))
        assert fetch(f"{server.http}/crl/root.crl")[0] == 200
        leaf = tmp_path / "leaf.pem"
        leaf.write_bytes(pem(leaf_cert))
        old_issuing = tmp_path / "old-issuing.pem"
        old_issuing.write_bytes(fetch(f"{server.http}/ca/issuing.der")[2])
        old_issuing.write_bytes(pem(x509.load_der_x509_certificate(old_issuing.read_bytes())))
        before = _java(java_classes, "ocsp", files, old_issuing, leaf)
        # Refused at certificate 1 of the path, the issuing CA, for want of revocation data.
        assert before.startswith("INVALID") and before.split()[2] == "1", before
    finally:
        server.stop()
    assert "run `ca-service upgrade-issuing`" in log.read_text()

    upgraded = run([tool("ca-service"), "upgrade-issuing"], env)
    assert "re-issued" in upgraded.stdout
    new = x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes())
    kept = files.path("issuing", f"ca-{old.serial_number:x}.pem")
    assert x509.load_pem_x509_certificate(kept.read_bytes()) == old
    # Same name, key, key identifier and validity; a new serial; the root's pointers.
    assert new.subject.public_bytes() == old.subject.public_bytes()
    assert new.public_key() == old.public_key()
    assert new.not_valid_before_utc == old.not_valid_before_utc
    assert new.not_valid_after_utc == old.not_valid_after_utc
    assert new.serial_number != old.serial_number
    for extension in (x509.SubjectKeyIdentifier, x509.BasicConstraints, x509.KeyUsage):
        assert new.extensions.get_extension_for_class(
            extension
        ) == old.extensions.get_extension_for_class(extension)
    assert url_of(new, x509.CRLDistributionPoints) == f"http://127.0.0.1:{port}/crl/root.crl"
    root = x509.load_pem_x509_certificate(files.path("root", "ca.pem").read_bytes())
    new.verify_directly_issued_by(root)
    pkilint_certificate(files.path("issuing", "ca.pem"))
    # A certificate issued before the upgrade chains to the new issuing CA certificate.
    openssl_verify(files.path("root", "ca.pem"), files.path("issuing", "ca.pem"), leaf)
    # Once is enough.
    again = run([tool("ca-service"), "upgrade-issuing"], env)
    assert "nothing to do" in again.stdout
    assert x509.load_pem_x509_certificate(files.path("issuing", "ca.pem").read_bytes()) == new

    server = CaProcess(data_dir, env, tmp_path / "after.log").start()
    try:
        served = tmp_path / "issuing.pem"
        served.write_bytes(pem(x509.load_der_x509_certificate(fetch(ca_issuers_url(leaf_cert))[2])))
        assert x509.load_pem_x509_certificate(served.read_bytes()) == new
        for mode in ("ocsp", "crl"):
            assert _java(java_classes, mode, files, served, leaf) == "VALID", mode
    finally:
        server.stop()
    assert "upgrade-issuing" not in (tmp_path / "after.log").read_text()


def test_root_crl_upkeep_and_an_offline_root(tmp_path: Path) -> None:
    data_dir = tmp_path / "ca"
    files = init_ca(data_dir)
    env = ca_env(data_dir)
    first = files.read_arl()
    assert first is not None
    root = x509.load_pem_x509_certificate(files.path("root", "ca.pem").read_bytes())

    signed = run([tool("ca-service"), "sign-arl"], env)
    assert "signed the root CRL number" in signed.stdout
    second = files.read_arl()
    assert second is not None and second.number > first.number
    assert x509.load_der_x509_crl(second.der).is_signature_valid(root.public_key())  # type: ignore[arg-type]

    validity = timedelta(days=30)
    now = datetime.now(UTC)
    passphrase = PASSPHRASE.encode()
    # Not due: the stored one is kept. Due (a third of its validity left): re-signed.
    assert files.arl(passphrase, now, validity) == second
    renewed = files.arl(passphrase, second.next_update - validity / 3, validity)
    assert renewed.number > second.number

    # The root key goes offline: the stored CRL is still served, even when due; signing
    # a new one here is refused with a clear message.
    files.path("root", "key.pem").rename(tmp_path / "root-key-offline.pem")
    assert files.arl(passphrase, renewed.next_update - timedelta(days=1), validity) == renewed
    with pytest.raises(ConfigurationError, match=r"root key root/key\.pem is not in the data"):
        files.arl(passphrase, now, validity, force=True)
    failed = run([tool("ca-service"), "sign-arl"], env, check=False)
    assert failed.returncode != 0 and "root key" in failed.stderr

    # What the running service does: serve the stored one; with none at all (and no key to
    # sign one) go on without it (its URL answers 503) instead of failing to start. Serving
    # takes no lock: where the lock file cannot be made (a read-only data directory, as in
    # a container; a directory in its place stands for that here, since root may write
    # anywhere) the stored CRL is still served.
    lock = files.path("root", ".crl.lock")
    lock.unlink(missing_ok=True)
    lock.mkdir()
    keeper = RootCrlKeeper(lambda at: files.arl(passphrase, at, validity), FakeClock(now), validity)
    asyncio.run(keeper.refresh())
    assert keeper.current == renewed
    (tmp_path / "root-key-offline.pem").rename(files.path("root", "key.pem"))
    with pytest.raises(ConfigurationError, match=r"cannot lock .*\.crl\.lock"):
        files.arl(passphrase, now, validity, force=True)  # signing needs the lock
    files.path("root", "key.pem").rename(tmp_path / "root-key-offline.pem")
    lock.rmdir()
    files.path("root", "crl.der").unlink()
    keeper = RootCrlKeeper(lambda at: files.arl(passphrase, at, validity), FakeClock(now), validity)
    asyncio.run(keeper.refresh())
    assert keeper.current is None
