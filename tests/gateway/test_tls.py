"""gateway.tls with openssl s_client as the peer: TLS 1.2 and 1.3, client certificate
optional but verified when presented, and hot reload of the server certificate without
dropping an open connection."""

from __future__ import annotations

import asyncio
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ca_service.config import load_settings
from ca_service.domain.validity import validity_for
from ca_service.pki import hierarchy
from ca_service.pki.certificates import ClientCertificateFactory, ClientSubject, new_serial
from ca_service.pki.keys import KeyAlgorithm, generate_key, unencrypted_pem
from ca_service.pki.signer import SoftwareSigner
from gateway.tls import ReloadingServerContext, TlsFiles
from tests.support import PASSPHRASE, ca_env, init_ca


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


class Pki:
    def __init__(self, directory: Path) -> None:
        self.files = init_ca(directory / "ca")
        self.loaded = self.files.load(PASSPHRASE.encode())
        issuing = self.loaded.issuing
        self.issuing = hierarchy.IssuedCa(
            issuing.public_bytes(Encoding.DER),
            issuing.subject.public_bytes(),
            issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
        )
        self.settings = load_settings(ca_env(self.files.data_dir))
        self.directory = directory

    def server_certificate(self, name: str) -> tuple[Path, Path]:
        key = generate_key(KeyAlgorithm.EC_P256)
        der = hierarchy.create_service_credential(
            self.issuing,
            SoftwareSigner(self.loaded.issuing_key),
            key,
            self.settings.ca_profile,
            name="localhost",
            role=None,
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
            now=datetime.now(UTC),
        )
        cert, key_path = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        cert.write_bytes(_pem(der) + self.files.path("issuing", "ca.pem").read_bytes())
        key_path.write_bytes(unencrypted_pem(key))
        return cert, key_path

    def client_certificate(self, signer_key: object = None) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        factory = ClientCertificateFactory(
            SoftwareSigner(signer_key or self.loaded.issuing_key),  # type: ignore[arg-type]
            issuer_name=self.issuing.subject,
            issuer_key_id=self.issuing.key_id,
            profile=self.settings.client_profile,
        )
        der = factory.build(
            serial=new_serial(),
            subject=ClientSubject("tls00001", "TLS Test"),
            spki=key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            validity=validity_for(datetime.now(UTC)),
        )
        suffix = "forged" if signer_key else "user"
        cert, key_path = self.directory / f"{suffix}.pem", self.directory / f"{suffix}-key.pem"
        cert.write_bytes(_pem(der))
        key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return cert, key_path

    def trust(self) -> Path:
        path = self.directory / "client-trust.pem"
        path.write_bytes(
            self.files.path("issuing", "ca.pem").read_bytes()
            + self.files.path("root", "ca.pem").read_bytes()
        )
        return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def _serve(context: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        who = "anonymous"
        if der:
            who = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        try:
            while line := await reader.readline():
                if line.strip() == b"bye":
                    break
                writer.write(f"{ssl_object.version()} {who} {line.decode().strip()}\n".encode())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def _s_client(port: int, ca: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-CAfile",
        str(ca),
        "-verify_return_error",
        "-showcerts",
        "-ign_eof",
        "-servername",
        "localhost",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(b"hello\nbye\n"), 20)
    return out.decode(errors="replace")


def _server_serial(output: str) -> int:
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", output, re.S)
    assert pem, output
    return x509.load_pem_x509_certificate(pem.group(0).encode()).serial_number


async def test_versions_and_optional_client_certificates(pki: Pki) -> None:
    cert, key = pki.server_certificate("server")
    reloading = ReloadingServerContext(TlsFiles(cert, key, pki.trust()))
    server, port = await _serve(reloading.listening)
    root = pki.files.path("root", "ca.pem")
    user_cert, user_key = pki.client_certificate()
    forged_cert, forged_key = pki.client_certificate(
        signer_key=ec.generate_private_key(ec.SECP256R1())
    )
    try:
        for version, label in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            anonymous = await _s_client(port, root, version)
            assert f"{label} anonymous hello" in anonymous, anonymous
            assert "Verification: OK" in anonymous or "Verify return code: 0 (ok)" in anonymous
            named = await _s_client(
                port, root, version, "-cert", str(user_cert), "-key", str(user_key)
            )
            assert f"{label} CN=tls00001,O=TLS Test hello" in named, named
            refused = await _s_client(
                port, root, version, "-cert", str(forged_cert), "-key", str(forged_key)
            )
            # A certificate from another CA fails the handshake: the server never answers.
            assert not re.search(r"^TLSv1\.[23] .*hello$", refused, re.M), refused
    finally:
        server.close()
        await server.wait_closed()


async def test_hot_reload_keeps_open_connections(pki: Pki) -> None:
    cert, key = pki.server_certificate("server")
    files = TlsFiles(cert, key, pki.trust())
    reloading = ReloadingServerContext(files, check_interval=0)
    server, port = await _serve(reloading.listening)
    root = pki.files.path("root", "ca.pem")
    try:
        first_serial = _server_serial(await _s_client(port, root))
        client_context = ssl.create_default_context(cafile=str(root))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        writer.write(b"before\n")
        assert (await reader.readline()).endswith(b"anonymous before\n")

        new_cert, new_key = pki.server_certificate("renewed")
        cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        second_serial = _server_serial(await _s_client(port, root))
        assert second_serial != first_serial and reloading.reloads == 1

        writer.write(b"after\n")  # the connection made before the reload still works
        assert (await reader.readline()).endswith(b"anonymous after\n")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
