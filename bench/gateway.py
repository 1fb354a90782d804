#!/usr/bin/env python3
"""ca-gateway against nginx in front of the same upstream: full mTLS handshakes per second,
keep-alive proxied requests per second, each server's CPU per handshake and per request, and
the latency the gateway adds over a direct upstream call at moderate load, in one run.

One throw-away stack per invocation (tests/gateway/gateway_stack.py): a redis-server on a free
loopback port, a ca-service, the sample upstream ``ca-demo-upstream`` (one Python process,
plain HTTP) and a user ``bench001`` with a certificate issued through the enrollment API.
Then, on fixed free ports:

* ``ca-gateway serve`` with ``GATEWAY_WORKERS`` = ``--workers`` (SO_REUSEPORT) and
  ``GATEWAY_REQUIRE_LOGIN=0``: a protected route needs only a valid client certificate,
  checked on every request (chain, validity, clientAuth, revocation, the user's record from
  the CA, cached ``GATEWAY_USER_CACHE_SECONDS``);
* nginx (``nginx -p DIR -c nginx.conf -g 'daemon off;'``) with ``worker_processes`` =
  ``--workers``, ``listen ... ssl reuseport``, the gateway's certificate and key,
  ``ssl_client_certificate`` = the gateway's client-trust.pem, ``ssl_verify_client on``,
  TLS 1.2 and 1.3, ``ssl_session_cache builtin`` and ``ssl_session_tickets on`` (what
  Python's ``ssl.SSLContext`` does by default: OpenSSL's internal cache and tickets),
  ``proxy_pass`` to the same upstream over HTTP/1.1 with an upstream ``keepalive 64`` pool
  (the gateway's pool size), ``keepalive_requests`` unlimited on both sides (the gateway has
  no limit), and the same identity headers where nginx can know them: X-Forwarded-For/
  -Proto/-Host, ``x-user-id`` (the certificate's CN), an XFCC-like
  ``x-forwarded-client-cert`` (SHA-1 hash and subject), ``x-org-id``/``x-user-role`` removed
  (nginx cannot look the user up). nginx checks the certificate at the handshake only
  (chain, validity, purpose: the same checks OpenSSL makes for the gateway), nothing per
  request: no revocation, no user record; that is part of what the figures price.

Access logs: on for both by default (``--access-log on``): the gateway's JSON access log goes
to its stderr (a file), nginx writes a JSON access log (same fields) to a file without
buffering. ``--access-log off`` sets ``GATEWAY_LOG_LEVEL=WARNING`` and ``access_log off``.

The load generator is the same for every target: bench/loadgen.c (C, OpenSSL, one blocking
thread per connection), compiled into the temporary directory at run time. It presents the
client certificate (wrk cannot), keeps no TLS sessions (every handshake is full) and does not
verify the server certificate. Each run measures, for the gateway and nginx in turn:

1. handshakes: ``--connections`` connections each looping connect, full TLS handshake with
   the client certificate, one proxied ``GET /echo`` with ``Connection: close``, close;
2. keep-alive: ``--connections`` kept-alive connections each sending ``GET /echo`` in turn;
   the upstream directly (plain HTTP) the same way, as the ceiling;
3. moderate load: ``--rate`` requests/s paced over ``--latency-connections`` kept-alive
   connections, latency from the scheduled send time to the end of the response. The
   gateway, nginx and the upstream directly take turns of ``--slice`` seconds (each turn with
   its own 0.3 s warm-up, the first target rotating) until each had ``--seconds``, and each
   target's latencies of all its turns are pooled, so that the machine's hiccups fall on all
   three alike. The added p99 is a proxy's p99 minus the direct p99.

Server CPU is utime+stime of the whole process tree (gateway supervisor and workers; nginx
master and workers) from /proc/<pid>/stat at the start and end of the measured window,
divided by the responses counted in it; the upstream's and the load generator's CPU are
reported beside it, with how many of the machine's cores were busy and how many of them by
other processes (another test run on the machine makes the figures worthless; the summary
warns). The medians of ``--runs`` runs are printed last, with the ratios against the
targets (issue 10): handshakes/s >= 0.9x nginx and server CPU per handshake <= 1.2x nginx's,
proxied requests/s >= 0.7x nginx and server CPU per request <= 2.0x nginx's, added p99 < 2 ms
at moderate load in every run. Servers, upstream and load generator share the machine, so a
throughput ratio also reflects the upstream's and the generator's CPU; the summary adds the
ratio the servers' CPU per response alone would allow (CPU-bound).

``--profile DIR`` then samples one gateway worker during a keep-alive window and during a
handshake window: py-spy with native frames (``.venv/bin/pip install py-spy``) for the
Python hot spots, and perf, when installed, for the on-CPU split by library.

    .venv/bin/python bench/gateway.py [--runs 3] [--seconds 5] [--warmup 1] [--workers 2]
        [--connections 32] [--rate 500] [--latency-connections 4] [--slice 1]
        [--access-log on|off] [--profile DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from bench.issue import CLOCK_TICKS, free_port  # noqa: E402
from bench.ocsp import machine_cores_busy, machine_ticks, stop_tree, tree_cpu, tree_pids  # noqa: E402
from tests.gateway.gateway_stack import GatewayStack, Process, start_gateway_stack  # noqa: E402
from tests.smtp_sink import SmtpSink  # noqa: E402
from tests.support import throwaway_redis, tool  # noqa: E402

TARGET_HANDSHAKE_RATIO = 0.9
TARGET_REQUEST_RATIO = 0.7
TARGET_HANDSHAKE_CPU = 1.2
TARGET_REQUEST_CPU = 2.0
TARGET_ADDED_P99_MS = 2.0
USER_ID = "bench001"
PATH = "/echo"
NGINX = "/usr/sbin/nginx"
LOADGEN_SOURCE = Path(__file__).with_name("loadgen.c")
LOG_ON = "on (gateway: JSON lines on stderr into a file; nginx: JSON lines into a file)"
LOG_OFF = "off (GATEWAY_LOG_LEVEL=WARNING; nginx access_log off)"

NGINX_CONF = """\
{user}worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    map $ssl_client_s_dn $user_id {{
        default "";
        "~(^|,)CN=(?<cn>[^,]+)" $cn;
    }}
    log_format json escape=json '{{"ts":"$time_iso8601","client":"$remote_addr",'
        '"method":"$request_method","path":"$uri","status":$status,'
        '"bytes":$body_bytes_sent,"ms":$request_time,"tls":"$ssl_protocol",'
        '"resumed":"$ssl_session_reused","user_id":"$user_id",'
        '"serial":"$ssl_client_serial"}}';
    {access_log}

    upstream app {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000000;
    }}

    server {{
        listen 127.0.0.1:{port} ssl reuseport backlog=1024;
        ssl_certificate {tls}/cert.pem;
        ssl_certificate_key {tls}/key.pem;
        ssl_client_certificate {tls}/client-trust.pem;
        ssl_verify_client on;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache builtin;
        ssl_session_tickets on;
        keepalive_timeout 60s;
        keepalive_requests 1000000000;

        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header x-forwarded-client-cert
                "Hash=$ssl_client_fingerprint;Subject=\\"$ssl_client_s_dn\\"";
            proxy_set_header x-user-id $user_id;
            proxy_set_header x-org-id "";
            proxy_set_header x-user-role "";
        }}
    }}
}}
"""


# -- the targets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    tls: bool
    pid: int | None  # root of the server's process tree (None: not measured)


@dataclass
class Figures:
    """One measured window."""

    ok: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float
    server_sys_s: float
    upstream_cpu_s: float
    generator_cpu_s: float
    errors: int
    non200: int
    opened: int
    behind: int
    busy_cores: float
    softirq_cores: float  # of busy_cores: loopback networking mostly
    tls: str
    last_error: str
    # Cores used by each process of the server's tree in the window (supervisor/master first).
    process_cores: list[float] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)  # with ``keep_latencies`` only

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def per_op_us(self, seconds: float) -> float:
        return seconds / self.ok * 1e6 if self.ok else float("nan")

    @property
    def cpu_us(self) -> float:
        return self.per_op_us(self.server_cpu_s)

    @property
    def upstream_us(self) -> float:
        return self.per_op_us(self.upstream_cpu_s)

    @property
    def generator_us(self) -> float:
        return self.per_op_us(self.generator_cpu_s)

    @property
    def server_cores(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def upstream_cores(self) -> float:
        return self.upstream_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def other_cores(self) -> float:
        """Cores busy with anything else: other processes on the machine (and interrupts)."""
        ours = self.server_cpu_s + self.upstream_cpu_s + self.generator_cpu_s
        if not self.seconds:
            return 0.0
        return max(0.0, self.busy_cores - self.softirq_cores - ours / self.seconds)


def build_loadgen(directory: Path) -> Path:
    binary = directory / "loadgen"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-pthread",
            "-o",
            str(binary),
            str(LOADGEN_SOURCE),
            "-lssl",
            "-lcrypto",
        ],
        check=True,
    )
    return binary


def _cpu(pid: int | None) -> tuple[float, float]:
    return tree_cpu(pid) if pid is not None else (0.0, 0.0)


def _per_process(pid: int | None) -> dict[int, float]:
    """CPU seconds of each process in the tree of ``pid``."""
    found: dict[int, float] = {}
    for each in tree_pids(pid) if pid is not None else []:
        found[each] = sum(_process_cpu(each))
    return found


def _process_cpu(pid: int) -> tuple[float, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def run_loadgen(
    loadgen: Path,
    target: Target,
    *,
    mode: str,
    connections: int,
    seconds: float,
    warmup: float,
    client: Path,
    upstream_pid: int,
    rate: float = 0.0,
    keep_latencies: Path | None = None,
) -> Figures:
    argv = [
        str(loadgen),
        "-m",
        mode,
        "-a",
        "127.0.0.1",
        "-p",
        str(target.port),
        "-u",
        PATH,
        "-c",
        str(connections),
        "-w",
        str(warmup),
        "-d",
        str(seconds),
        "-r",
        str(rate),
    ]
    if target.tls:
        argv += ["-t", "-C", str(client / "cert.pem"), "-K", str(client / "key.pem")]
        argv += ["-s", "localhost"]
    if keep_latencies is not None:
        argv += ["-o", str(keep_latencies)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    server_before = server_after = upstream_before = upstream_after = (0.0, 0.0)
    processes_before: dict[int, float] = {}
    processes_after: dict[int, float] = {}
    ticks_before = machine_ticks()
    busy = softirq = 0.0
    result: dict[str, object] = {}
    for line in process.stdout:
        if line.startswith("MEASURE"):
            server_before, upstream_before = _cpu(target.pid), _cpu(upstream_pid)
            processes_before = _per_process(target.pid)
            ticks_before = machine_ticks()
        elif line.startswith("DONE"):
            server_after, upstream_after = _cpu(target.pid), _cpu(upstream_pid)
            processes_after = _per_process(target.pid)
            busy, softirq = machine_cores_busy(ticks_before)
        elif line.startswith("{"):
            result = json.loads(line)
    if process.wait(60) != 0 or not result:
        raise SystemExit(f"loadgen failed against {target.name}: {' '.join(argv)}")

    def number(key: str) -> float:
        value = result[key]
        assert isinstance(value, int | float)
        return float(value)

    seconds = number("seconds")
    return Figures(
        ok=int(number("ok")),
        seconds=seconds,
        p50_ms=number("p50_us") / 1000,
        p99_ms=number("p99_us") / 1000,
        max_ms=number("max_us") / 1000,
        server_cpu_s=sum(server_after) - sum(server_before),
        server_sys_s=server_after[1] - server_before[1],
        upstream_cpu_s=sum(upstream_after) - sum(upstream_before),
        generator_cpu_s=number("cpu_s"),
        errors=int(number("errors")),
        non200=int(number("non200")),
        opened=int(number("opened")),
        behind=int(number("behind")),
        busy_cores=busy,
        softirq_cores=softirq,
        tls=str(result["tls"]),
        last_error=str(result["last_error"]),
        process_cores=[
            (processes_after[pid] - processes_before.get(pid, 0.0)) / seconds
            for pid in processes_after
        ],
        latencies_us=(
            array("I", keep_latencies.read_bytes()).tolist() if keep_latencies is not None else []
        ),
    )


def pooled(windows: Sequence[Figures]) -> Figures:
    """Several windows of one target as one: counts and CPU summed, percentiles of all their
    latencies together."""
    latencies = sorted(value for f in windows for value in f.latencies_us)

    def percentile(p: float) -> float:
        return latencies[int((len(latencies) - 1) * p)] / 1000 if latencies else 0.0

    seconds = sum(f.seconds for f in windows)

    def weighted(value: Callable[[Figures], float]) -> float:
        return sum(value(f) * f.seconds for f in windows) / seconds if seconds else 0.0

    width = max(len(f.process_cores) for f in windows)
    process_cores = [
        sum((f.process_cores[i] if i < len(f.process_cores) else 0.0) * f.seconds for f in windows)
        / seconds
        for i in range(width)
    ]
    return Figures(
        ok=sum(f.ok for f in windows),
        seconds=seconds,
        p50_ms=percentile(0.5),
        p99_ms=percentile(0.99),
        max_ms=latencies[-1] / 1000 if latencies else 0.0,
        server_cpu_s=sum(f.server_cpu_s for f in windows),
        server_sys_s=sum(f.server_sys_s for f in windows),
        upstream_cpu_s=sum(f.upstream_cpu_s for f in windows),
        generator_cpu_s=sum(f.generator_cpu_s for f in windows),
        errors=sum(f.errors for f in windows),
        non200=sum(f.non200 for f in windows),
        opened=sum(f.opened for f in windows),
        behind=sum(f.behind for f in windows),
        busy_cores=weighted(lambda f: f.busy_cores),
        softirq_cores=weighted(lambda f: f.softirq_cores),
        tls=windows[0].tls,
        last_error=next((f.last_error for f in windows if f.last_error), ""),
        process_cores=process_cores,
    )


# -- the servers --------------------------------------------------------------------------------


def start_gateway(stack: GatewayStack, workers: int, access_log: bool) -> Process:
    """The gateway under test, on a fixed port (needed for several workers)."""
    env = stack.gateway_env()
    env.update(
        GATEWAY_LISTEN=f"127.0.0.1:{free_port()}",
        GATEWAY_WORKERS=str(workers),
        GATEWAY_REQUIRE_LOGIN="0",
        GATEWAY_USER_CACHE_SECONDS="2",  # the default (the test stack sets 0.5)
        GATEWAY_LOG_LEVEL="INFO" if access_log else "WARNING",
    )
    process = Process([tool("ca-gateway"), "serve"], env, stack.tmp / "gateway-bench.log")
    process.start()
    stack.gateways.append(process)
    return process


def nginx_version() -> str:
    result = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True)
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")


@contextmanager
def nginx_server(
    directory: Path, tls_dir: Path, upstream: str, workers: int, access_log: bool
) -> Iterator[tuple[Target, str]]:
    """nginx in the foreground with a generated configuration; yields (target, config)."""
    directory.mkdir(parents=True)
    port = free_port()
    config = NGINX_CONF.format(
        user="user root;\n" if os.geteuid() == 0 else "",
        workers=workers,
        dir=directory,
        tls=tls_dir,
        upstream=upstream,
        port=port,
        access_log=f"access_log {directory}/access.log json;" if access_log else "access_log off;",
    )
    (directory / "nginx.conf").write_text(config)
    argv = [NGINX, "-p", str(directory), "-c", "nginx.conf", "-e", str(directory / "error.log")]
    checked = subprocess.run([*argv, "-t"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise SystemExit(f"nginx rejects the configuration:\n{checked.stderr}\n{config}")
    process = subprocess.Popen(
        [*argv, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while len(tree_pids(process.pid)) < workers + 1 or not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = directory / "error.log"
                raise SystemExit(f"nginx did not start:\n{log.read_text() if log.exists() else ''}")
            time.sleep(0.05)
        yield Target("nginx", port, True, process.pid), config
    finally:
        stop_tree(process)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def describe_certificates(tls_dir: Path, client: Path) -> str:
    def one(path: Path) -> str:
        chain = x509.load_pem_x509_certificates(path.read_bytes())
        key = chain[0].public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            kind = f"EC {key.curve.name}"
        elif isinstance(key, rsa.RSAPublicKey):
            kind = f"RSA {key.key_size}"
        else:
            kind = type(key).__name__
        return f"{chain[0].subject.rfc4514_string()} ({kind}, {len(chain)} certificate(s) sent)"

    trust = len(x509.load_pem_x509_certificates((tls_dir / "client-trust.pem").read_bytes()))
    return (
        f"server certificate {one(tls_dir / 'cert.pem')}; client certificate "
        f"{one(client / 'cert.pem')}; client trust: {trust} CA certificate(s)"
    )


def fetch_echo(port: int, client: Path | None) -> tuple[int, dict[str, str]]:
    """One GET /echo over TLS (with the client certificate if given): (status, the headers
    the upstream received, lower-cased names)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client is not None:
        context.load_cert_chain(client / "cert.pem", client / "key.pem")
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        connection.request("GET", PATH, headers={"x-user-id": "forged", "x-org-id": "forged"})
        response = connection.getresponse()
        body = response.read()
    except (ssl.SSLError, ConnectionError) as exc:
        return 0, {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        connection.close()
    if response.status != 200:
        return response.status, {}
    seen = json.loads(body)["headers"]
    return 200, {str(name).lower(): str(value) for name, value in seen}


# -- profile ------------------------------------------------------------------------------------


def profile_worker(
    pid: int, directory: Path, name: str, seconds: float, drive: Callable[[], Figures]
) -> tuple[str, Figures]:
    """Samples ``pid`` while ``drive`` runs: py-spy with native frames (wall clock, idle
    excluded) and, when installed, perf (on-CPU only) for the split by library."""
    spy_binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy_binary).exists():
        raise SystemExit("py-spy is not installed (.venv/bin/pip install py-spy)")
    stacks = directory / f"py-spy-{name}.txt"
    spy = subprocess.Popen(
        [
            spy_binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "100",
            "--native",
            "--format",
            "raw",
            "--output",
            str(stacks),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    perf_data = directory / f"perf-{name}.data"
    perf_argv = ["perf", "record", "-F", "499", "-p", str(pid), "-o", str(perf_data)]
    perf = (
        subprocess.Popen(
            [*perf_argv, "--", "sleep", str(int(seconds))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if shutil.which("perf")
        else None
    )
    time.sleep(0.5)
    figures = drive()
    _, error = spy.communicate(timeout=120)
    text = (
        summarize_profile(stacks, pid)
        if stacks.exists()
        else f"  py-spy wrote nothing: {error.decode(errors='replace')}"
    )
    if perf is not None:
        perf.wait(60)
        text += "\n" + perf_split(perf_data)
    return text, figures


SYSCALLS = frozenset(
    {"write", "writev", "send", "sendmsg", "sendto", "read", "readv", "recv", "recvmsg"}
    | {"recvfrom", "epoll_wait", "epoll_pwait", "getpid", "close"}
)


# Frames every sample of the event loop thread has: left out of the inclusive list.
_ROOT_FRAMES = (
    "_run_module_as_main (",
    "_run_code (",
    "<module> (gateway/cli.py",
    "main (gateway/cli.py",
    "_serve (gateway/cli.py",
    "run (asyncio/runners.py",
    "Runner.run (asyncio/runners.py",
)


def _python_frame(frame: str) -> bool:
    return ".py:" in frame or "<frozen " in frame


def summarize_profile(stacks: Path, pid: int, top: int = 25) -> str:
    """Hot spots of py-spy raw stacks with native frames: where the event loop thread's
    samples end (a system call, OpenSSL, uvloop, or Python code, attributed to the innermost
    Python line), and inclusive time by Python function."""
    kinds: dict[str, int] = {}
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = other_threads = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if any(frame.startswith("Thread._bootstrap ") for frame in frames):
            other_threads += count  # gRPC's poller thread, mostly waiting in epoll
            continue
        total += count
        leaf = frames[-1]
        leaf_name = leaf.split(" (", 1)[0]
        python = [frame for frame in frames if _python_frame(frame)]
        if leaf_name in SYSCALLS and "(libc" in leaf:
            kind = f"system call {leaf_name}()"
        elif "(libcrypto" in leaf or "(libssl" in leaf:
            kind = "OpenSSL"
        elif "(loop.c" in leaf or leaf.startswith("uv_") or leaf.startswith("uv__"):
            kind = "uvloop/libuv"
        else:
            kind = "Python (interpreter, builtins, C extensions, libc)"
        kinds[kind] = kinds.get(kind, 0) + count
        if python and not kind.startswith("system call"):
            innermost = python[-1]
            if innermost.startswith(_ROOT_FRAMES):
                innermost = "(the event loop itself, below any Python frame)"
            own[innermost] = own.get(innermost, 0) + count
        for function in {re.sub(r":\d+\)$", ")", frame) for frame in python}:
            if not function.startswith(_ROOT_FRAMES):
                inclusive[function] = inclusive.get(function, 0) + count

    def share(count: int) -> str:
        return f"{100 * count / max(1, total):5.1f}%"

    lines = [
        f"  py-spy: {total} samples of worker {pid}'s event loop thread ({other_threads} more "
        f"of other threads left out), wall clock while not idle; raw stacks in {stacks}. On a "
        "saturated machine a write() that wakes the reader is often preempted there, so "
        "system calls weigh more than their CPU (see perf's on-CPU split below).",
        "  where the samples end:",
    ]
    for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {share(count)}  {kind}")
    lines.append("  own time by innermost Python line (system calls left out):")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {share(count)}  {frame}")
    lines.append("  inclusive by Python function:")
    for function, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {share(count)}  {function}")
    return "\n".join(lines)


def perf_split(data: Path) -> str:
    """On-CPU samples by library, from ``perf report``."""
    result = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "--stdio"],
        capture_output=True,
        text=True,
    )
    rows = [
        line.strip()
        for line in result.stdout.splitlines()
        if line.strip() and not line.startswith("#") and "%" in line
    ]
    if not rows:
        return f"  perf: nothing recorded ({result.stderr.strip()[:200]})"
    return "  perf (on-CPU samples by library):\n" + "\n".join(f"    {row}" for row in rows[:8])


def _short(frame: str) -> str:
    """``name (/long/path/site-packages/pkg/mod.py:12)`` → ``name (pkg/mod.py:12)``."""
    return re.sub(
        r"\((?:[^()]*/(?:site-packages|lib/python3\.\d+)/|" + re.escape(str(ROOT)) + "/)",
        "(",
        frame,
    )


# -- output -------------------------------------------------------------------------------------


def describe(label: str, f: Figures, unit: str) -> str:
    text = (
        f"{label} {f.rate:7.0f} {unit}/s  p50 {f.p50_ms:6.2f} ms  p99 {f.p99_ms:6.2f} ms  "
        f"max {f.max_ms:6.1f} ms  server CPU {f.cpu_us:5.0f} µs/{unit} (kernel "
        f"{f.per_op_us(f.server_sys_s):4.0f}; {f.server_cores:.2f} cores{_split(f)})  upstream "
        f"{f.upstream_us:4.0f} µs/{unit} ({f.upstream_cores:.2f} cores)  generator "
        f"{f.generator_us:4.0f} µs/{unit}  machine {f.busy_cores:.2f}/{os.cpu_count()} busy "
        f"(softirq {f.softirq_cores:.2f}, other processes {f.other_cores:.2f})  "
        f"[{f.ok} ok, {f.errors} errors, {f.non200} non-200, {f.opened} connections"
    )
    if f.behind:
        text += f", {f.behind} sends behind schedule"
    if f.errors or f.non200:
        text += f"; last: {f.last_error}"
    return text + "]"


def _split(f: Figures) -> str:
    """How the server's cores were shared by its workers (the supervisor/master left out)."""
    workers = f.process_cores[1:]
    return " = " + "+".join(f"{cores:.2f}" for cores in workers) if len(workers) > 1 else ""


def med(results: Sequence[Figures], value: Callable[[Figures], float]) -> float:
    return statistics.median(value(r) for r in results)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


SCENARIOS = (
    # key, label, mode, target name (the paced ones are measured in turns, see main)
    ("hs_gateway", "gateway  handshake+GET, close   ", "handshake", "gateway"),
    ("hs_nginx", "nginx    handshake+GET, close   ", "handshake", "nginx"),
    ("ka_gateway", "gateway  keep-alive             ", "keepalive", "gateway"),
    ("ka_nginx", "nginx    keep-alive             ", "keepalive", "nginx"),
    ("ka_direct", "upstream keep-alive (direct)    ", "keepalive", "direct"),
    ("paced_gateway", "gateway  paced keep-alive       ", "keepalive", "gateway"),
    ("paced_nginx", "nginx    paced keep-alive       ", "keepalive", "nginx"),
    ("paced_direct", "upstream paced keep-alive       ", "keepalive", "direct"),
)
PACED_TARGETS = ("gateway", "nginx", "direct")
PACED_WARMUP = 0.3  # seconds, per slice: the connections' handshakes and first requests


def print_summary(results: dict[str, list[Figures]], args: argparse.Namespace) -> None:
    def m(key: str, value: Callable[[Figures], float]) -> float:
        return med(results[key], value)

    runs = len(results["hs_gateway"])
    print(f"\nmedians of {runs} run(s); CPU = the server's whole process tree per response")
    header = (
        f"{'':16}| {'full handshakes (+1 GET, close)':^33} | "
        f"{f'keep-alive GET {PATH}, {args.connections} conns':^43} | "
        f"{f'{args.rate:.0f} req/s paced, {args.latency_connections} conns':^28}"
    )
    sub = (
        f"{'':16}| {'conn/s':>8} {'CPU µs':>7} {'p99 ms':>7} {'ups µs':>7} | "
        f"{'req/s':>7} {'CPU µs':>7} {'p50 ms':>7} {'p99 ms':>7} {'ups µs':>7} | "
        f"{'p50 ms':>7} {'p99 ms':>7} {'+p99 ms':>8}"
    )
    print(header)
    print(sub)
    print("-" * len(sub))
    for name, label in (("gateway", "gateway"), ("nginx", "nginx"), ("direct", "direct upstream")):
        if name != "direct":
            hs = (
                f"{m(f'hs_{name}', lambda f: f.rate):8.0f} "
                f"{m(f'hs_{name}', lambda f: f.cpu_us):7.0f} "
                f"{m(f'hs_{name}', lambda f: f.p99_ms):7.2f} "
                f"{m(f'hs_{name}', lambda f: f.upstream_us):7.0f}"
            )
            pairs = zip(results[f"paced_{name}"], results["paced_direct"], strict=True)
            added_median = statistics.median(a.p99_ms - b.p99_ms for a, b in pairs)
            added_text = f"{added_median:8.2f}"
            cpu_text = f"{m(f'ka_{name}', lambda f: f.cpu_us):7.0f}"
        else:
            hs = f"{'—':>8} {'—':>7} {'—':>7} {'—':>7}"
            added_text = f"{'—':>8}"
            cpu_text = f"{m('ka_direct', lambda f: f.upstream_us):7.0f}"
        print(
            f"{label:16}| {hs} | "
            f"{m(f'ka_{name}', lambda f: f.rate):7.0f} {cpu_text} "
            f"{m(f'ka_{name}', lambda f: f.p50_ms):7.2f} "
            f"{m(f'ka_{name}', lambda f: f.p99_ms):7.2f} "
            f"{m(f'ka_{name}', lambda f: f.upstream_us):7.0f} | "
            f"{m(f'paced_{name}', lambda f: f.p50_ms):7.2f} "
            f"{m(f'paced_{name}', lambda f: f.p99_ms):7.2f} {added_text}"
        )
    print(
        "(CPU µs: the server's per response; for the direct upstream, the upstream's own. "
        "ups µs: the upstream's CPU per response in the same window. +p99: p99 minus the "
        "direct upstream's p99 at the same rate in the same run, median of the runs.)"
    )
    ka_upstream_cores = m("ka_nginx", lambda f: f.upstream_cores)
    direct_rate = m("ka_direct", lambda f: f.rate)
    print(
        f"upstream busy during nginx keep-alive: {ka_upstream_cores:.2f} cores (direct upstream "
        f"alone serves {direct_rate:.0f} req/s); during gateway keep-alive: "
        f"{m('ka_gateway', lambda f: f.upstream_cores):.2f} cores"
    )

    def paired(ours: str, theirs: str, value: Callable[[Figures], float]) -> list[float]:
        """Each run's gateway/nginx ratio (their windows are next to each other in time)."""
        return [value(a) / value(b) for a, b in zip(results[ours], results[theirs], strict=True)]

    def added_p99(proxy: str) -> list[float]:
        """Each run's p99 through the proxy minus the direct p99 (measured in turns)."""
        pairs = zip(results[proxy], results["paced_direct"], strict=True)
        return [a.p99_ms - b.p99_ms for a, b in pairs]

    def listed(values: Sequence[float]) -> str:
        return "[" + " ".join(f"{value:.2f}" for value in values) + "]"

    def rate(f: Figures) -> float:
        return f.rate

    def cpu(f: Figures) -> float:
        return f.cpu_us

    failed = sum(f.errors + f.non200 for values in results.values() for f in values)
    if failed:
        print(f"WARNING: {failed} requests failed or were not answered 200 (see the runs)")
    others = [f.other_cores for values in results.values() for f in values]
    print(
        f"cores busy with other processes during the windows: median "
        f"{statistics.median(others):.2f}, max {max(others):.2f}"
        + ("  (WARNING: the machine was not quiet)" if max(others) > 0.25 else "")
    )

    hs_rates = paired("hs_gateway", "hs_nginx", rate)
    ka_rates = paired("ka_gateway", "ka_nginx", rate)
    hs_cpus = paired("hs_gateway", "hs_nginx", cpu)
    ka_cpus = paired("ka_gateway", "ka_nginx", cpu)
    hs_ratio, ka_ratio = statistics.median(hs_rates), statistics.median(ka_rates)
    hs_cpu, ka_cpu = statistics.median(hs_cpus), statistics.median(ka_cpus)
    gateway_added, nginx_added = added_p99("paced_gateway"), added_p99("paced_nginx")
    added = statistics.median(gateway_added)
    print("\ngateway / nginx: medians of the runs' ratios (each run's in brackets)")
    print(
        f"  full handshakes/s   {hs_ratio:5.2f}x {listed(hs_rates)}  "
        f"target >= {TARGET_HANDSHAKE_RATIO}x: {_verdict(hs_ratio >= TARGET_HANDSHAKE_RATIO)}"
    )
    print(
        f"      server CPU per handshake {hs_cpu:.2f}x {listed(hs_cpus)}  target <= "
        f"{TARGET_HANDSHAKE_CPU}x: {_verdict(hs_cpu <= TARGET_HANDSHAKE_CPU)}; with the cores "
        f"to themselves (CPU-bound) the gateway would do {1 / hs_cpu:.2f}x nginx's handshakes"
    )
    print(
        f"  proxied requests/s  {ka_ratio:5.2f}x {listed(ka_rates)}  "
        f"target >= {TARGET_REQUEST_RATIO}x: {_verdict(ka_ratio >= TARGET_REQUEST_RATIO)}"
    )
    print(
        f"      server CPU per request {ka_cpu:.2f}x {listed(ka_cpus)}  target <= "
        f"{TARGET_REQUEST_CPU}x: {_verdict(ka_cpu <= TARGET_REQUEST_CPU)}; CPU-bound, "
        f"{1 / ka_cpu:.2f}x nginx's requests"
    )
    print(
        f"  added p99 at {args.rate:.0f} req/s: gateway {added:+.2f} ms "
        f"{listed(gateway_added)}  target < {TARGET_ADDED_P99_MS:g} ms in every run: "
        f"{_verdict(max(gateway_added) < TARGET_ADDED_P99_MS)}"
    )
    print(f"      nginx {statistics.median(nginx_added):+.2f} ms {listed(nginx_added)}")
    print(
        "  (throughput is measured with servers, upstream and load generator sharing "
        f"{os.cpu_count()} cores, so its ratio also reflects the upstream's and the "
        "generator's CPU; the CPU-bound ratio is what the servers alone would allow)"
    )


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per window")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per window")
    parser.add_argument("--workers", type=int, default=2, help="gateway and nginx workers")
    parser.add_argument(
        "--connections", type=int, default=32, help="connections (handshake and keep-alive)"
    )
    parser.add_argument("--rate", type=float, default=500.0, help="paced requests/s")
    parser.add_argument(
        "--latency-connections", type=int, default=4, help="connections for the paced runs"
    )
    parser.add_argument(
        "--slice", type=float, default=1.0, help="seconds per turn of the paced targets"
    )
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the runs, profile one gateway worker (py-spy, perf) into this directory",
    )
    args = parser.parse_args()
    if args.runs < 1 or args.workers < 1 or args.connections < 1 or args.seconds <= 0:
        parser.error("need --runs, --workers, --connections >= 1 and --seconds > 0")
    if not Path(NGINX).exists():
        raise SystemExit(f"{NGINX} not found (apt-get install nginx-light)")
    access_log = args.access_log == "on"
    began = time.perf_counter()
    print(
        f"ca-gateway vs nginx {nginx_version()} ({ssl.OPENSSL_VERSION} on both sides): "
        f"{args.workers} worker process(es) each, same upstream (ca-demo-upstream, 1 Python "
        f"process), GET {PATH} as {USER_ID}; bench/loadgen.c with a client certificate and no "
        f"session reuse; {args.connections} connections for handshakes and keep-alive, "
        f"{args.rate:.0f} req/s paced over {args.latency_connections} connections for "
        f"latency (targets in turns of {args.slice:g} s); {args.warmup:g} s warm-up + "
        f"{args.seconds:g} s per window; {args.runs} "
        f"run(s); {os.cpu_count()} CPUs shared by servers, upstream and load generator; "
        f"access logs {LOG_ON if access_log else LOG_OFF}",
        flush=True,
    )
    results: dict[str, list[Figures]] = {key: [] for key, *_ in SCENARIOS}
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as workdir_name,
        throwaway_redis(Path(workdir_name)) as (redis_url, _redis_pid),
    ):
        workdir = Path(workdir_name)
        loadgen = build_loadgen(workdir)
        stack_dir = workdir / "stack"
        stack_dir.mkdir()
        smtp = SmtpSink().start()
        try:
            stack = start_gateway_stack(stack_dir, redis_url, smtp)
        except BaseException:
            smtp.stop()
            raise
        try:
            for idle in stack.gateways:  # the stack's own one-worker gateway is not measured
                idle.stop()
            stack.gateways.clear()
            user_id, password, email = stack.new_user(USER_ID)
            client = stack.issue(user_id, password, email, workdir / "client")
            gateway = start_gateway(stack, args.workers, access_log)
            assert gateway.process is not None and stack.upstream.process is not None
            upstream_pid = stack.upstream.process.pid
            upstream_address = f"127.0.0.1:{stack.upstream.port}"
            with nginx_server(
                workdir / "nginx", stack.tls_dir, upstream_address, args.workers, access_log
            ) as (nginx, _config):
                targets = {
                    "gateway": Target("gateway", gateway.port, True, gateway.process.pid),
                    "nginx": nginx,
                    "direct": Target("direct", stack.upstream.port, False, None),
                }
                gateway_workers = tree_pids(gateway.process.pid)[1:]
                assert nginx.pid is not None
                print(
                    f"setup {time.perf_counter() - began:.1f} s: gateway :{gateway.port} "
                    f"(supervisor {gateway.process.pid}, workers {gateway_workers}), nginx "
                    f":{nginx.port} (master {nginx.pid}, workers {tree_pids(nginx.pid)[1:]}), "
                    f"upstream {upstream_address} (pid {upstream_pid})",
                    flush=True,
                )
                print(describe_certificates(stack.tls_dir, client), flush=True)
                check(targets, client)

                def window(mode: str, name: str) -> Figures:
                    return run_loadgen(
                        loadgen,
                        targets[name],
                        mode=mode,
                        connections=args.connections,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        client=client,
                        upstream_pid=upstream_pid,
                    )

                def paced(slices: int) -> dict[str, Figures]:
                    """The three targets in turns (the first one rotating) of --seconds /
                    slices each, their latencies pooled: the machine's hiccups fall on all
                    three alike."""
                    windows: dict[str, list[Figures]] = {name: [] for name in PACED_TARGETS}
                    for index in range(slices):
                        shift = index % len(PACED_TARGETS)
                        for name in PACED_TARGETS[shift:] + PACED_TARGETS[:shift]:
                            windows[name].append(
                                run_loadgen(
                                    loadgen,
                                    targets[name],
                                    mode="keepalive",
                                    connections=args.latency_connections,
                                    seconds=args.seconds / slices,
                                    warmup=PACED_WARMUP,
                                    client=client,
                                    upstream_pid=upstream_pid,
                                    rate=args.rate,
                                    keep_latencies=workdir / "latencies.bin",
                                )
                            )
                    return {name: pooled(values) for name, values in windows.items()}

                slices = max(1, round(args.seconds / args.slice))
                for run_index in range(args.runs):
                    print(f"run {run_index + 1}", flush=True)
                    paced_results: dict[str, Figures] = {}
                    for key, label, mode, name in SCENARIOS:
                        if key.startswith("paced_"):
                            paced_results = paced_results or paced(slices)
                            figures = paced_results[name]
                        else:
                            figures = window(mode, name)
                        results[key].append(figures)
                        unit = "conn" if mode == "handshake" else "req"
                        print("  " + describe(label, figures, unit), flush=True)
                print(
                    f"negotiated: {results['hs_gateway'][0].tls} (gateway), "
                    f"{results['hs_nginx'][0].tls} (nginx)"
                )
                print_summary(results, args)
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    worker = gateway_workers[0] if gateway_workers else gateway.process.pid
                    for mode, unit in (("keepalive", "req"), ("handshake", "conn")):
                        print(f"\nprofile of gateway worker {worker}, {mode} window:", flush=True)

                        def drive(mode: str = mode) -> Figures:
                            return window(mode, "gateway")

                        text, figures = profile_worker(
                            worker, args.profile.resolve(), mode, args.seconds + args.warmup, drive
                        )
                        print("  " + describe("(while profiled)", figures, unit))
                        print(text, flush=True)
                print(f"\nsettings: {vars(args)}")
                print(f"total {time.perf_counter() - began:.0f} s")
        except BaseException:
            for path in [*sorted(stack_dir.glob("*.log")), workdir / "nginx" / "error.log"]:
                if path.exists():
                    print(
                        f"--- {path.name} (tail)\n{path.read_text(errors='replace')[-2000:]}",
                        file=sys.stderr,
                    )
            raise
        finally:
            stack.stop()
            smtp.stop()
    return 0


def check(targets: dict[str, Target], client: Path) -> None:
    """Both proxies answer /echo for the certificate's user, pass the identity headers
    they set and drop the forged ones; without a certificate neither proxies."""
    for name in ("gateway", "nginx"):
        status, seen = fetch_echo(targets[name].port, client)
        if status != 200 or seen.get("x-user-id") != USER_ID:
            raise SystemExit(f"{name}: GET {PATH} answered {status}, upstream saw {seen}")
        forged = [k for k, v in seen.items() if v == "forged"]
        if forged:
            raise SystemExit(f"{name} passed forged identity headers upstream: {forged}")
        shown = {k: (v if len(v) < 60 else v[:57] + "...") for k, v in seen.items()}
        print(f"check {name}: 200, the upstream saw {shown}", flush=True)
        status, seen = fetch_echo(targets[name].port, None)
        print(
            f"check {name} without a client certificate: "
            f"{status or seen.get('error', '')} (not proxied)",
            flush=True,
        )
        if status == 200:
            raise SystemExit(f"{name} proxied a request without a client certificate")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
