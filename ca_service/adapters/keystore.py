"""The CA's files in the data directory: CA certificates, encrypted keys, gRPC credentials.

Layout::

    root/ca.pem  root/key.pem          root CA (key: encrypted PKCS#8)
    root/crl.der                       the root's CRL (ARL), re-signed before its nextUpdate
    issuing/ca.pem  issuing/key.pem    issuing CA, signs user certificates
    issuing/ca-<serial>.pem            an issuing CA certificate replaced by upgrade-issuing
    services/ca.pem  services/key.pem  services CA, signs the gRPC mTLS credentials
    grpc/server.pem  grpc/key.pem      the gRPC server's TLS credential (key encrypted)
    ocsp/cert.pem  ocsp/key.pem        the delegated OCSP responder (key encrypted), rotated
    credentials/<name>/{cert.pem,key.pem,ca.pem}   client credentials (key in clear, 0600)
    tls/<name>/{cert.pem,key.pem,client-trust.pem} TLS server certificates (key in clear, 0600)
    secrets/code-key                   the authentication-code MAC key (0600)

With the keys in an HSM (:class:`TokenKeys`), ``issuing/key.pem`` and ``ocsp/key.pem`` do not
exist: the issuing CA's key is the token's key pair labelled ``CA_PKCS11_ISSUING_KEY_LABEL``
and the OCSP responder's is found by its key identifier (``CKA_ID``). The root's key stays a
file, to be taken offline (README, *Key ceremony*).

Every directory is 0700 and every key file 0600. Encrypted keys are PKCS#8 with
PBKDF2-HMAC-SHA256 at ``KEY_KDF_ITERATIONS`` (``ca_service.pki.keys``); a key file written
by an older version with weaker parameters is encrypted again when the CA loads
(:meth:`CaFiles.upgrade_keys`), and directories made with looser modes are tightened then.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID

from ca_service.domain.profiles import CaProfile, IssuingUrls, Role
from ca_service.errors import AlreadyExists, ConfigurationError, ErrorReason
from ca_service.pki import hierarchy
from ca_service.pki.crl import SignedArl
from ca_service.pki.keys import (
    KEY_KDF_ITERATIONS,
    CaPrivateKey,
    KeyAlgorithm,
    decrypt_private_key,
    encrypt_private_key,
    generate_key,
    key_protection,
    unencrypted_pem,
)
from ca_service.pki.ocsp import create_ocsp_signing_certificate
from ca_service.pki.signer import Signer, SoftwareSigner
from ca_service.shared.credentials import ClientCredential, load_credential
from ca_service.shared.errors import ConfigError

if TYPE_CHECKING:
    from ca_service.adapters.pkcs11 import Pkcs11Signer, Pkcs11Token
    from ca_service.config import Pkcs11Settings

__all__ = [
    "CaFiles",
    "LoadedCa",
    "OcspResponderFiles",
    "TokenKeys",
    "open_ca_files",
    "points_at",
]

log = logging.getLogger(__name__)

_SERVER_DNS_NAMES = ("localhost",)
_SERVER_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TokenKeys:
    """The issuing CA's and the OCSP responder's keys live in this PKCS#11 token: the
    issuing CA's key pair labelled ``issuing_label``, the responder's labelled
    ``ocsp_label`` (one pair per rotation, told apart by CKA_ID)."""

    token: Pkcs11Token
    issuing_label: str
    ocsp_label: str = "ocsp-responder"


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _private_dir(directory: Path) -> None:
    """Makes ``directory`` and whichever of its parents are missing, each 0700 (with
    ``parents=True``, mkdir gives the parents the default mode, not ``mode``)."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
        made.chmod(0o700)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    _private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes ``data`` beside ``path`` and renames it over ``path``: readers (other
    processes of this CA) see the old file or the new one, never a part."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(directory: Path, name: str) -> Iterator[None]:
    """An exclusive file lock, so that several processes on one data directory take turns."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = open(directory / name, "a+b")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigurationError(
            f"cannot lock {directory / name}: {exc.strerror} (the data directory must be "
            "writable for this step)"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _issued_ca(certificate: x509.Certificate) -> hierarchy.IssuedCa:
    return hierarchy.IssuedCa(
        certificate.public_bytes(Encoding.DER),
        certificate.subject.public_bytes(),
        certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
    )


def points_at(certificate: x509.Certificate, urls: IssuingUrls) -> bool:
    """Whether a CA certificate names ``urls``' CRL and issuer certificate."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    except x509.ExtensionNotFound:
        return False
    crl_urls = {
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    }
    issuer_urls = {
        description.access_location.value
        for description in access
        if description.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    }
    return crl_urls == {urls.crl_url} and issuer_urls == {urls.ca_issuers_url}


@dataclass(frozen=True)
class OcspResponderFiles:
    certificate_der: bytes
    signer: Signer


def open_ca_files(data_dir: Path, pkcs11: Pkcs11Settings | None) -> CaFiles:
    """The CA's files, with the token logged in when the keys are in an HSM."""
    if pkcs11 is None:
        return CaFiles(data_dir)
    # Imported only here: without an HSM the PKCS#11 library is never loaded.
    from ca_service.adapters.pkcs11 import Pkcs11Token

    token = Pkcs11Token(pkcs11.module, pkcs11.token, pkcs11.pin.reveal())
    return CaFiles(data_dir, TokenKeys(token, pkcs11.issuing_key_label, pkcs11.ocsp_key_label))


def _organization(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else "CA"


@dataclass(frozen=True)
class LoadedCa:
    """What a running ca-service needs from the data directory."""

    root: x509.Certificate
    issuing: x509.Certificate
    issuing_signer: Signer
    services: x509.Certificate
    grpc_server: ClientCredential


_KEY_FILES = (
    ("root", "key.pem"),
    ("issuing", "key.pem"),
    ("services", "key.pem"),
    ("grpc", "key.pem"),
    ("ocsp", "key.pem"),
)
_KEY_DIRECTORIES = ("root", "issuing", "services", "grpc", "ocsp", "secrets", "credentials", "tls")


class CaFiles:
    def __init__(self, data_dir: Path, token: TokenKeys | None = None) -> None:
        self.data_dir = data_dir
        self.token = token
        # The OCSP responder's files as last read (certificate PEM, decrypted): its
        # rotation check runs every hour and decrypts the key again only after a change.
        self._ocsp_read: tuple[bytes, OcspResponderFiles] | None = None

    def path(self, *parts: str) -> Path:
        return self.data_dir.joinpath(*parts)

    def exists(self) -> bool:
        return any(self.path(name, "ca.pem").exists() for name in ("root", "issuing", "services"))

    def initialise(
        self,
        profile: CaProfile,
        algorithm: KeyAlgorithm,
        passphrase: bytes,
        now: datetime,
        urls: IssuingUrls | None = None,
        arl_validity: timedelta = timedelta(days=30),
    ) -> None:
        """Creates the CA hierarchy (with ``urls`` in the issuing CA's certificate), the
        root's first CRL and the operator and gateway credentials; refuses to overwrite."""
        if self.exists():
            raise AlreadyExists(
                f"a CA already exists in {self.data_dir}; refusing to overwrite it",
                reason=ErrorReason.CA_EXISTS,
            )
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Build everything in a sibling directory first, so that a failure half-way leaves
        # no partial CA behind, then move the pieces in.
        staging = Path(tempfile.mkdtemp(prefix=".init-", dir=self.data_dir))
        generated: Pkcs11Signer | None = None
        try:
            staged = CaFiles(staging, self.token)
            if self.token is not None:
                generated = self.token.token.generate(algorithm, self.token.issuing_label)
            staged._create(profile, algorithm, passphrase, now, urls, arl_validity, generated)
            for entry in sorted(staging.iterdir()):
                target = self.path(entry.name)
                if target.exists():
                    raise AlreadyExists(
                        f"{target} already exists; refusing to overwrite it",
                        reason=ErrorReason.CA_EXISTS,
                    )
                entry.rename(target)
            generated = None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if generated is not None and self.token is not None:
                # Init failed after making the key: a second init may use the label again.
                self.token.token.destroy(generated.lookup)

    def _create(
        self,
        profile: CaProfile,
        algorithm: KeyAlgorithm,
        passphrase: bytes,
        now: datetime,
        urls: IssuingUrls | None,
        arl_validity: timedelta,
        token_issuing: Pkcs11Signer | None = None,
    ) -> None:
        keys: dict[str, CaPrivateKey] = {}
        if token_issuing is None:
            pair = hierarchy.create_pair(algorithm, profile, now, urls)
            root, root_key, issuing = pair.root, pair.root_key, pair.issuing
            keys["issuing"] = pair.issuing_key
        else:
            root_key = generate_key(algorithm)
            root = hierarchy.create_root(
                root_key, profile, profile.root_common_name, now, profile.root_lifetime
            )
            issuing = hierarchy.create_subordinate_for(
                root,
                SoftwareSigner(root_key),
                token_issuing.public_key_der,
                profile,
                profile.issuing_common_name,
                now,
                profile.issuing_lifetime,
                urls,
            )
        services_key = generate_key(KeyAlgorithm.EC_P256)
        services = hierarchy.create_root(
            services_key, profile, profile.services_common_name, now, profile.services_lifetime
        )
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
        keys.update(root=root_key, services=services_key, grpc=server_key)
        # Each key's 600,000-round derivation releases the GIL: in parallel, init takes
        # half the time on two cores.
        with ThreadPoolExecutor(len(keys)) as pool:
            futures = {
                name: pool.submit(encrypt_private_key, key, passphrase)
                for name, key in keys.items()
            }
        encrypted = {name: future.result() for name, future in futures.items()}
        for name, issued in (("root", root), ("issuing", issuing), ("services", services)):
            _write(self.path(name, "ca.pem"), _pem(issued.certificate_der))
        _write(self.path("grpc", "server.pem"), _pem(server_der))
        for name, pem in encrypted.items():
            _write(self.path(name, "key.pem"), pem, 0o600)
        self._sign_arl(root, root_key, now, arl_validity, previous=None)
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
            raise AlreadyExists(
                f"credential {name!r} already exists", reason=ErrorReason.CREDENTIAL_EXISTS
            )
        services = _issued_ca(self._certificate("services"))
        services_key = self._key("services", passphrase)
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
                f"server certificate {name!r} already exists", reason=ErrorReason.CREDENTIAL_EXISTS
            )
        if not dns_names and not ip_addresses:
            raise ConfigurationError("give at least one DNS name or IP address")
        issuing_pem = self.path("issuing", "ca.pem").read_bytes()
        issuing = _issued_ca(x509.load_pem_x509_certificate(issuing_pem))
        key = generate_key(KeyAlgorithm.EC_P256)
        der = hierarchy.create_service_credential(
            issuing,
            self._issuing_signer(passphrase),
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

    # -- the root's CRL (ARL) and the issuing CA's certificate ------------------------------

    def _sign_arl(
        self,
        root: hierarchy.IssuedCa,
        root_key: CaPrivateKey,
        now: datetime,
        validity: timedelta,
        previous: SignedArl | None,
    ) -> SignedArl:
        # CRL numbers must grow: the clock's seconds, or one more than the last if the clock
        # is behind it. Data directories copied to several hosts stay (nearly) in step.
        number = max(int(now.timestamp()), previous.number + 1 if previous else 0)
        der = hierarchy.sign_arl(
            root,
            SoftwareSigner(root_key),
            number=number,
            this_update=now - timedelta(minutes=5),
            next_update=now + validity,
        )
        _replace(self.path("root", "crl.der"), der)
        return SignedArl.parse(der)

    def read_arl(self) -> SignedArl | None:
        """The root's CRL as stored, or None when there is none (or it does not parse)."""
        try:
            return SignedArl.parse(self.path("root", "crl.der").read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, x509.ExtensionNotFound) as exc:
            raise ConfigurationError(f"cannot read the root CRL root/crl.der: {exc}") from None

    def root_key_present(self) -> bool:
        return self.path("root", "key.pem").exists()

    def arl(
        self, passphrase: bytes, now: datetime, validity: timedelta, *, force: bool = False
    ) -> SignedArl:
        """The root's CRL, re-signed first when ``force`` or when a third of ``validity`` or
        less is left (or there is none). Re-signing needs the root key in the data directory;
        without it (an offline root) the stored CRL is returned as it is, whatever its age,
        and a missing one is a :class:`ConfigurationError`.

        Nothing is locked or written unless a signature is due, so that a CA whose data
        directory is read-only (an offline root, a container's mounted secrets) serves the
        stored CRL."""
        current = self.read_arl()
        due = current is None or force or current.next_update - now <= validity / 3
        if current is not None and not force and (not due or not self.root_key_present()):
            return current
        with _locked(self.path("root"), ".crl.lock"):
            current = self.read_arl()
            fresh = current is not None and current.next_update - now > validity / 3
            if fresh and not force:
                assert current is not None
                return current
            if not self.root_key_present():
                if current is None or force:
                    raise ConfigurationError(
                        "the root CRL root/crl.der cannot be signed here: the root key "
                        "root/key.pem is not in the data directory"
                    )
                return current
            root = _issued_ca(self._certificate("root"))
            return self._sign_arl(root, self._key("root", passphrase), now, validity, current)

    def upgrade_issuing(
        self,
        passphrase: bytes,
        urls: IssuingUrls,
        now: datetime,
        arl_validity: timedelta,
    ) -> Path | None:
        """Re-issues the issuing CA's certificate so that it names ``urls`` (the root's CRL
        and certificate): same key, subject, key identifier and validity, a new serial,
        signed by the root. Everything the issuing CA issued chains to the new certificate as
        it did to the old one. The old certificate is kept as ``issuing/ca-<serial>.pem``,
        whose path is returned; None when the certificate already names ``urls``. Also makes
        sure the root's CRL exists."""
        with _locked(self.path("issuing"), ".upgrade.lock"):
            self.arl(passphrase, now, arl_validity)
            old = self._certificate("issuing")
            if points_at(old, urls):
                return None
            root = self._certificate("root")
            try:
                old.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise ConfigurationError(
                    f"issuing/ca.pem is not issued by root/ca.pem ({type(exc).__name__}); "
                    "refusing to re-issue it"
                ) from None
            spki = old.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            self._issuing_signer(passphrase, spki)
            # The subject exactly as it is encoded in the old certificate.
            subject = asn1_x509.Certificate.load(old.public_bytes(Encoding.DER)).subject.dump()
            new = hierarchy.reissue_subordinate(
                _issued_ca(root),
                SoftwareSigner(self._key("root", passphrase)),
                subject=subject,
                spki=spki,
                key_id=_issued_ca(old).key_id,
                not_before=old.not_valid_before_utc,
                not_after=old.not_valid_after_utc,
                urls=urls,
            )
            kept = self.path("issuing", f"ca-{old.serial_number:x}.pem")
            if not kept.exists():
                _write(kept, old.public_bytes(Encoding.PEM))
            _replace(self.path("issuing", "ca.pem"), _pem(new.certificate_der))
            return kept

    def _issuing_signer(self, passphrase: bytes, spki: bytes | None = None) -> Signer:
        """The issuing CA's signer, from the token or ``issuing/key.pem``; checked against
        the issuing CA's certificate (or ``spki``)."""
        if spki is None:
            spki = (
                self._certificate("issuing")
                .public_key()
                .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            )
        signer: Signer
        if self.token is not None:
            signer = self.token.token.signer(self.token.issuing_label)
            where = f"the PKCS#11 key {self.token.issuing_label!r}"
        else:
            signer = SoftwareSigner(self._key("issuing", passphrase))
            where = "issuing/key.pem"
        if signer.public_key_der != spki:
            raise ConfigurationError(f"{where} does not match issuing/ca.pem")
        return signer

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
        with _locked(directory, ".lock"):
            current = self._read_ocsp(directory, passphrase)
            if current is not None:
                cert = x509.load_der_x509_certificate(current.certificate_der)
                remaining = cert.not_valid_after_utc - now
                total = cert.not_valid_after_utc - cert.not_valid_before_utc
                if remaining > total / 3:
                    return current
            return self._new_ocsp(directory, loaded, passphrase, now, lifetime)

    def _read_ocsp(self, directory: Path, passphrase: bytes) -> OcspResponderFiles | None:
        if not (directory / "cert.pem").exists():
            return None
        pem = (directory / "cert.pem").read_bytes()
        if self._ocsp_read is not None and self._ocsp_read[0] == pem:
            return self._ocsp_read[1]
        cert = x509.load_pem_x509_certificate(pem)
        signer: Signer
        if self.token is not None:
            spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            signer = self.token.token.signer_for(spki)
        else:
            signer = SoftwareSigner(self._decrypt(directory / "key.pem", passphrase))
        files = OcspResponderFiles(cert.public_bytes(Encoding.DER), signer)
        self._ocsp_read = (pem, files)
        return files

    def _new_ocsp(
        self,
        directory: Path,
        loaded: LoadedCa,
        passphrase: bytes,
        now: datetime,
        lifetime: timedelta,
    ) -> OcspResponderFiles:
        if self.token is not None:
            return self._new_token_ocsp(directory, loaded, now, lifetime, self.token)
        key = generate_key(KeyAlgorithm.EC_P256)
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        certificate = self._certify_ocsp(loaded, spki, now, lifetime)
        # Write beside, then rename: readers never see a key without its certificate.
        for name, data, mode in (
            ("key.pem.new", encrypt_private_key(key, passphrase), 0o600),
            ("cert.pem.new", _pem(certificate), 0o644),
        ):
            (directory / name).unlink(missing_ok=True)
            _write(directory / name, data, mode)
        os.replace(directory / "key.pem.new", directory / "key.pem")
        os.replace(directory / "cert.pem.new", directory / "cert.pem")
        files = OcspResponderFiles(certificate, SoftwareSigner(key))
        self._ocsp_read = ((directory / "cert.pem").read_bytes(), files)
        return files

    def _new_token_ocsp(
        self,
        directory: Path,
        loaded: LoadedCa,
        now: datetime,
        lifetime: timedelta,
        keys: TokenKeys,
    ) -> OcspResponderFiles:
        """A new responder key pair in the token. The one it replaces stays (processes that
        have not yet looked again still sign with it); those before it are deleted."""
        keep = set()
        if (directory / "cert.pem").exists():
            previous = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
            keep.add(_issued_ca(previous).key_id)
        signer = keys.token.generate(KeyAlgorithm.EC_P256, keys.ocsp_label, label_may_repeat=True)
        keep.add(signer.lookup[1])
        certificate = self._certify_ocsp(loaded, signer.public_key_der, now, lifetime)
        (directory / "cert.pem.new").unlink(missing_ok=True)
        _write(directory / "cert.pem.new", _pem(certificate), 0o644)
        os.replace(directory / "cert.pem.new", directory / "cert.pem")
        keys.token.prune(keys.ocsp_label, keep)
        files = OcspResponderFiles(certificate, signer)
        self._ocsp_read = ((directory / "cert.pem").read_bytes(), files)
        return files

    @staticmethod
    def _certify_ocsp(loaded: LoadedCa, spki: bytes, now: datetime, lifetime: timedelta) -> bytes:
        issuing = loaded.issuing
        return create_ocsp_signing_certificate(
            loaded.issuing_signer,
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

    def tighten_permissions(self) -> list[Path]:
        """Makes the key directories 0700 (older versions left ``credentials/`` and
        ``tls/`` 0755); returns those changed."""
        changed = []
        candidates = [self.path(name) for name in _KEY_DIRECTORIES]
        for parent in ("credentials", "tls"):
            if self.path(parent).is_dir():
                candidates += [entry for entry in self.path(parent).iterdir() if entry.is_dir()]
        for directory in candidates:
            if directory.is_dir() and stat.S_IMODE(directory.stat().st_mode) != 0o700:
                directory.chmod(0o700)
                changed.append(directory)
        return changed

    def upgrade_keys(self, passphrase: bytes) -> list[Path]:
        """Encrypts again, with today's parameters, every CA key file whose protection is
        weaker (an older version wrote PBKDF2 with 2,048 iterations); returns the files
        replaced. Each is replaced atomically, so other processes of this CA read the old
        file or the new one."""
        upgraded = []
        for parts in _KEY_FILES:
            path = self.path(*parts)
            if not path.exists():
                continue
            pem = path.read_bytes()
            try:
                if key_protection(pem).current:
                    continue
            except ValueError as exc:
                raise ConfigurationError(f"{path}: {exc}") from None
            key = self._decrypt(path, passphrase)
            _replace(path, encrypt_private_key(key, passphrase), 0o600)
            upgraded.append(path)
        return upgraded

    def load(self, passphrase: bytes) -> LoadedCa:
        if not self.exists():
            raise ConfigurationError(
                f"no CA in {self.data_dir}; create one with `ca-service init --data-dir "
                f"{self.data_dir}`"
            )
        try:
            for directory in self.tighten_permissions():
                log.warning("%s was readable by others; now 0700", directory)
            for path in self.upgrade_keys(passphrase):
                log.warning(
                    "%s encrypted again: PBKDF2-HMAC-SHA256, %d iterations",
                    path,
                    KEY_KDF_ITERATIONS,
                )
        except OSError as exc:
            # A read-only data directory still serves; the operator is told what to fix.
            log.warning("cannot tighten the CA's files in %s: %s", self.data_dir, exc)
        server_key = self._decrypt(self.path("grpc", "key.pem"), passphrase)
        return LoadedCa(
            root=self._certificate("root"),
            issuing=self._certificate("issuing"),
            issuing_signer=self._issuing_signer(passphrase),
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
        try:
            return load_credential(directory or self.path("credentials", name))
        except ConfigError as exc:
            raise ConfigurationError(str(exc)) from None
