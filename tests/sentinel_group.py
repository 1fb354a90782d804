"""A real Redis Sentinel group for the failover tests: one primary, its replicas and three
sentinels (``redis-server --sentinel``), each a process on a free loopback port with its own
directory, no persistence. The primary can be failed over (``SENTINEL FAILOVER``) or
SIGKILLed so that the sentinels elect a new one."""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.support import free_port, redis_executable, start_redis

__all__ = ["SentinelGroup", "TlsFiles", "make_tls_files", "sentinel_group"]

SERVICE = "ca-redis"
# How fast the sentinels act: an unanswering primary is subjectively down after this long,
# a failover that stalls is given up after FAILOVER_TIMEOUT_MS (and may be tried again
# after twice that).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class TlsFiles:
    """One CA, and one certificate (127.0.0.1, server and client use) with its key, which
    every process of the group and the client present."""

    ca: Path
    cert: Path
    key: Path

    def server_options(self) -> list[str]:
        return [
            *("--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key)),
            *("--tls-ca-cert-file", str(self.ca), "--tls-replication", "yes"),
        ]

    def client_options(self) -> dict[str, object]:
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
        }

    @property
    def query(self) -> str:
        return f"ssl_ca_certs={self.ca}&ssl_certfile={self.cert}&ssl_keyfile={self.key}"


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage(
                    [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name.from_rfc4514_string("CN=Test Redis CA")
    ca = certificate("CN=Test Redis CA", ca_key, ca_name, ca_key, ca=True)
    leaf = certificate("CN=127.0.0.1", key, ca_name, ca_key, ca=False)
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca.public_bytes(Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(Encoding.PEM))
    files.key.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return files


@dataclass
class _Server:
    name: str
    directory: Path
    argv_tail: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    password: str | None = None
    tls: TlsFiles | None = None

    def start(self, deadline: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [redis_executable(), *self.config()]
        if self.tls is None:
            argv += ["--port", str(self.port)]
        else:
            argv += ["--port", "0", "--tls-port", str(self.port), *self.tls.server_options()]
        argv += ["--bind", "127.0.0.1", "--dir", str(self.directory)]
        argv += ["--logfile", str(self.directory / "redis.log"), *self.argv_tail]
        self.process = start_redis(
            argv,
            lambda: self.client(socket_timeout=1),
            deadline,
            f"{self.name} on port {self.port}",
        )

    def config(self) -> list[str]:
        return []

    def restart_as_replica_of(self, port: int, timeout: float = 30) -> None:
        """Starts the (killed) server again as a replica of ``port``, as a supervisor that
        asks the sentinels for the primary before it starts Redis would."""
        tail = list(self.argv_tail)
        if "--replicaof" in tail:
            at = tail.index("--replicaof")
            del tail[at : at + 3]
        self.argv_tail = [*tail, "--replicaof", "127.0.0.1", str(port)]
        self.start(time.monotonic() + timeout)

    def client(self, **options: object) -> redis.Redis:
        if self.tls is not None:
            options = {**self.tls.client_options(), **options}
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            **options,  # type: ignore[arg-type]
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class _Sentinel(_Server):
    """A sentinel reads (and rewrites) its configuration file: the monitor line is written
    there, the rest is given on the command line."""

    monitored_port: int = 0
    quorum: int = 2
    # The Redis servers' password, which the sentinels need to watch them.
    server_password: str | None = None

    def config(self) -> list[str]:
        conf = self.directory / "sentinel.conf"
        if not conf.exists():
            lines = [
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.monitored_port} {self.quorum}",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {SERVICE} 1",
            ]
            if self.server_password:
                lines.append(f"sentinel auth-pass {SERVICE} {self.server_password}")
            if self.password:
                # The sentinels' own password, which they also use among themselves.
                lines.append(f"requirepass {self.password}")
            conf.write_text("\n".join(lines) + "\n")
        return [str(conf), "--sentinel"]


@dataclass
class SentinelGroup:
    servers: list[_Server]
    sentinels: list[_Sentinel]

    @property
    def sentinel_hosts(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def url(self, query: str = "", db: int = 0) -> str:
        """The Sentinel URL of this group (with the servers' password, if any, and the TLS
        files; the sentinels' password goes into ``query``)."""
        tls = self.servers[0].tls
        scheme = "redis+sentinel" if tls is None else "rediss+sentinel"
        options = "&".join(q for q in (query, tls.query if tls else "") if q)
        tail = f"?{options}" if options else ""
        password = self.servers[0].password
        auth = f":{password}@" if password else ""
        return f"{scheme}://{auth}{self.sentinel_hosts}/{SERVICE}/{db}{tail}"

    def server(self, port: int) -> _Server:
        return next(s for s in self.servers if s.port == port)

    def primary_port(self) -> int:
        """The primary as the sentinels that answer agree on it (raises while they do not)."""
        seen = set()
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            with sentinel.client(socket_timeout=1) as client:
                _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            seen.add(int(port))
        if len(seen) != 1:
            raise RuntimeError(f"the sentinels disagree on the primary: {seen}")
        return seen.pop()

    def primary(self) -> _Server:
        return self.server(self.primary_port())

    def replicas(self) -> list[_Server]:
        primary = self.primary_port()
        return [s for s in self.servers if s.port != primary and s.running]

    def wait_until_settled(self, timeout: float = 30) -> _Server:
        """Until every running sentinel names the same primary, that server says it is the
        primary with every other running server connected as its replica, and every
        sentinel knows the other sentinels and those replicas (a failover needs both)."""
        deadline = time.monotonic() + timeout
        problem = ""
        while time.monotonic() < deadline:
            try:
                problem = self._unsettled()
            except (redis.ConnectionError, redis.TimeoutError, RuntimeError) as exc:
                problem = repr(exc)
            if not problem:
                return self.primary()
            time.sleep(0.1)
        raise RuntimeError(f"the sentinel group did not settle: {problem}")

    def _unsettled(self) -> str:
        primary = self.primary()
        running = [s for s in self.servers if s.running and s is not primary]
        with primary.client(socket_timeout=1) as client:
            info = client.info("replication")
        if info["role"] != "master":
            return f"{primary.name} is a {info['role']}"
        online = {
            int(v["port"])
            for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
        }
        if online != {s.port for s in running}:
            return f"replicas online at {primary.name}: {online}"
        others = sum(1 for s in self.sentinels if s.running) - 1
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            with sentinel.client(socket_timeout=1) as client:
                state = client.sentinel_master(SERVICE)
                replicas = client.sentinel_slaves(SERVICE)
            if state["num-other-sentinels"] < others or state["flags"] != "master":
                return f"{sentinel.name}: {state['flags']}, {state['num-other-sentinels']}"
            known = {int(r["port"]) for r in replicas if r["flags"] == "slave"}
            if not {s.port for s in running} <= known:
                return f"{sentinel.name} knows the replicas {known}"
        return ""

    def failover(self) -> None:
        """SENTINEL FAILOVER: a sentinel promotes a replica without asking the others."""
        with self.sentinels[0].client(socket_timeout=2) as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)

    def wait_for_new_primary(self, old_port: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, RuntimeError):
                port = self.primary_port()
                if port != old_port:
                    with self.server(port).client(socket_timeout=1) as client:
                        if client.info("replication")["role"] == "master":
                            return port
            time.sleep(0.05)
        raise RuntimeError("the sentinels did not elect a new primary")

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers]:
            process.stop()


@contextlib.contextmanager
def sentinel_group(
    directory: Path,
    replicas: int = 1,
    *,
    password: str | None = None,
    sentinel_password: str | None = None,
    tls: TlsFiles | None = None,
) -> Iterator[SentinelGroup]:
    """A primary, ``replicas`` replicas of it and three sentinels with quorum 2, settled;
    ``password``: the servers' (``requirepass``, ``masterauth``), ``sentinel_password``:
    the sentinels' own; ``tls``: every process speaks TLS only (clients, replication,
    sentinels), with client certificates required."""
    deadline = time.monotonic() + 30
    # No persistence; a replica that (re)joins is sent the data at once, not after the
    # default 5 s in which the primary waits for more replicas (deploy/README.md recommends
    # the same: until a replica has synchronised, logins are refused).
    options = ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
    if password:
        options += ["--requirepass", password, "--masterauth", password]
    primary = _Server("primary", directory / "primary", options, password=password, tls=tls)
    servers = [primary]
    group = SentinelGroup(servers, [])
    try:
        primary.start(deadline)
        for index in range(replicas):
            replica = _Server(
                f"replica{index + 1}",
                directory / f"replica{index + 1}",
                [*options, "--replicaof", "127.0.0.1", str(primary.port)],
                password=password,
                tls=tls,
            )
            servers.append(replica)
            replica.start(deadline)
        for index in range(3):
            sentinel = _Sentinel(
                f"sentinel{index + 1}",
                directory / f"sentinel{index + 1}",
                [],
                password=sentinel_password,
                tls=tls,
                monitored_port=primary.port,
                server_password=password,
            )
            group.sentinels.append(sentinel)
            sentinel.start(deadline)
        group.wait_until_settled()
        yield group
    finally:
        group.stop()
