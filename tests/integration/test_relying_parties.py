"""Relying parties nobody here wrote, pointed at a real ca-service over its real HTTP
endpoints, checking the whole path (the end-entity certificate and the issuing CA):

- Java's PKIX CertPathValidator (compiled with javac at test time), OCSP first with the
  CRLs as the fallback, and CRLs only;
- pyhanko-certvalidator: legacy ``require`` mode (CRL or OCSP for every certificate), CRLs
  required for every certificate, and OCSP required for the end-entity certificate (the
  issuing CA is answered for by the root's CRL only: the root runs no OCSP responder).

Each first finds a new certificate good, then, after RevokeCertificate, refuses it as
revoked. The CA here makes a new base CRL every 6 seconds (CA_CRL_INTERVAL_MINUTES=0.1),
because Java ignores delta CRLs: CRL-only Java sees a revocation in the next base CRL."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca_service.adapters.keystore import CaFiles
from tests.integration.revocation_support import fetch, issue, new_user, pem, revoke, url_of
from tests.support import (
    CaProcess,
    ca_env,
    free_port,
    init_ca,
    pkilint_certificate,
    pkilint_crl,
    run,
)

JAVA_SOURCE = Path(__file__).parent / "java" / "ValidatePath.java"
BASE_INTERVAL_SECONDS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[CaProcess]:
    data_dir = tmp_path_factory.mktemp("relying") / "ca"
    port = free_port()
    extra = {
        "CA_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CA_REDIS_URL": redis_server,
        "CA_REDIS_PREFIX": "rp:",
        "CA_CRL_INTERVAL_MINUTES": str(BASE_INTERVAL_SECONDS / 60),
    }
    init_ca(data_dir, **extra)
    process = CaProcess(data_dir, ca_env(data_dir, **extra), data_dir.parent / "ca.log").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("javac") is None or shutil.which("java") is None:
        message = "javac/java not found (Debian: apt-get install default-jdk-headless)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the Java relying-party tests")
        pytest.skip(message)
    classes = tmp_path_factory.mktemp("java")
    run(["javac", "-d", str(classes), str(JAVA_SOURCE)], timeout=120)
    return classes


@pytest.fixture(scope="module")
def chain(server: CaProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    files = CaFiles(server.data_dir)
    directory = tmp_path_factory.mktemp("chain")
    paths = {"root": directory / "root.pem", "issuing": directory / "issuing.pem"}
    paths["root"].write_bytes(files.path("root", "ca.pem").read_bytes())
    paths["issuing"].write_bytes(files.path("issuing", "ca.pem").read_bytes())
    return paths


Verdict = tuple[str, str]  # ("valid" | "revoked" | "other", detail)


def _java(classes: Path, mode: str, chain: dict[str, Path], leaf: Path) -> Verdict:
    path = [str(chain["root"]), str(leaf), str(chain["issuing"])]
    result = run(
        ["java", "-cp", str(classes), "ValidatePath", mode, *path],
        check=False,
        timeout=120,
    )
    output = result.stdout.strip()
    if result.returncode == 0 and output == "VALID":
        return "valid", output
    if output.startswith("INVALID REVOKED 0 "):  # the end-entity certificate, revoked
        return "revoked", output
    return "other", output + result.stderr


def _pyhanko(policy_name: str, chain: dict[str, Path], leaf: Path) -> Verdict:
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import RevokedError
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )

    def load(path: Path) -> asn1_x509.Certificate:
        der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
        return asn1_x509.Certificate.load(der)

    rule = RevocationCheckingRule
    policy = {
        "require": RevocationCheckingPolicy.from_legacy("require"),
        "crl": RevocationCheckingPolicy(rule.CRL_REQUIRED, rule.CRL_REQUIRED),
        "ocsp": RevocationCheckingPolicy(rule.OCSP_REQUIRED, rule.CRL_REQUIRED),
    }[policy_name]

    async def validate() -> Verdict:
        async with AIOHttpFetcherBackend(per_request_timeout=10) as fetchers:
            context = ValidationContext(
                trust_roots=[load(chain["root"])],
                other_certs=[load(chain["issuing"])],
                allow_fetching=True,
                fetchers=fetchers,
                revinfo_policy=CertRevTrustPolicy(policy),
            )
            validator = CertificateValidator(load(leaf), validation_context=context)
            try:
                await validator.async_validate_usage(set())
            except RevokedError as error:
                return "revoked", str(error)
            except Exception as error:
                return "other", f"{type(error).__name__}: {error}"
            return "valid", "VALID"

    return asyncio.run(validate())


CHECKERS = {
    "java-ocsp-first": ("java", "ocsp"),
    "java-crl-only": ("java", "crl"),
    "pyhanko-require": ("pyhanko", "require"),
    "pyhanko-crl-required": ("pyhanko", "crl"),
    "pyhanko-ocsp-required": ("pyhanko", "ocsp"),
}


@pytest.mark.parametrize("checker", list(CHECKERS))
def test_good_then_revoked_through_the_whole_path(
    checker: str,
    server: CaProcess,
    chain: dict[str, Path],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    kind, mode = CHECKERS[checker]
    verify: Callable[[Path], Verdict]
    if kind == "java":
        classes = request.getfixturevalue("java_classes")
        verify = lambda leaf: _java(classes, mode, chain, leaf)  # noqa: E731
    else:
        verify = lambda leaf: _pyhanko(mode, chain, leaf)  # noqa: E731
    certificate = issue(server, new_user(server, "rp"))
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem(certificate))

    assert verify(leaf) == ("valid", "VALID")
    revoke(server, certificate.serial_number)
    started = time.monotonic()
    # Java's CRL check sees the next base CRL (every 6 s here); the others see the OCSP
    # answer or the delta CRL within about a second.
    deadline = started + (BASE_INTERVAL_SECONDS + 10 if checker == "java-crl-only" else 8)
    while True:
        verdict = verify(leaf)
        if verdict[0] == "revoked":
            break
        assert verdict[0] == "valid", verdict
        assert time.monotonic() < deadline, f"{checker} still finds the certificate good"
        time.sleep(0.2)
    print(f"{checker}: revoked after {time.monotonic() - started:.1f} s: {verdict[1][:120]}")


def test_what_the_relying_parties_fetch_lints_clean(
    server: CaProcess, chain: dict[str, Path], tmp_path: Path
) -> None:
    """The issuing CA certificate (with its CRL distribution point and caIssuers), a client
    certificate (with FreshestCRL) and the root's CRL pass pkilint."""
    pkilint_certificate(chain["issuing"])
    certificate = issue(server, new_user(server, "rp"))
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem(certificate))
    pkilint_certificate(leaf)
    assert url_of(certificate, x509.FreshestCRL).endswith("/crl/issuing-delta.crl")
    issuing = x509.load_pem_x509_certificate(chain["issuing"].read_bytes())
    root_crl = tmp_path / "root.crl"
    root_crl.write_bytes(fetch(url_of(issuing, x509.CRLDistributionPoints))[2])
    pkilint_crl(root_crl)
    # openssl reads the issuing CA's pointers as a whole-path check needs them.
    extensions = "crlDistributionPoints,authorityInfoAccess"
    result = run(["openssl", "x509", "-in", str(chain["issuing"]), "-noout", "-ext", extensions])
    assert f"URI:{server.http}/crl/root.crl" in result.stdout
    assert f"CA Issuers - URI:{server.http}/ca/root.der" in result.stdout
