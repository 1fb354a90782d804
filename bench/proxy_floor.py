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

The measurement (``python bench/proxy_floor.py [--runs 5] [--workers 1]``) sets up the stack
of ``bench/gateway.py`` (its redis-server, ca-service, sample upstream, certificates, nginx
configuration and load generator) and measures keep-alive windows of ``--connections``
connections sending ``GET /echo`` in turn, the three servers taking turns within each run:
server CPU per request (the whole process tree), requests/s, and the share of the gateway's
CPU above the floor. The gateway and nginx run ``--workers`` worker processes, the floor one
process per worker as well (SO_REUSEPORT).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
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

    parent = os.getpid()
    for _ in range(workers - 1):
        arguments = [str(port), str(upstream_port), str(certificate), str(key), "1"]
        subprocess.Popen([sys.executable, __file__, "relay", *arguments, str(parent)])

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
    loop.run_until_complete(
        loop.create_server(Client, "127.0.0.1", port, reuse_port=True, backlog=1024)
    )
    print(f"listening on https://127.0.0.1:{port}/", flush=True)
    if len(sys.argv) > 7:  # a child: ends with its parent
        watched = int(sys.argv[7])

        def orphaned() -> None:
            if os.getppid() != watched:
                loop.stop()
            loop.call_later(0.5, orphaned)

        orphaned()
    loop.run_forever()


def start_floor(stack: GatewayStack, workers: int) -> tuple[bench.Target, Process]:
    port = free_port()
    process = Process(
        [
            sys.executable,
            __file__,
            "relay",
            *(str(port), str(stack.upstream.port)),
            *(str(stack.tls_dir / "cert.pem"), str(stack.tls_dir / "key.pem"), str(workers)),
        ],
        dict(os.environ),
        stack.tmp / "floor.log",
    ).start()
    assert process.process is not None
    return bench.Target("floor", port, True, process.process.pid), process


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        port, upstream_port, certificate, key, workers = sys.argv[2:7]
        relay(int(port), int(upstream_port), Path(certificate), Path(key), int(workers))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    results: dict[str, list[bench.Figures]] = {"floor": [], "gateway": [], "nginx": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-floor-") as workdir_name,
        throwaway_redis(Path(workdir_name)) as (redis_url, _),
    ):
        workdir = Path(workdir_name)
        loadgen = bench.build_loadgen(workdir)
        (workdir / "stack").mkdir()
        smtp = SmtpSink().start()
        stack = start_gateway_stack(workdir / "stack", redis_url, smtp)
        floor_process: Process | None = None
        try:
            for idle in stack.gateways:
                idle.stop()
            stack.gateways.clear()
            user_id, password, email = stack.new_user(bench.USER_ID)
            client = stack.issue(user_id, password, email, workdir / "client")
            gateway = bench.start_gateway(stack, args.workers, access_log=True)
            assert gateway.process is not None and stack.upstream.process is not None
            floor, floor_process = start_floor(stack, args.workers)
            upstream = f"127.0.0.1:{stack.upstream.port}"
            with bench.nginx_server(
                workdir / "nginx", stack.tls_dir, upstream, args.workers, access_log=True
            ) as (nginx, _):
                targets = {
                    "floor": floor,
                    "gateway": bench.Target("gateway", gateway.port, True, gateway.process.pid),
                    "nginx": nginx,
                }
                for run in range(args.runs):
                    order = list(targets)[run % 3 :] + list(targets)[: run % 3]
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
            if floor_process is not None:
                floor_process.stop()
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
        for name in ("floor", "gateway")
    }
    above = statistics.median(
        g.cpu_us - f.cpu_us for g, f in zip(results["gateway"], results["floor"], strict=True)
    )
    print(
        f"CPU per request against nginx's in the same run (median of the runs' ratios): floor "
        f"{ratios['floor']:.2f}x, gateway {ratios['gateway']:.2f}x; the gateway above the "
        f"floor: {above:.0f} µs per request (HTTP/1.1 parsing and framing both ways, the "
        "checks, the headers, the pool, the access log)"
    )


if __name__ == "__main__":
    sys.exit(main())
