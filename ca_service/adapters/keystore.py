"""The CA's files in the data directory: CA certificates, encrypted keys, gRPC credentials.

Layout::

    root/ca.pem  root/key.pem          root CA (key: encrypted PKCS#8)
    issuing/ca.pem  issuing/key.pem    issuing CA, signs user certificates
    services/ca.pem  services/key.pem  services CA, signs the gRPC mTLS credentials
    grpc/server.pem  grpc/key.pem      the gRPC server's TLS credential (key encrypted)
    credentials/<name>/{cert.pem,key.pem,ca.pem}   client credentials (key in clear, 0600)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca_service.domain.profiles import CaProfile, Role
from ca_service.errors import AlreadyExists, ConfigurationError
from ca_service.pki import hierarchy
from ca_service.pki.keys import (
    CaPrivateKey,
    KeyAlgorithm,
    decrypt_private_key,
    encrypt_private_key,
    generate_key,
    unencrypted_pem,
)
from ca_service.pki.ocsp import create_ocsp_signing_certificate
from ca_service.pki.signer import SoftwareSigner

__all__ = ["CaFiles", "ClientCredential", "LoadedCa", "OcspResponderFiles"]

_SERVER_DNS_NAMES = ("localhost",)
_SERVER_IPS = ("127.0.0.1", "::1")


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class ClientCredential:
    certificate_pem: bytes
    key_pem: bytes
    trust_pem: bytes


@dataclass(frozen=True)
class OcspResponderFiles:
    certificate_der: bytes
    key: CaPrivateKey


def _organization(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else "CA"


@dataclass(frozen=True)
class LoadedCa:
    """What a running ca-service needs from the data directory."""

    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: CaPrivateKey
    services: x509.Certificate
    grpc_server: ClientCredential


class CaFiles:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def path(self, *parts: str) -> Path:
        return self.data_dir.joinpath(*parts)

    def exists(self) -> bool:
        return any(self.path(name, "ca.pem").exists() for name in ("root", "issuing", "services"))

    def initialise(
        self, profile: CaProfile, algorithm: KeyAlgorithm, passphrase: bytes, now: datetime
    ) -> None:
        """Creates the CA hierarchy and the operator and gateway credentials; refuses to
        overwrite."""
        if self.exists():
            raise AlreadyExists(
                f"a CA already exists in {self.data_dir}; refusing to overwrite it",
                reason="CA_EXISTS",
            )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Build everything in a sibling directory first, so that a failure half-way leaves
        # no partial CA behind, then move the pieces in.
        staging = Path(tempfile.mkdtemp(prefix=".init-", dir=self.data_dir))
        try:
            staged = CaFiles(staging)
            staged._create(profile, algorithm, passphrase, now)
            for entry in sorted(staging.iterdir()):
                target = self.path(entry.name)
                if target.exists():
                    raise AlreadyExists(
                        f"{target} already exists; refusing to overwrite it", reason="CA_EXISTS"
                    )
                entry.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _create(
        self, profile: CaProfile, algorithm: KeyAlgorithm, passphrase: bytes, now: datetime
    ) -> None:
        pair = hierarchy.create_pair(algorithm, profile, now)
        root, root_key, issuing, issuing_key = (
            pair.root,
            pair.root_key,
            pair.issuing,
            pair.issuing_key,
        )
        services_key = generate_key(KeyAlgorithm.EC_P256)
        services = hierarchy.create_root(
            services_key, profile, profile.services_common_name, now, profile.services_lifetime
        )
        for name, issued, key in (
            ("root", root, root_key),
            ("issuing", issuing, issuing_key),
            ("services", services, services_key),
        ):
            _write(self.path(name, "ca.pem"), _pem(issued.certificate_der))
            _write(self.path(name, "key.pem"), encrypt_private_key(key, passphrase), 0o600)

        server_key = generate_key(KeyAlgorithm.EC_P256)
        server_der = hierarchy.create_service_credential(
            services,
            SoftwareSigner(services_key),
            server_key,
            profile,
            name="ca-service",
            role=None,
            dns_names=_SERVER_DNS_NAMES,
            ip_addresses=_SERVER_IPS,
            now=now,
        )
        _write(self.path("grpc", "server.pem"), _pem(server_der))
        _write(self.path("grpc", "key.pem"), encrypt_private_key(server_key, passphrase), 0o600)
        self._issue_client(services, services_key, profile, "operator", Role.OPERATOR, now)
        # The gateway's own credential (GATEWAY_CA_CREDENTIAL_DIR); more with `credential`.
        self._issue_client(services, services_key, profile, "gateway", Role.GATEWAY, now)
        self.code_key()

    def _issue_client(
        self,
        services: hierarchy.IssuedCa,
        services_key: CaPrivateKey,
        profile: CaProfile,
        name: str,
        role: Role,
        now: datetime,
    ) -> Path:
        key = generate_key(KeyAlgorithm.EC_P256)
        der = hierarchy.create_service_credential(
            services, SoftwareSigner(services_key), key, profile, name=name, role=role, now=now
        )
        directory = self.path("credentials", name)
        _write(directory / "cert.pem", _pem(der))
        _write(directory / "key.pem", unencrypted_pem(key), 0o600)
        _write(directory / "ca.pem", self.path("services", "ca.pem").read_bytes())
        return directory

    def issue_client_credential(
        self, profile: CaProfile, passphrase: bytes, name: str, role: Role, now: datetime
    ) -> Path:
        """A new gRPC client credential (e.g. for a gateway) in ``credentials/<name>``."""
        if self.path("credentials", name).exists():
            raise AlreadyExists(f"credential {name!r} already exists", reason="CREDENTIAL_EXISTS")
        services_pem = self.path("services", "ca.pem").read_bytes()
        services_cert = x509.load_pem_x509_certificate(services_pem)
        services_key = self._key("services", passphrase)
        services = hierarchy.IssuedCa(
            services_cert.public_bytes(Encoding.DER),
            services_cert.subject.public_bytes(),
            services_cert.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value.digest,
        )
        return self._issue_client(services, services_key, profile, name, role, now)

    def issue_server_certificate(
        self,
        profile: CaProfile,
        passphrase: bytes,
        name: str,
        dns_names: list[str],
        ip_addresses: list[str],
        now: datetime,
    ) -> Path:
        """A TLS server certificate from the issuing CA (e.g. for the gateway's HTTPS) in
        ``tls/<name>``: ``cert.pem`` (with the issuing CA, as servers send it), ``key.pem``
        (0600) and ``client-trust.pem`` (the CA certificates client certificates chain to)."""
        directory = self.path("tls", name)
        if directory.exists():
            raise AlreadyExists(
                f"server certificate {name!r} already exists", reason="CREDENTIAL_EXISTS"
            )
        if not dns_names and not ip_addresses:
            raise ConfigurationError("give at least one DNS name or IP address")
        issuing_pem = self.path("issuing", "ca.pem").read_bytes()
        issuing_cert = x509.load_pem_x509_certificate(issuing_pem)
        issuing = hierarchy.IssuedCa(
            issuing_cert.public_bytes(Encoding.DER),
            issuing_cert.subject.public_bytes(),
            issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
        )
        key = generate_key(KeyAlgorithm.EC_P256)
        der = hierarchy.create_service_credential(
            issuing,
            SoftwareSigner(self._key("issuing", passphrase)),
            key,
            profile,
            name=dns_names[0] if dns_names else name,
            role=None,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            now=now,
        )
        _write(directory / "cert.pem", _pem(der) + issuing_pem)
        _write(directory / "key.pem", unencrypted_pem(key), 0o600)
        _write(
            directory / "client-trust.pem", issuing_pem + self.path("root", "ca.pem").read_bytes()
        )
        return directory

    def _key(self, name: str, passphrase: bytes) -> CaPrivateKey:
        return self._decrypt(self.path(name, "key.pem"), passphrase)

    @staticmethod
    def _decrypt(path: Path, passphrase: bytes) -> CaPrivateKey:
        try:
            return decrypt_private_key(path.read_bytes(), passphrase)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigurationError(f"{path}: {exc}") from None

    def _certificate(self, name: str) -> x509.Certificate:
        path = self.path(name, "ca.pem")
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {path}: {exc.strerror}; run `ca-service init` first"
            ) from None

    def code_key(self) -> bytes:
        """The key of the authentication-code MACs, shared by every process using this data
        directory; made on first use (O_EXCL: when two processes race, one file wins)."""
        path = self.path("secrets", "code-key")
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                _write(path, secrets.token_hex(32).encode() + b"\n", 0o600)
        try:
            return bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the code key {path}: {exc}") from None

    def ocsp_responder(
        self,
        loaded: LoadedCa,
        passphrase: bytes,
        now: datetime,
        lifetime: timedelta = timedelta(days=90),
    ) -> OcspResponderFiles:
        """The delegated OCSP responder's key and certificate (``ocsp/``), issued by the
        issuing CA and rotated once two thirds of its lifetime have passed. A file lock
        keeps several processes from rotating it at once."""
        directory = self.path("ocsp")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(directory / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self._read_ocsp(directory, passphrase)
                if current is not None:
                    cert = x509.load_der_x509_certificate(current.certificate_der)
                    remaining = cert.not_valid_after_utc - now
                    total = cert.not_valid_after_utc - cert.not_valid_before_utc
                    if remaining > total / 3:
                        return current
                return self._new_ocsp(directory, loaded, passphrase, now, lifetime)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_ocsp(self, directory: Path, passphrase: bytes) -> OcspResponderFiles | None:
        if not (directory / "cert.pem").exists():
            return None
        cert = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
        key = self._decrypt(directory / "key.pem", passphrase)
        return OcspResponderFiles(cert.public_bytes(Encoding.DER), key)

    def _new_ocsp(
        self,
        directory: Path,
        loaded: LoadedCa,
        passphrase: bytes,
        now: datetime,
        lifetime: timedelta,
    ) -> OcspResponderFiles:
        key = generate_key(KeyAlgorithm.EC_P256)
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        issuing = loaded.issuing
        certificate = create_ocsp_signing_certificate(
            SoftwareSigner(loaded.issuing_key),
            issuer_name=issuing.subject.public_bytes(),
            issuer_key_id=issuing.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value.digest,
            responder_spki=spki,
            common_name="OCSP Responder",
            organization=_organization(issuing),
            not_before=now - timedelta(minutes=5),
            not_after=now + lifetime,
        )
        # Write beside, then rename: readers never see a key without its certificate.
        for name, data, mode in (
            ("key.pem.new", encrypt_private_key(key, passphrase), 0o600),
            ("cert.pem.new", _pem(certificate), 0o644),
        ):
            (directory / name).unlink(missing_ok=True)
            _write(directory / name, data, mode)
        os.replace(directory / "key.pem.new", directory / "key.pem")
        os.replace(directory / "cert.pem.new", directory / "cert.pem")
        return OcspResponderFiles(certificate, key)

    def load(self, passphrase: bytes) -> LoadedCa:
        if not self.exists():
            raise ConfigurationError(
                f"no CA in {self.data_dir}; create one with `ca-service init --data-dir "
                f"{self.data_dir}`"
            )
        server_key = self._decrypt(self.path("grpc", "key.pem"), passphrase)
        return LoadedCa(
            root=self._certificate("root"),
            issuing=self._certificate("issuing"),
            issuing_key=self._key("issuing", passphrase),
            services=self._certificate("services"),
            grpc_server=ClientCredential(
                certificate_pem=self.path("grpc", "server.pem").read_bytes(),
                key_pem=unencrypted_pem(server_key),
                trust_pem=self.path("services", "ca.pem").read_bytes(),
            ),
        )

    def client_credential(
        self, name: str = "operator", directory: Path | None = None
    ) -> ClientCredential:
        base = directory or self.path("credentials", name)
        try:
            return ClientCredential(
                certificate_pem=(base / "cert.pem").read_bytes(),
                key_pem=(base / "key.pem").read_bytes(),
                trust_pem=(base / "ca.pem").read_bytes(),
            )
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the gRPC client credential in {base}: {exc.strerror}"
            ) from None
