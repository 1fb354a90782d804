#!/usr/bin/env python3
"""Issuance and OCSP throughput at 1, 2 and 4 ca-service processes on one PostgreSQL.

Per process count and run: a fresh PostgreSQL schema, a throw-away redis-server and CA,
``ca-service serve`` with ``CA_GRPC_WORKERS`` = N (N processes sharing the gRPC and HTTP
ports, SO_REUSEPORT: the kernel spreads connections over them). Then:

- issuance: SignCsr from ``--clients`` concurrent calls over 4 × N gRPC connections (each
  its own TCP connection, so that the kernel can spread them), ``--warmup`` s, then
  ``--seconds`` s measured;
- OCSP: wrk (``-t2 -c64``, a new connection per request, as bench/ocsp.py's first
  scenario) over GET requests for 200 certificates of which every tenth is revoked.

For each: the rate, p50/p99 (issuance), and the CPU per certificate (per response) of the
CA processes (utime+stime of the process tree from /proc) and of the PostgreSQL server
(the backends whose ``application_name`` marks them as the CA's: the server is shared): flat
figures over N mean that adding processes adds no coordination work per certificate. The
load generators run on the same machine. Medians of ``--runs`` runs are printed last.

    .venv/bin/python bench/scaling.py [--processes 1,2,4] [--seconds 10] [--runs 3]
        [--clients 64] [--postgres-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.x509.oid import AuthorityInformationAccessOID  # noqa: E402

from bench.crl_million import postgres_schema  # noqa: E402
from bench.issue import cpu_seconds, p99  # noqa: E402
from bench.ocsp import (  # noqa: E402
    Target,
    get_path,
    issue_certificates,
    ocsp_request,
    run_wrk,
    tree_cpu,
    write_lua,
)
from ca_service.api import pb  # noqa: E402
from ca_service.client import channel_credentials, stub  # noqa: E402
from tests.support import (  # noqa: E402
    CaProcess,
    ca_env,
    create_user,
    free_port,
    init_ca,
    make_csr,
    throwaway_redis,
)

CONNECTIONS_PER_PROCESS = 4


APPLICATION_NAME = "ca-scaling-bench"


def database_cpu_seconds(server_url: str) -> float:
    """CPU of the PostgreSQL backends that serve the CA under test (its connections carry
    ``application_name``; the server is shared with other work, whose backends are left
    out, as are the server's own background processes)."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as connection:
        pids = [
            int(row[0])
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION_NAME,),
            )
        ]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


def ca_cpu_seconds(server: CaProcess) -> float:
    assert server.process is not None
    return sum(tree_cpu(server.process.pid))


async def issuance(server: CaProcess, processes: int, args: argparse.Namespace) -> dict[str, float]:
    clients, seconds, warmup = args.clients, args.seconds, args.warmup
    csr = make_csr()
    request = pb.SignCsrRequest(csr=csr, user_id="scale001", override_renewal_window=True)
    credentials = channel_credentials(server.operator())
    # A local subchannel pool per channel: each channel its own TCP connection.
    channels = [
        grpc.aio.secure_channel(
            server.address, credentials, [("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(CONNECTIONS_PER_PROCESS * processes)
    ]
    try:
        apis = [stub(channel) for channel in channels]
        for api in apis:
            await api.SignCsr(request)
        latencies: list[float] = []
        measuring = False
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + warmup + seconds

        async def client(index: int) -> None:
            api = apis[index % len(apis)]
            while loop.time() < stop_at:
                started = time.perf_counter()
                await api.SignCsr(request)
                if measuring:
                    latencies.append(time.perf_counter() - started)

        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        await asyncio.sleep(warmup)
        ca_before, db_before = ca_cpu_seconds(server), database_cpu_seconds(args.postgres_url)
        started = time.perf_counter()
        measuring = True
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - started
        ca_cpu = ca_cpu_seconds(server) - ca_before
        db_cpu = database_cpu_seconds(args.postgres_url) - db_before
        await asyncio.gather(*tasks)
    finally:
        for channel in channels:
            await channel.close()
    count = len(latencies)
    return {
        "rate": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": p99(latencies) * 1000,
        "ca_us": ca_cpu / count * 1e6,
        "db_us": db_cpu / count * 1e6,
    }


def ocsp(
    server: CaProcess, http_port: int, workdir: Path, args: argparse.Namespace
) -> dict[str, float]:
    seconds, warmup = int(args.seconds), int(args.warmup)
    issued = asyncio.run(issue_certificates(server, 200, 10))
    data_dir = server.data_dir
    issuer = x509.load_pem_x509_certificate((data_dir / "issuing" / "ca.pem").read_bytes())
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
    assert server.process is not None
    target = Target(
        "ca-service",
        http_port,
        [get_path(prefix, ocsp_request(item.certificate, issuer)) for item in issued],
        server.process.pid,
    )
    script = write_lua(workdir / "ocsp.lua", target.paths, close=True)

    @contextlib.contextmanager
    def serving() -> Iterator[Target]:
        yield target

    run_wrk(serving, script, 2, 64, warmup, 0)  # warm-up, not measured
    db_before = database_cpu_seconds(args.postgres_url)
    figures = run_wrk(serving, script, 2, 64, seconds, 0)
    db_cpu = database_cpu_seconds(args.postgres_url) - db_before
    errors = sum(figures.errors.values())
    if errors:
        print(f"  (wrk reported errors: {figures.errors})")
    return {
        "rate": figures.rate,
        "p99_ms": figures.p99_ms,
        "ca_us": figures.cpu_us,
        "db_us": db_cpu / figures.responses * 1e6 if figures.responses else float("nan"),
    }


def one_run(
    args: argparse.Namespace, processes: int, workdir: Path
) -> tuple[dict[str, float], dict[str, float]]:
    with (
        postgres_schema(args.postgres_url) as schema_url,
        throwaway_redis(workdir / "redis") as (redis_url, _),
    ):
        url = f"{schema_url}&application_name={APPLICATION_NAME}"
        data_dir = workdir / "ca"
        http_port = free_port()
        extra = {
            "CA_DATABASE_URL": url,
            "CA_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
            "CA_PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
            "CA_REDIS_URL": redis_url,
            "CA_REDIS_PREFIX": "scale:",
            "CA_LOG_LEVEL": "WARNING",
            "CA_MAIL_WORKER": "0",
        }
        init_ca(data_dir, **extra)
        if processes > 1:
            extra |= {
                "CA_GRPC_WORKERS": str(processes),
                "CA_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            }
        server = CaProcess(data_dir, ca_env(data_dir, **extra), workdir / "ca.log").start(60)
        try:
            create_user(server.address, server.operator(), "scale001", "Scale Co")
            issued = asyncio.run(issuance(server, processes, args))
            answered = ocsp(server, http_port, workdir, args)
        finally:
            server.stop()
    return issued, answered


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    print(
        f"ca-service on one PostgreSQL: processes {args.processes}; SignCsr from {args.clients}"
        f" concurrent calls, OCSP by wrk -t2 -c64 (new connection per request); {args.seconds:.0f}"
        f" s measured per window; {os.cpu_count()} CPUs, load average"
        f" {os.getloadavg()[0]:.1f}; load generators on the same machine",
        flush=True,
    )
    summary = []
    for processes in (int(n) for n in args.processes.split(",")):
        issued_runs, ocsp_runs = [], []
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-scaling-") as workdir:
                issued, answered = one_run(args, processes, Path(workdir))
            issued_runs.append(issued)
            ocsp_runs.append(answered)
            print(
                f"{processes} process(es) run {run + 1}: issuance {issued['rate']:.0f} certs/s"
                f" (p50 {issued['p50_ms']:.1f} ms, p99 {issued['p99_ms']:.1f} ms), CPU per cert:"
                f" CA {issued['ca_us']:.0f} µs, PostgreSQL {issued['db_us']:.0f} µs;"
                f" OCSP {answered['rate']:.0f} responses/s, CPU per response: CA"
                f" {answered['ca_us']:.0f} µs, PostgreSQL {answered['db_us']:.1f} µs;"
                f" load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        summary.append((processes, _median(issued_runs), _median(ocsp_runs)))
    print(f"medians of {args.runs} runs:")
    print("  processes | certs/s | CA µs/cert | PG µs/cert | OCSP resp/s | CA µs/resp | PG µs/resp")
    for processes, issued, answered in summary:
        print(
            f"  {processes:9d} | {issued['rate']:7.0f} | {issued['ca_us']:10.0f} |"
            f" {issued['db_us']:10.0f} | {answered['rate']:11.0f} | {answered['ca_us']:10.0f} |"
            f" {answered['db_us']:10.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
