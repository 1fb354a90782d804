"""A whole stack for gateway tests: a ca-service process (real Redis, aiosmtpd), the sample
upstream and ``ca-gateway`` processes, with users and certificates made through the API."""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ca_service.api import pb
from ca_service.client import secure_channel, stub
from tests.smtp_sink import SmtpSink
from tests.stack_support import MASTER_PASSWORD, Stack, authenticate, new_org, start_stack
from tests.support import run, start_listening, stop_process, tool

__all__ = [
    "CertifiedUser",
    "GatewayStack",
    "Process",
    "gateway_stack_on",
    "start_gateway_stack",
]

_LISTENING = re.compile(r"listening on https?://([\d.]+):(\d+)/")


@dataclass
class Process:
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    host: str = ""
    port: int = 0

    def start(self, timeout: float = 30) -> Process:
        self.process, match = start_listening(
            self.command, self.env, self.log_path, _LISTENING, timeout
        )
        self.host, self.port = match.group(1), int(match.group(2))
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass(frozen=True)
class CertifiedUser:
    """A registered master user with a certificate: ``cert`` holds cert.pem and key.pem."""

    user_id: str
    password: str
    email: str
    cert: Path


@dataclass
class GatewayStack:
    ca: Stack
    smtp: SmtpSink
    tmp: Path
    upstream: Process
    gateways: list[Process] = field(default_factory=list)
    tls_dir: Path = Path()

    @property
    def url(self) -> str:
        gateway = self.gateways[0]
        return f"https://localhost:{gateway.port}"

    @property
    def trust(self) -> Path:
        """What clients trust for the gateway's server certificate (our root)."""
        return self.ca.data_dir / "root" / "ca.pem"

    def gateway_env(self, **extra: str) -> dict[str, str]:
        env = dict(
            self.ca.env,
            GATEWAY_LISTEN="127.0.0.1:0",
            GATEWAY_TLS_CERT=str(self.tls_dir / "cert.pem"),
            GATEWAY_TLS_KEY=str(self.tls_dir / "key.pem"),
            GATEWAY_CLIENT_TRUST=str(self.tls_dir / "client-trust.pem"),
            GATEWAY_CA_ADDRESS=self.ca.servers[0].address,
            GATEWAY_CRL_URL=self.ca.servers[0].http + "/crl/issuing.crl",
            GATEWAY_CA_CREDENTIAL_DIR=str(self.ca.data_dir / "credentials" / "gw"),
            GATEWAY_UPSTREAM=f"http://127.0.0.1:{self.upstream.port}",
            GATEWAY_REDIS_URL=self.ca.redis_url,
            GATEWAY_MAX_STALENESS="5",
            GATEWAY_USER_CACHE_SECONDS="0.5",
            # Every test logs in from 127.0.0.1, against one Redis for the whole session: the
            # per-client limits get their own values only in the tests about them.
            GATEWAY_AUTH_RATE_PER_MINUTE="100000",
            GATEWAY_AUTH_BURST="100000",
        )
        env.update(extra)
        return env

    def following(self, index: int) -> dict[str, str]:
        """Gateway settings that make it follow the ``index``-th ca-service process."""
        server = self.ca.servers[index]
        return {
            "GATEWAY_CA_ADDRESS": server.address,
            "GATEWAY_CRL_URL": server.http + "/crl/issuing.crl",
        }

    def start_gateway(
        self, name: str = "gateway", *, ready: bool = True, **extra: str
    ) -> Process:
        """Starts a gateway; with ``ready``, returns once its ``/-/health`` says 200 (the
        revocation view proved fresh) on every worker, as a load balancer would wait: the
        "listening" line comes before the first word from the CA, and a request in between
        is refused (503), which on a loaded machine can take more than a moment."""
        env = self.gateway_env(**extra)
        process = Process([tool("ca-gateway"), "serve"], env, self.tmp / f"{name}.log").start()
        self.gateways.append(process)
        if ready:
            wait_healthy(process, answers=2 * int(env.get("GATEWAY_WORKERS", "1")))
        return process

    def lockout_keys(self, pattern: str) -> int:
        """How many user IDs matching ``pattern`` the CA has lockout counters for, i.e.
        whose password it checked."""
        with redis.Redis.from_url(self.ca.redis_url) as client:
            return sum(
                1 for _ in client.scan_iter(f"{self.ca.prefix}lockout:{pattern}", count=1000)
            )

    def operator_api(self) -> object:
        return stub(secure_channel(self.ca.servers[0].address, self.ca.operator))

    def gateway_api(self) -> object:
        return stub(secure_channel(self.ca.servers[0].address, self.ca.gateway))

    def new_user(self, name: str) -> tuple[str, str, str]:
        """A registered master user of a new organisation: (user ID, password, e-mail)."""
        _, email = new_org(self.ca, self.smtp, name)
        return name, MASTER_PASSWORD, email

    def certified_user(self, name: str, directory: Path) -> CertifiedUser:
        """A new master user (its own organisation) and a certificate in ``directory``."""
        user_id, password, email = self.new_user(name)
        certificate = self.issue(user_id, password, email, directory)
        return CertifiedUser(user_id, password, email, certificate)

    def issue(self, user_id: str, password: str, email: str, directory: Path) -> Path:
        """Issues a certificate through the enrollment API; writes cert.pem and key.pem."""
        ticket = authenticate(self.ca, self.smtp, user_id, password, email)
        answer = self.gateway_api().IssueCertificate(  # type: ignore[attr-defined]
            pb.IssueCertificateRequest(issuance_ticket=ticket, pkcs12_password=password)
        )
        directory.mkdir(parents=True, exist_ok=True)
        p12 = directory / answer.file_name
        p12.write_bytes(answer.pkcs12)
        for what, option in (("cert.pem", "-nokeys"), ("key.pem", "-nocerts")):
            run(
                [
                    "openssl",
                    "pkcs12",
                    "-in",
                    str(p12),
                    "-passin",
                    f"pass:{password}",
                    option,
                    "-noenc",
                    "-out",
                    str(directory / what),
                ]
            )
        return directory

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()
        self.upstream.stop()
        for server in self.ca.servers:
            server.stop()


def wait_healthy(gateway: Process, answers: int = 1, timeout: float = 30) -> None:
    """Waits until ``answers`` health checks in a row, each on a new connection (so that
    SO_REUSEPORT spreads them over the workers), answer 200."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a readiness probe: the answer, not the peer, counts
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < answers:
        connection = http.client.HTTPSConnection(
            gateway.host, gateway.port, context=context, timeout=5
        )
        try:
            connection.request("GET", "/-/health")
            response = connection.getresponse()
            response.read()
            in_a_row = in_a_row + 1 if response.status == 200 else 0
        except OSError:
            in_a_row = 0
        finally:
            connection.close()
        if in_a_row < answers:
            assert time.monotonic() < deadline, f"gateway not healthy: {gateway.log()[-2000:]}"
            time.sleep(0.05)


def gateway_stack_on(ca: Stack, smtp: SmtpSink, tmp: Path) -> GatewayStack:
    """A stack on the running CA ``ca``, no gateway started yet (``start_gateway``): the
    gateway's server certificate made, the sample upstream started. If that fails, the
    CA's servers are stopped too."""
    upstream = Process(
        [tool("ca-demo-upstream"), "--listen", "127.0.0.1:0"], dict(ca.env), tmp / "upstream.log"
    )
    stack = GatewayStack(ca, smtp, tmp, upstream, tls_dir=ca.data_dir / "tls" / "gateway")
    try:
        run(
            [
                tool("ca-service"),
                "server-cert",
                "--name",
                "gateway",
                "--dns",
                "localhost",
                "--ip",
                "127.0.0.1",
            ],
            ca.env,
        )
        upstream.start()
    except BaseException:
        stack.stop()  # none of it may outlive a failed start
        raise
    return stack


def start_gateway_stack(
    tmp: Path,
    redis_url: str,
    smtp: SmtpSink,
    *,
    ca_count: int = 1,
    gateway_ca: int = 0,
    **ca_env: str,
) -> GatewayStack:
    """``ca_count`` ca-service processes on one store; the gateway follows the
    ``gateway_ca``-th (gRPC and CRL)."""
    ca = start_stack(tmp, redis_url, smtp, count=ca_count, **ca_env)
    stack = gateway_stack_on(ca, smtp, tmp)
    try:
        stack.start_gateway(**stack.following(gateway_ca))
    except BaseException:
        stack.stop()  # none of it may outlive a failed start
        raise
    return stack
