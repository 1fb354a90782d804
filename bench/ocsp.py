#!/usr/bin/env python3
"""OCSP responses per second and latency of ca-service's responder, with ``openssl ocsp -port``
as the peer in the same run, the same load generator and the same connection pattern.

One throw-away stack per invocation: a redis-server on a free loopback port (never the shared
127.0.0.1:6379), a CA in a temporary directory, ``ca-service serve`` (``--workers`` processes
sharing the HTTP port), N certificates issued with SignCsr of which every tenth is revoked
(RevokeCertificate), and one OCSP request per certificate (SHA-1 CertID, no nonce: cacheable).
The peer is OpenSSL's own responder, ``openssl ocsp -index index.txt -port P`` over an
``index.txt`` written from the same certificates (V/R, expiry, revocation date and reason,
serial, subject), signing with its own delegated responder certificate (P-256, issued by the
same issuing CA, EKU OCSPSigning; ours is P-256 too). With ``--workers`` N > 1 the peer runs
``-multi N``. A sample of each server's answers is parsed and checked with cryptography (status,
serial, reason and time, signature, responder certificate), before and after the runs, and
``openssl ocsp -url`` (POST) checks a good and a revoked certificate against each.

Each run, for both servers in turn:

1. new connection per request: wrk (``-t2 -c64``, GET, a Lua script rotating over the request
   paths and sending ``Connection: close``) for ``--warmup`` s, then ``--seconds`` s measured:
   responses/s, latency p50/p99/max (wrk's clock: request written → response; the TCP connect
   is not included), socket errors, and each server's CPU per response: utime+stime of its
   whole process tree from /proc/<pid>/stat before/after the measured window ÷ responses
   (and of that, the kernel's part), with the load generator's CPU and how busy the machine was;
2. keep-alive (ca-service only: openssl 3.0's responder answers HTTP/1.0 and closes every
   connection, even when asked to keep it);
3. ``--rate`` (1,000) requests/s paced for ``--seconds`` s by an open-loop asyncio generator
   (the installed wrk is not wrk2 and cannot pace): p50/p99/max from the connect (new
   connection) or from writing the request (keep-alive) to the full response; openssl with new
   connections for reference.

The request pattern is identical for both servers: GET of the same base64 DER requests, same
headers. Only the path prefix differs: ours serves ``/ocsp/<base64>`` (the OCSP URL in the
certificates); openssl 3.0's responder decodes the whole path as base64 and accepts no prefix,
so it gets ``/<base64>``.

openssl 3.0's responder spins at 100 % CPU for ever on a connection the client closed before
sending a request (openssl/openssl#23934, #31129). wrk makes such connections twice: its
default ``wrk.resolve`` probes the address with an empty connection, and at the end of a run
it closes connections that have not sent yet. So the Lua script resolves without the probe
(for both servers), and the peer is started afresh for every window (warm-up and measured
apart), its CPU read before it is stopped.

The medians of ``--runs`` runs are printed last, with the targets: ca-service >= 5x openssl's
responses/s with a new connection per request; ca-service p99 < 5 ms at 1,000 requests/s.

    .venv/bin/python bench/ocsp.py [--seconds 10] [--warmup 2] [--connections 64]
        [--threads 2] [--runs 3] [--workers 1] [--certificates 200] [--rate 1000]
        [--profile py-spy-raw.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import (  # noqa: E402
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
)

from bench.issue import CLOCK_TICKS, free_port  # noqa: E402
from ca_service.api import pb  # noqa: E402
from ca_service.client import aio_secure_channel, stub  # noqa: E402
from tests.support import (  # noqa: E402
    DIGITAL_SIGNATURE_ONLY,
    PASSPHRASE,
    CaProcess,
    ca_env,
    create_user,
    init_ca,
    throwaway_redis,
    tool,
)

TARGET_RATIO = 5.0
TARGET_P99_MS = 5.0
# RFC 5280 reason names as the API takes them → as openssl's index.txt writes them.
REASONS = {"key_compromise": "keyCompromise", "superseded": "superseded"}
CRYPTOGRAPHY_REASONS = {
    "key_compromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
}


# -- CPU of a process tree --------------------------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (every thread's children), as far as they still live."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                stack += [int(child) for child in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
    return found


def tree_cpu(pid: int) -> tuple[float, float]:
    """(utime, stime) in seconds of ``pid`` and its live descendants, from /proc/<pid>/stat."""
    user = system = 0.0
    for each in tree_pids(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        user += int(fields[11]) / CLOCK_TICKS
        system += int(fields[12]) / CLOCK_TICKS
    return user, system


def machine_ticks() -> tuple[int, int, int]:
    """(busy, softirq, total) clock ticks of all CPUs, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, iowait, softirq = fields[3], fields[4], fields[6]
    total = sum(fields)
    return total - idle - iowait, softirq, total


def machine_cores_busy(before: tuple[int, int, int]) -> tuple[float, float]:
    """Cores busy (and of them in softirq: loopback TCP) since ``before``."""
    after = machine_ticks()
    total = max(1, after[2] - before[2])
    cores = os.cpu_count() or 1
    return (after[0] - before[0]) / total * cores, (after[1] - before[1]) / total * cores


def children_cpu_seconds() -> float:
    """CPU of this process's waited-for children (here: wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the certificates and their requests --------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    revoked_at: datetime | None = None
    reason: str | None = None  # the API's name, e.g. "key_compromise"

    @property
    def serial(self) -> int:
        return self.certificate.serial_number


@dataclass(frozen=True)
class Target:
    """One server under test: how to reach it and whose CPU to count."""

    name: str
    port: int
    paths: list[str]  # one GET path per certificate, same order as the certificates
    pid: int


async def issue_certificates(server: CaProcess, count: int, revoke_every: int) -> list[Issued]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=bench"))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    create_user(server.address, server.operator(), "ocsp00001", "OCSP Bench")
    async with aio_secure_channel(server.address, server.operator()) as channel:
        api = stub(channel)
        semaphore = asyncio.Semaphore(16)

        async def one(index: int) -> x509.Certificate:
            # One account holds them all: the renewal window is overridden on purpose.
            async with semaphore:
                response = await api.SignCsr(
                    pb.SignCsrRequest(csr=csr, user_id="ocsp00001", override_renewal_window=True)
                )
            return x509.load_der_x509_certificate(response.certificate.der)

        certificates = await asyncio.gather(*(one(i) for i in range(count)))
        issued: list[Issued] = []
        for index, certificate in enumerate(certificates):
            if revoke_every and index % revoke_every == revoke_every - 1:
                reason = "key_compromise" if (index // revoke_every) % 2 == 0 else "superseded"
                response = await api.RevokeCertificate(
                    pb.RevokeCertificateRequest(
                        serial_number=format(certificate.serial_number, "x"), reason=reason
                    )
                )
                revoked_at = response.revocations[0].revoked_at.ToDatetime(tzinfo=UTC)
                issued.append(Issued(certificate, revoked_at, reason))
            else:
                issued.append(Issued(certificate))
    return issued


def ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate) -> bytes:
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA1())
        .build()
        .public_bytes(Encoding.DER)
    )


def get_path(prefix: str, request_der: bytes) -> str:
    return f"{prefix}/{quote(base64.b64encode(request_der).decode(), safe='')}"


def check_answers(
    base_url: str,
    paths: Sequence[str],
    issued: Sequence[Issued],
    issuer: x509.Certificate,
    sample: int,
) -> tuple[int, int, list[str], float]:
    """GETs ``sample`` answers (half revoked, half good) and checks them with cryptography:
    successful, the right serial and status (and reason), signed by the responder certificate
    it carries, which the issuing CA issued for OCSPSigning. Returns (checked, ok, problems,
    mean body size)."""
    revoked = [i for i, item in enumerate(issued) if item.revoked_at is not None]
    good = [i for i, item in enumerate(issued) if item.revoked_at is None]
    chosen = revoked[: sample // 2] + good[: sample - min(len(revoked), sample // 2)]
    problems: list[str] = []
    sizes: list[int] = []
    for index in chosen:
        item = issued[index]
        try:
            with urllib.request.urlopen(base_url + paths[index], timeout=10) as response:
                body = response.read()
            sizes.append(len(body))
            problem = _answer_problem(body, item, issuer)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            problems.append(f"serial {item.serial:x}: {problem}")
    mean = statistics.fmean(sizes) if sizes else 0.0
    return len(chosen), len(chosen) - len(problems), problems, mean


def _answer_problem(body: bytes, item: Issued, issuer: x509.Certificate) -> str | None:
    parsed = ocsp.load_der_ocsp_response(body)
    if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return f"status {parsed.response_status.name}"
    if parsed.serial_number != item.serial:
        return f"answer for serial {parsed.serial_number:x}"
    if item.revoked_at is None:
        if parsed.certificate_status is not ocsp.OCSPCertStatus.GOOD:
            return f"{parsed.certificate_status.name}, expected GOOD"
    else:
        if parsed.certificate_status is not ocsp.OCSPCertStatus.REVOKED:
            return f"{parsed.certificate_status.name}, expected REVOKED"
        assert item.reason is not None
        if parsed.revocation_reason is not CRYPTOGRAPHY_REASONS[item.reason]:
            return f"reason {parsed.revocation_reason}, expected {item.reason}"
        revoked_at = parsed.revocation_time_utc
        if revoked_at is None or abs((revoked_at - item.revoked_at).total_seconds()) >= 1:
            return f"revocation time {revoked_at}, expected {item.revoked_at}"
    if not parsed.certificates:
        return "no responder certificate in the answer"
    responder = parsed.certificates[0]
    responder.verify_directly_issued_by(issuer)
    usage = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
        return "responder certificate lacks EKU OCSPSigning"
    public_key = responder.public_key()
    algorithm = parsed.signature_hash_algorithm
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or algorithm is None:
        return f"unexpected responder key {type(public_key).__name__}"
    public_key.verify(parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(algorithm))
    return None


# -- the openssl peer ---------------------------------------------------------------------------


def _openssl_time(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%y%m%d%H%M%SZ")


def _oneline(name: x509.Name) -> str:
    return "".join(
        f"/{attribute.rfc4514_attribute_name}={attribute.value!s}"
        for rdn in name.rdns
        for attribute in rdn
    )


def write_index(path: Path, issued: Sequence[Issued]) -> None:
    """openssl's CA database (``openssl ca``'s index.txt): status, expiry, revocation
    date[,reason], serial in upper-case hex (whole octets, as BN_bn2hex writes it), file name,
    subject."""
    lines = []
    for item in issued:
        serial = format(item.serial, "X")
        serial = serial.rjust(len(serial) + len(serial) % 2, "0")
        expiry = _openssl_time(item.certificate.not_valid_after_utc)
        if item.revoked_at is None:
            status, revocation = "V", ""
        else:
            assert item.reason is not None
            status, revocation = "R", f"{_openssl_time(item.revoked_at)},{REASONS[item.reason]}"
        subject = _oneline(item.certificate.subject)
        lines.append(f"{status}\t{expiry}\t{revocation}\t{serial}\tunknown\t{subject}\n")
    path.write_text("".join(lines))
    path.with_name(path.name + ".attr").write_text("unique_subject = no\n")


def openssl_responder(data_dir: Path, directory: Path) -> tuple[Path, Path]:
    """A delegated responder certificate and clear key for openssl, issued by the issuing CA
    (whose key is read from the data directory with the test passphrase)."""
    issuing = x509.load_pem_x509_certificate((data_dir / "issuing" / "ca.pem").read_bytes())
    issuing_key = serialization.load_pem_private_key(
        (data_dir / "issuing" / "key.pem").read_bytes(), PASSPHRASE.encode()
    )
    if not isinstance(issuing_key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"unexpected issuing key type {type(issuing_key).__name__}")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    organization = issuing.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    *organization,
                    x509.NameAttribute(NameOID.COMMON_NAME, "openssl OCSP Responder (bench)"),
                ]
            )
        )
        .issuer_name(issuing.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(DIGITAL_SIGNATURE_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing_key.public_key()), False
        )
        .sign(issuing_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "responder.pem", directory / "responder-key.pem"
    cert_path.write_bytes(certificate.public_bytes(Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@contextmanager
def openssl_server(
    directory: Path, index: Path, issuing_pem: Path, cert: Path, key: Path, processes: int
) -> Iterator[tuple[int, int, list[str]]]:
    """``openssl ocsp -port`` on a free port; yields (port, pid, argv)."""
    port = free_port()
    argv = [
        "openssl",
        "ocsp",
        "-index",
        str(index),
        "-port",
        str(port),
        "-rsigner",
        str(cert),
        "-rkey",
        str(key),
        "-CA",
        str(issuing_pem),
        "-nmin",
        "60",  # nextUpdate one hour ahead, like ours
        "-resp_key_id",  # ResponderID byKey, like ours
        "-ignore_err",  # otherwise any bad request (e.g. a half-closed probe) ends it
        "-nrequest",
        "2000000000",
    ]
    if processes > 1:
        argv += ["-multi", str(processes)]
    log_path = directory / "openssl-ocsp.log"
    # openssl 3.0 logs every request line to stderr; that is part of what it costs.
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        # One process says so on stderr; with -multi the parent prints "ACCEPT ..." and the
        # children log to syslog.
        while not re.search(
            r"waiting for OCSP client connections|^ACCEPT ",
            log_path.read_text(errors="replace"),
            re.MULTILINE,
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"openssl ocsp did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        if processes > 1:  # the children listen; give them a moment to start
            time.sleep(0.5)
        yield port, process.pid, argv
    finally:
        stop_tree(process)


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process and its children (openssl -multi's parent does not pass it
    on), SIGKILL to whatever is left after 5 s. Only pids of this tree, never by name."""
    pids = tree_pids(process.pid)
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        process.wait(5)


def openssl_client_check(
    url: str, issuing_pem: Path, chain_pem: Path, leaf: Path, expected: str
) -> tuple[bool, str]:
    """One ``openssl ocsp -url`` client request (POST, no nonce): the answer verifies against
    the CA chain and says ``expected`` (good/revoked)."""
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuing_pem),
            "-cert",
            str(leaf),
            "-url",
            url,
            "-CAfile",
            str(chain_pem),
            "-no_nonce",
            "-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    ok = "Response verify OK" in output and f"{leaf}: {expected}" in output
    return ok, " ".join(output.split())


# -- wrk ---------------------------------------------------------------------------------------

LUA = """
-- wrk's default resolve() opens and closes a connection to each address without sending
-- anything; openssl 3.0's responder then spins on that closed connection for ever
-- (openssl/openssl#23934, #31129). Resolve without the probe (same for both servers).
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local paths = {%(paths)s}
local close = %(close)s
local requests = {}
local counter = 0
local next_id = 0

setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

init = function(args)
  local headers = {}
  if close then headers["Connection"] = "close" end
  for i, path in ipairs(paths) do
    requests[i] = wrk.format("GET", path, headers)
  end
  counter = ((id or 0) * 97) %% #requests
end

request = function()
  counter = counter %% #requests + 1
  return requests[counter]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"bytes\\": %%d, " ..
    "\\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d, " ..
    "\\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, \\"status\\": %%d, " ..
    "\\"timeout\\": %%d}\\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def write_lua(path: Path, paths: Sequence[str], close: bool) -> Path:
    quoted = ", ".join(json.dumps(p) for p in paths)  # only [A-Za-z0-9%/]: Lua-safe
    path.write_text(LUA % {"paths": quoted, "close": "true" if close else "false"})
    return path


@dataclass
class Figures:
    """One measured window against one server."""

    responses: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float
    generator_cpu_s: float
    errors: dict[str, int] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.server_cpu_s / self.responses * 1e6 if self.responses else float("nan")

    @property
    def sys_us(self) -> float:
        """Of ``cpu_us``, the part in the kernel (accept, read, write, close)."""
        sys_s = self.extra.get("server_sys_s", 0.0)
        return sys_s / self.responses * 1e6 if self.responses else float("nan")

    @property
    def generator_cpu_us(self) -> float:
        return self.generator_cpu_s / self.responses * 1e6 if self.responses else float("nan")

    @property
    def utilisation(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else 0.0


Serving = Callable[[], AbstractContextManager[Target]]
"""Gives the server for one window: ours stays up; the openssl peer is started afresh."""


def run_wrk(
    serving: Serving,
    script: Path,
    threads: int,
    connections: int,
    seconds: int,
    warmup: int,
) -> Figures:
    def wrk(target: Target, duration: int) -> str:
        result = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{duration}s",
                "--timeout",
                "5s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{target.port}{target.paths[0]}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
        if result.returncode != 0:
            raise SystemExit(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout

    if warmup > 0:
        with serving() as target:
            wrk(target, warmup)
    with serving() as target:
        server_before, wrk_before = tree_cpu(target.pid), children_cpu_seconds()
        machine_before = machine_ticks()
        output = wrk(target, seconds)
        busy, softirq = machine_cores_busy(machine_before)
        server_after = tree_cpu(target.pid)
        wrk_cpu = children_cpu_seconds() - wrk_before
    match = re.search(r"^WRKJSON (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no summary from wrk:\n{output}")
    data = json.loads(match.group(1))
    return Figures(
        responses=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        server_cpu_s=sum(server_after) - sum(server_before),
        generator_cpu_s=wrk_cpu,
        errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
        extra={
            "bytes_per_response": data["bytes"] / max(1, data["requests"]),
            "server_sys_s": server_after[1] - server_before[1],
            "machine_busy": busy,
            "machine_softirq": softirq,
        },
    )


# -- the paced generator -------------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """An HTTP/1.x client connection: one request at a time, Content-Length responses (or
    up to EOF without one)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._need = -1
        self._status = 0
        self._waiter: asyncio.Future[tuple[float, int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def request(self, payload: bytes) -> asyncio.Future[tuple[float, int]]:
        """Writes the request; the future gives (perf_counter at the full response, status)."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._need < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            self._status = int(lines[0].split()[1])
            length = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is None:
                return  # until EOF
            self._need = end + 4 + length
        if len(self._buffer) >= self._need:
            del self._buffer[: self._need]
            self._need = -1
            self._finish(self._status)

    def _finish(self, status: int) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((time.perf_counter(), status))

    def eof_received(self) -> bool | None:
        if self._need < 0 and self._buffer:  # a response without Content-Length
            self._buffer.clear()
            self._finish(self._status)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._finish(-1)
        if not self.closed.done():
            self.closed.set_result(None)


async def _paced(
    target: Target,
    rate: float,
    seconds: int,
    warmup: float,
    keep_alive: bool,
) -> Figures:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{target.port}"
    connection = "" if keep_alive else "Connection: close\r\n"
    payloads = [
        f"GET {p} HTTP/1.1\r\nHost: {host}\r\n{connection}\r\n".encode() for p in target.paths
    ]
    latencies: list[float] = []
    lags: list[float] = []
    failures = 0
    opened = 0
    idle: list[_Client] = []

    async def connect() -> _Client:
        nonlocal opened
        opened += 1
        _, client = await loop.create_connection(_Client, "127.0.0.1", target.port)
        return client

    async def one(index: int, due: float, measured: bool) -> None:
        nonlocal failures
        began = time.perf_counter()
        lag = began - due
        client: _Client | None = None
        try:
            if keep_alive:
                while idle and idle[-1].transport is None:
                    idle.pop()  # closed by the server meanwhile
                client = idle.pop() if idle else await connect()
                began = time.perf_counter()  # from writing the request
            else:
                client = await connect()  # from the connect
            finished, status = await asyncio.wait_for(
                client.request(payloads[index % len(payloads)]), 5
            )
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            if measured:
                latencies.append(finished - began)
                lags.append(lag)
            if keep_alive:
                idle.append(client)
                client = None
            else:  # the server closes first (Connection: close): no TIME_WAIT on our side
                await asyncio.wait_for(asyncio.shield(client.closed), 2)
                client = None
        except Exception:
            if measured:
                failures += 1
        finally:
            if client is not None and client.transport is not None:
                client.transport.close()

    if keep_alive:
        idle.extend([await connect() for _ in range(8)])
    interval = 1.0 / rate
    total = int(rate * (warmup + seconds))
    first_measured = int(rate * warmup)
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05
    cpu_before = (0.0, 0.0)
    own_before = 0.0
    machine_before = machine_ticks()
    began_measuring = time.perf_counter()
    for index in range(total):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if index == first_measured:
            cpu_before, began_measuring = tree_cpu(target.pid), time.perf_counter()
            own_before, machine_before = own_cpu(), machine_ticks()
        tasks.append(loop.create_task(one(index, due, index >= first_measured)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began_measuring
    busy, softirq = machine_cores_busy(machine_before)
    cpu_after = tree_cpu(target.pid)
    generator_cpu = own_cpu() - own_before
    for client in idle:
        if client.transport is not None:
            client.transport.close()
    ordered = sorted(latencies)
    return Figures(
        responses=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        server_cpu_s=sum(cpu_after) - sum(cpu_before),
        generator_cpu_s=generator_cpu,
        errors={"failed": failures},
        extra={
            "sent": float(total - first_measured),
            "max_lag_ms": max(lags, default=0.0) * 1000,
            "p99_lag_ms": percentile(sorted(lags), 99) * 1000 if lags else 0.0,
            "connections": float(opened),
            "server_sys_s": cpu_after[1] - cpu_before[1],
            "machine_busy": busy,
            "machine_softirq": softirq,
        },
    )


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_paced(serving: Serving, rate: float, seconds: int, keep_alive: bool) -> Figures:
    runner: Callable[..., Figures]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    with serving() as target:
        return runner(_paced(target, rate, seconds, 1.0, keep_alive))


# -- profile -------------------------------------------------------------------------------------


def profile(target: Target, script: Path, args: argparse.Namespace, output: Path) -> str:
    """py-spy on the (first) ca-service process serving HTTP while wrk drives it with a new
    connection per request; returns the hottest frames by own samples."""
    pids = tree_pids(target.pid)
    pid = target.pid
    for candidate in pids:  # with workers, the parent only supervises: take a worker
        cmdline = Path(f"/proc/{candidate}/cmdline").read_bytes()
        if b"--reuse-port" in cmdline:
            pid = candidate
            break
    spy = subprocess.Popen(
        [
            tool("py-spy"),
            "record",
            "-p",
            str(pid),
            "-d",
            "5",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    run_wrk(lambda: nullcontext(target), script, args.threads, args.connections, 6, 0)
    _, error = spy.communicate(timeout=60)
    if not output.exists():
        return f"py-spy wrote nothing: {error.decode(errors='replace')}"
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        # inclusive per function (not per line): "name (file:line)" → "name (file)"
        for function in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            inclusive[function] = inclusive.get(function, 0) + count
    lines = [
        f"py-spy (Python frames; native uvloop/kernel time shows as its Python caller): "
        f"{total} samples of pid {pid} under wrk with a new connection per request "
        f"(raw stacks in {output})",
        "  own time by line:",
    ]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"    {100 * count / max(1, total):5.1f}%  {frame}")
    lines.append("  inclusive by function:")
    for function, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:16]:
        lines.append(f"    {100 * count / max(1, total):5.1f}%  {function}")
    return "\n".join(lines)


# -- output ---------------------------------------------------------------------------------------


def describe(label: str, f: Figures) -> str:
    text = (
        f"{label}: {f.rate:7.0f} resp/s  p50 {f.p50_ms:6.2f} ms  p99 {f.p99_ms:6.2f} ms  "
        f"max {f.max_ms:7.2f} ms  server CPU {f.cpu_us:4.0f} µs/resp (kernel {f.sys_us:3.0f}; "
        f"{100 * f.utilisation:3.0f}% of a core)  generator CPU {f.generator_cpu_us:4.0f} µs/resp"
    )
    errors = {k: v for k, v in f.errors.items() if v}
    text += (
        f"  machine {f.extra['machine_busy']:.2f}/{os.cpu_count()} cores busy "
        f"(softirq {f.extra['machine_softirq']:.2f})"
    )
    if "sent" in f.extra:
        text += (
            f"  [{f.responses}/{f.extra['sent']:.0f} answered, {f.errors['failed']} failed, "
            f"{f.extra['connections']:.0f} connections, generator behind schedule p99 "
            f"{f.extra['p99_lag_ms']:.1f} ms, max {f.extra['max_lag_ms']:.1f} ms]"
        )
    else:
        text += f"  [{f.responses} responses; socket/status errors: {errors or 'none'}]"
    return text


def median_figures(results: Sequence[Figures]) -> Figures:
    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    return Figures(
        responses=int(med([r.responses for r in results])),
        seconds=med([r.seconds for r in results]),
        p50_ms=med([r.p50_ms for r in results]),
        p99_ms=med([r.p99_ms for r in results]),
        max_ms=med([r.max_ms for r in results]),
        server_cpu_s=med([r.server_cpu_s for r in results]),
        generator_cpu_s=med([r.generator_cpu_s for r in results]),
        errors={k: int(med([r.errors[k] for r in results])) for k in results[0].errors},
        extra={k: med([r.extra[k] for r in results]) for k in results[0].extra},
    )


def median_line(label: str, results: Sequence[Figures]) -> str:
    """Medians of each figure separately (rate, p50, p99 and CPU/response)."""
    rate = statistics.median(r.rate for r in results)
    cpu = statistics.median(r.cpu_us for r in results)
    kernel = statistics.median(r.sys_us for r in results)
    generator = statistics.median(r.generator_cpu_us for r in results)
    m = median_figures(results)
    return (
        f"{label}: {rate:7.0f} resp/s  p50 {m.p50_ms:6.2f} ms  p99 {m.p99_ms:6.2f} ms  "
        f"max {m.max_ms:7.2f} ms  server CPU {cpu:4.0f} µs/resp (kernel {kernel:3.0f})  "
        f"generator CPU {generator:4.0f} µs/resp"
    )


# -- main ----------------------------------------------------------------------------------------


SCENARIOS = (
    ("ours_close", "ca-service  new connection/request (wrk)"),
    ("peer_close", "openssl     new connection/request (wrk)"),
    ("ours_keep", "ca-service  keep-alive             (wrk)"),
    ("ours_paced_close", "ca-service  paced, new connection     "),
    ("ours_paced_keep", "ca-service  paced, keep-alive         "),
    ("peer_paced_close", "openssl     paced, new connection     "),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per window")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="ca-service processes (and -multi)")
    parser.add_argument("--certificates", type=int, default=200)
    parser.add_argument("--revoke-every", type=int, default=10, help="revoke every n-th")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced requests/s")
    parser.add_argument("--check", type=int, default=20, help="answers checked per server")
    parser.add_argument(
        "--profile", type=Path, help="after the runs, py-spy raw stacks of ca-service to this file"
    )
    args = parser.parse_args()
    if args.seconds < 1 or args.runs < 1 or args.workers < 1 or args.certificates < 2:
        parser.error("need --seconds >= 1, --runs >= 1, --workers >= 1, --certificates >= 2")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    openssl_version = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    began = time.perf_counter()
    multi = f" -multi {args.workers}" if args.workers > 1 else ""
    print(
        f"OCSP responder: ca-service ({args.workers} process(es)) vs {openssl_version} "
        f"`openssl ocsp -port`{multi}; {args.certificates} certificates (every "
        f"{args.revoke_every}th revoked), one request each (SHA-1 CertID, no nonce), GET; "
        f"wrk -t{args.threads} -c{args.connections}, {args.warmup} s warm-up + {args.seconds} s "
        f"per window; paced {args.rate:.0f} req/s; {args.runs} run(s); {os.cpu_count()} CPUs, "
        "load generators on the same machine",
        flush=True,
    )
    results: dict[str, list[Figures]] = {key: [] for key, _ in SCENARIOS}
    checks: list[str] = []
    failed_checks = 0
    profile_text = ""
    with (
        tempfile.TemporaryDirectory(prefix="bench-ocsp-") as workdir_name,
        throwaway_redis(Path(workdir_name)) as (redis_url, _redis_pid),
    ):
        workdir = Path(workdir_name)
        data_dir = workdir / "ca"
        http_port = free_port()
        extra = {
            "CA_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
            "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
            "CA_REDIS_URL": redis_url,
            "CA_LOG_LEVEL": "WARNING",
        }
        init_ca(data_dir, **extra)
        if args.workers > 1:
            extra |= {
                "CA_GRPC_WORKERS": str(args.workers),
                "CA_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            }
        server = CaProcess(data_dir, ca_env(data_dir, **extra), workdir / "ca-service.log")
        server.start()
        try:
            assert server.process is not None
            setup_began = time.perf_counter()
            issued = asyncio.run(issue_certificates(server, args.certificates, args.revoke_every))
            issuing_pem = data_dir / "issuing" / "ca.pem"
            issuer = x509.load_pem_x509_certificate(issuing_pem.read_bytes())
            chain_pem = workdir / "chain.pem"
            chain_pem.write_bytes(
                issuing_pem.read_bytes() + (data_dir / "root" / "ca.pem").read_bytes()
            )
            requests = [ocsp_request(item.certificate, issuer) for item in issued]
            access = (
                issued[0]
                .certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
                .value
            )
            ocsp_url = next(
                str(d.access_location.value)
                for d in access
                if d.access_method == AuthorityInformationAccessOID.OCSP
            )
            prefix = ocsp_url.split(f":{http_port}", 1)[1].rstrip("/")
            ours = Target(
                "ca-service",
                http_port,
                [get_path(prefix, r) for r in requests],
                server.process.pid,
            )
            index = workdir / "index.txt"
            write_index(index, issued)
            responder_cert, responder_key = openssl_responder(data_dir, workdir)
            good_leaf, revoked_leaf = workdir / "good.pem", workdir / "revoked.pem"
            good_item = next(i for i in issued if i.revoked_at is None)
            revoked_item = next(i for i in issued if i.revoked_at is not None)
            good_leaf.write_bytes(good_item.certificate.public_bytes(Encoding.PEM))
            revoked_leaf.write_bytes(revoked_item.certificate.public_bytes(Encoding.PEM))
            revoked = sum(1 for i in issued if i.revoked_at is not None)
            print(
                f"setup: {len(issued)} certificates issued, {revoked} revoked in "
                f"{time.perf_counter() - setup_began:.1f} s; OCSP URL in the certificates "
                f"{ocsp_url}; index.txt {len(issued)} lines",
                flush=True,
            )

            peer_paths = [get_path("", r) for r in requests]
            peer_argv: list[str] = []

            @contextmanager
            def peer_serving() -> Iterator[Target]:
                """A fresh openssl responder per window: one that was left a connection
                closed before its request (as at the end of every wrk run) spins for ever."""
                nonlocal peer_argv
                with openssl_server(
                    workdir, index, issuing_pem, responder_cert, responder_key, args.workers
                ) as (port, pid, argv):
                    peer_argv = argv
                    yield Target("openssl", port, peer_paths, pid)

            def ours_serving() -> AbstractContextManager[Target]:
                return nullcontext(ours)

            def verify(moment: str) -> None:
                nonlocal failed_checks
                with peer_serving() as peer:
                    for target in (ours, peer):
                        checked, ok, problems, size = check_answers(
                            f"http://127.0.0.1:{target.port}",
                            target.paths,
                            issued,
                            issuer,
                            args.check,
                        )
                        failed_checks += checked - ok
                        checks.append(
                            f"{moment}: {target.name} answers checked with cryptography "
                            f"(status, serial, reason and time, signature, responder "
                            f"certificate): {ok}/{checked} OK, mean body {size:.0f} bytes"
                        )
                        print(checks[-1], flush=True)
                        for problem in problems[:5]:
                            print(f"  problem: {problem}", flush=True)
                    for name, url in (
                        ("ca-service", ocsp_url),
                        ("openssl", f"http://127.0.0.1:{peer.port}"),
                    ):
                        for leaf, expected in ((good_leaf, "good"), (revoked_leaf, "revoked")):
                            ok, output = openssl_client_check(
                                url, issuing_pem, chain_pem, leaf, expected
                            )
                            failed_checks += 0 if ok else 1
                            checks.append(
                                f"{moment}: openssl ocsp -url (POST, -no_nonce) → {name}, "
                                f"{expected} certificate: {'OK' if ok else 'FAILED'}"
                            )
                            print(checks[-1] + ("" if ok else f"\n  {output}"), flush=True)

            verify("before the runs")
            print("peer: " + " ".join(peer_argv), flush=True)
            scripts = {
                (name, close): write_lua(
                    workdir / f"{name}-{'close' if close else 'keep'}.lua", paths, close
                )
                for name, paths in (("ours", ours.paths), ("peer", peer_paths))
                for close in (True, False)
            }

            def wrk(serving: Serving, name: str, close: bool) -> Figures:
                return run_wrk(
                    serving,
                    scripts[(name, close)],
                    args.threads,
                    args.connections,
                    args.seconds,
                    args.warmup,
                )

            steps: dict[str, Callable[[], Figures]] = {
                "ours_close": lambda: wrk(ours_serving, "ours", True),
                "peer_close": lambda: wrk(peer_serving, "peer", True),
                "ours_keep": lambda: wrk(ours_serving, "ours", False),
                "ours_paced_close": lambda: run_paced(ours_serving, args.rate, args.seconds, False),
                "ours_paced_keep": lambda: run_paced(ours_serving, args.rate, args.seconds, True),
                "peer_paced_close": lambda: run_paced(peer_serving, args.rate, args.seconds, False),
            }
            for run_index in range(args.runs):
                print(f"run {run_index + 1}", flush=True)
                for scenario, label in SCENARIOS:
                    figures = steps[scenario]()
                    results[scenario].append(figures)
                    print("  " + describe(label, figures), flush=True)
            verify("after the runs (ours from its cache)")
            if args.profile is not None:
                profile_text = profile(ours, scripts[("ours", True)], args, args.profile.resolve())
        except Exception:
            log = server.log_path
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            print(f"ca-service log (tail):\n{tail}", file=sys.stderr)
            raise
        finally:
            server.stop()

    m = {key: median_figures(values) for key, values in results.items()}
    rate = {key: statistics.median(r.rate for r in values) for key, values in results.items()}
    cpu = {key: statistics.median(r.cpu_us for r in values) for key, values in results.items()}
    ratio = rate["ours_close"] / rate["peer_close"] if rate["peer_close"] else float("inf")
    print()
    print(
        f"== summary: median of {args.runs} run(s); ca-service {args.workers} process(es), "
        f"openssl{multi or ' (one process)'}; GET /ocsp/<b64> (ours) vs GET /<b64> (openssl "
        "3.0 accepts no path prefix), same requests and headers =="
    )
    print("new connection per request (wrk, Connection: close; latency excludes the connect):")
    print("  " + median_line("ca-service", results["ours_close"]))
    print("  " + median_line("openssl   ", results["peer_close"]))
    print(
        f"  ratio ca-service/openssl: {ratio:.2f}x responses/s; CPU per response "
        f"{cpu['ours_close']:.0f} µs vs {cpu['peer_close']:.0f} µs "
        f"(openssl/ours {cpu['peer_close'] / cpu['ours_close']:.2f}x)"
    )
    print("keep-alive (wrk; openssl 3.0's responder closes every connection, so ours only):")
    print("  " + median_line("ca-service", results["ours_keep"]))
    print(
        f"paced {args.rate:.0f} requests/s for {args.seconds} s (latency from connect, or "
        "from the write on keep-alive, to the full response):"
    )
    print("  " + median_line("ca-service new connection", results["ours_paced_close"]))
    print("  " + median_line("ca-service keep-alive    ", results["ours_paced_keep"]))
    print("  " + median_line("openssl new connection   ", results["peer_paced_close"]))
    for line in checks:
        print(line)
    if profile_text:
        print(profile_text)
    print(f"bench wall time {time.perf_counter() - began:.0f} s")
    verdict = "MET" if ratio >= TARGET_RATIO else "NOT MET"
    print(
        f"target ca-service >= {TARGET_RATIO:.0f}x openssl responses/s with a new connection "
        f"per request: {verdict} ({ratio:.2f}x: {rate['ours_close']:.0f} vs "
        f"{rate['peer_close']:.0f} resp/s)"
    )
    p99 = m["ours_paced_close"].p99_ms
    verdict = "MET" if p99 < TARGET_P99_MS else "NOT MET"
    print(
        f"target ca-service p99 < {TARGET_P99_MS:.0f} ms at {args.rate:.0f} requests/s (new "
        f"connection per request): {verdict} (p99 {p99:.2f} ms; keep-alive "
        f"{m['ours_paced_keep'].p99_ms:.2f} ms)"
    )
    return 1 if failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
