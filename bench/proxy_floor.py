#!/usr/bin/env python3
"""What a TLS-terminating proxy written in Python costs at the least, beside ca-gateway and
nginx: where the gateway's CPU per kept-alive proxied request goes (issue 10, item 2).

The *floor* is ``python bench/proxy_floor.py relay PORT UPSTREAM_PORT CERT KEY``: the
gateway's own TLS (pyOpenSSL over memory BIOs, :class:`AnyClientCertificateTls`, with the
gateway's server context: a client certificate asked for) on uvloop, and nothing else. Each
decrypted piece from the client goes as it is to one kept-alive upstream connection of its
own; each piece of the answer goes back encrypted. No HTTP parsing, no headers changed, no
checks, no log: the system calls, the TLS records and the event loop's dispatch, which any
Python proxy pays, and which ca-gateway pays too.

The *lean* proxy (``python bench/proxy_floor.py lean PORT UPSTREAM_PORT CERT KEY TRUST``)
is the least a proxy must do per request that does the gateway's job, written for nothing
but that, in one module: llhttp (httptools) parses each request and each answer, fields kept
as bytes; the client certificate is judged per request by the gateway's own
:func:`gateway.identity.identify` (chain against the issuing CA once per certificate,
validity, clientAuth, revocation against a view that is always fresh), the owner's record
looked up in a dict; hop-by-hop, identity, ``X-Forwarded-*`` and underscore fields are
dropped and X-Forwarded-For/-Proto/-Host and the identity fields (built once per identity)
added; the answer's hop-by-hop fields, Date and Content-Length are replaced; one JSON access
line per request, written once per turn of the event loop. It leaves out what the gateway
also does: the full table of malformed requests, admission and deadlines, an upstream pool
(each client connection has its own upstream connection, as the floor's), timeouts,
streamed bodies, metrics, sessions and screens. It is a yardstick, not a product: what a
proxied request's Python costs when it is written as one path with few objects.

The *kept* proxy (``python bench/proxy_floor.py kept …``, the same arguments) is the lean one
with the per-request bookkeeping the gateway cannot drop added, still written as one path:
the gateway's admission guard (:class:`ConnectionGuard`: busy once the head is in, waiting
again after the answer, so the head deadline and eviction work), one upstream pool per
process (a connection taken and given back per request, its idle time checked, instead of one
upstream connection per client connection), the head's limits (bytes, number of fields,
version 1.1, exactly one Host) and the gateway's metrics (time to the upstream's answer,
requests by status and duration). It still leaves out the rest listed above. It measures
what the gateway's proxied path would cost at best if it were written as one piece.

The measurement (``python bench/proxy_floor.py [--runs 5] [--workers 1]``) sets up the stack
of ``bench/gateway.py`` (its redis-server, ca-service, sample upstream, certificates, nginx
configuration and load generator) and measures keep-alive windows of ``--connections``
connections sending ``GET /echo`` in turn, the five servers taking turns within each run:
server CPU per request (the whole process tree), requests/s, and the share of the gateway's
CPU above the floor. The gateway and nginx run ``--workers`` worker processes, the floor and
the lean and kept proxies one process per worker as well (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import gateway as bench  # noqa: E402
from bench.issue import free_port  # noqa: E402
from tests.gateway.gateway_stack import GatewayStack, Process, start_gateway_stack  # noqa: E402
from tests.smtp_sink import SmtpSink  # noqa: E402
from tests.support import throwaway_redis  # noqa: E402


def relay(port: int, upstream_port: int, certificate: Path, key: Path, workers: int) -> None:
    """The floor: TLS in, bytes on, bytes back, TLS out. With ``workers`` > 1 this process
    starts the others as its children (one process tree to measure, as the gateway's)."""
    import uvloop

    parent = int(sys.argv[7]) if len(sys.argv) > 7 else None
    if parent is None:
        _children("relay", workers)
    from ca_service.shared.http.openssl_tls import AnyClientCertificateTls
    from gateway.tls import TlsFiles, build_server_context

    context = build_server_context(TlsFiles(certificate, key, certificate))

    class Upstream(asyncio.Protocol):
        def __init__(self, client: Client) -> None:
            self.client = client

        def data_received(self, data: bytes) -> None:
            self.client.tls.send(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self.client.transport.close()

    class Client(asyncio.Protocol):
        transport: asyncio.Transport
        tls: AnyClientCertificateTls
        upstream: asyncio.Transport | None = None
        waiting: list[bytes]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            self.tls = AnyClientCertificateTls(context, self.transport)
            self.waiting = []

        def data_received(self, data: bytes) -> None:
            try:
                plain = self.tls.receive(data)
            except (OSError, EOFError):
                self.transport.abort()
                return
            if not plain:
                return
            if self.upstream is not None:
                self.upstream.write(plain)
                return
            self.waiting.append(plain)
            if len(self.waiting) == 1:
                loop.create_task(self.connect())

        async def connect(self) -> None:
            transport, _ = await loop.create_connection(
                lambda: Upstream(self), "127.0.0.1", upstream_port
            )
            self.upstream = cast(asyncio.Transport, transport)
            self.upstream.write(b"".join(self.waiting))
            self.waiting.clear()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.upstream is not None:
                self.upstream.close()

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    _serve(loop, Client, port, parent)


def _children(mode: str, workers: int) -> None:
    """With ``workers`` > 1 the first process starts the others as its children (one process
    tree to measure, as the gateway's); a child's last argument is its parent's PID."""
    parent = os.getpid()
    for _ in range(workers - 1):
        arguments = [*sys.argv[2:6], "1", *sys.argv[7:8]]
        subprocess.Popen([sys.executable, __file__, mode, *arguments, str(parent)])


def _serve(loop: asyncio.AbstractEventLoop, factory: object, port: int, parent: int | None) -> None:
    loop.run_until_complete(
        loop.create_server(factory, "127.0.0.1", port, reuse_port=True, backlog=1024)  # type: ignore[arg-type]
    )
    print(f"listening on https://127.0.0.1:{port}/", flush=True)
    if parent is not None:  # a child: ends with its parent

        def orphaned() -> None:
            if os.getppid() != parent:
                loop.stop()
            loop.call_later(0.5, orphaned)

        orphaned()
    loop.run_forever()


def lean_proxy(
    port: int,
    upstream_port: int,
    certificate: Path,
    key: Path,
    trust: Path,
    parent: int | None,
    bookkeeping: bool = False,
) -> None:
    """The lean proxy of the module's docstring; with ``bookkeeping``, the kept one."""
    import httptools
    import uvloop
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ca_service.shared.http.messages import HOP_BY_HOP, http_date
    from ca_service.shared.http.openssl_tls import AnyClientCertificateTls
    from ca_service.shared.net.admission import Admission, Slot
    from ca_service.shared.net.guard import ConnectionGuard
    from gateway.accesslog import access_line
    from gateway.identity import IDENTITY_HEADERS, Identity, identify, identity_headers
    from gateway.metrics import GatewayMetrics
    from gateway.tls import TlsFiles, build_server_context

    context = build_server_context(TlsFiles(certificate, key, certificate))
    anchors = [
        c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(trust.read_bytes())
    ]
    hop_by_hop = {name.encode() for name in HOP_BY_HOP}
    not_forwarded = frozenset(
        hop_by_hop
        | {name.encode() for name in IDENTITY_HEADERS}
        | {b"content-length", b"expect", b"forwarded", b"x-real-ip"}
        | {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-proto"}
    )
    not_relayed = frozenset(hop_by_hop | {b"content-length", b"date"})
    identity_lines: dict[Identity, bytes] = {}
    records: dict[str, str] = {}  # user ID -> role: the gateway's cached CA record, in short

    class AlwaysFresh:
        def is_fresh(self) -> bool:
            return True

        def is_revoked(self, serial: int) -> bool:
            return serial in revoked

    revoked: set[int] = set()
    view = AlwaysFresh()
    lines: list[str] = []

    def flush() -> None:
        sys.stderr.write("\n".join(lines) + "\n")
        lines.clear()

    # With bookkeeping, what the gateway keeps per request besides: the admission guard
    # (busy at the head, waiting again after the answer: the head deadline and eviction),
    # one upstream pool per process (taken and given back per request, idle time checked),
    # the head's limits (bytes, fields, version, one Host), and the metrics (time to the
    # upstream's answer, requests by status and duration).
    guard = ConnectionGuard(Admission(10_000, 30.0), name="lean+") if bookkeeping else None
    metrics = GatewayMetrics()
    idle: list[Upstream] = []

    class Upstream(asyncio.Protocol):
        def __init__(self, client: Client) -> None:
            self.client = client
            self.parser = httptools.HttpResponseParser(self)
            self.fields: list[tuple[bytes, bytes]] = []
            self.body: list[bytes] = []
            self.transport: asyncio.Transport | None = None
            self.idle_since = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            client = self.client
            status = self.parser.get_status_code()
            if guard is not None:
                metrics.upstream_seconds(time.perf_counter() - client.started)
            body = b"".join(self.body)
            head = [b"HTTP/1.1 %d OK\r\nDate: %s\r\n" % (status, http_date().encode())]
            head += [b"%s: %s\r\n" % f for f in self.fields if f[0].lower() not in not_relayed]
            head.append(b"Content-Length: %d\r\n\r\n" % len(body))
            head.append(body)
            client.tls.send(b"".join(head))
            self.fields, self.body = [], []
            if not lines:
                loop.call_soon(flush)
            now = time.time()
            lines.append(
                access_line(
                    f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}Z",
                    client.address,
                    "GET",
                    client.path,
                    status,
                    len(body),
                    0.0,
                    "TLSv1.3",
                    False,
                    client.user,
                    None,
                )
            )
            if guard is not None:
                metrics.request(status, time.perf_counter() - client.started)
                if self.parser.should_keep_alive() and len(idle) < 64:
                    self.idle_since = time.monotonic()
                    idle.append(self)
                client.upstream = None
                if client.slot is not None:
                    guard.waiting(client.slot)

        def connection_lost(self, exc: Exception | None) -> None:
            if self in idle:
                idle.remove(self)
            self.transport = None
            if guard is None or self.client.upstream is self:
                self.client.transport.close()

    class Client(asyncio.Protocol):
        transport: asyncio.Transport
        tls: AnyClientCertificateTls

        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.fields: list[tuple[bytes, bytes]] = []
            self.names: dict[bytes, bytes] = {}
            self.target = b""
            self.path = self.user = self.address = ""
            self.certificate: bytes | None = None
            self.upstream: Upstream | None = None
            self.waiting: list[bytes] = []
            self.slot: Slot | None = None
            self.started = 0.0
            self.head_bytes = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            if guard is not None:
                self.slot = guard.admit(self.transport.abort)
                if self.slot is None:
                    self.transport.abort()
                    return
            self.tls = AnyClientCertificateTls(context, self.transport)
            self.address = self.transport.get_extra_info("peername")[0]

        def data_received(self, data: bytes) -> None:
            try:
                plain = self.tls.receive(data)
                if plain:
                    if guard is not None:
                        self.head_bytes += len(plain)
                        if self.head_bytes > 32 * 1024:
                            raise httptools.HttpParserError("head too large")
                    self.parser.feed_data(plain)
            except (OSError, EOFError, httptools.HttpParserError):
                self.transport.abort()

        def on_url(self, url: bytes) -> None:
            self.target = url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields.append((name, value))
            if guard is not None:
                lower = name.lower()
                names = self.names
                if lower not in names:
                    names[lower] = value
                elif lower == b"host":
                    raise ValueError("more than one Host field")

        def on_message_complete(self) -> None:
            if guard is not None:
                self.started = time.perf_counter()
                if self.slot is not None:
                    guard.busy(self.slot)
                if self.parser.get_http_version() != "1.1" or b"host" not in self.names:
                    raise ValueError("HTTP/1.1 with one Host only")
                if len(self.fields) > 100:
                    raise ValueError("too many fields")
                self.head_bytes = 0
                self.names = {}
            if self.certificate is None:
                self.certificate = self.tls.peer_certificate()
            certified = None
            for anchor in anchors:  # the issuing CA: found once, then first in the list
                try:
                    certified = identify(
                        self.certificate or b"",
                        issuer_der=anchor,
                        now=datetime.now(UTC),
                        revocations=view,
                    )
                    break
                except Exception:
                    anchors.append(anchors.pop(0))
            if certified is None:
                self.transport.abort()
                return
            self.user = certified.user_id
            records.setdefault(self.user, "master")
            extra = identity_lines.get(certified)
            if extra is None:
                extra = identity_lines[certified] = b"".join(
                    b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in identity_headers(certified)
                )
            self.path = self.target.partition(b"?")[0].decode("latin-1")
            head = [b"%s %s HTTP/1.1\r\n" % (self.parser.get_method(), self.target)]
            host = b""
            for name, value in self.fields:
                lower = name.lower()
                if lower in not_forwarded or b"_" in name:
                    continue
                if lower == b"host":
                    host = value
                head.append(b"%s: %s\r\n" % (name, value))
            head.append(
                b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: %s\r\n"
                % (self.address.encode(), host)
            )
            head.append(extra + b"\r\n")
            self.fields = []
            request = b"".join(head)
            if guard is not None:
                now = time.monotonic()
                while idle:
                    upstream = idle.pop()
                    if now - upstream.idle_since < 30.0 and upstream.transport is not None:
                        upstream.client = self
                        self.upstream = upstream
                        break
            if self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.write(request)
                return
            self.waiting.append(request)
            if len(self.waiting) == 1:
                loop.create_task(self.connect())

        async def connect(self) -> None:
            _, upstream = await loop.create_connection(
                lambda: Upstream(self), "127.0.0.1", upstream_port
            )
            self.upstream = upstream
            upstream.transport.write(b"".join(self.waiting))  # type: ignore[union-attr]
            self.waiting.clear()

        def connection_lost(self, exc: Exception | None) -> None:
            if guard is not None:
                if self.slot is not None:
                    guard.release(self.slot)
                return  # its upstream connection, if any, stays in the pool
            if self.upstream is not None and self.upstream.transport is not None:
                self.upstream.transport.close()

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    _serve(loop, Client, port, parent)


def start_floor(stack: GatewayStack, workers: int) -> tuple[bench.Target, Process]:
    return _start(stack, "floor", "relay", workers)


def start_lean(
    stack: GatewayStack, workers: int, mode: str = "lean"
) -> tuple[bench.Target, Process]:
    return _start(stack, mode, mode, workers, str(stack.tls_dir / "client-trust.pem"))


def _start(
    stack: GatewayStack, name: str, mode: str, workers: int, *extra: str
) -> tuple[bench.Target, Process]:
    """This module run as ``mode`` on a free port, in front of the stack's upstream."""
    port = free_port()
    process = Process(
        [
            sys.executable,
            __file__,
            mode,
            *(str(port), str(stack.upstream.port)),
            *(str(stack.tls_dir / "cert.pem"), str(stack.tls_dir / "key.pem"), str(workers)),
            *extra,
        ],
        dict(os.environ),
        stack.tmp / f"{name}.log",
    ).start()
    assert process.process is not None
    return bench.Target(name, port, True, process.process.pid), process


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        port, upstream_port, certificate, key, workers = sys.argv[2:7]
        relay(int(port), int(upstream_port), Path(certificate), Path(key), int(workers))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] in ("lean", "kept"):
        mode = sys.argv[1]
        port, upstream_port, certificate, key, workers, trust = sys.argv[2:8]
        parent = int(sys.argv[8]) if len(sys.argv) > 8 else None
        if parent is None:
            _children(mode, int(workers))
        lean_proxy(
            int(port),
            int(upstream_port),
            Path(certificate),
            Path(key),
            Path(trust),
            parent,
            bookkeeping=mode == "kept",
        )
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    results: dict[str, list[bench.Figures]] = {name: [] for name in _TARGETS}
    with (
        tempfile.TemporaryDirectory(prefix="bench-floor-") as workdir_name,
        throwaway_redis(Path(workdir_name)) as (redis_url, _),
    ):
        workdir = Path(workdir_name)
        loadgen = bench.build_loadgen(workdir)
        (workdir / "stack").mkdir()
        smtp = SmtpSink().start()
        stack = start_gateway_stack(workdir / "stack", redis_url, smtp)
        helpers: list[Process] = []
        try:
            for idle in stack.gateways:
                idle.stop()
            stack.gateways.clear()
            user_id, password, email = stack.new_user(bench.USER_ID)
            client = stack.issue(user_id, password, email, workdir / "client")
            gateway = bench.start_gateway(stack, args.workers, access_log=True)
            assert gateway.process is not None and stack.upstream.process is not None
            floor, floor_process = start_floor(stack, args.workers)
            helpers.append(floor_process)
            lean, lean_process = start_lean(stack, args.workers)
            helpers.append(lean_process)
            kept, kept_process = start_lean(stack, args.workers, "kept")
            helpers.append(kept_process)
            upstream = f"127.0.0.1:{stack.upstream.port}"
            with bench.nginx_server(
                workdir / "nginx", stack.tls_dir, upstream, args.workers, access_log=True
            ) as (nginx, _):
                targets = {
                    "floor": floor,
                    "lean": lean,
                    "kept": kept,
                    "gateway": bench.Target("gateway", gateway.port, True, gateway.process.pid),
                    "nginx": nginx,
                }
                for run in range(args.runs):
                    turn = run % len(targets)
                    order = list(targets)[turn:] + list(targets)[:turn]
                    for name in order:
                        figures = bench.run_loadgen(
                            loadgen,
                            targets[name],
                            mode="keepalive",
                            connections=args.connections,
                            seconds=args.seconds,
                            warmup=args.warmup,
                            client=client,
                            upstream_pid=stack.upstream.process.pid,
                        )
                        if figures.errors or figures.non200:
                            raise SystemExit(f"{name}: {figures.last_error}")
                        results[name].append(figures)
                        print(f"run {run + 1} " + bench.describe(f"{name:8}", figures, "req"))
        finally:
            for helper in helpers:
                helper.stop()
            stack.stop()
            smtp.stop()
    print_summary(results, args)
    return 0


def print_summary(results: dict[str, list[bench.Figures]], args: argparse.Namespace) -> None:
    def median(name: str, value: str) -> float:
        return float(statistics.median(getattr(f, value) for f in results[name]))

    print(
        f"\nkeep-alive GET /echo, {args.connections} connections, {args.workers} worker(s) each, "
        f"medians of {args.runs} runs (cores busy with other processes: median "
        f"{statistics.median(f.other_cores for fs in results.values() for f in fs):.2f})"
    )
    print(f"{'':10} {'req/s':>8} {'CPU µs/req':>11} {'of it kernel':>13}")
    for name in results:
        kernel = statistics.median(f.per_op_us(f.server_sys_s) for f in results[name])
        print(
            f"{name:10} {median(name, 'rate'):8.0f} {median(name, 'cpu_us'):11.0f} {kernel:13.0f}"
        )
    ratios = {
        name: statistics.median(
            f.cpu_us / n.cpu_us for f, n in zip(results[name], results["nginx"], strict=True)
        )
        for name in _PYTHON
    }
    above = statistics.median(
        g.cpu_us - f.cpu_us for g, f in zip(results["gateway"], results["floor"], strict=True)
    )
    rates = {
        name: statistics.median(
            f.rate / n.rate for f, n in zip(results[name], results["nginx"], strict=True)
        )
        for name in _PYTHON
    }
    print(
        "CPU per request against nginx's in the same run (median of the runs' ratios): "
        + ", ".join(f"{name} {ratios[name]:.2f}x" for name in _PYTHON)
        + "; requests/s: "
        + ", ".join(f"{name} {rates[name]:.2f}x" for name in _PYTHON)
        + f"; the gateway above the floor: {above:.0f} µs per request "
        "(HTTP/1.1 parsing and framing both ways, the checks, the headers, the pool, the "
        "access log)"
    )


_TARGETS = ("floor", "lean", "kept", "gateway", "nginx")
_PYTHON = ("floor", "lean", "kept", "gateway")


if __name__ == "__main__":
    sys.exit(main())
