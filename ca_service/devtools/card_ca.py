"""``ca-test-card-ca``: a stand-in for the identity card CA (SPEC D2) in tests and in
``stack.py up`` — a self-signed card CA, identity certificates in the profile of the My
Number card's signing certificate (the holder's name, sex, date of birth and address as
subjectAltName otherName UTF8Strings under 1.2.392.200149.8.5.5), revocation, and the CA's
CRL over HTTP, signed afresh on every fetch. Never a real card CA: its name says "TEST".

    ca-test-card-ca init DIR
    ca-test-card-ca issue DIR OUT --name 共済 太郎 --address … --birth-date 1990-04-01 --sex 1
    ca-test-card-ca revoke DIR CERT.pem
    ca-test-card-ca serve DIR [--listen 127.0.0.1:0]     GET /crl → the CRL (DER)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca_service.shared.http.server import HttpServer, Request, Response
from ca_service.shared.net.admission import Admission
from ca_service.shared.net.guard import ConnectionGuard

__all__ = [
    "CardCa",
    "CardHolder",
    "issue",
    "main",
    "make_card_ca",
    "revoke",
    "serve_crl",
    "sign_crl",
]

PERSONAL_DATA = "1.2.392.200149.8.5.5"
NAME_OID = x509.ObjectIdentifier(PERSONAL_DATA + ".1")
SEX_OID = x509.ObjectIdentifier(PERSONAL_DATA + ".3")
BIRTH_DATE_OID = x509.ObjectIdentifier(PERSONAL_DATA + ".4")
ADDRESS_OID = x509.ObjectIdentifier(PERSONAL_DATA + ".5")
# The era digit the card profile puts before the Gregorian date of birth (4: 平成 … the
# card uses the era of the date; the stand-in always writes the same one).
_ERA = "4"
_CRL_HOURS = 1


@dataclass(frozen=True)
class CardHolder:
    name: str
    address: str
    birth_date: str  # YYYY-MM-DD
    sex: str  # 1 male, 2 female, 3 other (the card's code)


@dataclass(frozen=True)
class CardCa:
    directory: Path

    @property
    def certificate_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def revoked_path(self) -> Path:
        return self.directory / "revoked.txt"

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_path.read_bytes())

    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def revoked(self) -> dict[int, dt.datetime]:
        if not self.revoked_path.exists():
            return {}
        found = {}
        for line in self.revoked_path.read_text().split():
            serial, _, at = line.partition("@")
            found[int(serial, 16)] = dt.datetime.fromtimestamp(int(at), dt.UTC)
        return found


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(data)


def make_card_ca(
    directory: Path, *, name: str = "TEST Identity Card CA", subject: x509.Name | None = None
) -> CardCa:
    """A new card CA in ``directory`` (ca.pem, ca-key.pem). ``subject`` (default: one made
    of ``name``) lets a test make an impostor: another key under a trusted CA's name."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = subject or x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TEST Card Authority (not real)"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    ca = CardCa(directory)
    _write_private(
        ca.key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    ca.certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return ca


def _utf8(text: str) -> bytes:
    return bytes(core.UTF8String(text).dump())


def issue(
    ca: CardCa,
    holder: CardHolder,
    out: Path,
    *,
    p12_password: str = "",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    signing: bool = True,
) -> Path:
    """An identity certificate for ``holder`` in ``out``: cert.pem, key.pem and card.p12
    (for a browser; with ``p12_password``). Returns ``out``. ``signing=False`` gives the
    key agreement use only (not a signing certificate: a card route refuses it)."""
    out.mkdir(parents=True, exist_ok=True)
    issuer, issuer_key = ca.certificate(), ca.key()
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    birth = holder.birth_date.replace("-", "")
    san = x509.SubjectAlternativeName(
        [
            x509.OtherName(NAME_OID, _utf8(holder.name)),
            x509.OtherName(SEX_OID, _utf8(holder.sex)),
            x509.OtherName(BIRTH_DATE_OID, _utf8(_ERA + birth)),
            x509.OtherName(ADDRESS_OID, _utf8(holder.address)),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    # The card's subject names no person: a serial-like common name.
                    x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8).upper()),
                ]
            )
        )
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=signing,
                content_commitment=signing,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not signing,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (out / "cert.pem").write_bytes(pem)
    _write_private(
        out / "key.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    encryption = (
        serialization.BestAvailableEncryption(p12_password.encode())
        if p12_password
        else serialization.NoEncryption()
    )
    _write_private(
        out / "card.p12",
        pkcs12.serialize_key_and_certificates(
            b"TEST identity card", key, certificate, [issuer], encryption
        ),
    )
    return out


def revoke(ca: CardCa, certificate_pem: bytes) -> int:
    """Revokes a certificate this CA issued; its serial."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    if certificate.issuer != ca.certificate().subject:
        raise ValueError("not a certificate of this card CA")
    with ca.revoked_path.open("a") as handle:
        handle.write(f"{certificate.serial_number:x}@{int(_now().timestamp())}\n")
    return certificate.serial_number


def sign_crl(
    ca: CardCa,
    *,
    now: dt.datetime | None = None,
    number: int | None = None,
    lifetime: dt.timedelta = dt.timedelta(hours=_CRL_HOURS),
) -> bytes:
    """The CA's CRL (DER) as of ``now``, valid for ``lifetime`` (default: the next hour)."""
    issuer, key = ca.certificate(), ca.key()
    at = now or _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(at)
        .next_update(at + lifetime)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(x509.CRLNumber(number or int(at.timestamp())), critical=False)
    )
    for serial, revoked_at in sorted(ca.revoked().items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(revoked_at)
            .build()
        )
    crl = builder.sign(key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


async def serve_crl(
    ca: CardCa, host: str, port: int, *, crl: Callable[[], bytes] | None = None
) -> tuple[HttpServer, int]:
    """Serves ``GET /crl``: ``crl()`` (default: ``sign_crl(ca)``), made at the time of the
    request."""
    make_crl = crl or (lambda: sign_crl(ca))

    def handle(request: Request) -> Response:
        if request.path != "/crl":
            return Response(404, [("Content-Type", "text/plain")], b"not found")
        return Response(200, [("Content-Type", "application/pkix-crl")], make_crl())

    def error(status: int, message: str) -> Response:
        return Response(status, [("Content-Type", "text/plain")], message.encode())

    server = HttpServer(
        handle, guard=ConnectionGuard(Admission(1000, 30.0), name="card-crl"), error_page=error
    )
    return server, await server.start(host, port)


async def _serve(ca: CardCa, host: str, port: int) -> None:
    _, bound = await serve_crl(ca, host, port)
    print(f"ca-test-card-ca: listening on http://{host}:{bound}/", flush=True)
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ca-test-card-ca", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="make a card CA")
    init.add_argument("directory", type=Path)
    issuing = commands.add_parser("issue", help="issue an identity certificate")
    issuing.add_argument("directory", type=Path)
    issuing.add_argument("out", type=Path)
    issuing.add_argument("--name", required=True)
    issuing.add_argument("--address", required=True)
    issuing.add_argument("--birth-date", required=True, help="YYYY-MM-DD")
    issuing.add_argument("--sex", required=True, choices=("1", "2", "3"))
    issuing.add_argument("--p12-password", default="")
    revoking = commands.add_parser("revoke", help="revoke a certificate")
    revoking.add_argument("directory", type=Path)
    revoking.add_argument("certificate", type=Path)
    serving = commands.add_parser("serve", help="serve the CRL over HTTP")
    serving.add_argument("directory", type=Path)
    serving.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args(argv)
    if args.command == "init":
        print(make_card_ca(args.directory).certificate_path)
    elif args.command == "issue":
        holder = CardHolder(args.name, args.address, args.birth_date, args.sex)
        print(issue(CardCa(args.directory), holder, args.out, p12_password=args.p12_password))
    elif args.command == "revoke":
        print(f"{revoke(CardCa(args.directory), args.certificate.read_bytes()):x}")
    else:
        host, _, port = args.listen.rpartition(":")
        try:
            asyncio.run(_serve(CardCa(args.directory), host, int(port)))
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
