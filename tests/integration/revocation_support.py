"""Helpers of the tests that play relying parties against a real ca-service: accounts and
certificates made over gRPC, revocations, and CRLs fetched from the URLs the certificates
name."""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca_service.api import pb
from ca_service.client import secure_channel, stub
from tests.support import CaProcess, create_user, make_csr

_users = itertools.count(1)


def new_user(server: CaProcess, prefix: str = "rp") -> str:
    """A general user, of an organisation of its own, with a new user ID (an issuance
    needs an account that exists)."""
    user_id = f"{prefix}{next(_users):04d}{int(time.time()) % 10000:04d}"
    create_user(server.address, server.operator(), user_id, f"Relying Party Test {user_id}")
    return user_id


def issue(server: CaProcess, user_id: str) -> x509.Certificate:
    with secure_channel(server.address, server.operator()) as channel:
        response = stub(channel).SignCsr(pb.SignCsrRequest(csr=make_csr(), user_id=user_id))
    return x509.load_der_x509_certificate(response.certificate.der)


def revoke(server: CaProcess, serial: int, reason: str = "key_compromise") -> None:
    with secure_channel(server.address, server.operator()) as channel:
        stub(channel).RevokeCertificate(
            pb.RevokeCertificateRequest(serial_number=format(serial, "x"), reason=reason)
        )


def fetch(url: str, etag: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for_crl(
    url: str, predicate: Callable[[x509.CertificateRevocationList], bool], timeout: float = 10
) -> tuple[x509.CertificateRevocationList, bytes]:
    """Polls ``url`` until the CRL there satisfies ``predicate``; returns it and its DER."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = fetch(url)
        if status == 200:
            crl = x509.load_der_x509_crl(body)
            if predicate(crl):
                return crl, body
        if time.monotonic() > deadline:
            raise AssertionError(f"no matching CRL at {url} within {timeout} s")
        time.sleep(0.1)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def delta_base(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number)


def is_listed(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> bool:
    return crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


def url_of(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> str:
    """The first URI of a CRLDistributionPoints or FreshestCRL extension."""
    points = certificate.extensions.get_extension_for_class(kind).value
    return str(points[0].full_name[0].value)  # type: ignore[index]


def ca_issuers_url(certificate: x509.Certificate) -> str:
    access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return str(
        next(
            description.access_location.value
            for description in access
            if description.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS
        )
    )


def pem(item: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return item.public_bytes(Encoding.PEM)
