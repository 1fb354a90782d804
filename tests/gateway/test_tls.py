"""gateway.tls with openssl s_client as the peer: TLS 1.2 and 1.3, a client certificate
optional and taken whatever it is (the gateway judges it per request: a certificate from
another CA reaches the application layer, which can say why it is refused), the certificate
request naming the trusted CAs only when asked to, and hot reload of the server certificate
without dropping an open connection."""

from __future__ import annotations

import asyncio
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

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
            self.loaded.issuing_signer,
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
            SoftwareSigner(signer_key) if signer_key else self.loaded.issuing_signer,  # type: ignore[arg-type]
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


class _LineEcho(asyncio.Protocol):
    """Answers each line with the TLS version, the client certificate's subject and the line
    (what the gateway's HTTP core sees of a connection), through gateway.tls's sessions."""

    def __init__(self, tls: ReloadingServerContext) -> None:
        self._tls = tls
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._session = self._tls(self._transport)

    def data_received(self, data: bytes) -> None:
        try:
            plain = self._session.receive(data)
        except (ssl.SSLError, EOFError):
            self._transport.abort()
            return
        self._buffer += plain
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.strip() == b"bye":
                self._session.close()
                self._transport.close()
                return
            der = self._session.peer_certificate()
            who = (
                x509.load_der_x509_certificate(der).subject.rfc4514_string() if der else "anonymous"
            )
            answer = f"{self._session.version()} {who} {line.decode().strip()}\n"
            self._session.send(answer.encode())


async def _serve(tls: ReloadingServerContext) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _LineEcho(tls), "127.0.0.1", 0)
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
    server, port = await _serve(reloading)
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
            foreign = await _s_client(
                port, root, version, "-cert", str(forged_cert), "-key", str(forged_key)
            )
            # A certificate from another CA passes the handshake: the application sees it
            # and is the one to refuse it (with a page).
            assert f"{label} CN=tls00001,O=TLS Test hello" in foreign, foreign
            # No CA is named in the certificate request: a browser offers every certificate.
            assert "No client certificate CA names sent" in foreign, foreign
            # A certificate without the key is still refused by the handshake itself.
            mismatched = await _s_client(
                port, root, version, "-cert", str(forged_cert), "-key", str(user_key)
            )
            assert not re.search(r"^TLSv1\.[23] .*hello$", mismatched, re.M), mismatched
    finally:
        server.close()
        await server.wait_closed()


async def test_hot_reload_keeps_open_connections(pki: Pki) -> None:
    cert, key = pki.server_certificate("server")
    files = TlsFiles(cert, key, pki.trust())
    reloading = ReloadingServerContext(files, check_interval=0)
    server, port = await _serve(reloading)
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


async def test_certificate_request_names_the_trusted_cas_when_asked(pki: Pki) -> None:
    cert, key = pki.server_certificate("server")
    reloading = ReloadingServerContext(TlsFiles(cert, key, pki.trust()), name_client_cas=True)
    server, port = await _serve(reloading)
    try:
        output = await _s_client(port, pki.files.path("root", "ca.pem"))
        names = output.split("Acceptable client certificate CA names", 1)[1].split("---")[0]
        assert pki.loaded.issuing.subject.rfc4514_string().split(",")[0] in names.replace(
            " = ", "="
        ), output
    finally:
        server.close()
        await server.wait_closed()


class _Collected:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def test_large_writes_and_reads_go_through_whole(pki: Pki) -> None:
    """pyOpenSSL's contexts allow partial writes (a record per SSL_write): 300 KiB each way
    arrive whole, through memory BIOs on both sides."""
    cert, key = pki.server_certificate("server")
    sessions = ReloadingServerContext(TlsFiles(cert, key, pki.trust()))
    wire = _Collected()
    server = sessions(wire)
    client_context = ssl.create_default_context(cafile=str(pki.files.path("root", "ca.pem")))
    user_cert, user_key = pki.client_certificate()
    client_context.load_cert_chain(user_cert, user_key)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(incoming, outgoing, server_hostname="localhost")

    def pump() -> bytes:
        received = server.receive(outgoing.read()) if outgoing.pending else b""
        incoming.write(bytes(wire.data))
        wire.data.clear()
        return received

    for _ in range(10):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
    pump()
    assert server.established and server.peer_certificate() is not None
    upload = bytes(range(256)) * 1200  # 300 KiB
    client.write(upload)
    assert pump() == upload
    server.send(upload[::-1])
    pump()
    downloaded = bytearray()
    while len(downloaded) < len(upload):
        downloaded += client.read(65536)
    assert downloaded == upload[::-1]
